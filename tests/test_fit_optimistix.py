"""fitting.fit with optimistix solvers: LM and BFGS reach the optimum Adam approaches, resume."""

from __future__ import annotations

from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from test_fitting_fit import SIGMA, TRANSIENT, make_problem

import fitting
import grn
from fitting import _fit

# An ESDIRK method (diffrax's Newton iterations): the guards below are for its derivatives.
KVAERNO3 = grn.ODE(method=diffrax.Kvaerno3(), rtol=1e-6, atol=1e-8, max_steps=100_000)
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
        kwargs: dict[str, Any] = dict(key=key, n_starts=4, optimizer=solver, progress=False)
        fitting.fit(problem, steps=5, checkpoint=ckpt, checkpoint_every=2, **kwargs)
        traces = _fit.TRACE_COUNT["step"]
        resumed = fitting.fit(problem, steps=12, checkpoint=ckpt, resume=True, **kwargs)
        assert _fit.TRACE_COUNT["step"] == traces  # the same compiled step
        straight = fitting.fit(problem, steps=12, **kwargs)
        np.testing.assert_array_equal(resumed.start_loss, straight.start_loss)
        np.testing.assert_array_equal(resumed.history, straight.history)


def test_forward_mode_gradient_fits_an_ode_problem():
    """``gradient="forward"`` with an optax optimizer switches the ODE's (reverse-only)
    checkpointed adjoint to forward mode, and takes the same steps as reverse mode."""
    with jax.enable_x64(True):
        problem = ode_problem()
        kwargs: dict[str, Any] = dict(key=jax.random.key(0), n_starts=3, steps=20, progress=False)
        forward = fitting.fit(problem, gradient="forward", **kwargs)
        reverse = fitting.fit(problem, gradient="reverse", **kwargs)
    np.testing.assert_allclose(forward.history, reverse.history, rtol=1e-8)
    assert np.all(forward.history[-1] < forward.history[0])
    assert _fit.resolve_gradient(problem, "auto") == "forward"  # 2 free parameters


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
        fitting.fit(problem, key=jax.random.key(0), optimizer=object(), progress=False)  # pyright: ignore[reportArgumentType]


# X decays as dX/dt = -k X^1.5 from X0 = 10; the data are the exact solution for k = 0.1, noise
# sd 0.1. At k = 100 the implicit method's Newton iterations overshoot to X < 0 (X^1.5 is NaN
# there): the step is rejected and the simulation succeeds. Forward-mode derivatives go through
# (the vector field's tangents are zero where its value is NaN: grn._solvers._ode_events
# .DefinedField); Kvaerno3's reverse-mode derivative still meets the NaN and raises (a Rosenbrock
# method's does not: its rejected steps have zero derivative, tests/test_rosenbrock.py).
POWER_SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="power_decay">
    <listOfCompartments>
      <compartment id="cell" size="1" constant="true" spatialDimensions="3"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="cell" initialConcentration="10" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="k" value="0.1" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="decay" reversible="false" fast="false">
        <listOfReactants><speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> cell </ci><ci> k </ci>
            <apply><power/><ci> X </ci><cn> 1.5 </cn></apply></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def write_power_problem(folder):
    (folder / "model.xml").write_text(POWER_SBML)
    rows = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters"]
    rows += [f"obs_X\tc\t{t}\t{(10**-0.5 + 0.05 * t) ** -2!r}\t0.1" for t in (0.5, 1.0, 2.0)]
    (folder / "measurements.tsv").write_text("\n".join(rows) + "\n")
    (folder / "conditions.tsv").write_text("conditionId\tconditionName\nc\tc\n")
    (folder / "observables.tsv").write_text(
        "observableId\tobservableFormula\tnoiseFormula\nobs_X\tX\tnoiseParameter1_obs_X\n"
    )
    (folder / "parameters.tsv").write_text(
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
        "k\tlog10\t0.01\t100000\t0.1\t1\n"
    )
    (folder / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
        "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n"
    )
    return folder / "problem.yaml"


def test_a_start_whose_derivative_raises_fails_alone(tmp_path):
    """At k = 100 the simulation succeeds (finite llh) but Kvaerno3's reverse-mode derivative
    raises: that start is marked failed with an infinite loss, the other reaches the exact
    optimum."""
    with jax.enable_x64(True):
        problem = fitting.load_petab(write_power_problem(tmp_path), solver=KVAERNO3)
        assert np.isfinite(fitting.log_likelihood(problem, {"k": 100.0}))
        result = fitting.fit(
            problem,
            starts={"k": np.array([100.0, 0.3])},
            steps=100,
            optimizer=SOLVERS["bfgs"],
            gradient="reverse",
            progress=False,
        )
    assert result.failed is not None and result.failed.tolist() == [True, False]
    assert [s["status"] for s in result.to_json()["starts"]] == ["failed", "fitted"]
    assert np.isinf(result.start_loss[0]) and np.all(np.isinf(result.history[:, 0]))
    assert result.best_start == 1 and result.converged[1]
    assert result.params["k"] == pytest.approx(0.1, rel=1e-6)
    # exact data: the loss is the normal density's normalisation alone, -3 log N(0; 0, 0.1^2)
    assert result.loss == pytest.approx(1.5 * np.log(2 * np.pi * 0.01), abs=1e-6)


