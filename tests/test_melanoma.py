"""The built-in melanoma model: structure, the Omega convention, its untreated state, the per-cell
parameters, and short runs with every solver (the behaviours are in
benchmarks/melanoma_behaviours.py; calibration is the rest of issue 5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn._simulate import TRACE_COUNT
from grn.models._melanoma import (
    INPUTS,
    KM1_LOG_SD,
    OMEGA,
    PARAMS,
    SPECIES,
    X0,
    melanoma,
    melanoma_cell_params,
)

MODULES = {
    "Omega_ERK": {"E"},
    "Omega_ROS": {"A", "R"},
    "Omega_NFkB": {"Nn", "Im", "I"},
    "Omega_slow": {"W1", "M", "S", "W2", "B", "Bc", "C"},
}
DRUG = grn.Schedule(times=[1.0], values={"BRAFi": [0.95]})  # BRAFi from t = 1 h
TS = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


@pytest.fixture(scope="module")
def net():
    return melanoma()


def test_structure(net):
    assert net.species == ("E", "A", "R", "Nn", "Im", "I", "W1", "M", "S", "W2", "B", "Bc", "C")
    assert net.inputs == ("BRAFi", "NFKBi", "NAC", "EPIi", "BH3i") == INPUTS
    assert net.n_reactions == 27
    assert net.growth is not None and net.death is not None
    for name, value in net.params.items():
        assert np.isfinite(value) and value >= 0, name
    assert {k: float(v) for k, v in net.params.items()} == PARAMS
    assert set(net.cell_params) == {"kM1"} and net.equilibrate_h == 20 * 24.0
    assert float(net.cell_params["kM1"].median) == PARAMS["kM1"]
    assert float(net.cell_params["kM1"].sigma) == KM1_LOG_SD
    assert net.params["Omega_ERK"] == 0.02 and net.params["Omega_NFkB"] == 0.125
    assert net.params["Omega_ROS"] == 0.25 and net.params["Omega_slow"] == 1.0
    # every species is in one module, and every reaction changes species of its own module only
    assert set(OMEGA) == set(SPECIES)
    assert {s for group in MODULES.values() for s in group} == set(SPECIES)
    nu = net.stoichiometry
    for j, reaction in enumerate(net.reactions):
        changed = {SPECIES[i] for i in np.flatnonzero(nu[j])}
        assert changed and changed <= MODULES[reaction.rate.omega], reaction.label
    i = {s: k for k, s in enumerate(SPECIES)}
    expected = {  # rows of MODEL.md (1-based): net change
        1: {"E": 1},
        2: {"E": -1},
        7: {"Nn": 1},
        11: {"I": 1},  # Im is a catalyst of translation
        15: {"M": 1},
        16: {"M": -1},
        25: {"B": -1, "Bc": -1, "C": 1},
        26: {"B": 1, "Bc": 1, "C": -1},
        27: {"C": -1},
    }
    for row, change in expected.items():
        vec = np.zeros(len(SPECIES), int)
        for s, d in change.items():
            vec[i[s]] = d
        np.testing.assert_array_equal(nu[row - 1], vec, err_msg=f"row {row}")


def _hill(x, K, n):
    return x**n / (K**n + x**n)


def _by_hand(n, p, u):
    """Propensities Omega * a(n / Omega) of rows 1, 7, 11, 12, 15, 19 from MODEL.md, in NumPy."""
    c = {s: n[s] / p[OMEGA[s]] for s in SPECIES}  # concentrations, unscaled units
    om = lambda s: p[OMEGA[s]]  # noqa: E731
    ikk = 0.01 + 0.99 * _hill(c["R"], 100.0, 4)
    return {
        1: om("E") * (10 * (1 - u["BRAFi"]) + _hill(c["W2"], p["KW2E"], 4)) * (1000 - c["E"]),
        7: om("Nn") * 42.8 * (1000 - c["Nn"]) * 20.2 / (20.2 + c["I"]),
        11: om("I") * 41.9 * c["Im"],
        12: om("I") * (0.3 + 3.74 * ikk * (1 - u["NFKBi"])) * c["I"],
        15: om("M")
        * (1 - 0.5 * u["EPIi"])
        * (p["kM1"] * _hill(c["Nn"], 200.0, 4) + p["kMfb"] * _hill(c["M"], p["KM"], 3))
        * (100 - c["M"]),
        19: om("W2")
        * p["kW2"]
        * (
            p["w0"]
            + _hill(c["Nn"], 200.0, 2) * c["W1"] / (p["K12"] + c["W1"])
            + p["cM"] * _hill(c["M"], p["KMW"], 2)
        ),
    }


@pytest.mark.parametrize("omegas", [{}, {"Omega_ERK": 0.3, "Omega_NFkB": 2.0, "Omega_slow": 0.5}])
def test_omega_convention(net, omegas):
    """Propensities are Omega * a(n / Omega), with Omega read from the parameters."""
    p = {**{k: float(v) for k, v in net.params.items()}, **omegas, "kM1": 0.09}
    n = dict(zip(SPECIES, [7.0, 250.0, 61.0, 42.0, 7.0, 95.0, 180.0, 41.0, 300.0, 260.0, 9.0,
                           200.0, 50.0]))  # fmt: skip
    u = {"BRAFi": 0.95, "NFKBi": 0.3, "NAC": 0.5, "EPIi": 0.2, "BH3i": 1.0}
    with jax.enable_x64(True):
        a = np.asarray(
            net.propensities(
                jnp.asarray([n[s] for s in SPECIES], jnp.float64),
                {k: jnp.asarray(v, jnp.float64) for k, v in p.items()},
                jnp.asarray([u[k] for k in INPUTS], jnp.float64),
            )
        )
    for row, value in _by_hand(n, p, u).items():
        np.testing.assert_allclose(a[row - 1], value, rtol=1e-12, err_msg=f"row {row}")
    # first-order decay is Omega-free in counts: Omega * k * (n / Omega) = k n
    np.testing.assert_allclose(a[1], p["kEd"] * n["E"], rtol=1e-12)
    # growth and death are per-cell rates over concentrations (not multiplied by Omega)
    with jax.enable_x64(True):
        fate = float(
            net.fate_rate(
                jnp.asarray([n[s] for s in SPECIES], jnp.float64),
                {k: jnp.asarray(v, jnp.float64) for k, v in p.items()},
                jnp.asarray([u[k] for k in INPUTS], jnp.float64),
            )
        )
    e = n["E"] / p["Omega_ERK"]
    b = n["B"] / p["Omega_slow"]
    assert fate == pytest.approx(0.03 * _hill(e, 200.0, 2) - 0.05 * _hill(b, 20.0, 2), rel=1e-12)


def test_default_x0_is_the_untreated_ensemble_steady_state(net):
    """The plain call (each cell with its own kM1, pre-equilibrated from x0 for the network's 20
    days): a 256-cell CLE ensemble, untreated, stays at x0 (mean over 50-150 h)."""
    assert dict(zip(SPECIES, net.x0.tolist())) == {k: float(v) for k, v in X0.items()}
    assert np.all(net.x0 == np.round(net.x0))
    n = 256
    ts = jnp.linspace(0.0, 150.0, 16)
    sol = grn.simulate(net, ts, key=jax.random.key(11), solver=grn.CLE(dt=0.01), n_cells=n)
    ys = np.asarray(sol.ys)[:, np.asarray(ts) >= 50.0, :]
    per_cell = ys.mean(axis=1)
    mean, se = per_cell.mean(axis=0), per_cell.std(axis=0, ddof=1) / np.sqrt(n)
    x0 = net.x0
    # rounding to integers alone moves low counts by up to 0.5 copies
    bad = np.abs(mean - x0) > 0.1 * x0 + 1.0 + 3.0 * se
    assert not bad.any(), dict(
        zip(np.array(SPECIES)[bad], zip(mean[bad].round(2), x0[bad], se[bad].round(2)))
    )


def test_cell_params_statistics():
    n = 20_000
    out = melanoma_cell_params(jax.random.key(3), n)
    assert set(out) == {"kM1"} and out["kM1"].shape == (n,)
    log_k = np.log(np.asarray(out["kM1"], np.float64))
    sd = KM1_LOG_SD
    assert abs(log_k.mean() - np.log(PARAMS["kM1"])) < 4 * sd / np.sqrt(n)
    assert abs(log_k.std(ddof=1) - sd) < 4 * sd / np.sqrt(2 * (n - 1))
    again = melanoma_cell_params(jax.random.key(3), n)
    np.testing.assert_array_equal(out["kM1"], again["kM1"])
    other = melanoma_cell_params(jax.random.key(4), n, kM1=0.2, log_sd=0.0)
    np.testing.assert_allclose(other["kM1"], 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="n_cells"):
        melanoma_cell_params(jax.random.key(0), 0)


@pytest.mark.parametrize(
    ("solver", "n_cells"),
    [(grn.SSA(), 4), (grn.TauLeap(epsilon=0.03), 8), (grn.CLE(dt=0.01), 16)],
    ids=["SSA", "TauLeap", "CLE"],
)
def test_stochastic_solvers_under_braf_inhibition(net, solver, n_cells):
    params = melanoma_cell_params(jax.random.key(5), n_cells)
    short = dict(params=params, schedule=DRUG, equilibrate=0.0)  # 6 h from x0
    sol = grn.simulate(net, TS, key=jax.random.key(0), solver=solver, **short)
    assert sol.ys.shape == (n_cells, len(TS), len(SPECIES))
    assert np.all(np.asarray(sol.result) == grn.RESULTS.successful)
    assert np.all(np.isfinite(sol.ys)) and np.all(np.isfinite(sol.log_weight))
    # pERK falls on drug: E ~ 10 -> ~1.7 copies within the hour, nearly Poisson (var ~ mean), so
    # even 4 cells' mean stays below half of x0 by > 4 standard errors (1.7 + 4 sqrt(1.7 / 4) < 5)
    e = np.asarray(sol["E"], np.float64)
    assert e[:, -1].mean() < 0.5 * e[:, 0].mean()
    # a freshly built network of the same structure reuses the compiled program
    before = TRACE_COUNT["ensemble"]
    grn.simulate(melanoma(), TS, key=jax.random.key(1), solver=solver, **short)
    assert TRACE_COUNT["ensemble"] == before


def test_ode_braf_inhibition_time_scales(net):
    """The ODE (default method) under BRAFi from t = 1 h: MODEL.md's fast time scales.

    pERK falls by >= 90 % within 1 h (MODEL.md; docs/model.md §pERK), and ROS rises. The run
    starts from the median cell's untreated state (the network's pre-equilibration).
    """
    ts = jnp.array([0.0, 1.0, 2.0, 7.0, 13.0, 25.0, 49.0])
    sol = grn.simulate(net, ts, solver=grn.ODE(rtol=1e-4, atol=1e-4), schedule=DRUG)
    assert int(sol.result[0]) == grn.RESULTS.successful
    e = np.asarray(sol["E"][0])
    assert e[1] == pytest.approx(X0["E"], rel=0.15)  # untreated until t = 1 h
    assert 1.0 - e[2] / e[1] >= 0.9  # 1 h on drug
    assert abs(e[2] - e[3]) < 0.05 * e[2]  # already at its new level
    r = np.asarray(sol["R"][0])
    assert 1.5 <= r[-1] / r[0] <= 3.0  # ROS fold change at 48 h on drug
    assert np.all(np.isfinite(sol.ys)) and np.isfinite(sol.log_weight).all()


def test_lna_under_braf_inhibition(net):
    """LNA mean and covariance stay finite (default method)."""
    solver = grn.LNA(rtol=1e-4, atol=1e-4)
    sol = grn.simulate(net, TS[:4], solver=solver, schedule=DRUG, equilibrate=0.0)
    assert int(sol.result[0]) == grn.RESULTS.successful
    assert np.all(np.isfinite(sol.ys)) and np.all(np.isfinite(sol.cov))
    var = np.diagonal(np.asarray(sol.cov[-1]), axis1=-2, axis2=-1)
    assert np.all(var >= 0) and var.sum() > 0
