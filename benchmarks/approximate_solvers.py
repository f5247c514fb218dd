"""Approximate solvers: grn.TauLeap and grn.CLE against exact SSA and GillesPy2's tau-leaping.

In one process, on the same models and numbers of trajectories ("cells"):

1. Throughput. Wall time of ``grn.SSA()``, ``grn.TauLeap(epsilon=0.03)``,
   ``grn.TauLeap(epsilon=0.01)``, ``grn.CLE(dt=0.01)``, GillesPy2's compiled C++
   ``TauLeapingCSolver`` (``tau_tol=0.03``, its default and the same epsilon as grn's default)
   and, for reference, its ``SSACSolver`` on

   * ``immigration_death``: ``0 -> X`` (alpha = 1000), ``X -> 0`` (mu = 0.1) from X = 0 over
     [0, 50], 51 output times; some 9e4 reactions per cell, copy numbers up to 1e4, where leaping
     pays;
   * ``toggle``: the toggle switch of ``ssa_throughput.py`` (101 output times over [0, 100]),
     copy numbers of 5-50, where tau-leaping mostly falls back to exact steps.

   Compile time is excluded and reported apart, as in ``ssa_throughput.py``: grn's first
   ``grn.simulate`` call compiles and runs, the second call (another key) is the measurement and
   ``compile_s`` is the first call's trace + lowering + XLA time from ``jax.monitoring``;
   GillesPy2's C++ build is timed once per model and solver. A row that would take more than
   ``--cap-s`` (120 s) is skipped, predicted from the same method's row at the previous cell count
   (linear in cells), and listed in the JSON under ``skipped``.

2. Accuracy against exact references, at t >= 5: the worst relative error of the mean and of
   the sd (signed, at the worst time), and the DSMTS guide's band ratios (error / tolerance,
   2 % for the mean and 5 % for the sd; <= 1 is inside the band):

   * immigration_death against its law, Poisson with mean alpha/mu (1 - e^{-mu t}), from the
     samples of the throughput runs (so at every cell count run);
   * both throughput models against grn's SSA sample of the same size (a Monte-Carlo reference:
     GillesPy2's SSA row shows the noise floor), with ``ssa_throughput``'s z-score check;
   * DSMTS 00001 (birth-death), 00021 (immigration-death, alpha = 10) and 00030 (dimerisation,
     propensity k1 P (P-1)/2) at 10,000 cells against the exact reference mean and sd
     (``grn._conformance.load_reference`` / ``band_errors``), for grn's approximate solvers,
     GillesPy2's tau-leaping and grn's SSA (the Monte-Carlo noise floor). The models are built
     from one description for both codes, with the rate laws as DSMTS defines them.

The Monte-Carlo noise matters: at 10,000 cells the sd of a Poisson sample has a relative
standard error of about 0.7 %, so a worst error over 46 times of about 2 % (band ratio ~0.4)
is noise; the exact SSA rows show it.

Usage (from the repository root)::

    python benchmarks/approximate_solvers.py           # 1e3 and 1e4 cells, writes the JSON
    python benchmarks/approximate_solvers.py --quick   # 200 cells, DSMTS at 1e3, no JSON
    python benchmarks/approximate_solvers.py --cells 1000 --models toggle --no-dsmts

Requires the ``bench`` extra (``gillespy2``, ``scons``) and ``g++``; DSMTS data in
``$GRN_SHARED/dsmts`` (or ``../shared/dsmts``), else that part is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Run as a script: benchmarks/ is on sys.path.
from _peers import (
    GillesPy2SSA,
    GillesPy2TauLeap,
    ModelSpec,
    ReactionSpec,
    ensure_scons_on_path,
)
from ssa_throughput import (
    _JAX_COMPILE_EVENTS,
    N_TIMES as TOGGLE_N_TIMES,
    _import_grn,
    _loadavg,
    _sample_check,
    grn_network,
    machine_info,
    toggle_spec,
)

DEFAULT_CELLS = (1_000, 10_000)
QUICK_CELLS = (200,)
DSMTS_CASES = ("00001", "00021", "00030")
DSMTS_CELLS = 10_000
QUICK_DSMTS_CELLS = 1_000
CAP_S = 120.0  # skip a row predicted to take longer than this (s)
T_MIN = 5.0  # accuracy is scored at t >= T_MIN
MEAN_TOL, SD_TOL = 0.02, 0.05  # the DSMTS guide's band for approximate simulators
GILLESPY2_TAU_TOLS = (0.03,)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "approximate_solvers.json"


# ------------------------------------------------------------------------------- models


def _linear(name: str, species: str, k: str, reactants, products) -> ReactionSpec:
    """A mass-action reaction of order <= 1 (GillesPy2 string ``k*X`` or ``k``)."""
    prop = f"{k}*{species}" if reactants else k
    return ReactionSpec(name, reactants, products, prop, rate_param=k)


def immigration_death_spec(
    alpha: float = 1000.0, mu: float = 0.1, name: str = "immigration_death"
) -> ModelSpec:
    """``0 -> X`` (alpha), ``X -> 0`` (mu X) from X = 0 over [0, 50]."""
    return ModelSpec(
        name=name,
        species=["X"],
        params={"alpha": alpha, "mu": mu},
        x0={"X": 0},
        t_end=50.0,
        reactions=[
            _linear("immigration", "X", "alpha", {}, {"X": 1}),
            _linear("death", "X", "mu", {"X": 1}, {}),
        ],
    )


def birth_death_spec() -> ModelSpec:
    """DSMTS 00001: ``X -> 2X`` (lambda X), ``X -> 0`` (mu X), lambda = 0.1, mu = 0.11, X0 = 100."""
    return ModelSpec(
        name="dsmts_00001",
        species=["X"],
        params={"lam": 0.1, "mu": 0.11},
        x0={"X": 100},
        t_end=50.0,
        reactions=[
            _linear("birth", "X", "lam", {"X": 1}, {"X": 2}),
            _linear("death", "X", "mu", {"X": 1}, {}),
        ],
    )


def dimerisation_spec() -> ModelSpec:
    """DSMTS 00030: ``2P -> P2`` (k1 P (P-1)/2), ``P2 -> 2P`` (k2 P2), k1 = 1e-3, k2 = 1e-2."""
    return ModelSpec(
        name="dsmts_00030",
        species=["P", "P2"],
        params={"k1": 0.001, "k2": 0.01},
        x0={"P": 100, "P2": 0},
        t_end=50.0,
        reactions=[
            # grn.mass_action on "2 P" is k1 P (P-1) / 2, the DSMTS propensity.
            ReactionSpec("dimerisation", {"P": 2}, {"P2": 1}, "k1*P*(P-1)/2", rate_param="k1"),
            _linear("dissociation", "P2", "k2", {"P2": 1}, {"P": 2}),
        ],
    )


DSMTS_SPECS: dict[str, Callable[[], ModelSpec]] = {
    "00001": birth_death_spec,
    "00021": lambda: immigration_death_spec(alpha=10.0, mu=0.1, name="dsmts_00021"),
    "00030": dimerisation_spec,
}

# name -> (spec, number of output times over [0, t_end])
MODELS: dict[str, tuple[Callable[[], ModelSpec], int]] = {
    "immigration_death": (immigration_death_spec, 51),
    "toggle": (toggle_spec, TOGGLE_N_TIMES),
}


def immigration_death_law(spec: ModelSpec, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and sd: X(t) ~ Poisson(alpha/mu (1 - e^{-mu t})) from X = 0."""
    alpha, mu = spec.params["alpha"], spec.params["mu"]
    mean = alpha / mu * (1.0 - np.exp(-mu * np.asarray(ts, np.float64)))
    return mean, np.sqrt(mean)


