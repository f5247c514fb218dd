"""Wall time of the melanoma 64-day control protocol: exact SSA against `grn.Hybrid`, one run.

The same plain call as `melanoma_behaviours.py`'s control (20 untreated days, BRAFi 0.95 for 29
days, removal to day 64, outputs every 12 h, compilation included), for each solver in turn, in
the same process and so under the same machine load; ``--repeats`` alternates them. Writes
``results/melanoma_hybrid_speed_<cells>.json``.

Usage (from the repository root)::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python benchmarks/melanoma_hybrid_speed.py --cells 64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grn  # noqa: E402
from grn.models._melanoma_behaviours import DAY, DRUG, OFF_DAYS, ON_DAYS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info  # noqa: E402
from melanoma_behaviours import HYBRID_FAST  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def control(solver, cells: int, seed: int) -> tuple[float, float]:
    """(wall s, mean steps or events per cell) of the control protocol's plain call."""
    ts = np.arange(0.0, (ON_DAYS + OFF_DAYS) * DAY + 1e-9, DAY / 2)
    schedule = grn.Schedule(times=[0.0, ON_DAYS * DAY], values={"BRAFi": [DRUG, 0.0]})
    started = time.perf_counter()
    sol = grn.simulate(
        grn.models.melanoma(), ts, key=jax.random.key(seed), solver=solver, n_cells=cells,
        schedule=schedule,
    )  # fmt: skip
    jax.block_until_ready(sol.ys)
    return time.perf_counter() - started, float(np.mean(np.asarray(sol.n_events, np.float64)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--dt", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    solvers = {
        "hybrid": grn.Hybrid(dt=args.dt, fast=HYBRID_FAST, max_steps=10**9),
        "ssa": grn.SSA(max_events=10**9),
    }
    out = {"cells": args.cells, "dt": args.dt, "wall_s": {k: [] for k in solvers}, "jumps": {}}
    out["machine"] = machine_info()
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    for _ in range(args.repeats):
        for name, solver in solvers.items():
            wall, events = control(solver, args.cells, args.seed)
            out["wall_s"][name].append(round(wall, 2))
            out["jumps"][name] = events
            print(f"{name}: {wall:.1f} s, {events:.0f} events (SSA) or slow jumps per cell")
    out["speedup"] = float(np.median(out["wall_s"]["ssa"]) / np.median(out["wall_s"]["hybrid"]))
    out["loadavg_at_end"] = list(os.getloadavg())
    print(json.dumps({k: out[k] for k in ("wall_s", "speedup")}))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"melanoma_hybrid_speed_{args.cells}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
