"""Compile time: the melanoma model per solver, and SSA/CLE against network size.

Each measurement runs in a fresh subprocess (no warm caches) with a workload small enough that
the first call is trace + compile: 4 cells, output times 0 and 1. ``first_s`` is that call's wall
time, ``run_s`` a second call with a new key (the simulation alone), ``compile_s = first_s -
run_s``; ``compile_cpu_s`` is the process CPU time of the first call (less sensitive to other
load on a shared machine). Networks of 10, 100 and 1,000 reactions are chains
``-> X0 -> X1 -> ... -> Xn``, every species also degraded, with Hill-repressed immigration
``-> X0`` by the last species (so rate laws of two kinds appear): ``n`` species, ``2n`` reactions.
The growth exponent ``log(t_1000 / t_100) / log(10)`` says whether compile time grows faster than
linearly (> 1).

Usage (from the repository root)::

    python benchmarks/compile_time.py                      # writes results/compile_time.json
    python benchmarks/compile_time.py --sizes 10 100 --solvers SSA CLE --no-json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SOLVERS = ("SSA", "TauLeap", "CLE", "ODE", "LNA")


def chain_network(n_reactions: int):
    """A chain of ``n_reactions // 2`` species with ``n_reactions`` reactions (see module doc)."""
    import grn

    n = max(n_reactions // 2, 2)
    species = [f"X{i}" for i in range(n)]
    reactions = [grn.Reaction("-> X0", grn.hill_repression(species[-1], "v", "K", "h"))]
    reactions += [grn.Reaction(f"X{i} -> X{i + 1}", grn.mass_action("k")) for i in range(n - 1)]
    reactions += [grn.Reaction(f"X{i} ->", grn.mass_action("d")) for i in range(n)]
    params = {"v": 50.0, "K": 10.0, "h": 2.0, "k": 1.0, "d": 0.1}
    return grn.Network(species, reactions, params=params)


def solver_of(name: str):
    import grn

    return {
        "SSA": grn.SSA(),
        "TauLeap": grn.TauLeap(),
        "CLE": grn.CLE(dt=0.01),
        "ODE": grn.ODE(),
        "LNA": grn.LNA(),
    }[name]


def worker(model: str, solver_name: str) -> dict:
    import jax
    import jax.numpy as jnp

    import grn

    net = grn.models.melanoma() if model == "melanoma" else chain_network(int(model))
    ts = jnp.array([0.0, 1.0])
    solver = solver_of(solver_name)

    def run(key):
        out = grn.simulate(net, ts, key, solver=solver, n_cells=4)
        return jax.block_until_ready(out.ys)

    cpu, start = time.process_time(), time.perf_counter()
    run(jax.random.key(0))
    first, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    run(jax.random.key(1))
    run_s = time.perf_counter() - start
    return {
        "model": model,
        "solver": solver_name,
        "reactions": len(net.reactions),
        "species": len(net.species),
        "first_s": round(first, 3),
        "run_s": round(run_s, 4),
        "compile_s": round(first - run_s, 3),
        "compile_cpu_s": round(cpu, 3),
    }


def measure(model: str, solver: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", model, solver]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{row['model']:>9} {row['solver']:<8} R={row['reactions']:<5} "
        f"compile {row['compile_s']:7.2f} s (CPU {row['compile_cpu_s']:7.2f} s)",
        flush=True,
    )
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--size-solvers", nargs="+", choices=SOLVERS, default=["SSA", "CLE"])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "compile_time.json")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return

    from _machine import loadavg, machine_info

    machine = machine_info()
    melanoma = [measure("melanoma", s) for s in args.solvers]
    sizes = [measure(str(n), s) for s in args.size_solvers for n in args.sizes]
    growth = {}
    for s in args.size_solvers:
        rows = sorted((r for r in sizes if r["solver"] == s), key=lambda r: r["reactions"])
        if len(rows) >= 2:
            a, b = rows[-2], rows[-1]
            growth[s] = round(
                math.log(b["compile_cpu_s"] / a["compile_cpu_s"])
                / math.log(b["reactions"] / a["reactions"]),
                2,
            )
    print("growth exponent of compile CPU time (last two sizes):", growth)
    doc = {
        "benchmark": "compile time (first call minus a second call), fresh process per row",
        "target": "melanoma <= 10 s per solver; compile time at most linear in network size",
        "machine": machine,
        "loadavg_at_end": loadavg(),
        "melanoma": melanoma,
        "network_size": sizes,
        "growth_exponent": growth,
    }
    if not args.no_json:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
