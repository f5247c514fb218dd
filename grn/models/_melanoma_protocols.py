"""Standard protocols and observables of the melanoma BRAFi model (`grn.models.melanoma`).

Protocol (Su et al., Nat Commun 2026): BRAF inhibitor at drug effect ``level`` (0.95) for
``on_days`` (29) days, then removed for ``off_days`` (35) days; interventions (``NFKBi``, ``NAC``,
``EPIi``, ``BH3i``) from a chosen start for a chosen duration on top of it. Time in hours.

Observables (shared/MODEL.md), per output time, over the cells of a `grn.Solution` whose result
code is 0 (failed cells are left out), optionally weighted by ``exp(log_weight)`` (the surviving
population's composition). Species of the slow module are read as concentrations
``c = n / Omega_slow`` in the model's unscaled units (``Omega_slow = 1``: counts):

- SOX10-low fraction ``p = sum_c w_c 1[S_c < theta]`` with ``theta`` half the untreated steady
  state of S, standard error ``sqrt(p (1 - p) / n_eff)``, ``n_eff = 1 / sum_c w_c^2`` (the
  binomial one for unweighted cells; Kish's effective size when weighted). ``soft=width`` replaces
  the indicator by ``sigmoid((theta - S) / width)`` so the fraction has pathwise gradients.
- wave scores: mean W1 and mean W2 (lambda1- and lambda2-like programmes);
- apoptotic priming: mean ``B / (B + KBh)`` (free BIM, ``KBh = 20``);
- Sarle's bimodality coefficient of S across cells;
- viable cells: `grn.Solution.viable_cells`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._schedule import Schedule
from .._solution import Solution
from ._melanoma import INPUTS, PARAMS, X0

DAY = 24.0
"""Hours per day."""

DRUG = "BRAFi"
INTERVENTION_INPUTS = tuple(name for name in INPUTS if name != DRUG)
"""Inputs an intervention may set: every model input except the protocol's drug."""


# -- protocols ----------------------------------------------------------------------------------
def _number(what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{what} is NaN")
    return value


def _check_protocol(on_days, off_days) -> tuple[float, float]:
    on_days = _number("on_days", on_days)
    off_days = _number("off_days", off_days)
    if not (math.isfinite(on_days) and on_days > 0):
        raise ValueError(f"on_days must be a positive finite number of days, got {on_days}")
    if not (math.isfinite(off_days) and off_days >= 0):
        raise ValueError(f"off_days must be a finite number of days >= 0, got {off_days}")
    return on_days, off_days


def _check_dose(name, dose, end_h: float) -> tuple[float, float, float]:
    """``(level, start_h, end_h)`` of one intervention, validated (end ``inf``: to the end)."""
    if not isinstance(name, str) or name not in INTERVENTION_INPUTS:
        hint = " (the protocol sets BRAFi: use level/on_days)" if name == DRUG else ""
        raise ValueError(
            f"intervention on unknown input {name!r}{hint}; choose from {list(INTERVENTION_INPUTS)}"
        )
    if isinstance(dose, str) or not isinstance(dose, tuple | list) or len(dose) not in (2, 3):
        raise TypeError(
            f"intervention {name!r} must be (level, start_h) or (level, start_h, duration_h), "
            f"got {dose!r}"
        )
    level = _number(f"intervention {name!r}: level", dose[0])
    start = _number(f"intervention {name!r}: start_h", dose[1])
    duration = _number(f"intervention {name!r}: duration_h", dose[2]) if len(dose) == 3 else None
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"intervention {name!r}: level must be in [0, 1], got {level}")
    if not (math.isfinite(start) and start >= 0.0):
        raise ValueError(f"intervention {name!r}: start_h must be finite and >= 0, got {start}")
    if start >= end_h:
        raise ValueError(
            f"intervention {name!r}: start_h {start:g} is not before the protocol's end at "
            f"{end_h:g} h"
        )
    if duration is not None and not duration > 0.0:
        raise ValueError(f"intervention {name!r}: duration_h must be positive, got {duration}")
    return level, start, math.inf if duration is None else start + duration


