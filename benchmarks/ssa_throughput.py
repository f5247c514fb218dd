"""Exact-SSA throughput: grn (JAX, float32) vs GillesPy2's compiled C++ ``SSACSolver`` and the
JAX peers crn-jax and stochastix.

Models: the toggle switch (4 reactions), the repressilator with reporters (24) and random
gene-regulatory networks of 20, 100 and 500 reactions (``_random_grn.py``, seed 0), so the table
shows how each code's cost per event grows with network size. All codes simulate the same
models, with the same propensity formulas, the same number of trajectories ("cells") and 101
output times. Compile time is excluded from the throughput and reported separately:

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
``--no-stock`` skips the stock build (at 1e4 repressilator cells it alone takes ~6 min a
repeat); ratios are then against -O3 only. Targets checked at the end: issue 5's against the
stock build and issue 20's against -O3 (grn on 2 devices >= 4x on the toggle at 1e4 cells,
>= 2x on the repressilator at 1e3 and 1e4).

The repressilator is capped at 1e3 cells by default (1e4 would take ~15+ min on 2 cores);
``--max-cells repressilator=10000`` lifts the cap. Skipped cells are listed in the JSON.

grn runs in a fresh process per configuration (``GRN_VARIANTS``: 1 or 2 host devices, Hill terms
as ``(x/K)**n`` or ``exp(n log(x/K))``, and with ``--baseline GITREF`` grn as of that commit for a
before/after), interleaved with GillesPy2 ``--repeats`` times; the melanoma model's cell-days per
second with the SSA follow. Where the time goes per event: ``benchmarks/ssa_profile.md``.

Usage (from the repository root)::

    python benchmarks/ssa_throughput.py             # 1e2, 1e3, 1e4 cells, writes the JSON
    python benchmarks/ssa_throughput.py --quick     # 100 cells smoke run, writes nothing
    python benchmarks/ssa_throughput.py --cells 1000 --models toggle
    python benchmarks/ssa_throughput.py --baseline 4017392 --repeats 3   # before/after

JAX peers (``--jax-peers``, default both): crn-jax and stochastix, each in a fresh process on one
host device, timed like grn (first call compiles, the second is measured), credited with grn's
event count; stochastix returns the final state only (see ``method.jax_peers`` in the JSON).

Requires the ``bench`` extra (``gillespy2``, ``scons``, ``crn-jax``, ``stochastix``) and ``g++``.
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
    crn_jax_simulator,
    crn_jax_version,
    ensure_scons_on_path,
    gillespy2_version as _gillespy2_version,
    stochastix_simulator,
    stochastix_version,
)
from _random_grn import random_grn_spec

N_TIMES = 101
# Extra peer: GillesPy2's SSA executable rebuilt with optimisation (its own build uses none).
O3_FLAGS = ("-O3",)
REFERENCES = ("gillespy2", "gillespy2_O3")  # ratios are taken against each that ran
DEFAULT_CELLS = (100, 1_000, 10_000)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ssa_throughput.json"
# Largest cell count run per model by default, to keep the full run near 10 min on 2 CPU
# cores: at 1e4 cells the repressilator (~3.4e4 events per cell) takes ~4 min in GillesPy2
# and, at the grn speed measured when this was written, ~15+ min for grn's two calls.
# Override with --max-cells MODEL=N.
DEFAULT_MAX_CELLS = {"toggle": 10_000, "repressilator": 1_000}
RANDOM_SIZES = (20, 100, 500)
"""Reactions in the random gene-regulatory networks (`_random_grn.py`, seed 0)."""
DEFAULT_MAX_CELLS.update({f"random_grn_{r}": 1_000 for r in RANDOM_SIZES})


# ------------------------------------------------------------------------------- models


HILL_FORMS = ("pow", "explog")
"""How grn's Hill terms are written: ``(x/K)**n`` (XLA's CPU backend calls libm's scalar
``powf``) or ``exp(n log(x/K))`` (vectorised); the same function, GillesPy2 always gets ``pow``."""


def _hill_repression(rep: str, basal: bool = False, form: str = "pow"):
    """a / (1 + (rep/K)^n), plus a0 when ``basal``, as a grn propensity."""
    import jax.numpy as jnp

    def power(x, p):
        if form == "explog":
            return jnp.exp(p["n"] * jnp.log(x[rep] / p["K"]))
        return (x[rep] / p["K"]) ** p["n"]

    if basal:
        return lambda x, p, u: p["a0"] + p["a"] / (1 + power(x, p))
    return lambda x, p, u: p["a"] / (1 + power(x, p))


def toggle_spec(hill: str = "pow") -> ModelSpec:
    """Genetic toggle switch: mutual Hill repression, linear degradation."""
    rxns = []
    for s, rep in (("U", "V"), ("V", "U")):
        rxns += [
            ReactionSpec(
                f"prod_{s}", {}, {s: 1}, f"a/(1+pow({rep}/K,n))", _hill_repression(rep, form=hill)
            ),
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


def repressilator_spec(hill: str = "pow") -> ModelSpec:
    """Repressilator with a reporter per promoter: 12 species, 24 reactions.

    Gene i (repressed by p3, p1, p2 for i = 1, 2, 3) has promoter rate
    h_i = a0 + a / (1 + (p_rep/K)^n) driving both its mRNA m_i and a reporter mRNA r_i;
    m_i translates into repressor p_i, r_i into reporter protein g_i.
    """
    rxns = []
    for i, rep in ((1, "p3"), (2, "p1"), (3, "p2")):
        m, p, r, g = f"m{i}", f"p{i}", f"r{i}", f"g{i}"
        law = f"a0+a/(1+pow({rep}/K,n))"
        for mrna, prot in ((m, p), (r, g)):
            rxns += [
                ReactionSpec(f"tx_{mrna}", {}, {mrna: 1}, law, _hill_repression(rep, True, hill)),
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


def _random_model(n_reactions: int):
    return lambda hill="pow": random_grn_spec(n_reactions, seed=0, hill=hill)


MODELS = {
    "toggle": toggle_spec,
    "repressilator": repressilator_spec,
    **{f"random_grn_{r}": _random_model(r) for r in RANDOM_SIZES},
}


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
            r.grn_propensity if r.grn_propensity is not None else grn.mass_action(r.rate_name),
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

    def listener(event: str, duration_secs: float, **_) -> None:
        if event in _JAX_COMPILE_EVENTS:
            compile_events.append(duration_secs)

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
    """Per-species mean (over cells) of each cell's time-averaged count, with a z-score; of
    the final counts where ``ys_a`` holds the final state only (stochastix).

    Both samples come from the same Markov chain if the models match, so |z| should be a
    few at most; a wrong propensity typically gives |z| >> 10 at 1e3+ cells.
    """
    final = ys_a.shape[1] == 1
    a = ys_a.astype(np.float64).mean(axis=1)  # (cells, species)
    b = ys_b[:, -1:].astype(np.float64).mean(axis=1) if final else ys_b.astype(float).mean(1)
    ma, mb = a.mean(0), b.mean(0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    z = np.where(se > 0, (ma - mb) / np.where(se > 0, se, 1.0), 0.0)
    return {
        "statistic": "mean over cells of the "
        + ("final count" if final else "per-cell time-averaged count"),
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
        "crn_jax_version": crn_jax_version(),
        "stochastix_version": stochastix_version(),
        "numpy_version": np.__version__,
        "gxx": _gxx_version(),
    }


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:9.2f}M"


# -------------------------------------------------------- grn runs in fresh processes
#
# Each grn measurement runs in its own Python process so that the number of host devices
# (XLA_FLAGS=--xla_force_host_platform_device_count=D, read once when JAX starts) and the grn
# source tree (this checkout, or an older commit for the before/after comparison) can differ
# between runs of the same benchmark; GillesPy2 runs in this process between them.

GRN_VARIANTS = {
    # name: (host devices, Hill form, source) -- "repo" is this checkout, "baseline" --baseline
    "grn": (1, "pow", "repo"),
    "grn_2dev": (2, "pow", "repo"),
    "grn_explog": (1, "explog", "repo"),
    "grn_explog_2dev": (2, "explog", "repo"),
    "grn_baseline": (1, "pow", "baseline"),
}
JAX_PEERS = {
    # name: Hill form given to the peer (the same callables as grn's; see `_peers.py`)
    "crn_jax": "explog",
    "stochastix": "explog",
}
JAX_PEER_MAX_REACTIONS = {"stochastix": 100}
"""Larger networks are skipped for these peers (listed in the JSON's ``skipped``): stochastix
took 30 s per call at 100 reactions and 100 cells, and its cost per event grows with R."""
MELANOMA_CELLS, MELANOMA_HOURS = 64, 48.0


def _worker(job: dict) -> None:
    """Run one grn measurement described by ``job`` and print its result as one JSON line."""
    import jax

    if job["model"] == "melanoma":
        grn = _import_grn()
        import jax.numpy as jnp

        net = grn.models.melanoma()
        ts = jnp.linspace(0.0, MELANOMA_HOURS, int(MELANOMA_HOURS) + 1)
        drug = grn.Schedule(times=[0.0], values={"BRAFi": [0.95]})

        def once(seed):
            c0, t0 = time.process_time(), time.perf_counter()
            sol = grn.simulate(
                net,
                ts=ts,
                key=jax.random.key(seed),
                solver=grn.SSA(),
                n_cells=job["cells"],
                schedule=drug,
            )
            jax.block_until_ready(sol.ys)
            return sol, time.perf_counter() - t0, time.process_time() - c0

        _, first, _ = once(job["seed"])
        sol, wall, cpu = once(job["seed"] + 1)
        events = int(np.asarray(sol.n_events, np.int64).sum())
        out = {"first_call_s": first, "wall_s": wall, "cpu_s": cpu, "total_events": events}
    elif job.get("code", "grn") != "grn":
        spec = MODELS[job["model"]](hill=job["hill"])
        ts = np.linspace(0.0, spec.t_end, N_TIMES)
        if job["code"] == "crn_jax":
            run = crn_jax_simulator(spec, ts)
        else:
            run = stochastix_simulator(spec)

        def timed(seed):
            keys = jax.random.split(jax.random.key(seed), job["cells"])
            c0, t0 = time.process_time(), time.perf_counter()
            ys = np.asarray(jax.block_until_ready(run(keys)))
            return ys, time.perf_counter() - t0, time.process_time() - c0

        _, first, _ = timed(job["seed"])
        ys, wall, cpu = timed(job["seed"] + 1)
        np.save(job["ys_path"], ys)
        out = {"first_call_s": first, "wall_s": wall, "cpu_s": cpu, "dtype": str(ys.dtype)}
    else:
        spec = MODELS[job["model"]](hill=job["hill"])
        ts = np.linspace(0.0, spec.t_end, N_TIMES)
        g = run_grn(grn_network(spec), jax.numpy.asarray(ts, "float32"), job["cells"], job["seed"])
        np.save(job["ys_path"], g.pop("ys"))
        out = {k: v for k, v in g.items() if k != "n_events"}
        out["total_events"] = int(g["n_events"].sum())
    out["devices"] = jax.local_device_count()
    print("RESULT " + json.dumps(out), flush=True)


def _export_tree(ref: str, dest: Path) -> Path:
    """The ``grn`` package as of git ``ref``, unpacked under ``dest`` (read-only git use)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "grn"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _run_variant(job: dict, devices: int, src: Path) -> dict:
    """``_worker(job)`` in a fresh interpreter with ``devices`` host devices, grn from ``src``."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count", "")
    if devices > 1:
        flags = f"{flags} --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"grn worker failed for {job}:\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(lines[-1][len("RESULT ") :])
    out["loadavg_after"] = _loadavg()
    return out


def print_table(results: dict) -> None:
    names = ["gillespy2", "gillespy2_O3", *GRN_VARIANTS, *JAX_PEERS]
    names = [n for n in names if any(n in r for rows in results.values() for r in rows.values())]
    hdr = f"{'model':<18}{'cells':>7}{'ev/cell':>9}  " + "".join(f"{n:>17}" for n in names)
    print("events/s (median over repeats), ratio to GillesPy2 (stock, else -O3) in brackets")
    print(hdr)
    print("-" * len(hdr))
    for model, rows in results.items():
        for cells, r in rows.items():
            ref = r[next(n for n in REFERENCES if n in r)]["events_per_s"]
            cols = []
            for n in names:
                v = r.get(n)
                cols.append(
                    f"{'-':>17}"
                    if v is None
                    else f"{v['events_per_s'] / 1e6:8.2f}M ({v['events_per_s'] / ref:4.1f}x)"
                )
            print(f"{model:<18}{cells:>7}{r['mean_events_per_cell']:9.0f}  " + "".join(cols))


# --------------------------------------------------------------------------------- main


def _parse_max_cells(items: list[str]) -> dict[str, int]:
    out = dict(DEFAULT_MAX_CELLS)
    for item in items:
        name, _, n = item.partition("=")
        if name not in MODELS or not n:
            raise SystemExit(f"--max-cells expects MODEL=N with MODEL in {sorted(MODELS)}")
        out[name] = int(n)
    return out


def _summary(runs: list[dict], total_events: int) -> dict:
    """Median wall time over repeats and the events/s it gives, with every repeat kept."""
    walls = [r["wall_s"] for r in runs]
    wall = float(np.median(walls))
    return {
        "events_per_s": total_events / wall,
        "wall_s": wall,
        "wall_s_repeats": walls,
        "cpu_s_repeats": [r.get("cpu_s") for r in runs],
        "loadavg_repeats": [r.get("loadavg_after") for r in runs],
        "total_events": total_events,
        **{k: runs[0][k] for k in ("compile_s", "devices", "dtype") if k in runs[0]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
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
        "--variants",
        nargs="+",
        choices=list(GRN_VARIANTS),
        default=[v for v in GRN_VARIANTS if v != "grn_baseline"],
        help="grn configurations to time (grn_baseline needs --baseline)",
    )
    ap.add_argument(
        "--baseline",
        metavar="GITREF",
        default=None,
        help="also time grn as of this git commit (variant grn_baseline): before/after",
    )
    ap.add_argument(
        "--jax-peers",
        nargs="*",
        choices=list(JAX_PEERS),
        default=list(JAX_PEERS),
        help="JAX peers to time (the bench extra's crn-jax and stochastix); none: no JAX peer",
    )
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repeats (median kept)")
    ap.add_argument("--no-melanoma", action="store_true", help="skip the melanoma cell-days run")
    ap.add_argument(
        "--no-o3",
        action="store_true",
        help="skip the extra GillesPy2 run with its C++ rebuilt at -O3 (stock build is -O0)",
    )
    ap.add_argument(
        "--no-stock",
        action="store_true",
        help="skip GillesPy2's stock (-O0) build: ratios against -O3 only",
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
    if args.worker:
        _worker(json.loads(args.worker))
        return 0

    cells = args.cells or ([100] if args.quick else list(DEFAULT_CELLS))
    max_cells = _parse_max_cells(args.max_cells)
    out_path = args.output if args.output is not None else (None if args.quick else DEFAULT_OUT)
    variants = list(args.variants)
    if args.baseline and "grn_baseline" not in variants:
        variants.append("grn_baseline")
    if "grn_baseline" in variants and not args.baseline:
        raise SystemExit("variant grn_baseline needs --baseline GITREF")

    ensure_scons_on_path()
    import tempfile

    repo_src = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="ssa_throughput_"))
    sources = {"repo": repo_src}
    if args.baseline:
        sources["baseline"] = _export_tree(args.baseline, tmp)

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
            "repeats": args.repeats,
            "baseline": args.baseline,
            "variants": {
                v: dict(zip(("devices", "hill", "source"), GRN_VARIANTS[v])) for v in variants
            },
            "argv": list(sys.argv[1:] if argv is None else argv),
        },
        "method": {
            "timing": "time.perf_counter wall time; every grn variant runs in a fresh process "
            "(its host-device count and grn source tree), first grn.simulate call = compile + "
            "run, the second (another key) is timed after jax.block_until_ready; compile_s = "
            "trace + lowering + XLA compile of the first call from jax.monitoring events. "
            "gillespy2: model.run(solver=SSACSolver, number_of_trajectories=N) end to end "
            "(C++ executable + decoding its output) in the parent process, SSACSolver build "
            "timed separately. With --repeats R the variants and the peers are run R times "
            "interleaved; the median wall time is reported and every repeat kept with the "
            "1-minute load average after it",
            "event_count": "total_events = sum of grn's sol.n_events in the first repeat of "
            "variant 'grn'; GillesPy2 does not report events, so every side is credited with "
            "the same total (N x grn mean events per cell). events_per_s = total_events / "
            "median wall_s; ratios are therefore wall-time ratios",
            "variants": "grn = 1 host device, Hill terms as (x/K)**n; grn_2dev = the cells "
            "sharded over 2 host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2, "
            "one per core); grn_explog* = Hill terms written exp(n log(x/K)), the same function "
            "(XLA CPU calls scalar libm powf for **); grn_baseline = grn as of --baseline",
            "jax_peers": "crn_jax = crn-jax's make_vmap_simulator (jit(vmap) of a scan over the "
            "100 output intervals, each a while_loop of direct-method steps), float32; "
            "stochastix = jit(vmap(stochastix.faststochsimsolve)) with DirectMethod, final "
            "state only (its trajectory-saving path stores every event), float32. Each runs "
            "in a fresh process on 1 host device, first call compiles, the second (another "
            "key) is timed; both get the same propensity callables as grn (Hill terms as "
            "exp(n log(x/K))), credited with grn's event count like GillesPy2",
            "propensities": "identical formulas: Hill terms as grn callables and GillesPy2 custom "
            "propensity strings; linear terms as grn.mass_action and GillesPy2 'k*X' strings",
            "gillespy2_build": "GillesPy2's own SCons build (CXXFLAGS=-std=c++14, no -O flag, "
            "i.e. -O0), direct method with a reaction dependency graph, one process, one "
            "thread. 'gillespy2' = that stock build (the headline ratio); 'gillespy2_O3' = "
            "the same generated sources rebuilt with g++ -std=c++14 -O3 and swapped in for "
            "GillesPy2's executable, run through the same model.run path",
            "melanoma": f"grn.models.melanoma(), {MELANOMA_CELLS} cells x {MELANOMA_HOURS:g} h "
            "under BRAFi 0.95 from t=0, 49 output times, grn.SSA(); cell_days_per_s = cells x "
            "days / wall_s of the timed call",
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
        print(f"[{name}] building GillesPy2 SSACSolver ...", flush=True)
        peer = None if args.no_stock else GillesPy2SSA(spec, ts_np)
        peer_o3 = None if args.no_o3 else GillesPy2SSA(spec, ts_np, cxxflags=O3_FLAGS)
        model_doc = {
            "n_species": len(spec.species),
            "n_reactions": len(spec.reactions),
            "t_end": spec.t_end,
            "params": spec.params,
            "gillespy2_compile_s": None if peer is None else peer.compile_s,
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
                        f"(raise with --max-cells {name}={n})",
                    }
                )
                print(f"[{name}] {n} cells: skipped (max {max_cells[name]})", flush=True)
                continue
            seed = args.seed + 1000 * mi + 10 * ci
            peers = ["gillespy2", "gillespy2_O3", *args.jax_peers]
            runs: dict[str, list[dict]] = {v: [] for v in [*variants, *peers]}
            ys: dict[str, np.ndarray] = {}
            for rep in range(args.repeats):
                for v in variants:
                    devices, hill, src = GRN_VARIANTS[v]
                    ys_path = tmp / f"{name}_{n}_{v}.npy"
                    job = {"model": name, "cells": n, "seed": seed, "hill": hill}
                    job["ys_path"] = str(ys_path)
                    print(f"[{name}] {n} cells, repeat {rep}: {v} ...", end="", flush=True)
                    runs[v].append(_run_variant(job, devices, sources[src]))
                    print(f" {runs[v][-1]['wall_s']:.2f}s", flush=True)
                    if rep == 0:
                        ys[v] = np.load(ys_path)
                for v in args.jax_peers:
                    if len(spec.reactions) > JAX_PEER_MAX_REACTIONS.get(v, len(spec.reactions)):
                        if rep == 0:
                            doc["skipped"].append(
                                {
                                    "model": name,
                                    "cells": n,
                                    "code": v,
                                    "reason": f"above {JAX_PEER_MAX_REACTIONS[v]} reactions",
                                }
                            )
                        continue
                    ys_path = tmp / f"{name}_{n}_{v}.npy"
                    job = {"model": name, "cells": n, "seed": seed, "hill": JAX_PEERS[v]}
                    job.update(code=v, ys_path=str(ys_path))
                    print(f"[{name}] {n} cells, repeat {rep}: {v} ...", end="", flush=True)
                    runs[v].append(_run_variant(job, 1, repo_src))
                    print(f" {runs[v][-1]['wall_s']:.2f}s", flush=True)
                    if rep == 0:
                        ys[v] = np.load(ys_path)
                for label, solver, offset in zip(REFERENCES, (peer, peer_o3), (1, 2)):
                    if solver is None:
                        continue
                    print(f"[{name}] {n} cells, repeat {rep}: {label} ...", end="", flush=True)
                    ys_p, p_wall, p_cpu = solver.run(n, seed=seed + offset + rep)
                    runs[label].append(
                        {"wall_s": p_wall, "cpu_s": p_cpu, "loadavg_after": _loadavg()}
                    )
                    print(f" {p_wall:.2f}s", flush=True)
                    if rep == 0:
                        ys[label] = ys_p
            first = variants[0]
            total = runs[first][0]["total_events"]
            row = model_doc["cells"][str(n)] = {"mean_events_per_cell": total / n}
            for v, rs in runs.items():
                if rs:
                    row[v] = _summary(rs, total)
            for ref in (r for r in REFERENCES if r in row):
                for v in runs:
                    if v in row and v not in REFERENCES:
                        ratio = row[v]["events_per_s"] / row[ref]["events_per_s"]
                        row[f"ratio_{v}_over_{ref}"] = ratio
            ref = next(r for r in REFERENCES if r in ys)
            row["check"] = {v: _sample_check(ys[v], ys[ref], spec.species) for v in ys if v != ref}
            write()

    if not args.no_melanoma and not args.quick:
        mel: dict = {"cells": MELANOMA_CELLS, "hours": MELANOMA_HOURS}
        for devices in (1, 2):
            print(
                f"[melanoma] {MELANOMA_CELLS} cells x {MELANOMA_HOURS:g} h, {devices} device(s):",
                end="",
                flush=True,
            )
            job = {"model": "melanoma", "cells": MELANOMA_CELLS, "seed": args.seed}
            r = _run_variant(job, devices, repo_src)
            r["cell_days_per_s"] = MELANOMA_CELLS * MELANOMA_HOURS / 24.0 / r["wall_s"]
            r["events_per_s"] = r["total_events"] / r["wall_s"]
            mel[f"{devices}dev"] = r
            print(f" {r['wall_s']:.2f}s, {r['cell_days_per_s']:.2f} cell-days/s", flush=True)
        doc["melanoma"] = mel
        write()

    doc["machine"]["loadavg_at_end"] = _loadavg()
    # Issue 5's targets against the stock build, issue 20's against -O3 (both cores for grn).
    goals = {
        "gillespy2": (("toggle", 10_000, 8.0), ("repressilator", 1_000, 4.0)),
        "gillespy2_O3": (
            ("toggle", 10_000, 4.0),
            ("repressilator", 1_000, 2.0),
            ("repressilator", 10_000, 2.0),
        ),
    }
    doc["targets"] = [
        {
            "statement": f"{v} events/s >= {goal} x {ref} on the {m} at {c} cells",
            "ratio": row[f"ratio_{v}_over_{ref}"],
            "met": row[f"ratio_{v}_over_{ref}"] >= goal,
        }
        for ref, targets in goals.items()
        for m, c, goal in targets
        if (row := doc["results"].get(m, {}).get("cells", {}).get(str(c))) is not None
        for v in variants
        if f"ratio_{v}_over_{ref}" in row
    ]
    write()
    print()
    print_table({m: d["cells"] for m, d in doc["results"].items()})
    for t in doc["targets"]:
        print(f"{'met    ' if t['met'] else 'NOT met'}  {t['statement']}: {t['ratio']:.2f}x")
    if "melanoma" in doc:
        m = doc["melanoma"]
        print(
            f"melanoma SSA: {m['1dev']['cell_days_per_s']:.2f} cell-days/s (1 device), "
            f"{m['2dev']['cell_days_per_s']:.2f} (2 devices)"
        )
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
