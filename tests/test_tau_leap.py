"""Adaptive tau-leaping: the DSMTS accuracy band, exact laws through schedule breakpoints, step
counts, rejections, the Poisson sampler and validation.

Statistical checks use fixed seeds. Against exact laws the thresholds come from standard errors
(z-tests at |z| < 4, chi-square p-values above 1e-3 over the number of tests). Against the DSMTS
references the check is the user guide's band for approximate simulators (§4): mean within 2 %
and sd within 5 % of the exact values, which at n = 10^4 is more than 5 standard errors wide, so
a failure means bias, not noise.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from _dsmts import load_reference

import grn
from grn._conformance import band_errors
from grn._solvers._tau_leap import TauLeap, _g, _hor_terms, _poisson

Z_MAX = 4.0


def _with_stats(solver, net, ts, key, n_cells, params=None, x0=None, schedule=None):
    """Run ``solve_cell_with_stats`` over ``n_cells`` cells: (ys, n_events, result, stats)."""
    dtype = jnp.zeros(()).dtype
    p = {k: jnp.asarray(v, dtype) for k, v in {**net.params, **(params or {})}.items()}
    x = jnp.asarray([(x0 or {}).get(s, v) for s, v in zip(net.species, net.x0)], dtype)
    if schedule is None:
        times = jnp.full((1,), -jnp.inf, dtype)
        table = jnp.zeros((1, len(net.inputs)), dtype)
    else:
        times, table = schedule.as_arrays(net.inputs, dtype)

    @jax.jit
    def run(keys):
        one = lambda k: solver.solve_cell_with_stats(net, ts, k, p, x, times, table)  # noqa: E731
        return jax.vmap(one)(keys)

    path, stats = run(jax.random.split(key, n_cells))
    return np.asarray(path.ys, np.float64), np.asarray(path.n_events), path.result, stats


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.03"])
def test_invalid_epsilon_raises(epsilon):
    with pytest.raises(ValueError, match=re.escape(repr(epsilon))):
        TauLeap(epsilon=epsilon)


def test_invalid_settings_raise():
    TauLeap(epsilon=0.5, exact_burst=0)  # valid
    for kwargs in ({"n_critical": 0}, {"max_steps": 0}, {"block": 1.5}, {"exact_burst": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            TauLeap(**kwargs)
    with pytest.raises(ValueError, match="ssa_threshold"):
        TauLeap(ssa_threshold=-1.0)


def test_max_steps_sets_result_code():
    sol = grn.simulate(
        grn.models.birth_death(),
        ts=jnp.linspace(0.0, 10.0, 11),
        key=jax.random.key(0),
        solver=TauLeap(max_steps=5),
        n_cells=4,
        throw=False,
    )
    assert np.all(np.asarray(sol.result) == grn.RESULTS.max_events_reached)


# -- step selection ------------------------------------------------------------------------------
def test_highest_order_of_reaction_g():
    """g_i of Cao, Gillespie & Petzold (2006) eq. 27, from the reactant matrix."""
    net = grn.Network(
        species=["X", "Y", "W", "A", "B", "C"],
        reactions=[
            grn.Reaction("X ->", grn.mass_action("k")),
            grn.Reaction("X + Y -> C", grn.mass_action("k")),
            grn.Reaction("2 Y -> C", grn.mass_action("k")),
            grn.Reaction("3 W -> C", grn.mass_action("k")),
            grn.Reaction("2 A + B -> C", grn.mass_action("k")),
        ],
        params={"k": 1.0},
    )
    x = jnp.asarray([50.0, 5.0, 7.0, 4.0, 9.0, 3.0])
    g = np.asarray(_g(_hor_terms(net.reactant_matrix), x))
    want = [2.0, 2.0 + 1 / 4, 3 + 1 / 6 + 2 / 5, 1.5 * (2 + 1 / 3), 3.0, 0.0]
    np.testing.assert_allclose(g, want, rtol=1e-6)
    # Below c copies the 1/(x - k) terms are infinite: the bound max(eps x / g, 1) falls to 1.
    g = np.asarray(_g(_hor_terms(net.reactant_matrix), jnp.asarray([1.0, 1.0, 2.0, 1.0, 0, 0])))
    assert g[0] == 2.0 and np.isinf(g[1]) and np.isinf(g[2]) and np.isinf(g[3]) and g[4] == 3.0


# -- Poisson sampler -----------------------------------------------------------------------------
def test_poisson_sampler():
    """Exact inversion below mean 10 (chi-square), moments of the normal quantile above."""
    n = 1_000_000
    u = jax.random.uniform(jax.random.key(11), (n,))
    sample = jax.jit(_poisson)
    small = [0.02, 0.7, 3.0, 9.9]
    for lam in small:
        k = np.asarray(sample(u, jnp.full((n,), lam)))
        top = int(scipy.stats.poisson.ppf(1 - 1e-4, lam))
        observed = np.bincount(np.minimum(k, top), minlength=top + 1)
        expected = scipy.stats.poisson.pmf(np.arange(top + 1), lam)
        expected[-1] = scipy.stats.poisson.sf(top - 1, lam)
        chi2 = scipy.stats.chisquare(observed, expected * n)
        assert chi2.pvalue > 1e-3 / len(small), (lam, chi2)
    for lam in [10.0, 37.5, 2000.0]:
        k = np.asarray(sample(u, jnp.full((n,), lam)), np.float64)
        z_mean = (k.mean() - lam) / math.sqrt(lam / n)
        z_var = (k.var(ddof=1) - lam) / math.sqrt((lam + 2 * lam**2) / n)
        assert abs(z_mean) < Z_MAX and abs(z_var) < Z_MAX, (lam, z_mean, z_var)
    assert np.all(np.asarray(_poisson(u[:1000], jnp.zeros(1000))) == 0)
    # u at the top of float32 [0, 1) must not run past the tail of a tiny mean.
    top_u = jnp.full((4,), 1.0 - 2.0**-24)
    assert np.all(np.asarray(_poisson(top_u, jnp.asarray([1e-3, 0.1, 1.0, 5.0]))) <= [3, 6, 12, 25])


# -- accuracy --------------------------------------------------------------------------------------
# case -> (network, parameter and initial-count overrides); 00005 (X0 = 10^4) is the one where
# leaps dominate, the others run mostly exact steps at these copy numbers and epsilon = 0.01.
DSMTS = {
    "00001": (grn.models.birth_death, {"lam": 0.1, "mu": 0.11}, {"X": 100}),
    "00005": (grn.models.birth_death, {"lam": 0.1, "mu": 0.11}, {"X": 10_000}),
    "00021": (grn.models.immigration_death, {"alpha": 10.0, "mu": 0.1}, {"X": 0}),
    "00030": (grn.models.dimerisation, {"k1": 0.001, "k2": 0.01}, {"P": 100, "P2": 0}),
}


@pytest.mark.parametrize("case", sorted(DSMTS))
def test_dsmts_accuracy_band(case, dsmts_dir):
    ref = load_reference(dsmts_dir, case)
    build, params, x0 = DSMTS[case]
    net = build()
    sol = grn.simulate(
        net,
        ts=jnp.asarray(ref.times),
        key=jax.random.key(int(case)),
        solver=TauLeap(epsilon=0.01),
        n_cells=10_000,
        params=params,
        x0=x0,
    )
    assert np.all(np.asarray(sol.result) == grn.RESULTS.successful)
    for species in net.species:
        mean_ratio, sd_ratio = band_errors(ref, species, np.asarray(sol[species]))
        print(
            f"DSMTS {case} {species}: worst mean error / tolerance {mean_ratio.max():.3f}, "
            f"sd {sd_ratio.max():.3f}"
        )
        assert mean_ratio.max() <= 1, species
        assert sd_ratio.max() <= 1, species


@pytest.mark.parametrize("case", ["00028", "00033"])
def test_time_and_state_events(case, dsmts_dir):
    """A time event (X = 50 at t = 25) and a state event (reset when P2 > 30), in the band."""
    ref = load_reference(dsmts_dir, case)
    if case == "00028":
        base, event = grn.models.immigration_death(), grn.Event(at=25.0, assign={"X": 50})
    else:
        base = grn.models.dimerisation()
        event = grn.Event(when=lambda t, x, p: x["P2"] > 30, assign={"P": 100, "P2": 0})
    net = grn.Network(
        base.species,
        base.reactions,
        dict(base.params),
        dict(zip(base.species, base.x0)),
        events=[event],
    )
    sol = grn.simulate(
        net,
        ts=jnp.asarray(ref.times),
        key=jax.random.key(int(case)),
        solver=TauLeap(epsilon=0.01),
        n_cells=10_000,
    )
    for species in ref.species:
        mean_ratio, sd_ratio = band_errors(ref, species, np.asarray(sol[species]))
        assert mean_ratio.max() <= 1 and sd_ratio.max() <= 1, species
    if case == "00028":  # the event time is an output time: every cell shows the assignment
        np.testing.assert_array_equal(np.asarray(sol["X"][:, 25]), 50.0)


def _immigration(alpha: float, mu: float) -> grn.Network:
    return grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", lambda x, p, u: p["alpha"] * u["I"]),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"alpha": alpha, "mu": mu},
        x0={"X": 0},
        inputs=["I"],
    )


@pytest.mark.parametrize(
    "alpha, mu, path",
    [
        (2000.0, 0.0, "leaps"),  # constant propensity: every leap is exactly Poisson
        (20.0, 1.0, "exact"),  # ~20 copies: exact steps only
    ],
)
def test_schedule_breakpoint_off_grid(alpha, mu, path):
    """Immigration at alpha u(t) with u = 1, then 0.25 from t = 2.5 (between output times).

    From X0 = 0, X(t) is Poisson with mean m' = alpha u(t) - mu m, for leaps of a constant
    propensity and for exact steps alike; a step across the breakpoint with the old level would
    put E[X(3)] off by up to alpha * 0.75 * (leap length), many standard errors here.
    """
    t_b, levels = 2.5, (1.0, 0.25)
    schedule = grn.Schedule(times=[0.0, t_b], values={"I": list(levels)})
    ts = jnp.linspace(0.0, 6.0, 7)
    n = 4000
    ys, _, result, stats = _with_stats(
        TauLeap(), _immigration(alpha, mu), ts, jax.random.key(5), n, schedule=schedule
    )
    assert np.all(np.asarray(result) == grn.RESULTS.successful)
    taken = {name: int(np.sum(v)) for name, v in stats.items()}
    assert taken[path] > 0 and (path == "leaps" or taken["leaps"] == 0), taken

    t = np.asarray(ts, np.float64)
    if mu == 0:
        m = alpha * np.where(t < t_b, levels[0] * t, levels[0] * t_b + levels[1] * (t - t_b))
    else:
        m_b = alpha * levels[0] / mu * (1 - np.exp(-mu * t_b))
        rising = alpha * levels[0] / mu * (1 - np.exp(-mu * t))
        falling = alpha * levels[1] / mu + (m_b - alpha * levels[1] / mu) * np.exp(-mu * (t - t_b))
        m = np.where(t < t_b, rising, falling)
    x = ys[:, 1:, 0]
    m = m[1:]
    z_mean = (x.mean(0) - m) / np.sqrt(m / n)
    # Poisson: variance m and fourth central moment m (1 + 3 m), so Var(S^2) ~ (m + 2 m^2) / n.
    z_var = (x.var(0, ddof=1) - m) / np.sqrt((m + 2 * m**2) / n)
    print(f"{path}: z of means {np.round(z_mean, 2)}, of variances {np.round(z_var, 2)}, {taken}")
    assert np.all(np.abs(z_mean) < Z_MAX) and np.all(np.abs(z_var) < Z_MAX)


def test_fewer_steps_than_exact_on_high_copy_model():
    """Birth-death from X0 = 10^4 (DSMTS 00005): ~2 10^4 reactions per cell, a few dozen leaps.

    The SSA takes one step per reaction (n_events); tau-leaping must take far fewer and stay in
    the DSMTS band for approximate simulators against the exact mean X0 e^{rt} and variance
    X0 (lam + mu)/r e^{rt} (e^{rt} - 1), r = lam - mu.
    """
    net = grn.models.birth_death()
    ts = jnp.linspace(0.0, 10.0, 11)
    n = 4000
    ys, n_events, result, stats = _with_stats(
        TauLeap(), net, ts, jax.random.key(3), n, x0={"X": 10_000}
    )
    assert np.all(np.asarray(result) == grn.RESULTS.successful)
    steps = sum(np.asarray(v) for v in stats.values())
    print(
        f"steps per cell {steps.mean():.1f} ({ {k: float(np.mean(v)) for k, v in stats.items()} })"
        f", reactions per cell {n_events.mean():.0f}"
    )
    assert np.mean(stats["leaps"]) > 0
    assert steps.mean() * 100 < n_events.mean()
    lam, mu, x0 = 0.1, 0.11, 10_000
    r = lam - mu
    t = np.asarray(ts, np.float64)[1:]
    mean = x0 * np.exp(r * t)
    sd = np.sqrt(x0 * (lam + mu) / r * np.exp(r * t) * (np.exp(r * t) - 1))
    x = ys[:, 1:, 0]
    assert np.all(np.abs(x.mean(0) / mean - 1) < 0.02)
    assert np.all(np.abs(x.std(0, ddof=1) / sd - 1) < 0.05)


def test_critical_reactions_fire_exactly_between_leaps():
    """Telegraph gene with ~1000 mRNAs: M is leapt, the 0/1 gene reactions are always critical.

    Critical reactions fire singly at exact times, and the gene's rates depend on the gene only,
    so its marginal law is exact whatever the leaps: P(on, t) = k_on/(k_on + k_off)
    (1 - e^{-(k_on + k_off) t}) from off, and one gene copy is conserved.
    """
    net = grn.models.telegraph()
    k_on, k_off = 0.5, 0.5
    ts = jnp.linspace(0.0, 4.0, 9)
    n = 4000
    ys, _, result, stats = _with_stats(
        TauLeap(),
        net,
        ts,
        jax.random.key(8),
        n,
        params={"nu": 2000.0, "k_on": k_on, "k_off": k_off},
    )
    assert np.all(np.asarray(result) == grn.RESULTS.successful)
    assert int(np.sum(stats["leaps"])) > 0
    np.testing.assert_array_equal(ys[..., 0] + ys[..., 1], 1.0)
    t = np.asarray(ts, np.float64)[1:]
    p_on = k_on / (k_on + k_off) * (1 - np.exp(-(k_on + k_off) * t))
    z = (ys[:, 1:, 1].mean(0) - p_on) / np.sqrt(p_on * (1 - p_on) / n)
    assert np.all(np.abs(z) < Z_MAX), z


def test_rejected_leaps_keep_counts_non_negative():
    """Coarse leaps of a fast decay overshoot 0; they are rejected, never applied."""
    net = grn.Network(
        species=["X"],
        reactions=[grn.Reaction("X ->", grn.mass_action("mu"))],
        params={"mu": 1.0},
        x0={"X": 30},
    )
    ts = jnp.linspace(0.0, 4.0, 5)
    solver = TauLeap(epsilon=0.9, n_critical=1)
    ys, n_events, result, stats = _with_stats(solver, net, ts, jax.random.key(2), 2000)
    assert np.all(np.asarray(result) == grn.RESULTS.successful)
    assert int(np.sum(stats["rejected"])) > 0 and int(np.sum(stats["leaps"])) > 0
    assert np.all(ys >= 0) and np.all(ys == np.round(ys))
    # Every molecule decays exactly once: reactions fired = 30 - X(4).
    np.testing.assert_array_equal(n_events, 30 - ys[:, -1, 0])


def test_log_weight_of_constant_fate_rates():
    """g - h constant: log_weight = (g - h) t exactly, over leaps, exact steps and truncations."""
    net = grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", grn.mass_action("alpha")),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"alpha": 1000.0, "mu": 1.0},
        x0={"X": 0},
        growth=lambda x, p, u: 0.3,
        death=lambda x, p, u: 0.1,
    )
    ts = jnp.linspace(0.0, 5.0, 11)
    sol = grn.simulate(net, ts=ts, key=jax.random.key(4), solver=TauLeap(), n_cells=64)
    want = np.broadcast_to(0.2 * np.asarray(ts), (64, 11))
    np.testing.assert_allclose(np.asarray(sol.log_weight), want, rtol=1e-5, atol=1e-6)
