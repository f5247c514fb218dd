"""Events shared by the solvers that step through time (SSA, and the approximate ones)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class EventPlan:
    """The static layout of a network's events, and their application to a state.

    Time events (``Event(at=...)``) are sorted by time; the solver keeps the index of the next
    one and treats its time as a restart point, exactly like a schedule breakpoint. State events
    (``Event(when=...)``) fire when their trigger turns from false to true after a step; their
    trigger values are carried between steps. Parameters that events assign become part of the
    solver state (``assigned`` names them).
    """

    def __init__(self, network):
        self.network = network
        events = network.events
        self.timed = sorted((e for e in events if e.at is not None), key=lambda e: e.at)
        self.times = np.array([e.at for e in self.timed], dtype=np.float64)
        self.triggered = [e for e in events if e.when is not None]
        self.assigned = sorted({t for e in events for t, _ in e.assign if t not in network.species})

    def __bool__(self):
        return bool(self.timed or self.triggered)

    def apply(self, event, t, x, params, u):
        """Carry out ``event``'s assignments, all evaluated with the values before it."""
        net = self.network
        xs = {name: x[i].astype(t.dtype) for i, name in enumerate(net.species)}
        us = {name: u[i] for i, name in enumerate(net.inputs)}
        values = [(target, law(xs, params, us)) for target, law in event.assign]
        params = dict(params)
        for target, value in values:
            if target in net.species:
                value = jnp.round(value) if jnp.issubdtype(x.dtype, jnp.integer) else value
                x = x.at[net.species.index(target)].set(jnp.asarray(value).astype(x.dtype))
            else:
                params[target] = jnp.asarray(value, t.dtype)
        return x, params

    def apply_timed(self, index, t, x, params, u):
        """Apply the time event number ``index`` (traced) of the sorted time events."""
        branches = [lambda a, e=e: self.apply(e, *a) for e in self.timed]
        return jax.lax.switch(jnp.clip(index, 0, len(branches) - 1), branches, (t, x, params, u))

    def triggers(self, t, x, params):
        """Trigger values of the state events, shape (state events,)."""
        xs = {name: x[i].astype(t.dtype) for i, name in enumerate(self.network.species)}
        values = [jnp.asarray(e.when(t, xs, params), bool) for e in self.triggered]
        return jnp.stack(values) if values else jnp.zeros((0,), bool)

    def initial_state(self, ts, schedule_times, x0, params):
        """The state every stepping solver starts from at ``ts[0]``.

        ``x`` state, ``k`` output interval, ``t`` time within it, ``seg`` schedule segment, ``n``
        events (or steps), ``lw`` fate integral, ``ys``/``lws`` outputs (NaN until reached),
        ``p`` event-assigned parameters, ``te`` next time event, ``trig`` trigger values.
        """
        dtype, n_times = ts.dtype, ts.shape[0]
        zero = jnp.zeros((), jnp.int32)
        state = {
            "x": x0,
            "k": zero,
            "t": jnp.zeros((), dtype),
            "seg": jnp.searchsorted(schedule_times, ts[0], side="right") - 1,
            "n": zero,
            "lw": jnp.zeros((), dtype),
            "ys": jnp.full((n_times, x0.shape[0]), jnp.nan, dtype).at[0].set(x0.astype(dtype)),
            "lws": jnp.full((n_times,), jnp.nan, dtype).at[0].set(0.0),
            "p": {name: params[name] for name in self.assigned},
        }
        if self.timed:
            # SBML semantics: a trigger already true at the start does not fire.
            times = jnp.asarray(self.times, dtype)
            state["te"] = jnp.searchsorted(times, ts[0], side="right").astype(jnp.int32)
        if self.triggered:
            state["trig"] = self.triggers(ts[0], x0, params)
        return state

    def next_time(self, s, dtype):
        """The time of the next time event (inf when there is none)."""
        if not self.timed:
            return jnp.inf
        return jnp.asarray(np.append(self.times, np.inf), dtype)[s["te"]]

    def step(self, s, hits_time_event, t, x, params, u):
        """After a step that ends at time ``t`` in state ``x``: apply the time event if it was
        reached, then the state events whose triggers turned true. Returns ``x``, the parameters
        and the updated event entries of the state (``p``, ``te``, ``trig``)."""
        new = {}
        if self.timed:
            x_e, p_e = self.apply_timed(s["te"], t, x, params, u)
            x = jnp.where(hits_time_event, x_e, x)
            params = jax.tree.map(lambda a, b: jnp.where(hits_time_event, a, b), p_e, params)
            new["te"] = s["te"] + hits_time_event
        if self.triggered:
            x, params, new["trig"] = self.fire_triggered(t, x, params, u, s["trig"])
        new["p"] = {name: params[name] for name in self.assigned}
        return x, params, new

    def fire_triggered(self, t, x, params, u, before):
        """Fire the state events whose triggers turned true; return the new trigger values."""
        now = self.triggers(t, x, params)
        for i, event in enumerate(self.triggered):
            x_e, p_e = self.apply(event, t, x, params, u)
            fire = now[i] & ~before[i]
            x = jnp.where(fire, x_e, x)
            params = jax.tree.map(lambda a, b, fire=fire: jnp.where(fire, a, b), p_e, params)
        return x, params, self.triggers(t, x, params)


UNROLL_MAX = 32
"""Networks with at most this many reactions (or species) get prefix sums and any-reductions
unrolled into scalar arithmetic, which XLA fuses into the surrounding elementwise loop; a
``cumsum`` (a ``reduce_window``) or reduction is a separate, slower kernel on the CPU."""


def _prefix_sums(weights):
    """``sum_{i<=j} w_i`` for every ``j``: a list of scalars (few weights) or an array."""
    if weights.shape[0] <= UNROLL_MAX:
        sums = [weights[0]]
        for i in range(1, weights.shape[0]):
            sums.append(sums[-1] + weights[i])
        return sums
    return jnp.cumsum(weights)


def _count(flags):
    """Number of true entries of a list of scalar flags, or of a boolean array."""
    if isinstance(flags, list):
        return sum((f.astype(jnp.int32) for f in flags), jnp.zeros((), jnp.int32))
    return jnp.sum(flags, dtype=jnp.int32)


def weight_sum(weights):
    """``W = sum w``, computed as the last prefix sum of `select_reaction` so the two agree (and
    XLA computes them once)."""
    return _prefix_sums(weights)[-1]


def any_true(flags):
    """``jnp.any`` over a 1-D array, unrolled for short ones."""
    if flags.shape[0] <= UNROLL_MAX:
        out = flags[0]
        for i in range(1, flags.shape[0]):
            out = out | flags[i]
        return out
    return jnp.any(flags)


def select_reaction(weights, r):
    """Index ``j`` with ``sum_{i<j} w_i <= r W < sum_{i<=j} w_i`` (``W = sum w``, ``r`` in [0, 1)).

    ``j`` counts the prefix sums ``<= r W``. ``r W`` can round up to ``W``; the count is then
    capped at the first index whose prefix sum reaches ``W``, a reaction with a positive weight.
    """
    sums = _prefix_sums(weights)
    total = sums[-1]
    target = r * total
    if isinstance(sums, list):
        below = _count([c <= target for c in sums[:-1]])
        first_full = _count([c < total for c in sums[:-1]])
    else:
        below = _count(sums[:-1] <= target)
        first_full = _count(sums[:-1] < total)
    return jnp.minimum(below, first_full)
