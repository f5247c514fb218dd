"""Plots of simulation results (matplotlib's Agg backend, imported lazily)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from grn.models import DAY, DRUG


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
