"""The command line's figures (matplotlib's Agg backend, imported lazily): ``grn simulate``'s
trajectories and melanoma observables, ``grn fit``'s fit and loss history, ``grn interventions``'
heatmap, benefit, sensitivity, scenario and schedule plots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from grn.models import DAY, DRUG


# -- grn simulate ----------------------------------------------------------------------------------
def ensemble_stats(ys, result=None, cov_within=None):
    """Mean and standard deviation over cells, per output time and species, in float64.

    Cells whose ``result`` code is not 0 (failed) are left out. The variance is the unbiased
    (n - 1) one across cells (0 for a single trajectory) plus, for moment solvers such as the
    LNA, the mean of the solver's own per-trajectory variances ``cov_within``, as in
    `grn.Solution.std`. Returns ``(mean, sd, n_ok)``, ``mean`` and ``sd`` of shape (times, species).
    """
    ys = np.asarray(ys, dtype=np.float64)
    keep = slice(None) if result is None else np.asarray(result) == 0
    ys = ys[keep]
    n_ok = ys.shape[0]
    if n_ok == 0:
        nan = np.full(ys.shape[1:], np.nan)
        return nan, nan.copy(), 0
    mean = ys.mean(axis=0)
    var = ys.var(axis=0, ddof=1) if n_ok > 1 else np.zeros_like(mean)
    if cov_within is not None:
        within = np.asarray(cov_within, dtype=np.float64)[keep]
        var = var + np.diagonal(within, axis1=-2, axis2=-1).mean(axis=0)
    return mean, np.sqrt(var), n_ok


def plot_trajectories(sol, path, n_single: int = 5, title: str | None = None) -> Path:
    """Write a PNG with one panel per species: ensemble mean ± sd and a few single cells.

    ``sol`` is a `grn.Solution` (or anything with ``ts``, ``ys``, ``result`` and ``species``);
    ``n_single`` single-cell trajectories are drawn thin under the mean (the first successful
    cells, so the picture is reproducible). A single trajectory (a deterministic solver) is drawn
    as one line, with a ± sd band when the solver gives its own covariance (``cov_within``, LNA).
    Failed cells are left out of the statistics. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ts = np.asarray(sol.ts, dtype=np.float64)
    ys = np.asarray(sol.ys, dtype=np.float64)
    result = np.asarray(sol.result) if getattr(sol, "result", None) is not None else None
    species = list(sol.species)
    cov_within = getattr(sol, "cov_within", None)
    mean, sd, n_ok = ensemble_stats(ys, result, cov_within)
    ok = ys if result is None else ys[result == 0]
    singles = ok[: max(0, int(n_single))]

    n = len(species)
    ncols = 1 if n <= 3 else (2 if n <= 8 else 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(
        figsize=(6.4 * ncols if ncols > 1 else 8.0, 2.6 * nrows + 0.8), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()

    for i, (ax, name) in enumerate(zip(axes, species)):
        if n_ok > 1:
            for j, cell in enumerate(singles):
                ax.plot(
                    ts,
                    cell[:, i],
                    color="0.45",
                    lw=0.7,
                    alpha=0.6,
                    label="single cells" if j == 0 else None,
                )
        if n_ok > 1 or cov_within is not None:
            ax.fill_between(
                ts,
                mean[:, i] - sd[:, i],
                mean[:, i] + sd[:, i],
                color="C0",
                alpha=0.25,
                lw=0,
                label="mean ± sd",
            )
            ax.plot(ts, mean[:, i], color="C0", lw=2.0, label="mean")
        else:
            ax.plot(ts, mean[:, i], color="C0", lw=2.0, label="trajectory")
        ax.set_ylabel(f"{name}\n(count per cell)")
        ax.grid(alpha=0.3)
        ax.margins(x=0)
        if i >= n - ncols:
            ax.set_xlabel("time")
            ax.tick_params(labelbottom=True)
    for ax in axes[n:]:
        ax.set_visible(False)

    axes[0].legend(loc="best", fontsize="small", framealpha=0.8)
    cells = f"{n_ok} cells" if n_ok != 1 else "1 trajectory"
    fig.suptitle(f"{title}  ({cells})" if title else cells)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_observables(obs: Mapping, path, schedule=None, title: str = "") -> Path:
    """Write a PNG of `grn.models.melanoma_observables` against days: input levels (``schedule``),
    SOX10-low fraction (± 2 standard errors), wave scores, priming, viable cells and the
    bimodality coefficient of S (5/9 marked). Returns the path written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    day = np.asarray(obs["day"])
    fig = Figure(figsize=(13.0, 7.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3, sharex=True).ravel()
    if schedule is not None:
        edges = np.append(np.asarray(schedule.times) / DAY, max(day[-1], schedule.times[-1] / DAY))
        for k, (name, levels) in enumerate(schedule.values.items()):
            levels = np.append(levels, levels[-1])
            axes[0].step(edges, levels, where="post", color=f"C{k}", lw=2, label=name)
            if name == DRUG:
                for ax in axes:
                    for a, b, on in zip(edges[:-1], edges[1:], levels[:-1] > 0):
                        if on:
                            ax.axvspan(a, min(b, day[-1]), color="0.9", lw=0, zorder=0)
        axes[0].legend(fontsize="small")
    axes[0].set(ylabel="input level", ylim=(-0.05, 1.05), title="protocol (grey: on BRAFi)")
    p, se = np.asarray(obs["sox10_low_fraction"]), np.asarray(obs["sox10_low_se"])
    band = np.clip(p - 2 * se, 0, 1), np.clip(p + 2 * se, 0, 1)
    axes[1].fill_between(day, *band, color="C3", alpha=0.25, lw=0)
    axes[1].plot(day, p, color="C3", lw=2)
    axes[1].set(ylabel="fraction of cells", ylim=(-0.02, 1.02), title="SOX10-low (± 2 s.e.)")
    axes[2].plot(day, obs["W1"], color="C1", lw=2, label="W1 (early, λ1-like)")
    axes[2].plot(day, obs["W2"], color="C4", lw=2, label="W2 (late, λ2-like)")
    axes[2].set(ylabel="mean per cell", title="wave scores")
    axes[2].legend(fontsize="small")
    axes[3].plot(day, obs["priming"], color="C2", lw=2)
    axes[3].set(ylabel="mean B / (B + KBh)", title="apoptotic priming")
    viable = np.asarray(obs["viable_cells"])
    axes[4].plot(day, viable, color="k", lw=2)
    axes[4].set(ylabel="per starting cell", title="viable cells")
    if np.nanmin(viable) > 0 and np.nanmax(viable) > 20 * np.nanmin(viable):
        axes[4].set_yscale("log")
    axes[5].plot(day, obs["S_bimodality"], color="C0", lw=2)
    axes[5].axhline(5 / 9, color="0.4", ls="--", lw=1, label="5/9")
    axes[5].set(ylabel="Sarle's coefficient", title="SOX10 bimodality across cells")
    axes[5].legend(fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.margins(x=0)
    for ax in axes[3:]:
        ax.set_xlabel("day")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


# -- grn fit ---------------------------------------------------------------------------------------
def plot_fit(problem, measurements, result, path):
    """Data (points, error bars; single cells as dots) against the fitted model, one panel per
    (observable, condition)."""
    import jax.numpy as jnp
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = {k: jnp.asarray(v) for k, v in result.params.items()}
    t_end = float(np.max(measurements.time))
    ts = jnp.linspace(0.0, t_end if t_end > 0 else 1.0, 101)
    summary, _, _ = problem.predict(values, ts=ts, hard=True)  # hard thresholds for reporting
    summary = np.asarray(summary, np.float64)
    obs, conds = problem.observable_ids, problem.condition_ids
    fig = Figure(figsize=(4.0 * len(conds) + 1, 2.8 * len(obs) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(obs), len(conds), squeeze=False, sharex=True)
    for i, o in enumerate(obs):
        for j, c in enumerate(conds):
            ax = axes[i, j]
            rows = (measurements.observable == o) & (measurements.condition == c)
            cell = rows & measurements.is_cell
            pop = rows & ~measurements.is_cell
            if cell.any():
                ax.plot(
                    measurements.time[cell], measurements.value[cell], ".", color="0.6", ms=2,
                    label="single cells",
                )  # fmt: skip
            if pop.any():
                ax.errorbar(
                    measurements.time[pop], measurements.value[pop], measurements.sigma[pop],
                    fmt="o", color="k", ms=4, capsize=2, label="data",
                )  # fmt: skip
            ax.plot(np.asarray(ts), summary[i, j], color="C0", lw=2, label="fitted model")
            ax.set_title(f"{o} — {c}", fontsize="medium")
            ax.grid(alpha=0.3)
            if i == len(obs) - 1:
                ax.set_xlabel("time")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(f"fit: loss {result.loss:.4g}")
    fig.savefig(path, dpi=110)


def plot_petab_fit(problem, result, path):
    """A PEtab fit (`fitting.PetabProblem`): measurements (points, error bars: the fitted noise
    sd) against the best start's simulated observable at the measurement times (line), one
    panel per (observable, simulation condition); log axes for log-transformed observables."""
    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = {k: jnp.asarray(v) for k, v in result.params.items()}
    y, sigma, _ = eqx.filter_jit(type(problem).row_predictions)(problem, values)
    y, sigma = np.asarray(y, np.float64), np.asarray(sigma, np.float64)
    m = problem.measurements
    sim, data = np.asarray(m["sim"]), np.asarray(m["value"], np.float64)
    t = np.asarray(problem.ts, np.float64)[np.asarray(m["t"])]
    obs = problem.observable_ids
    conds = problem.simulation_ids
    panels = [
        (i, j, rows[sim[rows] == j])
        for i, rows in enumerate(np.asarray(r) for r in problem.row_groups)
        for j in range(len(conds))
    ]
    panels = [p for p in panels if p[2].size]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.0 * ncols + 1, 2.8 * nrows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (i, j, rows) in zip(axes, panels):
        order = rows[np.argsort(t[rows], kind="stable")]
        transform = problem.petab_observables[i][3]
        ax.errorbar(
            t[order], data[order], None if transform != "lin" else sigma[order],
            fmt="o", color="k", ms=4, capsize=2, label="data",
        )  # fmt: skip
        ax.plot(t[order], y[order], color="C0", lw=2, marker=".", label="fitted model")
        if transform != "lin":
            ax.set_yscale("log")
        ax.set_title(f"{obs[i]} — {conds[j]}", fontsize="medium")
        ax.set_xlabel("time")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"PEtab fit: negative log-posterior {result.loss:.6g}")
    fig.savefig(path, dpi=110)


def plot_history(result, path):
    """Loss against step, one line per start (shifted to be positive, log scale)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    history = np.asarray(result.history, np.float64)
    shift = np.nanmin(np.where(np.isfinite(history), history, np.nan)) if history.size else 0.0
    for i in range(history.shape[1] if history.ndim == 2 else 0):
        ax.plot(history[:, i] - shift + 1.0, lw=1, label=f"start {i}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss - min + 1")
    ax.grid(alpha=0.3)
    if history.ndim == 2 and history.shape[1] <= 10:
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


# -- grn interventions -----------------------------------------------------------------------------
def _plt():
    """pyplot on the Agg backend."""
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
    """Benefit ± SE against start time, one line per target (first level, longest duration)."""
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


def plot_sensitivity(sens, path) -> Path:
    """Benefit per unit level per hour of each target in each time bin, ± SE."""
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


def plot_scenario_trajectories(result, path, species=("S", "W1", "W2", "B")) -> Path:
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
    """Optimised per-bin levels of each input against its best constant level."""
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
