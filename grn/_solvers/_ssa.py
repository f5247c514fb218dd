"""Exact stochastic simulation: Gillespie's direct method."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._solution import RESULTS
from ._base import AbstractSolver


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
    reaches it gets ``RESULTS.max_events_reached`` (and `grn.simulate` raises unless ``throw=False``).
    """

    max_events: int = 10_000_000
    stochastic = True

    def __check_init__(self):
        if not isinstance(self.max_events, int) or self.max_events < 1:
            raise ValueError(f"SSA(max_events=...) must be a positive integer, got {self.max_events!r}")

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        dtype = ts.dtype
        nu = jnp.asarray(network.stoichiometry, jnp.int32)
        n_reactions = nu.shape[0]
        n_segments = schedule_times.shape[0]
        exact_limit = 2**24 if dtype == jnp.float32 else 2**31 - 1

        def event(state, t_start, span):
            x, t, seg, key, n, lw, res, done = state
            u = schedule_table[seg]
            xf = x.astype(dtype)
            a = network.propensities(xf, params, u)
            cumulative = jnp.cumsum(a)
            a0 = cumulative[-1]
            key, sub = jax.random.split(key)
            r = jax.random.uniform(sub, (2,), dtype)
            tau = jnp.where(a0 > 0, -jnp.log1p(-r[0]) / a0, jnp.inf)
            # Next restart point: the next schedule breakpoint inside this interval, or its end.
            nxt = jnp.minimum(seg + 1, n_segments - 1)
            bp = jnp.where(seg + 1 < n_segments, schedule_times[nxt] - t_start, jnp.inf)
            t_cand = t + tau
            hits_bp = (bp <= span) & (t_cand >= bp)
            hits_end = ~hits_bp & (t_cand >= span)
            fire = ~(hits_bp | hits_end)
            j = jnp.sum(cumulative <= r[1] * a0)
            # r2 * a0 can round up to a0: fall back to the last reaction with a positive rate.
            last_positive = n_reactions - 1 - jnp.argmax((a > 0)[::-1])
            j = jnp.where(j >= n_reactions, last_positive, j)
            x_new = x + fire * nu[j]
            t_new = jnp.where(hits_bp, bp, jnp.where(hits_end, span, t_cand))
            lw_new = lw + network.fate_rate(xf, params, u) * (t_new - t)
            code = jnp.where(
                ~jnp.isfinite(a0) | jnp.any(a < 0),
                RESULTS.invalid_propensity,
                jnp.where(
                    jnp.any(x_new < 0),
                    RESULTS.negative_population,
                    jnp.where(jnp.any(x_new >= exact_limit), RESULTS.count_overflow, res),
                ),
            )
            ok = code == RESULTS.successful
            return (
                jnp.where(ok, x_new, x),
                t_new,
                seg + hits_bp,
                key,
                n + (fire & ok),
                jnp.where(ok, lw_new, lw),
                code,
                hits_end,
            )

        def interval(carry, k):
            x, seg, key, n, lw, res = carry
            t_start, span = ts[k], ts[k + 1] - ts[k]

            def cond(state):
                *_, n, _, res, done = state
                return ~done & (res == RESULTS.successful) & (n < self.max_events)

            state = (x, jnp.zeros((), dtype), seg, key, n, lw, res, jnp.asarray(False))
            state = jax.lax.while_loop(cond, lambda s: event(s, t_start, span), state)
            x, _, seg, key, n, lw, res, done = state
            res = jnp.where(~done & (res == RESULTS.successful), RESULTS.max_events_reached, res)
            failed = res != RESULTS.successful
            y = jnp.where(failed, jnp.nan, x.astype(dtype))
            return (x, seg, key, n, lw, res), (y, jnp.where(failed, jnp.nan, lw))

        x0 = jnp.round(x0).astype(jnp.int32)
        seg0 = jnp.searchsorted(schedule_times, ts[0], side="right") - 1
        carry = (x0, seg0, key, jnp.zeros((), jnp.int32), jnp.zeros((), dtype),
                 jnp.asarray(RESULTS.successful, jnp.int32))
        carry, (ys, lws) = jax.lax.scan(interval, carry, jnp.arange(ts.shape[0] - 1))
        _, _, _, n, _, res = carry
        ys = jnp.concatenate([x0.astype(dtype)[None], ys])
        lws = jnp.concatenate([jnp.zeros((1,), dtype), lws])
        return ys, lws, n, res


