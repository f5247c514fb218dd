"""``grn simulate``: an ensemble of cells of a built-in network (optionally the melanoma protocol),
written as simulation.npz, summary.csv, trajectories.png and run.json (melanoma: also
observables.csv and observables.png).

Parsing and writing only: the protocol comes from `grn.models.braf_schedule`, the run from
`grn.simulate`, the melanoma observables from `grn.models.melanoma_observables`.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from . import options, provenance
from .options import UsageError

SOLVERS = {
    "ssa": ("SSA", "exact stochastic simulation (Gillespie's direct method)"),
    "tau": ("TauLeap", "adaptive tau-leaping (Cao, Gillespie & Petzold 2006)"),
    "cle": ("CLE", "chemical Langevin equation, fixed step --dt"),
    "ode": ("ODE", "deterministic reaction-rate equations (one trajectory)"),
    "lna": ("LNA", "linear-noise approximation: mean and covariance (one trajectory)"),
}
"""``--solver`` name -> (class name in `grn`, description)."""


def make_solver(args):
    """The solver ``--solver`` (and ``--dt`` for cle) name."""
    import grn

    cls = getattr(grn, SOLVERS[args.solver][0])
    return cls(dt=args.dt) if args.solver == "cle" else cls()


def add_parser(commands) -> None:
    """Register ``grn simulate`` on the ``grn`` sub-parsers."""
    from grn.models import BUILTIN

    sim = commands.add_parser(
        "simulate",
        help="simulate an ensemble of cells of a built-in network",
        description=(
            "Simulate N cells of a built-in network from t = 0 to T and write simulation.npz, "
            "summary.csv, trajectories.png and run.json into the output folder."
        ),
    )
    sim.add_argument(
        "--model",
        default="telegraph",
        choices=list(BUILTIN),
        metavar="NAME",
        help=f"built-in network: {', '.join(BUILTIN)} (default: %(default)s)",
    )
    sim.add_argument(
        "--solver",
        default="ssa",
        choices=list(SOLVERS),
        help="; ".join(f"{k}: {d}" for k, (_, d) in SOLVERS.items()) + " (default: %(default)s)",
    )
    sim.add_argument(
        "--cells",
        type=options.positive_int,
        default=1000,
        metavar="N",
        help="number of cells (default: %(default)s)",
    )
    sim.add_argument(
        "--t-end",
        type=options.positive_float,
        default=None,
        metavar="T",
        help="final time; output times run from 0 to T (default: 50, or with --protocol braf "
        "the protocol's end in hours)",
    )
    sim.add_argument(
        "--points",
        type=options.points,
        default=None,
        metavar="N",
        help="number of equally spaced output times (default: 101, or with --protocol braf one "
        "a day)",
    )
    sim.add_argument(
        "--dt",
        type=options.positive_float,
        default=0.01,
        metavar="DT",
        help="time step of the cle solver (default: %(default)g)",
    )
    sim.add_argument(
        "--seed", type=options.seed, default=0, metavar="S", help="PRNG seed (default: %(default)s)"
    )
    sim.add_argument(
        "--param",
        type=options.param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter (repeatable)",
    )
    _add_protocol_options(sim)
    sim.add_argument(
        "--batch-size",
        type=options.positive_int,
        default=None,
        metavar="N",
        help="cells simulated at once (bounds memory; default: about 1/20 of them)",
    )
    sim.add_argument(
        "--out",
        type=Path,
        default=Path("grn-out"),
        metavar="DIR",
        help="output folder, created if needed; its files are overwritten (default: %(default)s)",
    )
    sim.add_argument("--float64", action="store_true", help="simulate in double precision")
    sim.set_defaults(func=run)


def _add_protocol_options(sim) -> None:
    group = sim.add_argument_group(
        "protocol (--model melanoma)",
        "BRAF inhibitor on for --on-days, then removed for --off-days; interventions with "
        "--dose. Outputs add observables.csv and observables.png (SOX10-low fraction, wave "
        "scores W1/W2, apoptotic priming, viable cells, SOX10 bimodality).",
    )
    group.add_argument(
        "--protocol",
        choices=["braf", "none"],
        default=None,
        help="braf: BRAFi at --drug-level, then removal (default for melanoma); none: no drug",
    )
    group.add_argument(
        "--on-days",
        type=options.positive_float,
        default=None,
        metavar="D",
        help="days on drug (29)",
    )
    group.add_argument(
        "--off-days",
        type=options.days,
        default=None,
        metavar="D",
        help="days after removal (35; 0 keeps the drug on)",
    )
    group.add_argument(
        "--drug-level",
        type=options.level,
        default=None,
        metavar="U",
        help="BRAFi drug effect in [0, 1] (0.95)",
    )
    group.add_argument(
        "--dose",
        type=options.dose,
        action="append",
        default=[],
        metavar="INPUT=LEVEL@START_H[:DURATION_H]",
        help="an intervention (NFKBi, NAC, EPIi or BH3i) at LEVEL from START_H hours, for "
        "DURATION_H hours (default: to the end); repeatable, one per input",
    )
    group.add_argument(
        "--no-heterogeneity",
        action="store_true",
        help="one value for all cells of each parameter the model draws per cell (melanoma: "
        "the chromatin remodelling rate kM1; default: a log-normal kM1 per cell)",
    )


def _protocol_plan(args, network, overrides: dict, stochastic: bool):
    """Output times, schedule, parameters, PRNG key and a run.json record for ``grn simulate``.

    Resolves the protocol defaults (melanoma: BRAFi 0.95 for 29 days then 35 days off, daily
    outputs, per-cell kM1) and writes the resolved ``t_end``/``points`` back into ``args``.
    """
    from types import SimpleNamespace

    import jax
    import jax.numpy as jnp

    import grn.models as mp

    melanoma = args.model == "melanoma"
    protocol = args.protocol or ("braf" if melanoma else "none")
    given = {
        "--protocol braf": protocol == "braf",
        "--on-days": args.on_days is not None,
        "--off-days": args.off_days is not None,
        "--drug-level": args.drug_level is not None,
        "--dose": bool(args.dose),
        "--no-heterogeneity": args.no_heterogeneity,
    }
    if not melanoma:
        for option, used in given.items():
            if used:
                raise UsageError(f"{option} applies to --model melanoma only, not {args.model!r}")
    if protocol == "none":
        for option in ("--on-days", "--off-days", "--drug-level"):
            if given[option]:
                raise UsageError(f"{option} needs --protocol braf")
    on = 29.0 if args.on_days is None else args.on_days
    off = 35.0 if args.off_days is None else args.off_days
    level = 0.95 if args.drug_level is None else args.drug_level

    if protocol == "braf" and args.t_end is None and args.points is None:
        ts = jnp.asarray(mp.protocol_times(on, off))
    else:
        t_end = args.t_end or ((on + off) * mp.DAY if protocol == "braf" else 50.0)
        points = args.points or (max(2, round(t_end / mp.DAY) + 1) if protocol == "braf" else 101)
        ts = jnp.linspace(0.0, t_end, points)
    args.t_end, args.points = float(ts[-1]), int(ts.shape[0])

    doses = {}
    for name, dose_level, start, duration, text in args.dose:
        if name in doses:
            raise UsageError(f"--dose {text}: input {name!r} is dosed more than once")
        if start >= args.t_end:
            raise UsageError(
                f"--dose {text}: starts at {start:g} h, not before --t-end {args.t_end:g}"
            )
        doses[name] = (dose_level, start) if duration is None else (dose_level, start, duration)
        try:
            mp.braf_schedule(on, off, level, {name: doses[name]})
        except (ValueError, TypeError) as err:
            raise UsageError(f"--dose {text}: {err}") from None
    schedule = None
    if protocol == "braf":
        schedule = mp.braf_schedule(on, off, level, doses)
    elif doses:  # no drug: the interventions alone
        schedule = mp.braf_schedule(args.t_end / mp.DAY, 0.0, 0.0, doses)

    key = jax.random.key(args.seed)
    params = options.cell_parameters(network, overrides, not args.no_heterogeneity)
    heterogeneity = options.describe_cell_params(params, network) if stochastic else {}
    if network.cell_params and not stochastic:
        print(f"{args.solver}: one trajectory at the distributions' medians", file=sys.stderr)

    record = None
    if melanoma:
        record = {
            "protocol": protocol,
            "on_days": on if protocol == "braf" else None,
            "off_days": off if protocol == "braf" else None,
            "drug_level": level if protocol == "braf" else 0.0,
            "doses": {
                name: {"level": d[0], "start_h": d[1], "duration_h": d[2] if len(d) > 2 else None}
                for name, d in doses.items()
            },
            "schedule": None
            if schedule is None
            else {
                "times_h": schedule.times.tolist(),
                "levels": {k: v.tolist() for k, v in schedule.values.items()},
            },
            "heterogeneity": heterogeneity,
            "sox10_low_threshold": mp.default_sox10_threshold(),
        }
    return SimpleNamespace(ts=ts, schedule=schedule, params=params, key=key, record=record)


def run(args) -> int:
    """``grn simulate``: returns the exit status (1 when cells failed)."""
    import contextlib

    import jax

    with jax.enable_x64(True) if args.float64 else contextlib.nullcontext():
        return _run(args)


def _overrides(args, network) -> dict[str, float]:
    """The ``--param NAME=VALUE`` overrides, each a parameter of the network, each given once."""
    overrides: dict[str, float] = {}
    for name, value in args.param:
        if name in overrides:
            raise UsageError(f"--param {name!r} given more than once")
        if name not in network.params:
            raise UsageError(
                f"--param {name}={value:g}: model {args.model!r} has no parameter "
                f"{name!r} (its parameters: {', '.join(network.params)})"
            )
        overrides[name] = value
    return overrides


def _run(args) -> int:
    import jax
    import numpy as np

    import grn

    started = time.perf_counter()
    network = grn.models.BUILTIN[args.model]()
    overrides = _overrides(args, network)
    solver = make_solver(args)
    out = options.output_folder(args.out)
    plan = _protocol_plan(args, network, overrides, solver.stochastic)
    if not solver.stochastic:
        print(f"{args.solver}: deterministic, one trajectory (--cells ignored)", file=sys.stderr)
    t0 = time.perf_counter()
    sol = grn.simulate(
        network,
        ts=plan.ts,
        key=plan.key,
        solver=solver,
        n_cells=args.cells,
        params=plan.params or None,
        schedule=plan.schedule,
        batch_size=args.batch_size,
        throw=False,
        progress=True,
    )
    sol = jax.block_until_ready(sol)
    sim_seconds = time.perf_counter() - t0

    title = f"{args.model} — {SOLVERS[args.solver][0]}"
    files, n_ok = _write_results(sol, out, title, plan)
    ys, result = np.asarray(sol.ys), np.asarray(sol.result)
    n_failed = int(ys.shape[0] - n_ok)
    codes = {
        grn.RESULTS(int(c)).name: int(n) for c, n in zip(*np.unique(result, return_counts=True))
    }
    record = {
        "options": {
            "model": args.model,
            "solver": args.solver,
            "dt": args.dt if args.solver == "cle" else None,
            "cells": args.cells,
            "t_end": args.t_end,
            "points": args.points,
            "seed": args.seed,
            "param": {k: v for k, v in overrides.items()},
            "batch_size": args.batch_size,
            "out": str(out),
            "float64": bool(args.float64),
        },
        "protocol": plan.record,
        "params": {k: float(v) for k, v in {**network.params, **overrides}.items()},
        "species": list(sol.species),
        "trajectories": int(ys.shape[0]),
        "failed_cells": n_failed,
        "result_counts": codes,
        "total_events": int(np.asarray(sol.n_events, dtype=np.int64).sum()),
        "dtype": str(ys.dtype),
        "wall_time_s": {"simulate": sim_seconds, "total": time.perf_counter() - started},
    }
    files["run"] = out / "run.json"
    provenance.write(files["run"], record, args, files)

    what = f"{ys.shape[0]} cells" if solver.stochastic else "1 trajectory"
    print(
        f"wrote {', '.join(p.name for p in files.values())} to {out}/ ({what}, {sim_seconds:.1f} s)"
    )
    if n_failed:
        first = int(next(c for c in result if c != 0))
        print(
            f"grn: error: {n_failed} of {ys.shape[0]} cells failed and are left out of "
            f"summary.csv and the plot; first failure: {grn.RESULTS.message(first)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _write_results(sol, out: Path, title: str, plan) -> tuple[dict[str, Path], int]:
    """simulation.npz, summary.csv (mean and sd over the cells that did not fail),
    trajectories.png and, for a protocol run, the observables; returns the files and how many
    cells did not fail."""
    import numpy as np

    from .plots import ensemble_stats, plot_trajectories

    ts = np.asarray(sol.ts)
    ys = np.asarray(sol.ys)
    result = np.asarray(sol.result)
    mean, sd, n_ok = ensemble_stats(ys, result, sol.cov_within)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "simulation": out / "simulation.npz",
        "summary": out / "summary.csv",
        "plot": out / "trajectories.png",
    }
    np.savez_compressed(
        files["simulation"],
        ts=ts,
        ys=ys,
        log_weight=np.asarray(sol.log_weight),
        n_events=np.asarray(sol.n_events),
        result=result,
        species=np.array(sol.species),
    )
    with open(files["summary"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time"] + [f"{s}_{stat}" for s in sol.species for stat in ("mean", "sd")])
        for k, t in enumerate(ts):
            row = [float(t)]
            for i in range(len(sol.species)):
                row += [float(mean[k, i]), float(sd[k, i])]
            writer.writerow([repr(v) for v in row])
    plot_trajectories(sol, files["plot"], n_single=5, title=title)
    if plan.record is not None:
        files.update(_write_observables(sol, out, title, plan.schedule))
    return files, n_ok


def _write_observables(sol, out: Path, title: str, schedule) -> dict[str, Path]:
    """observables.csv (one row per output time) and observables.png of a melanoma run."""
    import grn.models

    from .plots import plot_observables

    obs = grn.models.melanoma_observables(sol)
    files = {"observables": out / "observables.csv", "observables_plot": out / "observables.png"}
    with open(files["observables"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(obs))
        for row in zip(*obs.values()):
            writer.writerow([repr(float(v)) for v in row])
    plot_observables(obs, files["observables_plot"], schedule=schedule, title=title)
    return files
