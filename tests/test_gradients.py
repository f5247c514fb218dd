"""Gradient routes: pathwise through ODE/LNA (each diffrax adjoint) and CLE, score function for SSA.

Pathwise gradients are checked against float64 central finite differences (CLE with common
random numbers: the same key). tests/test_approximate.py already checks reverse-mode LNA and CLE
gradients on dimerisation (k1); here: ODE and LNA under every adjoint, including a schedule
level, and CLE on the nonlinear toggle switch. The SSA score-function estimator is checked per
cell against the analytic score and in expectation against the analytic derivative of the
immigration-death mean.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fitting
import grn


def _central_difference(fun, theta, h):
    """Jacobian of ``fun`` at ``theta`` (1-D) by central differences, one column per entry."""
    cols = []
    for i in range(theta.shape[0]):
        e = jnp.zeros_like(theta).at[i].set(h)
        cols.append((fun(theta + e) - fun(theta - e)) / (2 * h))
    return jnp.stack(cols, axis=-1)


def _immigration():
    """Immigration-death with the immigration rate scaled by an input ``I``."""
    return grn.Network(
        ["X"],
        [
            grn.Reaction("-> X", lambda x, p, u: p["alpha"] * u["I"], "immigration"),
            grn.Reaction("X ->", grn.mass_action("mu"), "death"),
        ],
        params={"alpha": 10.0, "mu": 1.0, "mu2": 2.0},
        x0={"X": 0},
        inputs=["I"],
    )


ADJOINTS = {
    "recursive_checkpoint": (diffrax.RecursiveCheckpointAdjoint(), jax.jacrev),
    "backsolve": (diffrax.BacksolveAdjoint(), jax.jacrev),
    "forward_mode": (diffrax.ForwardMode(), jax.jacfwd),
}


def _moments(make, adjoint, theta):
    """Mean and variance of X at 7 times in [0, 3] against (alpha, mu, input level after 1.3)."""
    solver = make(rtol=1e-10, atol=1e-10, method=diffrax.Tsit5(), adjoint=adjoint)
    schedule = grn.Schedule(jnp.array([0.0, 1.3]), {"I": jnp.stack([jnp.ones(()), theta[2]])})
    sol = grn.simulate(
        _immigration(),
        ts=jnp.linspace(0.0, 3.0, 7),
        solver=solver,
        params={"alpha": theta[0], "mu": theta[1]},
        schedule=schedule,
    )
    return jnp.concatenate([sol.mean[:, 0], sol.cov[:, 0, 0]])


def _check_jacobians(cases):
    """Each (solver class, adjoint names) against float64 central differences of the default."""
    with jax.enable_x64(True):
        theta = jnp.array([10.0, 1.0, 0.5])
        for make, adjoints in cases:
            default = diffrax.RecursiveCheckpointAdjoint()
            fd = _central_difference(lambda th, make=make: _moments(make, default, th), theta, 1e-5)
            for name in adjoints:
                adjoint, jac = ADJOINTS[name]
                got = jac(lambda th, make=make, adjoint=adjoint: _moments(make, adjoint, th))(theta)
                assert np.all(np.isfinite(got)) and np.abs(got).max() > 1.0
                np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6, err_msg=name)


def test_ode_jacobian_matches_finite_differences():
    """d(mean)(ts) / d(alpha, mu, input level) through a schedule breakpoint, default adjoint.
    ~40 s on 2 idle cores (two float64 compiles)."""
    _check_jacobians([(grn.ODE, ["recursive_checkpoint"])])


@pytest.mark.slow
def test_ode_and_lna_jacobians_match_finite_differences_for_every_adjoint():
    """The ODE under each diffrax adjoint and the LNA (whose default adjoint
    test_approximate.py checks) under BacksolveAdjoint agree with central differences.
    Six float64 compiles: several minutes on 2 cores."""
    _check_jacobians(
        [(grn.ODE, ["recursive_checkpoint", "backsolve", "forward_mode"]), (grn.LNA, ["backsolve"])]
    )


def test_cle_gradient_matches_float64_finite_differences_on_toggle_switch():
    """Reverse mode through the CLE with a fixed key (common random numbers), Hill rate laws."""
    net = grn.models.toggle_switch()
    ts = jnp.linspace(0.0, 2.0, 5)
    with jax.enable_x64(True):

        def out(theta):
            sol = grn.simulate(
                net,
                ts=ts,
                key=jax.random.key(7),
                solver=grn.CLE(dt=0.02),
                n_cells=32,
                params={"a": theta[0], "K": theta[1], "d": theta[2]},
                x0={"U": 10, "V": 0},
            )
            return jnp.concatenate([sol.mean[-1], jnp.diagonal(sol.cov[-1])])

        theta = jnp.array([50.0, 20.0, 1.0])
        got = jax.jacrev(out)(theta)
        fd = _central_difference(out, theta, 1e-6)
        assert np.all(np.isfinite(got)) and np.abs(got).max() > 0.1
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-6)


# -- exact SSA: the path likelihood and the score-function estimator ---------------------------
def _event_network():
    net = _immigration()
    return grn.Network(
        net.species,
        net.reactions,
        params=net.params,
        x0={"X": 0},
        inputs=["I"],
        events=[grn.Event(at=1.7, assign={"mu": "mu2"})],
    )


def test_ssa_likelihood_off_leaves_results_bit_identical():
    """Switching the likelihood on does not change the sampled paths (same key)."""
    net = _event_network()
    schedule = grn.Schedule([0.0, 0.9], {"I": [1.0, 3.0]})
    ts = jnp.linspace(0.0, 3.0, 4)
    kwargs = dict(ts=ts, key=jax.random.key(11), n_cells=300, schedule=schedule)
    off = grn.simulate(net, solver=grn.SSA(), **kwargs)
    on = grn.simulate(net, solver=grn.SSA(likelihood=True), **kwargs)
    assert off.log_likelihood is None
    assert on.log_likelihood.shape == (300, 4)
    for name in ("ys", "log_weight", "n_events", "result"):
        np.testing.assert_array_equal(getattr(off, name), getattr(on, name), err_msg=name)


def test_ssa_score_is_the_analytic_path_score_through_breakpoints_and_events():
    """d log L / d alpha = N_births / alpha - int u dt per cell, exactly.

    Births rate alpha u(t) with u = 1 on [0, 0.9), 3 after (a breakpoint); a time event at 1.7
    replaces mu by mu2. N_births = (events + X(T)) / 2 from X(0) = 0. The log-likelihood itself
    at t = 0 is 0 and it is finite at every output time.
    """
    net = _event_network()
    schedule = grn.Schedule([0.0, 0.9], {"I": [1.0, 3.0]})
    ts = jnp.array([0.0, 1.0, 2.0, 2.5])
    alpha = 4.0

    def loglik(alpha):
        sol = grn.simulate(
            net,
            ts=ts,
            key=jax.random.key(5),
            solver=grn.SSA(likelihood=True),
            n_cells=200,
            params={"alpha": alpha},
            schedule=schedule,
        )
        return sol.log_likelihood, sol

    (ll, sol), (score, _) = jax.jvp(loglik, (alpha,), (1.0,))
    assert np.all(ll[:, 0] == 0) and np.all(np.isfinite(ll))
    births = (np.asarray(sol.n_events) + np.asarray(sol.ys[:, -1, 0])) / 2
    exposure = 1.0 * 0.9 + 3.0 * (2.5 - 0.9)
    expected = births / alpha - exposure
    assert np.std(expected) > 1.0  # cells differ: the check is per path
    np.testing.assert_allclose(score[:, -1], expected, rtol=1e-5, atol=1e-4)


def _x_of_t(sol):
    return sol["X"]


def test_score_function_grad_matches_immigration_death_within_4_standard_errors():
    """E[X(t)] = alpha/mu (1 - e^{-mu t}) from X(0) = 0, at 10^5 cells.

    dE/dalpha = (1 - e^{-mu t}) / mu and dE/dmu = -alpha/mu^2 (1 - e^{-mu t}) + alpha t e^{-mu t}
    / mu; the estimate must be within 4 standard errors, with standard errors below 2 % of the
    gradient (a loose estimator could not pass by a wide error bar). ~30 s on 2 loaded cores.
    """
    net = grn.models.immigration_death()
    ts = jnp.array([0.0, 0.5, 1.0, 2.0])
    a, mu, n = 10.0, 1.0, 100_000
    est = fitting.score_function_grad(
        net,
        ts,
        jax.random.key(2026),
        _x_of_t,
        n_cells=n,
        wrt=("alpha", "mu"),
        params={"alpha": a, "mu": mu},
        per_time=True,
    )
    t = np.asarray(ts)[1:]
    exact = {
        "alpha": (1 - np.exp(-mu * t)) / mu,
        "mu": -a / mu**2 * (1 - np.exp(-mu * t)) + a * t * np.exp(-mu * t) / mu,
    }
    for name, value in exact.items():
        grad, se = np.asarray(est.grad[name])[1:], np.asarray(est.stderr[name])[1:]
        assert est.grad[name][0] == 0  # X(0) does not depend on the parameters
        z = (grad - value) / se
        assert np.all(np.abs(z) < 4), (name, z)
        assert np.all(se < 0.02 * np.abs(value)), (name, se, value)
    z_mean = (np.asarray(est.value)[1:] - a / mu * (1 - np.exp(-mu * t))) / np.asarray(
        est.value_stderr
    )[1:]
    assert np.all(np.abs(z_mean) < 4), z_mean


def test_score_function_grad_compiles_once_and_validates_inputs():
    """New parameter values and keys reuse the compiled program (f is called only when tracing);
    bad input is rejected naming the culprit."""
    net = grn.models.immigration_death()
    ts = jnp.linspace(0.0, 1.0, 3)
    calls = []

    def final_x(sol):
        calls.append(1)
        return sol["X"][:, -1]

    for i, alpha in enumerate((2.0, 3.0, 5.0)):
        est = fitting.score_function_grad(
            net, ts, jax.random.key(i), final_x, n_cells=256, params={"alpha": alpha}
        )
        assert set(est.grad) == {"alpha", "mu"} and est.grad["alpha"].shape == ()
    assert len(calls) == 1

    ok = dict(n_cells=8)
    with pytest.raises(KeyError, match="'beta'"):
        fitting.score_function_grad(net, ts, jax.random.key(0), final_x, wrt=("beta",), **ok)
    with pytest.raises(ValueError, match="'alpha'"):
        fitting.score_function_grad(
            net, ts, jax.random.key(0), final_x, params={"alpha": -1.0}, **ok
        )
    with pytest.raises(TypeError, match="grn.SSA"):
        fitting.score_function_grad(
            net, ts, jax.random.key(0), final_x, solver=grn.CLE(dt=0.1), **ok
        )
    with pytest.raises(ValueError, match="baseline"):
        fitting.score_function_grad(net, ts, jax.random.key(0), final_x, baseline="mean", **ok)
    with pytest.raises(ValueError, match="n_cells"):
        fitting.score_function_grad(net, ts, jax.random.key(0), final_x, n_cells=1)
    with pytest.raises(ValueError, match="per_time"):
        fitting.score_function_grad(net, ts, jax.random.key(0), final_x, per_time=True, **ok)
