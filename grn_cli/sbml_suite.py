"""``grn sbml-suite``: the SBML Test Suite's semantic (deterministic) cases with ``grn.ODE`` in
float64; writes ``sbml_semantic.csv``, ``sbml_semantic.md`` and ``run.json``."""

from __future__ import annotations

import csv
import os
import shlex
import sys
import time
from pathlib import Path

from . import options, provenance


def add_parser(commands) -> None:
    """Register ``grn sbml-suite`` on the ``grn`` sub-parsers."""
    suite = commands.add_parser(
        "sbml-suite",
        help="run the SBML Test Suite's semantic cases with the ODE solver (float64)",
        description=(
            "Load each semantic case of the SBML Test Suite with grn.load_sbml, simulate it with "
            "grn.ODE(rtol=1e-10, atol=1e-12) in float64 and compare every listed variable with "
            "the suite's pass criterion |C - U| <= abs + rel |C|. Each case is pass, fail (wrong "
            "numbers), refused (the SBML element named), error, timeout or excluded (steady-state "
            "or comp/fbc cases). Writes sbml_semantic.csv, sbml_semantic.md (a summary per tag) "
            "and run.json. The suite is read from $GRN_SHARED/sbml-semantic or "
            "../shared/sbml-semantic, or --suite."
        ),
    )
    suite.add_argument("--cases", nargs="+", metavar="CASE", help="case numbers (default: all)")
    suite.add_argument(
        "--timeout",
        type=options.positive_float,
        default=60.0,
        metavar="S",
        help="seconds per case before it counts as a timeout (default: %(default)s)",
    )
    suite.add_argument(
        "--jobs",
        type=options.positive_int,
        default=1,
        metavar="N",
        help="cases run in N worker processes at once (default: %(default)s; 2 on a 2-core CPU "
        "halves the wall time of the whole suite)",
    )
    suite.add_argument(
        "--suite", type=Path, default=None, metavar="DIR", help="the sbml-semantic/ folder"
    )
    suite.add_argument(
        "--out",
        type=Path,
        default=Path("grn-sbml-suite"),
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    suite.set_defaults(func=run)


def _suite_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    override = os.environ.get("GRN_SHARED")
    base = Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared"
    found = base / "sbml-semantic"
    if not found.is_dir():
        raise options.UsageError(
            f"no SBML test suite at {str(found)!r}: pass --suite DIR or set GRN_SHARED to the "
            "folder holding sbml-semantic/"
        )
    return found


def _run_case(suite_dir: Path, case: str, timeout: float):
    """One case in a worker process, in float64; its compiled programs are dropped after it
    (a worker runs hundreds of cases)."""
    import jax

    import grn

    with jax.enable_x64(True):
        (result,) = grn.io.run_sbml_suite(suite_dir, [case], timeout=timeout)
    jax.clear_caches()
    return result


def _run_parallel(suite_dir: Path, cases, timeout: float, jobs: int, show) -> list:
    """Every case in ``jobs`` worker processes (spawned: JAX does not survive a fork), in the
    order of the case numbers; each result is shown as it completes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if cases is None:
        cases = sorted(p.name for p in suite_dir.iterdir() if p.is_dir() and p.name.isdigit())
    # Workers are not recycled (max_tasks_per_child): on Python 3.11 the pool hung once the
    # first workers retired.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_case, suite_dir, c, timeout) for c in cases]
        for future in as_completed(futures):
            show(future.result())
        return [f.result() for f in futures]


def run(args) -> int:
    """``grn sbml-suite``: returns the exit status (1 when a case is silently wrong)."""
    cases = options.case_numbers(args.cases)
    suite_dir = _suite_dir(args.suite)
    out = options.output_folder(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    import jax

    import grn

    def show(r):
        print(f"{r.case}: {r.status} ({r.seconds:.1f} s) {r.worst or r.message}"[:160], flush=True)

    if args.jobs == 1:
        with jax.enable_x64(True):
            results = grn.io.run_sbml_suite(suite_dir, cases, timeout=args.timeout, log=show)
    else:
        results = _run_parallel(suite_dir, cases, args.timeout, args.jobs, show)
    csv_path = out / "sbml_semantic.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case", "status", "tags", "seconds", "cpu_seconds", "detail"])
        for r in results:
            detail = r.worst or r.message
            tags = " ".join(r.tags)
            writer.writerow(
                [r.case, r.status, tags, f"{r.seconds:.2f}", f"{r.cpu_seconds:.2f}", detail]
            )
    command = "grn " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    md_path = out / "sbml_semantic.md"
    md_path.write_text(grn.io.summary_markdown(results, command=command))
    counted = [r for r in results if r.status != "excluded"]
    totals = {s: sum(r.status == s for r in counted) for s in ("pass", "fail", "refused", "error")}
    totals["timeout"] = sum(r.status == "timeout" for r in counted)
    record = {
        "options": {"cases": cases, "timeout": args.timeout, "suite": str(suite_dir)},
        "counted": len(counted),
        **totals,
        "wall_time_s": time.perf_counter() - started,
        "cpu_time_s": sum(r.cpu_seconds for r in results),
    }
    run_path = provenance.write(
        out / "run.json", record, args, {"table": csv_path, "report": md_path}
    )
    print(
        f"{totals['pass']} of {len(counted)} counted cases pass ({totals['fail']} wrong, "
        f"{totals['refused']} refused, {totals['error']} errors, {totals['timeout']} timeouts); "
        f"wrote {csv_path}, {md_path} and {run_path} ({time.perf_counter() - started:.0f} s)"
    )
    return 1 if totals["fail"] else 0
