"""The five behaviours of ``shared/MODEL.md`` and the reference fit, measured on an ensemble.

`run_protocols` simulates the standard protocols of the built-in melanoma model, each as the
plain call (the network's own per-cell kM1 spread and untreated pre-equilibration, one key for
every condition); `assess` turns them into the numbers MODEL.md names, each with a Monte-Carlo
standard error, and a pass/fail per behaviour:

1. Two sequential waves: mean W1 peaks on day 1-5 and is below half its peak at day 29; mean
   W2's maximum comes later and W2(d29) >= 0.8 x its maximum.
2. Reversible tolerance with memory: SOX10-low fraction > 0.8 at day 29 and < 0.2 at 35 days after
   removal; at the W2 level equal to half W2(d29), mean W1 is lower on the way back than out.
3. Stochastic escape: Sarle's bimodality coefficient of S across cells > 5/9 on some day 1-10.
4. Priming B/(B+20): day 10 < 0.5 x day 1 on BRAFi; with BH3i = 1, day 10 >= 0.8 x day 1 of
   BRAFi alone and the day-29 SOX10-low fraction within two standard errors of BRAFi alone.
5. NFKBi = 0.8, NAC = 1, EPIi = 0.8 from day 0 each lower the day-29 SOX10-low fraction; NFKBi
   and NAC by more than half.

Reference fit: R² of the mean wave scores against Su et al.'s two-wave kinetics on the scoring
days (`grn.models._two_wave.wave_score_fit`), >= 0.9 for each score in each phase.

pERK (MODEL.md's time scales): mean E falls >= 90 % within ~1 h of BRAFi; reported with E at 24
and 48 h and at day 29 of the control run (the partial rebound as the AXL-like W2 rises).

"SOX10-low" is S below half the untreated ensemble's mean S (day 0 of the control run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import jax
import numpy as np

from ._melanoma import PARAMS
from ._melanoma_protocols import bimodality_coefficient, priming_per_cell, sox10_low_per_cell
from ._two_wave import PHASES, SCORING_DAYS, wave_score_fit

DAY = 24.0
DRUG = 0.95
ON_DAYS, OFF_DAYS = 29, 35
INTERVENTIONS = {"NFKBi": 0.8, "NAC": 1.0, "EPIi": 0.8, "BH3i": 1.0}
"""Behaviour-5 (and 4) levels, each from day 0 on top of BRAFi."""


PERK_HOURS = (0.0, 1.0, 24.0, 48.0)
"""Output times (h) of the pERK run: untreated, ~1 h on BRAFi (MODEL.md: falls >= 90 %), and the
partial rebound by 24-48 h."""


def run_protocols(
    solver,
    key,
    n_cells: int,
    pre_days: float | None = None,
    interventions: Mapping[str, float] = INTERVENTIONS,
    per_day: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Simulate the control protocol, each intervention and the pERK run for the same cells.

    ``control`` is the plain call ``grn.simulate(melanoma(), ts, key=key, solver=solver,
    n_cells=n_cells, schedule=...)``: the network's own per-cell kM1 draws and untreated
    pre-equilibration (``equilibrate_h``; ``pre_days`` overrides it), then BRAFi 0.95 days 0-29
    and 0 to day 64, outputs ``per_day`` a day. The other conditions are the same plain call
    with the control's state at t = 0 as ``x0`` (so no second pre-run; with integer counts, not
    the CLE's): the same key draws the same kM1 and gives the same cell keys, so each is what its
    own plain call would give for these cells (common random numbers), at a fraction of the
    cost. Each intervention runs from
    day 0 on top of BRAFi, to day 29; ``pERK``: BRAFi from 0 with outputs at `PERK_HOURS`.
    Returns ``{"days": {name: array}, "solutions": {name: Solution}, "perk": Solution,
    "wall_s": {...}, "events": {...}}``.
    """
    import grn

    from ._melanoma import melanoma

    net = melanoma()
    extra = {} if pre_days is None else {"equilibrate": pre_days * DAY}
    out = {"days": {}, "solutions": {}, "wall_s": {}, "events": {}}

    def run(name, ts, schedule, **start):
        started = time.perf_counter()
        sol = grn.simulate(
            net, ts, key=key, solver=solver, n_cells=n_cells, schedule=schedule, **start
        )
        jax.block_until_ready(sol.ys)
        out["wall_s"][name] = round(time.perf_counter() - started, 2)
        out["events"][name] = float(np.sum(np.asarray(sol.n_events, np.float64)))
        if progress is not None:
            progress(f"{name}: {n_cells} cells, {ts[-1] / DAY:.0f} days, {out['wall_s'][name]} s")
        return sol

    x0 = None  # set by the control run (first)
    conditions = {"control": {"BRAFi": DRUG}}
    conditions.update({k: {"BRAFi": DRUG, k: v} for k, v in interventions.items()})
    for name, levels in conditions.items():
        off = name == "control"
        end = ON_DAYS + OFF_DAYS if off else ON_DAYS
        ts = np.arange(0.0, end * DAY + 1e-9, DAY / per_day)
        values = {u: [v, 0.0] if off else [v] for u, v in levels.items()}
        schedule = grn.Schedule(times=[0.0, ON_DAYS * DAY] if off else [0.0], values=values)
        start = extra if x0 is None else {"x0": x0}
        out["solutions"][name] = sol = run(name, ts, schedule, **start)
        out["days"][name] = ts / DAY
        counts = np.asarray(sol.ys[:, 0, :])
        if off and np.all(counts == np.round(counts)):  # the control's cells at t = 0 (not CLE's)
            x0 = {s: sol[s][:, 0] for s in sol.species}
    perk = grn.Schedule(times=[0.0], values={"BRAFi": [DRUG]})
    start = extra if x0 is None else {"x0": x0}
    out["perk"] = run("pERK", np.asarray(PERK_HOURS), perk, **start)
    return out


