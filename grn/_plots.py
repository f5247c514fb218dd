"""Plots of simulation results (matplotlib's Agg backend, imported lazily)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


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
