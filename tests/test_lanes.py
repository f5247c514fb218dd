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


CASES = {
    "toggle, per-cell parameters and a schedule-free run": (
        grn.models.toggle_switch(),
        dict(params={"a": jnp.linspace(20.0, 60.0, 37)}),
    ),
    "growth and death (fate integral)": (
        _immigration_death(growth=grn.mass_action(0.2), death=lambda x, p, u: 0.01 * x["X"]),
        dict(n_cells=37),
    ),
    "time and state events": (
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


@pytest.mark.parametrize("solver", [grn.SSA(), grn.TauLeap(epsilon=0.1)], ids=["SSA", "TauLeap"])
def test_run_lanes_gives_the_paths_of_one_cell_at_a_time(solver):
    """The ensemble's runner (outputs kept outside the lanes) against `run_program` on each cell
    alone (outputs in the cell's own loop), all lanes at once and refilled."""
    net = grn.models.toggle_switch()
    program = solver.program(net, TS, *no_schedule(net.inputs, TS.dtype))
    params = {name: jnp.asarray(v, TS.dtype) for name, v in net.params.items()}
    x0 = jnp.asarray(net.x0, TS.dtype)
    keys = jax.random.split(jax.random.key(7), 23)
    alone = jax.vmap(lambda key: run_program(program, key, params, x0))(keys)
    for lanes in (23, 4):
        together = _lanes.run_lanes(program, {"key": keys}, lanes, lambda c: (c["key"], params, x0))
        for name in ("ys", "log_weight", "n_events", "result"):
            a, b = getattr(alone, name), getattr(together, name)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert np.isfinite(np.asarray(alone.ys)).all()


def test_running_count_and_first_true_match_numpy():
    rng = np.random.default_rng(0)
    for n, size in [(1, 1), (7, 3), (100, 7), (1000, 63)]:
        flags = rng.random(n) < 0.3
        np.testing.assert_array_equal(_lanes._running_count(jnp.asarray(flags)), np.cumsum(flags))
        expected = np.flatnonzero(flags)[:size]
        expected = np.concatenate([expected, np.full(size - expected.size, n)])
        np.testing.assert_array_equal(_lanes._first_true(jnp.asarray(flags), size), expected)
