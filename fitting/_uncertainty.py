"""Uncertainty at the optimum: Hessian standard errors and profile likelihoods.

Both treat ``problem.loss`` as a negative log-likelihood (true for the Gaussian NLL of
deterministic ODE/LNA predictions), so ``2 (loss - loss_min)`` is the likelihood-ratio statistic.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._fit import FitResult, default_optimizer, fit
from ._problem import Problem

PROFILE_LEVEL = 0.95


@dataclasses.dataclass
class StandardErrors:
    """Asymptotic standard errors from the observed information (the Hessian of the NLL).

    ``stderr_phi``: in optimiser coordinates (``ln`` of log-scale parameters);
    ``stderr``: natural scale by the delta method (``value * se(ln value)`` on a log scale);
    ``hessian`` and ``covariance`` in optimiser coordinates, ``eigenvalues`` of the Hessian;
    ``identifiable``: False for parameters with weight on a direction whose curvature is below
    ``rtol`` times the largest (a flat valley), whose errors are then infinite.
    """

    names: tuple[str, ...]
    stderr: dict[str, float]
    stderr_phi: dict[str, float]
    hessian: np.ndarray
    covariance: np.ndarray
    eigenvalues: np.ndarray
    identifiable: dict[str, bool]


@eqx.filter_jit
def _gradients(problem: Problem, phis):
    return jax.vmap(jax.grad(problem.loss))(phis)


def hessian(problem: Problem, phi: Mapping, rel_step: float | None = None) -> np.ndarray:
    r"""The Hessian of ``problem.loss`` at ``phi`` (free parameters, optimiser coordinates).

    Central differences of the autodiff gradient, ``H[:, j] = (g(phi + h e_j) - g(phi - h e_j))
    / 2h`` with ``h = rel_step * max(1, |phi_j|)`` (default ``eps^(1/3)`` of the dtype), all
    ``2n`` gradients in one vmapped call, then symmetrised. (diffrax's checkpointed adjoint
    supports neither forward-over-reverse nor reverse-over-reverse differentiation.)
    """
    names = problem.space.free
    dtype = problem.ts.dtype
    x = np.array([float(phi[n]) for n in names])
    if rel_step is None:
        rel_step = float(np.finfo(dtype).eps) ** (1.0 / 3.0)
    h = rel_step * np.maximum(1.0, np.abs(x))
    n = len(names)
    points = np.repeat(x[None], 2 * n, axis=0)
    points[np.arange(n), np.arange(n)] += h
    points[n + np.arange(n), np.arange(n)] -= h
    batch = {name: jnp.asarray(points[:, i], dtype) for i, name in enumerate(names)}
    grads = _gradients(problem, batch)
    g = np.stack([np.asarray(grads[name], np.float64) for name in names], axis=-1)
    rounded = np.asarray(batch[names[0]]).dtype.type  # the steps actually taken
    hh = np.array([float(rounded(x[j] + h[j])) - float(rounded(x[j] - h[j])) for j in range(n)])
    H = (g[:n] - g[n:]) / hh[:, None]
    return 0.5 * (H + H.T)


def standard_errors(
    problem: Problem, result: FitResult | Mapping, rtol: float = 1e-5
) -> StandardErrors:
    """Standard errors of the free parameters at a fit's optimum (best start) or at ``phi``.

    Meaningful for deterministic objectives (`grn.ODE`, `grn.LNA`) at a minimum; a stochastic
    (CLE) objective's Hessian reflects one noise realisation.
    """
    phi = result.best_phi if isinstance(result, FitResult) else dict(result)
    names = problem.space.free
    H = hessian(problem, phi)
    w, v = np.linalg.eigh(H)
    flat = w <= rtol * max(float(np.max(np.abs(w))), 1e-300)
    cov = (v[:, ~flat] / w[~flat]) @ v[:, ~flat].T
    se_phi = np.sqrt(np.maximum(np.diag(cov), 0.0))
    weak = np.any(np.abs(v[:, flat]) > 1e-3, axis=1) if flat.any() else np.zeros(len(names), bool)
    se_phi = np.where(weak, np.inf, se_phi)
    values = problem.space.to_values({n: jnp.asarray(phi[n]) for n in names})
    stderr = {}
    for i, name in enumerate(names):
        scale = problem.space.scales[i]
        factor = 1.0  # d value / d phi
        if scale != "linear":
            factor = float(values[name]) * (np.log(10.0) if scale == "log10" else 1.0)
        stderr[name] = float(se_phi[i] * factor)
    return StandardErrors(
        names=names,
        stderr=stderr,
        stderr_phi={n: float(s) for n, s in zip(names, se_phi)},
        hessian=H,
        covariance=cov,
        eigenvalues=w,
        identifiable={n: not bool(b) for n, b in zip(names, weak)},
    )


@dataclasses.dataclass
class Profile:
    """Profile likelihood of one parameter.

    ``values`` (natural scale) and ``loss`` the profile ``min over the others of loss``;
    ``threshold`` = ``loss_min + chi2_1(level) / 2``; ``lower``/``upper`` the confidence bounds
    where the profile crosses it (None: it stays below within the scanned range);
    ``identifiable``: both bounds found (a practically identifiable parameter).
    """

    name: str
    values: np.ndarray
    loss: np.ndarray
    loss_min: float
    threshold: float
    lower: float | None
    upper: float | None

    @property
    def identifiable(self) -> bool:
        return self.lower is not None and self.upper is not None


def profile_likelihood(
    problem: Problem,
    result: FitResult,
    names: Sequence[str] | None = None,
    span: float = 10.0,
    n_points: int = 9,
    steps: int = 300,
    optimizer: optax.GradientTransformation | None = None,
    level: float = PROFILE_LEVEL,
    progress: bool = False,
) -> dict[str, Profile]:
    r"""Profile likelihoods of ``names`` (default: all free) around a fit's best start.

    Each parameter is fixed on ``n_points`` values spanning ``[value / span, value * span]`` (log
    scale) or ``value +- (span - 1) |value|`` (linear), clipped to its bounds, while the others
    are re-optimised from the optimum by `fit` with ``steps`` steps; every (parameter, grid point)
    pair is one start of a single fit. A parameter whose profile stays below
    ``loss_min + chi2_1(level)/2`` on either side is flagged as not (practically) identifiable
    (Raue et al. 2009, Bioinformatics 25:1923).
    """
    space = problem.space
    names = tuple(space.free if names is None else names)
    for name in names:
        if name not in space.free:
            raise KeyError(f"cannot profile {name!r}: not a free parameter ({list(space.free)})")
    if not (isinstance(n_points, int) and n_points >= 3):
        raise ValueError(f"n_points must be an integer >= 3, got {n_points!r}")
    if not span > 1:
        raise ValueError(f"span must be > 1, got {span!r}")
    best = result.best_phi
    lo, hi = space.bounds_phi()
    grids = {}
    for name in names:
        i = space.free.index(name)
        scale = space.scales[i]
        width = (
            np.log(span) / {"log": 1.0, "log10": np.log(10.0)}[scale]
            if scale != "linear"
            else (span - 1) * max(abs(best[name]), 1)
        )
        grid = best[name] + np.linspace(-width, width, n_points)
        grids[name] = np.clip(grid, float(lo[name]), float(hi[name]))
    total = len(names) * n_points
    starts_phi = {n: np.full(total, best[n]) for n in space.free}
    fixed = {n: np.zeros(total, bool) for n in space.free}
    for k, name in enumerate(names):
        sl = slice(k * n_points, (k + 1) * n_points)
        starts_phi[name][sl] = grids[name]
        fixed[name][sl] = True
    starts = space.to_values({n: jnp.asarray(v) for n, v in starts_phi.items()})
    starts = {n: np.asarray(starts[n], np.float64) for n in space.free}
    for i, n in enumerate(space.free):  # rounding must not leave the box
        starts[n] = np.clip(starts[n], space.lower[i], space.upper[i])
    run = fit(
        problem,
        starts=starts,
        steps=steps,
        optimizer=default_optimizer() if optimizer is None else optimizer,
        fixed=fixed,
        progress=progress,
    )
    threshold_delta = 0.5 * statistics.NormalDist().inv_cdf(0.5 + level / 2) ** 2  # chi2_1
    loss_min = min(result.loss, float(np.min(run.start_loss)))
    profiles = {}
    for k, name in enumerate(names):
        sl = slice(k * n_points, (k + 1) * n_points)
        i = space.free.index(name)
        phis = grids[name]
        values = np.exp(phis) if space.scales[i] == "log" else phis
        loss = np.asarray(run.start_loss[sl], np.float64)
        threshold = loss_min + threshold_delta
        centre = int(np.argmin(loss))
        lower = upper = None
        for j in range(centre - 1, -1, -1):  # failed re-optimisations (inf) are skipped
            if np.isfinite(loss[j]) and loss[j] > threshold:
                lower = _cross(values[j], values[j + 1], loss[j], loss[j + 1], threshold)
                break
        for j in range(centre + 1, n_points):
            if np.isfinite(loss[j]) and loss[j] > threshold:
                upper = _cross(values[j - 1], values[j], loss[j - 1], loss[j], threshold)
                break
        profiles[name] = Profile(name, values, loss, loss_min, threshold, lower, upper)
    return profiles


def _cross(x0, x1, y0, y1, level) -> float:
    """Where the segment (x0, y0)-(x1, y1) crosses ``level`` (linear interpolation)."""
    if y1 == y0:
        return float(x0)
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))
