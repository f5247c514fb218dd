"""Per-cell parameter distributions (extrinsic heterogeneity) and how `simulate` draws them."""

from __future__ import annotations

import abc
import math
import statistics
import zlib
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

AUX_TAG = 0xFFFFFFFF
"""``jax.random.fold_in(key, AUX_TAG)`` seeds the draws and the pre-equilibration of
`grn.simulate`. The cells' own keys are ``split(key, n_cells)[i] == fold_in(key, i)``, so this
tag never reuses one of them (fewer than 2**32 cells)."""


def stratified_normal(n: int) -> np.ndarray:
    r"""The standard normal's quantiles ``Phi^-1((c + 1/2) / n)``, ``c = 0 .. n-1`` (float64).

    Stratified sampling (McKay, Beckman & Conover 1979, Technometrics 21:239): an ensemble built
    on them carries a distribution without sampling noise, which cuts the Monte Carlo variance of
    ensemble means that the spread drives.
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    normal = statistics.NormalDist()
    return np.array([normal.inv_cdf((c + 0.5) / n) for c in range(n)])


class Distribution(eqx.Module):
    """A distribution of a parameter's value across cells, declared in
    ``grn.Network(cell_params={name: distribution})`` or passed as ``grn.simulate(params=...)``.

    Subclasses hold their numbers as pytree leaves (new values never recompile) and implement
    `sample`, `check` (plain-Python validation naming the parameter) and ``median`` (the value a
    single deterministic trajectory and SBML export use).
    """

    median: eqx.AbstractVar[Any]

    @abc.abstractmethod
    def sample(self, key, n: int, stratified: bool = False) -> jax.Array:
        """``n`` per-cell values; ``stratified=True`` gives the ``n`` quantiles at ``(c + 1/2) /
        n`` instead of independent draws (``key`` is then unused)."""

    @abc.abstractmethod
    def check(self, name: str) -> None:
        """Raise ValueError, naming parameter ``name``, if the concrete values are invalid."""


def _positive(what: str, value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if arr.ndim or not (np.isfinite(arr) and arr > 0):
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")


class LogNormal(Distribution):
    """Log-normal across cells: ``value_c = median * exp(sigma * z_c)``, ``z_c ~ N(0, 1)``.

    ``sigma`` is the standard deviation of ``ln(value)`` (the log-sd); the mean is ``median *
    exp(sigma**2 / 2)``. Both must be positive (checked where the distribution is used, naming
    the parameter).
    """

    median: Any
    sigma: Any

    def __init__(self, median, sigma):
        self.median = median if isinstance(median, jax.Array) else np.asarray(median, np.float64)
        self.sigma = sigma if isinstance(sigma, jax.Array) else np.asarray(sigma, np.float64)

    def sample(self, key, n: int, stratified: bool = False) -> jax.Array:
        dtype = jnp.zeros(()).dtype
        if stratified:
            z = jnp.asarray(stratified_normal(n), dtype)
        else:
            z = jax.random.normal(key, (n,), dtype)
        return jnp.asarray(self.median, dtype) * jnp.exp(jnp.asarray(self.sigma, dtype) * z)

    def check(self, name: str) -> None:
        _positive(f"cell parameter {name!r}: LogNormal median", self.median)
        _positive(f"cell parameter {name!r}: LogNormal sigma (log-sd)", self.sigma)


def check_cell_params(cell_params: Mapping, params: Mapping) -> dict:
    """Validate a ``{name: Distribution}`` mapping against a network's parameter names."""
    if not isinstance(cell_params, Mapping):
        raise TypeError(
            f"cell_params must be a mapping of parameter name -> grn.Distribution, "
            f"got {type(cell_params).__name__}"
        )
    out = {}
    for name, dist in cell_params.items():
        if not isinstance(dist, Distribution):
            raise TypeError(
                f"cell parameter {name!r} must be a grn.Distribution such as "
                f"grn.LogNormal(median=..., sigma=...), got {dist!r}"
            )
        dist.check(name)
        out[str(name)] = dist
    return out


def draw(distributions: Mapping, key, n: int) -> dict:
    """Per-cell values of every distribution, each from its own key (by parameter name)."""
    return {
        name: dist.sample(jax.random.fold_in(key, zlib.crc32(name.encode())), n)
        for name, dist in distributions.items()
    }


def split_overrides(network, overrides: Mapping | None) -> tuple[dict, dict]:
    """``(distributions to draw, value overrides)``: the network's declared distributions, those
    passed in ``overrides`` replacing them, less every parameter given an explicit value."""
    values, dists = {}, dict(network.cell_params)
    for name, value in (overrides or {}).items():
        if isinstance(value, Distribution):
            if name not in network.params:
                raise KeyError(
                    f"unknown parameter {name!r} (the network's parameters: {list(network.params)})"
                )
            value.check(name)
            dists[name] = value
        else:
            values[name] = value
            dists.pop(name, None)  # an explicit value, scalar or per cell, wins
    return dists, values


def check_per_cell_length(params: Mapping, n_cells: int | None) -> None:
    """Name the parameter whose per-cell array disagrees with ``n_cells``."""
    if n_cells is None:
        return
    for name, value in params.items():
        shape = np.shape(value)
        if len(shape) == 1 and shape[0] != n_cells:
            raise ValueError(
                f"n_cells={n_cells} but per-cell values have {shape[0]} entries: per-cell "
                f"parameter {name!r}"
            )


def equilibrate_hours(value, what: str = "equilibrate") -> float:
    """A validated pre-equilibration time in hours (0 for none)."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{what} must be a number of hours, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number of hours >= 0, got {value}")
    return value
