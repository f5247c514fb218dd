"""Streaming ensemble statistics: moments and histograms accumulated chunk by chunk of cells."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._solution import RESULTS


class Moments(eqx.Module):
    """What ``grn.simulate(..., reduce=grn.Moments(...))`` accumulates instead of trajectories.

    ``reduce="moments"`` is ``Moments()``. ``histograms`` maps species names to increasing bin
    edges; each gives per-output-time counts with NumPy's convention (bins ``[e_i, e_{i+1})``,
    the last one closed). Edges are traced values: new edges of the same length never recompile.
    """

    histograms: dict[str, np.ndarray]

    def __init__(self, histograms: Mapping[str, object] | None = None):
        if histograms is not None and not isinstance(histograms, Mapping):
            raise TypeError("Moments(histograms=...) must map species names to bin edges")
        checked = {}
        for name, edges in (histograms or {}).items():
            arr = np.asarray(edges, dtype=float)
            if arr.ndim != 1 or arr.shape[0] < 2:
                raise ValueError(
                    f"histogram edges of {name!r} must be a 1-D array of at least 2 edges, "
                    f"got shape {arr.shape}"
                )
            if not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
                raise ValueError(f"histogram edges of {name!r} must be finite and increasing")
            checked[name] = arr
        self.histograms = checked


class Histogram(eqx.Module):
    """Counts of cells per bin at each output time; ``counts[t, i]`` counts ``edges[i] <= x``
    ``< edges[i + 1]`` (the last bin includes its right edge)."""

    edges: Float[Array, " edges"]
    counts: Int[Array, "times bins"]


class EnsembleMoments(eqx.Module):
    r"""Ensemble statistics of ``n_cells`` cells without their trajectories.

    ``mean``, ``cov``, ``std``, ``moments(weighted)`` and ``viable_cells`` mean what they mean on a
    `grn.Solution` of the same cells (equal up to float rounding). Chunks of cells are merged with
    the pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise
    algorithm for computing sample variances"): for two parts with weights ``W_a, W_b``, means
    ``m_a, m_b`` and centred second moments ``C_a, C_b`` (divided by their weight),
    ``m = f_a m_a + f_b m_b`` and ``C = f_a C_a + f_b C_b + f_a f_b (m_b - m_a)(m_b - m_a)^T`` with
    ``f = W / (W_a + W_b)`` — never a difference of large raw sums. Cell weights
    ``exp(log_weight)`` enter through their log-sum-exp, so they cannot overflow.

    Only successful cells enter the statistics (``count``); ``result_counts[code]`` counts cells
    per `grn.RESULTS` code, all codes included.
    """

    ts: Float[Array, " times"]
    count: Int[Array, ""]
    mean_: Float[Array, "times species"]
    m2: Float[Array, "times species species"]
    log_weight_total: Float[Array, " times"]
    weighted_mean: Float[Array, "times species"]
    weighted_m2: Float[Array, "times species species"]
    result_counts: Int[Array, " codes"]
    n_events: Float[Array, ""]
    histograms: dict[str, Histogram]
    species: tuple[str, ...] = eqx.field(static=True)
    cov_within: Float[Array, "times species species"] | None = None
    weighted_cov_within: Float[Array, "times species species"] | None = None

    @property
    def n_cells(self) -> int:
        """Cells simulated (all result codes)."""
        return int(jnp.sum(self.result_counts))

    def moments(self, weighted: bool = False):
        """Mean (times, species) and covariance (times, species, species), as `Solution.moments`.

        Unweighted: the unbiased ``(n - 1)`` covariance; weighted by ``exp(log_weight)``: the
        plain weighted covariance. A moment solver's own covariance is added (the mixture's).
        """
        if weighted:
            mean, cov, within = self.weighted_mean, self.weighted_m2, self.weighted_cov_within
        else:
            n = self.count.astype(self.mean_.dtype)
            mean, within = self.mean_, self.cov_within
            cov = self.m2 * jnp.where(n > 1, n / jnp.maximum(n - 1, 1), 1.0)
        return mean, cov if within is None else cov + within

    @property
    def mean(self) -> Float[Array, "times species"]:
        """Unweighted ensemble mean."""
        return self.mean_

    @property
    def cov(self) -> Float[Array, "times species species"]:
        """Unweighted ensemble covariance."""
        return self.moments()[1]

    @property
    def std(self) -> Float[Array, "times species"]:
        """Unweighted ensemble standard deviation per species."""
        return jnp.sqrt(jnp.diagonal(self.cov, axis1=-2, axis2=-1))

    def viable_cells(self, n0: float = 1.0) -> Float[Array, " times"]:
        """Expected viable-cell count ``n0 * mean_c exp(log_weight_c)`` over time."""
        n = self.count.astype(self.mean_.dtype)
        return n0 * jnp.exp(self.log_weight_total) / n


# -- accumulation (traced) --------------------------------------------------------------------
def chunk_stats(path, ok, valid, hist_index, edges):
    """Statistics of one chunk of cells (a batched `CellPath`); ``ok`` marks cells that count."""
    ys, lw = path.ys, path.log_weight
    dtype = ys.dtype
    w = ok.astype(dtype)
    n = jnp.sum(ok.astype(jnp.int32))
    x = jnp.where(ok[:, None, None], ys, 0.0)
    mean = jnp.einsum("c,cts->ts", w, x) / jnp.maximum(n, 1).astype(dtype)
    dev = jnp.where(ok[:, None, None], x - mean, 0.0)
    m2 = jnp.einsum("cts,ctr->tsr", dev, dev) / jnp.maximum(n, 1).astype(dtype)
    lw = jnp.where(ok[:, None], lw, -jnp.inf)
    total = jax.nn.logsumexp(lw, axis=0)
    p = jnp.where(ok[:, None], jnp.exp(lw - _finite_or_zero(total)), 0.0)
    wmean = jnp.einsum("ct,cts->ts", p, x)
    wdev = jnp.where(ok[:, None, None], x - wmean, 0.0)
    wm2 = jnp.einsum("ct,cts,ctr->tsr", p, wdev, wdev)
    codes = jnp.arange(len(RESULTS))
    stats = {
        "count": n,
        "mean": mean,
        "m2": m2,
        "log_weight_total": total,
        "weighted_mean": wmean,
        "weighted_m2": wm2,
        "result_counts": jnp.sum(
            (path.result[:, None] == codes) & valid[:, None], axis=0, dtype=jnp.int32
        ),
        "n_events": jnp.sum(jnp.where(valid, path.n_events, 0).astype(dtype)),
        "histograms": tuple(_histogram(ys[..., i], ok, e) for i, e in zip(hist_index, edges)),
        "cov_within": None,
        "weighted_cov_within": None,
    }
    if path.cov is not None:
        cov = jnp.where(ok[:, None, None, None], path.cov, 0.0)
        stats["cov_within"] = jnp.einsum("c,ctsr->tsr", w, cov) / jnp.maximum(n, 1).astype(dtype)
        stats["weighted_cov_within"] = jnp.einsum("ct,ctsr->tsr", p, cov)
    return stats


def _histogram(x, ok, edges):
    """Counts (times, bins) of ``x`` (cells, times) with NumPy's bin convention."""
    n_bins = edges.shape[0] - 1
    idx = jnp.searchsorted(edges, x, side="right") - 1
    idx = jnp.where(x == edges[-1], n_bins - 1, idx)
    keep = ok[:, None] & (idx >= 0) & (idx < n_bins)
    t = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape)
    counts = jnp.zeros((x.shape[1], n_bins), jnp.int32)
    return counts.at[t, jnp.clip(idx, 0, n_bins - 1)].add(keep.astype(jnp.int32))


