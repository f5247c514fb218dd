"""grn.Rodas4: order of convergence, its error estimate, a stiff reference, derivatives."""

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


def test_fourth_order_and_an_order_four_local_error_estimate():
    """Fixed steps h = T/n: the global error falls as h^4 (log2 ratios 4 +- 0.15); one step's
    error as h^5 and the embedded estimate (order-3 companion) as h^4."""
    with jax.enable_x64(True):
        solver, term = grn.Rodas4(), diffrax.ODETerm(_field)
        ref = _reference(2.0)
        glob, local, estimate = [], [], []
        for n in (20, 40, 80, 160):
            h = 2.0 / n
            sol = diffrax.diffeqsolve(term, solver, 0.0, 2.0, h, Y0, args=1.0, max_steps=1000)
            glob.append(float(jnp.max(jnp.abs(sol.ys[-1] - ref))))
            state = solver.init(term, 0.0, h, Y0, 1.0)
            y1, err, *_ = solver.step(term, 0.0, h, Y0, 1.0, state, False)
            local.append(float(jnp.max(jnp.abs(y1 - _reference(h)))))
            estimate.append(float(jnp.max(jnp.abs(err))))
    for errors, order in ((glob, 4), (local, 5), (estimate, 4)):
        slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        assert np.all(np.abs(slopes - order) < 0.15), (order, slopes)


def test_robertson_matches_kvaerno5_at_tight_tolerances():
    """The stiff Robertson problem (Hairer & Wanner II, sec. IV.10) over 1e5 time units at
    rtol 1e-8, atol 1e-12: every species within 1e-6 relative of Kvaerno5 at rtol 1e-10, or
    1e-11 absolute (ten local atol over the ~550 steps: y2 is ~1e-6 to 1e-8)."""

    def robertson(t, y, args):
        a = 0.04 * y[0]
        b = 1e4 * y[1] * y[2]
        c = 3e7 * y[1] ** 2
        return jnp.stack([-a + b, a - b - c, c])

    ts = jnp.array([1.0, 10.0, 1e3, 1e5])
    with jax.enable_x64(True):

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

        ours = solve(grn.Rodas4(), 1e-8, 1e-12)
        ref = solve(diffrax.Kvaerno5(), 1e-10, 1e-14)
    assert ours.result == diffrax.RESULTS.successful
    np.testing.assert_allclose(ours.ys, ref.ys, rtol=1e-6, atol=1e-11)


@pytest.mark.parametrize("adjoint", ["checkpoint", "forward"])
def test_derivative_matches_finite_differences(adjoint):
    """d y(2) / dk through adaptive Rodas4 steps (rtol 1e-10), both adjoints, against central
    differences of the solution (h = 1e-5: truncation ~1e-10, solver error / h ~1e-5 of
    the slope)."""
    adj = diffrax.RecursiveCheckpointAdjoint() if adjoint == "checkpoint" else diffrax.ForwardMode()
    ts = np.array([0.0, 1.0, 2.0])

    def solve(k):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_field),
            grn.Rodas4(),
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
        return jnp.sum(sol.ys[-1])

    with jax.enable_x64(True):
        k = jnp.asarray(1.3)
        derivative = jax.jacrev(solve)(k) if adjoint == "checkpoint" else jax.jacfwd(solve)(k)
        h = 1e-5
        fd = (solve(k + h) - solve(k - h)) / (2 * h)
    assert np.isfinite(float(derivative))
    assert float(derivative) == pytest.approx(float(fd), rel=1e-5)


def test_a_step_of_length_zero_returns_its_start_with_finite_derivatives():
    """t0 == t1 (diffrax may take such a step): y1 = y0, no error, and a finite derivative;
    1/h in the stages gave NaN reverse-mode gradients on Schwen_PONE2014."""
    with jax.enable_x64(True):
        solver, term = grn.Rodas4(), diffrax.ODETerm(_field)
        state = solver.init(term, 1.0, 1.0, Y0, 1.3)
        y1, error, *_ = solver.step(term, 1.0, 1.0, Y0, 1.3, state, False)

        def moved(k):
            return jnp.sum(solver.step(term, 1.0, 1.0, Y0, k, state, False)[0])

        grad = jax.grad(moved)(1.3)
    np.testing.assert_array_equal(np.asarray(y1), Y0)
    np.testing.assert_array_equal(np.asarray(error), 0.0)
    assert float(grad) == 0.0
