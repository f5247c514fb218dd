"""The stepping core shared by SSA, TauLeap, Hybrid and CLE: restart points, recording, result
codes.

A stepping solver advances one cell through time by steps. Output times, schedule breakpoints
and time events are *restart points*: no step crosses one. A solver proposes a step of length
``tau`` from the current state (an exponential waiting time, a leap, an Euler step); `Stepper`
decides which restart point, if any, the step reaches first and shortens it to end there, applies
the events, sets the result code, advances the output row, schedule segment and event index, and
says which output row the step reaches. The solver supplies only what happens within the step.

The clock. Time is kept relative to the start of the current output interval (``ts[k]``) as an
unevaluated sum of two floats, ``t + tl`` (``tl`` at most half a unit in the last place of ``t``):
each step adds its length with Knuth's TwoSum, so the sum is exact to about ``2**-48 t`` however
long the interval, instead of rounding every ``t + tau`` to the spacing of ``t`` (6e-5 h at
t = 1000 h in float32, where waiting times of 1e-4 h drifted the SSA by 1 %). Restart points
are compared with the two-float time, and a step's length is ``tau`` itself (or the exact
distance to the restart point it reaches), so fate integrals and likelihoods see exact step
lengths. Output times and restart points themselves are float values of the clock's dtype
(float32 spacing is 1 h at 1e7 h); the clock between them carries no rounding drift. Cost: about
ten flops per step, not measurable on the toggle-switch benchmark (10^3 cells, 1.05e7 events,
``benchmarks/ssa_throughput.py`` worker, median of 3: 0.68 s CPU against 0.76 s before, on a
loaded 2-core machine). Re-basing the clock at extra internal restart points was the
alternative; it needs a restart point every few thousand events at high rates and still rounds
each ``t + tau`` in between.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._solution import RESULTS
from ._base import CellProgram
from ._events import EventPlan, any_true

OUTPUTS = ("ys", "lws", "lls")
"""The entries of a stepping state that hold its recorded path, one row per output time."""


class Point(NamedTuple):
    """Where a step starts: the state and the restart points ahead of it."""

    t: Any  # time within the output interval: t + tl
    tl: Any  # its low part
    x: Any  # state
    p: Any  # parameters, with the event-assigned ones
    u: Any  # input levels of the current schedule segment
    t_start: Any  # start of the output interval, ts[k]
    span: Any  # its length
    bp: Any  # the next schedule breakpoint, relative to t_start (inf when none)
    ev: Any  # the next time event, relative to t_start (inf when none)


class Reach(NamedTuple):
    """Which restart point a step reaches first (at most one flag is set) and where it ends."""

    hits_ev: Any
    hits_bp: Any
    hits_end: Any
    t_new: Any  # time the step ends at, relative to t_start: t_new + tl_new
    tl_new: Any
    dt: Any  # its length

    @property
    def restart(self):
        return self.hits_ev | self.hits_bp | self.hits_end


def _two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _at_least(hi, lo, target):
    """``hi + lo >= target`` for a normalised pair (``|lo| <= ulp(hi) / 2``)."""
    return (hi > target) | ((hi == target) & (lo >= 0))


class Stepper:
    """One cell's stepping loop around a solver's step (see the module docstring).

    The state is a dict (`EventPlan.initial_state`) with ``res``, the result code, and ``tl``,
    the clock's low part, added here; solvers add their own entries (random state, counters).
    ``reverse_mode``: the events support reverse-mode autodiff (`EventPlan`).
    """

    def __init__(self, network, ts, params, schedule_times, schedule_table, reverse_mode=False):
        self.network, self.ts, self.params = network, ts, params
        self.schedule_times, self.schedule_table = schedule_times, schedule_table
        self.events = EventPlan(network, reverse_mode)
        self.dtype = ts.dtype
        self.n_times = ts.shape[0]
        self.exact_limit = 2**24 if self.dtype == jnp.float32 else 2**31 - 1

    def initial_state(self, x0):
        seg = jnp.searchsorted(self.schedule_times, self.ts[0], side="right") - 1
        u = self.schedule_table[seg]
        state, looped = self.events.initial_state(self.ts, self.schedule_times, x0, self.params, u)
        code = jnp.where(looped, RESULTS.event_loop, RESULTS.successful)
        state["res"] = code.astype(jnp.int32)
        state["tl"] = jnp.zeros((), self.dtype)
        return state

    def unfinished(self, s):
        """The cell has output times left and no error."""
        return self.unfinished_in(s, self.n_times)

    @staticmethod
    def unfinished_in(s, n_times):
        """`unfinished` for a state on a grid of ``n_times`` output times."""
        return (s["k"] < n_times - 1) & (s["res"] == RESULTS.successful)

    def stopped(self, s, live):
        """The state, or where not ``live`` the same state marked finished (an idle lane of
        `grn._lanes.run_lanes`, which then costs no steps' work but the masked ones)."""
        return {**s, "k": jnp.where(live, s["k"], self.n_times - 1)}

    def begin(self, s) -> Point:
        """The current time, state, parameters, inputs and the restart points ahead."""
        ts, times = self.ts, self.schedule_times
        n_segments = times.shape[0]
        t_start = ts[s["k"]]
        span = ts[jnp.minimum(s["k"] + 1, self.n_times - 1)] - t_start
        if n_segments == 1:  # no schedule: no breakpoint (static, so the step does less work)
            bp = jnp.asarray(jnp.inf, self.dtype)
        else:
            nxt = jnp.minimum(s["seg"] + 1, n_segments - 1)
            bp = jnp.where(s["seg"] + 1 < n_segments, times[nxt] - t_start, jnp.inf)
        ev = self.events.next_time(s, self.dtype) - t_start
        p = {**self.params, **s["p"]}
        u = self.schedule_table[s["seg"]]
        return Point(s["t"], s["tl"], s["x"], p, u, t_start, span, bp, ev)

    def reach(self, at: Point, tau) -> Reach:
        """Where a step of length ``tau`` from ``at`` ends: at the first restart point it
        reaches (a breakpoint before a time event at the same time, so that the event sees the
        new inputs; the end of the output interval last), else after ``tau``."""
        # tau beyond the interval's end reaches a restart point; capping it keeps the sum finite.
        hi, err = _two_sum(at.t, jnp.minimum(tau, at.span))
        lo = err + at.tl
        hi, lo = hi + lo, lo - ((hi + lo) - hi)  # renormalise: |lo| <= ulp(hi) / 2
        hits_bp = (at.bp <= at.span) & (at.bp <= at.ev) & _at_least(hi, lo, at.bp)
        hits_ev = ~hits_bp & (at.ev <= at.span) & _at_least(hi, lo, at.ev)
        hits_end = ~(hits_ev | hits_bp) & _at_least(hi, lo, at.span)
        target = jnp.where(hits_ev, at.ev, jnp.where(hits_bp, at.bp, at.span))
        restart = hits_ev | hits_bp | hits_end
        t_new = jnp.where(restart, target, hi)
        tl_new = jnp.where(restart, jnp.zeros_like(lo), lo)
        dt = jnp.where(restart, (target - at.t) - at.tl, tau)
        return Reach(hits_ev, hits_bp, hits_end, t_new, tl_new, dt)

    def fire_events(self, s, at: Point, reach: Reach, x_new):
        """Apply the time events the step reached and the state events it triggered. Returns
        the state, the parameters, the event entries of the state to update and whether the
        state events kept triggering each other (`grn.Event`)."""
        if not self.events:
            return x_new, at.p, {"p": s["p"]}, jnp.asarray(False)
        t = at.t_start + reach.t_new
        if self.events.times.size:  # at a restart time of the events, that time exactly
            exact = jnp.asarray(self.events.times, self.dtype)
            t = jnp.where(reach.hits_ev, exact[jnp.minimum(s["te"], exact.shape[0] - 1)], t)
        return self.events.step(s, reach.hits_ev, t, x_new, at.p, at.u)

    def code(self, s, active, invalid, negative, looped, x_new=None):
        """The result code after a step: ``invalid`` propensities, a ``negative`` count, state
        events that ``looped``, or a count in ``x_new`` past what the dtype holds exactly (not
        checked without ``x_new``); unchanged where not ``active``."""
        code = s["res"]
        if x_new is not None:
            code = jnp.where(any_true(x_new >= self.exact_limit), RESULTS.count_overflow, code)
        code = jnp.where(looped, RESULTS.event_loop, code)
        code = jnp.where(negative, RESULTS.negative_population, code)
        code = jnp.where(invalid, RESULTS.invalid_propensity, code)
        return jnp.where(active, code, s["res"])

    def advance(self, s, reach: Reach, accept, x_new, updates):
        """The state entries after a step that is kept where ``accept``: the state, the event
        entries ``updates``, the output interval, the clock and the segment. Also returns the
        output row the step reaches (out of range when none: a scatter drops it)."""
        record = reach.hits_end & accept
        row = jnp.where(record, s["k"] + 1, self.n_times)
        keep = lambda a, b: jnp.where(accept, a, b)  # noqa: E731
        out = {
            **jax.tree.map(keep, updates, {name: s[name] for name in updates}),
            "x": keep(x_new, s["x"]),
            "k": s["k"] + record,
            "t": jnp.where(record, jnp.zeros_like(s["t"]), keep(reach.t_new, s["t"])),
            "tl": jnp.where(record, jnp.zeros_like(s["tl"]), keep(reach.tl_new, s["tl"])),
        }
        if self.schedule_times.shape[0] > 1:
            out["seg"] = s["seg"] + (reach.hits_bp & accept)
        return out, row

    def block(self, s, step, length, inputs=None, one_row=False):
        """``length`` steps (a scan) from a state without its output arrays (`OUTPUTS`); a
        solver's cell runs such blocks until every output time is reached, an error occurs or
        its budget is spent (`block_program`), one check for finished cells per block. Returns
        the state and ``written``: the output rows the steps reached, ``row`` (flat, out of range
        where a step reached none), and their values under the outputs' names (`record`).

        ``step(s, x) -> (s, written)``: ``written["row"]`` (one row, or an array of rows for a
        step made of several) and, under the names of the state's outputs (``ys``, ``lws``,
        ``lls``), the values to record there. ``inputs(s) -> (s, xs)`` makes the block's scanned
        inputs (None: none).

        ``one_row``: the block records at most one row, kept in the loop carry, instead of
        stacking every step's values (a ``[length, cells, species]`` write per step and a scatter
        of ``length`` rows per cell per block: 25 % of the SSA's time per event on the
        repressilator, benchmarks/ssa_profile.md). The step must then call `frozen` and, where it
        is true, change nothing (state, clock, counters, random stream): a step that would reach
        a second output time waits for the next block, and the path is the same step for step.
        A step of ``one_row`` records one row at most. ``written["frozen"]`` is then the
        fraction of the block's steps that were frozen (the solver's step returns its `frozen`
        flag under that name).
        """
        s, xs = (s, None) if inputs is None else inputs(s)
        if one_row:
            return self._one_row_block(s, step, length, xs)
        s, written = jax.lax.scan(step, s, xs, length=length)
        written.pop("frozen", None)
        rows = written["row"]
        flat = {name: v.reshape(rows.size, *v.shape[rows.ndim :]) for name, v in written.items()}
        return s, {**flat, "row": rows.reshape(-1)}

    def _one_row_block(self, s, step, length, xs):
        s = {**s, "recorded": jnp.asarray(False)}
        x = None if xs is None else jax.tree.map(lambda v: v[0], xs)
        shapes = jax.eval_shape(step, s, x)[1]
        kept = {name: jnp.zeros(v.shape, v.dtype) for name, v in shapes.items() if name != "frozen"}
        kept["row"] = jnp.full(shapes["row"].shape, self.n_times, shapes["row"].dtype)

        def stepped(carry, x):
            s, kept, frozen = carry
            s, written = step(s, x)
            frozen = frozen + written.pop("frozen")
            hit = written["row"] < self.n_times
            kept = jax.tree.map(lambda new, old: jnp.where(hit, new, old), written, kept)
            return ({**s, "recorded": s["recorded"] | hit}, kept, frozen), None

        carry = (s, kept, jnp.zeros((), jnp.int32))
        (s, kept, frozen), _ = jax.lax.scan(stepped, carry, xs, length=length)
        del s["recorded"]
        return s, {**jax.tree.map(lambda v: v[None], kept), "frozen": frozen / length}

    @staticmethod
    def frozen(s, reach):
        """In a block that records one row (`block`), a step that would reach a second output
        time: it must not happen, and the cell waits for the next block."""
        return reach.hits_end & s["recorded"] if "recorded" in s else jnp.asarray(False)

    @staticmethod
    def result_in(s, n_times):
        """The final code on a grid of ``n_times`` output times: a cell that stopped early
        without an error ran out of its budget."""
        return jnp.where(Stepper.unfinished_in(s, n_times), RESULTS.max_events_reached, s["res"])


def block_program(
    network, ts, schedule_times, schedule_table, length, budget, finish, cell, one_row=False
):
    """The `CellProgram` of a solver that steps each cell in blocks of ``length`` steps.

    ``cell(core)`` gives the solver's pieces for one cell's `Stepper` ``core`` (which holds the
    cell's parameters): ``(start, step, inputs)`` with ``start(key, x0) -> state``, ``step(s, x)
    -> (s, written)`` and ``inputs(s) -> (s, xs)`` or None (`Stepper.block`). ``budget(s) -> bool``
    is the solver's own limit besides the output times; ``finish(s, result) -> CellPath``, where
    ``result`` is the final code (`Stepper.result_in`). ``one_row``: the solver's steps support
    blocks that record one output row at most (`Stepper.block`, `Stepper.frozen`).
    """
    n_times = ts.shape[0]

    def core_for(params):
        return Stepper(network, ts, params, schedule_times, schedule_table)

    def start(key, params, x0, live):
        core = core_for(params)
        return core.stopped(cell(core)[0](key, x0), live)

    def advance(params, s, one_row=False):
        core = core_for(params)
        _, step, inputs = cell(core)
        return core.block(s, step, length, inputs, one_row)

    def running(s):
        return Stepper.unfinished_in(s, n_times) & budget(s)

    def finished(s):
        return finish(s, Stepper.result_in(s, n_times))

    return CellProgram(start, advance, running, finished, one_row)


def split_outputs(state):
    """``(state, outputs)``: a cell's state without its output arrays (`OUTPUTS`), and those.
    Runners keep the outputs apart and write each block's rows into them (`record`), so that
    the stepping loop never carries, copies or selects the whole recorded path."""
    outputs = {name: state[name] for name in OUTPUTS if name in state}
    return {name: v for name, v in state.items() if name not in outputs}, outputs


def record(outputs, written):
    """One cell's output arrays with the rows of a block's ``written`` set (rows out of range
    are dropped)."""
    rows = written["row"]
    return {name: v.at[rows].set(written[name], mode="drop") for name, v in outputs.items()}


def run_to_end(program: CellProgram, key, params, x0):
    """One cell's final state, outputs included: ``start``, then ``advance`` while
    ``running``, each block's rows recorded."""
    state, outputs = split_outputs(program.start(key, params, x0, True))

    def block(carry):
        state, outputs = carry
        state, written = program.advance(params, state)
        return state, record(outputs, written)

    state, outputs = jax.lax.while_loop(
        lambda carry: program.running(carry[0]), block, (state, outputs)
    )
    return {**state, **outputs}


def run_program(program: CellProgram, key, params, x0):
    """One cell's whole run: `run_to_end`, then ``finish``."""
    return program.finish(run_to_end(program, key, params, x0))
