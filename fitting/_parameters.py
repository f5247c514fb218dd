"""Free and frozen parameters, their bounds and the scale the optimiser works on."""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import grn

SCALES = ("log", "linear", "log10")


class Parameter(eqx.Module):
    """A free parameter: start value ``init`` within ``[lower, upper]`` on a ``scale``.

    On ``scale="log"`` the optimiser moves ``phi = ln(value)``, on ``"log10"`` ``log10(value)``
    (PEtab's scale; bounds must be positive for both), on ``"linear"`` the value itself.
    """

    init: float = eqx.field(static=True)
    lower: float = eqx.field(static=True)
    upper: float = eqx.field(static=True)
    scale: str = eqx.field(static=True, default="log")

    def __check_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")


class ParameterSpace(eqx.Module):
    r"""Which parameters a fit moves, within which bounds, on which scale, and which stay fixed.

    ``ParameterSpace({"alpha": Parameter(6.0, 0.1, 1000.0, "log")}, frozen={"mu": 0.1})``. Free
    parameters live in an optimiser vector ``phi`` (a dict name -> scalar, on the log or linear
    scale); `to_values` maps it to natural values merged with the frozen ones; `to_phi` is its
    inverse; `project` clips ``phi`` into the box ``[lower, upper]`` (a projected-gradient box
    constraint, as pyPESTO's bounded optimisers enforce). Frozen values are pytree leaves, so
    changing them never recompiles. Names not listed keep the network's defaults.
    """

    free: tuple[str, ...] = eqx.field(static=True)
    scales: tuple[str, ...] = eqx.field(static=True)
    lower: tuple[float, ...] = eqx.field(static=True)
    upper: tuple[float, ...] = eqx.field(static=True)
    init: tuple[float, ...] = eqx.field(static=True)
    frozen: dict

    def __init__(self, free: Mapping, frozen: Mapping | None = None):
        if not isinstance(free, Mapping) or not free:
            raise ValueError("a ParameterSpace needs at least one free parameter")
        names, scales, lower, upper, init = [], [], [], [], []
        for name, spec in free.items():
            if isinstance(spec, Mapping):
                unknown = set(spec) - {"init", "lower", "upper", "scale"}
                if unknown:
                    raise ValueError(
                        f"parameter {name!r}: unknown key {sorted(unknown)[0]!r} "
                        f"(expected init, lower, upper, scale)"
                    )
                missing = {"init", "lower", "upper"} - set(spec)
                if missing:
                    raise ValueError(f"parameter {name!r}: missing {sorted(missing)[0]!r}")
                spec = Parameter(**spec)
            if not isinstance(spec, Parameter):
                raise TypeError(
                    f"free parameter {name!r} must be a fitting.Parameter or a mapping with "
                    f"init/lower/upper/scale, got {spec!r}"
                )
            vals = {}
            for field in ("init", "lower", "upper"):
                value = getattr(spec, field)
                try:
                    vals[field] = float(value)
                except (TypeError, ValueError):
                    raise TypeError(
                        f"parameter {name!r}: {field} must be a number, got {value!r}"
                    ) from None
                if not math.isfinite(vals[field]):
                    raise ValueError(f"parameter {name!r}: {field} must be finite, got {value!r}")
            if not vals["lower"] < vals["upper"]:
                raise ValueError(
                    f"parameter {name!r}: lower {vals['lower']} must be below upper {vals['upper']}"
                )
            if not vals["lower"] <= vals["init"] <= vals["upper"]:
                raise ValueError(
                    f"parameter {name!r}: init {vals['init']} lies outside "
                    f"[{vals['lower']}, {vals['upper']}]"
                )
            if spec.scale != "linear" and vals["lower"] <= 0:
                raise ValueError(
                    f"parameter {name!r}: a {spec.scale} scale needs a positive lower bound, got "
                    f"{vals['lower']}"
                )
            names.append(str(name))
            scales.append(spec.scale)
            lower.append(vals["lower"])
            upper.append(vals["upper"])
            init.append(vals["init"])
        frozen = dict(frozen or {})
        for name, value in frozen.items():
            if name in names:
                raise ValueError(f"parameter {name!r} is both free and frozen")
            arr = np.asarray(value, np.float64)
            if arr.ndim or not np.isfinite(arr):
                raise ValueError(
                    f"frozen parameter {name!r} must be a finite number, got {value!r}"
                )
        self.free, self.scales = tuple(names), tuple(scales)
        self.lower, self.upper, self.init = tuple(lower), tuple(upper), tuple(init)
        self.frozen = {str(k): jnp.asarray(v, jnp.zeros(()).dtype) for k, v in frozen.items()}

    @property
    def names(self) -> tuple[str, ...]:
        """Free then frozen parameter names."""
        return self.free + tuple(self.frozen)

    def _forward(self, name: str, value):
        scale = self.scales[self.free.index(name)]
        return {"log": jnp.log, "log10": jnp.log10}.get(scale, lambda v: v)(value)

    def _backward(self, name: str, phi):
        scale = self.scales[self.free.index(name)]
        if scale == "log10":
            return 10.0**phi
        return jnp.exp(phi) if scale == "log" else phi

    def to_phi(self, values: Mapping) -> dict:
        """Optimiser coordinates of the free parameters from natural ``values`` (a dict)."""
        return {n: self._forward(n, jnp.asarray(values[n], jnp.zeros(()).dtype)) for n in self.free}

    def to_values(self, phi: Mapping) -> dict:
        """Natural values of all parameters: the free ones from ``phi``, then the frozen ones."""
        return {**{n: self._backward(n, phi[n]) for n in self.free}, **self.frozen}

    def bounds_phi(self) -> tuple[dict, dict]:
        """The box in optimiser coordinates, as two dicts."""
        lo = self.to_phi(dict(zip(self.free, self.lower)))
        hi = self.to_phi(dict(zip(self.free, self.upper)))
        return lo, hi

    def project(self, phi: Mapping) -> dict:
        """Clip ``phi`` into the bounds."""
        lo, hi = self.bounds_phi()
        return {n: jnp.clip(phi[n], lo[n], hi[n]) for n in self.free}

    def initial_phi(self) -> dict:
        """The ``init`` values in optimiser coordinates."""
        return self.to_phi(dict(zip(self.free, self.init)))

    def sample_phi(self, key, n: int) -> dict:
        """``n`` starts drawn uniformly in the box in optimiser coordinates (log-uniform on a log
        scale): a dict name -> (n,)."""
        lo, hi = self.bounds_phi()
        keys = jax.random.split(key, len(self.free))
        return {
            name: jax.random.uniform(k, (n,), lo[name].dtype, lo[name], hi[name])
            for name, k in zip(self.free, keys)
        }

    def starts(self, key, n: int) -> dict:
        """``n`` starts: the ``init`` values first, then `sample_phi` draws (name -> (n,))."""
        init = self.initial_phi()
        draws = self.sample_phi(key, n)
        return {name: draws[name].at[0].set(init[name]) for name in self.free}


def lognormal_factors(n_cells: int, log_sd: float, key=None) -> np.ndarray:
    r"""Per-cell factors ``exp(log_sd z_c)`` for ``Problem(cell_params={name: factors})``:
    extrinsic log-normal heterogeneity of a parameter around its (fitted) median.

    Without ``key`` the ``z_c`` are the standard normal's quantiles ``Phi^-1((c + 1/2) / n)``
    (stratified sampling, `grn.stratified_normal`, as
    ``grn.LogNormal.sample(..., stratified=True)``). With a ``key`` they are independent
    ``N(0, 1)`` draws.
    """
    if not isinstance(n_cells, int) or isinstance(n_cells, bool) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    if not (isinstance(log_sd, int | float) and math.isfinite(log_sd) and log_sd >= 0):
        raise ValueError(f"log_sd must be a finite number >= 0, got {log_sd!r}")
    if key is None:
        z = grn.stratified_normal(n_cells)
    else:
        z = np.asarray(jax.random.normal(key, (n_cells,)), np.float64)
    return np.exp(log_sd * z)
