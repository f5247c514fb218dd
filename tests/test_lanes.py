"""Refilled lanes (`grn._lanes`): the same paths, bit for bit, as all cells at once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn import _lanes
from grn._schedule import no_schedule
from grn._solvers._stepping import run_program

TS = jnp.linspace(0.0, 10.0, 11)


def _immigration_death(**options):
    base = grn.models.immigration_death()
    return grn.Network(base.species, base.reactions, {"alpha": 20.0, "mu": 0.1}, **options)


_FATE, _EVENTS = "growth and death (fate integral)", "time and state events"
CASES = {
    "toggle, per-cell parameters and a schedule-free run": (
        grn.models.toggle_switch(),
        dict(params={"a": jnp.linspace(20.0, 60.0, 37)}),
    ),
    _FATE: (
        _immigration_death(growth=grn.mass_action(0.2), death=lambda x, p, u: 0.01 * x["X"]),
        dict(n_cells=37),
    ),
    _EVENTS: (
        _immigration_death(
            events=[
                grn.Event(at=4.5, assign={"alpha": 0.0}),
                grn.Event(when=lambda t, x, p: x["X"] >= 10, assign={"mu": 0.3}),
            ]
        ),
        dict(n_cells=37),
    ),
    "path likelihood": (_immigration_death(), dict(n_cells=37, solver=grn.SSA(likelihood=True))),
    "event budget exhausted in some cells": (
        _immigration_death(),
        dict(n_cells=37, solver=grn.SSA(max_events=275), throw=False),
    ),
    "equilibration pre-run": (_immigration_death(), dict(n_cells=37, equilibrate=5.0)),
    "tau-leaping": (_immigration_death(), dict(n_cells=37, solver=grn.TauLeap(epsilon=0.1))),
    "hybrid, automatic partition": (
        _immigration_death(),
        dict(n_cells=37, solver=grn.Hybrid(dt=0.05, min_count=20, min_firings=0.5)),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_lanes_give_the_paths_of_all_cells_at_once(case):
    net, options = CASES[case]
    run = dict(ts=TS, key=jax.random.key(4), **options)
    whole = grn.simulate(net, **run)  # 37 cells: fewer than SSA.cpu_lanes, all at once
    for lanes in (5, 16):  # 37 cells through 5 lanes: several refills per block and round
        refilled = grn.simulate(net, batch_size=lanes, **run)
        for name in ("ys", "log_weight", "n_events", "result", "log_likelihood"):
            a, b = getattr(whole, name), getattr(refilled, name)
            if a is None:
                assert b is None, name
            else:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    if "max_events" in repr(options.get("solver")):  # the case checks both outcomes
        codes = set(np.asarray(whole.result).tolist())
        assert codes == {grn.RESULTS.successful, grn.RESULTS.max_events_reached}


RUNNER_CASES = {
    "SSA, toggle": (grn.SSA(), grn.models.toggle_switch(), TS),
    "TauLeap, toggle": (grn.TauLeap(epsilon=0.1), grn.models.toggle_switch(), TS),
    # 2-4 events per output interval: one-row blocks freeze most steps, so the runner
    # switches to stacked rows (and back at the end, when lanes run out of cells)
    "SSA, sparse events among dense output times": (
        grn.SSA(),
        _immigration_death(),
        jnp.linspace(0.0, 20.0, 201),
    ),
    "SSA, growth and death (fate integral)": (grn.SSA(), CASES[_FATE][0], TS),
    "SSA, time and state events": (grn.SSA(), CASES[_EVENTS][0], TS),
    "SSA, path likelihood and an event budget exhausted in some cells": (
        grn.SSA(likelihood=True, max_events=275),
        _immigration_death(),
        TS,
    ),
}


@pytest.mark.parametrize("case", RUNNER_CASES)
def test_run_lanes_gives_the_paths_of_one_cell_at_a_time(case):
    """The ensemble's runner (outputs kept outside the lanes, one-row or stacked blocks) against
    `run_program` on each cell alone (stacked blocks, outputs in the cell's own loop), all lanes
    at once and refilled, the lanes halved as cells finish (down to 2)."""
    solver, net, ts = RUNNER_CASES[case]
    program = solver.program(net, ts, *no_schedule(net.inputs, ts.dtype))
    params = {name: jnp.asarray(v, ts.dtype) for name, v in net.params.items()}
    x0 = jnp.asarray(net.x0, ts.dtype)
    keys = jax.random.split(jax.random.key(7), 23)
    alone = jax.vmap(lambda key: run_program(program, key, params, x0))(keys)
    for lanes in (23, 4):  # halved down to 2 lanes: 23 -> 11 -> 5 -> 2, 4 -> 2
        together = _lanes.run_lanes(
            program,
            {"key": keys},
            lanes,
            lambda c: (c["key"], params, x0),
            halvings=5,
            narrowest=2,
        )
        for name in ("ys", "log_weight", "n_events", "result", "log_likelihood"):
            a, b = getattr(alone, name), getattr(together, name)
            if a is None:
                assert b is None, name
            else:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    if getattr(solver, "max_events", None) == 275:  # the case checks both outcomes
        assert set(np.asarray(alone.result).tolist()) == {
            grn.RESULTS.successful,
            grn.RESULTS.max_events_reached,
        }
    else:
        assert np.isfinite(np.asarray(alone.ys)).all()


def test_blocks_switch_between_one_row_and_stacked_rows():
    """One-row blocks give way to stacked rows when too many steps were frozen, and back when
    the lanes reach few output times per block."""
    outputs = {"ys": jnp.zeros((3, 11, 2))}
    frozen = lambda f: {"frozen": jnp.asarray(f)}  # noqa: E731
    assert bool(_lanes._next_one_row(True, frozen([0.0, 0.1, 0.2]), outputs))
    assert not bool(_lanes._next_one_row(True, frozen([0.0, 0.5, 0.9]), outputs))
    rows = lambda r: {"row": jnp.asarray(r)}  # noqa: E731
    assert bool(_lanes._next_one_row(False, rows([[11, 11], [3, 11], [11, 11]]), outputs))
    assert not bool(_lanes._next_one_row(False, rows([[1, 2], [3, 11], [5, 6]]), outputs))


def test_running_count_and_first_true_match_numpy():
    rng = np.random.default_rng(0)
    for n, size in [(1, 1), (7, 3), (100, 7), (1000, 63)]:
        flags = rng.random(n) < 0.3
        np.testing.assert_array_equal(_lanes._running_count(jnp.asarray(flags)), np.cumsum(flags))
        expected = np.flatnonzero(flags)[:size]
        expected = np.concatenate([expected, np.full(size - expected.size, n)])
        np.testing.assert_array_equal(_lanes._first_true(jnp.asarray(flags), size), expected)