def combine(a, b):
    """Merge the statistics of two disjoint groups of cells (Chan et al. 1979)."""
    dtype = a["mean"].dtype
    n = a["count"] + b["count"]
    denom = jnp.maximum(n, 1).astype(dtype)
    fa, fb = a["count"].astype(dtype) / denom, b["count"].astype(dtype) / denom
    total = jnp.logaddexp(a["log_weight_total"], b["log_weight_total"])
    safe = _finite_or_zero(total)
    ga = jnp.where(jnp.isfinite(total), jnp.exp(a["log_weight_total"] - safe), 0.0)
    gb = jnp.where(jnp.isfinite(total), jnp.exp(b["log_weight_total"] - safe), 0.0)
    out = {
        "count": n,
        "log_weight_total": total,
        "result_counts": a["result_counts"] + b["result_counts"],
        "n_events": a["n_events"] + b["n_events"],
        "histograms": tuple(x + y for x, y in zip(a["histograms"], b["histograms"])),
    }
    out["mean"], out["m2"] = _merge(fa, fb, a["mean"], b["mean"], a["m2"], b["m2"])
    out["weighted_mean"], out["weighted_m2"] = _merge(
        ga[:, None],
        gb[:, None],
        a["weighted_mean"],
        b["weighted_mean"],
        a["weighted_m2"],
        b["weighted_m2"],
    )
    out["cov_within"] = _blend(fa, fb, a["cov_within"], b["cov_within"])
    gaa, gbb = ga[:, None, None], gb[:, None, None]
    out["weighted_cov_within"] = _blend(
        gaa, gbb, a["weighted_cov_within"], b["weighted_cov_within"]
    )
    return out


def _merge(fa, fb, mean_a, mean_b, m2_a, m2_b):
    delta = mean_b - mean_a
    mean = fa * mean_a + fb * mean_b
    outer = delta[..., :, None] * delta[..., None, :]
    fa3, fb3 = jnp.asarray(fa)[..., None], jnp.asarray(fb)[..., None]
    return mean, fa3 * m2_a + fb3 * m2_b + (fa3 * fb3) * outer


def _blend(fa, fb, a, b):
    return None if a is None else fa * a + fb * b


def _finite_or_zero(v):
    return jnp.where(jnp.isfinite(v), v, 0.0)


def to_result(stats, ts, species, hist_names, edges) -> EnsembleMoments:
    """Package accumulated statistics for the user."""
    return EnsembleMoments(
        ts=ts,
        count=stats["count"],
        mean_=stats["mean"],
        m2=stats["m2"],
        log_weight_total=stats["log_weight_total"],
        weighted_mean=stats["weighted_mean"],
        weighted_m2=stats["weighted_m2"],
        result_counts=stats["result_counts"],
        n_events=stats["n_events"],
        histograms={
            name: Histogram(e, c) for name, e, c in zip(hist_names, edges, stats["histograms"])
        },
        species=species,
        cov_within=stats["cov_within"],
        weighted_cov_within=stats["weighted_cov_within"],
    )
