"""grn.Rodas4 and grn.Rodas5P: orders of the solution, its error estimate and dense output, a
stiff reference, derivatives."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn


def _field(t, y, args):
    """Nonlinear and non-autonomous (so the ``df/dt`` term counts)."""
    k = args
    return jnp.stack([-k * y[0] ** 2 + jnp.cos(t) * y[1], -y[1] + jnp.sin(3 * t)])


Y0 = np.array([1.0, 0.5])  # float64 inside jax.enable_x64


def _reference(t1, k=1.0):
    controller = diffrax.PIDController(rtol=1e-14, atol=1e-14)
    term = diffrax.ODETerm(_field)
    sol = diffrax.diffeqsolve(
        term, diffrax.Tsit5(), 0.0, t1, t1 / 100, Y0, args=k, stepsize_controller=controller
    )
    return sol.ys[-1]


METHODS = [(grn.Rodas4, 4, (20, 40, 80, 160)), (grn.Rodas5P, 5, (40, 80, 160))]
"""(method, order p, step counts): the step counts keep every error of the order test well
above float64 rounding and inside the asymptotic range of the error estimate."""


@pytest.mark.parametrize(("method", "p", "ns"), METHODS, ids=["Rodas4", "Rodas5P"])
def test_orders_of_the_solution_the_error_estimate_and_the_dense_output(method, p, ns):
    """Fixed steps h = T/n: the global error falls as h^p (log2 ratios p +- 0.15); one step's
    error as h^(p+1); the embedded estimate (order p - 1 companion) as h^p; the dense output at
    0.3 h (order p - 1) as h^p."""
    with jax.enable_x64(True):
        solver, term = method(), diffrax.ODETerm(_field)
        ref = _reference(2.0)
        glob, local, estimate, dense = [], [], [], []
        for n in ns:
            h = 2.0 / n
            sol = diffrax.diffeqsolve(term, solver, 0.0, 2.0, h, Y0, args=1.0, max_steps=1000)
            glob.append(float(jnp.max(jnp.abs(sol.ys[-1] - ref))))
            state = solver.init(term, 0.0, h, Y0, 1.0)
            y1, err, info, *_ = solver.step(term, 0.0, h, Y0, 1.0, state, False)
            local.append(float(jnp.max(jnp.abs(y1 - _reference(h)))))
            estimate.append(float(jnp.max(jnp.abs(err))))
            interpolation = solver.interpolation_cls(t0=0.0, t1=h, **info)
            inside = interpolation.evaluate(0.3 * h) - _reference(0.3 * h)
            dense.append(float(jnp.max(jnp.abs(inside))))
    for errors, order in ((glob, p), (local, p + 1), (estimate, p), (dense, p)):
        slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        assert np.all(np.abs(slopes - order) < 0.15), (order, slopes)


@pytest.mark.parametrize("method", [grn.Rodas4, grn.Rodas5P])
def test_robertson_matches_kvaerno5_at_tight_tolerances(method):
    """The stiff Robertson problem (Hairer & Wanner II, sec. IV.10) over 1e5 time units at
    rtol 1e-8, atol 1e-12: every species within 1e-6 relative of Kvaerno5 at rtol 1e-10, or
    1e-11 absolute (ten local atol over the ~550 steps: y2 is ~1e-6 to 1e-8)."""

    def robertson(t, y, args):
        a = 0.04 * y[0]
        b = 1e4 * y[1] * y[2]
        c = 3e7 * y[1] ** 2
        return jnp.stack([-a + b, a - b - c, c])

    with jax.enable_x64(True):
        ts = jnp.array([1.0, 10.0, 1e3, 1e5])  # float64: the times too

        def solve(method, rtol, atol):
            return diffrax.diffeqsolve(
                diffrax.ODETerm(robertson),
                method,
                0.0,
                1e5,
                1e-6,
                jnp.array([1.0, 0.0, 0.0]),
                saveat=diffrax.SaveAt(ts=ts),
                stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                max_steps=100_000,
            )

        ours = solve(method(), 1e-8, 1e-12)
        ref = solve(diffrax.Kvaerno5(), 1e-10, 1e-14)
    assert ours.result == diffrax.RESULTS.successful
    np.testing.assert_allclose(ours.ys, ref.ys, rtol=1e-6, atol=1e-11)


@pytest.mark.parametrize("method", [grn.Rodas4, grn.Rodas5P])
@pytest.mark.parametrize("adjoint", ["checkpoint", "forward"])
def test_derivative_matches_finite_differences(adjoint, method):
    """d (y(1) + y(2)) / dk through adaptive steps (rtol 1e-10; y(1) from the dense output),
    both adjoints, against central differences of the solution (h = 1e-5: truncation ~1e-10,
    solver error / h ~1e-5 of the slope)."""
    adj = diffrax.RecursiveCheckpointAdjoint() if adjoint == "checkpoint" else diffrax.ForwardMode()
    ts = np.array([0.0, 1.0, 2.0])

    def solve(k):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_field),
            method(),
            0.0,
            2.0,
            None,
            Y0,
            args=k,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
            adjoint=adj,
            max_steps=10_000,
        )
        return jnp.sum(sol.ys[1:])

    with jax.enable_x64(True):
        k = jnp.asarray(1.3)
        derivative = jax.jacrev(solve)(k) if adjoint == "checkpoint" else jax.jacfwd(solve)(k)
        h = 1e-5
        fd = (solve(k + h) - solve(k - h)) / (2 * h)
    assert np.isfinite(float(derivative))
    assert float(derivative) == pytest.approx(float(fd), rel=1e-5)


@pytest.mark.parametrize("method", [grn.Rodas4, grn.Rodas5P])
def test_a_step_of_length_zero_returns_its_start_with_finite_derivatives(method):
    """t0 == t1 (diffrax may take such a step): y1 = y0, no error, a dense output equal to y0,
    and finite derivatives; 1/h in the stages gave NaN reverse-mode gradients on
    Schwen_PONE2014."""
    with jax.enable_x64(True):
        solver, term = method(), diffrax.ODETerm(_field)
        state = solver.init(term, 1.0, 1.0, Y0, 1.3)
        y1, error, info, *_ = solver.step(term, 1.0, 1.0, Y0, 1.3, state, False)
        inside = solver.interpolation_cls(t0=1.0, t1=1.0, **info).evaluate(1.0)

        def moved(k):
            y1, _, info, *_ = solver.step(term, 1.0, 1.0, Y0, k, state, False)
            inside = solver.interpolation_cls(t0=1.0, t1=1.0, **info).evaluate(1.0)
            return jnp.sum(y1) + jnp.sum(inside)

        grad = jax.grad(moved)(1.3)
    np.testing.assert_array_equal(np.asarray(y1), Y0)
    np.testing.assert_array_equal(np.asarray(inside), Y0)
    np.testing.assert_array_equal(np.asarray(error), 0.0)
    assert float(grad) == 0.0


def _power_decay(t, y, k):
    """dy/dt = -k y^1.5: NaN where a stage overshoots to y < 0."""
    return -k * y**1.5


@pytest.mark.parametrize("method", [grn.Rodas4, grn.Rodas5P])
def test_reverse_derivative_through_steps_rejected_at_nan_stages(method):
    """y' = -k y^1.5, y(0) = 10, k = 100: some steps' stages overshoot to y < 0 (NaN) and
    are rejected. d/dk of sum y(ts) by reverse mode equals forward mode and the closed form
    y = (y0^-1/2 + k t / 2)^-2 (to the solver's accuracy at rtol 1e-6). Precondition: the
    unguarded step's reverse-mode derivative is NaN here (0 * NaN in the rejected steps)."""

    class Unguarded(method):
        def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
            return self._step(terms, t0, t1, y0, args, solver_state, made_jump)

    ts = np.array([0.5, 1.0, 2.0])

    def solve(k, solver, adjoint):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_power_decay),
            solver,
            0.0,
            2.0,
            None,
            jnp.asarray(10.0),
            args=k,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8),
            adjoint=adjoint,
            max_steps=10_000,
        )
        return jnp.sum(sol.ys), sol.stats["num_rejected_steps"]

    with jax.enable_x64(True):
        k = jnp.asarray(100.0)
        checkpoint, forward = diffrax.RecursiveCheckpointAdjoint(), diffrax.ForwardMode()
        reverse, rejected = jax.grad(solve, has_aux=True)(k, method(), checkpoint)
        tangent = jax.jacfwd(lambda k: solve(k, method(), forward)[0])(k)
        unguarded, _ = jax.grad(solve, has_aux=True)(k, Unguarded(), checkpoint)
        exact = jnp.sum(-ts * (10**-0.5 + k * ts / 2) ** -3)
    assert int(rejected) > 0 and np.isnan(float(unguarded))
    assert float(reverse) == pytest.approx(float(tangent), rel=1e-10)
    assert float(reverse) == pytest.approx(float(exact), rel=1e-5)
