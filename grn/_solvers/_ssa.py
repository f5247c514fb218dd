"""Exact stochastic simulation: Gillespie's direct method."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._solution import RESULTS
from ._base import AbstractSolver, CellPath
from ._events import EventPlan, first_restart, restart_points, select_reaction


class SSA(AbstractSolver):
    r"""Gillespie's direct method (Gillespie 1977, J. Phys. Chem. 81:2340), exact.

    Each event draws ``tau = -log(1 - r1) / a0`` and reaction ``j`` with
    ``sum_{i<j} a_i <= r2 a0 < sum_{i<=j} a_i``. Output times and schedule breakpoints are restart
    points: a candidate event beyond the next one is discarded and the clock set to it, which is
    exact because the process is memoryless, so piecewise-constant inputs stay exact. Time is kept
    relative to the start of the current output interval, so float32 does not lose events late in
    long simulations, and counts are int32 (flagged ``count_overflow`` past 2**24 in float32, where
    the returned floats stop being exact). Between events the fate integral
    ``log_weight += (g - h)(x) dt`` is exact.

    ``max_events`` bounds the reactions fired per cell over the whole simulation; a cell that
    reaches it gets ``RESULTS.max_events_reached`` (`grn.simulate` raises unless ``throw=False``).
    ``block`` is the number of steps run between checks for finished cells (a tuning knob: the
    uniforms of a block are drawn at once from a fresh split of the cell's key).
    """

    max_events: int = 10_000_000
    block: int = 64
    stochastic = True

    def __check_init__(self):
        for name in ("max_events", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SSA({name}=...) must be a positive integer, got {value!r}")

    def check(self, network) -> None:
        pass  # SSA honours every event exactly

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        dtype = ts.dtype
        nu = jnp.asarray(network.stoichiometry, jnp.int32)
        n_times = ts.shape[0]
        exact_limit = 2**24 if dtype == jnp.float32 else 2**31 - 1
        events = EventPlan(network)

        # Each step fires a reaction, crosses a schedule breakpoint or time event, or reaches the
        # next output time, whose state is written in place. Steps run in blocks of fixed length
        # with the block's random numbers drawn at once: a fixed-length inner loop keeps vmapped
        # cells from copying their output buffers at every step, and cells wait for the slowest
        # cell once per simulation rather than once per output interval.
        def step(s, r):
            active = (s["k"] < n_times - 1) & (s["res"] == RESULTS.successful)
            active = active & (s["n"] < self.max_events)
            t, x, k = s["t"], s["x"], s["k"]
            p = {**params, **s["p"]}
            t_start, span, bp, ev = restart_points(events, s, ts, schedule_times)
            u = schedule_table[s["seg"]]
            xf = x.astype(dtype)
            a = network.propensities(xf, p, u)
            a0 = jnp.sum(a)
            tau = jnp.where(a0 > 0, -jnp.log1p(-r[0]) / a0, jnp.inf)
            hits_ev, hits_bp, hits_end, t_new = first_restart(t + tau, span, bp, ev)
            fire = ~(hits_ev | hits_bp | hits_end)
            j = select_reaction(a, r[1])
            x_new = x + fire * nu[j]
            lw_new = s["lw"] + network.fate_rate(xf, p, u) * (t_new - t)
            new = {"p": s["p"]}
            if events:
                x_new, p, new = events.step(s, hits_ev, t_start + t_new, x_new, p, u)
            code = jnp.where(
                ~jnp.isfinite(a0) | jnp.any(a < 0),
                RESULTS.invalid_propensity,
                jnp.where(
                    jnp.any(x_new < 0),
                    RESULTS.negative_population,
                    jnp.where(jnp.any(x_new >= exact_limit), RESULTS.count_overflow, s["res"]),
                ),
            )
            code = jnp.where(active, code, s["res"])
            ok = active & (code == RESULTS.successful)
            record = hits_end & ok
            row = jnp.where(record, k + 1, n_times)  # out of range: the write is dropped
            keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
            return {
                **s,
                **jax.tree.map(keep, new, {name: s[name] for name in new}),
                "x": keep(x_new, x),
                "k": k + record,
                "t": jnp.where(record, jnp.zeros_like(t), keep(t_new, t)),
                "seg": s["seg"] + (hits_bp & ok),
                "n": s["n"] + (fire & ok),
                "lw": keep(lw_new, s["lw"]),
                "res": code,
                "ys": s["ys"].at[row].set(xf, mode="drop"),
                "lws": s["lws"].at[row].set(lw_new, mode="drop"),
            }

        def running(carry):
            s, _ = carry
            return (
                (s["k"] < n_times - 1)
                & (s["res"] == RESULTS.successful)
                & (s["n"] < self.max_events)
            )

        def block(carry):
            s, key = carry
            key, sub = jax.random.split(key)
            r = jax.random.uniform(sub, (self.block, 2), dtype)
            s = jax.lax.fori_loop(0, self.block, lambda i, s: step(s, r[i]), s)
            return s, key

        x0 = jnp.round(x0).astype(jnp.int32)
        state = events.initial_state(ts, schedule_times, x0, params)
        state["res"] = jnp.asarray(RESULTS.successful, jnp.int32)
        state, _ = jax.lax.while_loop(running, block, (state, key))
        # Rows not reached stay NaN; a cell that stopped early without an error ran out of events.
        unfinished = (state["k"] < n_times - 1) & (state["res"] == RESULTS.successful)
        res = jnp.where(unfinished, RESULTS.max_events_reached, state["res"])
        return CellPath(state["ys"], state["lws"], state["n"], res)
