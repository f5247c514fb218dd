"""Multi-start fits of PEtab benchmark problems: optimistix LM and BFGS against Adam (issue 18).

For each problem (``tests/data/petab``; a problem the SBML importer cannot read yet is recorded
with its error) and each method, ``--starts`` starts are drawn log-uniformly within the PEtab
bounds (uniformly on each parameter's PEtab scale; seed ``--seed``, the same starts for every
method) and fitted together by `fitting.fit` (one compiled step takes every start, one after
another) in float64 with the default PEtab solver:

- ``lm``: ``optx.LevenbergMarquardt`` on the residuals (Jacobian by forward mode);
- ``bfgs``: ``optx.BFGS`` on the negative log-likelihood;
- ``adam``: `fitting.default_optimizer` (Adam, learning rate 0.05 on the PEtab scale);

gradients by ``--gradient`` (default ``"auto"``, as ``grn fit`` takes them: forward mode for
Boehm's 9 free parameters, reverse mode for Elowitz's 21 and Fujita's 19); and the peer,
``trf``: scipy's trust-region reflective least squares (`run_trf`).

A start *converges* when its final llh is within 0.5 of the reference llh (tests/data/petab README)
or above it. Each fit runs in chunks of ``--chunk`` steps (checkpoint + resume) until the method
stops all starts, ``--steps`` are done or ``--budget`` seconds have passed; the wall time per start
is (wall time of the fit after compilation) / starts; the CPU time per start likewise (this
process's CPU time, all threads, after compilation). Compilation is timed apart (the first chunk of
one step). A start whose step raises (a simulation failing inside the derivative at extreme
parameters) stops as failed (`fitting.fit`).
Results go to ``benchmarks/results/petab_fit.json`` with the machine info.

Usage: ``python benchmarks/petab_fit.py [--problems Elowitz_Nature2000 ...] [--starts 20]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import loadavg, machine_info  # noqa: E402

# benchmarks/petab.py would shadow the petab package that load_petab imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import fitting  # noqa: E402
from fitting._fit import _forward_solver  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "petab"
REFERENCE = {
    "Boehm_JProteomeRes2014": -138.22199693517703,
    "Elowitz_Nature2000": 63.20279991419332,
    "Fujita_SciSignal2010": 53.08377736998929,
}


def optimizer(method: str):
    import optimistix as optx

    if method == "lm":
        return optx.LevenbergMarquardt(rtol=1e-6, atol=1e-6)
    if method == "bfgs":
        return optx.BFGS(rtol=1e-6, atol=1e-6)
    return fitting.default_optimizer()


def _timings(compile_s: float, wall_s: float, cpu_s: float, n: int) -> dict:
    """Compile time, and wall and CPU time after compilation, in all and per start."""
    return {
        "compile_s": compile_s,
        "wall_s": wall_s,
        "wall_per_start_s": wall_s / n,
        "cpu_s": cpu_s,
        "cpu_per_start_s": cpu_s / n,
    }


def run_trf(problem, starts: dict, max_nfev: int, budget: float) -> dict:
    """The peer: ``scipy.optimize.least_squares(method="trf")``, the trust-region reflective
    method of Data2Dynamics' lsqnonlin and pyPESTO's ``ScipyOptimizer("ls_trf")``, bounds on
    the PEtab scale, residuals and Jacobian (forward mode) from the same jitted functions; starts
    one after the other on the host, scipy's default tolerances, at most ``max_nfev``
    evaluations per start; no start begins after ``budget`` seconds (those left count as not
    converged, and the times per start are over the starts run)."""
    import equinox as eqx
    from scipy.optimize import least_squares

    problem = _forward_solver(problem)
    space = problem.space
    free = list(space.free)
    lo, hi = space.bounds_phi()
    bounds = (np.array([lo[n] for n in free]), np.array([hi[n] for n in free]))

    def residuals(x):
        r, loss = problem.residuals(dict(zip(free, x)))
        return jax.numpy.where(jax.numpy.isfinite(loss), r, 1e10), loss

    value = jax.jit(residuals)
    jacobian = jax.jit(jax.jacfwd(lambda x: residuals(x)[0]))
    x0 = np.stack([np.asarray(v, np.float64) for v in space.to_phi(starts).values()], axis=1)
    t0 = time.perf_counter()
    try:  # compile (running it at a start whose Jacobian raises still compiles it)
        jax.block_until_ready((value(x0[0]), jacobian(x0[0])))
    except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError):
        pass
    compile_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    losses, nfev, failed = [], [], []
    for x in x0:
        if time.perf_counter() - t0 > budget:
            losses.append(float("inf"))
            nfev.append(0)
            failed.append(False)
            continue
        calls = [0]

        def jac(x):
            calls[0] += 1
            return np.nan_to_num(np.asarray(jacobian(x)))

        try:
            sol = least_squares(
                lambda x: np.asarray(value(x)[0]),
                np.clip(x, bounds[0] + 1e-9, bounds[1] - 1e-9),
                jac=jac,  # pyright: ignore[reportArgumentType]
                bounds=bounds,
                method="trf",
                max_nfev=max_nfev,
            )
            losses.append(float(value(sol.x)[1]))
            nfev.append(int(sol.nfev))
            failed.append(False)
        except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError):
            # as in fitting.fit: the derivative raised at extreme parameters (an implicit
            # method's linear solve met a non-finite state); the start fails alone
            losses.append(float("inf"))
            nfev.append(max(calls[0], 1))
            failed.append(True)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    run = sum(k > 0 for k in nfev)  # the starts begun within the budget
    return {
        **_timings(compile_s, elapsed, cpu, run),
        "starts_run": run,
        "n_steps": int(np.max(nfev)),
        "nfev": nfev,
        "failed": failed,
        "all_stopped": True,
        "start_loss": losses,
    }


def run(
    problem, method: str, starts: dict, steps: int, chunk: int, budget: float, gradient: str
) -> dict:
    if method == "trf":
        return run_trf(problem, starts, 1000, budget)
    opt = optimizer(method)
    n = len(next(iter(starts.values())))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "fit.npz"
        kwargs: dict[str, Any] = dict(
            starts=starts, optimizer=opt, progress=False, checkpoint=ckpt, gradient=gradient
        )
        t0 = time.perf_counter()
        fitting.fit(problem, steps=1, **kwargs)
        compile_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        done = 1
        while True:
            done = min(steps, done + chunk)
            result = fitting.fit(problem, steps=done, resume=True, **kwargs)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            stopped = bool(np.all(result.converged))
            print(f"  {method}: {result.n_steps} steps, loss {result.loss:.4f}, {elapsed:.0f} s")
            if stopped or done >= steps or elapsed > budget:
                break
    return {
        **_timings(compile_s, elapsed, cpu, n),
        "n_steps": result.n_steps,
        "all_stopped": stopped,
        "start_loss": [float(v) for v in result.start_loss],
        "start_params": {k: [float(x) for x in v] for k, v in result.start_params.items()},
        "failed": [bool(v) for v in (result.failed if result.failed is not None else [])],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(REFERENCE))
    parser.add_argument("--methods", nargs="+", default=["lm", "bfgs", "adam", "trf"])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds per method")
    parser.add_argument("--gradient", default="auto", choices=["auto", "forward", "reverse"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "petab_fit.json"))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    out = {"machine": machine_info(), "args": vars(args), "problems": {}}
    for name in args.problems:
        print(name, flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                problem = fitting.load_petab(DATA / name / f"{name}.yaml")
        except ValueError as err:
            out["problems"][name] = {"error": str(err)}
            print(f"  cannot load: {err}", flush=True)
            continue
        space = problem.space
        phi = space.sample_phi(jax.random.key(args.seed), args.starts)
        starts = {n: np.asarray(v) for n, v in space.to_values(phi).items() if n in space.free}
        ref = REFERENCE[name]
        entry = {"reference_llh": ref, "n_free": len(space.free), "methods": {}}
        out["problems"][name] = entry
        for method in args.methods:
            try:
                res = run(
                    problem, method, starts, args.steps, args.chunk, args.budget, args.gradient
                )
            except Exception as err:  # recorded, and the other methods still run
                entry["methods"][method] = {"error": f"{type(err).__name__}: {err}"[:2000]}
                print(f"  {method}: failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
                continue
            llh = -np.asarray(res["start_loss"])  # no priors in these problems
            res["converged_fraction"] = float(np.mean(llh >= ref - 0.5))
            res["best_llh"] = float(np.max(llh))
            res["loadavg_after"] = loadavg()
            entry["methods"][method] = res
            print(
                f"  {method}: {res['converged_fraction']:.0%} within 0.5 of {ref:.2f} "
                f"(best {res['best_llh']:.2f}), {res['cpu_per_start_s']:.1f} CPU s/start, "
                f"compile {res['compile_s']:.0f} s",
                flush=True,
            )
            Path(args.out).write_text(json.dumps(out, indent=2))
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
