"""Outcomes over the course (path functionals through `fitting.Outcome`): persister burden and
resistance risk against a hand-integrated case, an integrated outcome of the linear cascade
against its exact means, its pathwise sensitivity, and windows outside the protocol.

The hand-integrated case: one species ``X -> 0`` at ``k X`` with a constant growth rate ``g``
and no death, solved by the ODE, so ``X(t) = X0 exp(-k t)``, ``log_weight = g t`` and X falls
below ``thr`` at ``t* = ln(X0 / thr) / k``. Then the persister burden (``X`` as the identity
species) over ``[t0, t1]`` is ``(exp(g t1) - exp(g max(t0, t*))) / g`` hours and the resistance
risk ``mu (exp(g t1) - exp(g max(t0, t*)))``.
"""

import math

import jax
import numpy as np
import pytest

import fitting
import grn

K, G, X0, THR, MU = 0.1, 0.02, 100.0, 30.0, 1e-3
T_STAR = math.log(X0 / THR) / K  # 12.04 h


@pytest.fixture(scope="module")
def decay():
    return grn.Network(
        species=["X"],
        reactions=[grn.Reaction("X ->", lambda x, p, u: p["k"] * (1 + u["Drug"]) * x["X"])],
        params={"k": K, "g": G},
        x0={"X": X0},
        inputs=["Drug"],
        growth=lambda x, p, u: p["g"] + 0.0 * x["X"],
    )


def _run(network, outcomes, ts):
    run = fitting.simulate_scenarios(
        network, None, [()], outcomes, grn.ODE(), 1, jax.random.key(0), ts=ts
    )
    return run.values[0, :, 0]


@pytest.mark.parametrize("t0, t1", [(0.0, 30.0), (15.0, 40.0)])
def test_burden_and_risk_match_hand_integral(decay, t0, t1):
    step = 0.05
    ts = np.arange(0.0, 40.0 + step / 2, step)
    burden = fitting.persister_burden(decay, t0 / 24, t1 / 24, threshold=THR, species="X")
    risk = fitting.resistance_risk(
        decay, t0 / 24, t1 / 24, mutation_rate=MU, threshold=THR, species="X"
    )
    got_burden, got_risk = _run(decay, [burden, risk], ts)
    a = max(t0, T_STAR)
    exact_hours = (math.exp(G * t1) - math.exp(G * a)) / G
    # trapezoid error: the indicator's jump (<= step x the weight) + the smooth part's
    # (t1 - t0) step^2 max|w''| / 12
    w_max = math.exp(G * t1)
    bound = step * w_max + (t1 - t0) * step**2 * G**2 * w_max / 12 + 1e-4 * exact_hours
    assert abs(got_burden * 24 - exact_hours) < bound
    assert abs(got_risk - MU * G * exact_hours) < MU * G * bound
    # and exactly the trapezoid rule over the output grid, summed by hand
    sol = grn.simulate(decay, ts, jax.random.key(0), grn.ODE(), 1)
    x, w = np.asarray(sol.ys[0, :, 0]), np.exp(np.asarray(sol.log_weight[0]))
    inside = (ts >= t0 - 1e-9) & (ts <= t1 + 1e-9)
    f = (w * (x < THR))[inside]
    trapezoid = float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(ts[inside])))
    assert got_burden * 24 == pytest.approx(trapezoid, rel=1e-5)
    assert got_risk == pytest.approx(MU * G * trapezoid, rel=1e-5)


def test_soft_burden_is_smooth_and_close(decay):
    ts = np.arange(0.0, 30.0 + 0.025, 0.05)
    hard = fitting.persister_burden(decay, 0, 30 / 24, threshold=THR, species="X")
    soft = fitting.persister_burden(decay, 0, 30 / 24, THR, softness=0.01, species="X")
    assert soft.name == "persister_burden_soft"
    h, s = _run(decay, [hard, soft], ts)
    # sigmoid of width 0.3 molecules around a crossing of slope k THR = 3 / h: ~0.1 h smeared
    assert abs(h - s) * 24 < 0.2 * math.exp(G * 30)


def test_sensitivity_of_integrated_outcome_matches_differences(decay):
    """The gradient route of a path functional: pathwise d burden / d u(t) per bin (ODE, reverse
    mode) against central differences of the same outcome."""
    ts = np.arange(0.0, 30.0 + 0.05, 0.1)
    edges = [0.0, 10.0, 20.0, 30.0]
    soft = fitting.persister_burden(decay, 0, 30 / 24, THR, softness=0.05, species="X")
    sens = fitting.sensitivity(
        decay, None, ["Drug"], edges, soft, grn.ODE(), 1, jax.random.key(0), ts=ts
    )
    eps = 1e-2
    for b in range(2):
        up, down = (
            fitting.simulate_scenarios(
                decay, None, [(fitting.Intervention("Drug", lv, edges[b], 10.0),)], [soft],
                grn.ODE(), 1, jax.random.key(0), ts=ts,
            ).values[0, 0, 0]
            for lv in (eps, 0.0)
        )  # fmt: skip
        assert sens.grad[0, b] == pytest.approx((up - down) / eps, rel=2e-2)
    # acting earlier hastens the crossing more; after it (t* = 12 h, 8 h with the drug) the
    # saturated sigmoid leaves almost nothing to gain
    assert sens.grad[0, 0] > 4 * sens.grad[0, 1] > 1e3 * abs(sens.grad[0, 2])


def test_outcome_window_outside_protocol_is_named(decay):
    burden = fitting.persister_burden(decay, 0.5, 2.0, threshold=THR, species="X")
    ts = np.arange(0.0, 25.0, 1.0)
    with pytest.raises(ValueError, match="'persister_burden'.*window \\[12, 48\\] h lies outside"):
        _run(decay, [burden], ts)
    late = fitting.Outcome("late", lambda x, lw: x["X"], 10.0, start_h=-5.0)
    with pytest.raises(ValueError, match="'late'.*outside the simulated protocol \\[0, 24\\]"):
        _run(decay, [late], ts)
    with pytest.raises(ValueError, match="start_day < end_day"):
        fitting.persister_burden(decay, 3, 2, species="X")
    with pytest.raises(ValueError, match="'w'.*start_h < time_h"):
        fitting.Outcome("w", lambda x, lw: x["X"], 10.0, start_h=10.0)
    with pytest.raises(ValueError, match="mutation_rate must be > 0"):
        fitting.resistance_risk(decay, mutation_rate=0.0, species="X")
    with pytest.raises(ValueError, match="no species 'S'"):
        fitting.persister_burden(decay)


def test_risk_needs_growth_of_the_state(decay):
    net = grn.Network(
        species=["X"],
        reactions=[grn.Reaction("X ->", grn.mass_action("k"))],
        params={"k": K},
        x0={"X": X0},
        inputs=["Drug"],
        growth=lambda x, p, u: 0.03 * (1 - u["Drug"]) + 0.0 * x["X"],
    )
    with pytest.raises(ValueError, match="growth rate depends on its inputs"):
        fitting.resistance_risk(net, species="X")
