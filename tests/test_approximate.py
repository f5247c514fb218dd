"""CLE and LNA: the accuracy they claim, their gradients, and their settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _dsmts import load_reference

import grn
from grn._conformance import band_errors

TS = jnp.linspace(0.0, 50.0, 51)


DSMTS_CASES = {
    "00001": (grn.models.birth_death, {}, ["X"]),
    "00021": (grn.models.immigration_death, {"alpha": 10.0}, ["X"]),
    "00030": (grn.models.dimerisation, {}, ["P", "P2"]),
}


def assert_in_band(sol, ref, species):
    """The DSMTS guide's accuracy band for approximate simulators (section 4)."""
    for name in species:
        mean_ratio, sd_ratio = band_errors(ref, name, np.asarray(sol[name]))
        assert mean_ratio.max() <= 1, f"{name}: mean outside the band ({mean_ratio.max():.2f})"
        assert sd_ratio.max() <= 1, f"{name}: sd outside the band ({sd_ratio.max():.2f})"


@pytest.mark.parametrize("case", sorted(DSMTS_CASES))
def test_cle_dsmts_accuracy_band(case, dsmts_dir):
    model, params, species = DSMTS_CASES[case]
    ref = load_reference(dsmts_dir, case)
    sol = grn.simulate(
        model(),
        ts=TS,
        key=jax.random.key(int(case)),
        solver=grn.CLE(dt=0.01),
        n_cells=10_000,
        params=params,
    )
    assert_in_band(sol, ref, species)


def test_lna_is_exact_for_immigration_death():
    alpha, mu = 10.0, 0.1
    sol = grn.simulate(
        grn.models.immigration_death(), ts=TS, solver=grn.LNA(), params={"alpha": alpha, "mu": mu}
    )
    exact = alpha / mu * (1 - np.exp(-mu * np.asarray(TS)))  # Poisson: mean = variance
    np.testing.assert_allclose(sol.mean[:, 0], exact, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sol.cov[:, 0, 0], exact, rtol=1e-4, atol=1e-4)


def test_lna_dimerisation_against_dsmts(dsmts_dir):
    ref = load_reference(dsmts_dir, "00030")
    sol = grn.simulate(grn.models.dimerisation(), ts=TS, solver=grn.LNA())
    late = np.asarray(TS) >= 5
    for i, name in enumerate(["P", "P2"]):
        mean, sd = np.asarray(sol.mean[late, i]), np.asarray(sol.std[late, i])
        np.testing.assert_array_less(np.abs(mean / ref.mean[name][late] - 1), 0.02)
        np.testing.assert_array_less(np.abs(sd / ref.sd[name][late] - 1), 0.10)


def test_cle_weak_order_one():
    """Euler-Maruyama errors of E[X] and Var[X] at T shrink like dt (immigration-death).

    Reference: X(1) ~ Poisson(alpha/mu (1 - e^-mu)). The Monte-Carlo standard error of each
    estimate must be under a tenth of the error it measures, so the slope is not noise.
    """
    alpha, mu, n = 100.0, 2.0, 400_000
    exact = alpha / mu * (1 - np.exp(-mu))
    dts = np.array([0.2, 0.1, 0.05, 0.025])
    mean_err, var_err = [], []
    for i, dt in enumerate(dts):
        sol = grn.simulate(
            grn.models.immigration_death(),
            ts=jnp.array([0.0, 1.0]),
            key=jax.random.key(i),
            solver=grn.CLE(dt=float(dt)),
            n_cells=n,
            params={"alpha": alpha, "mu": mu},
            batch_size=100_000,
        )
        x = np.asarray(sol["X"][:, -1], np.float64)
        m, v = x.mean(), x.var(ddof=1)
        mean_se, var_se = np.sqrt(v / n), v * np.sqrt(2 / (n - 1))
        mean_err.append(abs(m - exact))
        var_err.append(abs(v - exact))
        assert mean_se < mean_err[-1] / 10, (dt, mean_se, mean_err[-1])
        assert var_se < var_err[-1] / 10, (dt, var_se, var_err[-1])
    for errors in (mean_err, var_err):
        slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
        assert 0.8 <= slope <= 1.2, (slope, errors)


