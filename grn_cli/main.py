"""The ``grn`` command line: ``grn simulate``, ``dsmts``, ``fit``, ``interventions``, ``demo``.

Every sub-command writes machine-readable results and plots into an output folder. Bad options
exit with status 2 and a one-line ``grn: error: ...`` message naming the culprit, no traceback.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

from grn import __version__

SOLVERS = {
    "ssa": ("SSA", "exact stochastic simulation (Gillespie's direct method)"),
    "tau": ("TauLeap", "adaptive tau-leaping (Cao, Gillespie & Petzold 2006)"),
    "cle": ("CLE", "chemical Langevin equation, fixed step --dt"),
    "ode": ("ODE", "deterministic reaction-rate equations (one trajectory)"),
    "lna": ("LNA", "linear-noise approximation: mean and covariance (one trajectory)"),
}
"""``--solver`` name -> (class name in `grn`, description)."""


def _make_solver(args):
    import grn

    cls = getattr(grn, SOLVERS[args.solver][0])
    return cls(dt=args.dt) if args.solver == "cle" else cls()


class _Fail(Exception):
    """A user error found by the CLI itself (printed as ``grn: error: ...``, exit code 2)."""


# -- option types ------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _points(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be at least 2 (output times run from 0 to --t-end), got {text!r}"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {text!r}")
    return value


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"value of {name!r} must be a number, got {value!r} (in {text!r})"
        ) from None
    return name, number


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from grn.models import BUILTIN

    parser = argparse.ArgumentParser(
        prog="grn",
        description="Stochastic gene-regulatory-network simulation in JAX.",
        epilog="Run 'grn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"grn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
        type=_positive_int,
        default=1000,
        metavar="N",
        help="number of cells (default: %(default)s)",
    )
    sim.add_argument(
        "--t-end",
        type=_positive_float,
        default=None,
        metavar="T",
        help="final time; output times run from 0 to T (default: 50, or with --protocol braf "
        "the protocol's end in hours)",
    )
    sim.add_argument(
        "--points",
        type=_points,
        default=None,
        metavar="N",
        help="number of equally spaced output times (default: 101, or with --protocol braf one "
        "a day)",
    )
    sim.add_argument(
        "--dt",
        type=_positive_float,
        default=0.01,
        metavar="DT",
        help="time step of the cle solver (default: %(default)g)",
    )
    sim.add_argument(
        "--seed", type=_seed, default=0, metavar="S", help="PRNG seed (default: %(default)s)"
    )
    sim.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter (repeatable)",
    )
    _add_protocol_options(sim)
    sim.add_argument(
        "--batch-size",
        type=_positive_int,
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
    sim.set_defaults(func=_simulate)

    dsmts = commands.add_parser(
        "dsmts",
        help="run the SBML Discrete Stochastic Models Test Suite with the exact SSA",
        description=(
            "Load each DSMTS case from its SBML file, simulate it with the exact SSA and score "
            "the mean and sd tests of the suite's user guide; writes dsmts.csv and dsmts.md. "
            "The suite is read from $GRN_SHARED/dsmts or ../shared/dsmts, or --suite."
        ),
    )
    dsmts.add_argument("--cases", nargs="+", metavar="CASE", help="case numbers (default: all)")
    dsmts.add_argument(
        "--solver",
        choices=["ssa", "tau", "cle"],
        default="ssa",
        help="ssa: the suite's mean and sd tests; tau (epsilon 0.01) or cle (dt 0.01): the "
        "guide's accuracy band for approximate simulators (default: %(default)s)",
    )
    dsmts.add_argument(
        "--cells",
        type=_positive_int,
        default=10_000,
        metavar="N",
        help="cells per case (default: %(default)s)",
    )
    dsmts.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="PRNG seed; case c uses fold_in(key(S), c) (default: %(default)s)",
    )
    dsmts.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="cells simulated at once (bounds memory)",
    )
    dsmts.add_argument(
        "--suite",
        type=Path,
        default=None,
        metavar="DIR",
        help="the dsmts/ folder (default: found from $GRN_SHARED or ../shared)",
    )
    dsmts.add_argument(
        "--out",
        type=Path,
        default=Path("grn-dsmts"),
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    dsmts.set_defaults(func=_dsmts)

    from . import demo, fit, interventions

    fit.add_parser(commands)
    interventions.add_parser(commands)
    demo.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``grn`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's own errors (status 2)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (_Fail, ValueError, KeyError, TypeError) as err:
        if not _raised_by_grn(err):
            raise  # a bug, not a bad option: keep the traceback
        print(f"grn: error: {_message(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"grn: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("grn: interrupted", file=sys.stderr)
        return 130


def _raised_by_grn(err: BaseException) -> bool:
    """Whether ``err`` was raised in grn's own code (its validation), not deep inside JAX."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return True
    here = Path(__file__).resolve().parent
    packages = (here, here.parent / "grn", here.parent / "fitting")  # the checks of all three
    return any(p in Path(tb.tb_frame.f_code.co_filename).resolve().parents for p in packages)