def braf_schedule(
    on_days: float = 29.0,
    off_days: float = 35.0,
    level: float = 0.95,
    interventions: Mapping[str, tuple] | None = None,
) -> Schedule:
    """BRAFi at ``level`` from t = 0 to ``on_days`` days, then 0 (kept on if ``off_days == 0``).

    ``interventions`` maps an input (``NFKBi``, ``NAC``, ``EPIi``, ``BH3i``) to ``(level,
    start_h)`` (on to the end) or ``(level, start_h, duration_h)``: that input is at ``level`` on
    ``[start_h, start_h + duration_h)`` and 0 otherwise; it must start before the protocol's end,
    ``on_days + off_days`` days. The schedule's breakpoints are the union
    of every input's change times, each row holding all inputs' levels from that time on. The
    number of breakpoints is part of the compiled program's shape: protocols with as many
    breakpoints share one compilation.
    """
    on_days, off_days = _check_protocol(on_days, off_days)
    level = _number("level", level)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"BRAFi level must be in [0, 1], got {level}")
    if interventions is None:
        interventions = {}
    if not isinstance(interventions, Mapping):
        raise TypeError(
            "interventions must be a mapping input -> (level, start_h[, duration_h]), got "
            f"{type(interventions).__name__}"
        )
    removal = end_h = math.inf  # off_days == 0: the drug stays on, the protocol never ends
    if off_days > 0:
        removal, end_h = on_days * DAY, (on_days + off_days) * DAY
    doses = {DRUG: (level, 0.0, removal)}
    doses.update({name: _check_dose(name, d, end_h) for name, d in interventions.items()})
    times = sorted({t for _, start, stop in doses.values() for t in (start, stop)} - {math.inf})
    values = {
        name: [lvl if start <= t < stop else 0.0 for t in times]
        for name, (lvl, start, stop) in doses.items()
    }
    return Schedule(times=times, values=values)


def protocol_times(on_days: float = 29.0, off_days: float = 35.0, per_day: int = 1) -> np.ndarray:
    """Output times in hours: ``per_day`` a day from 0 to ``on_days + off_days`` days.

    The removal time (``on_days``) and the end are always included, even off the grid.
    """
    on_days, off_days = _check_protocol(on_days, off_days)
    if isinstance(per_day, bool) or not isinstance(per_day, int | np.integer) or per_day < 1:
        raise ValueError(f"per_day must be a positive integer, got {per_day!r}")
    end = on_days + off_days
    steps = math.floor(end * per_day + 1e-9)
    days = np.concatenate([np.arange(steps + 1) / per_day, [on_days, end]])
    return np.unique(np.round(days * DAY, 9))


# -- observables --------------------------------------------------------------------------------
def _check_solution(sol) -> None:
    if not isinstance(sol, Solution):
        raise TypeError(f"expected a grn.Solution, got {type(sol).__name__}")
    missing = [s for s in ("S", "W1", "W2", "B") if s not in sol.species]
    if missing:
        raise ValueError(
            f"the solution has no species {missing}: is it a grn.models.melanoma() solution?"
        )


def _param(params: Mapping | None, name: str):
    """A parameter's value (``params`` overrides the model's), shaped to broadcast over
    (cells, times): a per-cell array (cells,) becomes (cells, 1)."""
    value = jnp.asarray(PARAMS[name] if params is None or name not in params else params[name])
    return value[:, None] if value.ndim == 1 else value


def _cell_weights(sol: Solution, weighted: bool):
    """(ok (cells,), w (cells, times)): weights over successful cells, summing to 1 per time."""
    ok = sol.result == 0
    if weighted:
        w = jax.nn.softmax(jnp.where(ok[:, None], sol.log_weight, -jnp.inf), axis=0)
    else:
        w = jnp.broadcast_to((ok / jnp.sum(ok))[:, None], sol.log_weight.shape)
    return ok, w.astype(sol.ys.dtype)


def _concentration(sol: Solution, name: str, params: Mapping | None, ok):
    """``n / Omega_slow`` of a slow-module species, failed cells' (NaN) entries set to 0."""
    return jnp.where(ok[:, None], sol[name], 0.0) / _param(params, "Omega_slow")


def default_sox10_threshold() -> float:
    """Half the untreated steady-state SOX10 concentration: ``X0["S"] / Omega_slow / 2``."""
    return 0.5 * X0["S"] / PARAMS["Omega_slow"]


def sox10_low_per_cell(s, threshold, soft=None):
    """Per cell: 1 where SOX10 ``s`` is below ``threshold``, else 0 (in ``s``'s dtype); with
    ``soft`` (a width in the units of ``s``) the sigmoid ``sigmoid((threshold - s) / soft)``
    instead, which has pathwise gradients. The one SOX10-low definition: `sox10_low_fraction`
    and ``fitting.sox10_low_fraction`` average it. The indicator takes NumPy or JAX arrays."""
    if soft is None:
        return (s < threshold).astype(s.dtype)
    return jax.nn.sigmoid((threshold - s) / soft)


def priming_per_cell(b, K):
    """Per cell: apoptotic priming ``b / (b + K)`` of free BIM ``b`` clipped at 0 (``K`` = KBh,
    in the units of ``b``). The one priming definition: `apoptotic_priming` and
    ``fitting.priming`` average it. NumPy or JAX arrays."""
    b = b.clip(min=0.0)
    return b / (b + K)


