"""The chemical Langevin equation with a lean fixed-step kernel."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._solution import RESULTS
from . import _xoshiro
from ._base import AbstractSolver, CellPath
from ._stepping import Stepper


class CLE(AbstractSolver):
    r"""Chemical Langevin equation (Gillespie 2000, J. Chem. Phys. 113:297), Euler-Maruyama.

    ``dX = S^T a(X) dt + S^T diag(sqrt(a(X))) dW`` with the network's propensities ``a`` and one
    Brownian motion per reaction; weak order 1 in ``dt``. Steps have length ``dt`` except where
    they are shortened to land exactly on output times and schedule breakpoints, so inputs switch
    exactly. Time events (``Event(at=...)``) are restart points too, as in `grn.SSA` (the stepping
    core is shared, `grn._solvers._stepping`); state events are checked after every step (so they
    fire up to one step late: an approximation of the trigger time).

    A negative or non-finite propensity (a rate law that is not one at this state) stops the cell
    with ``RESULTS.invalid_propensity`` rather than entering the drift.

    Non-negativity: propensities are evaluated at ``max(X, 0)``, so the noise switches off when a
    count reaches 0 and the drift pushes it back, but the state itself is not clipped and may dip
    slightly below 0 (by about ``sqrt(a dt)``). Clipping the state instead biases means upwards:
    on DSMTS 00030 (dimerisation from P2 = 0) clipping raised the mean of P2 by 9 % at t = 1 and
    2 % at t = 5, while the unclipped scheme is within Monte-Carlo error of the exact mean.
    Where counts stay near 0 the CLE is a poor model of the jump process: use `SSA` there.

    The Gaussian increments come from one xoshiro128++ stream per reaction, seeded from the
    cell's key (`grn._solvers._xoshiro`; inverse-CDF normals as in `jax.random.normal`): 16,384
    melanoma cells over 72 h took 31 s instead of 40 s with a threefry draw per step.

    Pathwise differentiable: for a fixed key the noise is fixed (common random numbers), so
    gradients of outputs with respect to parameters, initial counts and input levels are exact
    derivatives of the discretised path. ``max_steps`` (the loop length) is sized from concrete
    output times by `grn.simulate`; give it explicitly to simulate under an outer ``jit``.
    """

    dt: float
    max_steps: int | None = None
    stochastic = True

    def __check_init__(self):
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"CLE(dt=...) must be a positive finite number, got {self.dt!r}")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(
                f"CLE(max_steps=...) must be a positive integer, got {self.max_steps!r}"
            )

    def check(self, network) -> None:
        pass  # time events are restart points; state events are checked after every step

    def bind(self, network, ts, schedule_times):
        if self.max_steps is not None:
            return self
        if ts is None or schedule_times is None:
            raise ValueError(
                "CLE needs concrete output times to size its loop; under an outer jit pass "
                "CLE(dt, max_steps=...) with max_steps >= duration/dt + output times + breakpoints"
            )
        duration = float(ts[-1] - ts[0])
        times = [e.at if e.at is not None else e.after for e in network.events]
        restarts = np.append(schedule_times, [t for t in times if t is not None])
        inside = int(np.sum((restarts > ts[0]) & (restarts <= ts[-1])))
        steps = math.ceil(duration / self.dt * (1 + 1e-6)) + len(ts) + inside + 1
        return CLE(self.dt, steps)

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        dtype = ts.dtype
        nu = jnp.asarray(network.stoichiometry, dtype)
        dt = jnp.asarray(self.dt, dtype)
        core = Stepper(network, ts, params, schedule_times, schedule_table, reverse_mode=True)

        def step(s, _):
            active = core.unfinished(s)
            at = core.begin(s)
            reach = core.reach(at, dt)
            h = jnp.where(active, reach.dt, 0.0)
            xp = jnp.maximum(at.x, 0.0)
            a = network.propensities(xp, at.p, at.u)
            positive = a > 0
            root_a = jnp.where(positive, jnp.sqrt(jnp.where(positive, a, 1.0)), 0.0)
            rng, z = _xoshiro.next_normal(s["rng"], dtype)
            dw = z * jnp.sqrt(h)
            x_new = at.x + (a * h + root_a * dw) @ nu
            lw_new = s["lw"] + network.fate_rate(xp, at.p, at.u) * h
            x_new, _, updates, looped = core.fire_events(s, at, reach, x_new)
            invalid = ~jnp.isfinite(jnp.sum(a)) | jnp.any(a < 0)
            code = core.code(s, active, invalid, False, looped)
            ok = active & (code == RESULTS.successful)
            moved, row = core.advance(s, reach, ok, x_new, updates)
            new = {
                **s,
                **moved,
                "n": s["n"] + (ok & (h > 0)),
                "res": code,
                "rng": jnp.where(h > 0, rng, s["rng"]),  # zero-length steps draw nothing
                "lw": jnp.where(ok, lw_new, s["lw"]),
                "ys": s["ys"].at[row].set(x_new, mode="drop"),
                "lws": s["lws"].at[row].set(lw_new, mode="drop"),
            }
            return new, None

        state = core.initial_state(x0.astype(dtype))
        # One xoshiro128++ stream per reaction, seeded from the key (see the class docstring).
        state["rng"] = _xoshiro.seed(key, (nu.shape[0],))
        state, _ = jax.lax.scan(step, state, length=self.max_steps)
        ok = (state["k"] >= ts.shape[0] - 1) & jnp.all(jnp.isfinite(state["ys"]))
        failed = jnp.where(ok, RESULTS.successful, RESULTS.solver_failed)
        result = jnp.where(state["res"] == RESULTS.successful, failed, state["res"])
        return CellPath(state["ys"], state["lws"], state["n"], result)
