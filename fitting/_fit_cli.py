"""``grn fit CONFIG.toml --out DIR [--resume]``: fit a network to data from a TOML config."""

from __future__ import annotations

import csv
import datetime
import json
import math
import platform
import sys
import time
import tomllib
from pathlib import Path
from typing import NoReturn

SECTIONS = {"model", "data", "observables", "parameters", "fit"}
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
SOLVER_NAMES = ("ssa", "tau", "cle", "ode", "lna")
METHODS = ("kvaerno5", "tsit5", "dopri5")
"""``fit.method`` of the ode/lna solvers: explicit RK (tsit5, default; dopri5) or stiff kvaerno5."""


class ConfigError(ValueError):
    """A bad config: the message names the file and the key."""


def add_parser(commands) -> None:
    """Register ``grn fit`` on the ``grn`` sub-parsers."""
    parser = commands.add_parser(
        "fit",
        help="fit a network's parameters to measurements (TOML config)",
        description=(
            "Fit the free parameters of a network to a PEtab-style measurement table, as set out "
            "in CONFIG.toml (see the README's 'Fitting' section). Writes fit.json, history.csv, "
            "fit.png, history.png and checkpoint.npz into the output folder."
        ),
    )
    parser.add_argument("config", type=Path, metavar="CONFIG.toml", help="the fit's config file")
    parser.add_argument(
        "--out", type=Path, default=Path("grn-fit"), metavar="DIR", help="output folder"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoint.npz if present"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _fail(path: Path, key: str, message: str) -> NoReturn:
    raise ConfigError(f"{path}: {key}: {message}")


def _number(path, key, value, integer=False, positive=True, allow_none=False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value is None or not math.isfinite(value):
        _fail(path, key, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    if positive and value <= 0:
        _fail(path, key, f"must be positive, got {value!r}")
    return value


def _non_negative_table(path, model: dict, key: str, what: str) -> dict:
    """``[model.KEY]`` (default empty): a table of names to non-negative numbers."""
    table = model.get(key, {})
    if not isinstance(table, dict):
        _fail(path, f"model.{key}", f"must be a table of {what}")
    for name, value in table.items():
        _number(path, f"model.{key}.{name}", value, positive=False)
        if value < 0:
            _fail(path, f"model.{key}.{name}", f"must be non-negative, got {value!r}")
    return table


def load_config(path: Path) -> dict:
    """Read and check a fit config; every error names the offending key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    for section in raw:
        if section not in SECTIONS:
            _fail(path, section, f"unknown section (expected {sorted(SECTIONS)})")
    for section in ("model", "data", "observables", "parameters"):
        if not isinstance(raw.get(section), dict) or not raw[section]:
            _fail(path, f"[{section}]", "missing or empty section")

    model = raw["model"]
    for key in model:
        if key not in ("builtin", "sbml", "x0", "cell_spread"):
            _fail(path, f"model.{key}", "unknown key (expected builtin, sbml, x0, cell_spread)")
    if ("builtin" in model) == ("sbml" in model):
        _fail(path, "model", "give exactly one of builtin = NAME or sbml = FILE")
    x0 = _non_negative_table(path, model, "x0", "species = count")
    spread = _non_negative_table(path, model, "cell_spread", "parameter = log-normal sd")

    data = raw["data"]
    for key in data:
        if key not in ("measurements", "conditions"):
            _fail(path, f"data.{key}", "unknown key (expected measurements, conditions)")
    if "measurements" not in data:
        _fail(path, "data.measurements", "missing (the measurement table's path)")
    files = {}
    for key in ("measurements", "conditions"):
        if key in data:
            if not isinstance(data[key], str):
                _fail(path, f"data.{key}", f"must be a path string, got {data[key]!r}")
            file = (path.parent / data[key]).resolve()
            if not file.is_file():
                _fail(path, f"data.{key}", f"file {str(file)!r} not found")
            files[key] = file

    fit = dict(FIT_KEYS)
    for key, value in raw.get("fit", {}).items():
        if key not in FIT_KEYS:
            _fail(path, f"fit.{key}", f"unknown key (expected {sorted(FIT_KEYS)})")
        fit[key] = value
    if fit["method"] not in METHODS:
        _fail(path, "fit.method", f"must be one of {METHODS}, got {fit['method']!r}")
    if fit["gradient"] not in ("reverse", "forward"):
        _fail(path, "fit.gradient", f"must be 'reverse' or 'forward', got {fit['gradient']!r}")
    if fit["solver"] not in SOLVER_NAMES:
        _fail(path, "fit.solver", f"must be one of {SOLVER_NAMES}, got {fit['solver']!r}")
    for key in ("n_cells", "steps", "starts", "checkpoint_every"):
        _number(path, f"fit.{key}", fit[key], integer=True)
    _number(path, "fit.patience", fit["patience"], integer=True, allow_none=True)
    _number(path, "fit.seed", fit["seed"], integer=True, positive=False)
    for key in ("learning_rate", "max_norm", "dt", "rtol", "snapshot_weight"):
        _number(path, f"fit.{key}", fit[key])
    for key in ("stderr", "profile", "float64"):
        if not isinstance(fit[key], bool):
            _fail(path, f"fit.{key}", f"must be true or false, got {fit[key]!r}")
    if fit["seed"] < 0:
        _fail(path, "fit.seed", f"must be non-negative, got {fit['seed']}")

    params_free, params_frozen = {}, {}
    for name, spec in raw["parameters"].items():
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            params_frozen[name] = float(spec)
            continue
        if not isinstance(spec, dict):
            _fail(path, f"parameters.{name}", "must be a number (frozen) or a table {init, ...}")
        for key in spec:
            if key not in ("init", "lower", "upper", "scale"):
                _fail(path, f"parameters.{name}.{key}", "unknown key (init, lower, upper, scale)")
        for key in ("init", "lower", "upper"):
            if key not in spec:
                _fail(path, f"parameters.{name}.{key}", "missing")
            _number(path, f"parameters.{name}.{key}", spec[key], positive=False)
        scale = spec.get("scale", "log")
        if scale not in ("log", "linear"):
            _fail(path, f"parameters.{name}.scale", f"must be 'log' or 'linear', got {scale!r}")
        params_free[name] = {**spec, "scale": scale}
    if not params_free:
        _fail(path, "[parameters]", "no free parameter (give at least one {init, lower, upper})")

    for name, spec in raw["observables"].items():
        if not isinstance(spec, str | dict):
            _fail(path, f"observables.{name}", "must be an expression string or a table")
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

    import grn

    from ._data import Measurements
    from ._parameters import ParameterSpace, lognormal_factors
    from ._problem import Problem

    path = config["path"]
    model = config["model"]
    if "builtin" in model:
        if model["builtin"] not in grn.models.BUILTIN:
            _fail(
                path,
                "model.builtin",
                f"unknown model {model['builtin']!r} (built-in: {list(grn.models.BUILTIN)})",
            )
        network = grn.models.BUILTIN[model["builtin"]]()
    else:
        file = (path.parent / model["sbml"]).resolve()
        if not file.is_file():
            _fail(path, "model.sbml", f"file {str(file)!r} not found")
        network = grn.load_sbml(file)
    for name in config["x0"]:
        if name not in network.species:
            _fail(path, f"model.x0.{name}", f"unknown species (species: {list(network.species)})")
    try:
        space = ParameterSpace(config["free"], config["frozen"])
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: [parameters]: {err}") from None
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
            _fail(path, f"model.cell_spread.{name}", "unknown parameter of the model")
    if config["cell_spread"] and not solver.stochastic:
        _fail(path, "model.cell_spread", "per-cell spread needs fit.solver = ssa, tau or cle")
    measurements = Measurements.read(
        config["files"]["measurements"], config["files"].get("conditions")
    )
    try:
        observables = _observables(config)
        problem = Problem(
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
                name: lognormal_factors(fit["n_cells"], float(sd))
                for name, sd in config["cell_spread"].items()
            },
        )
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return problem, measurements


def _observables(config):
    from ._observables import as_observable

    out = {}
    for name, spec in config["observables"].items():
        try:
            out[name] = as_observable(spec, name)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{config['path']}: observables.{name}: {err}") from None
    return out


def run(args) -> int:
    """``grn fit``: returns the exit status."""
    import contextlib

    import jax

    config = load_config(args.config)
    with jax.enable_x64(True) if config["fit"]["float64"] else contextlib.nullcontext():
        return _run(args, config)


def _run(args, config) -> int:
    import jax
    import numpy as np

    import grn

    from ._fit import default_optimizer, fit
    from ._uncertainty import profile_likelihood, standard_errors

    started = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a folder")
    problem, measurements = build_problem(config)
    settings = config["fit"]
    if not problem.pathwise:
        raise ConfigError(
            f"{config['path']}: fit.solver: {settings['solver']!r} simulates piecewise-constant "
            f"paths with no pathwise gradient; fit with 'lna', 'ode' or 'cle'"
        )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.npz"
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()
    key = jax.random.key(settings["seed"])
    result = fit(
        problem,
        key=jax.random.fold_in(key, 1),
        n_starts=settings["starts"],
        steps=settings["steps"],
        optimizer=default_optimizer(float(settings["learning_rate"]), float(settings["max_norm"])),
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
        se = standard_errors(problem, result)
        stderr, identifiable = se.stderr, se.identifiable
    profiles = None
    if settings["profile"] and math.isfinite(result.loss):
        profiles = profile_likelihood(problem, result, progress=not args.quiet)
        identifiable = {n: p.identifiable for n, p in profiles.items()}

    files = {
        "fit": out / "fit.json",
        "history": out / "history.csv",
        "plot": out / "fit.png",
        "history_plot": out / "history.png",
        "checkpoint": checkpoint,
    }
    n_starts = result.start_loss.shape[0]
    with open(files["history"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", *[f"loss_start{i}" for i in range(n_starts)], "best"])
        for step, row in enumerate(result.history):
            writer.writerow([step, *[repr(float(v)) for v in row], repr(float(np.min(row)))])
    _plot_fit(problem, measurements, result, files["plot"])
    _plot_history(result, files["history_plot"])
    report = {
        "command": "fit",
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
        "versions": {
            "grn": grn.__version__,
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
        "device": jax.default_backend(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "files": {k: p.name for k, p in files.items()},
    }
    files["fit"].write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    shown = ", ".join(f"{k} = {v:.4g}" for k, v in result.params.items())
    print(f"loss {result.loss:.6g} after {result.n_steps} steps: {shown}")
    print(f"wrote {', '.join(p.name for p in files.values())} to {out}/")
    if not math.isfinite(result.loss):
        print("grn: error: every start failed (infinite loss)", file=sys.stderr)
        return 1
    return 0


def _plot_fit(problem, measurements, result, path):
    """Data (points, error bars; single cells as dots) against the fitted model, one panel per
    (observable, condition)."""
    import jax.numpy as jnp
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = {k: jnp.asarray(v) for k, v in result.params.items()}
    t_end = float(np.max(measurements.time))
    ts = jnp.linspace(0.0, t_end if t_end > 0 else 1.0, 101)
    summary, _, _ = problem.predict(values, ts=ts, hard=True)  # hard thresholds for reporting
    summary = np.asarray(summary, np.float64)
    obs, conds = problem.observable_ids, problem.condition_ids
    fig = Figure(figsize=(4.0 * len(conds) + 1, 2.8 * len(obs) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(obs), len(conds), squeeze=False, sharex=True)
    for i, o in enumerate(obs):
        for j, c in enumerate(conds):
            ax = axes[i, j]
            rows = (measurements.observable == o) & (measurements.condition == c)
            cell = rows & measurements.is_cell
            pop = rows & ~measurements.is_cell
            if cell.any():
                ax.plot(
                    measurements.time[cell], measurements.value[cell], ".", color="0.6", ms=2,
                    label="single cells",
                )  # fmt: skip
            if pop.any():
                ax.errorbar(
                    measurements.time[pop], measurements.value[pop], measurements.sigma[pop],
                    fmt="o", color="k", ms=4, capsize=2, label="data",
                )  # fmt: skip
            ax.plot(np.asarray(ts), summary[i, j], color="C0", lw=2, label="fitted model")
            ax.set_title(f"{o} — {c}", fontsize="medium")
            ax.grid(alpha=0.3)
            if i == len(obs) - 1:
                ax.set_xlabel("time")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(f"fit: loss {result.loss:.4g}")
    fig.savefig(path, dpi=110)


def _plot_history(result, path):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    history = np.asarray(result.history, np.float64)
    shift = np.nanmin(np.where(np.isfinite(history), history, np.nan)) if history.size else 0.0
    for i in range(history.shape[1] if history.ndim == 2 else 0):
        ax.plot(history[:, i] - shift + 1.0, lw=1, label=f"start {i}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss - min + 1")
    ax.grid(alpha=0.3)
    if history.ndim == 2 and history.shape[1] <= 10:
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