def sox10_low_fraction(
    sol: Solution,
    threshold: float | None = None,
    soft: float | None = None,
    params: Mapping | None = None,
    weighted: bool = False,
):
    """Fraction of cells with S below ``threshold`` per time, and its standard error.

    ``threshold`` defaults to `default_sox10_threshold` (SOX10-low: below half the untreated
    mean). ``soft`` (a width in S units) uses ``sigmoid((threshold - S) / soft)`` instead of the
    indicator, for gradients. The standard error is ``sqrt(v / n_eff)`` with ``v = sum_c w_c
    (f_c - p)^2`` (= ``p (1 - p)`` for the indicator: the binomial one). Returns ``(p, se)``,
    each of shape (times,).
    """
    _check_solution(sol)
    theta = default_sox10_threshold() if threshold is None else threshold
    if not isinstance(theta, jax.Array):
        theta = _number("threshold", theta)
        if not (math.isfinite(theta) and theta > 0):
            raise ValueError(f"threshold must be a positive finite number, got {theta}")
    if soft is not None and not isinstance(soft, jax.Array):
        soft = _number("soft", soft)
        if not (math.isfinite(soft) and soft > 0):
            raise ValueError(f"soft must be a positive finite width, got {soft}")
    ok, w = _cell_weights(sol, weighted)
    s = _concentration(sol, "S", params, ok)
    f = sox10_low_per_cell(s, theta, soft)
    p = jnp.sum(w * f, axis=0)
    v = jnp.sum(w * (f - p) ** 2, axis=0)
    n_eff = 1.0 / jnp.sum(w**2, axis=0)
    return p, jnp.sqrt(v / n_eff)


def wave_scores(sol: Solution, params: Mapping | None = None, weighted: bool = False):
    """Ensemble-mean early- and late-wave programmes ``(mean W1, mean W2)``, each (times,)."""
    _check_solution(sol)
    ok, w = _cell_weights(sol, weighted)
    return tuple(
        jnp.sum(w * _concentration(sol, name, params, ok), axis=0) for name in ("W1", "W2")
    )


def apoptotic_priming(sol: Solution, params: Mapping | None = None, weighted: bool = False):
    """Mean apoptotic priming ``B / (B + KBh)`` per time (free BIM as a concentration)."""
    _check_solution(sol)
    ok, w = _cell_weights(sol, weighted)
    b = _concentration(sol, "B", params, ok)
    return jnp.sum(w * priming_per_cell(b, _param(params, "KBh")), axis=0)


def bimodality_coefficient(values, axis: int = 0):
    """Sarle's bimodality coefficient along ``axis`` (cells): ``(G1^2 + 1) / (G2 + 3 (n-1)^2 /
    ((n-2)(n-3)))``.

    ``G1`` and ``G2`` are the bias-corrected sample skewness and excess kurtosis (as
    ``scipy.stats.skew``/``kurtosis`` with ``bias=False``; SAS's formula, Pfister et al., Front
    Psychol 2013). 5/9 is the value of a uniform distribution; above it suggests bimodality.
    NaN where the values do not vary. Needs at least 4 values.
    """
    x = jnp.asarray(values)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.zeros(()).dtype)
    n = x.shape[axis]
    if n < 4:
        raise ValueError(f"the bimodality coefficient needs at least 4 values, got {n}")
    d = x - jnp.mean(x, axis=axis, keepdims=True)
    m2, m3, m4 = (jnp.mean(d**k, axis=axis) for k in (2, 3, 4))
    safe = jnp.where(m2 > 0, m2, 1.0)
    g1 = m3 / safe**1.5
    g2 = m4 / safe**2 - 3.0
    skew = math.sqrt(n * (n - 1)) / (n - 2) * g1
    kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    bc = (skew**2 + 1.0) / (kurt + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return jnp.where(m2 > 0, bc, jnp.nan)


def melanoma_observables(
    sol: Solution,
    threshold: float | None = None,
    params: Mapping | None = None,
) -> dict[str, np.ndarray]:
    """Every observable per output time as float64 NumPy arrays (host-side summary).

    Keys: ``time_h``, ``day``, ``sox10_low_fraction``, ``sox10_low_se``, ``W1``, ``W2``,
    ``priming``, ``viable_cells`` (per starting cell, successful cells), ``S_bimodality``
    (NaN with fewer than 4 successful cells). Failed cells are left out.
    """
    _check_solution(sol)
    ok = np.asarray(sol.result) == 0
    low, se = sox10_low_fraction(sol, threshold, params=params)
    w1, w2 = wave_scores(sol, params)
    ts = np.asarray(sol.ts, np.float64)
    s_ok = np.asarray(sol["S"], np.float64)[ok]
    bc = bimodality_coefficient(s_ok) if s_ok.shape[0] >= 4 else np.full(ts.shape, np.nan)
    weights = np.exp(np.asarray(sol.log_weight, np.float64)[ok])
    viable = weights.mean(axis=0) if ok.any() else np.full(ts.shape, np.nan)
    out = {
        "time_h": ts,
        "day": ts / DAY,
        "sox10_low_fraction": low,
        "sox10_low_se": se,
        "W1": w1,
        "W2": w2,
        "priming": apoptotic_priming(sol, params),
        "viable_cells": viable,
        "S_bimodality": bc,
    }
    return {k: np.asarray(v, np.float64) for k, v in out.items()}
