"""``grn interventions CONFIG.toml --out DIR``: scan, sensitivities, optional schedule optimisation,
and a ranked report of early intervention points.

The configuration (TOML; every key is checked and an unknown one is named)::

    [model]
    builtin = "melanoma"                 # or sbml = "model.xml" (relative to the config file)
    heterogeneity = true                 # melanoma only: per-cell kM1 (melanoma_cell_params)
    [model.params]                       # parameter overrides, e.g. from a fit's fit.json
    kNAC = 5.0
    [protocol]                           # the base protocol: input = [[time_h, level], ...]
    BRAFi = [[0.0, 0.95], [696.0, 0.0]]
    [scan]
    targets = ["NFKBi", "NAC", "EPIi", "BH3i"]
    levels = { NFKBi = 0.8, NAC = 1.0, EPIi = 0.8, BH3i = 1.0 }   # or one number / a list
    start_h = [0, 6, 12, 24, 48, 72, 168, 336]
    duration_h = [696]
    [outcome]
    kind = "sox10_low_fraction"          # or viable_cells, priming
    day = 29
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
    [run]
    solver = "cle"                        # ssa | tau | cle | lna | ode (for the scan)
    dt = 0.1                              # CLE step (h) of the scan
    n_cells = 512
    seed = 0
    pre_days = 0                          # all-inputs-0 pre-equilibration before t = 0
    chunk = 8                             # scenarios per compiled call (progress, memory)

Outputs in DIR: ``report.md``, ``interventions.csv`` (target, start_h, duration_h, level,
outcome, outcome_se, benefit, benefit_se), ``ranking.csv``, ``results.json`` (everything),
``heatmap.png``, ``benefit_vs_start.png``, ``sensitivity.png``, ``trajectories.png`` and, with
``[optimise]``, ``optimised_schedule.png``.
"""

from __future__ import annotations

import csv
import json
import math
import time
import tomllib
from pathlib import Path

import numpy as np

SECTIONS = {
    "model": {"builtin", "sbml", "params", "heterogeneity"},
    "protocol": None,  # input names
    "scan": {"targets", "levels", "start_h", "duration_h"},
    "outcome": {"kind", "day", "threshold"},
    "sensitivity": {"bins_h", "n_cells", "softness", "dt", "around", "panels"},
    "optimise": {"inputs", "budget_h", "bins_h", "steps", "n_cells"},
    "run": {"solver", "dt", "n_cells", "seed", "pre_days", "chunk"},
}
REQUIRED = ("model", "scan", "outcome")
SENSITIVITY_DT = 0.005
"""Default CLE step (h) of pathwise sensitivities and schedule optimisation: the melanoma model's
path derivatives are stable at 0.005 h, not at 0.02 h (`fitting.sensitivity`)."""


class ConfigError(ValueError):
    """A bad configuration: the message names the file and the key."""


def _fail(path, key, message):
    raise ConfigError(f"{path}: [{key}] {message}")


def _num(path, key, value, *, integer=False, minimum=None, positive=False):
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, key, f"must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        _fail(path, key, f"must be an integer, got {value!r}")
    if not math.isfinite(value):
        _fail(path, key, f"must be finite, got {value!r}")
    if positive and value <= 0:
        _fail(path, key, f"must be positive, got {value!r}")
    if minimum is not None and value < minimum:
        _fail(path, key, f"must be >= {minimum}, got {value!r}")
    return value


def _numbers(path, key, value, **kw):
    if not isinstance(value, list) or not value:
        _fail(path, key, f"must be a non-empty list of numbers, got {value!r}")
    return [float(_num(path, key, v, **kw)) for v in value]


