"""``grn demo --out DIR [--quick]``: the embedded default run.

Built-in melanoma model + the bundled synthetic data set -> a short fit (`fit_step`) -> a scan of
early interventions + time-resolved sensitivities (+ a dose-budgeted schedule, full run only) ->
``DIR/report.md`` with the ranked intervention points, and every file of ``grn interventions``.
The interventions part is written as ``DIR/interventions.toml`` first, so
``grn interventions DIR/interventions.toml --out DIR2`` repeats it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

SIZES = {
    # scan cells, scan starts (h), sensitivity cells, bins (h), optimisation steps and cells
    "full": {
        "n_cells": 128,
        "start_h": [0, 6, 12, 24, 48, 72, 168, 336, 504, 600],
        "sens_cells": 32,
        "bins_h": [0, 6, 12, 24, 48, 72, 168, 336, 504, 600, 696],
        "opt_steps": 6,
        "opt_cells": 16,
        "fit_steps": 8,
    },
    "quick": {
        "n_cells": 32,
        "start_h": [0, 72, 336, 600],
        "sens_cells": 8,
        "bins_h": [0, 72, 336, 600, 696],
        "opt_steps": 0,
        "opt_cells": 0,
        "fit_steps": 3,
    },
}
FIT_DAYS = 3
"""The fit uses the first days of the on-drug response (29 days of pathwise gradients, or of the
stiff, oscillating ODE, are too slow for the demo's budget on 2 CPU cores)."""
FIT_CELLS = 8
FIT_DT = 0.005
"""CLE step of the fit: path derivatives of the melanoma model are stable at 0.005 h (at 0.02 h
they blow up within 12-48 h in most cells; `fitting.sensitivity`)."""
FREE = {"kM1": (0.02, 0.3), "kIKK": (1.0, 15.0)}
"""Parameters the demo's fit moves (log scale, bounds): the RelA-driven chromatin remodelling rate
and the IKK-driven IkBa degradation, the two rates that set how fast cells leave SOX10-high."""


def fit_step(quick: bool, seed: int, out: Path, log=print) -> dict:
    """A short fit of `FREE` to the on-drug population means of the bundled synthetic data.

    Chemical Langevin ensemble (`grn.CLE(dt=FIT_DT)`, `FIT_CELLS` cells, fixed noise: pathwise
    reverse-mode gradients) on the
    rows up to day `FIT_DAYS` of the ``braf`` condition's population means (pERK, W1, W2, SOX10,
    priming),
    Gaussian likelihood with the table's noise; starts at 0.7x the network's values. Returns
    ``{"status", "params", ...}``; without the data files the demo goes on with the defaults
    and says so.
    """
    import csv

    import jax

    import grn
    from grn.models import _melanoma_data as data

    from ._data import Measurements
    from ._fit import fit
    from ._parameters import ParameterSpace
    from ._problem import Problem

    paths = data.synthetic_paths()
    if not paths["measurements"].exists():
        log(f"fit: no bundled data at {paths['measurements']}; using the model's parameters")
        return {"status": "skipped: bundled synthetic data not found", "params": {}}
    started = time.perf_counter()
    network = grn.models.melanoma()
    keep = set(data.OBSERVABLES)
    with open(paths["measurements"], newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = [
            r
            for r in reader
            if r["observableId"] in keep
            and r["simulationConditionId"] == "braf"
            and not r.get("cellId")
            and float(r["time"]) <= FIT_DAYS * 24.0
        ]
        fields = [f for f in reader.fieldnames or () if f != "cellId"]
    table = out / "fit_measurements.tsv"
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    measurements = Measurements.read(table, paths["conditions"])
    present = {r["observableId"] for r in rows}
    observables = {k: v for k, v in data.OBSERVABLES.items() if k in present}
    free = {
        name: {"init": 0.7 * float(network.params[name]), "lower": lo, "upper": hi, "scale": "log"}
        for name, (lo, hi) in FREE.items()
    }
    problem = Problem(
        network,
        measurements,
        observables,
        ParameterSpace(free),
        solver=grn.CLE(dt=FIT_DT),
        n_cells=FIT_CELLS,
        key=jax.random.key(seed),
    )
    steps = SIZES["quick" if quick else "full"]["fit_steps"]
    log(f"fit: {list(FREE)} to {len(rows)} population means (CLE), {steps} Adam steps")
    result = fit(problem, key=jax.random.key(seed), steps=steps, progress=True)
    params = {name: float(result.params[name]) for name in FREE}
    return {
        "status": "fitted",
        "solver": f"CLE(dt={FIT_DT}), {FIT_CELLS} cells, pathwise reverse-mode gradients",
        "rows": len(rows),
        "steps": int(result.n_steps),
        "loss_history": [float(v) for v in result.history[:, result.best_start]],
        "start": {k: v["init"] for k, v in free.items()},
        "params": params,
        "truth": {name: float(network.params[name]) for name in FREE},
        "seconds": time.perf_counter() - started,
    }


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
        "[outcome]",
        'kind = "sox10_low_fraction"',
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
        ]
    lines += [
        "[run]",
        'solver = "cle"',
        "dt = 0.02",  # B stays >= 0 on average with BH3i (at 0.1 its mean dipped to -40)
        f"n_cells = {size['n_cells']}",
        f"seed = {seed}",
        f"chunk = {9 if quick else 11}",
    ]
    return "\n".join(lines) + "\n"


def add_parser(commands) -> None:
    p = commands.add_parser(
        "demo",
        help="built-in model + bundled data -> short fit -> ranked early intervention points",
        description=(
            "The embedded default: fit the melanoma model briefly to the bundled synthetic data, "
            "then scan interventions (NFKBi, NAC, EPIi, BH3i at MODEL.md's levels) and their "
            "start times on top of BRAFi 0.95 for 29 days, compute time-resolved sensitivities, "
            "and write report.md, interventions.csv, results.json and figures into --out "
            "(about 10 minutes on 2 CPU cores; --quick about a minute or two)."
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
    p.add_argument("--seed", type=int, default=0, metavar="S", help="PRNG seed (default: 0)")
    p.add_argument("--skip-fit", action="store_true", help="use the model's parameters as they are")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from ._interventions_cli import ConfigError, _fmt_h, load_config, run_config

    started = time.perf_counter()
    out = args.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a folder")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    if args.skip_fit:
        fitted = {"status": "skipped (--skip-fit)", "params": {}}
    else:
        fitted = fit_step(args.quick, args.seed, out)
    config = out / "interventions.toml"
    config.write_text(config_text(fitted["params"], args.quick, args.seed))
    summary = run_config(load_config(config), out, progress=True)
    summary["fit"] = fitted
    summary["demo"] = {
        "quick": args.quick,
        "seed": args.seed,
        "total_s": time.perf_counter() - started,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    report = (out / "report.md").read_text()
    (out / "report.md").write_text(_fit_section(fitted, args) + report)
    for r in summary["ranking"]:
        print(
            f"{r['rank']}. {r['target']} {r['level']:g}: benefit {r['benefit']:.3g} ± "
            f"{r['benefit_se']:.2g}, window {_fmt_h(r['window_h'])}"
        )
    print(f"wrote {out / 'report.md'} ({summary['demo']['total_s']:.0f} s)")
    return 0


def _fit_section(fitted: dict, args) -> str:
    lines = [
        f"# grn demo{' --quick' if args.quick else ''} (seed {args.seed})",
        "",
        "Built-in melanoma model (`grn.models.melanoma`), per-cell chromatin heterogeneity "
        "(`melanoma_cell_params`), base protocol BRAFi 0.95 for 29 days. Steps: fit -> scan -> "
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
            f"(days 0-{FIT_DAYS}) population means of the bundled SYNTHETIC data in "
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
