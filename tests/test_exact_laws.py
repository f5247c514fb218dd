"""The SSA against laws known exactly: CME solutions, Poisson and binomial-Poisson laws.

Every check is a test of a fixed-seed sample against an exact law with a threshold from its
standard error: z-tests at |z| < 4 (two-sided p = 6e-5 each) and Pearson chi-square tests whose
p-values must exceed 1e-3 divided by the number of times tested (Bonferroni, so each family of
goodness-of-fit tests has false-alarm probability <= 1e-3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import grn

Z_MAX = 4.0
FAMILY_P = 1e-3


# -- telegraph model against its chemical master equation ------------------------------------
# k_on = k_off = 0.5 and delta = 1 relax in about an hour; with nu = 20 the law of M is bimodal
# (near 0 while off, near Poisson(20) while on), far from Poisson.
TELEGRAPH = {"k_on": 0.5, "k_off": 0.5, "nu": 20.0, "delta": 1.0}
TELEGRAPH_TS = (0.0, 0.5, 1.0, 2.0, 4.0)
M_MAX = 80  # M >= 80 is negligible here: the FSP mass deficit (asserted < 1e-12) bounds it


def telegraph_cme(ts, k_on, k_off, nu, delta, m_max):
    """Finite state projection (Munsky & Khammash 2006) of the telegraph CME from (off, M = 0).

    States (g, m), g in {off, on}, m = 0..m_max; transcription out of m_max leaves the projection,
    so p(t) = expm(A t) p(0) is a lower bound of the exact law and its mass deficit 1 - sum p(t)
    bounds the error in total variation. Returns p[t, g, m] and the deficits.
    """
    n = m_max + 1
    a = np.zeros((2 * n, 2 * n))

    def flow(src, dst, rate):
        a[src, src] -= rate
        if dst is not None:
            a[dst, src] += rate

    for m in range(n):
        off, on = m, n + m
        flow(off, on, k_on)
        flow(on, off, k_off)
        flow(on, on + 1 if m < m_max else None, nu)
        if m > 0:
            flow(off, off - 1, delta * m)
            flow(on, on - 1, delta * m)
    p0 = np.zeros(2 * n)
    p0[0] = 1.0
    ps = np.stack([scipy.linalg.expm(a * t) @ p0 for t in ts]).reshape(len(ts), 2, n)
    return ps, 1.0 - ps.sum(axis=(1, 2))


def test_telegraph_fsp_is_exact_enough():
    """The projection loses < 1e-12 of mass, and its stationary limit is the known mean."""
    ps, deficit = telegraph_cme([1.0, 4.0, 60.0], **TELEGRAPH, m_max=M_MAX)
    assert np.all(deficit >= 0) and np.all(deficit < 1e-12)
    assert np.all(ps > -1e-15)
    m = np.arange(M_MAX + 1)
    p_on = TELEGRAPH["k_on"] / (TELEGRAPH["k_on"] + TELEGRAPH["k_off"])
    np.testing.assert_allclose(
        ps[-1].sum(0) @ m, TELEGRAPH["nu"] * p_on / TELEGRAPH["delta"], rtol=1e-9
    )
    np.testing.assert_allclose(ps[-1][1].sum(), p_on, rtol=1e-9)


def test_telegraph_matches_cme(stats):
    n_cells = 20_000
    ts = np.asarray(TELEGRAPH_TS)
    sol = grn.simulate(
        grn.models.telegraph(),
        jnp.asarray(ts),
        key=jax.random.key(101),
        n_cells=n_cells,
        params=TELEGRAPH,
    )
    g_on, g_off, m = (np.asarray(sol[s], np.int64) for s in ("G_on", "G_off", "M"))
    np.testing.assert_array_equal(g_on + g_off, 1)
    np.testing.assert_array_equal(g_on[:, 0], 0)
    np.testing.assert_array_equal(m[:, 0], 0)

    ps, deficit = telegraph_cme(ts[1:], **TELEGRAPH, m_max=M_MAX)
    assert np.all(deficit < 1e-12)
    support = np.arange(M_MAX + 1)
    for i, t in enumerate(ts[1:], start=1):
        p = ps[i - 1]
        # Joint (gene, M) goodness of fit; the last M bin of each gene state is M >= M_MAX.
        counts = np.stack(
            [
                np.bincount(np.minimum(m[g_on[:, i] == g, i], M_MAX), minlength=M_MAX + 1)
                for g in (0, 1)
            ]
        )
        chi2, dof, pval = stats.chi_square(counts.ravel(), n_cells * p.ravel())
        print(f"telegraph t = {t}: chi2 = {chi2:.1f} on {dof} dof, p = {pval:.3g}")
        assert pval > FAMILY_P / (len(ts) - 1), f"t = {t}: chi2 = {chi2:.1f}, dof {dof}, p {pval}"

        pm = p.sum(axis=0)
        mean = pm @ support
        var = pm @ (support - mean) ** 2
        mu4 = pm @ (support - mean) ** 4
        z_m = stats.z_mean(m[:, i], mean, var)
        z_v = stats.z_var(m[:, i], var, mu4)
        q = p[1].sum()
        z_g = stats.z_mean(g_on[:, i], q, q * (1 - q))
        assert abs(z_m) < Z_MAX and abs(z_v) < Z_MAX and abs(z_g) < Z_MAX, (t, z_m, z_v, z_g)


# -- float32 clock late in time ----------------------------------------------------------------
def test_poisson_law_late_in_float32(stats):
    """Immigration-death at 2e4 events per hour around t = 1535 h, in float32.

    Near t = 1535 consecutive float32 numbers are 1.2e-4 h apart while the mean time between
    events is 5e-5 h, so a clock kept as absolute float32 time would stall or lose events. From
    X = 100 at t0 the exact law at t is Binomial(100, p) + Poisson(alpha/mu (1 - p)),
    p = exp(-mu (t - t0)), mean 100, variance 100 (1 - p^2), i.e. Poisson(100) to 1e-8.
    """
    assert jnp.zeros(()).dtype == jnp.float32
    alpha, mu, x0, n_cells = 1e4, 100.0, 100, 2_000
    ts = jnp.linspace(1535.0, 1536.0, 11)
    sol = grn.simulate(
        grn.models.immigration_death(),
        ts,
        key=jax.random.key(1535),
        n_cells=n_cells,
        params={"alpha": alpha, "mu": mu},
        x0={"X": x0},
    )
    assert sol.ys.dtype == jnp.float32
    x = np.asarray(sol["X"], np.float64)
    np.testing.assert_array_equal(x[:, 0], x0)

    t = np.asarray(sol.ts, np.float64)  # the float32 grid the solver saw, exactly
    elapsed = t - t[0]
    p = np.exp(-mu * elapsed)
    lam = alpha / mu * (1 - p)
    mean, var, mu4 = stats.binomial_poisson(x0, p, lam)
    z_m = stats.z_mean(x[:, 1:], mean[1:], var[1:])
    z_v = stats.z_var(x[:, 1:], var[1:], mu4[1:])
    print("late float32: z(mean) =", np.round(z_m, 2), "z(var) =", np.round(z_v, 2))
    assert np.all(np.abs(z_m) < Z_MAX) and np.all(np.abs(z_v) < Z_MAX)
    kmax = 200
    for i in range(1, len(t)):
        expected = n_cells * stats.binomial_poisson_pmf(x0, p[i], lam[i], kmax)
        counts = np.bincount(np.minimum(x[:, i], kmax).astype(np.int64), minlength=kmax + 1)
        chi2, dof, pval = stats.chi_square(counts, expected)
        print(f"late float32 t = {t[i]:.4f}: chi2 = {chi2:.1f} on {dof} dof, p = {pval:.3g}")
        assert pval > FAMILY_P / (len(t) - 1), f"t = {t[i]}: chi2 = {chi2:.1f}, dof {dof}"

    # Events per cell N = S + 2K + (x0 - B): S ~ Poisson(lam) surviving and K ~ Poisson(alpha T -
    # lam) killed immigrants (independent thinning), B ~ Binomial(x0, p) surviving initial ones.
    # E N = 2 alpha T - lam + x0 (1 - p) and Var N = 4 alpha T - 3 lam + x0 p (1 - p).
    big_t = elapsed[-1]
    n_mean = 2 * alpha * big_t - lam[-1] + x0 * (1 - p[-1])
    n_var = 4 * alpha * big_t - 3 * lam[-1] + x0 * p[-1] * (1 - p[-1])
    n_events = np.asarray(sol.n_events, np.float64)
    z_n = stats.z_mean(n_events, n_mean, n_var)
    print(f"late float32: mean events {n_events.mean():.1f} (exact {n_mean:.1f}), z = {z_n:.2f}")
    assert abs(z_n) < Z_MAX


# -- piecewise-constant schedule ---------------------------------------------------------------
def _check_against_law(stats, sol, law, x0):
    x = np.asarray(sol["X"], np.float64)
    np.testing.assert_array_equal(x[:, 0], x0)
    mean, var, mu4 = law
    z_m = stats.z_mean(x[:, 1:], mean[1:], var[1:])
    z_v = stats.z_var(x[:, 1:], var[1:], mu4[1:])
    print("z(mean) =", np.round(z_m, 2), "\nz(var) =", np.round(z_v, 2))
    bad = np.flatnonzero((np.abs(z_m) >= Z_MAX) | (np.abs(z_v) >= Z_MAX)) + 1
    assert bad.size == 0, (
        f"at t = {np.asarray(sol.ts)[bad]}: z(mean) = {z_m[bad - 1]}, z(var) = {z_v[bad - 1]}"
    )


def test_stepped_schedule_matches_exact_law(stats, stepped):
    """I = 1, 3, 0, 2 from t = 0, 2.25, 5.6, 8.1 (off the half-hour grid), X0 = 5."""
    ts = 0.5 * np.arange(25)
    x0 = 5
    sol = grn.simulate(
        stepped.network,
        jnp.asarray(ts),
        key=jax.random.key(7),
        n_cells=10_000,
        x0={"X": x0},
        schedule=stepped.schedule,
    )
    _check_against_law(stats, sol, stepped.law(ts, 0.0, x0), x0)


@pytest.mark.parametrize("t0", [3.0, 2.25])
def test_schedule_from_nonzero_start(stats, stepped, t0):
    """Starting at ts[0] = t0 inside a segment (3.0) or on a breakpoint (2.25) shifts the law.

    The level at t0 is 3, different from the levels before (1) and before the first
    breakpoint (0), so starting in the wrong segment moves the mean by many standard errors.
    """
    ts = t0 + 0.5 * np.arange(25)
    x0 = 5
    sol = grn.simulate(
        stepped.network,
        jnp.asarray(ts),
        key=jax.random.key(8),
        n_cells=10_000,
        x0={"X": x0},
        schedule=stepped.schedule,
    )
    _check_against_law(stats, sol, stepped.law(np.asarray(sol.ts, np.float64), t0, x0), x0)
