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

    def fire_triggered(self, t, x, params, u, before):
        """Fire the state events whose triggers turned true; return the new trigger values."""
        now = self.triggers(t, x, params)
        for i, event in enumerate(self.triggered):
            x_e, p_e = self.apply(event, t, x, params, u)
            fire = now[i] & ~before[i]
            x = jnp.where(fire, x_e, x)
            params = jax.tree.map(lambda a, b, fire=fire: jnp.where(fire, a, b), p_e, params)
        return x, params, self.triggers(t, x, params)