def load_config(path) -> dict:
    """Read and check a ``grn interventions`` TOML file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    for section, value in raw.items():
        if section not in SECTIONS:
            _fail(path, section, f"unknown section (expected {', '.join(SECTIONS)})")
        if not isinstance(value, dict):
            _fail(path, section, "must be a table")
        known = SECTIONS[section]
        for key in value:
            if known is not None and key not in known:
                _fail(
                    path, f"{section}.{key}", f"unknown key (expected {', '.join(sorted(known))})"
                )
    for section in REQUIRED:
        if section not in raw:
            _fail(path, section, "missing section")
    cfg = {"path": path, **{s: dict(raw.get(s, {})) for s in SECTIONS}}
    model = cfg["model"]
    if ("builtin" in model) == ("sbml" in model):
        _fail(path, "model", "give exactly one of builtin = NAME or sbml = FILE")
    params = model.get("params", {})
    if not isinstance(params, dict):
        _fail(path, "model.params", "must be a table of name = value")
    for name, value in params.items():
        _num(path, f"model.params.{name}", value, minimum=0)
    for name, steps in cfg["protocol"].items():
        key = f"protocol.{name}"
        if not isinstance(steps, list) or not steps:
            _fail(path, key, "must be a list of [time_h, level] pairs")
        for pair in steps:
            if not (isinstance(pair, list) and len(pair) == 2):
                _fail(path, key, f"each step must be [time_h, level], got {pair!r}")
            _num(path, key, pair[0], minimum=0)
            _num(path, key, pair[1], minimum=0)
            if pair[1] > 1:
                _fail(path, key, f"levels must be in [0, 1], got {pair[1]!r}")
        times = [p[0] for p in steps]
        if any(b <= a for a, b in zip(times, times[1:])):
            _fail(path, key, f"times must be strictly increasing, got {times}")
    scan = cfg["scan"]
    for key in ("targets", "levels", "start_h", "duration_h"):
        if key not in scan:
            _fail(path, f"scan.{key}", "missing")
    if not (isinstance(scan["targets"], list) and scan["targets"]):
        _fail(path, "scan.targets", "must be a non-empty list of input names")
    if not all(isinstance(t, str) for t in scan["targets"]):
        _fail(path, "scan.targets", "must be a list of input names (strings)")
    scan["start_h"] = _numbers(path, "scan.start_h", scan["start_h"], minimum=0)
    scan["duration_h"] = _numbers(path, "scan.duration_h", scan["duration_h"], positive=True)
    levels = scan["levels"]
    if isinstance(levels, dict):
        for t in scan["targets"]:
            if t not in levels:
                _fail(path, "scan.levels", f"no level for target {t!r}")
        for t, v in levels.items():
            if t not in scan["targets"]:
                _fail(path, f"scan.levels.{t}", "is not one of scan.targets")
            vals = v if isinstance(v, list) else [v]
            for x in _numbers(path, f"scan.levels.{t}", vals, minimum=0):
                if x > 1:
                    _fail(path, f"scan.levels.{t}", f"levels must be in [0, 1], got {x}")
    else:
        vals = levels if isinstance(levels, list) else [levels]
        for x in _numbers(path, "scan.levels", vals, minimum=0):
            if x > 1:
                _fail(path, "scan.levels", f"levels must be in [0, 1], got {x}")
    out = cfg["outcome"]
    out.setdefault("kind", "sox10_low_fraction")
    from fitting import OUTCOMES

    if out["kind"] not in OUTCOMES:
        _fail(path, "outcome.kind", f"unknown outcome {out['kind']!r} (one of {list(OUTCOMES)})")
    out["day"] = float(_num(path, "outcome.day", out.get("day", 29), positive=True))
    run = cfg["run"]
    run.setdefault("solver", "cle")
    if run["solver"] not in ("ssa", "tau", "cle", "lna", "ode"):
        _fail(path, "run.solver", f"unknown solver {run['solver']!r} (ssa, tau, cle, lna, ode)")
    run["dt"] = float(_num(path, "run.dt", run.get("dt", 0.1), positive=True))
    run["n_cells"] = _num(path, "run.n_cells", run.get("n_cells", 256), integer=True, positive=True)
    run["seed"] = _num(path, "run.seed", run.get("seed", 0), integer=True, minimum=0)
    run["pre_days"] = float(_num(path, "run.pre_days", run.get("pre_days", 0), minimum=0))
    run["chunk"] = _num(path, "run.chunk", run.get("chunk", 8), integer=True, positive=True)
    sens = cfg["sensitivity"]
    if sens:
        sens["bins_h"] = _numbers(path, "sensitivity.bins_h", sens.get("bins_h", []), minimum=0)
        sens["n_cells"] = _num(
            path, "sensitivity.n_cells", sens.get("n_cells", 64), integer=True, positive=True
        )
        sens["softness"] = float(
            _num(path, "sensitivity.softness", sens.get("softness", 0.05), positive=True)
        )
        sens["dt"] = float(
            _num(path, "sensitivity.dt", sens.get("dt", SENSITIVITY_DT), positive=True)
        )
        sens.setdefault("around", "half")
        if sens["around"] not in ("half", "zero"):
            _fail(path, "sensitivity.around", f"must be 'half' or 'zero', got {sens['around']!r}")
        sens["panels"] = _num(
            path, "sensitivity.panels", sens.get("panels", 1), integer=True, positive=True
        )
    opt = cfg["optimise"]
    if opt:
        if not (isinstance(opt.get("inputs"), list) and opt["inputs"]):
            _fail(path, "optimise.inputs", "must be a non-empty list of input names")
        opt["bins_h"] = _numbers(path, "optimise.bins_h", opt.get("bins_h", []), minimum=0)
        opt["budget_h"] = float(_num(path, "optimise.budget_h", opt.get("budget_h"), minimum=0))
        opt["steps"] = _num(path, "optimise.steps", opt.get("steps", 20), integer=True, minimum=0)
        opt["n_cells"] = _num(
            path, "optimise.n_cells", opt.get("n_cells", 32), integer=True, positive=True
        )
    return cfg


def build(cfg):
    """The network, base schedule, per-cell parameters, outcome, solver and key of a config."""
    import jax

    import grn
    from fitting import Intervention, check_targets, make_outcome

    path, model = cfg["path"], cfg["model"]
    if "builtin" in model:
        if model["builtin"] not in grn.models.BUILTIN:
            _fail(path, "model.builtin", f"unknown model {model['builtin']!r}")
        network = grn.models.BUILTIN[model["builtin"]]()
    else:
        file = (path.parent / model["sbml"]).resolve()
        if not file.exists():
            _fail(path, "model.sbml", f"file {str(file)!r} not found")
        network = grn.load_sbml(file)
    params = {}
    for name, value in model.get("params", {}).items():
        if name not in network.params:
            _fail(path, f"model.params.{name}", "the model has no such parameter")
        params[name] = float(value)
    key = jax.random.key(cfg["run"]["seed"])
    key_cells, key_sim = jax.random.split(key)
    n = cfg["run"]["n_cells"]
    if model.get("builtin") == "melanoma" and model.get("heterogeneity", True):
        from grn.models._melanoma import melanoma_cell_params

        median = params.pop("kM1", None)
        params.update(melanoma_cell_params(key_cells, n, kM1=median))
    for name in cfg["protocol"]:
        if name not in network.inputs:
            _fail(path, f"protocol.{name}", f"not an input of the model ({list(network.inputs)})")
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
        check_targets(network, [Intervention(t, 0.0) for t in cfg["scan"]["targets"]])
    except ValueError as err:
        _fail(path, "scan.targets", str(err))
    out = cfg["outcome"]
    options = {"threshold": out["threshold"]} if "threshold" in out else {}
    outcome = make_outcome(network, out["kind"], out["day"], **options)
    run = cfg["run"]
    solver = {
        "ssa": lambda: grn.SSA(),
        "tau": lambda: grn.TauLeap(epsilon=0.03),
        "cle": lambda: grn.CLE(dt=run["dt"]),
        "lna": lambda: grn.LNA(),
        "ode": lambda: grn.ODE(),
    }[run["solver"]]()
    return network, base, (params or None), outcome, solver, key_sim


def _subset(params, n):
    """Per-cell parameters of the first ``n`` cells (for the smaller sensitivity ensembles)."""
    if params is None:
        return None
    return {k: (v[:n] if np.ndim(v) == 1 else v) for k, v in params.items()}


def run_config(cfg, out: Path, progress: bool = True, log=print) -> dict:
    """Run a checked configuration, write every output into ``out``, return the summary."""
    import jax

    import fitting as iv
    import grn

    started = time.perf_counter()
    network, base, params, outcome, solver, key = build(cfg)
    scan_cfg, run, pre_h = cfg["scan"], cfg["run"], cfg["run"]["pre_days"] * iv.DAY
    key_scan, key_sens, key_opt = jax.random.split(key, 3)
    n_scen = 1 + len(scan_cfg["targets"]) * len(scan_cfg["start_h"]) * len(scan_cfg["duration_h"])
    log(f"scan: {n_scen} scenarios x {run['n_cells']} cells, {type(solver).__name__}")
    t0 = time.perf_counter()
    extra = [iv.viable_cells(outcome.time_h / iv.DAY)] if outcome.name != "viable_cells" else []
    result = iv.scan(
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
        pre_h=pre_h,
        chunk=run["chunk"],
        progress=progress,
    )
    timings = {"scan_s": time.perf_counter() - t0}
    ranking = iv.rank(result)
    summary = {
        "config": str(cfg["path"]),
        "model": cfg["model"].get("builtin") or cfg["model"].get("sbml"),
        "solver": repr(solver),
        "n_cells": run["n_cells"],
        "seed": run["seed"],
        "pre_days": run["pre_days"],
        "outcome": {"name": outcome.name, "time_h": outcome.time_h, "better": outcome.better},
        "base_outcome": result.base,
        "rows": result.rows,
        "ranking": ranking,
    }
    sens = None
    if cfg["sensitivity"]:
        sc = cfg["sensitivity"]
        soft = outcome
        if outcome.name == "sox10_low_fraction":
            soft = iv.sox10_low_fraction(
                network, outcome.time_h / iv.DAY, outcome.per_cell.threshold, sc["softness"]
            )
        log(
            f"sensitivity: {len(scan_cfg['targets'])} targets x {len(sc['bins_h']) - 1} bins, "
            f"CLE(dt={sc['dt']}), {sc['n_cells']} cells (forward-mode pathwise)"
        )
        t0 = time.perf_counter()
        around = None
        if sc["around"] == "half":
            levels = scan_cfg["levels"]
            around = {
                t: iv.midpoints(iv.levels_for(levels, t)[0], sc["panels"])
                for t in scan_cfg["targets"]
            }
        sens = iv.sensitivity(
            network,
            base,
            scan_cfg["targets"],
            sc["bins_h"],
            soft,
            grn.CLE(dt=sc["dt"]),
            sc["n_cells"],
            key_sens,
            params=_subset(params, sc["n_cells"]),
            pre_h=pre_h,
            around=around,
        )
        timings["sensitivity_s"] = time.perf_counter() - t0
        cmp = iv.compare(sens, result)
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
        soft = outcome
        if outcome.name == "sox10_low_fraction":
            soft = iv.sox10_low_fraction(
                network,
                outcome.time_h / iv.DAY,
                outcome.per_cell.threshold,
                cfg["sensitivity"].get("softness", 0.05),
            )
        log(
            f"optimise: {oc['inputs']} over {len(oc['bins_h']) - 1} bins, budget "
            f"{oc['budget_h']} h, {oc['steps']} steps, {oc['n_cells']} cells"
        )
        t0 = time.perf_counter()
        opt = iv.optimise_schedule(
            network,
            base,
            oc["inputs"],
            oc["bins_h"],
            oc["budget_h"],
            soft,
            grn.CLE(dt=cfg["sensitivity"].get("dt", SENSITIVITY_DT)),
            oc["n_cells"],
            key_opt,
            params=_subset(params, oc["n_cells"]),
            steps=oc["steps"],
            validate_outcome=outcome,
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
        }
    timings["total_s"] = time.perf_counter() - started
    summary["timings"] = timings
    write_outputs(out, summary, result, sens, opt)
    return summary


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


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_outputs(out: Path, summary, result, sens, opt) -> dict:
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
    with open(out / "ranking.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "target", "level", "benefit", "benefit_se", "window_h"])
        for r in summary["ranking"]:
            writer.writerow(
                [r["rank"], r["target"], r["level"], r["benefit"], r["benefit_se"], r["window_h"]]
            )
    files["ranking"] = out / "ranking.csv"
    files["heatmap"] = plot_heatmap(result, out / "heatmap.png")
    files["benefit_vs_start"] = plot_benefit_vs_start(result, out / "benefit_vs_start.png")
    files["trajectories"] = plot_trajectories(result, out / "trajectories.png")
    if sens is not None:
        files["sensitivity"] = plot_sensitivity(sens, out / "sensitivity.png")
    if opt is not None:
        files["optimised_schedule"] = plot_optimised(opt, out / "optimised_schedule.png")
    summary["files"] = {k: v.name for k, v in files.items()} | {
        "results": "results.json",
        "report": "report.md",
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    (out / "report.md").write_text(report(summary))
    return files


def _fmt_h(h):
    if h is None:
        return "none (no benefit)"
    return f"{h:g} h" if h < 48 else f"{h:g} h (day {h / 24:g})"


def report(summary) -> str:
    """The Markdown report of a run: what was run, the ranking, the windows, the figures."""
    o = summary["outcome"]
    lines = [
        "# Early intervention points",
        "",
        f"Model `{summary['model']}`; outcome **{o['name']}** at day {o['time_h'] / 24:g} "
        f"({o['better']} is better); benefit = outcome(base protocol) - outcome(with the "
        "intervention), sign flipped where higher is better, paired over the same cells "
        "(common random numbers), ± one standard error.",
        "",
        f"Scan: solver `{summary['solver']}`, {summary['n_cells']} cells per scenario, seed "
        f"{summary['seed']}, pre-equilibration {summary['pre_days']:g} days; base outcome "
        f"{summary['base_outcome'][0]:.4g} ± {summary['base_outcome'][1]:.2g}.",
        "",
        "## Ranking (earliest start)",
        "",
        "| rank | target | level | benefit | SE | window (latest start keeping ≥ 80 %) |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["ranking"]:
        lines.append(
            f"| {r['rank']} | {r['target']} | {r['level']:g} | {r['benefit']:.4g} | "
            f"{r['benefit_se']:.2g} | {_fmt_h(r['window_h'])} |"
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
            + f"; benefit over the best constant schedule {b:.4g} ± {bse:.2g}.",
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


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_heatmap(result, path) -> Path:
    """Outcome (colour) and benefit (text) for target x start time, first level and duration."""
    plt = _plt()
    targets = list(dict.fromkeys(r["target"] for r in result.rows))
    starts = sorted({r["start_h"] for r in result.rows})
    grid = np.full((len(targets), len(starts)), np.nan)
    ben = np.full_like(grid, np.nan)
    for t in targets:
        rows = [r for r in result.rows if r["target"] == t]
        level, dur = rows[0]["level"], max(r["duration_h"] for r in rows)
        for r in rows:
            if r["level"] == level and r["duration_h"] == dur:
                i, j = targets.index(t), starts.index(r["start_h"])
                grid[i, j], ben[i, j] = r["outcome"], r["benefit"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(starts), 1.0 + 0.6 * len(targets)))
    im = ax.imshow(
        grid, aspect="auto", cmap="viridis_r" if result.outcome.better == "lower" else "viridis"
    )
    for i in range(len(targets)):
        for j in range(len(starts)):
            ax.text(j, i, f"{ben[i, j]:+.2g}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(starts)), [f"{s:g}" for s in starts])
    ax.set_yticks(range(len(targets)), targets)
    ax.set_xlabel("start (h)")
    fig.colorbar(im, ax=ax, label=f"{result.outcome.name} (base {result.base[0]:.3g})")
    ax.set_title("outcome by target and start (text: benefit)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_benefit_vs_start(result, path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for t in dict.fromkeys(r["target"] for r in result.rows):
        rows = [r for r in result.rows if r["target"] == t]
        level, dur = rows[0]["level"], max(r["duration_h"] for r in rows)
        rows = sorted(
            (r for r in rows if r["level"] == level and r["duration_h"] == dur),
            key=lambda r: r["start_h"],
        )
        x = [r["start_h"] for r in rows]
        ax.errorbar(
            x,
            [r["benefit"] for r in rows],
            [r["benefit_se"] for r in rows],
            marker="o",
            capsize=2,
            label=f"{t} {level:g}",
        )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xscale("symlog", linthresh=24)
    ax.set_xlabel("start (h)")
    ax.set_ylabel(f"benefit ({result.outcome.name})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _around_text(around: dict) -> str:
    if all(v == 0 for levels in around.values() for v in levels):
        return "taken at the base protocol (the local slope: every target at level 0)"
    return (
        f"averaged over the levels {around} at which each target is held over all bins (the "
        "midpoints of [0, scanned level]: the composite midpoint rule of the benefit's integral "
        "over the level)"
    )


def plot_sensitivity(sens, path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    e = sens.edges
    gain_sign = -sens.outcome.sign
    for t, target in enumerate(sens.targets):
        per_h = gain_sign * sens.grad[t] / np.diff(e)
        se = sens.se[t] / np.diff(e)
        ax.stairs(per_h, e, label=target)
        ax.errorbar(0.5 * (e[1:] + e[:-1]), per_h, se, fmt="none", capsize=2, color="grey")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xscale("symlog", linthresh=24)
    ax.set_xlim(e[0], e[-1])
    ax.set_xlabel("time (h)")
    ax.set_ylabel("benefit per unit level per hour")
    ax.set_title(f"time-resolved sensitivity of {sens.outcome.name}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_trajectories(result, path, species=("S", "W1", "W2", "B")) -> Path:
    """Ensemble means of a few species and the viable cells: base and each target's earliest
    intervention."""
    plt = _plt()
    run = result.run
    names = [s for s in species if s in run.species] or list(run.species[:4])
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(3.2 * (len(names) + 1), 3))
    picks, seen = {"base": 0}, set()
    for i, r in enumerate(result.rows):
        if (r["target"], r["level"]) not in seen:  # rows are ordered by start within a target
            seen.add((r["target"], r["level"]))
            picks[f"{r['target']} {r['level']:g} from {r['start_h']:g} h"] = i + 1
    days = run.ts / 24.0
    for label, k in picks.items():
        style = {"color": "k", "lw": 2} if k == 0 else {"lw": 1}
        for ax, s in zip(axes, names):
            ax.plot(days, run.mean[k, :, run.species.index(s)], label=label, **style)
        axes[-1].plot(days, run.viable[k], **style)
    for ax, s in zip(axes, names):
        ax.set_title(f"mean {s}", fontsize=9)
        ax.set_xlabel("day")
    axes[-1].set_yscale("log")
    axes[-1].set_title("viable cells per cell", fontsize=9)
    axes[-1].set_xlabel("day")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_optimised(opt, path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, name in enumerate(opt.inputs):
        ax.stairs(opt.levels[i], opt.edges, label=f"{name} optimised", lw=2)
        ax.hlines(
            opt.constant[i],
            opt.edges[0],
            opt.edges[-1],
            linestyles="--",
            label=f"{name} best constant",
            color=f"C{i}",
        )
    ax.set_xscale("symlog", linthresh=24)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("level")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


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
            "`fitting._interventions_cli` or the README for the keys)."
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
    p.set_defaults(func=_main)


def _main(args) -> int:
    if not args.config.exists():
        raise ConfigError(f"config file {str(args.config)!r} not found")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {str(args.out)!r} exists and is not a folder")
    cfg = load_config(args.config)
    summary = run_config(cfg, args.out, progress=True)
    for r in summary["ranking"]:
        print(
            f"{r['rank']}. {r['target']} {r['level']:g}: benefit {r['benefit']:.3g} ± "
            f"{r['benefit_se']:.2g}, window {_fmt_h(r['window_h'])}"
        )
    print(f"wrote {args.out / 'report.md'} ({summary['timings']['total_s']:.0f} s)")
    return 0
