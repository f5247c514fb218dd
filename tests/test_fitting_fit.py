"""fitting.fit, resume, recompilation and uncertainty on immigration-death with the LNA.

Every problem here has one condition and ten time points, so all fits share one compiled step
(four starts) and all profiles another; data sets differ only in values.
"""

from __future__ import annotations

import diffrax
import jax
import numpy as np
import pytest

import fitting
import grn
from fitting import _fit

ALPHA, MU, SIGMA = 10.0, 1.0, 0.5
TRANSIENT = np.linspace(0.5, 5.0, 10)
STEADY = np.linspace(200.0, 400.0, 10)  # exp(-mu t) < 1e-8 down to mu / 10


def solver():
    return grn.LNA(method=diffrax.Tsit5())


def mean(t, alpha=ALPHA, mu=MU):
    return alpha / mu * (1.0 - np.exp(-mu * t))


def make_problem(times, seed=0, noise=True):
    """Means of X(t) from X(0) = 0 (exact: alpha/mu (1 - exp(-mu t))) plus N(0, SIGMA^2) noise."""
    rng = np.random.default_rng(seed)
    y = mean(times) + (SIGMA * rng.normal(size=times.size) if noise else 0.0)
    rows = [
        dict(
            observableId="X_obs",
            simulationConditionId="c",
            time=t,
            measurement=v,
            noiseParameters=SIGMA,
        )
        for t, v in zip(times, y)
    ]
    space = fitting.ParameterSpace(
        {
            "alpha": fitting.Parameter(3.0, 0.1, 1000.0, "log"),
            "mu": fitting.Parameter(0.3, 0.001, 100.0, "log"),
        }
    )
    measurements = fitting.Measurements.from_rows(rows)
    problem = fitting.Problem(
        grn.models.immigration_death(), measurements, {"X_obs": "X"}, space, solver=solver()
    )
    return problem, y


OPT = fitting.default_optimizer(0.1)


@pytest.fixture(scope="module")
def transient():
    problem, y = make_problem(TRANSIENT)
    result = fitting.fit(problem, key=jax.random.key(1), n_starts=4, steps=300, optimizer=OPT)
    return problem, y, result


def test_fit_recovers_truth_and_hessian_is_exact(transient):
    """The fit lands within 4 standard errors of the truth, and the finite-difference Hessian
    of the loss matches the analytic Hessian of the Gaussian NLL in (ln alpha, ln mu)."""
    problem, y, result = transient
    se = fitting.standard_errors(problem, result)
    assert all(se.identifiable.values())
    for name, truth in (("alpha", ALPHA), ("mu", MU)):
        z = (result.params[name] - truth) / se.stderr[name]
        assert abs(z) < 4, (name, result.params[name], se.stderr[name])
    # analytic Hessian at the fitted values, float64
    a, m, t = result.params["alpha"], result.params["mu"], TRANSIENT
    f = mean(t, a, m)
    e = a * t * np.exp(-m * t)
    d_a, d_m = f, -f + e  # d f / d ln alpha, d f / d ln mu
    d_mm = -d_m - m * t * e  # d^2 f / d ln mu^2 (d^2 f / d ln alpha^2 = f, mixed = d_m)
    r = (y - f) / SIGMA**2
    h_aa = np.sum(d_a * d_a) / SIGMA**2 - np.sum(r * f)
    h_am = np.sum(d_a * d_m) / SIGMA**2 - np.sum(r * d_m)
    h_mm = np.sum(d_m * d_m) / SIGMA**2 - np.sum(r * d_mm)
    H = np.array([[h_aa, h_am], [h_am, h_mm]])
    np.testing.assert_allclose(se.hessian, H, rtol=2e-3, atol=2e-3 * np.abs(H).max())
    cov = np.linalg.inv(H)
    np.testing.assert_allclose(
        [se.stderr_phi["alpha"], se.stderr_phi["mu"]], np.sqrt(np.diag(cov)), rtol=2e-3
    )
    assert result.history.shape == (300, 4)
    assert result.loss == pytest.approx(float(np.min(result.history)))


def test_resume_reproduces_an_uninterrupted_run(transient, tmp_path):
    problem = transient[0]
    kwargs = dict(key=jax.random.key(7), n_starts=4, steps=40, optimizer=OPT, progress=False)
    full = fitting.fit(problem, **kwargs)

    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 24:
            raise Killed

    path = tmp_path / "ckpt.npz"
    with pytest.raises(Killed):
        fitting.fit(problem, checkpoint=path, checkpoint_every=10, callback=kill, **kwargs)
    resumed = fitting.fit(problem, checkpoint=path, checkpoint_every=10, resume=True, **kwargs)
    np.testing.assert_array_equal(resumed.history, full.history)
    np.testing.assert_array_equal(resumed.start_loss, full.start_loss)
    for name in full.params:
        np.testing.assert_array_equal(resumed.start_params[name], full.start_params[name])
    with pytest.raises(ValueError, match="another number of starts"):
        fitting.fit(problem, **{**kwargs, "n_starts": 3}, checkpoint=path, resume=True)


