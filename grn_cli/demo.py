"""``grn demo --out DIR [--quick]``: the embedded default run.

Built-in melanoma model + the bundled synthetic data set -> a short fit (`fitting.demo_fit`) ->
a scan of early interventions + time-resolved sensitivities (+ a dose-budgeted schedule, full run
only) -> ``DIR/report.md`` with the ranked intervention points, and every file of
``grn interventions``. The interventions part is written as ``DIR/interventions.toml`` first, so
``grn interventions DIR/interventions.toml --out DIR2`` repeats it.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import options

SIZES = {
    # scan cells, scan starts (h), sensitivity cells, bins (h), optimisation steps and cells
    "full": {
        "n_cells": 128,
        "start_h": [0, 6, 12, 24, 48, 72, 168, 336, 504, 600],
        "sens_cells": 32,
        "bins_h": [0, 6, 12, 24, 48, 72, 168, 336, 504, 600, 696],
        "opt_steps": 6,
        "opt_cells": 16,
        "validate_cells": 128,
        "fit_steps": 8,
    },
    "quick": {
        "n_cells": 32,
        "start_h": [0, 72, 336, 600],
        "sens_cells": 8,
        "bins_h": [0, 72, 336, 600, 696],
        "opt_steps": 0,
        "opt_cells": 0,
        "validate_cells": 0,
        "fit_steps": 3,
    },
}


PAIRS = [
    ["EPIi", "BH3i"],
    ["NFKBi", "EPIi"],
    ["NFKBi", "BH3i"],
    ["NAC", "BH3i"],
    ["NAC", "EPIi"],
    ["NFKBi", "NAC"],
]
"""Co-targeting on top of BRAFi (the seeds' BRAF + histone-modifying-enzyme inhibition, and the
BH3 mimetic with each), every pair of the four targets at the earliest start."""


def config_text(params: dict, quick: bool, seed: int) -> str:
    """The ``grn interventions`` TOML of the demo (MODEL.md's behaviour-5 levels)."""
    size = SIZES["quick" if quick else "full"]
    lines = ["[model]", 'builtin = "melanoma"']
    if params:
        lines.append("[model.params]")
        lines += [f"{k} = {v!r}" for k, v in params.items()]
    lines += [
        "[protocol]",
        "BRAFi = [[0.0, 0.95], [696.0, 0.0]]",
        "[scan]",
        'targets = ["NFKBi", "NAC", "EPIi", "BH3i"]',
        "levels = { NFKBi = 0.8, NAC = 1.0, EPIi = 0.8, BH3i = 1.0 }",
        f"start_h = {size['start_h']}",
        "duration_h = [696]",
        f"pairs = {PAIRS}",
        "[outcome]",
        'kind = "persister_burden"',  # the SOX10-low snapshot at day 29 is reported beside it
        "start_day = 0",
        "day = 29",
        "[sensitivity]",
        f"bins_h = {size['bins_h']}",
        f"n_cells = {size['sens_cells']}",
        "dt = 0.005",
        'around = "zero"',  # the local sensitivity at BRAFi alone: d outcome / d u(t) there
    ]
    if size["opt_steps"]:
        lines += [
            "[optimise]",
            'inputs = ["EPIi"]',
            "budget_h = 168",
            "bins_h = [0, 72, 168, 336, 696]",
            f"steps = {size['opt_steps']}",
            f"n_cells = {size['opt_cells']}",
            f"validate_cells = {size['validate_cells']}",
        ]
    lines += [
        "[run]",
        'solver = "cle"',
        "dt = 0.02",  # B stays >= 0 on average with BH3i (at 0.1 its mean dipped to -40)
        f"n_cells = {size['n_cells']}",
        f"seed = {seed}",
        "chunk = 12",  # scenarios per compiled call: 2 calls (quick), 4 (full)
    ]
    return "\n".join(lines) + "\n"


def add_parser(commands) -> None:
    p = commands.add_parser(
        "demo",
        help="built-in model + bundled data -> short fit -> ranked early intervention points",
        description=(
            "The embedded default: fit the melanoma model briefly to the bundled synthetic data, "
            "then scan interventions (NFKBi, NAC, EPIi, BH3i at MODEL.md's levels), their start "
            "times and their pairs on top of BRAFi 0.95 for 29 days, ranked by the persister "
            "burden (viable SOX10-low cell-days, days 0-29) with the day-29 SOX10-low snapshot "
            "beside it, compute time-resolved sensitivities, and write report.md, "
            "interventions.csv, pairs.csv, results.json and figures into --out "
            "(about 6.5 minutes on 2 idle CPU cores; --quick about two)."
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("grn-demo"),
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="small ensembles and grids")
    p.add_argument(
        "--seed", type=options.seed, default=0, metavar="S", help="PRNG seed (default: 0)"
    )
    p.add_argument("--skip-fit", action="store_true", help="use the model's parameters as they are")
    p.set_defaults(func=run)


def run(args) -> int:
    """``grn demo``: returns the exit status."""
    import fitting

    from .interventions import load_config, print_ranking, run_config, write_outputs

    started = time.perf_counter()
    out = options.output_folder(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.skip_fit:
        fitted = {"status": "skipped (--skip-fit)", "params": {}}
    else:
        steps = SIZES["quick" if args.quick else "full"]["fit_steps"]
        fitted = fitting.demo_fit(steps, args.seed, out)
    config = out / "interventions.toml"
    config.write_text(config_text(fitted["params"], args.quick, args.seed))
    ran = run_config(load_config(config), progress=True)
    ran.summary["fit"] = fitted
    ran.summary["demo"] = {
        "quick": args.quick,
        "seed": args.seed,
        "total_s": time.perf_counter() - started,
    }
    write_outputs(out, ran, args, head=_fit_section(fitted, args))
    print_ranking(ran.summary["ranking"])
    print(f"wrote {out / 'report.md'} ({ran.summary['demo']['total_s']:.0f} s)")
    return 0


def _fit_section(fitted: dict, args) -> str:
    lines = [
        f"# grn demo{' --quick' if args.quick else ''} (seed {args.seed})",
        "",
        "Built-in melanoma model (`grn.models.melanoma`: a log-normal chromatin remodelling rate "
        "kM1 per cell, each cell pre-equilibrated untreated for 20 days), base protocol BRAFi "
        "0.95 for 29 days. Steps: fit -> scan -> "
        "sensitivities -> ranking. The interventions part is `interventions.toml` "
        "(`grn interventions interventions.toml --out DIR` repeats it).",
        "",
        "## Fit",
        "",
    ]
    if fitted["status"] != "fitted":
        lines.append(f"Fit {fitted['status']}; the model's default parameters are used.")
    else:
        lines.append(
            f"{fitted['solver']}: {list(fitted['params'])} fitted to {fitted['rows']} on-drug "
            f"(days 0-{fitted['days']}) population means of the bundled SYNTHETIC data in "
            f"{fitted['steps']} steps "
            f"({fitted['seconds']:.0f} s); loss {fitted['loss_history'][0]:.4g} -> "
            f"{fitted['loss_history'][-1]:.4g}."
        )
        lines.append("")
        lines.append("| parameter | start | fitted | data-generating value |")
        lines.append("|---|---|---|---|")
        for k, v in fitted["params"].items():
            lines.append(f"| {k} | {fitted['start'][k]:.4g} | {v:.4g} | {fitted['truth'][k]:.4g} |")
    return "\n".join(lines) + "\n\n"