def test_forward_derivative_through_rejected_implicit_steps(tmp_path):
    """At k = 100 (rejected implicit steps meet NaN states) the forward-mode derivative is
    finite and is the derivative of the solution: central differences of the llh at tight
    tolerances (Kvaerno5, rtol 1e-10; error O(h^2) + O(rtol / h)); and LM (forward-mode
    Jacobians, Kvaerno3) from k = 100 reaches the optimum like the start at 0.3."""
    with jax.enable_x64(True):
        yaml = write_power_problem(tmp_path)
        tight = grn.ODE(method=diffrax.Kvaerno5(), rtol=1e-10, atol=1e-12)
        problem = _fit._forward_solver(fitting.load_petab(yaml, solver=tight))
        phi = jax.numpy.asarray(2.0)  # log10 k
        grad = float(jax.jacfwd(lambda p: problem.loss({"k": p}))(phi))
        h = 1e-4
        loss = [float(problem.loss({"k": phi + s * h})) for s in (1, -1)]
        assert np.isfinite(grad)
        assert grad == pytest.approx((loss[0] - loss[1]) / (2 * h), rel=1e-5)
        result = fitting.fit(
            fitting.load_petab(yaml, solver=KVAERNO3),
            starts={"k": np.array([100.0, 0.3])},
            steps=40,
            optimizer=SOLVERS["lm"],
            progress=False,
        )
    assert result.failed is not None and not result.failed.any()
    assert result.start_params["k"] == pytest.approx([0.1, 0.1], rel=1e-6)


@pytest.mark.parametrize("method", ["lm", "adam"])
def test_a_start_whose_simulation_fails_fails_at_once(tmp_path, method, monkeypatch):
    """With a budget of 60 solver steps the simulation fails for k >= 0.3 (infinite loss):
    the start at k = 1e4 has nothing to descend from and fails before the first step, found
    by its loss alone: no step ever takes its derivative (a copy of the other start stands in
    for it), and the start at 0.05 goes on."""
    stepped = []
    for name in ("_step", "_optx_step"):

        def recording(problem, opt, state, *args, _original=getattr(_fit, name)):
            stepped.append(np.asarray(state.phi["k"]))
            return _original(problem, opt, state, *args)

        monkeypatch.setattr(_fit, name, recording)
    solver = grn.ODE(method=diffrax.Kvaerno3(), rtol=1e-6, atol=1e-8, max_steps=60)
    with jax.enable_x64(True):
        problem = fitting.load_petab(write_power_problem(tmp_path), solver=solver)
        optimizer = SOLVERS["lm"] if method == "lm" else fitting.default_optimizer()
        result = fitting.fit(
            problem,
            starts={"k": np.array([1e4, 0.05])},
            steps=3,
            optimizer=optimizer,
            progress=False,
        )
    assert result.failed is not None and result.failed.tolist() == [True, False]
    assert result.converged[0] and np.all(np.isinf(result.history[:, 0]))
    assert np.all(np.isfinite(result.history[:, 1]))
    assert len(stepped) == 3 and all(k[0] == k[1] for k in stepped)
    assert result.history[-1, 1] < result.history[0, 1]


def test_an_adam_step_into_a_failing_region_is_halved_back(tmp_path):
    """From k = 0.05, Adam with learning rate 1 (log10 scale) steps to k = 0.5, where the
    simulation fails (60 solver steps: k >= 0.3): the start goes halfway back towards its best
    point (k = 0.158) and descends from there, instead of evaluating k = 0.5 at every step."""
    solver = grn.ODE(method=diffrax.Kvaerno3(), rtol=1e-6, atol=1e-8, max_steps=60)
    with jax.enable_x64(True):
        problem = fitting.load_petab(write_power_problem(tmp_path), solver=solver)
        result = fitting.fit(
            problem,
            starts={"k": np.array([0.05])},
            steps=30,
            optimizer=optax.adam(1.0),
            progress=False,
        )
    history = result.history[:, 0]
    assert np.isfinite(history[0]) and np.isinf(history[1]) and np.isfinite(history[2])
    assert result.failed is not None and not result.failed[0]
    assert result.loss < history[2] < history[0]


def test_reverse_mode_slope_for_optimistix():
    """`_jvp_by_grad`: the slope is the reverse-mode gradient times the tangent where the loss
    is finite (a NaN gradient stays NaN, never zeroed into a wrong direction), and zero where
    the loss is not finite (a failed simulation: no backward pass; the point is rejected)."""

    def loss(z):
        return jnp.where(z["a"] >= 0, jnp.sqrt(z["a"]) + z["b"] ** 2, jnp.inf)

    def nan_gradient(z):  # 0 * NaN through the branch not taken
        return jnp.where(z["a"] > 10, jnp.sqrt(z["a"] - 10), z["b"] ** 2)

    tangent = {"a": jnp.asarray(1.0), "b": jnp.asarray(2.0)}

    def jvp(fn, a):
        point = {"a": jnp.asarray(a), "b": jnp.asarray(3.0)}
        value, slope = jax.jvp(_fit._jvp_by_grad(fn), (point,), (tangent,))
        return float(value), float(slope)

    assert jvp(loss, 4.0) == (11.0, 0.25 + 12.0)
    assert jvp(loss, -1.0) == (np.inf, 0.0)
    value, slope = jvp(nan_gradient, 4.0)
    assert value == 9.0 and np.isnan(slope)