# ------------------------------------------------------------------------------ methods


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    kind: str  # "grn", "gillespy2_tau" or "gillespy2_ssa"
    make_solver: Callable[[], object] | None = None  # grn
    tau_tol: float | None = None  # gillespy2_tau
    matched_tau_key: str | None = None  # GillesPy2 tau-leaping at the same eps


def methods(tau_tols: tuple[float, ...]) -> list[Method]:
    grn = _import_grn()
    out = [
        Method("grn_ssa", "grn SSA", "grn", grn.SSA),
        *(
            Method(
                f"grn_tau_{eps:g}",
                f"grn TauLeap eps={eps:g}",
                "grn",
                lambda eps=eps: grn.TauLeap(epsilon=eps),
                matched_tau_key=f"gillespy2_tau_{eps:g}" if eps in tau_tols else None,
            )
            for eps in (0.03, 0.01)
        ),
        Method("grn_cle_0.01", "grn CLE dt=0.01", "grn", lambda: grn.CLE(dt=0.01)),
        *(
            Method(
                f"gillespy2_tau_{tol:g}", f"GillesPy2 tau tol={tol:g}", "gillespy2_tau", None, tol
            )
            for tol in tau_tols
        ),
        Method("gillespy2_ssa", "GillesPy2 SSA", "gillespy2_ssa"),
    ]
    return out


