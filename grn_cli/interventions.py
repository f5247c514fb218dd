"""``grn interventions CONFIG.toml --out DIR``: scan, sensitivities, optional schedule optimisation,
and a ranked report of early intervention points.

The configuration (TOML; every key is checked and an unknown one is named)::

    [model]
    builtin = "melanoma"                 # or sbml = "model.xml" (relative to the config file)
    heterogeneity = true                 # false: one value for the model's per-cell parameters
    [model.params]                       # parameter overrides, e.g. from a fit's fit.json
    kNAC = 5.0
    [protocol]                           # the base protocol: input = [[time_h, level], ...]
    BRAFi = [[0.0, 0.95], [696.0, 0.0]]
    [scan]
    targets = ["NFKBi", "NAC", "EPIi", "BH3i"]
    levels = { NFKBi = 0.8, NAC = 1.0, EPIi = 0.8, BH3i = 1.0 }   # or one number / a list
    start_h = [0, 6, 12, 24, 48, 72, 168, 336]
    duration_h = [696]
    pairs = [["EPIi", "BH3i"], ["NFKBi", "EPIi"]]  # given together at the earliest start
    [outcome]
    kind = "persister_burden"            # integrated over [start_day, day]; or resistance_risk,
                                         # or at day: sox10_low_fraction, viable_cells, priming
    start_day = 0                        # window start (integrated kinds), >= -pre_days
    day = 29
    mutation_rate = 1e-7                 # resistance_risk: resistant lineages per division
    [sensitivity]                        # optional; pathwise through the CLE
    bins_h = [0, 12, 24, 48, 72, 120, 168, 336, 696]
    n_cells = 64
    softness = 0.05                      # sigmoid width of the SOX10-low threshold (relative)
    dt = 0.005                           # CLE step: small enough for stable path derivatives
    around = "half"                      # derivative at half each target's level ("zero": at 0)
    panels = 1                           # "half" with N panels: mean derivative at the N
                                         # midpoints of [0, level] (composite midpoint rule)
    [optimise]                           # optional: per-bin levels under a dose budget
    inputs = ["EPIi"]
    budget_h = 168                       # hours at level 1, per input
    bins_h = [0, 24, 72, 168, 336, 696]
    steps = 20
    n_cells = 32
    validate_cells = 256                 # fresh cells (scan solver) for the check vs constant
    [run]
    solver = "cle"                        # ssa | tau | cle | lna | ode (for the scan)
    dt = 0.02                             # CLE step (h) of the scan
    n_cells = 512
    seed = 0
    pre_days = 0                          # all-inputs-0 pre-equilibration before t = 0
    chunk = 8                             # scenarios per compiled call (progress, memory)

With an integrated outcome the run also reports, beside it, the SOX10-low fraction at ``day``
(the snapshot), viable cells at ``day`` and the resistance risk over the window (each with its
own ranking in ``results.json``).

Outputs in DIR: ``report.md``, ``interventions.csv`` (target, start_h, duration_h, level,
outcome, outcome_se, benefit, benefit_se; first row the base), ``pairs.csv`` (with
``scan.pairs``), ``ranking.csv``, ``results.json`` (everything),
``heatmap.png``, ``benefit_vs_start.png``, ``sensitivity.png``, ``trajectories.png`` and, with
``[optimise]``, ``optimised_schedule.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import config as checks, options, provenance
from .config import fail

SECTIONS = {
    "model": {"builtin", "sbml", "params", "heterogeneity"},
    "protocol": None,  # input names
    "scan": {"targets", "levels", "start_h", "duration_h", "pairs"},
    "outcome": {"kind", "day", "threshold", "start_day", "mutation_rate"},
    "sensitivity": {"bins_h", "n_cells", "softness", "dt", "around", "panels"},
    "optimise": {"inputs", "budget_h", "bins_h", "steps", "n_cells", "validate_cells"},
    "run": {"solver", "dt", "n_cells", "seed", "pre_days", "chunk"},
}
REQUIRED = ("model", "scan", "outcome")
INTEGRATED = ("persister_burden", "resistance_risk")
"""Outcome kinds integrated over the window ``[start_day, day]``."""
SENSITIVITY_DT = 0.005
"""Default CLE step (h) of pathwise sensitivities and schedule optimisation: the melanoma model's
path derivatives are stable at 0.005 h, not at 0.02 h (`fitting.sensitivity`)."""


def load_config(path) -> dict:
    """Read and check a ``grn interventions`` TOML file; errors name the file and the key."""
    path = Path(path)
    raw = checks.read(path, SECTIONS, required=REQUIRED)
    cfg = {"path": path, **{s: dict(raw.get(s, {})) for s in SECTIONS}}
    model = cfg["model"]
    checks.model_source(path, model)
    params = model.get("params", {})
    if not isinstance(params, dict):
        fail(path, "model.params", "must be a table of name = value")
    for name, value in params.items():
        checks.number(path, f"model.params.{name}", value, minimum=0)
    for name, steps in cfg["protocol"].items():
        key = f"protocol.{name}"
        if not isinstance(steps, list) or not steps:
            fail(path, key, "must be a list of [time_h, level] pairs")
        for pair in steps:
            if not (isinstance(pair, list) and len(pair) == 2):
                fail(path, key, f"each step must be [time_h, level], got {pair!r}")
            checks.number(path, key, pair[0], minimum=0)
            checks.number(path, key, pair[1], minimum=0)
            if pair[1] > 1:
                fail(path, key, f"levels must be in [0, 1], got {pair[1]!r}")
        times = [p[0] for p in steps]
        if any(b <= a for a, b in zip(times, times[1:])):
            fail(path, key, f"times must be strictly increasing, got {times}")
    scan = cfg["scan"]
    for key in ("targets", "levels", "start_h", "duration_h"):
        if key not in scan:
            fail(path, f"scan.{key}", "missing")
    if not (isinstance(scan["targets"], list) and scan["targets"]):
        fail(path, "scan.targets", "must be a non-empty list of input names")
    if not all(isinstance(t, str) for t in scan["targets"]):
        fail(path, "scan.targets", "must be a list of input names (strings)")
    scan["start_h"] = checks.numbers(path, "scan.start_h", scan["start_h"], minimum=0)
    scan["duration_h"] = checks.numbers(path, "scan.duration_h", scan["duration_h"], positive=True)
    levels = scan["levels"]
    if isinstance(levels, dict):
        for t in scan["targets"]:
            if t not in levels:
                fail(path, "scan.levels", f"no level for target {t!r}")
        for t, v in levels.items():
            if t not in scan["targets"]:
                fail(path, f"scan.levels.{t}", "is not one of scan.targets")
            vals = v if isinstance(v, list) else [v]
            for x in checks.numbers(path, f"scan.levels.{t}", vals, minimum=0):
                if x > 1:
                    fail(path, f"scan.levels.{t}", f"levels must be in [0, 1], got {x}")
    else:
        vals = levels if isinstance(levels, list) else [levels]
        for x in checks.numbers(path, "scan.levels", vals, minimum=0):
            if x > 1:
                fail(path, "scan.levels", f"levels must be in [0, 1], got {x}")
    pairs = scan.setdefault("pairs", [])
    if not isinstance(pairs, list):
        fail(path, "scan.pairs", "must be a list of [target, target] pairs")
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and pair[0] != pair[1]):
            fail(path, "scan.pairs", f"each pair must be two different targets, got {pair!r}")
        for t in pair:
            if t not in scan["targets"]:
                fail(path, "scan.pairs", f"{t!r} is not one of scan.targets")
    out = cfg["outcome"]
    out.setdefault("kind", "persister_burden")
    import fitting

    if out["kind"] not in fitting.OUTCOMES:
        fail(
            path,
            "outcome.kind",
            f"unknown outcome {out['kind']!r} (one of {list(fitting.OUTCOMES)})",
        )
    out["day"] = float(checks.number(path, "outcome.day", out.get("day", 29), positive=True))
    if "start_day" in out and out["kind"] not in INTEGRATED:
        fail(path, "outcome.start_day", f"applies to the integrated outcomes {INTEGRATED} only")
    if "mutation_rate" in out and out["kind"] != "resistance_risk":
        fail(path, "outcome.mutation_rate", "applies to outcome 'resistance_risk' only")
    if out["kind"] in INTEGRATED:
        out["start_day"] = float(checks.number(path, "outcome.start_day", out.get("start_day", 0)))
        if not out["start_day"] < out["day"]:
            fail(path, "outcome.start_day", f"must be before outcome.day ({out['day']:g})")
    if "mutation_rate" in out:
        checks.number(path, "outcome.mutation_rate", out["mutation_rate"], positive=True)
    run = cfg["run"]
    run.setdefault("solver", "cle")
    if run["solver"] not in ("ssa", "tau", "cle", "lna", "ode"):
        fail(path, "run.solver", f"unknown solver {run['solver']!r} (ssa, tau, cle, lna, ode)")
    run["dt"] = float(checks.number(path, "run.dt", run.get("dt", 0.02), positive=True))
    run["n_cells"] = checks.number(
        path, "run.n_cells", run.get("n_cells", 256), integer=True, positive=True
    )
    run["seed"] = checks.number(path, "run.seed", run.get("seed", 0), integer=True, minimum=0)
    run["pre_days"] = float(checks.number(path, "run.pre_days", run.get("pre_days", 0), minimum=0))
    if out.get("start_day", 0) < -run["pre_days"]:
        fail(
            path,
            "outcome.start_day",
            f"the window [{out['start_day']:g}, {out['day']:g}] days lies outside the protocol "
            f"(it starts at day {-run['pre_days']:g}: run.pre_days)",
        )
    run["chunk"] = checks.number(
        path, "run.chunk", run.get("chunk", 8), integer=True, positive=True
    )
    sens = cfg["sensitivity"]
    if sens:
        sens["bins_h"] = checks.numbers(
            path, "sensitivity.bins_h", sens.get("bins_h", []), minimum=0
        )
        sens["n_cells"] = checks.number(
            path, "sensitivity.n_cells", sens.get("n_cells", 64), integer=True, positive=True
        )
        sens["softness"] = float(
            checks.number(path, "sensitivity.softness", sens.get("softness", 0.05), positive=True)
        )
        sens["dt"] = float(
            checks.number(path, "sensitivity.dt", sens.get("dt", SENSITIVITY_DT), positive=True)
        )
        sens.setdefault("around", "half")
        if sens["around"] not in ("half", "zero"):
            fail(path, "sensitivity.around", f"must be 'half' or 'zero', got {sens['around']!r}")
        sens["panels"] = checks.number(
            path, "sensitivity.panels", sens.get("panels", 1), integer=True, positive=True
        )
    opt = cfg["optimise"]
    if opt:
        if not (isinstance(opt.get("inputs"), list) and opt["inputs"]):
            fail(path, "optimise.inputs", "must be a non-empty list of input names")
        opt["bins_h"] = checks.numbers(path, "optimise.bins_h", opt.get("bins_h", []), minimum=0)
        opt["budget_h"] = float(
            checks.number(path, "optimise.budget_h", opt.get("budget_h"), minimum=0)
        )
        opt["steps"] = checks.number(
            path, "optimise.steps", opt.get("steps", 20), integer=True, minimum=0
        )
        opt["n_cells"] = checks.number(
            path, "optimise.n_cells", opt.get("n_cells", 32), integer=True, positive=True
        )
        opt["validate_cells"] = checks.number(
            path,
            "optimise.validate_cells",
            opt.get("validate_cells", run["n_cells"]),
            integer=True,
            positive=True,
        )
    return cfg


def build(cfg):
    """The network, base schedule, per-cell parameters, outcome, solver and key of a config."""
    import jax

    import fitting
    import grn

    path, model = cfg["path"], cfg["model"]
    network = checks.network(path, model)
    params = {}
    for name, value in model.get("params", {}).items():
        if name not in network.params:
            fail(path, f"model.params.{name}", "the model has no such parameter")
        params[name] = float(value)
    key_sim = jax.random.key(cfg["run"]["seed"])
    params = options.cell_parameters(network, params, model.get("heterogeneity", True))
    for name in cfg["protocol"]:
        if name not in network.inputs:
            fail(path, f"protocol.{name}", f"not an input of the model ({list(network.inputs)})")
    base = None
    if cfg["protocol"]:
        times = sorted({p[0] for steps in cfg["protocol"].values() for p in steps})
        values = {}
        for name, steps in cfg["protocol"].items():
            st = np.array([p[0] for p in steps])
            lv = np.array([p[1] for p in steps])
            values[name] = [
                0.0
                if np.searchsorted(st, t, "right") == 0
                else lv[np.searchsorted(st, t, "right") - 1]
                for t in times
            ]
        base = grn.Schedule(times=times, values=values)
    try:
        fitting.check_targets(
            network, [fitting.Intervention(t, 0.0) for t in cfg["scan"]["targets"]]
        )
    except ValueError as err:
        fail(path, "scan.targets", str(err))
    outcome = make_outcome(network, cfg["outcome"])
    run = cfg["run"]
    solver = {
        "ssa": lambda: grn.SSA(),
        "tau": lambda: grn.TauLeap(epsilon=0.03),
        "cle": lambda: grn.CLE(dt=run["dt"]),
        "lna": lambda: grn.LNA(),
        "ode": lambda: grn.ODE(),
    }[run["solver"]]()
    return network, base, (params or None), outcome, solver, key_sim


def make_outcome(network, out: dict, softness: float = 0.0, kind: str | None = None):
    """The configured outcome (``kind`` overrides ``outcome.kind``, keeping day and window);
    ``softness > 0``: its sigmoid form where it has one (for gradients)."""
    import fitting

    kind = kind or out["kind"]
    options = {"threshold": out["threshold"]} if "threshold" in out else {}
    if kind in INTEGRATED:
        options["start_day"] = out.get("start_day", 0.0)
    if kind == "resistance_risk" and "mutation_rate" in out:
        options["mutation_rate"] = out["mutation_rate"]
    if softness and kind in INTEGRATED + ("sox10_low_fraction",):
        options["softness"] = softness
    if kind == "viable_cells":
        options = {}
    return fitting.make_outcome(network, kind, out["day"], **options)


def _beside(network, out: dict) -> list:
    """Outcomes reported beside an integrated one: the SOX10-low snapshot and viable cells at
    ``day`` and the resistance risk over the window (where the network has S and growth)."""
    kinds = ["viable_cells"]
    if out["kind"] in INTEGRATED and "S" in network.species:
        kinds.insert(0, "sox10_low_fraction")
        if network.growth is not None and out["kind"] != "resistance_risk":
            kinds.append("resistance_risk")
    if out["kind"] == "viable_cells":
        kinds.remove("viable_cells")
    return [make_outcome(network, out, kind=k) for k in kinds]


@dataclasses.dataclass
class Run:
    """What `run_config` computed: the JSON summary and the scan, sensitivity and optimisation
    results (`fitting.ScanResult`, `fitting.Sensitivity`, `fitting.Optimised`; the last two
    ``None`` without their config section)."""

    summary: dict
    result: Any
    sens: Any = None
    opt: Any = None


def run_config(cfg, progress: bool = True, log=print) -> Run:
    """Run a checked configuration: the scan, ranking, sensitivities and optimisation, all
    `fitting` calls; ``log`` gets the progress lines."""
    import jax

    import fitting
    import grn

    started = time.perf_counter()
    network, base, params, outcome, solver, key = build(cfg)
    scan_cfg, run, pre_h = cfg["scan"], cfg["run"], cfg["run"]["pre_days"] * fitting.DAY
    key_scan, key_sens, key_opt = jax.random.split(key, 3)
    n_scen = 1 + len(scan_cfg["targets"]) * len(scan_cfg["start_h"]) * len(scan_cfg["duration_h"])
    n_scen += len(scan_cfg["pairs"])
    log(f"scan: {n_scen} scenarios x {run['n_cells']} cells, {type(solver).__name__}")
    t0 = time.perf_counter()
    extra = _beside(network, cfg["outcome"])
    result = fitting.scan(
        network,
        base,
        scan_cfg["targets"],
        scan_cfg["start_h"],
        scan_cfg["duration_h"],
        scan_cfg["levels"],
        outcome,
        solver,
        run["n_cells"],
        key_scan,
        params=params,
        extra_outcomes=extra,
        pairs=scan_cfg["pairs"],
        pre_h=pre_h,
        chunk=run["chunk"],
        progress=progress,
    )
    timings = {"scan_s": time.perf_counter() - t0}
    ranking = fitting.rank(result)
    beside = {}
    for o, other in enumerate(extra, 1):
        value, se = result.run.outcome(o)
        beside[other.name] = {
            "time_h": other.time_h,
            "start_h": other.start_h,
            "better": other.better,
            "base": (float(value[0]), float(se[0])),
            "ranking": fitting.rank(result, o=o),
        }
    by_target = {name: {r["target"]: r for r in b["ranking"]} for name, b in beside.items()}
    for r in ranking:
        r["beside"] = {
            name: {
                k: by_target[name][r["target"]][k]
                for k in ("rank", "benefit", "benefit_se", "window_h")
            }
            for name in beside
        }
    summary = {
        "config": str(cfg["path"]),
        "model": cfg["model"].get("builtin") or cfg["model"].get("sbml"),
        "solver": repr(solver),
        "n_cells": run["n_cells"],
        "seed": run["seed"],
        "pre_days": run["pre_days"],
        "outcome": {
            "name": outcome.name,
            "time_h": outcome.time_h,
            "start_h": outcome.start_h,
            "better": outcome.better,
        },
        "base_outcome": result.base,
        "rows": result.rows,
        "pairs": result.pairs,
        "ranking": ranking,
        "beside": beside,
    }
    sens = None
    if cfg["sensitivity"]:
        sc = cfg["sensitivity"]
        soft = make_outcome(network, cfg["outcome"], sc["softness"])
        log(
            f"sensitivity: {len(scan_cfg['targets'])} targets x {len(sc['bins_h']) - 1} bins, "
            f"CLE(dt={sc['dt']}), {sc['n_cells']} cells (forward-mode pathwise)"
        )
        t0 = time.perf_counter()
        around = None
        if sc["around"] == "half":
            levels = scan_cfg["levels"]
            around = {
                t: fitting.midpoints(fitting.levels_for(levels, t)[0], sc["panels"])
                for t in scan_cfg["targets"]
            }
        sens = fitting.sensitivity(
            network,
            base,
            scan_cfg["targets"],
            sc["bins_h"],
            soft,
            grn.CLE(dt=sc["dt"]),
            sc["n_cells"],
            key_sens,
            params=params,
            pre_h=pre_h,
            around=around,
        )
        timings["sensitivity_s"] = time.perf_counter() - t0
        cmp = fitting.compare(sens, result)
        summary["sensitivity"] = {
            "outcome": soft.name,
            "solver": f"CLE(dt={sc['dt']})",
            "n_cells": sc["n_cells"],
            "edges_h": sens.edges.tolist(),
            "targets": list(sens.targets),
            "grad": sens.grad.tolist(),
            "se": sens.se.tolist(),
            "windows": sens.windows(),
            "around": dict(zip(sens.targets, sens.around)),
            "n_excluded": sens.n_excluded,
            "spearman_vs_scan": cmp["spearman"],
        }
    opt = None
    if cfg["optimise"]:
        oc = cfg["optimise"]
        soft = make_outcome(network, cfg["outcome"], cfg["sensitivity"].get("softness", 0.05))
        log(
            f"optimise: {oc['inputs']} over {len(oc['bins_h']) - 1} bins, budget "
            f"{oc['budget_h']} h, {oc['steps']} steps, {oc['n_cells']} cells"
        )
        t0 = time.perf_counter()
        opt = fitting.optimise_schedule(
            network,
            base,
            oc["inputs"],
            oc["bins_h"],
            oc["budget_h"],
            soft,
            grn.CLE(dt=cfg["sensitivity"].get("dt", SENSITIVITY_DT)),
            oc["n_cells"],
            key_opt,
            params=params,
            steps=oc["steps"],
            validate_outcome=outcome,
            validate_cells=oc["validate_cells"],
            validate_solver=solver,
            pre_h=pre_h,
            progress=progress,
        )
        timings["optimise_s"] = time.perf_counter() - t0
        summary["optimise"] = {
            "inputs": list(opt.inputs),
            "edges_h": opt.edges.tolist(),
            "budget_h": opt.budget_h.tolist(),
            "levels": opt.levels.tolist(),
            "best_constant_levels": opt.constant.tolist(),
            "objective_history": opt.history,
            "outcome": opt.outcome,
            "benefit_over_base": opt.benefit_over_base,
            "benefit_over_best_constant": opt.benefit_over_constant,
            "validate_cells": oc["validate_cells"],
            "validate_solver": repr(solver),
            "significant_2se": bool(
                abs(opt.benefit_over_constant[0]) > 2 * opt.benefit_over_constant[1]
            ),
        }
    timings["total_s"] = time.perf_counter() - started
    summary["timings"] = timings
    return Run(summary, result, sens, opt)


# -- outputs ------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "target",
    "start_h",
    "duration_h",
    "level",
    "outcome",
    "outcome_se",
    "benefit",
    "benefit_se",
)


def write_outputs(out: Path, run: Run, args, head: str = "") -> dict[str, Path]:
    """interventions.csv, ranking.csv, the figures, results.json (the summary and its
    provenance) and report.md (``head``, then `report`) in ``out``; returns the files."""
    from .plots import (
        plot_benefit_vs_start,
        plot_heatmap,
        plot_optimised,
        plot_scenario_trajectories,
        plot_sensitivity,
    )

    summary, result, sens, opt = run.summary, run.result, run.sens, run.opt
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    with open(out / "interventions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerow(["none (base)", "", "", "", *[result.base[0], result.base[1]], 0.0, 0.0])
        for r in result.rows:
            writer.writerow([r[c] for c in CSV_COLUMNS])
    files["interventions"] = out / "interventions.csv"
    if result.pairs:
        columns = (*CSV_COLUMNS, "over_best_single", "over_best_single_se")
        with open(out / "pairs.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for r in result.pairs:
                writer.writerow([r[c] for c in columns])
        files["pairs"] = out / "pairs.csv"
    beside = list(summary.get("beside", {}))
    with open(out / "ranking.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        delay = ["cost_per_day", "cost_per_day_se", "window_interp_h", "window_interp_se_h"]
        writer.writerow(
            ["rank", "target", "level", "benefit", "benefit_se", "window_h", *delay]
            + [f"{name}_{k}" for name in beside for k in ("rank", "benefit", "benefit_se")]
        )
        for r in summary["ranking"]:
            d = r["delay"]
            writer.writerow(
                [r["rank"], r["target"], r["level"], r["benefit"], r["benefit_se"], r["window_h"]]
                + [d["cost_per_day"], d["cost_per_day_se"], d["window_h"], d["window_se_h"]]
                + [r["beside"][n][k] for n in beside for k in ("rank", "benefit", "benefit_se")]
            )
    files["ranking"] = out / "ranking.csv"
    files["heatmap"] = plot_heatmap(result, out / "heatmap.png")
    files["benefit_vs_start"] = plot_benefit_vs_start(result, out / "benefit_vs_start.png")
    files["trajectories"] = plot_scenario_trajectories(result, out / "trajectories.png")
    if sens is not None:
        files["sensitivity"] = plot_sensitivity(sens, out / "sensitivity.png")
    if opt is not None:
        files["optimised_schedule"] = plot_optimised(opt, out / "optimised_schedule.png")
    files["results"] = out / "results.json"
    files["report"] = out / "report.md"
    provenance.write(files["results"], summary, args, files)
    files["report"].write_text(head + report(summary))
    return files


def fmt_hours(h):
    """A time in hours for the report (with the day from 48 h on); ``None``: no benefit."""
    if h is None:
        return "none (no benefit)"
    return f"{h:g} h" if h < 48 else f"{h:g} h (day {h / 24:g})"


def report(summary) -> str:
    """The Markdown report of a run: what was run, the ranking, the windows, the figures."""
    o = summary["outcome"]
    beside = summary.get("beside", {})
    lines = [
        "# Early intervention points",
        "",
        f"Model `{summary['model']}`; outcome **{o['name']}** {_when(o)} "
        f"({o['better']} is better{_units(o['name'])}); benefit = outcome(base protocol) - "
        "outcome(with the intervention), sign flipped where higher is better, paired over the "
        "same cells (common random numbers), ± one standard error."
        + (
            " Beside it: " + ", ".join(f"{n} {_when(b)}" for n, b in beside.items()) + "."
            if beside
            else ""
        ),
        "",
        f"Scan: solver `{summary['solver']}`, {summary['n_cells']} cells per scenario, seed "
        f"{summary['seed']}, pre-equilibration {summary['pre_days']:g} days; base outcome "
        f"{summary['base_outcome'][0]:.4g} ± {summary['base_outcome'][1]:.2g}.",
        "",
        "## Ranking (earliest start)",
        "",
        "| rank | target | level | benefit | SE | window (latest start keeping ≥ 80 %) |"
        + "".join(f" {n}: rank, benefit ± SE |" for n in beside),
        "|---|---|---|---|---|---|" + "---|" * len(beside),
    ]
    for r in summary["ranking"]:
        lines.append(
            f"| {r['rank']} | {r['target']} | {r['level']:g} | {r['benefit']:.4g} | "
            f"{r['benefit_se']:.2g} | {fmt_hours(r['window_h'])} |"
            + "".join(
                f" {b['rank']}, {b['benefit']:.4g} ± {b['benefit_se']:.2g} |"
                for b in r["beside"].values()
            )
        )
    ranking = summary["ranking"]
    if ranking:
        top = ranking[0]
        tied = [
            r["target"]
            for r in ranking[1:]
            if top["benefit"] - r["benefit"] < 2 * math.hypot(top["benefit_se"], r["benefit_se"])
        ]
        if tied:
            lines += [
                "",
                f"Within two standard errors of {top['target']} (not distinguishable at this "
                f"ensemble size): {', '.join(tied)}.",
            ]
    lines += ["", "Benefit against start time (h):", ""]
    starts = sorted({s for r in summary["ranking"] for s in r["benefit_by_start"]})
    lines.append("| target | " + " | ".join(f"{s:g}" for s in starts) + " |")
    lines.append("|---" * (len(starts) + 1) + "|")
    for r in summary["ranking"]:
        cells = [f"{r['benefit_by_start'].get(s, float('nan')):.3g}" for s in starts]
        lines.append(f"| {r['target']} | " + " | ".join(cells) + " |")
    lines += ["", "![heatmap](heatmap.png)", "", "![benefit vs start](benefit_vs_start.png)", ""]
    lines += ["## How early: windows and the cost of delay", ""]
    lines += [delay_text(r, o["name"]) for r in summary["ranking"]]
    for name, other in beside.items():
        if other.get("start_h") is None and name == "sox10_low_fraction":
            lines += ["", f"The same on the snapshot ({name} {_when(other)}):", ""]
            lines += [delay_text(r, name) for r in other["ranking"]]
    if o.get("start_h") is not None and "sox10_low_fraction" in beside:
        lines += [
            "",
            "The snapshot and the integral can disagree: the SOX10-low state is reversible, so "
            "an intervention started late still pulls the day-29 fraction down (cells return "
            "within days once stress falls), while the persister cell-days already spent before "
            "the start, from which resistance can arise, are not undone. The integral charges "
            "every day of delay; the snapshot only where the population stands on one day.",
        ]
    if summary.get("pairs"):
        lines += [
            "",
            "## Pairs on top of the base protocol (earliest start)",
            "",
            "| pair | levels | outcome | benefit ± SE | over the better single ± SE |",
            "|---|---|---|---|---|",
        ]
        for r in summary["pairs"]:
            lines.append(
                f"| {r['target']} | {r['level']} | {r['outcome']:.4g} | {r['benefit']:.4g} ± "
                f"{r['benefit_se']:.2g} | {r['over_best_single']:.4g} ± "
                f"{r['over_best_single_se']:.2g} |"
            )
    lines.append("")
    if "sensitivity" in summary:
        s = summary["sensitivity"]
        lines += [
            "## Time-resolved sensitivity",
            "",
            f"d outcome / d u(t) per time bin, pathwise through `{s['solver']}` (forward mode, "
            f"fixed noise), {s['n_cells']} cells ({s['n_excluded']} left out: non-finite path "
            f"derivative), soft outcome `{s['outcome']}`, {_around_text(s['around'])}. "
            f"Spearman rank "
            f"correlation between the first-order predicted benefit and the scanned benefit over "
            f"targets x starts: **{s['spearman_vs_scan']:.3f}**.",
            "",
            "| target | bin where acting helps most | window (≥ half that peak) |",
            "|---|---|---|",
        ]
        for w in s["windows"]:
            lines.append(
                f"| {w['target']} | {w['peak_bin_h'][0]:g}-{w['peak_bin_h'][1]:g} h | "
                f"{w['window_h'][0]:g}-{w['window_h'][1]:g} h |"
            )
        lines += ["", "![sensitivity](sensitivity.png)", ""]
    if "optimise" in summary:
        p = summary["optimise"]
        b, bse = p["benefit_over_best_constant"]
        lines += [
            "## Optimised schedule",
            "",
            f"Inputs {p['inputs']}, bins {p['edges_h']} h, budget {p['budget_h']} h at level 1. "
            f"Levels: {np.round(p['levels'], 3).tolist()}; best constant: "
            f"{np.round(p['best_constant_levels'], 3).tolist()}. Validated on fresh cells: "
            + ", ".join(f"{k} {v[0]:.4g} ± {v[1]:.2g}" for k, v in p["outcome"].items())
            + f"; benefit over the best constant schedule {b:.4g} ± {bse:.2g} on "
            f"{p['validate_cells']} fresh cells ({p['validate_solver']}): "
            + ("significant at 2 SE." if p["significant_2se"] else "NOT significant at 2 SE."),
            "",
            "![optimised schedule](optimised_schedule.png)",
            "",
        ]
    lines += [
        "## Trajectories",
        "",
        "![trajectories](trajectories.png)",
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings"].items()),
        "",
    ]
    return "\n".join(lines)


def _when(o: dict) -> str:
    if o.get("start_h") is None:
        return f"at day {o['time_h'] / 24:g}"
    return f"integrated over days {o['start_h'] / 24:g}-{o['time_h'] / 24:g}"


UNITS = {
    "persister_burden": "viable SOX10-low cell-days per starting cell",
    "resistance_risk": "expected resistant lineages per starting cell",
    "viable_cells": "viable cells per starting cell",
    "sox10_low_fraction": "fraction of cells",
}


def _units(name: str) -> str:
    return f"; {UNITS[name]}" if name in UNITS else ""


def delay_text(r: dict, name: str) -> str:
    """One sentence per target: the window (latest start keeping 80 % of the day-0 benefit) and
    the cost of each day of delay, with SEs."""
    d = r["delay"]
    b0 = r["benefit"]
    if not b0 > 0:
        return f"**{r['target']}** ({name}): no benefit at the earliest start ({b0:.3g})."
    starts = sorted(r["benefit_by_start"])
    if d["window_reached"]:
        window = (
            f"a start up to {d['window_h'] / 24:.2f} ± {d['window_se_h'] / 24:.2f} days keeps "
            "80 % of the day-0 benefit (interpolated between scanned starts)"
        )
    else:
        window = (
            f"every scanned start up to day {starts[-1] / 24:g} keeps 80 % of the day-0 benefit"
        )
    share = 100 * d["cost_per_day"] / b0
    return (
        f"**{r['target']}** ({name}): day-0 benefit {b0:.4g} ± {r['benefit_se']:.2g}; {window}; "
        f"each day of delay costs {d['cost_per_day']:.3g} ± {d['cost_per_day_se']:.2g} "
        f"({share:.1f} % of the day-0 benefit; least-squares slope over starts "
        f"{starts[0] / 24:g}-{starts[-1] / 24:g} days, paired over cells)."
    )


def _around_text(around: dict) -> str:
    if all(v == 0 for levels in around.values() for v in levels):
        return "taken at the base protocol (the local slope: every target at level 0)"
    return (
        f"averaged over the levels {around} at which each target is held over all bins (the "
        "midpoints of [0, scanned level]: the composite midpoint rule of the benefit's integral "
        "over the level)"
    )


# -- the sub-command ----------------------------------------------------------------------------
def add_parser(commands) -> None:
    p = commands.add_parser(
        "interventions",
        help="rank early intervention points: scan, sensitivities, schedule optimisation",
        description=(
            "Scan interventions (target x start x duration x level) on top of a base protocol in "
            "one batched simulation, compute time-resolved sensitivities, optionally optimise a "
            "schedule under a dose budget, and write report.md, interventions.csv, ranking.csv, "
            "results.json and PNG figures into --out. CONFIG is a TOML file (see "
            "`grn_cli.interventions` or the README for the keys)."
        ),
    )
    p.add_argument("config", type=Path, metavar="CONFIG.toml")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("grn-interventions"),
        metavar="DIR",
        help="output folder (default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    """``grn interventions``: returns the exit status."""
    out = options.output_folder(args.out)
    ran = run_config(load_config(args.config), progress=True)
    write_outputs(out, ran, args)
    print_ranking(ran.summary["ranking"])
    print(f"wrote {out / 'report.md'} ({ran.summary['timings']['total_s']:.0f} s)")
    return 0


def print_ranking(ranking) -> None:
    """One line per ranked target: benefit ± SE and the window."""
    for r in ranking:
        print(
            f"{r['rank']}. {r['target']} {r['level']:g}: benefit {r['benefit']:.3g} ± "
            f"{r['benefit_se']:.2g}, window {fmt_hours(r['window_h'])}"
        )
