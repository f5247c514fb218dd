"""Exact on every grid: the float32 clock, 53-bit uniforms, one event semantics, no silent numbers.

Each test is computed by hand (or from a closed-form law) and failed on the code before the fix
(issue 16; the numbers before and after are in the closing note).
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn._solvers import _xoshiro
from grn._solvers._events import select_reaction

STEPPING = [grn.SSA(), grn.TauLeap(), grn.CLE(dt=0.25)]
IDS = ["SSA", "TauLeap", "CLE"]


# -- 1. the clock: exact in float32 over one long output interval ------------------------------
def _immigration(alpha, inputs=()):
    rate = (lambda x, p, u: p["alpha"] * u["I"]) if inputs else grn.mass_action("alpha")
    return grn.Network(["X"], [grn.Reaction("-> X", rate)], {"alpha": alpha}, inputs=inputs)


@pytest.mark.parametrize("breakpoint", [False, True], ids=["plain", "breakpoint_999.9"])
def test_clock_pure_immigration_over_one_long_interval(breakpoint):
    """``-> X`` at alpha = 1e4 per h over ts = [0, 1000]: X(1000) ~ Poisson(1e7); float32
    ``t + tau`` near t = 1000 (spacing 6e-5 h, tau ~ 1e-4 h) rounds, which drifted the mean by
    9e4 (z = 57 with 4 cells). A schedule breakpoint at 999.9 must not change that."""
    alpha, horizon, n = 1e4, 1000.0, 4
    net = _immigration(alpha, inputs=("I",) if breakpoint else ())
    schedule = grn.Schedule([0.0, 999.9], {"I": [1.0, 1.0]}) if breakpoint else None
    sol = grn.simulate(
        net,
        [0.0, horizon],
        jax.random.key(0),
        grn.SSA(max_events=2 * 10**7),
        n_cells=n,
        schedule=schedule,
    )
    x = np.asarray(sol.ys[:, -1, 0], np.float64)
    mean = alpha * horizon
    z = (x.mean() - mean) / np.sqrt(mean / n)
    assert abs(z) < 4, (x.mean(), z)


@pytest.mark.parametrize("horizon", [250.0, pytest.param(1000.0, marks=pytest.mark.slow)])
def test_clock_immigration_death_event_count(horizon):
    """Immigration-death (alpha = 2e4, mu = 100) from its mean x0 = alpha/mu over [0, T]:
    events N = 2B - (X_T - x0) with births B ~ Poisson(alpha T), so E N = 2 alpha T and
    Var N = 4 alpha T - 4 m + Var X_T, m = (alpha/mu)(1 - e^{-mu T}) the births still alive
    (Cov(B, X_T) = m), Var X_T = m + x0 e^{-mu T}(1 - e^{-mu T}). T = 250 fires 1e7 events per
    cell (T = 1000, 4e7, is the slow variant): float32 ``t + tau`` fired 1 % (15 % at 1000)
    too many."""
    alpha, mu, n = 2e4, 100.0, 4
    net = grn.models.immigration_death()
    x0 = alpha / mu
    sol = grn.simulate(
        net,
        [0.0, horizon],
        jax.random.key(1),
        grn.SSA(max_events=int(60_000 * horizon)),
        n_cells=n,
        params={"alpha": alpha, "mu": mu},
        x0={"X": x0},
    )
    events = np.asarray(sol.n_events, np.float64)
    decay = np.exp(-mu * horizon)
    m = alpha / mu * (1 - decay)
    var = 4 * alpha * horizon - 4 * m + m + x0 * decay * (1 - decay)
    z = (events.mean() - 2 * alpha * horizon) / np.sqrt(var / n)
    assert abs(z) < 4, (events.mean(), z)


# -- 2. uniforms: 53 bits in float64 -------------------------------------------------------------
def _state_for_second_word(predicate):
    """A xoshiro128++ state whose first word is 0 and whose second word satisfies
    ``predicate`` (found by scanning s1; with s0 = s3 = 0 the first output is 0)."""
    s1 = np.arange(1, 1 << 16, dtype=np.uint32)
    states = np.stack([np.zeros_like(s1), s1, np.full_like(s1, 12345), np.zeros_like(s1)])
    _, first = _xoshiro.next_word(jnp.asarray(states))
    _, second = _xoshiro.next_word(_xoshiro.next_word(jnp.asarray(states))[0])
    assert not np.any(np.asarray(first))
    good = np.flatnonzero(predicate(np.asarray(second)))
    return jnp.asarray(states[:, good[0]])


def test_53_bit_uniform_selects_a_reaction_with_share_1e_9():
    """Reaction 0 has a share 1e-9 of a0: it is selected when r < 1e-9. With 24-bit uniforms r
    is 0 or >= 6e-8, so the share it is selected with is 2**-24 = 6e-8, 60 times too large;
    with 53 bits, r = (word1 >> 5, word2 >> 6) / 2**53 resolves it."""
    with jax.enable_x64(True):
        weights = jnp.asarray([1e-9, 1.0 - 1e-9], jnp.float64)
        # second word >> 6 below 1e-9 * 2**53 = 9.0e6: r in (0, 1e-9) selects reaction 0
        low = _state_for_second_word(lambda w: ((w >> 6) > 0) & ((w >> 6) < 8_000_000))
        _, r = _xoshiro.next_uniform(low, jnp.float64)
        assert r.dtype == jnp.float64 and 0.0 < float(r) < 1e-9
        assert int(select_reaction(weights, r)) == 0
        # second word >> 6 above 1e-9 * 2**53 (but r still < 2**-24): reaction 1
        high = _state_for_second_word(lambda w: ((w >> 6) > 10_000_000) & ((w >> 6) < 1 << 24))
        _, r = _xoshiro.next_uniform(high, jnp.float64)
        assert 1e-9 < float(r) < 2.0**-24
        assert int(select_reaction(weights, r)) == 1


def test_float64_uniforms_vary_in_their_low_mantissa_bits():
    with jax.enable_x64(True):
        state = _xoshiro.seed(jax.random.key(0), (4096,))
        _, u = _xoshiro.next_uniform(state, jnp.float64)
        _, z = _xoshiro.next_normal(state, jnp.float64)
    u = np.asarray(u)
    assert u.dtype == np.float64 and np.all((u >= 0) & (u < 1))
    below_24_bits = np.mod(u * 2.0**24, 1.0)  # the part a 24-bit draw cannot hold
    assert np.mean(below_24_bits != 0) > 0.99
    assert 0.4 < below_24_bits.mean() < 0.6
    # the normals' uniform carries more than 23 bits too: off the 2**-22 grid (beyond the
    # erf round trip's ~1e-9 grid units)
    with jax.enable_x64(True):
        v = np.asarray(jax.scipy.special.erf(z / np.sqrt(2.0)))
    grid = (v + 1.0) * 2.0**22 - 0.5
    assert np.mean(np.abs(grid - np.round(grid)) > 1e-6) > 0.99


# -- 3. one event semantics in SSA, TauLeap and CLE ---------------------------------------------
def _still(species, events, **kwargs):
    """A network whose only reaction never fires: the species change only through events."""
    return grn.Network(
        species,
        [grn.Reaction(f"{species[0]} ->", grn.mass_action("k"))],
        {"k": 0.0, **kwargs.pop("params", {})},
        events=events,
        **kwargs,
    )


@pytest.mark.parametrize("solver", STEPPING, ids=IDS)
def test_time_events_at_one_time_all_fire_in_definition_order(solver):
    """Events at t = 7, 5, 5, 5 (defined in that order): at 5, X = 1 then X = 2 (the later
    definition wins) and Y = 3; the one at 7 (Z = 4) still fires. Before, the CLE dropped the
    second event at 5 and every later one."""
    events = [
        grn.Event(at=7.0, assign={"Z": 4}),
        grn.Event(at=5.0, assign={"X": 1}),
        grn.Event(at=5.0, assign={"X": 2}),
        grn.Event(at=5.0, assign={"Y": 3}),
    ]
    net = _still(["X", "Y", "Z"], events)
    sol = grn.simulate(net, [0.0, 6.0, 8.0], jax.random.key(0), solver, n_cells=2)
    np.testing.assert_array_equal(sol.ys[:, 1], [[2, 3, 0]] * 2)
    np.testing.assert_array_equal(sol.ys[:, 2], [[2, 3, 4]] * 2)


@pytest.mark.parametrize("solver", STEPPING, ids=IDS)
def test_state_events_chain_within_an_instant(solver):
    """A time event at 2 sets X = 5; ``X > 3`` then fires A (Y = 10), and ``Y > 5`` fires B
    (Z = Y + 1 = 11) at the same instant. Before, B's trigger turned true through A's assignment
    and never fired."""
    events = [
        grn.Event(when=lambda t, x, p: x["Y"] > 5, assign={"Z": lambda x, p, u: x["Y"] + 1}),
        grn.Event(when=lambda t, x, p: x["X"] > 3, assign={"Y": 10}),
        grn.Event(at=2.0, assign={"X": 5}),
    ]
    net = _still(["X", "Y", "Z"], events)
    sol = grn.simulate(net, [0.0, 3.0], jax.random.key(0), solver, n_cells=2)
    np.testing.assert_array_equal(sol.ys[:, 1], [[5, 10, 11]] * 2)


@pytest.mark.parametrize("solver", [grn.SSA(), grn.CLE(dt=0.25)], ids=["SSA", "CLE"])
def test_state_events_that_trigger_each_other_forever_stop_with_a_code(solver):
    """At t = 1, Y = 1 turns A (``Y == 1`` -> Y = 2) on, whose assignment turns B (``Y == 2`` ->
    Y = 1) on, which turns A on again: an endless chain within one instant, capped with
    `RESULTS.event_loop` instead of looping forever."""
    events = [
        grn.Event(at=1.0, assign={"Y": 1}),
        grn.Event(when=lambda t, x, p: x["Y"] == 1, assign={"Y": 2}),
        grn.Event(when=lambda t, x, p: x["Y"] == 2, assign={"Y": 1}),
    ]
    net = _still(["X", "Y"], events)
    sol = grn.simulate(net, [0.0, 2.0], jax.random.key(0), solver, n_cells=2, throw=False)
    np.testing.assert_array_equal(sol.result, [grn.RESULTS.event_loop] * 2)
    with pytest.raises(Exception, match="events kept triggering"):
        grn.simulate(net, [0.0, 2.0], jax.random.key(0), solver, n_cells=2)


@pytest.mark.parametrize("solver", [grn.SSA(), grn.CLE(dt=0.25)], ids=["SSA", "CLE"])
def test_event_at_a_schedule_breakpoint_sees_the_new_inputs(solver):
    """Input I is 1 before t = 5 and 7 from t = 5; an event at 5 copies I into X: 7."""
    event = grn.Event(at=5.0, assign={"X": lambda x, p, u: u["I"]})
    net = _still(["X"], [event], inputs=["I"])
    schedule = grn.Schedule([0.0, 5.0], {"I": [1.0, 7.0]})
    sol = grn.simulate(net, [0.0, 6.0], jax.random.key(0), solver, n_cells=2, schedule=schedule)
    np.testing.assert_array_equal(sol.ys[:, 1, 0], [7, 7])


def test_initial_value_false_fires_a_trigger_true_at_the_start():
    """SBML ``initialValue``: True (the default) treats the trigger as true before the start, so
    a trigger true at t0 does not fire; False makes it fire at t0 (recorded at ts[0])."""
    events = [
        grn.Event(when=lambda t, x, p: x["X"] >= 0, assign={"Y": 5}, initial_value=False),
        grn.Event(when=lambda t, x, p: x["X"] >= 0, assign={"Z": 6}),  # initial_value=True
    ]
    net = _still(["X", "Y", "Z"], events)
    sol = grn.simulate(net, [0.0, 1.0], jax.random.key(0), grn.SSA(), n_cells=2)
    np.testing.assert_array_equal(sol.ys[:, 0], [[0, 5, 0]] * 2)
    np.testing.assert_array_equal(sol.ys[:, 1], [[0, 5, 0]] * 2)


def test_persistent_false_cancels_an_event_whose_trigger_an_earlier_one_undid():
    """At t = 1, X = 1 triggers A (W = 1), B and C (``X >= 1 and W == 0`` -> Z = 1, V = 1) at
    once. A fires first (definition order) and makes the others' trigger false: persistent B
    (SBML ``persistent=true``, the default) fires anyway, non-persistent C is cancelled. (The
    event code is shared by the solvers; SSA stands for them.)"""
    both = lambda t, x, p: (x["X"] >= 1) & (x["W"] == 0)  # noqa: E731
    events = [
        grn.Event(at=1.0, assign={"X": 1}),
        grn.Event(when=lambda t, x, p: x["X"] >= 1, assign={"W": 1}),
        grn.Event(when=both, assign={"Z": 1}),
        grn.Event(when=both, assign={"V": 1}, persistent=False),
    ]
    net = _still(["X", "W", "Z", "V"], events)
    sol = grn.simulate(net, [0.0, 2.0], jax.random.key(0), grn.SSA(), n_cells=2)
    np.testing.assert_array_equal(sol.ys[:, 1], [[1, 1, 1, 0]] * 2)


def test_use_values_from_trigger_time():
    """Three events at t = 1: A sets W = 5; B and C set Z = W + 1 and V = W + 1. B's values from
    the trigger time (SBML ``useValuesFromTriggerTime=true``, the default) see W = 0: Z = 1;
    C's from its execution after A (false) see W = 5: V = 6. The same for state events
    triggered at one instant (t = 2: W = 7; Q = 5 + 1 from the trigger time, R = 7 + 1)."""
    late = {"use_values_from_trigger_time": False}
    on = lambda t, x, p: x["X"] >= 1  # noqa: E731
    plus_one = lambda x, p, u: x["W"] + 1  # noqa: E731
    events = [
        grn.Event(at=1.0, assign={"W": 5}),
        grn.Event(at=1.0, assign={"Z": plus_one}),
        grn.Event(at=1.0, assign={"V": plus_one}, **late),
        grn.Event(at=2.0, assign={"X": 1}),
        grn.Event(when=on, assign={"W": 7}),
        grn.Event(when=on, assign={"Q": plus_one}),
        grn.Event(when=on, assign={"R": plus_one}, **late),
    ]
    net = _still(["X", "W", "Z", "V", "Q", "R"], events)
    sol = grn.simulate(net, [0.0, 1.5, 3.0], jax.random.key(0), grn.SSA(), n_cells=2)
    np.testing.assert_array_equal(sol.ys[:, 1], [[0, 5, 1, 6, 0, 0]] * 2)
    # at t = 2, X = 1 fires the state events: W = 7, Q from before the round (W = 5), R = 8
    np.testing.assert_array_equal(sol.ys[:, 2], [[1, 7, 1, 6, 6, 8]] * 2)


def test_time_and_state_trigger_fires_when_its_time_part_turns_true():
    """``time > 5 && X > 3`` is ``Event(after=5, when=X > 3)``: X grows from 10 at rate 1000
    per h, so the state part holds at t = 5 and the event (Y = X) fires at t = 5 exactly, before
    any later reaction: Y equals X(5). A trigger that reads t would be seen only at the first
    reaction after 5 (Y = X(5) + 1)."""
    event = grn.Event(
        after=5.0, when=lambda t, x, p: x["X"] > 3, assign={"Y": lambda x, p, u: x["X"]}
    )
    net = grn.Network(
        ["X", "Y"], [grn.Reaction("-> X", grn.mass_action("a"))], {"a": 1000.0}, {"X": 10},
        events=[event],
    )  # fmt: skip
    sol = grn.simulate(net, [0.0, 5.0, 6.0], jax.random.key(0), grn.SSA(), n_cells=8)
    np.testing.assert_array_equal(sol.ys[:, 2, 1], sol.ys[:, 1, 0])
    assert np.all(sol.ys[:, 2, 0] > sol.ys[:, 1, 0] + 500)  # reactions did run after t = 5


# -- 4. no silent numbers ------------------------------------------------------------------------
def test_cle_flags_negative_propensities_in_its_drift():
    """``-> X`` at k (5 - X) from X = 10 has a negative propensity: the CLE used it as drift."""
    net = grn.Network(
        ["X"], [grn.Reaction("-> X", lambda x, p, u: p["k"] * (5.0 - x["X"]))], {"k": 1.0}
    )
    run = dict(solver=grn.CLE(dt=0.1), n_cells=2, x0={"X": 10.0})
    sol = grn.simulate(net, [0.0, 1.0], jax.random.key(0), throw=False, **run)
    np.testing.assert_array_equal(sol.result, [grn.RESULTS.invalid_propensity] * 2)
    with pytest.raises(Exception, match="propensity was negative"):
        grn.simulate(net, [0.0, 1.0], jax.random.key(0), **run)


def test_non_integer_x0_under_jit_raises():
    """Under jit the boundary check cannot see x0; it was rounded silently (2.5 -> 2). The
    check is at the boundary, for every stochastic solver."""
    solver = grn.SSA()
    net = grn.models.immigration_death()

    @jax.jit
    def run(x):
        return grn.simulate(net, [0.0, 1.0], jax.random.key(0), solver, x0={"X": x}).ys

    assert run(3.0).shape == (1, 2, 1)
    with pytest.raises(Exception, match="must be integers for a stochastic solver"):
        jax.block_until_ready(run(2.5))


def test_moments_without_throw_exclude_failed_cells_and_count_them():
    """Cells with alpha = 1000 exceed max_events = 200 and fail; the moments are those of the
    successful cells and ``result_counts`` counts both kinds (and the docstring says so)."""
    net = grn.models.immigration_death()
    alpha = jnp.asarray([10.0, 1000.0] * 8)
    kwargs = dict(solver=grn.SSA(max_events=200), params={"alpha": alpha}, n_cells=16, throw=False)
    ts = [0.0, 1.0, 2.0]
    sol = grn.simulate(net, ts, jax.random.key(0), **kwargs)
    moments = grn.simulate(net, ts, jax.random.key(0), reduce="moments", **kwargs)
    ok = np.asarray(sol.result) == grn.RESULTS.successful
    assert ok.sum() == 8
    np.testing.assert_allclose(moments.mean, np.asarray(sol.ys)[ok].mean(axis=0), rtol=1e-6)
    assert int(moments.count) == 8
    assert int(moments.result_counts[grn.RESULTS.successful]) == 8
    assert int(moments.result_counts[grn.RESULTS.max_events_reached]) == 8
    doc = inspect.getdoc(grn.simulate)
    assert "exclude" in doc and "result_counts" in doc
