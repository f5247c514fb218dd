"""``grn fit PROBLEM.yaml --out DIR``: multi-start fit of a PEtab v1 problem (`fitting.load_petab`).

Float64 throughout (inside the command only). Starts are drawn log-uniformly within the PEtab
bounds (uniformly on each parameter's PEtab scale) from ``--seed``; ``--nominal`` makes the first
start the parameter table's nominal vector. The default optimiser converges on the
Benchmark-Models-PEtab problems: Levenberg-Marquardt on the residuals when the noise is normal
(and priors normal or uniform), BFGS on the negative log-posterior otherwise.
"""

from __future__ import annotations

import math
import sys
import time
import warnings

from . import options, provenance
from .options import UsageError

OPTIMIZERS = ("lm", "bfgs", "adam")
SOLVERS = ("ode", "lna", "cle")
DEFAULTS = {"starts": 10, "steps": 500, "seed": 0, "solver": "ode", "dt": 0.01, "cells": 1000}
"""Settings of a PEtab fit when the option is not given."""
PETAB_OPTIONS = ("starts", "steps", "seed", "optimizer", "solver", "dt", "cells", "nominal")
"""The ``grn fit`` options that apply to PEtab problems only."""


def add_arguments(parser) -> None:
    """The PEtab-only options of ``grn fit`` (default None: not given)."""
    group = parser.add_argument_group("PEtab problems (PROBLEM.yaml) only")
    group.add_argument(
        "--starts",
        type=options.positive_int,
        metavar="N",
        help=f"number of starts (default {DEFAULTS['starts']})",
    )
    group.add_argument(
        "--steps",
        type=options.positive_int,
        metavar="N",
        help=f"most optimiser steps (default {DEFAULTS['steps']})",
    )
    group.add_argument(
        "--seed", type=options.seed, metavar="S", help="seed of the starts (default 0)"
    )
    group.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="lm (Levenberg-Marquardt; default for normal noise), bfgs (default otherwise), adam",
    )
    group.add_argument(
        "--solver",
        choices=SOLVERS,
        help="ode (default: stiff Rodas5P), lna or cle (observables of the ensemble mean; cle: "
        "--cells cells, common random numbers)",
    )
    group.add_argument(
        "--dt",
        type=options.positive_float,
        help=f"time step of --solver cle, in the model's time unit (default {DEFAULTS['dt']}; "
        "Euler-Maruyama: below 2 / the fastest rate)",
    )
    group.add_argument(
        "--cells",
        type=options.positive_int,
        metavar="N",
        help=f"cells of --solver cle whose mean state the observables read (default "
        f"{DEFAULTS['cells']})",
    )
    group.add_argument(
        "--nominal",
        action="store_true",
        default=None,
        help="make the first start the parameter table's nominal values",
    )


def reject_petab_options(args) -> None:
    """A TOML config sets its fit in its ``[fit]`` table: PEtab-only options are an error."""
    for name in PETAB_OPTIONS:
        if getattr(args, name, None) is not None:
            raise UsageError(
                f"--{name} applies to PEtab problems (PROBLEM.yaml); a TOML config sets its "
                f"fit in its [fit] table"
            )


def _settings(args) -> dict:
    settings = {k: getattr(args, k) for k in PETAB_OPTIONS}
    for key, value in DEFAULTS.items():
        if settings[key] is None:
            settings[key] = value
    settings["nominal"] = bool(settings["nominal"])
    for name in ("dt", "cells"):
        if getattr(args, name) is not None and settings["solver"] != "cle":
            raise UsageError(f"--{name} applies to --solver cle only")
    return settings


def _solver(settings):
    """The ODE and the LNA with `fitting.default_petab_solver`'s method and tolerances."""
    import fitting
    import grn

    ode = fitting.default_petab_solver()
    if settings["solver"] == "ode":
        return ode
    if settings["solver"] == "lna":
        return grn.LNA(method=ode.method, rtol=ode.rtol, atol=ode.atol, max_steps=ode.max_steps)
    return grn.CLE(dt=settings["dt"])


