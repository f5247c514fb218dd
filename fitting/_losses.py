"""Loss functions: Gaussian likelihood of summaries, moment matching and the energy distance.

All are pure ``jax.numpy`` functions of fixed-shape arrays (padding is masked), so they can be
differentiated, mapped over starts and jitted once.
"""

from __future__ import annotations

import jax.numpy as jnp


def gaussian_nll(prediction, measurement, sigma, mask=None):
    r"""Negative log-likelihood of independent Gaussian measurements, summed:

    ``sum 0.5 ((y - m) / sigma)^2 + log sigma + 0.5 log(2 pi)``, with ``m`` the model's prediction
    (an ensemble mean, an LNA or ODE mean, a variance, ...) and ``sigma`` the measurement's
    standard deviation (PEtab's ``noiseParameters``). ``mask`` drops entries (weight 0).
    """
    r = (measurement - prediction) / sigma
    terms = 0.5 * r**2 + jnp.log(sigma) + 0.5 * jnp.log(2.0 * jnp.pi)
    if mask is not None:
        terms = jnp.where(mask, terms, 0.0)
    return jnp.sum(terms)


def _masked_moments(x, mask):
    n = jnp.sum(mask, axis=-1)
    mean = jnp.sum(jnp.where(mask, x, 0.0), axis=-1) / n
    var = jnp.sum(jnp.where(mask, (x - mean[..., None]) ** 2, 0.0), axis=-1) / (n - 1)
    return n, mean, var


def moment_nll(simulated, observed, mask):
    r"""Mean-and-variance matching of single-cell snapshots, as a Gaussian NLL of two summaries.

    For each group (a row of ``observed`` (groups, m) with ``mask``), the data's sample mean
    ``ybar`` and unbiased variance ``s^2`` from ``n`` cells are compared with the simulated
    ensemble's mean ``mu`` and variance ``v`` (``simulated`` (groups, cells)) under their
    large-sample standard errors ``se(ybar) = sqrt(s^2 / n)`` and
    ``se(s^2) = s^2 sqrt(2 / (n - 1))`` (normal-theory), i.e.
    ``0.5 ((ybar - mu) / se(ybar))^2 + 0.5 ((s^2 - v) / se(s^2))^2`` summed over groups.
    """
    n, ybar, s2 = _masked_moments(observed, mask)
    mu = jnp.mean(simulated, axis=-1)
    v = jnp.var(simulated, axis=-1, ddof=1)
    s2 = jnp.maximum(s2, 1e-12)
    z_mean = (ybar - mu) / jnp.sqrt(s2 / n)
    z_var = (s2 - v) / (s2 * jnp.sqrt(2.0 / (n - 1)))
    return 0.5 * jnp.sum(z_mean**2 + z_var**2)


def energy_distance(simulated, observed, mask=None):
    r"""Energy distance between a simulated and an observed one-dimensional sample, per group.

    ``D = 2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (Székely & Rizzo 2013, J. Stat. Plann. Inference
    143:1249), with V-statistics over all pairs: zero iff the two empirical laws agree, and
    differentiable in the simulated values. ``simulated`` is (..., cells), ``observed``
    (..., m) with an optional boolean ``mask`` (..., m) for padded groups; returns (...,).
    """
    if mask is None:
        mask = jnp.ones(observed.shape, bool)
    w = mask / jnp.sum(mask, axis=-1, keepdims=True)
    xy = jnp.abs(simulated[..., :, None] - observed[..., None, :])
    xx = jnp.abs(simulated[..., :, None] - simulated[..., None, :])
    yy = jnp.abs(observed[..., :, None] - observed[..., None, :])
    e_xy = jnp.mean(jnp.sum(xy * w[..., None, :], axis=-1), axis=-1)
    e_xx = jnp.mean(xx, axis=(-2, -1))
    e_yy = jnp.sum(yy * w[..., :, None] * w[..., None, :], axis=(-2, -1))
    return 2.0 * e_xy - e_xx - e_yy
