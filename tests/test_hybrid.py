"""grn.Hybrid: exact when all reactions are slow, the CLE's accuracy on a fast channel, the
partition re-check, bad input and no recompilation for new parameter values.

Tolerances are 4 Monte-Carlo standard errors of the compared statistic, fixed seeds.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import grn

Z = 4.0  # standard errors allowed per statistic


def _var_se(y):
    """Standard error of the sample variance of the rows of ``y`` (cells first)."""
    n = y.shape[0]
    c = y - y.mean(axis=0)
    m2, m4 = (c**2).mean(axis=0), (c**4).mean(axis=0)
    return np.sqrt(np.maximum(m4 - m2**2, 0.0) / n)


def _birth_death(k=10.0, d=1.0):
    """Immigration-death with an input that doubles the birth rate (Poisson at every time)."""
    birth = grn.Reaction("-> X", lambda x, p, u: p["k"] * (1.0 + u["boost"]), "birth")
    death = grn.Reaction("X ->", grn.mass_action("d"), "death")
    return grn.Network(
        species=["X"], reactions=[birth, death], params={"k": k, "d": d}, inputs=["boost"],
        x0={"X": 0},
    )  # fmt: skip


def test_all_slow_is_the_exact_process():
    """fast=(): the law of immigration-death from 0 is Poisson with mean m(t), m' = k(t) - d m,
    through a breakpoint at t = 2 where k doubles (a restart point: no step crosses it)."""
    k, d, switch = 10.0, 1.0, 2.0
    ts = np.array([0.0, 0.5, 1.0, 2.0, 2.5, 4.0])
    schedule = grn.Schedule(times=[0.0, switch], values={"boost": [0.0, 1.0]})
    sol = grn.simulate(
        _birth_death(k, d), ts, key=jax.random.key(0), n_cells=4000, schedule=schedule,
        solver=grn.Hybrid(dt=0.3, fast=()),
    )  # fmt: skip
    y = np.asarray(sol["X"], np.float64)
    assert np.all(y == np.round(y))  # jumps only
    m_switch = k / d * (1 - np.exp(-d * switch))
    late = ts > switch
    mean = np.where(
        late,
        m_switch * np.exp(-d * (ts - switch)) + 2 * k / d * (1 - np.exp(-d * (ts - switch))),
        k / d * (1 - np.exp(-d * ts)),
    )
    n = y.shape[0]
    got_mean, got_var = y.mean(axis=0), y.var(axis=0, ddof=1)
    for i in range(1, ts.size):
        assert abs(got_mean[i] - mean[i]) < Z * np.sqrt(mean[i] / n), (ts[i], got_mean[i])
        assert abs(got_var[i] - mean[i]) < Z * _var_se(y)[i], (ts[i], got_var[i])
    # The events fired are the reactions of the exact process: about int (k + d m) dt.
    assert np.asarray(sol.n_events).mean() > 0.9 * (k * 2 + 2 * k * 2)


def _isomerisation(kf=20.0, kb=20.0, ks=1000.0, d=1.0):
    """Slow production of A and degradation of B around a fast isomerisation A <-> B."""
    return grn.Network(
        species=["A", "B"],
        reactions=[
            grn.Reaction("-> A", grn.mass_action("ks"), "production"),
            grn.Reaction("A -> B", grn.mass_action("kf"), "forward"),
            grn.Reaction("B -> A", grn.mass_action("kb"), "backward"),
            grn.Reaction("B ->", grn.mass_action("d"), "degradation"),
        ],
        params={"kf": kf, "kb": kb, "ks": ks, "d": d},
        x0={"A": 1050, "B": 1000},
    )


def test_fast_channel_matches_the_exact_moments():
    """Two timescales: A <-> B at ~2e4 firings/h each (fast by the rule, CLE), production and
    degradation at 1e3/h (slow, exact). A first-order network: its exact (CME) means and
    covariances are the LNA's (the moment equations close), compared at every output time."""
    net = _isomerisation()
    ts = np.linspace(0.0, 1.0, 5)
    key = jax.random.key(1)
    sol = grn.simulate(net, ts, key=key, n_cells=1000, solver=grn.Hybrid(dt=0.001))
    exact = grn.simulate(net, ts, solver=grn.LNA())
    y = np.asarray(sol.ys, np.float64)  # (cells, times, species)
    mean = np.asarray(exact.ys, np.float64)[0]
    var = np.diagonal(np.asarray(exact.cov_within, np.float64)[0], axis1=-2, axis2=-1)
    n = y.shape[0]
    se_mean = np.sqrt(var[1:] / n)
    assert np.all(np.abs(y.mean(axis=0)[1:] - mean[1:]) < Z * se_mean)
    assert np.all(np.abs(y.var(axis=0, ddof=1)[1:] - var[1:]) < Z * _var_se(y)[1:])
    # Only the slow reactions jumped: about (ks + d B) per hour, not the ~4e4/h isomerisations.
    jumps = np.asarray(sol.n_events, np.float64).mean()
    assert 1500 < jumps < 2500
    assert not np.all(y == np.round(y))  # the fast channel moved the counts continuously


