"""Cost of one PEtab log-likelihood and of its gradient, against AMICI's budgets (issue 18, item 4).

For each problem (default: the seven of ``tests/data/petab``, a copy of ``../shared/petab``),
loaded by `fitting.load_petab` with its default solver (Kvaerno3, rtol 1e-6, atol 1e-8) in
float64, at the nominal parameters, on ONE core (the process is pinned to one CPU and XLA's CPU
backend runs single-threaded):

- ``llh``: `PetabProblem.log_likelihood_terms` (every simulation, pre-equilibration included);
- ``grad_reverse``: value and gradient of the loss in the optimiser coordinates by reverse mode
  (diffrax's default checkpointed adjoint);
- ``grad_forward``: the same by forward mode (``jax.jacfwd``, diffrax ``ForwardMode``).

Each function is jitted; ``compile_s`` is the wall time of its first call (tracing, compilation and
one run), then the median (and min) of ``--repeats`` calls after compilation (at least
``--min-time`` seconds in all). The gradient is compared with the budget of AMICI's adjoint
sensitivities (the faster of our two modes counts). Budgets are those of AMICI's own CI (issue 18):
llh 5 ms (Boehm, Elowitz, Fiedler, Brannmark, Weber) or 10 ms (Fujita, Schwen); gradient 50 ms
(Boehm), 100 ms (Weber), 110 ms (Elowitz), 150 ms (Fiedler), 500 ms (Brannmark), 1 s (Fujita),
1.5 s (Schwen).

The machine is shared: the load average before and after each problem is recorded next to its
numbers. Results: ``benchmarks/results/petab.json``.

Usage: ``python benchmarks/petab.py [--problems Boehm_JProteomeRes2014 ...] [--data DIR]``.
"""

from __future__ import annotations

import os

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, before XLA starts threads
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402

# This file's folder goes last on the path, so that ``import petab`` finds the library, not it.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parent))

from _machine import loadavg, machine_info  # noqa: E402

import fitting  # noqa: E402
from fitting._fit import _forward_solver, value_and_grad  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "petab"
LLH_BUDGET_S = {
    "Boehm_JProteomeRes2014": 0.005,
    "Elowitz_Nature2000": 0.005,
    "Fiedler_BMCSystBiol2016": 0.005,
    "Brannmark_JBC2010": 0.005,
    "Weber_BMC2015": 0.005,
    "Fujita_SciSignal2010": 0.010,
    "Schwen_PONE2014": 0.010,
}
GRAD_BUDGET_S = {
    "Boehm_JProteomeRes2014": 0.05,
    "Weber_BMC2015": 0.1,
    "Elowitz_Nature2000": 0.11,
    "Fiedler_BMCSystBiol2016": 0.15,
    "Brannmark_JBC2010": 0.5,
    "Fujita_SciSignal2010": 1.0,
    "Schwen_PONE2014": 1.5,
}


def timed(fn, args, repeats: int, min_time: float) -> dict:
    """First-call wall time, then the median and min of later calls, and their median CPU
    time (this process's: on a loaded machine, the time it actually ran)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times: list[float] = []
    cpu: list[float] = []
    while len(times) < repeats or sum(times) < min_time:
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if sum(times) > 30 * min_time:
            break
    return {
        "compile_s": first,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_median_s": statistics.median(cpu),
        "n": len(times),
    }


@eqx.filter_jit
def _llh(problem, values):
    llh, ok, steady = problem.log_likelihood_terms(values)
    return llh, ok & jax.numpy.all(steady)


def measure(problem, repeats: int, min_time: float) -> dict:
    out: dict = {"n_free": len(problem.space.free)}
    llh = timed(_llh, (problem, dict(problem.nominal)), repeats, min_time)
    value, ok = _llh(problem, dict(problem.nominal))
    out["llh"] = {**llh, "value": float(value), "simulations_ok": bool(ok)}
    print(f"  llh {float(value):.4f} (ok {bool(ok)}): {llh['median_s'] * 1e3:.2f} ms", flush=True)
    if not bool(ok):  # a failing simulation runs to max_steps: its gradient is not measured
        out["gradient_skipped"] = "a simulation fails at the nominal parameters"
        return out
    phi = problem.space.initial_phi()
    for mode, prob in (("reverse", problem), ("forward", _forward_solver(problem))):
        fn = eqx.filter_jit(value_and_grad(prob.loss, mode))
        res = timed(fn, (phi,), repeats, min_time)
        out[f"grad_{mode}"] = res
        print(f"  grad {mode}: {res['median_s'] * 1e3:.2f} ms", flush=True)
    return out


def table(results: dict) -> str:
    rows = [
        "| problem | free | llh ms (budget) | gradient ms: reverse / forward (budget) "
        "| compile s: llh / reverse / forward | load avg |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            rows.append(f"| {name} | | error: {r['error'][:80]} | | | |")
            continue
        if "gradient_skipped" in r:
            rows.append(
                f"| {name} | {r['n_free']} | {r['llh']['median_s'] * 1e3:.0f} (fails: "
                f"{r['gradient_skipped']}) | not measured | {r['llh']['compile_s']:.0f} | "
                f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f} |"
            )
            continue
        llh, rev, fwd = r["llh"], r["grad_reverse"], r["grad_forward"]
        best = min(rev["median_s"], fwd["median_s"])
        llh_ok = "ok" if llh["median_s"] <= LLH_BUDGET_S[name] else "over"
        grad_ok = "ok" if best <= GRAD_BUDGET_S[name] else "over"
        rows.append(
            f"| {name} | {r['n_free']} | {llh['median_s'] * 1e3:.2f} "
            f"({LLH_BUDGET_S[name] * 1e3:.0f}, {llh_ok}) | {rev['median_s'] * 1e3:.1f} / "
            f"{fwd['median_s'] * 1e3:.1f} ({GRAD_BUDGET_S[name] * 1e3:.0f}, {grad_ok}) | "
            f"{llh['compile_s']:.0f} / {rev['compile_s']:.0f} / {fwd['compile_s']:.0f} | "
            f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f} |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(LLH_BUDGET_S))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "petab.json"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the problems already measured in --out"
    )
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    out = {
        "machine": {**machine_info(), "cores_used": len(os.sched_getaffinity(0))},
        "xla_flags": os.environ["XLA_FLAGS"],
        "args": {k: str(v) for k, v in vars(args).items()},
        "budgets_s": {"llh": LLH_BUDGET_S, "gradient": GRAD_BUDGET_S},
        "problems": {},
    }
    done = {}
    if args.resume and Path(args.out).exists():
        done = json.loads(Path(args.out).read_text())["problems"]
        out["earlier_runs"] = {n: r.get("loadavg_before") for n, r in done.items()}
    for name in args.problems:
        if name in done and "error" not in done[name]:
            out["problems"][name] = done[name]
            continue
        print(name, flush=True)
        entry: dict = {"loadavg_before": loadavg()}
        try:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                problem = fitting.load_petab(args.data / name / f"{name}.yaml")
            entry["load_s"] = time.perf_counter() - t0
            entry.update(measure(problem, args.repeats, args.min_time))
        except Exception as err:  # recorded; the other problems still run
            entry["error"] = f"{type(err).__name__}: {err}"[:2000]
            print(f"  failed: {entry['error'][:300]}", flush=True)
        entry["loadavg_after"] = loadavg()
        out["problems"][name] = entry
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        jax.clear_caches()
    print(table(out["problems"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
