"""Integrating a `grn._ode_system.ODESystem`: diffrax segments between events and output times.

Without events the system is one ``diffeqsolve`` saving at the output times. With events a
``while_loop`` integrates segment by segment to the next output time or pending (delayed) event,
stopping early where diffrax's root finding (bisection on the interpolant) locates the first
change of any comparison in any trigger (the largest of their levels, each signed towards its
change, crossing 2e-9): a trigger such as ``x > a && x < b`` changes only where one of its
comparisons does, so a window of truth shorter than a step is not stepped over. At each stop the
triggers are evaluated from their comparisons; an event whose trigger turned true is
queued at ``t + delay`` (0 without a delay) with its assignment values when
``useValuesFromTriggerTime``; due events then execute one at a time, the highest priority first
(ties in document order), re-evaluating every trigger after each execution (SBML Level 3
semantics); an event that is not ``persistent`` is dropped when its trigger turns false before it
executes. A comparison within a relative 1e-9 of its switching point keeps its last value, so
the roundoff of a located root does not switch it back.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._solution import RESULTS

QUEUE = 16  # pending executions per event (delayed events); more fails the cell by name
NEAR = 1e-9  # a trigger level this close to 0 keeps its last value
MAX_CASCADE = 1000  # event executions at one time point before the cell fails


class _Crossing(optx.Bisection):
    """Bisection that stops on the bracket's width alone and returns its end past the crossing.

    A comparison's level jumps where both sides cross 0 together (``x > 0``: ``x / |x|``), so
    the level never gets small there; the end past the crossing has every stop switch a
    comparison, so the next segment does not find the same root again.
    """

    def terminate(self, fn, y, args, options, state, tags):
        width = jnp.abs(state.lower - state.upper)
        return width < self.atol + self.rtol * jnp.abs(y), optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return jnp.where(state.flip, state.lower, state.upper), aux, {}


class DefinedField(eqx.Module):
    """A vector field ``field(t, y, args)`` whose derivative (forward mode) is zero in each
    output component where that component's value is not finite, and exact elsewhere.

    An implicit method's stage solve may try a state outside the field's domain (a negative
    amount under a fractional power): the value is NaN, the step is rejected and the solution
    is unaffected, but its tangents are NaN too, and the tangent linear solves of the implicit
    function theorem (optimistix, lineax) raise on non-finite input although the rejected
    step's tangents are discarded. Where every evaluation the solution uses is finite (a
    successful solve) the derivative is the field's own.
    """

    field: Callable  # closure-converted: closed-over arrays are leaves

    def __call__(self, t, y, args):
        return _where_defined(self.field, t, y, args)


def defined_field(field, t0, y0, args) -> DefinedField:
    """`DefinedField` of ``field`` (closure-converted at the example ``(t0, y0, args)``)."""
    return DefinedField(eqx.filter_closure_convert(field, t0, y0, args))


@eqx.filter_custom_jvp
def _where_defined(field, t, y, args):
    return field(t, y, args)


@_where_defined.def_jvp
def _where_defined_jvp(primals, tangents):
    out, t_out = eqx.filter_jvp(lambda f, *a: f(*a), primals, tangents)

    def keep(value, tangent):
        return None if tangent is None else jnp.where(jnp.isfinite(value), tangent, 0)

    return out, jax.tree.map(keep, out, t_out, is_leaf=lambda x: x is None)


def steady_state_event(solver, select=lambda y: y, after=None) -> diffrax.Event:
    """A diffrax event ending the solve once ``rms(f(select(y))) <= atol + rtol rms(select(y))``
    (``f`` the vector field, the grn solver's tolerances; the criterion of
    ``diffrax.steady_state_event`` on the part ``select`` picks), not before time ``after``."""
    atol, rtol = solver.atol, solver.rtol

    def cond(t, y, args, *, terms, solver, **kwargs):
        f = select(solver.func(terms, t, y, args))
        steady = optx.rms_norm(f) <= atol + rtol * optx.rms_norm(select(y))
        return steady if after is None else steady & (t >= after)

    return diffrax.Event(cond)


def held_after_stop(sol, ts):
    """``(ys, ok)`` of a solve saved at ``(ts, t1)`` that an event may have ended early: the
    outputs after the stop hold the final state; ``ok``: it succeeded or stopped at the event.

    diffrax saves ``t1`` right after the last output time reached and fills the rest with inf.
    """
    last = jnp.sum(jnp.isfinite(sol.ts)) - 1
    stop = sol.ts[last]
    n = ts.shape[0]

    def hold(y):
        after = (ts > stop).reshape((-1,) + (1,) * (y.ndim - 1))
        return jnp.where(after, y[last], y[:n])

    ok = (sol.result == diffrax.RESULTS.successful) | (sol.result == diffrax.RESULTS.event_occurred)
    return jax.tree.map(hold, sol.ys), ok


def solve_system(solver, system, ts, params, x0, key):
    """(outputs (times, n), steps, result) of the system from ``ts[0]`` at the output times."""
    dtype = ts.dtype
    n_x0 = len(system.from_x0)
    start = [jnp.asarray(params[name], dtype) for name in system.from_p]
    # A trailing constant entry keeps the state non-empty for models that are all rules.
    y0 = jnp.concatenate([x0.astype(dtype), jnp.stack([*start, jnp.zeros((), dtype)])])
    y0 = settled(system, ts[0], y0, params)

    def env(y, p):
        return system.env(y, p)

    def rhs(t, y, p):
        values = system.rhs(t, env(y, p))
        return jnp.stack([*(jnp.asarray(v, dtype) for v in values), jnp.zeros((), dtype)])

    def outputs(t, y, p):
        e = env(y, p)
        extra = [jnp.asarray(fn(t, e), dtype) for _, fn in system.outputs]
        return jnp.concatenate([y[:n_x0], jnp.stack(extra)]) if extra else y[:n_x0]

    controller = diffrax.PIDController(rtol=solver.rtol, atol=solver.atol)
    field = defined_field(rhs, ts[0], y0, params)
    term = diffrax.ODETerm(field)
    if not system.events:
        sol = diffrax.diffeqsolve(
            term,
            solver.method,
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=y0,
            args=params,
            saveat=diffrax.SaveAt(ts=ts, t1=True),
            stepsize_controller=controller,
            max_steps=solver.max_steps,
            adjoint=solver.adjoint,
            event=steady_state_event(solver) if solver.steady_state else None,
            throw=False,
        )
        ys, ok = held_after_stop(sol, ts)
        ys = jax.vmap(outputs, in_axes=(0, 0, None))(ts, ys, params)
        ok = ok & jnp.all(jnp.isfinite(ys))
        result = jnp.where(ok, RESULTS.successful, RESULTS.solver_failed).astype(jnp.int32)
        return ys, sol.stats["num_steps"], result
    term = diffrax.ODETerm(lambda t, y, args: field(t, y, args[0]))
    return _solve_with_events(solver, system, ts, params, y0, term, controller, outputs, key)


def settled(system, t, y, params):
    """``y`` with the system's ``settle`` applied (fast reactions at equilibrium)."""
    if system.settle is None:
        return y
    new = system.settle(t, system.env(y, params))
    index = {name: i for i, name in enumerate(system.state)}
    for name, value in new.items():
        y = y.at[index[name]].set(jnp.asarray(value, y.dtype))
    return y