def test_partition_switches_to_fast_as_counts_grow():
    """Birth at 2000/h from X = 0: birth is slow until X reaches min_count (100), death until
    d X dt >= min_firings as well; then both are fast. Counts stay integers before the switch
    and the slow jumps stop after it; the mean at t = 6 is the exact one (the Euler steps' own
    error in it, (1 - d dt)^(t/dt) against exp(-d t), is 0.8 copies, 0.4 SE)."""
    k, d = 2000.0, 1.0
    net = _birth_death(k, d)
    ts = np.array([0.0, 0.02, 6.0])
    key = jax.random.key(2)
    auto = grn.simulate(net, ts, key=key, n_cells=500, solver=grn.Hybrid(dt=0.05))
    y = np.asarray(auto["X"], np.float64)
    assert np.all(y[:, 1] == np.round(y[:, 1])) and y[:, 1].max() < 100
    assert np.mean(y[:, 2] == np.round(y[:, 2])) < 0.05  # float32 spacing 2**-13 here
    mean = k / d * (1 - np.exp(-d * ts[2]))
    assert abs(y[:, 2].mean() - mean) < Z * np.sqrt(mean / y.shape[0])
    jumps = np.asarray(auto.n_events, np.float64)
    # All slow, the same process fires about k t + int d m dt > 20000 jumps per cell.
    assert jumps.max() < 400 and jumps.min() >= 100


@pytest.mark.parametrize("dt", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_dt_is_named(dt):
    with pytest.raises(ValueError, match=r"Hybrid\(dt=\.\.\.\)"):
        grn.Hybrid(dt=dt)


def test_unknown_fast_reaction_is_named():
    net = _isomerisation()
    with pytest.raises(ValueError, match="unknown reaction 'sideways'"):
        grn.simulate(
            net, [0.0, 1.0], key=jax.random.key(0),
            solver=grn.Hybrid(dt=0.1, fast=("forward", "sideways")),
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"Hybrid\(fast=\.\.\.\) must be None"):
        grn.Hybrid(dt=0.1, fast=["forward"])


def test_new_parameter_values_do_not_recompile():
    calls = []

    def production(x, p, u):
        calls.append(1)  # runs only while tracing
        return p["ks"]

    net = grn.Network(
        species=["A", "B"],
        reactions=[
            grn.Reaction("-> A", production, "production"),
            grn.Reaction("A -> B", grn.mass_action("kf"), "forward"),
            grn.Reaction("B ->", grn.mass_action("d"), "degradation"),
        ],
        params={"kf": 5.0, "ks": 50.0, "d": 1.0},
        x0={"A": 0, "B": 0},
    )
    solver = grn.Hybrid(dt=0.05)
    ts = [0.0, 1.0, 2.0]
    first = grn.simulate(net, ts, key=jax.random.key(0), n_cells=8, solver=solver)
    traced = len(calls)
    other = grn.simulate(
        net, ts, key=jax.random.key(0), n_cells=8, solver=solver, params={"ks": 500.0, "kf": 1.0}
    )
    assert len(calls) == traced
    assert np.asarray(other["A"])[:, -1].mean() > 2 * np.asarray(first["A"])[:, -1].mean()


def test_negative_propensity_is_a_result_code():
    """A rate law that turns negative stops the cell with invalid_propensity, not NaN."""
    net = grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", grn.mass_action("k"), "birth"),
            grn.Reaction("X ->", lambda x, p, u: 5.0 - x["X"], "bad"),
        ],
        params={"k": 50.0},
        x0={"X": 0},
    )
    solver = grn.Hybrid(dt=0.1, min_count=0, min_firings=0)  # all fast: the CLE's arithmetic
    sol = grn.simulate(
        net, [0.0, 5.0], key=jax.random.key(0), n_cells=4, solver=solver, throw=False
    )
    assert np.all(np.asarray(sol.result) == grn.RESULTS.invalid_propensity)


def test_time_event_is_a_restart_point():
    """Event(at=1) empties X exactly at t = 1 (no step crosses it); the automatic partition
    fires X's first 100 births as jumps and the rest by the CLE, before and after the event."""
    reset = grn.Event(at=1.0, assign={"X": 0})
    base = _birth_death(2000.0, 1.0)
    net = grn.Network(
        species=base.species, reactions=base.reactions, params={"k": 2000.0, "d": 1.0},
        inputs=["boost"], x0={"X": 0}, events=[reset],
    )  # fmt: skip
    solver = grn.Hybrid(dt=0.05)
    sol = grn.simulate(net, [0.0, 1.0, 1.5], key=jax.random.key(3), n_cells=8, solver=solver)
    y = np.asarray(sol["X"])
    assert np.all(y[:, 1] == 0) and np.all(y[:, 2] > 500)
    assert np.all(np.asarray(sol.n_events) >= 200)  # 100 jumps before X reaches 100, each time
