"""Events shared by the solvers that step through time (SSA, and the approximate ones)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

CHAIN_CAP = 64
"""Rounds of state events at one instant (each fires the events whose triggers the previous
round turned true) before a cell stops with ``RESULTS.event_loop``."""


class EventPlan:
    """The static layout of a network's events, and their application to a state.

    The restart times are the times of the time events (``Event(at=...)``) and the arming
    times of state events (``Event(after=...)``), sorted and merged; the solver keeps the index
    ``te`` of the next one and treats it like a schedule breakpoint. State events
    (``Event(when=...)``) fire when their trigger turns from false to true; their trigger values
    are carried between steps. Parameters that events assign become part of the solver state
    (``assigned`` names them). See `grn.Event` for the semantics at one instant.
    ``reverse_mode`` runs the rounds of state events in a loop that reverse-mode autodiff can go
    through (the CLE's pathwise gradients); the plain loop supports forward mode only.
    """

    def __init__(self, network, reverse_mode: bool = False):
        self.network, self.reverse_mode = network, reverse_mode
        events = network.events
        self.timed = [e for e in events if e.at is not None]  # definition order
        self.triggered = [e for e in events if e.when is not None]
        armed = [e.after for e in self.triggered if e.after is not None]
        self.times = np.unique(np.array([e.at for e in self.timed] + armed, dtype=np.float64))
        self.timed_index = [int(np.searchsorted(self.times, e.at)) for e in self.timed]
        self.armed_index = [
            None if e.after is None else int(np.searchsorted(self.times, e.after))
            for e in self.triggered
        ]
        self.assigned = sorted({t for e in events for t, _ in e.assign if t not in network.species})

    def __bool__(self):
        return bool(self.timed or self.triggered)

    def _values(self, event, x, params, u):
        net = self.network
        xs = {name: x[i].astype(u.dtype) for i, name in enumerate(net.species)}
        us = {name: u[i] for i, name in enumerate(net.inputs)}
        return [(target, law(xs, params, us)) for target, law in event.assign]

    def _round(self, events, fire, t, x, params, u, te):
        """Fire ``events`` where ``fire``, in order: their values from the state before the
        round, or (``use_values_from_trigger_time=False``) from just before each; a
        non-persistent state event only if its trigger still holds."""
        x0, p0 = x, params
        net = self.network
        for i, (event, f) in enumerate(zip(events, fire)):
            if event.when is not None and not event.persistent:
                f = f & self._trigger(event, i, t, x, params, te)
            if event.use_values_from_trigger_time:
                values = self._values(event, x0, p0, u)
            else:
                values = self._values(event, x, params, u)
            params = dict(params)
            for target, value in values:
                if target in net.species:
                    value = jnp.round(value) if jnp.issubdtype(x.dtype, jnp.integer) else value
                    i = net.species.index(target)
                    x = x.at[i].set(jnp.where(f, jnp.asarray(value).astype(x.dtype), x[i]))
                else:
                    params[target] = jnp.where(f, jnp.asarray(value, u.dtype), params[target])
        return x, params

    def _trigger(self, event, i, t, x, params, te):
        xs = {name: x[k].astype(t.dtype) for k, name in enumerate(self.network.species)}
        value = jnp.asarray(event.when(t, xs, params), bool)
        if self.armed_index[i] is not None:  # armed once time has passed `after`
            value = value & (te > self.armed_index[i])
        return value

    def triggers(self, t, x, params, te):
        """Trigger values of the state events, shape (state events,)."""
        values = [self._trigger(e, i, t, x, params, te) for i, e in enumerate(self.triggered)]
        return jnp.stack(values) if values else jnp.zeros((0,), bool)

    def instant(self, t, x, params, u, timed_fire, before, te):
        """All events at one instant: the time events where ``timed_fire`` (one flag per time
        event), then rounds of state events whose triggers turned true since ``before``.
        Returns ``x``, the parameters, the trigger values and whether the rounds hit the cap."""
        if self.timed:
            x, params = self._round(self.timed, timed_fire, t, x, params, u, te)
        if not self.triggered:
            return x, params, before, jnp.asarray(False)
        now = self.triggers(t, x, params, te)
        x, params = self._round(self.triggered, now & ~before, t, x, params, u, te)
        seen, now = now, self.triggers(t, x, params, te)

        def rising(c):
            return jnp.any(c[3] & ~c[2]) & (c[4] < CHAIN_CAP)

        def again(c):
            x, params, seen, now, rounds = c
            x, params = self._round(self.triggered, now & ~seen, t, x, params, u, te)
            return x, params, now, self.triggers(t, x, params, te), rounds + 1

        carry = (x, params, seen, now, jnp.ones((), jnp.int32))
        if self.reverse_mode:
            kind = {"max_steps": CHAIN_CAP, "kind": "checkpointed"}
            x, params, seen, now, _ = eqx.internal.while_loop(rising, again, carry, **kind)
        else:
            x, params, seen, now, _ = jax.lax.while_loop(rising, again, carry)
        return x, params, now, jnp.any(now & ~seen)

    def initial_state(self, ts, schedule_times, x0, params, u):
        """The state every stepping solver starts from at ``ts[0]``, after the events with
        ``initial_value=False`` that fire there.

        ``x`` state, ``k`` output interval, ``t`` time within it, ``seg`` schedule segment, ``n``
        events (or steps), ``lw`` fate integral, ``ys``/``lws`` outputs (NaN until reached),
        ``p`` event-assigned parameters, ``te`` next restart time of the events, ``trig``
        trigger values; also whether the events at ``ts[0]`` hit the round cap.
        """
        dtype, n_times = ts.dtype, ts.shape[0]
        zero = jnp.zeros((), jnp.int32)
        looped = jnp.asarray(False)
        te = jnp.searchsorted(jnp.asarray(self.times, dtype), ts[0], side="right")
        te = te.astype(jnp.int32)
        if self:
            at_start = [(e.at == ts[0]) & (not e.initial_value) for e in self.timed]
            now = self.triggers(ts[0], x0, params, te)
            before = now & jnp.asarray([e.initial_value for e in self.triggered], bool)
            x0, params, trig, looped = self.instant(ts[0], x0, params, u, at_start, before, te)
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
        if self.times.size:
            state["te"] = te
        if self.triggered:
            state["trig"] = trig
        return state, looped

    def next_time(self, s, dtype):
        """The next restart time of the events (inf when there is none)."""
        if not self.times.size:
            return jnp.inf
        return jnp.asarray(np.append(self.times, np.inf), dtype)[s["te"]]

    def step(self, s, hits_time, t, x, params, u):
        """After a step that ends at time ``t`` in state ``x``: the events at that instant
        (`instant`), the time events if it reached their time. Returns ``x``, the parameters,
        the updated event entries of the state (``p``, ``te``, ``trig``) and whether the rounds
        of state events hit the cap."""
        new = {}
        te = s.get("te")
        if self.times.size:
            te = s["te"] + hits_time
            new["te"] = te
        timed_fire = [hits_time & (s["te"] == i) for i in self.timed_index]
        before = s.get("trig", jnp.zeros((0,), bool))
        x, params, trig, looped = self.instant(t, x, params, u, timed_fire, before, te)
        if self.triggered:
            new["trig"] = trig
        new["p"] = {name: params[name] for name in self.assigned}
        return x, params, new, looped


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


TWO_LEVEL_MIN = UNROLL_MAX + 1
"""Networks with at least this many reactions select by two-level partial sums
(`_two_level_sums`); see benchmarks/ssa_profile.md."""


def _two_level_sums(weights):
    """``(blocks, sums, ends)``: the weights in ``nb`` blocks of ``b = ceil(sqrt(R))`` (zeros
    padded at the end), each block's prefix sums of its block sums (inclusive, ``ends``) and the
    block sums. O(R) adds and O(sqrt R) prefix sums, where a ``cumsum`` of all R weights is a
    ``reduce_window`` of width R on the CPU (O(R^2))."""
    n = weights.shape[0]
    b = math.isqrt(n - 1) + 1
    nb = -(-n // b)
    blocks = jnp.pad(weights, (0, nb * b - n)).reshape(nb, b)
    sums = jnp.sum(blocks, axis=1)
    return blocks, sums, jnp.cumsum(sums)


def weight_sum(weights):
    """``W = sum w``, computed as the last prefix sum of `select_reaction` so the two agree (and
    XLA computes them once)."""
    if weights.shape[0] >= TWO_LEVEL_MIN:
        return _two_level_sums(weights)[2][-1]
    return _prefix_sums(weights)[-1]


def any_true(flags):
    """``jnp.any`` over a 1-D array, unrolled for short ones."""
    if flags.shape[0] <= UNROLL_MAX:
        out = flags[0]
        for i in range(1, flags.shape[0]):
            out = out | flags[i]
        return out
    return jnp.any(flags)


def _below_end(target, end):
    """``min(target, the float before end)``: ``count(c <= it)`` is ``min(count(c <= target),
    count(c < end))``, the two counts of `select_reaction` in one (half the compares and adds
    per step: -11 % CPU per event at 24 reactions, same paths; used for the unrolled and flat
    selections, not the two-level one, where it measured slower; benchmarks/ssa_profile.md)."""
    return jnp.minimum(target, jnp.nextafter(end, jnp.asarray(-jnp.inf, end.dtype)))


def select_reaction(weights, r):
    """Index ``j`` with ``sum_{i<j} w_i <= r W < sum_{i<=j} w_i`` (``W = sum w``, ``r`` in [0, 1)).

    ``j`` counts the prefix sums ``<= r W``. ``r W`` can round up to ``W``; the count is then
    capped at the first index whose prefix sum reaches ``W``, a reaction with a positive weight.
    From `TWO_LEVEL_MIN` reactions on, the same two steps pick a block of ``ceil(sqrt(R))``
    weights by the prefix sums of the block sums, then the reaction within it by the block's
    own prefix sums started at the sum of the blocks before it (a prefix sum of the block that
    rounds past the block's end selects its last positive weight).
    """
    if weights.shape[0] >= TWO_LEVEL_MIN:
        blocks, sums, ends = _two_level_sums(weights)
        target = r * ends[-1]
        block = jnp.minimum(_count(ends[:-1] <= target), _count(ends[:-1] < ends[-1]))
        start = jnp.where(block > 0, ends[jnp.maximum(block - 1, 0)], 0.0)
        inner = start + jnp.cumsum(blocks[block])
        j = jnp.minimum(_count(inner[:-1] <= target), _count(inner[:-1] < inner[-1]))
        return block * blocks.shape[1] + j
    sums = _prefix_sums(weights)
    limit = _below_end(r * sums[-1], sums[-1])
    if isinstance(sums, list):
        return _count([c <= limit for c in sums[:-1]])
    return _count(sums[:-1] <= limit)
