"""Extrinsic heterogeneity declared in the network (`grn.LogNormal`) and pre-equilibration."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fitting
import grn
from grn import _distributions
from grn._simulate import TRACE_COUNT

MEDIAN, SIGMA, MU = 10.0, 0.5, 1.0


def _net(median=MEDIAN, sigma=SIGMA, **kwargs):
    """Immigration-death (``0 -> X`` alpha, ``X -> 0`` mu) with a log-normal alpha per cell: each
    cell's X relaxes to Poisson(alpha_c / mu) within a few hours."""
    return grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", grn.mass_action("alpha")),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"alpha": MEDIAN, "mu": MU},
        cell_params={"alpha": grn.LogNormal(median=median, sigma=sigma)},
        **kwargs,
    )


def _ode_alpha(net, **kwargs):
    """Each cell's alpha, read off its ODE steady state X = alpha / mu after 30 h."""
    sol = grn.simulate(net, jnp.array([0.0, 30.0]), solver=grn.ODE(), **kwargs)
    return np.asarray(sol["X"][:, -1], np.float64) * MU


def test_lognormal_sample_median_and_log_sd():
    n = 20_000
    dist = grn.LogNormal(median=0.04, sigma=0.4)
    log_v = np.log(np.asarray(dist.sample(jax.random.key(0), n), np.float64))
    assert abs(log_v.mean() - np.log(0.04)) < 4 * 0.4 / np.sqrt(n)
    assert abs(log_v.std(ddof=1) - 0.4) < 4 * 0.4 / np.sqrt(2 * (n - 1))
    other = np.asarray(dist.sample(jax.random.key(1), n))
    assert not np.array_equal(other, np.exp(log_v))