def _finite_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_lna_and_cle_gradients_match_float64_finite_differences():
    net = grn.models.dimerisation()
    ts = jnp.linspace(0.0, 20.0, 5)
    with jax.enable_x64(True):
        for solver in (grn.LNA(rtol=1e-9, atol=1e-9), grn.CLE(dt=0.1)):

            def output(k1, solver=solver):
                sol = grn.simulate(
                    net, ts=ts, key=jax.random.key(3), solver=solver, n_cells=64, params={"k1": k1}
                )
                return jnp.sum(sol.mean[-1]) + jnp.sum(sol.cov[-1])

            k1 = jnp.asarray(0.002, jnp.float64)
            grad = jax.grad(output)(k1)
            fd = _finite_difference(output, k1, 1e-6)
            assert np.isfinite(grad) and grad != 0
            np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_cle_gradient_wrt_schedule_level_is_pathwise():
    net = grn.Network(
        ["X"],
        [
            grn.Reaction("-> X", lambda x, p, u: p["alpha"] * u["I"]),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"alpha": 50.0, "mu": 1.0},
        inputs=["I"],
    )
    ts = jnp.linspace(0.0, 4.0, 5)

    def final_mean(level):
        schedule = grn.Schedule(jnp.array([0.0, 1.5]), {"I": jnp.stack([1.0, level])})
        sol = grn.simulate(
            net,
            ts=ts,
            key=jax.random.key(0),
            solver=grn.CLE(dt=0.01),
            n_cells=256,
            schedule=schedule,
        )
        return sol.mean[-1, 0]

    grad = jax.grad(final_mean)(0.5)
    # d E[X(4)] / d level = alpha/mu (1 - e^{-mu (4 - 1.5)}) for the exact mean; CLE with
    # common random numbers is linear in the level here, so this holds to sampling noise.
    expected = 50.0 * (1 - np.exp(-2.5))
    assert abs(float(grad) - expected) < 0.05 * expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: grn.CLE(dt=0.0),
        lambda: grn.CLE(dt=-1.0),
        lambda: grn.CLE(dt=float("nan")),
        lambda: grn.CLE(dt=0.1, max_steps=0),
    ],
)
def test_invalid_cle_settings(make):
    with pytest.raises(ValueError, match="CLE"):
        make()


def test_cle_under_outer_jit_needs_max_steps():
    net = grn.models.immigration_death()

    @jax.jit
    def run(ts):
        return grn.simulate(net, ts=ts, key=jax.random.key(0), solver=grn.CLE(dt=0.1)).ys

    with pytest.raises(ValueError, match="max_steps"):
        run(jnp.linspace(0.0, 1.0, 3))

    @jax.jit
    def run_sized(ts):
        return grn.simulate(
            net, ts=ts, key=jax.random.key(0), solver=grn.CLE(dt=0.1, max_steps=20)
        ).ys

    assert run_sized(jnp.linspace(0.0, 1.0, 3)).shape == (1, 3, 1)


def test_lna_and_cle_follow_a_stepped_schedule(stepped, stats):
    """Breakpoints off the output grid and off the CLE step grid are honoured exactly.

    Immigration-death is linear, so the LNA mean and variance are exact; the CLE mean and
    variance are checked by z-tests (its O(dt) bias at dt = 0.005 is under a tenth of the SE).
    """
    ts = jnp.linspace(0.0, 12.0, 25)
    mean, var, mu4 = stepped.law(ts, 0.0, 5)
    lna = grn.simulate(
        stepped.network, ts=ts, solver=grn.LNA(), x0={"X": 5}, schedule=stepped.schedule
    )
    # Linear propensities close the moment equations, so the LNA mean and covariance are exact,
    # including the binomial spread from the survival of the five initial molecules.
    np.testing.assert_allclose(lna.mean[:, 0], mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lna.cov[:, 0, 0], var, rtol=1e-4, atol=1e-4)
    cle = grn.simulate(
        stepped.network,
        ts=ts,
        key=jax.random.key(11),
        solver=grn.CLE(dt=0.005),
        n_cells=4000,
        x0={"X": 5},
        schedule=stepped.schedule,
    )
    x = np.asarray(cle["X"][:, 1:], np.float64)
    assert np.abs(stats.z_mean(x, mean[1:], var[1:])).max() < 4
    assert np.abs(stats.z_var(x, var[1:], mu4[1:])).max() < 4


def test_cle_time_event_in_band(dsmts_dir):
    """DSMTS 00028: X is set to 50 at t = 25, an output time, exactly; the CLE stays in band."""
    ref = load_reference(dsmts_dir, "00028")
    base = grn.models.immigration_death()
    net = grn.Network(
        base.species,
        base.reactions,
        dict(base.params),
        events=[grn.Event(at=25.0, assign={"X": 50})],
    )
    sol = grn.simulate(
        net,
        ts=jnp.asarray(ref.times),
        key=jax.random.key(28),
        solver=grn.CLE(dt=0.01),
        n_cells=10_000,
    )
    np.testing.assert_array_equal(np.asarray(sol["X"][:, 25]), 50.0)
    assert_in_band(sol, ref, ["X"])