# ----------------------------------------------------------------------------- grn runs


def _grn_call(net, ts, solver, n_cells: int, key_seed: int, compile_events: list[float]):
    import jax

    grn = _import_grn()
    compile_events.clear()
    c0, t0 = time.process_time(), time.perf_counter()
    sol = grn.simulate(
        net, ts=ts, key=jax.random.key(key_seed), solver=solver, n_cells=n_cells, throw=False
    )
    jax.block_until_ready((sol.ys, sol.n_events, sol.result))
    return sol, time.perf_counter() - t0, time.process_time() - c0, sum(compile_events)


def run_grn(net, ts, solver, n_cells: int, seed: int, timed: bool = True) -> dict:
    """grn.simulate twice (``timed``: compile + run, then the measured call), or once.

    With ``timed=False`` only the first call runs; its ``wall_s`` includes the compile.
    """
    import jax

    grn = _import_grn()
    events: list[float] = []

    def listener(event: str, duration_s: float, **_) -> None:
        if event in _JAX_COMPILE_EVENTS:
            events.append(duration_s)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        sol, first, cpu, compile_s = _grn_call(net, ts, solver, n_cells, seed, events)
        out = {"first_call_s": first, "compile_s": compile_s}
        if timed:
            sol, wall, cpu, compile_timed = _grn_call(net, ts, solver, n_cells, seed + 1, events)
            out.update(wall_s=wall, first_minus_second_s=first - wall)
            out["compile_s_timed_call"] = compile_timed
        else:
            out["wall_s"] = first
        out["cpu_s"] = cpu
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    ok = np.asarray(sol.result) == grn.RESULTS.successful
    out["n_failed"] = int(np.sum(~ok))
    out["ys"] = np.asarray(sol.ys, np.float64)[ok]
    out["dtype"] = str(sol.ys.dtype)
    out["mean_n_events"] = float(np.mean(np.asarray(sol.n_events, np.float64)))
    return out


# ------------------------------------------------------------------------------ scoring


