"""The melanoma model's five behaviours (shared/MODEL.md), measured on a stochastic ensemble.

Simulates `grn.models._melanoma.melanoma` with the per-cell chromatin heterogeneity of the
variant (`melanoma_cell_params`: kM1_i = 0.0753 exp(0.39 z_i)) under

* ``control``: BRAFi = 0.95 on days 0-29, then 0 to day 64 (drug removal; +35 days);
* ``NFKBi`` (0.8), ``NAC`` (1), ``EPIi`` (0.8) and ``BH3i`` (1), each from day 0 on top of
  BRAFi = 0.95, days 0-29 (behaviours 4 and 5 need nothing later).

Every run starts ``--pre-days`` (14) days before the drug from the model's default ``x0`` with all
inputs 0, so each cell relaxes to the untreated state of its own kM1 before day 0 (``ts`` starts
at -14 days; schedules set the inputs from t = 0). All conditions share the cells' kM1 draws and
the PRNG key (common random numbers, which sharpens the comparisons between conditions; the
standard errors quoted are nevertheless the independent-sample ones). "SOX10-low" means S below
half the mean S of the control ensemble at day 0.

Measured, with MODEL.md's thresholds:

1. W1 peak day (of the ensemble mean, days 0-29) in [1, 5] and W1(d29)/peak < 0.5; W2's maximum
   (days 0-29) later than W1's peak and W2(d29)/max >= 0.8.
2. SOX10-low fraction > 0.8 at day 29 and < 0.2 at day 64 (+35 d); mean W1 at the W2 level equal
   to half W2(d29), on the way out (first crossing on drug) and back (first crossing after
   removal), linear interpolation between output times: back < out.
3. Sarle's bimodality coefficient of S across cells, days 1-10: > 5/9 on at least one day.
4. Mean priming B/(B+20): day 10 < 0.5 x day 1 under BRAFi; with BH3i day 10 >= 0.8 x day 1 of
   BRAFi alone (BH3i's own day 1 is reported too), and its day-29 SOX10-low fraction within two
   standard errors of BRAFi alone.
5. Day-29 SOX10-low fraction under NFKBi, NAC and EPIi each below the control's; NFKBi's and NAC's
   below half of it.

The default solver is ``grn.CLE(dt=0.01)`` (Euler-Maruyama; dt = 0.005 gives the same untreated
means within a standard error), since an exact or tau-leaping run costs ~2,300 reactions per
cell-hour at this model's copy numbers (``--solver tau`` runs ``grn.TauLeap(epsilon=0.03)``,
which mostly takes exact steps here: ~1.4e6 reactions/s on the 2-core CPU).

Usage (from the repository root)::

    python benchmarks/melanoma_behaviours.py                 # 256 cells, CLE, writes the JSON
    python benchmarks/melanoma_behaviours.py --cells 32 --solver tau --control-only --no-json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grn  # noqa: E402
from grn.models._melanoma import melanoma, melanoma_cell_params  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info  # noqa: E402

DAY = 24.0
DRUG = 0.95
ON_DAYS, OFF_DAYS = 29, 35
INTERVENTIONS = {"NFKBi": 0.8, "NAC": 1.0, "EPIi": 0.8, "BH3i": 1.0}
RESULTS_PATH = Path(__file__).parent / "results" / "melanoma_behaviours.json"


def sarle_bc(samples: np.ndarray) -> float:
    """Sarle's bimodality coefficient ``(g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3)))``.

    ``g`` and ``k`` are the bias-corrected sample skewness and excess kurtosis (G1, G2); 5/9 is
    the value of a uniform distribution, above it suggests bimodality.
    """
    x = np.asarray(samples, np.float64)
    n = x.size
    d = x - x.mean()
    m2, m3, m4 = (np.mean(d**k) for k in (2, 3, 4))
    if m2 <= 0:
        return float("nan")
    g1 = m3 / m2**1.5
    g2 = m4 / m2**2 - 3.0
    skew = np.sqrt(n * (n - 1)) / (n - 2) * g1
    kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    return float((skew**2 + 1.0) / (kurt + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def first_crossing(t: np.ndarray, y: np.ndarray, level: float, rising: bool):
    """First time ``y`` crosses ``level`` (upwards or downwards), by linear interpolation."""
    above = y >= level if rising else y <= level
    if above[0]:
        return float(t[0])
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return None
    i = int(idx[0])
    frac = (level - y[i - 1]) / (y[i] - y[i - 1])
    return float(t[i - 1] + frac * (t[i] - t[i - 1]))


def simulate(net, solver, key, cell_params, pre_days, levels, off: bool):
    """One condition: inputs at ``levels`` from day 0 (BRAFi off at day 29 if ``off``)."""
    end = (ON_DAYS + OFF_DAYS) if off else ON_DAYS
    ts = np.arange(-pre_days * DAY, end * DAY + 1e-9, DAY / 2)
    times = [0.0, ON_DAYS * DAY] if off else [0.0]
    values = {name: [level, 0.0] if off else [level] for name, level in levels.items()}
    schedule = grn.Schedule(times=times, values=values)
    t0 = time.perf_counter()
    sol = grn.simulate(
        net, ts, key=key, solver=solver, params=cell_params, schedule=schedule, n_cells=None
    )
    jax.block_until_ready(sol.ys)
    wall = time.perf_counter() - t0
    return ts / DAY, sol, wall


def at_day(days, values, day):
    return values[..., int(np.argmin(np.abs(days - day)))]


def measure(args) -> dict:
    net = melanoma()
    if args.solver == "cle":
        solver = grn.CLE(dt=args.dt)
        solver_name = f"CLE(dt={args.dt})"
    else:
        solver = grn.TauLeap(epsilon=0.03)
        solver_name = "TauLeap(epsilon=0.03)"
    key_cells, key_sim = jax.random.split(jax.random.key(args.seed))
    cell_params = melanoma_cell_params(key_cells, args.cells)
    n = args.cells
    runs, walls = {}, {}
    conditions = {"control": {"BRAFi": DRUG}}
    conditions.update({k: {"BRAFi": DRUG, k: v} for k, v in INTERVENTIONS.items()})
    if args.control_only:
        conditions = {"control": conditions["control"]}
    for name, levels in conditions.items():
        days, sol, wall = simulate(
            net, solver, key_sim, cell_params, args.pre_days, levels, off=name == "control"
        )
        runs[name] = (days, sol)
        walls[name] = round(wall, 2)
        print(f"{name:8s} {wall:7.1f} s  ({n} cells, {days[-1] - days[0]:.0f} days)", flush=True)

    days, ctl = runs["control"]
    y = {s: np.asarray(ctl[s]) for s in ctl.species}
    s_day0 = float(at_day(days, y["S"], 0.0).mean())
    threshold = 0.5 * s_day0

    def low_fraction(name, d):
        run_days, sol = runs[name]
        return float(np.mean(at_day(run_days, np.asarray(sol["S"]), d) < threshold))

    def se(p):
        return float(np.sqrt(p * (1.0 - p) / n))

    mean = {s: v.mean(axis=0) for s, v in y.items()}
    on = (days >= 0) & (days <= ON_DAYS + 1e-9)
    off = days >= ON_DAYS - 1e-9

    # 1. two sequential waves
    w1_on, w2_on, d_on = mean["W1"][on], mean["W2"][on], days[on]
    w1_peak_day = float(d_on[np.argmax(w1_on)])
    w1_ratio = float(w1_on[-1] / w1_on.max())
    w2_max_day = float(d_on[np.argmax(w2_on)])
    w2_ratio = float(w2_on[-1] / w2_on.max())
    b1 = {
        "W1_peak_day": w1_peak_day,
        "W1_d29_over_peak": w1_ratio,
        "W1_day0": float(at_day(days, mean["W1"], 0.0)),
        "W1_peak": float(w1_on.max()),
        "W2_max_day": w2_max_day,
        "W2_d29_over_max": w2_ratio,
        "W2_day0": float(at_day(days, mean["W2"], 0.0)),
        "W2_max": float(w2_on.max()),
        "pass": bool(
            1.0 <= w1_peak_day <= 5.0
            and w1_ratio < 0.5
            and w2_max_day > w1_peak_day
            and w2_ratio >= 0.8
        ),
    }

    # 2. reversible tolerance with memory
    low29 = low_fraction("control", ON_DAYS)
    low64 = low_fraction("control", ON_DAYS + OFF_DAYS)
    half = 0.5 * float(at_day(days, mean["W2"], ON_DAYS))
    t_out = first_crossing(d_on, w2_on, half, rising=True)
    t_back = first_crossing(days[off], mean["W2"][off], half, rising=False)
    w1_out = None if t_out is None else float(np.interp(t_out, days, mean["W1"]))
    w1_back = None if t_back is None else float(np.interp(t_back, days, mean["W1"]))
    b2 = {
        "S_untreated_mean": s_day0,
        "sox10_low_threshold": threshold,
        "sox10_low_d29": low29,
        "sox10_low_d29_se": se(low29),
        "sox10_low_d64": low64,
        "sox10_low_d64_se": se(low64),
        "W2_half_d29": half,
        "day_out": t_out,
        "day_back": t_back,
        "W1_out": w1_out,
        "W1_back": w1_back,
        "pass": bool(
            low29 > 0.8
            and low64 < 0.2
            and w1_out is not None
            and w1_back is not None
            and w1_back < w1_out
        ),
    }

    # 3. stochastic escape: bimodal S on some day 1-10
    bc = {d: sarle_bc(at_day(days, y["S"], d)) for d in range(1, 11)}
    b3 = {
        "bimodality_by_day": {str(d): v for d, v in bc.items()},
        "max": max(bc.values()),
        "max_day": max(bc, key=bc.get),
        "threshold": 5.0 / 9.0,
        "pass": bool(max(bc.values()) > 5.0 / 9.0),
    }

    # 4. apoptotic priming and BH3 mimetics
    def priming(name, d):
        run_days, sol = runs[name]
        b = at_day(run_days, np.asarray(sol["B"]), d)
        return float(np.mean(b / (b + 20.0)))

    p1, p10 = priming("control", 1), priming("control", 10)
    b4 = {"priming_d1": p1, "priming_d10": p10, "priming_d10_over_d1": p10 / p1}
    if "BH3i" in runs:
        q1, q10 = priming("BH3i", 1), priming("BH3i", 10)
        low29_bh3 = low_fraction("BH3i", ON_DAYS)
        se_diff = float(np.sqrt(se(low29) ** 2 + se(low29_bh3) ** 2))
        b4.update(
            BH3i_priming_d1=q1,
            BH3i_priming_d10=q10,
            BH3i_d10_over_control_d1=q10 / p1,
            BH3i_sox10_low_d29=low29_bh3,
            sox10_low_difference_se=se_diff,
        )
        ok = q10 >= 0.8 * p1 and abs(low29_bh3 - low29) <= 2 * se_diff
        b4["pass"] = bool(p10 < 0.5 * p1 and ok)
    else:
        b4["pass"] = None  # not run (--control-only)

    # 5. interventions at day 0
    b5 = {"control_sox10_low_d29": low29}
    if "NFKBi" in runs:
        inter = {k: low_fraction(k, ON_DAYS) for k in ("NFKBi", "NAC", "EPIi")}
        passed = (
            all(v < low29 for v in inter.values())
            and inter["NFKBi"] < 0.5 * low29
            and inter["NAC"] < 0.5 * low29
        )
        b5.update(
            {
                "sox10_low_d29": inter,
                "sox10_low_d29_se": {k: se(v) for k, v in inter.items()},
                "pass": bool(passed),
            }
        )
    else:
        b5["pass"] = None  # not run (--control-only)

    viable = {}
    for name, (run_days, sol) in runs.items():
        cells = np.asarray(sol.viable_cells())
        viable[name] = float(at_day(run_days, cells, ON_DAYS) / at_day(run_days, cells, 0.0))
    trajectory = {
        "days": days[::2].tolist(),
        **{
            f"mean_{s}": mean[s][::2].round(3).tolist()
            for s in ("E", "R", "Nn", "W1", "M", "S", "W2", "B")
        },
        "sox10_low": [float(v) for v in (y["S"][:, ::2] < threshold).mean(axis=0)],
    }
    return {
        "model": "grn.models._melanoma.melanoma (MODEL.md second-pass variant, uncalibrated)",
        "solver": solver_name,
        "cells": n,
        "seed": args.seed,
        "pre_equilibration_days": args.pre_days,
        "protocol": (
            f"BRAFi {DRUG} days 0-{ON_DAYS}, 0 to day {ON_DAYS + OFF_DAYS}; interventions "
            f"{INTERVENTIONS} from day 0 on top of BRAFi, to day {ON_DAYS}"
        ),
        "behaviours": {
            "1_two_waves": b1,
            "2_reversible_memory": b2,
            "3_bimodality": b3,
            "4_priming": b4,
            "5_interventions": b5,
        },
        "all_pass": None
        if args.control_only
        else bool(all(b["pass"] for b in (b1, b2, b3, b4, b5))),
        "viable_d29_over_d0": viable,
        "control_trajectory_daily": trajectory,
        "wall_s": walls,
        "wall_s_total": round(sum(walls.values()), 2),
        "machine": machine_info(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=256)
    parser.add_argument("--solver", choices=("cle", "tau"), default="cle")
    parser.add_argument("--dt", type=float, default=0.01, help="CLE step (hours)")
    parser.add_argument("--pre-days", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--control-only", action="store_true", help="only the BRAFi protocol (behaviours 1-3)"
    )
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    out = measure(args)
    print(json.dumps({k: out[k] for k in ("solver", "cells", "behaviours", "all_pass")}, indent=1))
    print(f"wall time {out['wall_s_total']} s (compile included) on {out['machine']['platform']}")
    if not args.no_json:
        RESULTS_PATH.parent.mkdir(exist_ok=True)
        RESULTS_PATH.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {RESULTS_PATH}")


if __name__ == "__main__":
    main()