def test_stratified_draws_are_the_quantiles():
    """Stratified: the n quantiles at (c + 1/2)/n, as `fitting.lognormal_factors` (which calls the
    same grn function): sorted, symmetric in log about the median, no key needed."""
    n = 101
    dist = grn.LogNormal(median=2.0, sigma=0.3)
    v = np.asarray(dist.sample(None, n, stratified=True), np.float64)
    assert np.all(np.diff(v) > 0)
    assert v[n // 2] == pytest.approx(2.0, rel=1e-6)  # the middle quantile is the median
    np.testing.assert_allclose(np.log(v) + np.log(v[::-1]), 2 * np.log(2.0), atol=1e-5)
    np.testing.assert_allclose(v, 2.0 * fitting.lognormal_factors(n, 0.3), rtol=1e-6)
    from scipy.stats import norm

    np.testing.assert_allclose(
        _distributions.stratified_normal(n), norm.ppf((np.arange(n) + 0.5) / n), atol=1e-9
    )


def test_simulate_draws_each_cell_from_its_key():
    n = 400
    net = _net()
    alpha = _ode_alpha(net, n_cells=n, key=jax.random.key(3))
    log_a = np.log(alpha)
    assert abs(log_a.mean() - np.log(MEDIAN)) < 4 * SIGMA / np.sqrt(n)
    assert abs(log_a.std(ddof=1) - SIGMA) < 4 * SIGMA / np.sqrt(2 * (n - 1))
    np.testing.assert_allclose(_ode_alpha(net, n_cells=n, key=jax.random.key(3)), alpha)
    assert not np.allclose(_ode_alpha(net, n_cells=n, key=jax.random.key(4)), alpha)
    # a deterministic solver without n_cells: one trajectory, at the median
    np.testing.assert_allclose(_ode_alpha(net), [MEDIAN], rtol=1e-4)


def test_draws_never_reuse_the_cells_keys():
    """The SSA with the declared distribution equals the SSA given the same values explicitly:
    the cells keep their own keys ``split(key, n)``, the draws come from another stream."""
    n, key = 32, jax.random.key(7)
    net = _net()
    drawn = _distributions.draw(
        net.cell_params, jax.random.fold_in(jax.random.fold_in(key, 2**32 - 1), 0), n
    )
    ts = jnp.array([0.0, 1.0, 2.0])
    a = grn.simulate(net, ts, key=key, n_cells=n)
    b = grn.simulate(net, ts, key=key, params=drawn)
    np.testing.assert_array_equal(a.ys, b.ys)
    cell_keys = jax.random.key_data(jax.random.split(key, n))
    draw_key = jax.random.key_data(jax.random.fold_in(key, 2**32 - 1))
    assert not np.any(np.all(cell_keys == draw_key, axis=-1))


def test_explicit_params_win():
    n = 6
    net = _net()
    given = np.linspace(1.0, 6.0, n)
    np.testing.assert_allclose(_ode_alpha(net, params={"alpha": given}), given, rtol=1e-4)
    # a shared value: no spread left, so a deterministic solver gives one trajectory
    np.testing.assert_allclose(_ode_alpha(net, n_cells=n, params={"alpha": 3.0}), [3.0], rtol=1e-4)
    # a distribution passed in params replaces the declared one
    moved = _ode_alpha(
        net, n_cells=n, key=jax.random.key(1), params={"alpha": grn.LogNormal(40.0, SIGMA)}
    )
    base = _ode_alpha(net, n_cells=n, key=jax.random.key(1))
    np.testing.assert_allclose(moved, 4.0 * base, rtol=1e-4)


def test_bad_input_named_errors():
    with pytest.raises(ValueError, match="'alpha'.*median"):
        _net(median=-1.0)
    with pytest.raises(ValueError, match="'alpha'.*sigma"):
        _net(sigma=0.0)
    with pytest.raises(ValueError, match="unknown parameter 'kX'"):
        grn.Network(
            species=["X"],
            reactions=[grn.Reaction("-> X", grn.mass_action("alpha"))],
            params={"alpha": 1.0},
            cell_params={"kX": grn.LogNormal(1.0, 0.1)},
        )
    with pytest.raises(ValueError, match="'alpha'.*differs"):
        grn.Network(
            species=["X"],
            reactions=[grn.Reaction("-> X", grn.mass_action("alpha"))],
            params={"alpha": 2.0},
            cell_params={"alpha": grn.LogNormal(1.0, 0.1)},
        )
    with pytest.raises(TypeError, match="'alpha'.*grn.Distribution"):
        grn.Network(
            species=["X"],
            reactions=[grn.Reaction("-> X", grn.mass_action("alpha"))],
            params={"alpha": 1.0},
            cell_params={"alpha": 3.0},
        )
    net = _net()
    message = "n_cells=8 but per-cell values have 5 entries: per-cell parameter 'alpha'"
    with pytest.raises(ValueError, match=message):
        grn.simulate(net, jnp.array([0.0, 1.0]), key=jax.random.key(0), n_cells=8,
                     params={"alpha": np.ones(5)})  # fmt: skip
    with pytest.raises(ValueError, match="'alpha'.*median"):
        grn.simulate(net, jnp.array([0.0, 1.0]), key=jax.random.key(0), n_cells=8,
                     params={"alpha": grn.LogNormal(0.0, 0.2)})  # fmt: skip
    with pytest.raises(ValueError, match="equilibrate"):
        grn.simulate(net, jnp.array([0.0, 1.0]), key=jax.random.key(0), equilibrate=-1.0)


@pytest.mark.parametrize("solver", [grn.SSA(), grn.CLE(dt=0.01)], ids=["SSA", "CLE"])
def test_new_median_does_not_recompile(solver):
    ts, key = jnp.array([0.0, 10.0]), jax.random.key(2)
    net = _net()
    grn.simulate(net, ts, key=key, solver=solver, n_cells=64)
    before = TRACE_COUNT["ensemble"]
    moved = eqx.tree_at(lambda n: n.cell_params["alpha"].median, net, np.asarray(40.0))
    sol = grn.simulate(moved, ts, key=key, solver=solver, n_cells=64)
    sol2 = grn.simulate(
        net, ts, key=key, solver=solver, n_cells=64, params={"alpha": grn.LogNormal(40.0, 0.1)}
    )
    assert TRACE_COUNT["ensemble"] == before
    # the new median was used: the mean count at 10 h is ~ the mean alpha (> 30, not ~11)
    assert float(jnp.mean(sol["X"][:, -1])) > 30 and float(jnp.mean(sol2["X"][:, -1])) > 30


def test_equilibrate_relaxes_to_the_poisson_steady_state():
    """Immigration-death from X = 0 (alpha 10, mu 1): after 20 h untreated each cell is
    Poisson(10) at ts[0] (mean within 4 SE, variance within 4 SE of 10); without it X = 0."""
    net = grn.models.immigration_death()
    net = eqx.tree_at(lambda n: (n.params["alpha"], n.params["mu"]), net, (10.0, 1.0))
    n, ts = 2000, jnp.array([5.0, 6.0])
    sol = grn.simulate(net, ts, key=jax.random.key(0), n_cells=n, equilibrate=20.0)
    x = np.asarray(sol["X"][:, 0], np.float64)
    assert abs(x.mean() - 10.0) < 4 * np.sqrt(10.0 / n)
    assert abs(x.var(ddof=1) - 10.0) < 4 * 10.0 * np.sqrt(2.0 / (n - 1))
    assert np.all(np.asarray(sol.log_weight[:, 0]) == 0)
    assert np.all(np.asarray(sol.n_events) > 0)
    cold = grn.simulate(net, ts, key=jax.random.key(0), n_cells=n)
    assert np.all(np.asarray(cold["X"][:, 0]) == 0)
    # the ODE too: X(ts[0]) = 10 (1 - e^-20)
    ode = grn.simulate(net, ts, solver=grn.ODE(), equilibrate=20.0)
    assert float(ode["X"][0, 0]) == pytest.approx(10.0, rel=1e-4)


def test_network_default_equilibration():
    """``equilibrate_h`` applies from the network's own x0; a given x0 starts there unless
    ``equilibrate=`` is passed; chunked runs give the same cells."""
    net = _net(equilibrate_h=20.0)
    ts, key, n = jnp.array([0.0, 1.0]), jax.random.key(5), 40
    sol = grn.simulate(net, ts, key=key, n_cells=n)
    assert float(np.mean(sol["X"][:, 0])) > 5.0  # relaxed from x0 = 0 to ~alpha_c
    given = grn.simulate(net, ts, key=key, n_cells=n, x0={"X": 0})
    assert np.all(np.asarray(given["X"][:, 0]) == 0)
    again = grn.simulate(net, ts, key=key, n_cells=n, x0={"X": 0}, equilibrate=20.0)
    np.testing.assert_array_equal(again.ys, sol.ys)
    shown = grn.simulate(net, ts, key=key, n_cells=n, batch_size=16, progress=True)
    np.testing.assert_array_equal(shown.ys, sol.ys)
    with pytest.raises(ValueError, match="equilibrate_h"):
        _net(equilibrate_h=float("nan"))


def test_cle_pre_run_sizes_its_own_loop():
    """A CLE already bound for a 2-h protocol (as fitting binds it once) still runs the 20-h
    pre-equilibration to its end: the same cells as the unbound solver, X near 10 at ts[0]."""
    net = grn.models.immigration_death()
    net = eqx.tree_at(lambda n: (n.params["alpha"], n.params["mu"]), net, (10.0, 1.0))
    ts, key, n = jnp.array([0.0, 2.0]), jax.random.key(1), 64
    bound = grn.CLE(dt=0.05).bind(net, np.asarray(ts), np.zeros(0))
    sol = grn.simulate(net, ts, key=key, solver=bound, n_cells=n, equilibrate=20.0)
    free = grn.simulate(net, ts, key=key, solver=grn.CLE(dt=0.05), n_cells=n, equilibrate=20.0)
    np.testing.assert_array_equal(sol.ys, free.ys)
    assert abs(float(np.mean(sol["X"][:, 0])) - 10.0) < 4 * np.sqrt(10.0 / n)


def test_sbml_export_writes_the_median_and_warns(tmp_path):
    net = _net(equilibrate_h=12.0)
    net = eqx.tree_at(lambda n: n.cell_params["alpha"].median, net, np.asarray(7.5))
    with pytest.warns(UserWarning, match=r"LogNormal spread of 'alpha'.*12-h pre-equilibration"):
        path = grn.save_sbml(net, tmp_path / "hetero.xml")
    back = grn.load_sbml(path)
    assert float(back.params["alpha"]) == 7.5 and back.cell_params == {}
