"""GPU readiness: one command, one table of throughput against ensemble size, and device memory.

Measures on the default JAX device (a GPU when one is visible, else the CPU):

* exact SSA events/s on the toggle switch (`grn.models.toggle_switch`, 0-20 time units, 21
  output times) against the number of cells, 10^3 ... 10^6;
* CLE throughput (cell-steps/s and cell-hours/s) on the melanoma model (`grn.CLE(dt=0.01)`, BRAFi
  0.95, 24 h, 25 output times);
* LNA throughput (parameter sets/s) on the melanoma model with one kM1 per set;
* the device's peak memory (``memory_stats()['peak_bytes_in_use']`` where the backend reports it,
  else the process's peak resident memory).

Every run streams its statistics (``reduce="moments"``), so ensembles are bounded in memory by
``--batch`` cells at a time and nothing leaves the device until the run ends (the event total is
read from the result). Each size is run twice with different keys: ``first_s`` includes
compilation, ``run_s`` (the second) does not; rates use ``run_s``.

Usage (from the repository root)::

    python benchmarks/gpu.py                  # full table, writes results/gpu_<backend>.json
    python benchmarks/gpu.py --smoke          # seconds on a CPU (CI): tiny sizes, no JSON
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import grn  # noqa: E402
from grn.models._melanoma import melanoma_cell_params  # noqa: E402


def _timed(run):
    """(seconds with compilation, seconds without, result of the second call)."""
    start = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(0)))
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(run(jax.random.key(1)))
    return first, time.perf_counter() - start, out


def ssa_row(n_cells: int, t_end: float, batch: int) -> dict:
    net = grn.models.toggle_switch()
    ts = jnp.linspace(0.0, t_end, 21)

    def run(key):
        return grn.simulate(net, ts, key, n_cells=n_cells, batch_size=batch, reduce="moments")

    first, run_s, out = _timed(run)
    events = float(out.n_events)
    return {
        "solver": "SSA",
        "model": "toggle_switch",
        "cells": n_cells,
        "first_s": round(first, 3),
        "run_s": round(run_s, 3),
        "events": events,
        "rate": events / run_s,
        "unit": "events/s",
    }


def _model(small: bool, n: int):
    """(name, network, schedule, per-cell params): melanoma, or birth-death for ``--smoke``."""
    if small:
        return "birth_death", grn.models.birth_death(), None, None
    schedule = grn.Schedule([0.0], {"BRAFi": [0.95]})
    return "melanoma", grn.models.melanoma(), schedule, melanoma_cell_params(jax.random.key(2), n)


def cle_row(n_cells: int, hours: float, dt: float, batch: int, small: bool = False) -> dict:
    name, net, schedule, params = _model(small, n_cells)
    ts = jnp.linspace(0.0, hours, int(hours) + 1)

    def run(key):
        return grn.simulate(
            net,
            ts,
            key,
            solver=grn.CLE(dt=dt),
            n_cells=n_cells,
            params=params,
            schedule=schedule,
            batch_size=batch,
            reduce="moments",
        )

    first, run_s, out = _timed(run)
    steps = float(out.n_events)
    return {
        "solver": f"CLE(dt={dt})",
        "model": name,
        "cells": n_cells,
        "first_s": round(first, 3),
        "run_s": round(run_s, 3),
        "cell_steps": steps,
        "cell_hours_per_s": n_cells * hours / run_s,
        "rate": steps / run_s,
        "unit": "cell-steps/s",
    }


def lna_row(n_sets: int, hours: float, batch: int, small: bool = False) -> dict:
    name, net, schedule, params = _model(small, n_sets)
    ts = jnp.linspace(0.0, hours, int(hours) + 1)

    def run(key):
        return grn.simulate(
            net,
            ts,
            key,
            solver=grn.LNA(rtol=1e-4, atol=1e-4),
            n_cells=n_sets,
            params=params,
            schedule=schedule,
            batch_size=batch,
            reduce="moments",
        )

    first, run_s, _ = _timed(run)
    return {
        "solver": "LNA(rtol=1e-4)",
        "model": name,
        "cells": n_sets,
        "first_s": round(first, 3),
        "run_s": round(run_s, 3),
        "rate": n_sets / run_s,
        "unit": "parameter sets/s",
    }


def memory() -> dict:
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return {
        "device_peak_mb": None if peak is None else round(peak / 2**20, 1),
        "device_limit_mb": (
            round(stats["bytes_limit"] / 2**20, 1) if "bytes_limit" in stats else None
        ),
        "host_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def print_table(rows, mem) -> None:
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(f"{'solver':<16}{'model':<15}{'cells':>10}{'first s':>10}{'run s':>10}  rate")
    for r in rows:
        print(
            f"{r['solver']:<16}{r['model']:<15}{r['cells']:>10}{r['first_s']:>10.2f}"
            f"{r['run_s']:>10.3f}  {r['rate']:.3e} {r['unit']}"
        )
    print(
        f"memory: device peak {mem['device_peak_mb']} MB (limit {mem['device_limit_mb']} MB), "
        f"host peak RSS {mem['host_peak_rss_mb']} MB"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU")
    parser.add_argument("--ssa-cells", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    parser.add_argument("--cle-cells", type=int, nargs="+", default=[10**3, 10**4, 10**5])
    parser.add_argument("--lna-sets", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--batch", type=int, default=2**17, help="cells per streamed chunk")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.smoke:
        rows = [ssa_row(n, 2.0, args.batch) for n in (100, 1000)]
        rows.append(cle_row(100, 1.0, 0.05, args.batch, small=True))
        rows.append(lna_row(1, 1.0, args.batch, small=True))
    else:
        rows = [ssa_row(n, 20.0, args.batch) for n in args.ssa_cells]
        rows += [cle_row(n, 24.0, 0.01, args.batch) for n in args.cle_cells]
        rows += [lna_row(n, 24.0, args.batch) for n in args.lna_sets]
    mem = memory()
    print_table(rows, mem)
    if args.smoke:
        return
    from _machine import machine_info

    out = args.out or HERE / "results" / f"gpu_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "throughput against ensemble size (benchmarks/gpu.py)",
        "device": jax.devices()[0].device_kind,
        "machine": machine_info(),
        "rows": rows,
        "memory": mem,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