def _at(days, values, day):
    return values[..., int(np.argmin(np.abs(days - day)))]


def _first_crossing(t, y, level, rising):
    """First time ``y`` crosses ``level`` (linear interpolation), or None."""
    above = y >= level if rising else y <= level
    if above[0]:
        return float(t[0])
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return None
    i = int(idx[0])
    frac = (level - y[i - 1]) / (y[i] - y[i - 1])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


def _ratio_se(a, b, se_a, se_b):
    """Delta-method standard error of a / b for independent-ish a, b (conservative)."""
    return abs(a / b) * np.sqrt((se_a / a) ** 2 + (se_b / b) ** 2)


def _ratio(a, b):
    """mean(a) / mean(b) over paired cells and its delta-method standard error."""
    r = a.mean() / b.mean()
    resid = (a - r * b) / b.mean()  # linearisation of mean(a) / mean(b)
    return float(r), float(resid.std(ddof=1) / np.sqrt(a.shape[0]))


def _perk(sol, control_days, control) -> dict:
    """pERK (E) on BRAFi relative to the untreated state (the same cells at t = 0): the drop at
    ~1 h (MODEL.md: >= 90 %), the level at 24 and 48 h and at day 29 of the control run."""
    e = np.asarray(sol["E"], np.float64)
    (r1, se1), (r24, se24), (r48, se48) = (_ratio(e[:, k], e[:, 0]) for k in (1, 2, 3))
    c = np.asarray(control["E"], np.float64)
    r29, se29 = _ratio(_at(control_days, c, ON_DAYS), c[:, 0])
    return {
        "hours": list(PERK_HOURS),
        "E_untreated": float(e[:, 0].mean()),
        "drop_1h": 1.0 - r1,
        "drop_1h_se": se1,
        "E_24h_over_untreated": r24,
        "E_24h_se": se24,
        "E_48h_over_untreated": r48,
        "E_48h_se": se48,
        "E_d29_over_untreated": r29,
        "E_d29_se": se29,
        "pass": bool(1.0 - r1 >= 0.9),
    }


