"""Gradients of expectations under the exact SSA: the score-function (likelihood-ratio) route.

Pathwise gradients (``jax.grad`` through `grn.ODE`, `grn.LNA` and `grn.CLE` with a fixed key)
need nothing here; docs/gradients.md says which route to use when.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import grn

BASELINES = ("leave_one_out", "none")


class GradientEstimate(NamedTuple):
    """A Monte-Carlo estimate of ``E[f]`` and of its gradient, with standard errors.

    ``value``/``value_stderr`` have the shape of one cell's ``f``; ``grad``/``stderr`` map each
    parameter name to an array of that shape (``d E[f] / d theta``).
    """

    value: jax.Array
    value_stderr: jax.Array
    grad: dict[str, jax.Array]
    stderr: dict[str, jax.Array]


def score_function_grad(
    network: grn.Network,
    ts,
    key,
    f: Callable[[grn.Solution], jax.Array],
    *,
    n_cells: int,
    wrt: Sequence[str] | None = None,
    params: Mapping | None = None,
    x0: Mapping | None = None,
    schedule: grn.Schedule | None = None,
    solver: grn.SSA | None = None,
    baseline: str = "leave_one_out",
    per_time: bool = False,
    batch_size: int | None = None,
) -> GradientEstimate:
    r"""Unbiased estimate of ``d E[f(X)] / d theta`` under the exact SSA (Glynn 1990).

    For a Gillespie path with events ``k`` (reaction ``r_k`` fired in state ``x_k``) the path
    log-likelihood is ``log L(theta) = sum_k log a_{r_k}(x_k; theta) - int a0(x(t); theta) dt``,
    and

    ``d E[f] / d theta = E[ df/dtheta + (f - b) d log L / d theta ]``

    for any baseline ``b`` independent of the cell (``E[d log L / d theta] = 0``). The score
    ``d log L / d theta`` comes from forward-mode differentiation (``jax.jvp``, one tangent per
    parameter) of `grn.simulate` with ``grn.SSA(likelihood=True)``, where the sampled path is
    held fixed; ``df/dtheta`` is the pathwise part (non-zero when ``f`` uses ``log_weight``).

    - ``f(solution)`` returns one value per cell, shape ``(cells, ...)``. With
      ``per_time=True`` its second axis is the output time and ``f[:, t]`` must depend only on
      the path up to ``ts[t]``; it is then paired with the score of that part of the path
      (later events add noise with zero mean), which lowers the variance.
    - ``baseline="leave_one_out"`` (default) uses ``b_c = mean_{c' != c} f_{c'}``, independent of
      cell ``c``, so the estimate stays unbiased; it equals the unbiased sample covariance of
      ``f`` and the score. ``"none"`` uses ``b = 0`` (higher variance; for comparison).
    - ``wrt``: names of (scalar) parameters to differentiate, default all of them.

    The standard error is ``sd(g_c) / sqrt(n_cells)`` of the per-cell terms ``g_c``. One
    compiled program per (network, ``f``, shapes): new parameter values or keys do not retrace.
    """
    if not isinstance(network, grn.Network):
        raise TypeError(f"score_function_grad expects a grn.Network, got {type(network).__name__}")
    if not callable(f):
        raise TypeError(f"f must be a callable Solution -> per-cell values, got {f!r}")
    if not isinstance(n_cells, int | np.integer) or isinstance(n_cells, bool) or n_cells < 2:
        raise ValueError(
            f"n_cells must be an integer >= 2 (a standard error needs two), got {n_cells!r}"
        )
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    solver = grn.SSA() if solver is None else solver
    if not isinstance(solver, grn.SSA):
        raise TypeError(
            f"the score-function estimator needs the exact grn.SSA(), got {type(solver).__name__}; "
            f"differentiate ODE, LNA and CLE pathwise with jax.grad"
        )
    solver = dataclasses.replace(solver, likelihood=True)
    wrt = tuple(network.params) if wrt is None else tuple(wrt)
    params = dict(params or {})
    for name in (*wrt, *params):
        if name not in network.params:
            raise KeyError(
                f"unknown parameter {name!r} (the network's parameters: {list(network.params)})"
            )
    if len(set(wrt)) != len(wrt) or not wrt:
        raise ValueError(f"wrt must name distinct parameters, got {list(wrt)}")
    dtype = jnp.zeros(()).dtype
    theta = {}
    for name in wrt:
        value = np.asarray(params.pop(name, network.params[name]))
        if value.ndim != 0 or not np.isfinite(value) or value < 0:
            raise ValueError(
                f"parameter {name!r} in wrt must be a finite non-negative scalar, got {value!r}"
            )
        theta[name] = jnp.asarray(value, dtype)
    for name, value in params.items():
        value = np.asarray(value)
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError(f"parameter {name!r} must be finite and non-negative, got {value!r}")
        params[name] = jnp.asarray(value, dtype)
    if x0 is not None:
        if not isinstance(x0, Mapping):
            raise TypeError("x0 must be a mapping of species name -> initial count")
        x0 = dict(x0)
        for name, value in x0.items():
            if name not in network.species:
                raise KeyError(
                    f"x0 names unknown species {name!r} (species: {list(network.species)})"
                )
            value = np.asarray(value)
            if (
                not np.all(np.isfinite(value))
                or np.any(value < 0)
                or np.any(value != np.round(value))
            ):
                raise ValueError(
                    f"initial count of {name!r} must be a non-negative integer, got {value!r}"
                )
            x0[name] = jnp.asarray(value, dtype)
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.size < 1 or np.any(np.diff(ts) <= 0) or not np.all(np.isfinite(ts)):
        raise ValueError("ts must be a 1-D array of finite, strictly increasing output times")
    if schedule is not None:
        if not isinstance(schedule, grn.Schedule):
            raise TypeError(f"schedule must be a grn.Schedule, got {type(schedule).__name__}")
        schedule.check_inputs(network.inputs)
    value, value_se, grad, se = _estimate(
        network, solver, f, jnp.asarray(ts, dtype), key, theta, params, x0, schedule,
        int(n_cells), baseline, per_time, batch_size,
    )  # fmt: skip
    return GradientEstimate(value, value_se, dict(zip(wrt, grad)), dict(zip(wrt, se)))


@eqx.filter_jit
def _estimate(
    network, solver, f, ts, key, theta, params, x0, schedule, n_cells, baseline, per_time, batch
):
    def run(theta):
        sol = grn.simulate(
            network, ts, key, solver, n_cells, {**params, **theta}, x0, schedule, batch
        )
        values = jnp.asarray(f(sol), ts.dtype)
        return values, sol.log_likelihood

    basis = [{n: jnp.asarray(n == m, ts.dtype) for n in theta} for m in theta]
    basis = jax.tree.map(lambda *v: jnp.stack(v), *basis)
    (values, ll), (dvalues, dll) = jax.vmap(
        lambda tangent: jax.jvp(run, (theta,), (tangent,)), out_axes=(None, 0)
    )(basis)
    if values.ndim < 1 or values.shape[0] != n_cells:
        raise ValueError(
            f"f must return one value per cell, shape ({n_cells}, ...), got {values.shape}"
        )
    if per_time:
        if values.ndim < 2 or values.shape[1] != ts.shape[0]:
            raise ValueError(
                f"per_time=True needs f to return shape ({n_cells}, {ts.shape[0]}, ...) with the "
                f"output times on axis 1, got {values.shape}"
            )
        score = dll
    else:
        score = dll[:, :, -1]
    score = score.reshape(score.shape + (1,) * (values.ndim + 1 - score.ndim))
    n = values.shape[0]
    if baseline == "leave_one_out":
        centred = values - (jnp.sum(values, axis=0) - values) / (n - 1)
    else:
        centred = values
    terms = dvalues + centred * score  # (parameters, cells, ...)
    root_n = math.sqrt(n)
    grad = jnp.mean(terms, axis=1)
    se = jnp.std(terms, axis=1, ddof=1) / root_n
    return jnp.mean(values, axis=0), jnp.std(values, axis=0, ddof=1) / root_n, grad, se
