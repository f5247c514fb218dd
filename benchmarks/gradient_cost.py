"""The cost of a gradient relative to a forward simulation, per gradient route (issue 6, 7(c)).

For each model and route, the wall time of one compiled forward evaluation of a scalar objective
(the sum over output times and species of the ensemble mean) and of its gradient with respect to
every scalar parameter of the network, both measured after compilation (best of ``--repeats``
calls; compile time, the first call minus the best, is reported apart). Routes:

* ``ode``: `grn.ODE()` (its default method, Tsit5; rtol = atol = 1e-6), reverse mode with
  diffrax's default ``RecursiveCheckpointAdjoint``; ``ode_backsolve``: ``BacksolveAdjoint``
  (continuous adjoint);
  ``ode_forward``: ``ForwardMode`` with ``jax.jacfwd`` (one tangent per parameter);
* ``lna``: `grn.LNA()`, reverse mode (mean and covariance; the objective adds the variances);
* ``cle``: `grn.CLE(dt)` with a fixed key (common random numbers), reverse mode through the
  Euler-Maruyama steps;
* ``ssa_score``: `fitting.score_function_grad` (exact SSA with the path likelihood, forward-mode
  score, one tangent per parameter) against a plain `grn.SSA()` forward run of the same cells;
  ``ssa_score_1`` the same for one parameter, to show the cost per tangent.

Models: ``immigration_death`` (alpha = 10, mu = 1, t in [0, 5], 6 output times) and
``melanoma`` (13 species, 27 reactions, 92 differentiated parameters; BRAFi = 0.95 from t = 0,
t in [0, 4] h, 5 output times, few cells, so the whole run takes about 4 minutes on 2 idle CPU
cores; measured
2026-11-22: gradient/forward ratios 1.2-9 for the ODE/LNA/CLE routes, 22 for the SSA score over
92 parameters, 1.4 per single score tangent).

Usage (from the repository root)::

    python benchmarks/gradient_cost.py            # writes benchmarks/results/gradient_cost.json
    python benchmarks/gradient_cost.py --quick    # immigration_death only, no JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import loadavg, machine_info  # noqa: E402

import fitting  # noqa: E402
import grn  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gradient_cost.json"


def _timed(fn, arg, repeats):
    """(best seconds after compilation, first call seconds) of ``fn(arg)``."""
    start = time.perf_counter()
    jax.block_until_ready(fn(arg))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(arg))
        best = min(best, time.perf_counter() - start)
    return best, first


def _setup(name):
    if name == "immigration_death":
        net = grn.models.immigration_death()
        return dict(
            net=net,
            ts=jnp.linspace(0.0, 5.0, 6),
            params={"alpha": 10.0, "mu": 1.0},
            schedule=None,
            cells={"cle": 1000, "ssa": 10_000},
            dt=0.01,
        )
    net = grn.models.melanoma()
    return dict(
        net=net,
        ts=jnp.linspace(0.0, 4.0, 5),
        params={},
        schedule=grn.Schedule([0.0], {"BRAFi": [0.95]}),
        cells={"cle": 64, "ssa": 16},
        dt=0.01,
    )


def _route(setup, route):
    """(forward, gradient, n_cells, n_parameters) callables of theta for one route."""
    net, ts, schedule = setup["net"], setup["ts"], setup["schedule"]
    base = {**{k: float(v) for k, v in net.params.items()}, **setup["params"]}
    names = list(base) if route != "ssa_score_1" else list(base)[:1]
    theta0 = {k: jnp.asarray(base[k]) for k in names}

    if route.startswith("ssa"):
        n = setup["cells"]["ssa"]
        total = lambda sol: jnp.sum(sol.ys, axis=(1, 2))  # noqa: E731

        @eqx.filter_jit
        def forward(theta):
            sol = grn.simulate(
                net, ts, jax.random.key(1), grn.SSA(), n, {**base, **theta}, schedule=schedule
            )
            return jnp.mean(total(sol))

        def gradient(theta):
            est = fitting.score_function_grad(
                net, ts, jax.random.key(1), total, n_cells=n, wrt=names,
                params={**base, **theta}, schedule=schedule,
            )  # fmt: skip
            return est.grad

        return forward, gradient, theta0, n

    n = setup["cells"]["cle"] if route == "cle" else 1
    solver = {
        "ode": grn.ODE(),
        "ode_backsolve": grn.ODE(adjoint=diffrax.BacksolveAdjoint()),
        "ode_forward": grn.ODE(adjoint=diffrax.ForwardMode()),
        "lna": grn.LNA(),
        # Loop length given, as simulate cannot size it from times traced under the outer jit.
        "cle": grn.CLE(dt=setup["dt"], max_steps=int(float(ts[-1] - ts[0]) / setup["dt"]) + 20),
    }[route]

    def objective(theta):
        sol = grn.simulate(
            net, ts, jax.random.key(1), solver, n, {**base, **theta}, schedule=schedule
        )
        return jnp.sum(sol.mean) + jnp.sum(jnp.diagonal(sol.cov, axis1=1, axis2=2))

    diff = jax.jacfwd if route == "ode_forward" else jax.grad
    return eqx.filter_jit(objective), eqx.filter_jit(diff(objective)), theta0, n


ROUTES = ("ode", "ode_backsolve", "ode_forward", "lna", "cle", "ssa_score", "ssa_score_1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="immigration_death only, no JSON")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["immigration_death", "melanoma"])
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument(
        "--melanoma-routes", nargs="+", default=list(ROUTES), choices=ROUTES,
        help="routes run on melanoma (its BacksolveAdjoint compile is the slowest)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    models = ["immigration_death"] if args.quick else args.models
    info = machine_info()
    rows = []
    if not args.quick and RESULTS.exists():  # keep rows of routes this run does not repeat
        rows = json.loads(RESULTS.read_text())["rows"]
    print(f"{'model':<18} {'route':<14} {'cells':>6} {'params':>6} {'forward s':>10} "
          f"{'gradient s':>11} {'ratio':>7} {'compile s':>10}")  # fmt: skip
    for model in models:
        setup = _setup(model)
        for route in args.routes if model != "melanoma" else args.melanoma_routes:
            forward, gradient, theta0, n = _route(setup, route)
            fwd, fwd_first = _timed(forward, theta0, args.repeats)
            grad, grad_first = _timed(gradient, theta0, args.repeats)
            row = {
                "model": model,
                "route": route,
                "n_cells": n,
                "n_params": len(theta0),
                "forward_s": fwd,
                "gradient_s": grad,
                "ratio": grad / fwd,
                "forward_compile_s": fwd_first - fwd,
                "gradient_compile_s": grad_first - grad,
                "loadavg": loadavg(),
            }
            rows = [r for r in rows if (r["model"], r["route"]) != (model, route)] + [row]
            print(f"{model:<18} {route:<14} {n:>6} {len(theta0):>6} {fwd:>10.4f} {grad:>11.4f} "
                  f"{grad / fwd:>7.1f} {grad_first - grad:>10.1f}", flush=True)  # fmt: skip
            if not args.quick:  # after every row, so a long run keeps what it measured
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                out = {"machine": info, "loadavg_now": loadavg(), "rows": rows}
                RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    if not args.quick:
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
