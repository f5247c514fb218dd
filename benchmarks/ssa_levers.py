"""Interleaved A/B of exact-SSA kernel variants: CPU ns per event (for ``ssa_profile.md``).

Each variant swaps one function that ``grn.SSA.solve_cell`` looks up at trace time (reaction
selection, the propensities) and is compiled once, as ``jit(vmap(solve_cell))`` over the cells;
the variants then run in turn ``--repeats`` times with the same key, so each sees the same
events, and the minimum process CPU time per event over the repeats is kept (the machine is
shared: CPU time, not wall time, and the minimum, not the mean). One device, float32, the
``ssa_throughput.py`` models with Hill terms as ``exp(n log(x/K))``.

Variants:

* ``base``: the kernel as it is.
* ``prop2``: propensities evaluated twice (at ``x`` and at a copy XLA cannot merge) and averaged,
  which leaves every value and event unchanged; ``prop2 - base`` is what one evaluation of all
  propensities costs per event, the most that recomputing only some of them could save.
* ``two_level``: reaction selection by two-level partial sums (`two_level_select`) for every
  network size (the library uses it above ``UNROLL_MAX`` reactions).
* ``flat``: the flat selection (prefix sums of all weights, one count) for every size.
* ``barrier`` / ``no_barrier``: the propensity array behind an ``optimization_barrier`` (XLA
  computes it once rather than fusing the laws into each of its consumers) at every network size
  / at none (the library: from `grn._solvers._ssa.BARRIER_MIN` reactions on).
* ``stack_all``: the propensities stacked into an array by one ``stack`` of all R laws rather
  than `grn._network.STACK_CHUNK` at a time.

Usage: ``python benchmarks/ssa_levers.py --models toggle random_grn_500 --cells 1000``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _machine import loadavg  # noqa: E402
from ssa_throughput import MODELS, N_TIMES, grn_network  # noqa: E402

VARIANTS = ("base", "prop2", "two_level", "flat", "stack_all", "barrier", "no_barrier")


def _compiled(net, ts, n_cells: int, variant: str):
    """``key -> (ys, n_events)`` for all cells, traced with ``variant``'s functions in place."""
    import jax
    import jax.numpy as jnp

    import grn
    from grn import _network
    from grn._schedule import no_schedule
    from grn._solvers import _events, _ssa

    saved = (_events.TWO_LEVEL_MIN, type(net).propensities, _network.STACK_CHUNK, _ssa.BARRIER_MIN)
    if variant == "prop2":
        original = type(net).propensities

        def twice(self, x, p, u):
            other = jax.lax.optimization_barrier(x)
            return 0.5 * (original(self, x, p, u) + original(self, other, p, u))

        type(net).propensities = twice
    elif variant in ("barrier", "no_barrier"):
        _ssa.BARRIER_MIN = 1 if variant == "barrier" else 10**9
    elif variant in ("two_level", "flat"):
        _events.TWO_LEVEL_MIN = 1 if variant == "two_level" else 10**9
    elif variant == "stack_all":
        _network.STACK_CHUNK = 10**9
    try:
        solver = grn.SSA()
        params = {k: jnp.asarray(v, ts.dtype) for k, v in net.params.items()}
        x0 = jnp.asarray(net.x0, ts.dtype)
        sched = no_schedule(net.inputs, ts.dtype)

        def one(key):
            path = solver.solve_cell(net, ts, key, params, x0, *sched)
            return path[0], path[2]

        fn = jax.jit(jax.vmap(one))
        keys = jax.random.split(jax.random.key(0), n_cells)
        fn = fn.lower(keys).compile()
    finally:
        _events.TWO_LEVEL_MIN, type(net).propensities, _network.STACK_CHUNK, _ssa.BARRIER_MIN = (
            saved
        )
    return fn, keys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["toggle"])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--output", type=Path, default=None, help="append one JSON line per model")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp

    for name in args.models:
        spec = MODELS[name](hill="explog")
        net = grn_network(spec)
        ts = jnp.asarray(np.linspace(0.0, spec.t_end, N_TIMES), jnp.float32)
        fns = {v: _compiled(net, ts, args.cells, v) for v in args.variants}
        cpu: dict[str, list[float]] = {v: [] for v in args.variants}
        events: dict[str, int] = {}
        first_ys = None
        for _ in range(args.repeats):
            for v, (fn, keys) in fns.items():
                c0 = time.process_time()
                ys, n = jax.block_until_ready(fn(keys))
                cpu[v].append(time.process_time() - c0)
                events[v] = int(np.asarray(n, np.int64).sum())
                if v == "base":
                    first_ys = np.asarray(ys)
                elif v == "prop2" and first_ys is not None:
                    assert np.array_equal(np.asarray(ys), first_ys), "prop2 changed the paths"
        row = {
            "model": name,
            "reactions": len(spec.reactions),
            "cells": args.cells,
            "events": events,
            "cpu_ns_per_event_min": {
                v: round(min(cpu[v]) / events[v] * 1e9, 1) for v in args.variants
            },
            "cpu_s": cpu,
            "loadavg_end": loadavg(),
            "devices": jax.local_device_count(),
        }
        print(json.dumps(row), flush=True)
        if args.output is not None:
            with args.output.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
