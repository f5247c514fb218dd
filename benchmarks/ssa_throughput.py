"""Exact-SSA throughput: grn (JAX, float32) vs GillesPy2's compiled C++ ``SSACSolver``.

Both codes simulate the same models, with the same propensity formulas, the same number of
trajectories ("cells") and 101 output times, in the same process. Compile time is excluded
from the throughput and reported separately:

* grn: the first ``grn.simulate`` call (trace + XLA compile + run) and a second call with a
  different key are timed; the second is the measurement. ``compile_s`` is the first call's
  trace + lowering + XLA compile time from ``jax.monitoring`` events; ``first - second`` is
  recorded too (``first_minus_second_s``), but it is noisy when the run dominates.
* GillesPy2: ``SSACSolver(model=...)`` (C++ code generation + g++ build) is timed once per
  model; each ``model.run(solver=..., number_of_trajectories=N)`` is the measurement.

Events: GillesPy2 does not report how many reactions fired, so both sides are credited with
the same event count, the total ``sol.n_events`` of grn's timed run (for GillesPy2 this is
N x grn's mean events per cell, an unbiased estimate of its own count since both simulate the
same Markov chain). events/s ratio is therefore the wall-time ratio. A statistical check of the
two samples (per-species means, z-scores) is stored alongside to catch model mismatches.

GillesPy2 compiles its C++ without optimisation (-O0). The headline ratio is against that
stock build; as a second reference the same generated C++ is rebuilt with ``-O3`` and run
through the same ``model.run`` path (``gillespy2_O3`` in the JSON; skip with ``--no-o3``).

The repressilator is capped at 1e3 cells by default (1e4 would take ~15+ min on 2 cores);
``--max-cells repressilator=10000`` lifts the cap. Skipped cells are listed in the JSON.

Usage (from the repository root)::

    python benchmarks/ssa_throughput.py             # 1e2, 1e3, 1e4 cells, writes the JSON
    python benchmarks/ssa_throughput.py --quick     # 100 cells smoke run, writes nothing
    python benchmarks/ssa_throughput.py --cells 1000 --models toggle

Requires the ``bench`` extra (``gillespy2``, ``scons``) and ``g++``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script: benchmarks/ is on sys.path.
from _machine import loadavg as _loadavg, machine_info as _machine_info
from _peers import (
    GillesPy2SSA,
    ModelSpec,
    ReactionSpec,
    ensure_scons_on_path,
    gillespy2_version as _gillespy2_version,
)

N_TIMES = 101
# Extra peer: GillesPy2's SSA executable rebuilt with optimisation (its own build uses none).
O3_FLAGS = ("-O3",)
DEFAULT_CELLS = (100, 1_000, 10_000)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ssa_throughput.json"
# Largest cell count run per model by default, to keep the full run near 10 min on 2 CPU
# cores: at 1e4 cells the repressilator (~3.4e4 events per cell) takes ~4 min in GillesPy2
# and, at the grn speed measured when this was written, ~15+ min for grn's two calls.
# Override with --max-cells MODEL=N.
DEFAULT_MAX_CELLS = {"toggle": 10_000, "repressilator": 1_000}


# ------------------------------------------------------------------------------- models


def _hill_repression(rep: str, basal: bool = False):
    """a / (1 + (rep/K)^n), plus a0 when ``basal``, as a grn propensity."""
    if basal:
        return lambda x, p, u: p["a0"] + p["a"] / (1 + (x[rep] / p["K"]) ** p["n"])
    return lambda x, p, u: p["a"] / (1 + (x[rep] / p["K"]) ** p["n"])


def toggle_spec() -> ModelSpec:
    """Genetic toggle switch: mutual Hill repression, linear degradation."""
    rxns = []
    for s, rep in (("U", "V"), ("V", "U")):
        rxns += [
            ReactionSpec(f"prod_{s}", {}, {s: 1}, f"a/(1+pow({rep}/K,n))", _hill_repression(rep)),
            ReactionSpec(f"deg_{s}", {s: 1}, {}, f"d*{s}", rate_param="d"),
        ]
    return ModelSpec(
        name="toggle",
        species=["U", "V"],
        params={"a": 50.0, "K": 20.0, "n": 2.5, "d": 1.0},
        x0={"U": 0, "V": 0},
        t_end=100.0,
        reactions=rxns,
    )


def repressilator_spec() -> ModelSpec:
    """Repressilator with a reporter per promoter: 12 species, 24 reactions.

    Gene i (repressed by p3, p1, p2 for i = 1, 2, 3) has promoter rate
    h_i = a0 + a / (1 + (p_rep/K)^n) driving both its mRNA m_i and a reporter mRNA r_i;
    m_i translates into repressor p_i, r_i into reporter protein g_i.
    """
    rxns = []
    for i, rep in ((1, "p3"), (2, "p1"), (3, "p2")):
        m, p, r, g = f"m{i}", f"p{i}", f"r{i}", f"g{i}"
        hill = f"a0+a/(1+pow({rep}/K,n))"
        for mrna, prot in ((m, p), (r, g)):
            rxns += [
                ReactionSpec(f"tx_{mrna}", {}, {mrna: 1}, hill, _hill_repression(rep, basal=True)),
                ReactionSpec(f"deg_{mrna}", {mrna: 1}, {}, f"dm*{mrna}", rate_param="dm"),
                ReactionSpec(
                    f"tl_{prot}",
                    {mrna: 1},
                    {mrna: 1, prot: 1},
                    f"b*{mrna}",
                    rate_param="b",
                ),
                ReactionSpec(f"deg_{prot}", {prot: 1}, {}, f"dp*{prot}", rate_param="dp"),
            ]
    species = [f"{k}{i}" for k in ("m", "p", "r", "g") for i in (1, 2, 3)]
    return ModelSpec(
        name="repressilator",
        species=species,
        params={"a": 10.0, "a0": 0.05, "K": 100.0, "n": 2.0, "dm": 0.2, "b": 1.0, "dp": 0.05},
        x0={s: (100 if s == "p1" else 0) for s in species},
        t_end=200.0,
        reactions=rxns,
    )


MODELS = {"toggle": toggle_spec, "repressilator": repressilator_spec}


# ----------------------------------------------------------------------------- grn side

# jax.monitoring duration events whose sum is the trace + lower + XLA compile time of a call.
_JAX_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def _import_grn():
    """``import grn``; falls back to the repository checkout when grn is not installed."""
    try:
        import grn
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import grn
    return grn


def grn_network(spec: ModelSpec):
    grn = _import_grn()

    reactions = [
        grn.Reaction(
            r.equation,
            r.grn_propensity if r.grn_propensity is not None else grn.mass_action(r.rate_param),
        )
        for r in spec.reactions
    ]
    return grn.Network(
        species=list(spec.species),
        reactions=reactions,
        params=dict(spec.params),
        x0=dict(spec.x0),
    )


def run_grn(net, ts, n_cells: int, seed: int) -> dict:
    """First call (compile + run), then the timed second call with a different key."""
    import jax

    grn = _import_grn()

    compile_events: list[float] = []

    def listener(event: str, duration_s: float, **_) -> None:
        if event in _JAX_COMPILE_EVENTS:
            compile_events.append(duration_s)

    def once(key_seed: int):
        c0, t0 = time.process_time(), time.perf_counter()
        sol = grn.simulate(
            net, ts=ts, key=jax.random.key(key_seed), solver=grn.SSA(), n_cells=n_cells
        )
        jax.block_until_ready((sol.ys, sol.n_events))
        once.cpu_s = time.process_time() - c0
        return sol, time.perf_counter() - t0

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        _, first = once(seed)
        compile_first = sum(compile_events)
        compile_events.clear()
        sol, wall = once(seed + 1)
        compile_second = sum(compile_events)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    ys = np.asarray(sol.ys)
    n_events = np.asarray(sol.n_events, dtype=np.int64)
    return {
        "ys": ys,
        "dtype": str(sol.ys.dtype),
        "first_call_s": first,
        "wall_s": wall,
        "cpu_s": once.cpu_s,
        "compile_s": compile_first,
        "first_minus_second_s": first - wall,
        "compile_s_timed_call": compile_second,
        "n_events": n_events,
    }


# -------------------------------------------------------------------------------- utils


def _sample_check(ys_a: np.ndarray, ys_b: np.ndarray, species: list[str]) -> dict:
    """Per-species mean (over cells) of each cell's time-averaged count, with a z-score.

    Both samples come from the same Markov chain if the models match, so |z| should be a
    few at most; a wrong propensity typically gives |z| >> 10 at 1e3+ cells.
    """
    a = ys_a.astype(np.float64).mean(axis=1)  # (cells, species)
    b = ys_b.astype(np.float64).mean(axis=1)
    ma, mb = a.mean(0), b.mean(0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    z = np.where(se > 0, (ma - mb) / np.where(se > 0, se, 1.0), 0.0)
    return {
        "statistic": "mean over cells of the per-cell time-averaged count",
        "species": list(species),
        "grn": [round(float(v), 4) for v in ma],
        "gillespy2": [round(float(v), 4) for v in mb],
        "z": [round(float(v), 3) for v in z],
        "max_abs_z": round(float(np.max(np.abs(z))), 3),
    }


def _gxx_version() -> str | None:
    try:
        out = subprocess.run(["g++", "--version"], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return None


def machine_info() -> dict:
    """`_machine.machine_info` plus the peer's and the compiler's versions."""
    return {
        **_machine_info(),
        "gillespy2_version": _gillespy2_version(),
        "numpy_version": np.__version__,
        "gxx": _gxx_version(),
    }


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:9.2f}M"


def print_table(results: dict) -> None:
    hdr = (
        f"{'model':<14}{'cells':>7}  {'grn ev/s':>10} {'wall s':>8} {'compile s':>9}  "
        f"{'gpy2 ev/s':>10} {'wall s':>8} {'ratio':>6}  "
        f"{'gpy2-O3 ev/s':>12} {'ratio':>6}  {'ev/cell':>8} {'|z|max':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    for model, rows in results.items():
        for cells, r in rows.items():
            g, p, o = r["grn"], r["gillespy2"], r.get("gillespy2_O3")
            o_cols = (
                f"{_fmt_rate(o['events_per_s']):>12} {r['ratio_grn_over_gillespy2_O3']:6.2f}"
                if o
                else f"{'-':>12} {'-':>6}"
            )
            print(
                f"{model:<14}{cells:>7}  {_fmt_rate(g['events_per_s'])} {g['wall_s']:8.2f} "
                f"{g['compile_s']:9.2f}  {_fmt_rate(p['events_per_s'])} {p['wall_s']:8.2f} "
                f"{r['ratio_grn_over_gillespy2']:6.2f}  {o_cols}  "
                f"{r['mean_events_per_cell']:8.0f} {r['check']['max_abs_z']:6.1f}"
            )


# --------------------------------------------------------------------------------- main


def _parse_max_cells(items: list[str]) -> dict[str, int]:
    out = dict(DEFAULT_MAX_CELLS)
    for item in items:
        name, _, n = item.partition("=")
        if name not in MODELS or not n:
            raise SystemExit(f"--max-cells expects MODEL=N with MODEL in {sorted(MODELS)}")
        out[name] = int(n)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cells",
        type=int,
        nargs="+",
        default=None,
        help=f"cell (trajectory) counts, default {' '.join(map(str, DEFAULT_CELLS))}",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 100 cells, no JSON written")
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument(
        "--max-cells",
        nargs="*",
        default=[],
        metavar="MODEL=N",
        help=f"skip cell counts above N for MODEL (default {DEFAULT_MAX_CELLS})",
    )
    ap.add_argument(
        "--no-o3",
        action="store_true",
        help="skip the extra GillesPy2 run with its C++ rebuilt at -O3 (stock build is -O0)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path (default benchmarks/results/ssa_throughput.json; "
        "--quick writes only when given)",
    )
    args = ap.parse_args(argv)

    cells = args.cells or ([100] if args.quick else list(DEFAULT_CELLS))
    max_cells = _parse_max_cells(args.max_cells)
    out_path = args.output if args.output is not None else (None if args.quick else DEFAULT_OUT)

    ensure_scons_on_path()
    import jax
    import jax.numpy as jnp

    if jax.config.jax_enable_x64:
        print("warning: jax_enable_x64 is on; this benchmark is specified for float32")

    doc: dict = {
        "benchmark": "ssa_throughput",
        "description": "exact SSA events/s: grn.SSA (JAX, float32) vs GillesPy2 SSACSolver (C++)",
        "machine": machine_info(),
        "config": {
            "n_times": N_TIMES,
            "cells_requested": cells,
            "max_cells": max_cells,
            "seed": args.seed,
            "quick": args.quick,
            "argv": list(sys.argv[1:] if argv is None else argv),
        },
        "method": {
            "timing": "time.perf_counter wall time, same process; grn: second grn.simulate call "
            "after jax.block_until_ready (first call = compile + run); compile_s = trace + "
            "lowering + XLA compile of the first call from jax.monitoring events, "
            "first_minus_second_s = first call - second call (noisy when the run dominates), "
            "compile_s_timed_call should be 0 (no recompilation in the timed call); "
            "gillespy2: model.run(solver=SSACSolver, number_of_trajectories=N) end to "
            "end (C++ executable + decoding its output), SSACSolver build timed separately",
            "event_count": "total_events = sum of grn's sol.n_events in its timed run; "
            "GillesPy2 does not report events, so it is credited with the same total "
            "(N x grn mean events per cell). events_per_s = total_events / wall_s on each side; "
            "ratio = grn events/s / gillespy2 events/s = gillespy2 wall / grn wall",
            "propensities": "identical formulas: Hill terms as grn callables and GillesPy2 custom "
            "propensity strings; linear terms as grn.mass_action and GillesPy2 'k*X' strings",
            "gillespy2_build": "GillesPy2's own SCons build (CXXFLAGS=-std=c++14, no -O flag, "
            "i.e. -O0), direct method with a reaction dependency graph, one process, one "
            "thread. 'gillespy2' = that stock build (the headline ratio); 'gillespy2_O3' = "
            "the same generated sources rebuilt with g++ -std=c++14 -O3 and swapped in for "
            "GillesPy2's executable, run through the same model.run path",
            "cpu_s": "CPU seconds of the timed call (all threads; for gillespy2 the C++ "
            "child process plus this process's decoding) - shows how many cores each side used",
        },
        "results": {},
        "skipped": [],
    }

    def write() -> None:
        if out_path is None:
            return
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(doc, indent=2) + "\n")

    for mi, name in enumerate(args.models):
        spec = MODELS[name]()
        ts_np = np.linspace(0.0, spec.t_end, N_TIMES)
        ts = jnp.asarray(ts_np, dtype=jnp.float32)
        net = grn_network(spec)
        print(f"[{name}] building GillesPy2 SSACSolver ...", flush=True)
        peer = GillesPy2SSA(spec, ts_np)
        peer_o3 = None if args.no_o3 else GillesPy2SSA(spec, ts_np, cxxflags=O3_FLAGS)
        model_doc = {
            "n_species": len(spec.species),
            "n_reactions": len(spec.reactions),
            "t_end": spec.t_end,
            "params": spec.params,
            "gillespy2_compile_s": peer.compile_s,
            "gillespy2_O3_compile_s": None if peer_o3 is None else peer_o3.compile_s,
            "cells": {},
        }
        doc["results"][name] = model_doc
        for ci, n in enumerate(cells):
            if n > max_cells[name]:
                doc["skipped"].append(
                    {
                        "model": name,
                        "cells": n,
                        "reason": f"above the cap of {max_cells[name]} cells for {name} "
                        "(default caps keep the full run near 10 min on 2 CPU cores; raise "
                        f"with --max-cells {name}={n})",
                    }
                )
                print(f"[{name}] {n} cells: skipped (max {max_cells[name]})", flush=True)
                continue
            seed = args.seed + 1000 * mi + 10 * ci
            print(f"[{name}] {n} cells: grn ...", end="", flush=True)
            g = run_grn(net, ts, n, seed)
            total = int(g["n_events"].sum())
            print(f" {g['wall_s']:.2f}s; gillespy2 ...", end="", flush=True)
            ys_p, p_wall, p_cpu = peer.run(n, seed=seed + 1)
            print(f" {p_wall:.2f}s", end="", flush=True)
            if peer_o3 is not None:
                print("; gillespy2 -O3 ...", end="", flush=True)
                ys_o, o_wall, o_cpu = peer_o3.run(n, seed=seed + 2)
                print(f" {o_wall:.2f}s", end="", flush=True)
            print(flush=True)
            g_rate = total / g["wall_s"]
            p_rate = total / p_wall
            row = model_doc["cells"][str(n)] = {
                "mean_events_per_cell": total / n,
                "grn": {
                    "events_per_s": g_rate,
                    "wall_s": g["wall_s"],
                    "cpu_s": g["cpu_s"],
                    "compile_s": g["compile_s"],
                    "first_minus_second_s": g["first_minus_second_s"],
                    "compile_s_timed_call": g["compile_s_timed_call"],
                    "first_call_s": g["first_call_s"],
                    "total_events": total,
                    "dtype": g["dtype"],
                },
                "gillespy2": {
                    "events_per_s": p_rate,
                    "wall_s": p_wall,
                    "cpu_s": p_cpu,
                    "total_events": total,
                    "total_events_method": "N x grn mean events per cell",
                },
                "ratio_grn_over_gillespy2": g_rate / p_rate,
                "check": _sample_check(g["ys"], ys_p, spec.species),
            }
            if peer_o3 is not None:
                row["gillespy2_O3"] = {
                    "events_per_s": total / o_wall,
                    "wall_s": o_wall,
                    "cpu_s": o_cpu,
                    "total_events": total,
                    "total_events_method": "N x grn mean events per cell",
                }
                row["ratio_grn_over_gillespy2_O3"] = g_rate / (total / o_wall)
                row["check_O3"] = _sample_check(g["ys"], ys_o, spec.species)
            write()
        write()

    doc["machine"]["loadavg_at_end"] = _loadavg()
    target_row = doc["results"].get("toggle", {}).get("cells", {}).get("10000")
    doc["target"] = {
        "statement": "grn events/s >= 2 x GillesPy2 events/s on the toggle at 1e4 cells",
        "ratio": None if target_row is None else target_row["ratio_grn_over_gillespy2"],
        "met": None if target_row is None else target_row["ratio_grn_over_gillespy2"] >= 2.0,
    }
    write()
    print()
    print_table({m: d["cells"] for m, d in doc["results"].items()})
    if target_row is not None:
        verdict = "met" if doc["target"]["met"] else "NOT met"
        print(f"\ntarget ({doc['target']['statement']}): {verdict}")
    loads = [doc["machine"]["loadavg_at_start"], doc["machine"]["loadavg_at_end"]]
    if all(loads) and max(ld[0] for ld in loads) > 0.5 * (os.cpu_count() or 1):
        print(
            f"\nnote: the machine was busy (1-min load average {loads[0][0]} at start, "
            f"{loads[1][0]} at end); timings are contended"
        )
    if out_path is not None:
        print(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