def _optimizer(name: str, problem):
    import optimistix as optx

    import fitting

    if name == "lm":
        if not problem.least_squares:
            raise UsageError(
                "--optimizer lm needs normal noise and normal or uniform priors; this problem "
                "has other noise or priors: use --optimizer bfgs"
            )
        return optx.LevenbergMarquardt(rtol=1e-6, atol=1e-6)
    if name == "bfgs":
        return optx.BFGS(rtol=1e-6, atol=1e-6)
    return fitting.default_optimizer()


def _starts(problem, settings) -> dict:
    """Natural values (name -> (starts,)) drawn log-uniformly within the bounds."""
    import jax
    import numpy as np

    space = problem.space
    key = jax.random.key(settings["seed"])
    n = settings["starts"]
    phi = space.starts(key, n) if settings["nominal"] else space.sample_phi(key, n)
    values = space.to_values(phi)
    return {  # round-off of 10**phi may leave the box by an ulp
        name: np.clip(np.asarray(values[name], np.float64), lo, hi)
        for name, lo, hi in zip(space.free, space.lower, space.upper)
    }


def run(args) -> int:
    """``grn fit PROBLEM.yaml``: returns the exit status."""
    import jax

    settings = _settings(args)
    with jax.enable_x64(True):
        return _run(args, settings)


def _run(args, settings) -> int:
    import jax.numpy as jnp
    import numpy as np

    import fitting

    from .fit import write_fit_files
    from .plots import plot_petab_fit

    started = time.perf_counter()
    out = options.output_folder(args.out)
    if not args.config.is_file():
        raise UsageError(f"PEtab problem {str(args.config)!r} not found")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        problem = fitting.load_petab(
            args.config, solver=_solver(settings), n_cells=settings["cells"]
        )
    unused = [str(w.message) for w in caught if "is not used by grn" in str(w.message)]
    for message in unused:  # PEtab columns grn does not read: said, never an error
        print(f"grn: warning: {message}", file=sys.stderr)
    name = settings["optimizer"] or ("lm" if problem.least_squares else "bfgs")
    settings["optimizer"] = name
    optimizer = _optimizer(name, problem)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.npz"
    if not args.resume and checkpoint.exists():
        checkpoint.unlink()
    starts = _starts(problem, settings)
    if not args.quiet:
        print(
            f"fitting {len(problem.space.free)} parameters from {settings['starts']} starts "
            f"({name}, {settings['solver']}); the first step compiles",
            file=sys.stderr,
        )
    result = fitting.fit(
        problem,
        starts=starts,
        steps=settings["steps"],
        optimizer=optimizer,
        patience=50 if name == "adam" else None,
        gradient="auto",  # forward mode for the CLE and for up to 14 free parameters
        progress=not args.quiet,
        checkpoint=checkpoint,
        resume=args.resume,
    )
    # PEtab's llh of each start: the objective is -(llh + log prior)
    llh = []
    for i, loss in enumerate(result.start_loss):
        values = {n: jnp.asarray(v[i]) for n, v in result.start_params.items()}
        prior = float(problem.log_prior({**problem.nominal, **values}))
        llh.append(-float(loss) - prior if math.isfinite(loss) else None)
    files = write_fit_files(
        out, checkpoint, result, lambda path: plot_petab_fit(problem, result, path)
    )
    starts_json = result.to_json()["starts"]
    for entry, value in zip(starts_json, llh):
        entry["log_likelihood"] = value
    report = {
        "problem": str(args.config),
        "params": result.params,
        "loss": result.loss,
        "log_likelihood": llh[result.best_start],
        "free": list(problem.space.free),
        "solver": settings["solver"],
        "optimizer": name,
        "settings": settings,
        "n_steps": result.n_steps,
        "best_start": result.best_start,
        "starts": starts_json,
        "n_measurements": int(np.asarray(problem.measurements["value"]).shape[0]),
        "wall_time_s": time.perf_counter() - started,
    }
    provenance.write(files["fit"], report, args, files)
    best = llh[result.best_start]
    shown = "none" if best is None else f"{best:.6g}"
    print(f"log-likelihood {shown} (best of {len(llh)} starts) after {result.n_steps} steps")
    print(f"wrote {', '.join(p.name for p in files.values())} to {out}/")
    if not math.isfinite(result.loss):
        print("grn: error: every start failed (infinite loss)", file=sys.stderr)
        return 1
    return 0
