"""Outcomes of an ensemble: at a time (snapshot) or integrated over a window of the course.

Built in: the SOX10-low fraction, viable cells and priming at a time; persister burden and
resistance risk over a window (fate-weighted functionals of the path).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import grn
from grn.models import priming_per_cell, sox10_low_per_cell

from ._intervention import DAY


class Outcome(eqx.Module):
    """An ensemble outcome: the mean over cells of a per-cell value.

    ``per_cell`` maps species name -> counts and the log fate weights, at one time (arrays
    (cells,)) or at every output time of a window (arrays (cells, times)), elementwise to a value
    per cell (traceable). Without ``start_h`` the outcome is the snapshot ``per_cell`` at
    ``time_h``; with it, the path functional ``int_{start_h}^{time_h} per_cell(t) dt`` (hours),
    by the trapezoid rule over the output times in the window (both ends must be output times;
    `window_values`). ``better`` is ``"lower"`` or ``"higher"``. The benefit of an intervention
    is ``outcome(base) - outcome(with)`` for a lower-is-better outcome (the opposite sign
    otherwise), so a positive benefit is always good.
    """

    name: str = eqx.field(static=True)
    per_cell: Callable = eqx.field(static=True)
    time_h: float = eqx.field(static=True)
    better: str = eqx.field(static=True, default="lower")
    start_h: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.better not in ("lower", "higher"):
            raise ValueError(f"outcome {self.name!r}: better must be 'lower' or 'higher'")
        if not (isinstance(self.time_h, int | float) and math.isfinite(self.time_h)):
            raise ValueError(f"outcome {self.name!r}: time_h must be a finite number")
        if self.start_h is not None and not (
            isinstance(self.start_h, int | float)
            and math.isfinite(self.start_h)
            and self.start_h < self.time_h
        ):
            raise ValueError(
                f"outcome {self.name!r}: the window [{self.start_h}, {self.time_h}] h must be "
                "finite with start_h < time_h"
            )

    @property
    def integrated(self) -> bool:
        """True for a path functional over ``[start_h, time_h]``, False for a snapshot."""
        return self.start_h is not None

    @property
    def sign(self) -> float:
        """+1 when lower is better: benefit = sign * (outcome(base) - outcome(with))."""
        return 1.0 if self.better == "lower" else -1.0


def outcome_span(outcome: Outcome, ts) -> tuple[int, int]:
    """Indices ``(i0, i1)`` of the outcome's window ends (``i0 == i1`` for a snapshot) in the
    output times ``ts``; an error names the outcome if its window lies outside ``[ts[0], ts[-1]]``
    (the simulated protocol) or an end is not an output time."""
    ts = np.asarray(ts, np.float64)
    lo = outcome.time_h if outcome.start_h is None else outcome.start_h
    if lo < ts[0] - 1e-9 or outcome.time_h > ts[-1] + 1e-9:
        what = "time" if outcome.start_h is None else "window"
        raise ValueError(
            f"outcome {outcome.name!r}: its {what} [{lo:g}, {outcome.time_h:g}] h lies outside "
            f"the simulated protocol [{ts[0]:g}, {ts[-1]:g}] h"
        )
    span = []
    for t in (lo, outcome.time_h):
        hit = np.flatnonzero(np.isclose(ts, t))
        if hit.size == 0:
            raise ValueError(f"outcome {outcome.name!r} at t = {t} h is not an output time")
        span.append(int(hit[0]))
    return tuple(span)


def window_values(outcome: Outcome, species, ts, ys, log_weight, span):
    """Per-cell values (cells,) of ``outcome`` from a solution's ``ys`` (cells, times, species)
    and ``log_weight`` (cells, times) at output times ``ts``; ``span`` from `outcome_span`. An
    integrated outcome is the trapezoid rule of ``per_cell`` over the output times in its window
    (exact for integrands linear between output times)."""
    i0, i1 = span
    if not outcome.integrated:
        x = {s: ys[:, i1, k] for k, s in enumerate(species)}
        return outcome.per_cell(x, log_weight[:, i1])
    x = {s: ys[:, i0 : i1 + 1, k] for k, s in enumerate(species)}
    f = outcome.per_cell(x, log_weight[:, i0 : i1 + 1])
    dt = jnp.diff(ts[i0 : i1 + 1])
    return jnp.sum(0.5 * (f[:, 1:] + f[:, :-1]) * dt, axis=-1)


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
    low = _low(network, threshold, softness, species, "sox10_low_fraction")
    name = "sox10_low_fraction" if softness == 0 else "sox10_low_fraction_soft"
    return Outcome(name, low, day * DAY)


def viable_cells(day: float = 29.0) -> Outcome:
    """Viable cells per starting cell at ``day``: ``mean_c exp(log_weight_c)``; lower is better."""
    return Outcome("viable_cells", _Viable(), day * DAY)


def priming(network: grn.Network, day: float = 10.0, species: str = "B", K: float = 20.0):
    """Mean apoptotic priming ``B / (B + K)`` at ``day`` (BIM, K = 20;
    `grn.models.priming_per_cell`); higher is better."""
    if species not in network.species:
        raise ValueError(f"priming: the network has no species {species!r}")
    return Outcome("priming", _Priming(species, float(K)), day * DAY, better="higher")


MUTATION_RATE = 1e-7
"""Prior: resistant lineages founded per cell division (an assumption, not a fit). Order of
magnitude of a point-mutation rate of ~1e-9 per base per division times ~10-100 resistance-
conferring sites, as assumed in models of targeted-therapy resistance (Bozic et al., eLife 2013,
2:e00747); drug-tolerant persisters may mutate faster (adaptive mutability, Russo et al., Science
2019). It scales `resistance_risk` linearly, so it changes no ranking."""


class _ViableLow(eqx.Module):
    """Fate weight x SOX10-low (indicator or sigmoid), times ``scale``."""

    low: _BelowThreshold
    scale: float = eqx.field(static=True)

    def __call__(self, x, log_weight):
        return self.scale * jnp.exp(log_weight) * self.low(x, log_weight)


class _Divisions(eqx.Module):
    """``rate x g(x) x`` fate weight x SOX10-low: resistant lineages founded per hour."""

    low: _BelowThreshold
    growth: Callable = eqx.field(static=True)
    params: tuple = eqx.field(static=True)
    inputs: tuple = eqx.field(static=True)
    rate: float = eqx.field(static=True)

    def __call__(self, x, log_weight):
        g = self.growth(x, dict(self.params), dict.fromkeys(self.inputs, 0.0))
        return self.rate * g * jnp.exp(log_weight) * self.low(x, log_weight)


def _low(network, threshold, softness, species, who):
    if species not in network.species:
        raise ValueError(f"{who}: the network has no species {species!r}")
    if threshold is None:
        threshold = float(network.x0[network.species.index(species)]) / 2.0
    if not threshold > 0 or softness < 0:
        raise ValueError(f"{who}: threshold must be > 0 and softness >= 0")
    soft = None if softness == 0 else float(softness) * float(threshold)
    return _BelowThreshold(species, float(threshold), soft)


def _window(start_day, end_day, who):
    if not (math.isfinite(start_day) and math.isfinite(end_day) and start_day < end_day):
        raise ValueError(
            f"{who}: the window must have start_day < end_day, got [{start_day}, {end_day}]"
        )
    return float(start_day) * DAY, float(end_day) * DAY


def persister_burden(
    network: grn.Network,
    start_day: float = 0.0,
    end_day: float = 29.0,
    threshold: float | None = None,
    softness: float = 0.0,
    species: str = "S",
) -> Outcome:
    """Persister burden: viable SOX10-low cell-days per starting cell over the window,
    ``int mean_c[exp(log_weight_c) 1(S_c < threshold)] dt`` (dt in days); lower is better.
    SOX10-low as in `sox10_low_fraction` (``softness > 0``: the sigmoid, for gradients)."""
    low = _low(network, threshold, softness, species, "persister_burden")
    t0, t1 = _window(start_day, end_day, "persister_burden")
    name = "persister_burden" if softness == 0 else "persister_burden_soft"
    return Outcome(name, _ViableLow(low, 1.0 / DAY), t1, start_h=t0)


def resistance_risk(
    network: grn.Network,
    start_day: float = 0.0,
    end_day: float = 29.0,
    mutation_rate: float = MUTATION_RATE,
    threshold: float | None = None,
    softness: float = 0.0,
    species: str = "S",
) -> Outcome:
    """Expected resistant lineages per starting cell founded over the window by mutations at
    division in the viable persister pool: ``mutation_rate x int mean_c[g_c exp(log_weight_c)
    1(S_c < threshold)] dt`` (dt in hours, ``g`` the network's growth rate per hour, so the
    integral counts divisions); lower is better. ``mutation_rate``: resistant lineages per
    division, default the prior `MUTATION_RATE`. ``g`` is evaluated with the network's
    parameters and must not depend on its inputs."""
    if network.growth is None:
        raise ValueError("resistance_risk: the network has no growth law (no divisions)")
    if not (isinstance(mutation_rate, int | float) and mutation_rate > 0):
        raise ValueError(f"resistance_risk: mutation_rate must be > 0, got {mutation_rate!r}")
    x0 = {s: float(v) for s, v in zip(network.species, network.x0)}
    g = [
        float(network.growth(x0, network.params, dict.fromkeys(network.inputs, u)))
        for u in (0.0, 1.0)
    ]
    if g[0] != g[1]:
        raise ValueError(
            "resistance_risk: the network's growth rate depends on its inputs; divisions need a "
            "growth rate of the state alone"
        )
    low = _low(network, threshold, softness, species, "resistance_risk")
    t0, t1 = _window(start_day, end_day, "resistance_risk")
    name = "resistance_risk" if softness == 0 else "resistance_risk_soft"
    params = tuple(sorted((k, float(v)) for k, v in network.params.items()))
    per_cell = _Divisions(low, network.growth, params, network.inputs, float(mutation_rate))
    return Outcome(name, per_cell, t1, start_h=t0)


OUTCOMES = {"sox10_low_fraction": sox10_low_fraction, "viable_cells": viable_cells}
OUTCOMES["priming"] = priming
OUTCOMES["persister_burden"] = persister_burden
OUTCOMES["resistance_risk"] = resistance_risk


def make_outcome(network: grn.Network, kind: str, day: float, **options) -> Outcome:
    """A built-in outcome by name (``sox10_low_fraction``, ``viable_cells``, ``priming`` at
    ``day``; ``persister_burden``, ``resistance_risk`` over ``[start_day, day]``)."""
    if kind not in OUTCOMES:
        raise ValueError(f"unknown outcome kind {kind!r}; choose one of {list(OUTCOMES)}")
    if kind == "viable_cells":
        return viable_cells(day, **options)
    if kind in ("persister_burden", "resistance_risk"):
        return OUTCOMES[kind](network, end_day=day, **options)
    return OUTCOMES[kind](network, day, **options)
