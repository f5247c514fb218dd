"""The melanoma model as SBML (`grn.models.melanoma_sbml`): the export is the simulator's model.

Each rate law is written twice, as the Python function the simulator runs and as an SBML formula
(`_melanoma._ROWS`); these tests prove the two equal: propensities in float64 at random states
(floors and Hill thresholds crossed, negative counts included), ODE trajectories, and the CLE path
with the drug washed out by the SBML event rather than a `grn.Schedule`.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn.io._sbml_export import consistency_errors
from grn.models._melanoma import INPUTS, OMEGA, PARAMS, SPECIES, X0


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _states(rng, n):
    """Counts from below 0 to beyond every floor: E > E_T (20 copies), Nn > N_T (125), M > M_T."""
    high = {s: 3.0 * X0[s] + 10.0 for s in SPECIES}
    high.update(E=45.0, Nn=260.0, M=220.0)
    return [{s: rng.uniform(-0.1 * high[s], high[s]) for s in SPECIES} for _ in range(n)]


def test_exported_propensities_equal_the_python_laws():
    net = grn.models.melanoma()
    text = grn.models.melanoma_sbml()
    assert consistency_errors(text) == []
    back = grn.load_sbml(text)
    assert back.species == net.species and back.inputs == ()
    np.testing.assert_array_equal(back.stoichiometry, net.stoichiometry)
    np.testing.assert_array_equal(back.x0, net.x0)
    assert set(back.params) == set(PARAMS) | set(INPUTS)
    rng = np.random.default_rng(18)
    floors = {"E": 0, "Nn": 0, "M": 0}  # states where max(total - bound, 0) bites
    compared = 0
    for state in _states(rng, 200):
        params = {k: v * rng.uniform(0.5, 2.0) for k, v in PARAMS.items()}
        levels = {u: rng.uniform(0.0, 1.0) for u in INPUTS}
        x = jnp.asarray([state[s] for s in SPECIES])
        want = net.propensities(x, params, jnp.asarray([levels[u] for u in INPUTS]))
        got = back.propensities(x, {**params, **levels}, jnp.zeros((0,)))
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=0)
        for s, total in (("E", "ET"), ("Nn", "NT"), ("M", "MT")):
            floors[s] += state[s] / params[OMEGA[s]] > params[total]
        compared += 1
    assert compared == 200 and min(floors.values()) >= 10, floors  # each floor bit often


def test_exported_growth_and_death_equal_the_python_laws():
    net, back = grn.models.melanoma(), grn.load_sbml(grn.models.melanoma_sbml())
    rng = np.random.default_rng(3)
    for state in _states(rng, 50):
        x = jnp.asarray([state[s] for s in SPECIES])
        rules = back.rule_values(x, PARAMS | dict.fromkeys(INPUTS, 0.0), jnp.zeros((0,)))
        u = dict.fromkeys(INPUTS, 0.0)
        for name, law in (("grn_growth", net.growth), ("grn_death", net.death)):
            assert law is not None
            np.testing.assert_allclose(rules[name], law(state, PARAMS, u), rtol=1e-10, atol=0)


def _ode():
    return grn.ODE(method=diffrax.Tsit5(), rtol=1e-9, atol=1e-9, max_steps=200_000)


def test_ode_of_the_export_with_its_washout_event_equals_the_scheduled_model():
    """BRAFi 0.95 and NFKBi 0.8 from 0 h, washed out at 48 h: by a `grn.Schedule` in the
    Python model, by the SBML event ``washout`` in the export."""
    ts = jnp.asarray([0.0, 1.0, 6.0, 24.0, 48.0, 49.0, 60.0, 96.0])
    net = grn.models.melanoma()
    schedule = grn.Schedule(times=[0.0, 48.0], values={"BRAFi": [0.95, 0.0], "NFKBi": [0.8, 0.0]})
    want = grn.simulate(net, ts, solver=_ode(), schedule=schedule, equilibrate=0).ys[0]
    back = grn.load_sbml(grn.models.melanoma_sbml(washout_h=48.0))
    sol = grn.simulate(back, ts, solver=_ode(), params={"BRAFi": 0.95, "NFKBi": 0.8})
    got = np.stack([np.asarray(sol[s])[0] for s in SPECIES], axis=-1)  # its ODE system's species
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6, atol=1e-6)
    # the drug did act, and was washed out: pERK falls >= 90 % within an hour, then recovers
    e = np.asarray(want[:, SPECIES.index("E")])
    assert e[1] < 0.1 * e[0] and e[-1] > 0.5 * e[0], e


def test_cle_of_the_export_sees_the_washout():
    """The same CLE path (same key: the same noise per reaction) for the scheduled Python model
    and the SBML export whose event switches the drug off at 48 h."""
    ts = jnp.asarray([0.0, 24.0, 48.0, 50.0, 72.0])
    key = jax.random.key(5)
    solver = grn.CLE(dt=0.01)
    net = grn.models.melanoma()
    schedule = grn.Schedule(times=[0.0, 48.0], values={"BRAFi": [0.95, 0.0]})
    want = grn.simulate(
        net,
        ts,
        key=key,
        solver=solver,
        n_cells=4,
        params={"kM1": PARAMS["kM1"]},
        schedule=schedule,
        equilibrate=0,
    ).ys
    back = grn.load_sbml(grn.models.melanoma_sbml(washout_h=48.0))
    got = grn.simulate(back, ts, key=key, solver=solver, n_cells=4, params={"BRAFi": 0.95}).ys
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    e = np.asarray(got[..., SPECIES.index("E")]).mean(axis=0)
    assert e[3] > 3 * e[2], e  # pERK recovers within 2 h of the washout


def test_washout_must_be_a_positive_time():
    with pytest.raises(ValueError, match="washout_h"):
        grn.models.melanoma_sbml(washout_h=-1.0)