def _r(x: float, nd: int = 5) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def moment_errors(ys: np.ndarray, ts: np.ndarray, mean_ref, sd_ref, species: list[str]) -> dict:
    """Worst relative error of the mean and of the sd at t >= T_MIN over species and times.

    ``ys`` is (cells, times, species); ``mean_ref`` / ``sd_ref`` are (times, species). The
    worst errors are signed (sample / reference - 1 at the worst time) and come with the band
    ratios |error| / 0.02 (mean) and |error| / 0.05 (sd).
    """
    late = np.asarray(ts) >= T_MIN
    x = np.asarray(ys, np.float64)[:, late]
    m_ref, s_ref = np.asarray(mean_ref)[late], np.asarray(sd_ref)[late]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_m = x.mean(axis=0) / m_ref - 1.0
        rel_s = x.std(axis=0, ddof=1) / s_ref - 1.0
    rel_m = np.where(np.isfinite(rel_m), rel_m, 0.0)
    rel_s = np.where(np.isfinite(rel_s), rel_s, 0.0)
    im = np.unravel_index(np.argmax(np.abs(rel_m)), rel_m.shape)
    isd = np.unravel_index(np.argmax(np.abs(rel_s)), rel_s.shape)
    t_late = np.asarray(ts)[late]
    return {
        "n": int(x.shape[0]),
        "worst_rel_mean": _r(rel_m[im]),
        "worst_rel_mean_at": [float(t_late[im[0]]), species[im[1]]],
        "worst_rel_sd": _r(rel_s[isd]),
        "worst_rel_sd_at": [float(t_late[isd[0]]), species[isd[1]]],
        "mean_rel_sd_error": _r(float(np.mean(rel_s))),
        "band_mean": _r(abs(rel_m[im]) / MEAN_TOL, 3),
        "band_sd": _r(abs(rel_s[isd]) / SD_TOL, 3),
    }