def _solve_with_events(solver, system, ts, params, y0, term, controller, outputs, key):
    dtype = ts.dtype
    events = system.events
    n_ev, n_times = len(events), ts.shape[0]
    width = max(max(e.n_values for e in events), 1)
    has_delay = np.array([e.delay is not None for e in events])
    persistent = np.array([e.persistent for e in events])
    stores = jnp.asarray([e.use_trigger_values for e in events])
    inf = jnp.asarray(jnp.inf, dtype)

    def env(y, p):
        return system.env(y, p)

    offsets = np.cumsum([0] + [ev.n_atoms for ev in events])

    def atoms(t, y, p):
        """(levels, exact truths) of every event's trigger comparisons, shape (atoms,)."""
        e = env(y, p)
        pairs = [pair for ev in events for pair in ev.atoms(t, e)]
        if not pairs:
            return jnp.zeros((0,), dtype), jnp.zeros((0,), bool)
        g = jnp.stack([jnp.asarray(level, dtype) for level, _ in pairs])
        return g, jnp.stack([jnp.asarray(truth, bool) for _, truth in pairs])

    def triggers(t, y, p, prev):
        """(comparison truths, event triggers); a comparison near its root keeps ``prev``."""
        g, exact = atoms(t, y, p)
        truths = jnp.where((jnp.abs(g) <= NEAR) & (g != 0), prev, exact)
        trig = [
            jnp.asarray(ev.combine([truths[j] for j in range(a, b)]), bool)
            for ev, a, b in zip(events, offsets[:-1], offsets[1:])
        ]
        return truths, jnp.stack(trig)

    def values(t, y, p):
        """(events, width): every event's assignment values at this point."""
        e = env(y, p)
        rows = []
        for ev in events:
            vals = [jnp.asarray(v, dtype) for v in ev.values(t, e)]
            vals += [jnp.zeros((), dtype)] * (width - len(vals))
            rows.append(jnp.stack(vals))
        return jnp.stack(rows)

    index = {name: i for i, name in enumerate(system.state)}

    def execute(i, t, y, p, vals):
        e = env(y, p)  # once: built inside every branch it would grow as events x state

        def branch(ev):
            def run(y):
                new = ev.apply(t, e, [vals[j] for j in range(ev.n_values)])
                for name, v in new.items():
                    y = y.at[index[name]].set(jnp.asarray(v, dtype))
                return y

            return run

        return jax.lax.switch(i, [branch(ev) for ev in events], y)

    def priorities(t, y, p):
        e = env(y, p)
        return jnp.stack(
            [
                jnp.asarray(ev.priority(t, e), dtype) if ev.priority is not None else -inf
                for ev in events
            ]
        )

    def delays(t, y, p):
        e = env(y, p)
        return jnp.stack(
            [
                jnp.asarray(ev.delay(t, e), dtype) if ev.delay is not None else jnp.zeros((), dtype)
                for ev in events
            ]
        )

    def edges(c, observed):
        """Queue the events whose triggers rose; drop non-persistent ones whose fell."""
        t, y = c["t"], c["y"]
        truths, new = observed
        rise, fall = new & ~c["trig"], ~new & c["trig"]
        d = jnp.where(has_delay, delays(t, y, params), 0.0)
        free = c["qt"] == inf
        slot = jnp.argmax(free, axis=1)
        put = rise[:, None] & (jnp.arange(QUEUE)[None, :] == slot[:, None])
        overflow = jnp.any(rise & ~jnp.any(free, axis=1))
        bad_delay = jnp.any(rise & ((d < 0) | ~jnp.isfinite(d)))
        qt = jnp.where(put, (t + d)[:, None], c["qt"])
        qv = jnp.where(put[:, :, None], values(t, y, params)[:, None, :], c["qv"])
        cancel = fall & ~persistent
        qt = jnp.where(cancel[:, None], inf, qt)
        fail = c["fail"] | overflow | bad_delay
        return {**c, "truths": truths, "trig": new, "qt": qt, "qv": qv, "fail": fail}

    def cascade(c):
        def due(c):
            return jnp.any(c["qt"] <= c["t"]) & ~c["fail"] & (c["n"] < MAX_CASCADE)

        def one(c):
            t, y = c["t"], c["y"]
            is_due = jnp.any(c["qt"] <= t, axis=1)
            key = jnp.where(is_due, priorities(t, y, params), -inf)
            best = jnp.max(key)
            tied = is_due & (key == best)
            # Equal priorities execute in random order (SBML); events without one in document order.
            rng, sub = jax.random.split(c["rng"])
            count = jnp.sum(tied)
            pick = jnp.floor(jax.random.uniform(sub, dtype=dtype) * count) + 1
            random = jnp.argmax(jnp.cumsum(tied) >= pick)
            i = jnp.where(jnp.isfinite(best), random, jnp.argmax(tied))
            j = jnp.argmin(c["qt"][i])
            vals = jnp.where(stores[i], c["qv"][i, j], values(t, y, params)[i])
            y = settled(system, t, execute(i, t, y, params, vals), params)
            c = {**c, "y": y, "qt": c["qt"].at[i, j].set(inf), "n": c["n"] + 1, "rng": rng}
            return edges(c, triggers(t, y, params, c["truths"]))

        c = jax.lax.while_loop(due, one, {**c, "n": jnp.zeros((), jnp.int32)})
        return {**c, "fail": c["fail"] | (c["n"] >= MAX_CASCADE)}

    def cond_fn(t, y, args, **kwargs):
        # Crosses 0 where the first comparison changes (each signed towards its change).
        p, sign = args
        return jnp.max(sign * atoms(t, y, p)[0], initial=-inf) - 2 * NEAR

    event = diffrax.Event(cond_fn, root_finder=_Crossing(rtol=1e-12, atol=1e-12), direction=True)

    def segment(c):
        t, y, k = c["t"], c["y"], c["k"]
        target = jnp.minimum(ts[k], jnp.min(c["qt"]))
        sign = jnp.where(c["truths"], -1.0, 1.0).astype(dtype)
        sol = diffrax.diffeqsolve(
            term,
            solver.method,
            t0=t,
            t1=target,
            dt0=None,
            y0=y,
            args=(params, sign),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=solver.max_steps,
            adjoint=solver.adjoint,
            event=event,
            throw=False,
        )
        assert sol.ts is not None and sol.ys is not None  # SaveAt(t1=True) saves both
        t_new, y_new = sol.ts[-1], sol.ys[-1]
        ok = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.event_occurred
        )
        c = {**c, "t": t_new, "y": y_new, "steps": c["steps"] + sol.stats["num_steps"]}
        c = {**c, "fail": c["fail"] | ~ok | ~jnp.all(jnp.isfinite(y_new))}
        c = cascade(edges(c, triggers(t_new, y_new, params, c["truths"])))
        reached = c["t"] >= ts[k]
        row = jnp.where(reached, k, n_times)
        out = c["out"].at[row].set(outputs(c["t"], c["y"], params), mode="drop")
        return {**c, "out": out, "k": k + reached, "it": c["it"] + 1}

    t0 = ts[0]
    exact0 = atoms(t0, y0, params)[1]
    n_out = outputs(t0, y0, params).shape[0]
    c = {
        "t": t0,
        "y": y0,
        "truths": exact0,
        "trig": jnp.asarray([e.initial_value for e in events]),
        "qt": jnp.full((n_ev, QUEUE), jnp.inf, dtype),
        "qv": jnp.zeros((n_ev, QUEUE, width), dtype),
        "fail": jnp.zeros((), bool),
        "k": jnp.ones((), jnp.int32),
        "steps": jnp.zeros((), jnp.int32),
        "it": jnp.zeros((), jnp.int32),
        "rng": key,
        "out": jnp.full((n_times, n_out), jnp.nan, dtype),
    }
    c = cascade(edges(c, triggers(t0, y0, params, exact0)))
    c["out"] = c["out"].at[0].set(outputs(t0, c["y"], params))

    def running(c):
        return (c["k"] < n_times) & ~c["fail"] & (c["it"] < solver.max_steps)

    c = jax.lax.while_loop(running, segment, c)
    ok = (c["k"] >= n_times) & ~c["fail"] & jnp.all(jnp.isfinite(c["out"]))
    result = jnp.where(ok, RESULTS.successful, RESULTS.solver_failed).astype(jnp.int32)
    return c["out"], c["steps"], result
