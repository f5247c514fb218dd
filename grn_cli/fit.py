"""``grn fit CONFIG.toml --out DIR [--resume]``: fit a network to data from a TOML config;
``grn fit PROBLEM.yaml ...`` fits a PEtab problem (`grn_cli.petab`)."""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

from . import config as checks, options, petab, provenance
from .config import ConfigError, fail

FIT_KEYS = {
    "solver": "lna",
    "n_cells": 1000,
    "steps": 2000,
    "starts": 4,
    "seed": 0,
    "learning_rate": 0.05,
    "max_norm": 10.0,
    "dt": 0.01,
    "method": "tsit5",
    "patience": None,
    "rtol": 1e-4,
    "checkpoint_every": 100,
    "snapshot_loss": "energy",
    "snapshot_weight": 1.0,
    "stderr": True,
    "profile": False,
    "float64": False,
    "gradient": "reverse",
}
SECTIONS = {
    "model": ("builtin", "sbml", "x0", "cell_spread"),
    "data": ("measurements", "conditions"),
    "observables": None,  # name = expression or table
    "parameters": None,  # name = value (frozen) or {init, lower, upper, scale}
    "fit": tuple(FIT_KEYS),
}
SOLVER_NAMES = ("ssa", "tau", "cle", "ode", "lna")
METHODS = ("kvaerno5", "tsit5", "dopri5")
"""``fit.method`` of the ode/lna solvers: explicit RK (tsit5, default; dopri5) or stiff kvaerno5."""