def sample_moments(ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(ys, np.float64)
    return x.mean(axis=0), x.std(axis=0, ddof=1)


# -------------------------------------------------------------------------- throughput


def throughput(args, doc: dict, write: Callable[[], None]) -> None:
    import jax.numpy as jnp

    ms = methods(tuple(args.gillespy2_tau_tols))
    for mi, name in enumerate(args.models):
        make_spec, n_times = MODELS[name]
        spec = make_spec()
        ts_np = np.linspace(0.0, spec.t_end, n_times)
        ts = jnp.asarray(ts_np, dtype=jnp.float32)
        net = grn_network(spec)
        print(f"[{name}] building GillesPy2 TauLeapingCSolver and SSACSolver ...", flush=True)
        gtau = GillesPy2TauLeap(spec, ts_np) if any(m.kind == "gillespy2_tau" for m in ms) else None
        gssa = GillesPy2SSA(spec, ts_np)
        law = immigration_death_law(spec, ts_np) if name == "immigration_death" else None
        model_doc = doc["throughput"][name] = {
            "n_species": len(spec.species),
            "n_reactions": len(spec.reactions),
            "t_end": spec.t_end,
            "n_times": n_times,
            "params": spec.params,
            "x0": spec.x0,
            "gillespy2_tau_compile_s": None if gtau is None else gtau.compile_s,
            "gillespy2_ssa_compile_s": gssa.compile_s,
            "cells": {},
        }
        last: dict[str, tuple[int, float, float]] = {}  # method -> (cells, row cost, compile)
        for ci, n in enumerate(args.cells):
            rows = model_doc["cells"][str(n)] = {}
            ssa_ys = None
            for k, m in enumerate(ms):
                if m.key in last:
                    n0, cost0, fixed = last[m.key]
                    predicted = fixed + (cost0 - fixed) * n / n0
                    if predicted > args.cap_s:
                        doc["skipped"].append(
                            {
                                "part": "throughput",
                                "model": name,
                                "method": m.key,
                                "cells": n,
                                "predicted_s": round(predicted, 1),
                                "reason": f"predicted {predicted:.0f} s (from {n0} cells) > "
                                f"cap {args.cap_s:g} s",
                            }
                        )
                        print(f"[{name}] {n:>6} {m.label:<24} skipped (~{predicted:.0f} s)")
                        continue
                seed = args.seed + 1000 * mi + 100 * ci + 10 * k
                load = _loadavg()
                print(f"[{name}] {n:>6} {m.label:<24}", end="", flush=True)
                if m.kind == "grn":
                    g = run_grn(net, ts, m.make_solver(), n, seed)
                    ys = g.pop("ys")
                    row = {**g, "loadavg_before": load}
                    last[m.key] = (n, g["first_call_s"] + g["wall_s"], g["compile_s"])
                else:
                    if m.kind == "gillespy2_tau":
                        ys, wall, cpu = gtau.run(n, seed=seed, tau_tol=m.tau_tol)
                        compile_s = gtau.compile_s
                    else:
                        ys, wall, cpu = gssa.run(n, seed=seed)
                        compile_s = gssa.compile_s
                    row = {
                        "wall_s": wall,
                        "cpu_s": cpu,
                        "compile_s": compile_s,
                        "n_failed": 0,
                        "loadavg_before": load,
                    }
                    last[m.key] = (n, wall, 0.0)
                print(f" {row['wall_s']:8.2f} s", flush=True)
                if m.key == "grn_ssa":
                    ssa_ys = ys
                acc = {}
                if law is not None:
                    acc["vs_exact_law"] = moment_errors(
                        ys, ts_np, law[0][:, None], law[1][:, None], spec.species
                    )
                if ssa_ys is not None and m.key != "grn_ssa" and len(ys):
                    mean_ref, sd_ref = sample_moments(ssa_ys)
                    acc["vs_grn_ssa_sample"] = moment_errors(
                        ys, ts_np, mean_ref, sd_ref, spec.species
                    )
                    check = _sample_check(ssa_ys, ys, spec.species)
                    check["grn_ssa"], check["method"] = check.pop("grn"), check.pop("gillespy2")
                    acc["vs_grn_ssa_sample"]["check"] = check
                row["accuracy"] = acc
                rows[m.key] = row
            _speedups(rows, ms)
            write()


def _speedups(rows: dict, ms: list[Method]) -> None:
    ssa = rows.get("grn_ssa", {}).get("wall_s")
    tau = rows.get("gillespy2_tau_0.03", {}).get("wall_s")
    for m in ms:
        row = rows.get(m.key)
        if row is None:
            continue
        row["speedup_vs_grn_ssa"] = _r(ssa / row["wall_s"], 3) if ssa else None
        row["speedup_vs_gillespy2_tau_0.03"] = _r(tau / row["wall_s"], 3) if tau else None
        matched = rows.get(m.matched_tau_key or "", {}).get("wall_s")
        if m.matched_tau_key:
            row["speedup_vs_gillespy2_tau_same_eps"] = (
                _r(matched / row["wall_s"], 3) if matched else None
            )


# ------------------------------------------------------------------------------- DSMTS


def dsmts(args, doc: dict, write: Callable[[], None]) -> None:
    import jax.numpy as jnp

    from grn._conformance import band_errors, load_reference, shared_dsmts_dir

    root = shared_dsmts_dir()
    if root is None:
        doc["dsmts"] = {"skipped": "DSMTS data not found ($GRN_SHARED/dsmts or ../shared/dsmts)"}
        print("DSMTS data not found: accuracy against DSMTS skipped")
        return
    n = args.dsmts_cells
    ms = [m for m in methods(tuple(args.gillespy2_tau_tols)) if m.kind != "gillespy2_ssa"]
    out = doc["dsmts"] = {"root": str(root), "n_cells": n, "t_min": T_MIN, "cases": {}}
    for case in DSMTS_CASES:
        ref = load_reference(root, case)
        spec = DSMTS_SPECS[case]()
        assert list(ref.species) == spec.species, (case, ref.species, spec.species)
        ts_np = np.asarray(ref.times, np.float64)
        ts = jnp.asarray(ts_np, dtype=jnp.float32)
        net = grn_network(spec)
        gtau = GillesPy2TauLeap(spec, ts_np) if any(m.kind == "gillespy2_tau" for m in ms) else None
        mean_ref = np.stack([ref.mean[s] for s in spec.species], axis=-1)
        sd_ref = np.stack([ref.sd[s] for s in spec.species], axis=-1)
        rows = out["cases"][case] = {"model": spec.name, "params": spec.params, "methods": {}}
        for k, m in enumerate(ms):
            seed = args.seed + 7 * int(case) + k
            print(f"[dsmts {case}] {n:>6} {m.label:<24}", end="", flush=True)
            if m.kind == "grn":
                g = run_grn(net, ts, m.make_solver(), n, seed, timed=False)
                ys = g["ys"]
                row = {
                    "wall_s_incl_compile": g["wall_s"],
                    "compile_s": g["compile_s"],
                    "n_failed": g["n_failed"],
                }
            else:
                ys, wall, _ = gtau.run(n, seed=seed, tau_tol=m.tau_tol)
                row = {"wall_s": wall, "compile_s": gtau.compile_s, "n_failed": 0}
            bands = [band_errors(ref, s, ys[:, :, i]) for i, s in enumerate(spec.species)]
            row["band_mean"] = _r(max(float(np.max(b[0])) for b in bands), 3)
            row["band_sd"] = _r(max(float(np.max(b[1])) for b in bands), 3)
            row["band_fails"] = int(sum(np.sum(b[0] > 1) + np.sum(b[1] > 1) for b in bands))
            row["in_band"] = row["band_fails"] == 0
            row.update(moment_errors(ys, ts_np, mean_ref, sd_ref, spec.species))
            rows["methods"][m.key] = row
            print(
                f" band mean {row['band_mean']:.2f} sd {row['band_sd']:.2f}"
                f" ({row.get('wall_s', row.get('wall_s_incl_compile')):.1f} s)",
                flush=True,
            )
            write()


# -------------------------------------------------------------------------------- print


def _f(x, fmt: str, width: int) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:{width}{fmt}}"


