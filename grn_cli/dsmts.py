"""``grn dsmts``: the SBML Discrete Stochastic Models Test Suite, simulated and scored; writes
``dsmts.csv``, ``dsmts.md`` and ``run.json``."""

from __future__ import annotations

import time
from pathlib import Path

from . import options, provenance


def add_parser(commands) -> None:
    """Register ``grn dsmts`` on the ``grn`` sub-parsers."""
    dsmts = commands.add_parser(
        "dsmts",
        help="run the SBML Discrete Stochastic Models Test Suite with the exact SSA",
        description=(
            "Load each DSMTS case from its SBML file, simulate it with the exact SSA and score "
            "the mean and sd tests of the suite's user guide; writes dsmts.csv, dsmts.md and "
            "run.json. The suite is read from $GRN_SHARED/dsmts or ../shared/dsmts, or --suite."
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
        type=options.positive_int,
        default=10_000,
        metavar="N",
        help="cells per case (default: %(default)s)",
    )
    dsmts.add_argument(
        "--seed",
        type=options.seed,
        default=0,
        metavar="S",
        help="PRNG seed; case c uses fold_in(key(S), c) (default: %(default)s)",
    )
    dsmts.add_argument(
        "--batch-size",
        type=options.positive_int,
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
    dsmts.set_defaults(func=run)


def run(args) -> int:
    """``grn dsmts``: returns the exit status (1 when a case fails)."""
    cases = options.case_numbers(args.cases)
    out = options.output_folder(args.out)
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
    csv_path, md_path = grn.write_dsmts_table(rows, out, title=title)
    n_pass = sum(bool(r["pass"]) for r in rows)
    record = {
        "options": {k: getattr(args, k) for k in ("cases", "solver", "cells", "seed", "batch_size")}
        | {"suite": None if args.suite is None else str(args.suite), "out": str(out)},
        "passed": n_pass,
        "cases": len(rows),
        "wall_time_s": time.perf_counter() - started,
    }
    run_path = provenance.write(
        out / "run.json", record, args, {"table": csv_path, "report": md_path}
    )
    print(
        f"{n_pass} of {len(rows)} cases pass; wrote {csv_path}, {md_path} and {run_path} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return 0 if n_pass == len(rows) else 1