def add_parser(commands) -> None:
    """Register ``grn fit`` on the ``grn`` sub-parsers."""
    parser = commands.add_parser(
        "fit",
        help="fit a network's parameters to measurements (TOML config or PEtab problem)",
        description=(
            "Fit the free parameters of a network to a PEtab-style measurement table, as set out "
            "in CONFIG.toml (see the README's 'Fitting' section), or fit a PEtab v1 problem "
            "(PROBLEM.yaml: float64, starts drawn log-uniformly within its bounds). Writes "
            "fit.json, history.csv, fit.png, history.png and checkpoint.npz into the output "
            "folder."
        ),
    )
    parser.add_argument(
        "config",
        type=Path,
        metavar="CONFIG.toml|PROBLEM.yaml",
        help="the fit's config file, or a PEtab problem's YAML file",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("grn-fit"), metavar="DIR", help="output folder"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoint.npz if present"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    petab.add_arguments(parser)
    parser.set_defaults(func=run)


def _non_negative_table(path, model: dict, key: str, what: str) -> dict:
    """``[model.KEY]`` (default empty): a table of names to non-negative numbers."""
    table = model.get(key, {})
    if not isinstance(table, dict):
        fail(path, f"model.{key}", f"must be a table of {what}")
    for name, value in table.items():
        checks.number(path, f"model.{key}.{name}", value, minimum=0)
    return table


def load_config(path: Path) -> dict:
    """Read and check a fit config; every error names the offending key."""
    path = Path(path)
    raw = checks.read(path, SECTIONS, nonempty=("model", "data", "observables", "parameters"))
    model = raw["model"]
    checks.model_source(path, model)
    x0 = _non_negative_table(path, model, "x0", "species = count")
    spread = _non_negative_table(path, model, "cell_spread", "parameter = log-normal sd")

    data = raw["data"]
    if "measurements" not in data:
        fail(path, "data.measurements", "missing (the measurement table's path)")
    files = {}
    for key in ("measurements", "conditions"):
        if key in data:
            if not isinstance(data[key], str):
                fail(path, f"data.{key}", f"must be a path string, got {data[key]!r}")
            file = (path.parent / data[key]).resolve()
            if not file.is_file():
                fail(path, f"data.{key}", f"file {str(file)!r} not found")
            files[key] = file

    fit = dict(FIT_KEYS) | raw.get("fit", {})
    if fit["method"] not in METHODS:
        fail(path, "fit.method", f"must be one of {METHODS}, got {fit['method']!r}")
    if fit["gradient"] not in ("reverse", "forward"):
        fail(path, "fit.gradient", f"must be 'reverse' or 'forward', got {fit['gradient']!r}")
    if fit["solver"] not in SOLVER_NAMES:
        fail(path, "fit.solver", f"must be one of {SOLVER_NAMES}, got {fit['solver']!r}")
    for key in ("n_cells", "steps", "starts", "checkpoint_every"):
        checks.number(path, f"fit.{key}", fit[key], integer=True, positive=True)
    checks.optional_number(path, "fit.patience", fit["patience"], integer=True, positive=True)
    checks.number(path, "fit.seed", fit["seed"], integer=True, minimum=0)
    for key in ("learning_rate", "max_norm", "dt", "rtol", "snapshot_weight"):
        checks.number(path, f"fit.{key}", fit[key], positive=True)
    for key in ("stderr", "profile", "float64"):
        checks.flag(path, f"fit.{key}", fit[key])

    params_free, params_frozen = {}, {}
    for name, spec in raw["parameters"].items():
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            params_frozen[name] = float(spec)
            continue
        if not isinstance(spec, dict):
            fail(path, f"parameters.{name}", "must be a number (frozen) or a table {init, ...}")
        for key in spec:
            if key not in ("init", "lower", "upper", "scale"):
                fail(path, f"parameters.{name}.{key}", "unknown key (init, lower, upper, scale)")
        for key in ("init", "lower", "upper"):
            if key not in spec:
                fail(path, f"parameters.{name}.{key}", "missing")
            checks.number(path, f"parameters.{name}.{key}", spec[key])
        scale = spec.get("scale", "log")
        if scale not in ("log", "linear"):
            fail(path, f"parameters.{name}.scale", f"must be 'log' or 'linear', got {scale!r}")
        params_free[name] = {**spec, "scale": scale}
    if not params_free:
        fail(path, "parameters", "no free parameter (give at least one {init, lower, upper})")

    for name, spec in raw["observables"].items():
        if not isinstance(spec, str | dict):
            fail(path, f"observables.{name}", "must be an expression string or a table")
    return {
        "path": path,
        "model": model,
        "x0": x0,
        "cell_spread": spread,
        "files": files,
        "observables": raw["observables"],
        "free": params_free,
        "frozen": params_frozen,
        "fit": fit,
    }


def build_problem(config: dict):
    """The `fitting.Problem` a checked config describes (errors name the config key)."""
    import diffrax
    import jax

    import fitting
    import grn

    path = config["path"]
    network = checks.network(path, config["model"])
    for name in config["x0"]:
        if name not in network.species:
            fail(path, f"model.x0.{name}", f"unknown species (species: {list(network.species)})")
    try:
        space = fitting.ParameterSpace(config["free"], config["frozen"])
    except (ValueError, TypeError) as err:
        fail(path, "parameters", str(err))
    fit = config["fit"]
    method = {"kvaerno5": diffrax.Kvaerno5, "tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}
    solver = {
        "ssa": grn.SSA,
        "tau": grn.TauLeap,
        "cle": lambda: grn.CLE(dt=float(fit["dt"])),
        "ode": lambda: grn.ODE(method=method[fit["method"]]()),
        "lna": lambda: grn.LNA(method=method[fit["method"]]()),
    }[fit["solver"]]()
    for name in config["cell_spread"]:
        if name not in network.params:
            fail(path, f"model.cell_spread.{name}", "unknown parameter of the model")
    if config["cell_spread"] and not solver.stochastic:
        fail(path, "model.cell_spread", "per-cell spread needs fit.solver = ssa, tau or cle")
    measurements = fitting.Measurements.read(
        config["files"]["measurements"], config["files"].get("conditions")
    )
    try:
        observables = _observables(config)
        problem = fitting.Problem(
            network,
            measurements,
            observables,
            space,
            solver=solver,
            n_cells=fit["n_cells"],
            key=jax.random.key(fit["seed"]),
            x0=config["x0"] or None,
            snapshot_loss=fit["snapshot_loss"],
            snapshot_weight=float(fit["snapshot_weight"]),
            cell_params={
                name: fitting.lognormal_factors(fit["n_cells"], float(sd))
                for name, sd in config["cell_spread"].items()
            },
        )
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return problem, measurements


def _observables(config):
    import fitting

    out = {}
    for name, spec in config["observables"].items():
        try:
            out[name] = fitting.as_observable(spec, name)
        except (ValueError, TypeError) as err:
            fail(config["path"], f"observables.{name}", str(err))
    return out


def run(args) -> int:
    """``grn fit``: returns the exit status (a .yaml/.yml file is a PEtab problem)."""
    import contextlib

    import jax

    if Path(args.config).suffix.lower() in (".yaml", ".yml"):
        return petab.run(args)
    petab.reject_petab_options(args)
    config = load_config(args.config)
    with jax.enable_x64(True) if config["fit"]["float64"] else contextlib.nullcontext():
        return _run(args, config)


def _run(args, config) -> int:
    import jax

    import fitting

    from .plots import plot_fit

    started = time.perf_counter()
    out = options.output_folder(args.out)
    problem, measurements = build_problem(config)
    settings = config["fit"]
    if not problem.pathwise:
        fail(
            config["path"],
            "fit.solver",
            f"{settings['solver']!r} simulates piecewise-constant paths with no pathwise "
            "gradient; fit with 'lna', 'ode' or 'cle'",
        )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.npz"
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()
    key = jax.random.key(settings["seed"])
    result = fitting.fit(
        problem,
        key=jax.random.fold_in(key, 1),
        n_starts=settings["starts"],
        steps=settings["steps"],
        optimizer=fitting.default_optimizer(
            float(settings["learning_rate"]), float(settings["max_norm"])
        ),
        patience=settings["patience"],
        rtol=float(settings["rtol"]),
        progress=not args.quiet,
        checkpoint=checkpoint,
        checkpoint_every=settings["checkpoint_every"],
        resume=args.resume,
        gradient=settings["gradient"],
    )
    deterministic = settings["solver"] in ("ode", "lna")
    stderr = identifiable = None
    if settings["stderr"] and deterministic and math.isfinite(result.loss):
        se = fitting.standard_errors(problem, result)
        stderr, identifiable = se.stderr, se.identifiable
    profiles = None
    if settings["profile"] and math.isfinite(result.loss):
        profiles = fitting.profile_likelihood(problem, result, progress=not args.quiet)
        identifiable = {n: p.identifiable for n, p in profiles.items()}

    files = write_fit_files(
        out, checkpoint, result, lambda path: plot_fit(problem, measurements, result, path)
    )
    report = {
        "config": str(config["path"]),
        "params": result.params,
        "loss": result.loss,
        "stderr": stderr,
        "identifiable": identifiable,
        "profiles": None
        if profiles is None
        else {
            n: {
                "values": p.values.tolist(),
                "loss": [float(v) if math.isfinite(v) else None for v in p.loss],
                "lower": p.lower,
                "upper": p.upper,
                "threshold": p.threshold,
            }
            for n, p in profiles.items()
        },
        "free": list(problem.space.free),
        "solver": settings["solver"],
        "settings": {k: v for k, v in settings.items()},
        "cell_spread": config["cell_spread"],
        "n_steps": result.n_steps,
        "best_start": result.best_start,
        "starts": result.to_json()["starts"],
        "n_measurements": len(measurements),
        "wall_time_s": time.perf_counter() - started,
    }
    provenance.write(files["fit"], report, args, files)
    shown = ", ".join(f"{k} = {v:.4g}" for k, v in result.params.items())
    print(f"loss {result.loss:.6g} after {result.n_steps} steps: {shown}")
    print(f"wrote {', '.join(p.name for p in files.values())} to {out}/")
    if not math.isfinite(result.loss):
        print("grn: error: every start failed (infinite loss)", file=sys.stderr)
        return 1
    return 0


def write_fit_files(out: Path, checkpoint, result, plot) -> dict:
    """Write a fit's ``history.csv``, ``history.png`` and ``fit.png`` (drawn by ``plot(path)``);
    return every file's path by role (``fit.json`` is the caller's to write)."""
    from .plots import plot_history

    files = {
        "fit": out / "fit.json",
        "history": out / "history.csv",
        "plot": out / "fit.png",
        "history_plot": out / "history.png",
        "checkpoint": checkpoint,
    }
    write_history(result, files["history"])
    plot(files["plot"])
    plot_history(result, files["history_plot"])
    return files


def write_history(result, path: Path) -> None:
    """``history.csv``: the loss of every start before each step, and the best of them."""
    import numpy as np

    n_starts = result.start_loss.shape[0]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", *[f"loss_start{i}" for i in range(n_starts)], "best"])
        for step, row in enumerate(result.history):
            writer.writerow([step, *[repr(float(v)) for v in row], repr(float(np.min(row)))])
