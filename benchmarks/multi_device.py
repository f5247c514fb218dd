"""Multi-device scaling: the cell axis sharded over 1 and 2 host devices of a multi-core CPU.

`grn.simulate` shards cells over ``jax.local_device_count()`` devices (``shard_map`` over a
``cells`` mesh axis, no collectives). On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count
=N`` makes N host devices, each running its own share of the cells, so both cores of a 2-core
machine work on one ensemble. Each device count runs in a fresh subprocess; times exclude
compilation (a second call with a new key). Workloads:

* ``ssa``: exact SSA, toggle switch, 10^4 cells, 0-20 time units, 21 output times (events/s);
* ``cle``: CLE(dt=0.01), melanoma, 2,000 cells, BRAFi 0.95, 24 h, 25 output times, streamed
  (``reduce="moments"``, cell-hours/s).

Results: results/multi_device.json with the speed-up of N devices over 1 (ideal: N, where the
machine has N idle cores; the load average is recorded, since other processes take cores).

Usage (from the repository root)::

    python benchmarks/multi_device.py
    python benchmarks/multi_device.py --devices 1 2 4 --ssa-cells 2000 --no-json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def worker(kind: str, cells: int) -> dict:
    import jax
    import jax.numpy as jnp

    import grn
    from grn.models._melanoma import melanoma_cell_params

    if kind == "ssa":
        net, ts = grn.models.toggle_switch(), jnp.linspace(0.0, 20.0, 21)
        kwargs = dict(solver=grn.SSA())
    else:
        net, ts = grn.models.melanoma(), jnp.linspace(0.0, 24.0, 25)
        kwargs = dict(
            solver=grn.CLE(dt=0.01),
            params=melanoma_cell_params(jax.random.key(2), cells),
            schedule=grn.Schedule([0.0], {"BRAFi": [0.95]}),
            reduce="moments",
        )

    def run(key):
        return jax.block_until_ready(grn.simulate(net, ts, key, n_cells=cells, **kwargs))

    start = time.perf_counter()
    run(jax.random.key(0))
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = run(jax.random.key(1))
    seconds = time.perf_counter() - start
    events = float(jnp.sum(out.n_events))
    row = {
        "workload": kind,
        "devices": jax.local_device_count(),
        "cells": cells,
        "first_s": round(first, 3),
        "run_s": round(seconds, 3),
    }
    if kind == "ssa":
        row["events_per_s"] = events / seconds
    else:
        row["cell_hours_per_s"] = cells * float(ts[-1] - ts[0]) / seconds
    return row


def measure(kind: str, cells: int, devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    cmd = [sys.executable, __file__, "--worker", kind, str(cells)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=env)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{kind:>4} {row['devices']} device(s) {cells:>7} cells  {row['run_s']:8.2f} s", flush=True
    )
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ssa-cells", type=int, default=10_000)
    parser.add_argument("--cle-cells", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "multi_device.json")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return

    from _machine import loadavg, machine_info

    machine = machine_info()
    rows = []
    for kind, cells in (("ssa", args.ssa_cells), ("cle", args.cle_cells)):
        base = None
        for n in args.devices:
            row = measure(kind, cells, n)
            if row["devices"] == 1:
                base = row["run_s"]
            row["speedup_vs_1"] = None if base is None else round(base / row["run_s"], 2)
            rows.append(row)
    doc = {
        "benchmark": "cells sharded over host devices (--xla_force_host_platform_device_count)",
        "machine": machine,
        "loadavg_at_end": loadavg(),
        "rows": rows,
    }
    print(json.dumps(rows, indent=1))
    if not args.no_json:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
