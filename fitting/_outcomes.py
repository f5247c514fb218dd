"""Outcomes of an ensemble at a time: built-in SOX10-low fraction, viable cells and priming."""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

import grn
from grn.models import priming_per_cell, sox10_low_per_cell

from ._intervention import DAY


class Outcome(eqx.Module):
    """An ensemble outcome at ``time_h``: the mean over cells of ``per_cell(x, log_weight)``.

    ``per_cell`` maps species name -> counts (cells,) and the log fate weights (cells,) at that
    time to one value per cell (traceable); ``better`` is ``"lower"`` or ``"higher"``. The benefit
    of an intervention is ``outcome(base) - outcome(with)`` for a lower-is-better outcome (the
    opposite sign otherwise), so a positive benefit is always good.
    """

    name: str = eqx.field(static=True)
    per_cell: Callable = eqx.field(static=True)
    time_h: float = eqx.field(static=True)
    better: str = eqx.field(static=True, default="lower")

    def __check_init__(self):
        if self.better not in ("lower", "higher"):
            raise ValueError(f"outcome {self.name!r}: better must be 'lower' or 'higher'")
        if not (isinstance(self.time_h, int | float) and math.isfinite(self.time_h)):
            raise ValueError(f"outcome {self.name!r}: time_h must be a finite number")

    @property
    def sign(self) -> float:
        """+1 when lower is better: benefit = sign * (outcome(base) - outcome(with))."""
        return 1.0 if self.better == "lower" else -1.0


class _BelowThreshold(eqx.Module):
    species: str = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    soft: float | None = eqx.field(static=True)

    def __call__(self, x, log_weight):
        return sox10_low_per_cell(x[self.species], self.threshold, self.soft)


class _Viable(eqx.Module):
    def __call__(self, x, log_weight):
        return jnp.exp(log_weight)


class _Priming(eqx.Module):
    species: str = eqx.field(static=True)
    K: float = eqx.field(static=True)

    def __call__(self, x, log_weight):
        return priming_per_cell(x[self.species], self.K)


def sox10_low_fraction(
    network: grn.Network,
    day: float = 29.0,
    threshold: float | None = None,
    softness: float = 0.0,
    species: str = "S",
) -> Outcome:
    """Fraction of cells with SOX10 (``S``) below ``threshold`` (default: half the untreated
    ``x0``) at ``day``; lower is better. ``softness > 0`` replaces the indicator by the sigmoid
    ``sigma((threshold - S) / (softness * threshold))`` so that it has pathwise gradients: the
    per-cell value is `grn.models.sox10_low_per_cell` with ``soft = softness * threshold``."""
    if species not in network.species:
        raise ValueError(f"sox10_low_fraction: the network has no species {species!r}")
    if threshold is None:
        threshold = float(network.x0[network.species.index(species)]) / 2.0
    if not threshold > 0 or softness < 0:
        raise ValueError("sox10_low_fraction: threshold must be > 0 and softness >= 0")
    name = "sox10_low_fraction" if softness == 0 else "sox10_low_fraction_soft"
    soft = None if softness == 0 else float(softness) * float(threshold)
    return Outcome(name, _BelowThreshold(species, float(threshold), soft), day * DAY)


def viable_cells(day: float = 29.0) -> Outcome:
    """Viable cells per starting cell at ``day``: ``mean_c exp(log_weight_c)``; lower is better."""
    return Outcome("viable_cells", _Viable(), day * DAY)


def priming(network: grn.Network, day: float = 10.0, species: str = "B", K: float = 20.0):
    """Mean apoptotic priming ``B / (B + K)`` at ``day`` (BIM, K = 20;
    `grn.models.priming_per_cell`); higher is better."""
    if species not in network.species:
        raise ValueError(f"priming: the network has no species {species!r}")
    return Outcome("priming", _Priming(species, float(K)), day * DAY, better="higher")


OUTCOMES = {"sox10_low_fraction": sox10_low_fraction, "viable_cells": viable_cells}
OUTCOMES["priming"] = priming


def make_outcome(network: grn.Network, kind: str, day: float, **options) -> Outcome:
    """A built-in outcome by name (``sox10_low_fraction``, ``viable_cells``, ``priming``)."""
    if kind not in OUTCOMES:
        raise ValueError(f"unknown outcome kind {kind!r}; choose one of {list(OUTCOMES)}")
    if kind == "viable_cells":
        return viable_cells(day, **options)
    return OUTCOMES[kind](network, day, **options)
