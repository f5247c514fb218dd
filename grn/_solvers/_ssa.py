"""Exact stochastic simulation: Gillespie's direct method."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._solution import RESULTS
from . import _xoshiro
from ._base import AbstractSolver, CellPath
from ._events import (
    EventPlan,
    any_true,
    first_restart,
    restart_points,
    select_reaction,
    weight_sum,
)


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
    ``block`` is the number of steps run between checks for finished cells (a tuning knob).
    The uniforms come from a per-cell xoshiro128++ stream seeded from the cell's key
    (`grn._solvers._xoshiro`), cheaper than a threefry hash per event.

    ``likelihood=True`` also records, per output time, the log-likelihood of the path so far,
    ``log L = sum_k log a_{r_k}(x_k) - int a0(x(t)) dt`` (Gillespie 1977; the integral is
    accumulated piecewise between events, breakpoints and event times), in
    ``Solution.log_likelihood``. The sampling (waiting times, reaction choice) then sees the
    propensities through ``stop_gradient``, so parameters enter only ``log L`` and forward-mode
    derivatives (``jax.jvp``/``jax.jacfwd`` through `grn.simulate`) give the score
    ``d log L / d theta`` of the likelihood-ratio gradient estimator (Glynn 1990, Commun. ACM
    33:75); see `fitting.score_function_grad`. Off by default, when it costs nothing.
    """

    max_events: int = 10_000_000
    block: int = 64
    likelihood: bool = False
    stochastic = True

    def __check_init__(self):
        for name in ("max_events", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SSA({name}=...) must be a positive integer, got {value!r}")
        if not isinstance(self.likelihood, bool):
            raise ValueError(f"SSA(likelihood=...) must be True or False, got {self.likelihood!r}")

    def check(self, network) -> None:
        pass  # SSA honours every event exactly

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        dtype = ts.dtype
        nu = jnp.asarray(network.stoichiometry, jnp.int32)
        n_times = ts.shape[0]
        exact_limit = 2**24 if dtype == jnp.float32 else 2**31 - 1
        events = EventPlan(network)
        fate = network.growth is not None or network.death is not None

        # Each step fires a reaction, crosses a schedule breakpoint or time event, or reaches the
        # next output time. Steps run in blocks of fixed length (a scan); a step returns the
        # output row it reached (or an out-of-range row) and the block writes all its rows with
        # one scatter. Cells wait for the slowest cell once per simulation rather than once per
        # output interval. See benchmarks/ssa_profile.md for where the time per event goes.
        def step(s, _):
            rng, r1 = _xoshiro.next_uniform(s["rng"], dtype)
            rng, r2 = _xoshiro.next_uniform(rng, dtype)
            active = (s["k"] < n_times - 1) & (s["res"] == RESULTS.successful)
            active = active & (s["n"] < self.max_events)
            t, x, k = s["t"], s["x"], s["k"]
            p = {**params, **s["p"]}
            t_start, span, bp, ev = restart_points(events, s, ts, schedule_times)
            u = schedule_table[s["seg"]]
            xf = x.astype(dtype)
            a = network.propensities(xf, p, u)
            a0 = weight_sum(a)
            # With the likelihood on, the path is sampled from propensities held constant.
            a_s = jax.lax.stop_gradient(a) if self.likelihood else a
            a0_s = weight_sum(a_s) if self.likelihood else a0
            tau = jnp.where(a0_s > 0, -jnp.log1p(-r1) / a0_s, jnp.inf)
            hits_ev, hits_bp, hits_end, t_new = first_restart(t + tau, span, bp, ev)
            fire = ~(hits_ev | hits_bp | hits_end)
            j = select_reaction(a_s, r2)
            x_new = jnp.where(fire, x + nu[j], x)
            if fate:
                lw_new = s["lw"] + network.fate_rate(xf, p, u) * (t_new - t)
            new = {"p": s["p"]}
            if events:
                x_new, p, new = events.step(s, hits_ev, t_start + t_new, x_new, p, u)
            code = jnp.where(
                ~jnp.isfinite(a0) | any_true(a < 0),
                RESULTS.invalid_propensity,
                jnp.where(
                    any_true(x_new < 0),
                    RESULTS.negative_population,
                    jnp.where(any_true(x_new >= exact_limit), RESULTS.count_overflow, s["res"]),
                ),
            )
            code = jnp.where(active, code, s["res"])
            ok = active & (code == RESULTS.successful)
            record = hits_end & ok
            row = jnp.where(record, k + 1, n_times)  # out of range: the write is dropped
            keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
            out = {
                **s,
                **jax.tree.map(keep, new, {name: s[name] for name in new}),
                "x": keep(x_new, x),
                "k": k + record,
                "t": jnp.where(record, jnp.zeros_like(t), keep(t_new, t)),
                "n": s["n"] + (fire & ok),
                "res": code,
                "rng": rng,
            }
            written = {"row": row, "ys": xf}
            if schedule_times.shape[0] > 1:
                out["seg"] = s["seg"] + (hits_bp & ok)
            if fate:
                out["lw"] = keep(lw_new, s["lw"])
                written["lws"] = lw_new
            if self.likelihood:
                log_aj = jnp.where(fire, jnp.log(jnp.where(fire, a[j], 1.0)), 0.0)
                ll_new = s["ll"] + log_aj - a0 * (t_new - t)
                out["ll"] = keep(ll_new, s["ll"])
                written["lls"] = ll_new
            return out, written

        def running(s):
            return (
                (s["k"] < n_times - 1)
                & (s["res"] == RESULTS.successful)
                & (s["n"] < self.max_events)
            )

        def block(s):
            outputs = [name for name in ("ys", "lws", "lls") if name in s]
            s_new, written = jax.lax.scan(
                step, {name: v for name, v in s.items() if name not in outputs}, length=self.block
            )
            for name in outputs:  # rows out of range (no output time reached) are dropped
                s_new[name] = s[name].at[written["row"]].set(written[name], mode="drop")
            return s_new

        x0 = jnp.round(x0).astype(jnp.int32)
        state = events.initial_state(ts, schedule_times, x0, params)
        if not fate:  # log_weight stays 0: filled in from the rows reached, after the loop
            del state["lw"], state["lws"]
        state["res"] = jnp.asarray(RESULTS.successful, jnp.int32)
        state["rng"] = _xoshiro.seed(key)
        if self.likelihood:
            state["ll"] = jnp.zeros((), dtype)
            state["lls"] = jnp.full((n_times,), jnp.nan, dtype).at[0].set(0.0)
        state = jax.lax.while_loop(running, block, state)
        # Rows not reached stay NaN; a cell that stopped early without an error ran out of events.
        unfinished = (state["k"] < n_times - 1) & (state["res"] == RESULTS.successful)
        res = jnp.where(unfinished, RESULTS.max_events_reached, state["res"])
        lls = state["lls"] if self.likelihood else None
        reached = ~jnp.isnan(state["ys"][:, 0])
        lws = state["lws"] if fate else jnp.where(reached, 0.0, jnp.nan).astype(dtype)
        return CellPath(state["ys"], lws, state["n"], res, log_likelihood=lls)