def assess(runs: Mapping) -> dict:
    """MODEL.md's behaviours and the reference fit from `run_protocols`' output (see module)."""
    days = runs["days"]["control"]
    ctl = runs["solutions"]["control"]
    y = {s: np.asarray(ctl[s], np.float64) for s in ctl.species}
    n = y["S"].shape[0]
    mean = {s: v.mean(axis=0) for s, v in y.items()}
    sem = {s: v.std(axis=0, ddof=1) / np.sqrt(n) for s, v in y.items()}
    threshold = 0.5 * float(_at(days, mean["S"], 0.0))

    def low(name, day):
        sol = runs["solutions"][name]
        s = _at(runs["days"][name], np.asarray(sol["S"]), day)
        p = float(np.mean(sox10_low_per_cell(s, threshold), dtype=np.float64))
        return p, float(np.sqrt(max(p * (1 - p), 1.0 / n) / n))  # floor: one cell's worth

    on = days <= ON_DAYS + 1e-9
    d_on = days[on]

    # 1. two sequential waves
    w1, w2 = mean["W1"][on], mean["W2"][on]
    i1, i2 = int(np.argmax(w1)), int(np.argmax(w2))
    r1 = w1[-1] / w1[i1]
    r2 = w2[-1] / w2[i2]
    b1 = {
        "W1_peak_day": float(d_on[i1]),
        "W1_d29_over_peak": float(r1),
        "W1_d29_over_peak_se": float(
            _ratio_se(w1[-1], w1[i1], sem["W1"][on][-1], sem["W1"][on][i1])
        ),
        "W2_max_day": float(d_on[i2]),
        "W2_d29_over_max": float(r2),
        "W2_d29_over_max_se": float(
            _ratio_se(w2[-1], w2[i2], sem["W2"][on][-1], sem["W2"][on][i2])
        ),
    }
    b1["pass"] = bool(1 <= b1["W1_peak_day"] <= 5 and r1 < 0.5 and i2 > i1 and r2 >= 0.8)

    # 2. reversible tolerance with memory
    low29, low29_se = low("control", ON_DAYS)
    low64, low64_se = low("control", ON_DAYS + OFF_DAYS)
    half = 0.5 * float(_at(days, mean["W2"], ON_DAYS))
    off = days >= ON_DAYS - 1e-9
    t_out = _first_crossing(d_on, w2, half, rising=True)
    t_back = _first_crossing(days[off], mean["W2"][off], half, rising=False)
    w1_out = None if t_out is None else float(np.interp(t_out, days, mean["W1"]))
    w1_back = None if t_back is None else float(np.interp(t_back, days, mean["W1"]))
    b2 = {
        "sox10_threshold": threshold,
        "sox10_low_d29": low29,
        "sox10_low_d29_se": low29_se,
        "sox10_low_d64": low64,
        "sox10_low_d64_se": low64_se,
        "W2_half_d29": half,
        "day_out": t_out,
        "day_back": t_back,
        "W1_out": w1_out,
        "W1_back": w1_back,
        "W1_se": float(sem["W1"].max()),
    }
    b2["pass"] = bool(
        low29 > 0.8
        and low64 < 0.2
        and w1_out is not None
        and w1_back is not None
        and w1_back < w1_out
    )

    # 3. stochastic escape
    bc = {d: float(bimodality_coefficient(_at(days, y["S"], d))) for d in range(1, 11)}
    best = max(bc, key=bc.__getitem__)
    rng = np.random.default_rng(0)
    s_best = _at(days, y["S"], best)
    boot = [bimodality_coefficient(s_best[rng.integers(0, n, n)]) for _ in range(200)]
    b3 = {
        "bimodality_by_day": {str(d): v for d, v in bc.items()},
        "max": bc[best],
        "max_day": best,
        "max_se_bootstrap": float(np.std(boot, ddof=1)),
        "day0_untreated": float(bimodality_coefficient(_at(days, y["S"], 0.0))),
        "threshold": 5 / 9,
        "pass": bool(bc[best] > 5 / 9),
    }

    # 4. apoptotic priming
    def priming(name, day):
        b = _at(runs["days"][name], np.asarray(runs["solutions"][name]["B"], np.float64), day)
        v = priming_per_cell(b, PARAMS["KBh"])
        return float(v.mean()), float(v.std(ddof=1) / np.sqrt(n))

    (p1, p1_se), (p10, p10_se) = priming("control", 1), priming("control", 10)
    b4 = {"priming_d1": p1, "priming_d1_se": p1_se, "priming_d10": p10, "priming_d10_se": p10_se}
    b4["pass"] = bool(p10 < 0.5 * p1)
    if "BH3i" in runs["solutions"]:
        (q10, q10_se), (bh29, bh29_se) = priming("BH3i", 10), low("BH3i", ON_DAYS)
        diff_se = float(np.hypot(low29_se, bh29_se))
        b4.update(
            BH3i_priming_d10=q10,
            BH3i_priming_d10_se=q10_se,
            BH3i_sox10_low_d29=bh29,
            sox10_low_difference_se=diff_se,
        )
        b4["pass"] = bool(b4["pass"] and q10 >= 0.8 * p1 and abs(bh29 - low29) <= 2 * diff_se)

    # 5. interventions at day 0
    b5 = {"control_sox10_low_d29": low29, "sox10_low_d29": {}, "sox10_low_d29_se": {}}
    for name in ("NFKBi", "NAC", "EPIi"):
        if name in runs["solutions"]:
            b5["sox10_low_d29"][name], b5["sox10_low_d29_se"][name] = low(name, ON_DAYS)
    got = b5["sox10_low_d29"]
    b5["pass"] = bool(
        len(got) == 3
        and all(v < low29 for v in got.values())
        and got["NFKBi"] < 0.5 * low29
        and got["NAC"] < 0.5 * low29
    )

    # reference two-wave kinetics
    def scores(start, phase):
        return np.stack(
            [[_at(days, mean[w], start + d) for w in ("W1", "W2")] for d in SCORING_DAYS[phase]]
        )

    reference = wave_score_fit(scores(0.0, "on_drug"), scores(ON_DAYS, "drug_removed"))
    reference["pass"] = bool(all(v[f"r2_{ph}"] >= 0.9 for v in reference.values() for ph in PHASES))

    viable = {
        name: float(_at(runs["days"][name], np.asarray(sol.viable_cells()), ON_DAYS))
        for name, sol in runs["solutions"].items()
    }
    perk = _perk(runs["perk"], days, ctl) if "perk" in runs else None

    behaviours = {
        "1_two_waves": b1,
        "2_reversible_memory": b2,
        "3_bimodality": b3,
        "4_priming": b4,
        "5_interventions": b5,
    }
    return {
        "cells": n,
        "behaviours": behaviours,
        "reference_fit": reference,
        "perk": perk,
        "all_pass": bool(
            all(b["pass"] for b in behaviours.values())
            and reference["pass"]
            and (perk is None or perk["pass"])
        ),
        "viable_d29_over_d0": viable,
        "control_daily": {
            "days": days[:: max(1, int(round(1 / (days[1] - days[0]))))].tolist(),
            **{
                f"mean_{s}": mean[s][:: max(1, int(round(1 / (days[1] - days[0]))))]
                .round(3)
                .tolist()
                for s in ("E", "R", "Nn", "W1", "M", "S", "W2", "B")
            },
        },
    }