def test_no_recompilation_and_early_stopping(transient):
    """New data values, starts and stopping rules reuse the one compiled step."""
    problem = transient[0]
    fitting.fit(problem, key=jax.random.key(0), n_starts=4, steps=2, optimizer=OPT, progress=False)
    traces = _fit.TRACE_COUNT["step"]
    other, _ = make_problem(TRANSIENT * 1.1, seed=5)
    starts = {"alpha": [1.0, 2.0, 30.0, 9.0], "mu": [0.5, 0.2, 2.0, 1.5]}
    stopped = fitting.fit(
        other, starts=starts, steps=400, optimizer=OPT, patience=10, rtol=1e-3, progress=False
    )
    assert _fit.TRACE_COUNT["step"] == traces
    assert stopped.converged.all() and stopped.n_steps < 400
    assert stopped.start_params["alpha"].shape == (4,)


def test_loss_gradient_against_float64_finite_differences():
    with jax.enable_x64(True):
        problem, _ = make_problem(TRANSIENT[:4], noise=True)
        tight = grn.LNA(method=diffrax.Tsit5(), rtol=1e-12, atol=1e-12)
        problem = fitting.Problem(
            problem.network,
            fitting.Measurements.from_rows(
                [
                    dict(
                        observableId="X_obs",
                        simulationConditionId="c",
                        time=t,
                        measurement=mean(t) + 0.3,
                        noiseParameters=SIGMA,
                    )
                    for t in TRANSIENT[:4]
                ]
            ),
            {"X_obs": fitting.Observable("X", scale="s")},
            fitting.ParameterSpace(
                {
                    "alpha": fitting.Parameter(5.0, 0.1, 100.0),
                    "mu": fitting.Parameter(0.7, 0.01, 10.0),
                    "s": fitting.Parameter(1.2, -5.0, 5.0, "linear"),
                }
            ),
            solver=tight,
        )
        phi = problem.space.initial_phi()
        grad = jax.grad(problem.loss)(phi)
        h = 1e-6
        for name in phi:
            up = problem.loss({**phi, name: phi[name] + h})
            down = problem.loss({**phi, name: phi[name] - h})
            fd = float(up - down) / (2 * h)
            assert float(grad[name]) == pytest.approx(fd, rel=1e-6, abs=1e-7), name


def test_profile_flags_steady_state_only(transient):
    """Steady-state means identify only alpha / mu: both profiles stay flat on one side.
    A transient identifies both: each profile crosses the 95 % threshold on both sides."""
    problem, _, result = transient
    steady, _ = make_problem(STEADY)
    fit_ss = fitting.fit(steady, key=jax.random.key(1), n_starts=4, steps=300, optimizer=OPT)
    ratio = fit_ss.params["alpha"] / fit_ss.params["mu"]
    assert ratio == pytest.approx(ALPHA / MU, rel=0.05)
    flagged = fitting.profile_likelihood(steady, fit_ss, n_points=7, steps=200, optimizer=OPT)
    assert not flagged["alpha"].identifiable and not flagged["mu"].identifiable
    assert not any(fitting.standard_errors(steady, fit_ss).identifiable.values())
    ok = fitting.profile_likelihood(problem, result, n_points=7, steps=200, optimizer=OPT)
    for name, p in ok.items():
        assert p.identifiable, name
        assert p.lower < result.params[name] < p.upper


def test_to_json_marks_a_start_with_non_finite_loss_failed():
    result = fitting.FitResult(
        params={"k": 1.0},
        loss=2.0,
        best_start=1,
        start_params={"k": np.array([0.5, 1.0])},
        start_loss=np.array([np.inf, 2.0]),
        converged=np.array([True, True]),
        phi={"k": np.array([0.0, 0.0])},
        history=np.zeros((0, 2)),
        n_steps=0,
    )
    assert [s["status"] for s in result.to_json()["starts"]] == ["failed", "fitted"]


def test_guarded_step_fails_the_starts_whose_step_raises():
    """A step that raises while start 0 or start 1 takes part (their derivatives raise): the
    bisection finds both; copies standing in for failed starts are done (skipped where starts
    run in sequence), and the sound starts take their step."""
    import equinox as eqx
    import jax.numpy as jnp

    n = 4
    state = _fit._State(
        phi={"a": jnp.arange(n, dtype=float)},
        opt_state=(),
        best_phi={"a": jnp.arange(n, dtype=float)},
        best_loss=jnp.full(n, jnp.inf),
        stall=jnp.zeros(n, jnp.int32),
        done=jnp.zeros(n, bool),
        failed=jnp.zeros(n, bool),
    )
    calls = []

    def step_fn(s):
        active = np.asarray(~s.done)
        a = np.asarray(s.phi["a"])
        calls.append(a[active].tolist())
        if np.any(active & (a < 2)):
            raise eqx.EquinoxRuntimeError("derivative raised")
        new = eqx.tree_at(lambda t: t.phi, s, {"a": s.phi["a"] + 10})
        return new, s.phi["a"]

    new, loss = _fit._guarded_step(step_fn, state)
    assert np.asarray(new.failed).tolist() == [True, True, False, False]
    assert np.asarray(new.done).tolist() == [True, True, False, False]
    assert np.asarray(new.phi["a"]).tolist() == [0.0, 1.0, 12.0, 13.0]
    assert loss.tolist() == [np.inf, np.inf, 2.0, 3.0]
    # the full step, the bisection of {0, 1, 2, 3}, the step without 0 and 1
    assert calls == [[0, 1, 2, 3], [0, 1], [0], [1], [2, 3], [2, 3]]
