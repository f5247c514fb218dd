"""The melanoma model's five behaviours (shared/MODEL.md) and its fit to the reference kinetics.

Runs `grn.models._melanoma_behaviours.run_protocols` (every condition the plain call
``grn.simulate(grn.models.melanoma(), ts, key=key, solver=..., n_cells=..., schedule=...)``, so
with the network's own per-cell kM1 distribution and 20-day untreated pre-equilibration: BRAFi
0.95 for 29 days and removal to day 64, NFKBi 0.8, NAC 1, EPIi 0.8 and BH3i 1 from day 0 on top of
BRAFi, and pERK over the first 48 h on BRAFi) and `assess` (each behaviour with its Monte-Carlo
standard error; the wave-score R² against Su et al.'s two-wave kinetics; the pERK drop), and
writes
``results/melanoma_behaviours_<solver>_<cells>.json``. The exact SSA is the reference; its wall
time for the 64-day control protocol is the cost target of issue 5 (256 cells within 5 minutes on 2
cores).

Usage (from the repository root)::

    python benchmarks/melanoma_behaviours.py --solver ssa --cells 256     # exact confirmation
    python benchmarks/melanoma_behaviours.py --solver tau --cells 256
    python benchmarks/melanoma_behaviours.py --solver cle --cells 64 --no-json
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python benchmarks/melanoma_behaviours.py --solver hybrid --cells 256 --dt 0.01

``--solver hybrid`` is `grn.Hybrid` with the partition `HYBRID_FAST` (below) and ``--dt`` (0.01 h
by default: the fastest per-copy rate among its fast reactions, RelA export at about 24/h, then
moves a species by at most ~25 % of itself per Euler step, and the step count, 100/h, stays below
the slow jumps' ~250/h). Non-integer counts at t = 0 make each intervention its own plain call
(with its own 20 untreated days) instead of starting from the control's cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grn  # noqa: E402
from grn.models._melanoma_behaviours import assess, run_protocols  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info  # noqa: E402

RESULTS = Path(__file__).parent / "results"
HYBRID_SLOW = {
    "erk_activation", "erk_deactivation",  # E: 20 copies in all, ~0.5 on BRAFi
    "early_wave", "early_wave_decay", "chromatin_remodelling", "chromatin_restoration",
    "late_wave", "late_wave_decay",  # < 3 firings/h: nothing to gain, the switch stays exact
    "bim_synthesis", "bim_decay", "bim_sequestration", "bim_release",  # B: ~7 copies
}  # fmt: skip
HYBRID_FAST = tuple(r.name for r in grn.models.melanoma().reactions if r.name not in HYBRID_SLOW)
"""The melanoma partition for `grn.Hybrid`: fast (CLE) are the ROS and NF-kB modules, SOX10 and
the anti-apoptotic pool and complex turnover; slow (exact) the reactions that change a species
held at a few copies (E, B; a 72-h check with them fast put mean E and C 3-4 SE off the SSA at
128 cells) and the rare wave and chromatin reactions."""
SOLVERS = {
    "ssa": (lambda a: grn.SSA(max_events=10**9), "SSA (exact)"),
    "tau": (lambda a: grn.TauLeap(epsilon=0.03), "TauLeap(epsilon=0.03)"),
    "cle": (lambda a: grn.CLE(dt=a.dt), "CLE(dt={dt})"),
    "hybrid": (
        lambda a: grn.Hybrid(dt=a.dt, fast=HYBRID_FAST, max_steps=10**9),
        "Hybrid(dt={dt}, fast=HYBRID_FAST)",
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=256)
    parser.add_argument("--solver", choices=tuple(SOLVERS), default="ssa")
    parser.add_argument("--dt", type=float, default=0.01, help="CLE and Hybrid step (hours)")
    parser.add_argument(
        "--pre-days", type=float, default=None, help="override the network's pre-equilibration"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    make, label = SOLVERS[args.solver]
    runs = run_protocols(
        make(args), jax.random.key(args.seed), args.cells, pre_days=args.pre_days, progress=print
    )
    out = {
        "model": "grn.models.melanoma (calibrated defaults)",
        "solver": label.format(dt=args.dt),
        "seed": args.seed,
        "pre_equilibration_days": (
            grn.models.melanoma().equilibrate_h / 24.0 if args.pre_days is None else args.pre_days
        ),
        **assess(runs),
        "wall_s": runs["wall_s"],
        "events": runs["events"],
        "control_cell_days_per_s": args.cells * 64 / runs["wall_s"]["control"],
        "machine": machine_info(),
    }
    keys = ("solver", "cells", "behaviours", "reference_fit", "perk", "all_pass", "wall_s")
    print(json.dumps({k: out[k] for k in keys}, indent=1))
    if not args.no_json:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"melanoma_behaviours_{args.solver}_{args.cells}.json"
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