def print_tables(doc: dict) -> None:
    labels = {m.key: m.label for m in methods(tuple(doc["config"]["gillespy2_tau_tols"]))}
    print(
        "\nThroughput (wall s of the timed call, compile excluded; speed-up = other wall / this; "
        "xGpy=eps: vs GillesPy2 tau-leaping at tau_tol = eps)"
    )
    hdr = (
        f"{'model':<18}{'cells':>6}  {'method':<24}{'wall s':>8}{'compile':>8}"
        f"{'xSSA':>8}{'xGpyTau':>8}{'xGpy=eps':>9}{'failed':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    for model, md in doc["throughput"].items():
        for cells, rows in md["cells"].items():
            for key, r in rows.items():
                print(
                    f"{model:<18}{cells:>6}  {labels.get(key, key):<24}{r['wall_s']:8.2f}"
                    f"{r['compile_s']:8.2f}{_f(r.get('speedup_vs_grn_ssa'), '.2f', 8)}"
                    f"{_f(r.get('speedup_vs_gillespy2_tau_0.03'), '.2f', 8)}"
                    f"{_f(r.get('speedup_vs_gillespy2_tau_same_eps'), '.2f', 9)}"
                    f"{r['n_failed']:7d}"
                )
    print(
        "\nAccuracy at t >= 5: worst relative error of mean / sd (signed), sd bias = mean over "
        "times of the signed sd error, and band ratio "
        "|err|/2% / |err|/5%"
    )
    hdr = (
        f"{'model':<18}{'cells':>6}  {'method':<24}{'reference':<12}"
        f"{'mean err':>9}{'sd err':>9}{'sd bias':>9}{'band m':>8}{'band sd':>8}"
    )
    print(hdr)
    print("-" * len(hdr))
    for model, md in doc["throughput"].items():
        for cells, rows in md["cells"].items():
            for key, r in rows.items():
                for ref_name, short in (
                    ("vs_exact_law", "exact law"),
                    ("vs_grn_ssa_sample", "grn SSA"),
                ):
                    a = r["accuracy"].get(ref_name)
                    if a is None:
                        continue
                    print(
                        f"{model:<18}{cells:>6}  {labels.get(key, key):<24}{short:<12}"
                        f"{a['worst_rel_mean']:+9.2%}{a['worst_rel_sd']:+9.2%}"
                        f"{a['mean_rel_sd_error']:+9.2%}"
                        f"{a['band_mean']:8.2f}{a['band_sd']:8.2f}"
                    )
    ds = doc.get("dsmts", {})
    if ds.get("cases"):
        print(
            f"\nDSMTS at {ds['n_cells']} cells, t >= 5: band ratios (band_errors; <= 1 inside "
            "the guide's 2 % / 5 % band) and worst relative errors; s* = wall s of one call, "
            "compile included for grn, excluded for GillesPy2"
        )
        hdr = (
            f"{'case':<7}{'method':<24}{'band m':>8}{'band sd':>8}{'fails':>6}"
            f"{'mean err':>9}{'sd err':>9}{'sd bias':>9}{'s':>7}*"
        )
        print(hdr)
        print("-" * len(hdr))
        for case, cd in ds["cases"].items():
            for key, r in cd["methods"].items():
                wall = r.get("wall_s", r.get("wall_s_incl_compile"))
                print(
                    f"{case:<7}{labels.get(key, key):<24}{r['band_mean']:8.2f}{r['band_sd']:8.2f}"
                    f"{r['band_fails']:6d}{r['worst_rel_mean']:+9.2%}{r['worst_rel_sd']:+9.2%}"
                    f"{r['mean_rel_sd_error']:+9.2%}"
                    f"{wall:8.1f}"
                )
    if doc["skipped"]:
        print("\nskipped:")
        for s in doc["skipped"]:
            print(f"  {s['model']} {s['method']} {s['cells']} cells: {s['reason']}")


# --------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cells",
        type=int,
        nargs="+",
        default=None,
        help=f"cell counts for the throughput part, default {' '.join(map(str, DEFAULT_CELLS))}",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_CELLS[0]} cells, DSMTS at {QUICK_DSMTS_CELLS}, no JSON",
    )
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument(
        "--dsmts-cells",
        type=int,
        default=None,
        help=f"cells per DSMTS case (default {DSMTS_CELLS})",
    )
    ap.add_argument("--no-dsmts", action="store_true", help="skip the DSMTS accuracy part")
    ap.add_argument(
        "--gillespy2-tau-tols",
        type=float,
        nargs="+",
        default=list(GILLESPY2_TAU_TOLS),
        help="tau_tol values for GillesPy2's TauLeapingCSolver (default 0.03, its default)",
    )
    ap.add_argument(
        "--cap-s",
        type=float,
        default=CAP_S,
        help=f"skip a row predicted to take longer than this many seconds (default {CAP_S:g})",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path (default benchmarks/results/approximate_solvers.json; "
        "--quick writes only when given)",
    )
    args = ap.parse_args(argv)
    args.cells = sorted(args.cells or (list(QUICK_CELLS) if args.quick else list(DEFAULT_CELLS)))
    if args.dsmts_cells is None:
        args.dsmts_cells = QUICK_DSMTS_CELLS if args.quick else DSMTS_CELLS
    out_path = args.output if args.output is not None else (None if args.quick else DEFAULT_OUT)

    ensure_scons_on_path()
    import jax

    if jax.config.jax_enable_x64:
        print("warning: jax_enable_x64 is on; this benchmark is specified for float32")
    t_start = time.perf_counter()
    doc: dict = {
        "benchmark": "approximate_solvers",
        "description": "grn.TauLeap and grn.CLE vs exact SSA (grn, GillesPy2) and GillesPy2's "
        "TauLeapingCSolver: throughput and accuracy",
        "machine": machine_info(),
        "config": {
            "cells": args.cells,
            "models": args.models,
            "dsmts_cases": [] if args.no_dsmts else list(DSMTS_CASES),
            "dsmts_cells": args.dsmts_cells,
            "gillespy2_tau_tols": list(args.gillespy2_tau_tols),
            "cap_s": args.cap_s,
            "t_min": T_MIN,
            "seed": args.seed,
            "quick": args.quick,
            "argv": list(sys.argv[1:] if argv is None else argv),
        },
        "method": {
            "methods": {m.key: m.label for m in methods(tuple(args.gillespy2_tau_tols))},
            "timing": "time.perf_counter wall time, same process. grn: two grn.simulate calls "
            "(different keys), the second after jax.block_until_ready is wall_s; compile_s = "
            "trace + lowering + XLA compile of the first call (jax.monitoring events). "
            "GillesPy2: model.run(solver=..., number_of_trajectories=N[, tau_tol]) end to end "
            "(C++ executable + decoding), compile_s = the solver's C++ build, once per model. "
            "Both GillesPy2 solvers are its stock builds (-std=c++14, no -O flag).",
            "speedups": "speedup_vs_X = X's wall_s / this row's wall_s at the same model and "
            "cells; gillespy2_tau_0.03 is TauLeapingCSolver at tau_tol=0.03 (its default); "
            "speedup_vs_gillespy2_tau_same_eps compares grn TauLeap(eps) with tau_tol=eps",
            "cap": "a row whose cost (grn: both calls) predicted linearly in cells from the "
            "same method's previous cell count exceeds cap_s is skipped and listed in skipped",
            "accuracy": "at t >= t_min over species and output times: worst_rel_mean = sample "
            "mean / reference mean - 1 and worst_rel_sd = sample sd (ddof=1) / reference sd - 1 "
            "at the time of largest |error| (signed); band_mean = |worst_rel_mean| / 0.02, "
            "band_sd = |worst_rel_sd| / 0.05 (DSMTS guide section 4). vs_exact_law: "
            "immigration_death's Poisson law; vs_grn_ssa_sample: grn SSA's sample of the same "
            "size (both samples noisy), with ssa_throughput's z-score check of per-cell time "
            "averages. dsmts: grn._conformance.band_errors per species (absolute error / 0.2 "
            "where the reference mean < 10), band_fails = times outside the band",
            "n_events": "grn's mean sol.n_events per cell: reactions fired (SSA, TauLeap), "
            "Euler steps (CLE)",
            "gillespy2_tau_leaping": "TauLeapingCSolver (GillesPy2 1.8.3 source, "
            "c_base/Tau/tau.cpp and tau_leaping_cpp_solver): Cao et al. (2006) step selection "
            "with mu_i and sigma_i summed over the reactions that consume species i only (so "
            "production does not bound the leap), tau_tol as epsilon; critical reactions "
            "only shorten the step to 1 / (largest propensity) and are leapt like the others "
            "(no exact-step fallback); a leap that makes a count negative is retried with tau "
            "halved; where no reactant has a consuming reaction with a positive rate (X = 0 "
            "in immigration-death) the step is the rest of the output interval",
        },
        "throughput": {},
        "skipped": [],
    }

    def write() -> None:
        if out_path is None:
            return
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(doc, indent=2) + "\n")

    throughput(args, doc, write)
    if not args.no_dsmts:
        dsmts(args, doc, write)
    doc["machine"]["loadavg_at_end"] = _loadavg()
    doc["total_s"] = round(time.perf_counter() - t_start, 1)
    write()
    print_tables(doc)
    loads = [doc["machine"]["loadavg_at_start"], doc["machine"]["loadavg_at_end"]]
    if all(loads) and max(ld[0] for ld in loads) > 0.5 * (os.cpu_count() or 1):
        print(
            f"\nnote: the machine was busy (1-min load average {loads[0][0]} at start, "
            f"{loads[1][0]} at end); timings are contended"
        )
    print(f"\ntotal {doc['total_s']:.0f} s")
    if out_path is not None:
        print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
