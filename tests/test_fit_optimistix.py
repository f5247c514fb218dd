"""fitting.fit with optimistix solvers: LM and BFGS reach the optimum Adam approaches, resume."""

from __future__ import annotations

import jax
import numpy as np
import optimistix as optx
import pytest
from test_fitting_fit import SIGMA, TRANSIENT, make_problem

import fitting
import grn
from fitting import _fit

SOLVERS = {
    "lm": optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10),
    "bfgs": optx.BFGS(rtol=1e-10, atol=1e-10),
}


def ode_problem():
    """`make_problem`'s data and space with the ODE (the same means as the LNA; cheaper)."""
    problem, y = make_problem(TRANSIENT)
    rows = [
        dict(
            observableId="X_obs",
            simulationConditionId="c",
            time=t,
            measurement=v,
            noiseParameters=SIGMA,
        )
        for t, v in zip(TRANSIENT, y)
    ]
    measurements = fitting.Measurements.from_rows(rows)
    network = grn.models.immigration_death()
    return fitting.Problem(network, measurements, {"X_obs": "X"}, problem.space, solver=grn.ODE())


@pytest.mark.parametrize("method", list(SOLVERS))
def test_optimistix_fit_reaches_the_optimum(method, tmp_path):
    """Immigration-death means (ODE), two log-scale parameters: every start of LM/BFGS stops,
    at the optimum (zero gradient, a loss no higher than a long Adam run's) or against a bound
    (start 3 runs into mu -> its lower bound, where mean ~ alpha t fits a line); checkpoint +
    resume gives the uninterrupted run with the same compiled step."""
    with jax.enable_x64(True):
        problem = ode_problem()
        solver = SOLVERS[method]
        key = jax.random.key(0)
        res = fitting.fit(problem, key=key, n_starts=4, steps=200, optimizer=solver, progress=False)
        adam = fitting.fit(
            problem,
            key=key,
            n_starts=4,
            steps=600,
            optimizer=fitting.default_optimizer(0.1),
            progress=False,
        )
        grad = jax.grad(problem.loss)({n: np.float64(v) for n, v in res.best_phi.items()})
        assert np.all(res.converged), res.start_loss
        assert res.n_steps < 200
        assert res.loss <= adam.loss + 1e-9
        # stationary: with curvatures of O(10-1000) here a gradient of 1e-3 in log coordinates
        # leaves the loss within ~1e-7 of its minimum (BFGS stops at ~1e-4, LM far below)
        assert max(abs(float(g)) for g in grad.values()) < 1e-3
        at_optimum = res.start_loss - res.loss < 1e-6
        space = problem.space
        at_bound = np.zeros_like(at_optimum)
        for i, name in enumerate(space.free):
            v = res.start_params[name]
            at_bound |= np.isclose(v, space.lower[i], rtol=1e-6)
            at_bound |= np.isclose(v, space.upper[i], rtol=1e-6)
        assert at_optimum.sum() >= 3 and np.all(at_optimum | at_bound), res.start_params

        ckpt = tmp_path / "fit.npz"
        kwargs = dict(key=key, n_starts=4, optimizer=solver, progress=False)
        fitting.fit(problem, steps=5, checkpoint=ckpt, checkpoint_every=2, **kwargs)
        traces = _fit.TRACE_COUNT["step"]
        resumed = fitting.fit(problem, steps=12, checkpoint=ckpt, resume=True, **kwargs)
        assert _fit.TRACE_COUNT["step"] == traces  # the same compiled step
        straight = fitting.fit(problem, steps=12, **kwargs)
        np.testing.assert_array_equal(resumed.start_loss, straight.start_loss)
        np.testing.assert_array_equal(resumed.history, straight.history)


def test_optimistix_rejects_held_coordinates():
    problem = ode_problem()
    with pytest.raises(ValueError, match="fixed= .* needs an optax optimizer"):
        fitting.fit(
            problem,
            key=jax.random.key(0),
            optimizer=SOLVERS["lm"],
            fixed={"mu": True},
            progress=False,
        )


def test_fit_rejects_other_optimizers():
    problem = ode_problem()
    with pytest.raises(TypeError, match="optimizer must be an optax"):
        fitting.fit(problem, key=jax.random.key(0), optimizer=object(), progress=False)