def _message(err: Exception) -> str:
    # str(KeyError("text")) is "'text'": show the plain message instead.
    if type(err) is KeyError and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err)


# -- grn dsmts ---------------------------------------------------------------------------------
def _dsmts(args) -> int:
    cases = args.cases
    if cases is not None:
        bad = [c for c in cases if not c.isdigit()]
        if bad:
            raise _Fail(f"--cases takes case numbers such as 1 or 00001, got {bad[0]!r}")
    started = time.perf_counter()

    def show(row):
        verdict = "pass" if row["pass"] else "FAIL"
        print(
            f"{row['case']}: {verdict}  mean fails {row['mean_fails']}, sd fails "
            f"{row['sd_fails']}, {row['seconds']} s {row['note']}",
            flush=True,
        )

    import grn

    solver = {
        "ssa": grn.SSA,
        "tau": lambda: grn.TauLeap(epsilon=0.01),
        "cle": lambda: grn.CLE(dt=0.01),
    }[args.solver]()
    rows = grn.run_dsmts(
        cases,
        n_cells=args.cells,
        seed=args.seed,
        solver=solver,
        root=args.suite,
        batch_size=args.batch_size,
        progress=show,
    )
    title = (
        f"DSMTS conformance: {type(solver).__name__}, {args.cells} cells per case, seed "
        f"{args.seed} (`grn dsmts --solver {args.solver} --cells {args.cells} --seed {args.seed}`)"
    )
    csv_path, md_path = grn.write_dsmts_table(rows, args.out, title=title)
    n_pass = sum(bool(r["pass"]) for r in rows)
    print(
        f"{n_pass} of {len(rows)} cases pass; wrote {csv_path} and {md_path} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return 0 if n_pass == len(rows) else 1


# -- grn simulate: protocols (melanoma) --------------------------------------------------------
def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _level(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a level in [0, 1], got {text!r}")
    return value


def _days(text: str) -> float:
    value = _float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of days >= 0, got {text!r}")
    return value


def _dose(text: str) -> tuple:
    """``INPUT=LEVEL@START_H[:DURATION_H]`` -> (input, level, start_h, duration_h or None, text)."""
    name, sep, rest = text.partition("=")
    level, at, when = rest.partition("@")
    start, colon, duration = when.partition(":")
    parts = (name.strip(), level.strip(), start.strip())
    if not (sep and at and all(parts)) or (colon and not duration.strip()):
        raise argparse.ArgumentTypeError(
            f"expected INPUT=LEVEL@START_H[:DURATION_H] (e.g. NFKBi=0.8@0:696), got {text!r}"
        )
    numbers = []
    for what, value in (("LEVEL", level), ("START_H", start), ("DURATION_H", duration)):
        if what == "DURATION_H" and not colon:
            numbers.append(None)
            continue
        try:
            numbers.append(float(value))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a number, got {value.strip()!r} (in {text!r})"
            ) from None
    return (parts[0], *numbers, text)


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
        "--on-days", type=_positive_float, default=None, metavar="D", help="days on drug (29)"
    )
    group.add_argument(
        "--off-days",
        type=_days,
        default=None,
        metavar="D",
        help="days after removal (35; 0 keeps the drug on)",
    )
    group.add_argument(
        "--drug-level",
        type=_level,
        default=None,
        metavar="U",
        help="BRAFi drug effect in [0, 1] (0.95)",
    )
    group.add_argument(
        "--dose",
        type=_dose,
        action="append",
        default=[],
        metavar="INPUT=LEVEL@START_H[:DURATION_H]",
        help="an intervention (NFKBi, NAC, EPIi or BH3i) at LEVEL from START_H hours, for "
        "DURATION_H hours (default: to the end); repeatable, one per input",
    )
    group.add_argument(
        "--no-heterogeneity",
        action="store_true",
        help="one chromatin remodelling rate kM1 for all cells (default: a log-normal kM1 per "
        "cell, stochastic solvers)",
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
                raise _Fail(f"{option} applies to --model melanoma only, not {args.model!r}")
    if protocol == "none":
        for option in ("--on-days", "--off-days", "--drug-level"):
            if given[option]:
                raise _Fail(f"{option} needs --protocol braf")
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
            raise _Fail(f"--dose {text}: input {name!r} is dosed more than once")
        if start >= args.t_end:
            raise _Fail(f"--dose {text}: starts at {start:g} h, not before --t-end {args.t_end:g}")
        doses[name] = (dose_level, start) if duration is None else (dose_level, start, duration)
        try:
            mp.braf_schedule(on, off, level, {name: doses[name]})
        except (ValueError, TypeError) as err:
            raise _Fail(f"--dose {text}: {err}") from None
    schedule = None
    if protocol == "braf":
        schedule = mp.braf_schedule(on, off, level, doses)
    elif doses:  # no drug: the interventions alone
        schedule = mp.braf_schedule(args.t_end / mp.DAY, 0.0, 0.0, doses)

    key = jax.random.key(args.seed)
    params = dict(overrides)
    heterogeneity = None
    if melanoma and stochastic and not args.no_heterogeneity:
        key, key_cells = jax.random.split(key)
        median = overrides.get("kM1", float(network.params["kM1"]))
        params.update(mp.melanoma_cell_params(key_cells, args.cells, kM1=median))
        heterogeneity = {"parameter": "kM1", "median": median, "log_sd": mp.KM1_LOG_SD}
    elif melanoma and not stochastic and not args.no_heterogeneity:
        print(f"{args.solver}: one kM1 (no per-cell heterogeneity)", file=sys.stderr)

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


# -- grn simulate ------------------------------------------------------------------------------
def _simulate(args) -> int:
    import contextlib

    import jax

    with jax.enable_x64(True) if args.float64 else contextlib.nullcontext():
        return _simulate_inner(args)


def _simulate_inner(args) -> int:
    import jax
    import numpy as np

    import grn

    from .plots import ensemble_stats, plot_trajectories

    started = time.perf_counter()
    network = grn.models.BUILTIN[args.model]()
    overrides: dict[str, float] = {}
    for name, value in args.param:
        if name in overrides:
            raise _Fail(f"--param {name!r} given more than once")
        if name not in network.params:
            raise _Fail(
                f"--param {name}={value:g}: model {args.model!r} has no parameter "
                f"{name!r} (its parameters: {', '.join(network.params)})"
            )
        overrides[name] = value
    solver = _make_solver(args)
    out = args.out
    if out.exists() and not out.is_dir():
        raise _Fail(f"--out {str(out)!r} exists and is not a folder")

    plan = _protocol_plan(args, network, overrides, solver.stochastic)
    ts = plan.ts
    if not solver.stochastic:
        print(f"{args.solver}: deterministic, one trajectory (--cells ignored)", file=sys.stderr)
    t0 = time.perf_counter()
    sol = grn.simulate(
        network,
        ts=ts,
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

    ts_np = np.asarray(sol.ts)
    ys = np.asarray(sol.ys)
    result = np.asarray(sol.result)
    mean, sd, n_ok = ensemble_stats(ys, result, sol.cov_within)
    n_failed = int(ys.shape[0] - n_ok)

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "simulation": out / "simulation.npz",
        "summary": out / "summary.csv",
        "plot": out / "trajectories.png",
        "run": out / "run.json",
    }
    np.savez_compressed(
        files["simulation"],
        ts=ts_np,
        ys=ys,
        log_weight=np.asarray(sol.log_weight),
        n_events=np.asarray(sol.n_events),
        result=result,
        species=np.array(sol.species),
    )
    with open(files["summary"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time"] + [f"{s}_{stat}" for s in sol.species for stat in ("mean", "sd")])
        for k, t in enumerate(ts_np):
            row = [float(t)]
            for i in range(len(sol.species)):
                row += [float(mean[k, i]), float(sd[k, i])]
            writer.writerow([repr(v) for v in row])
    title = f"{args.model} — {SOLVERS[args.solver][0]}"
    plot_trajectories(sol, files["plot"], n_single=5, title=title)
    if plan.record is not None:
        files.update(_write_observables(sol, out, title, plan.schedule))
        files["run"] = files.pop("run")  # run.json stays last

    codes = {
        grn.RESULTS(int(c)).name: int(n) for c, n in zip(*np.unique(result, return_counts=True))
    }
    devices = jax.devices()
    run = {
        "command": "simulate",
        "argv": args.argv,
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
        "versions": {
            "grn": grn.__version__,
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
        "device": {
            "backend": jax.default_backend(),
            "count": len(devices),
            "kind": devices[0].device_kind,
            "devices": [str(d) for d in devices],
        },
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": {k: p.name for k, p in files.items()},
    }
    files["run"].write_text(json.dumps(run, indent=2) + "\n")

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


if __name__ == "__main__":
    sys.exit(main())
