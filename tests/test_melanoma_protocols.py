"""Melanoma protocols (schedules, output times) and observables on hand-built solutions with known
answers, Sarle's coefficient against scipy, and one short simulation (about 25 s on 2 cores)."""

import dataclasses
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import grn
from grn._simulate import TRACE_COUNT
from grn.models import (
    apoptotic_priming,
    bimodality_coefficient,
    braf_schedule,
    melanoma_observables,
    protocol_times,
    sox10_low_fraction,
    wave_scores,
)
from grn.models._melanoma import SPECIES, X0, melanoma, melanoma_cell_params
from grn.models._melanoma_protocols import default_sox10_threshold


def level(schedule, name, t):
    """The level of ``name`` at time ``t`` under grn.Schedule's rule (last breakpoint <= t)."""
    i = np.searchsorted(schedule.times, t, side="right") - 1
    if i < 0 or name not in schedule.values:
        return 0.0
    return float(schedule.values[name][i])


# -- schedules ---------------------------------------------------------------------------------
def test_default_protocol():
    s = braf_schedule()
    assert s.times.tolist() == [0.0, 29 * 24.0]
    for t, expected in [(-1.0, 0.0), (0.0, 0.95), (695.9, 0.95), (696.0, 0.0), (1536.0, 0.0)]:
        assert level(s, "BRAFi", t) == expected
    assert set(s.values) == {"BRAFi"}


def test_no_removal_and_level():
    s = braf_schedule(on_days=3.5, off_days=0, level=0.5)
    assert s.times.tolist() == [0.0]
    assert level(s, "BRAFi", 1e6) == 0.5
    # never removed, so an intervention may start at any time
    s = braf_schedule(on_days=3.5, off_days=0, interventions={"NAC": (1.0, 500.0)})
    assert s.times.tolist() == [0.0, 500.0] and level(s, "NAC", 1e6) == 1.0


def test_interventions_merge_breakpoints():
    doses = {"NFKBi": (0.8, 48.0, 100.0), "NAC": (1.0, 10.0), "BH3i": (0.3, 696.0, 24.0)}
    s = braf_schedule(on_days=29, off_days=35, interventions=doses)
    assert s.times.tolist() == [0.0, 10.0, 48.0, 148.0, 696.0, 720.0]
    expected = {  # t -> levels of BRAFi, NFKBi, NAC, BH3i, written out by hand
        0.0: (0.95, 0, 0, 0),
        9.99: (0.95, 0, 0, 0),
        10.0: (0.95, 0, 1, 0),
        47.0: (0.95, 0, 1, 0),
        48.0: (0.95, 0.8, 1, 0),
        147.9: (0.95, 0.8, 1, 0),
        148.0: (0.95, 0, 1, 0),
        696.0: (0, 0, 1, 0.3),
        719.0: (0, 0, 1, 0.3),
        720.0: (0, 0, 1, 0),
        1500.0: (0, 0, 1, 0),
    }
    for t, levels in expected.items():
        got = tuple(level(s, n, t) for n in ("BRAFi", "NFKBi", "NAC", "BH3i"))
        assert got == pytest.approx(levels), t
    # the schedule is accepted by the model and drives it
    times, table = s.as_arrays(melanoma().inputs, jnp.float32)
    assert table.shape == (7, 5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"interventions": {"FOO": (1.0, 0.0)}}, ValueError, "unknown input 'FOO'"),
        ({"interventions": {"BRAFi": (1.0, 0.0)}}, ValueError, "protocol sets BRAFi"),
        ({"interventions": {"NAC": (1.5, 0.0)}}, ValueError, "'NAC': level must be in"),
        ({"interventions": {"NAC": (-0.1, 0.0)}}, ValueError, "'NAC': level must be in"),
        ({"interventions": {"EPIi": (0.8, -1.0)}}, ValueError, "'EPIi': start_h"),
        ({"interventions": {"EPIi": (0.8, 1.0, 0.0)}}, ValueError, "'EPIi': duration_h"),
        ({"interventions": {"EPIi": (0.8, 1.0, -5.0)}}, ValueError, "'EPIi': duration_h"),
        ({"interventions": {"EPIi": (0.8, float("nan"))}}, ValueError, "'EPIi': start_h is NaN"),
        ({"interventions": {"EPIi": (0.8, 2000.0)}}, ValueError, "'EPIi': start_h 2000"),
        ({"interventions": {"EPIi": 0.8}}, TypeError, "'EPIi' must be"),
        ({"interventions": {"EPIi": ("a", 1.0)}}, TypeError, "'EPIi': level must be a number"),
        ({"interventions": [("EPIi", 0.8, 1.0)]}, TypeError, "interventions must be a mapping"),
        ({"level": 1.2}, ValueError, "BRAFi level"),
        ({"on_days": 0}, ValueError, "on_days"),
        ({"off_days": -1}, ValueError, "off_days"),
        ({"on_days": math.inf}, ValueError, "on_days"),
    ],
)
def test_schedule_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        braf_schedule(**kwargs)


def test_protocol_times():
    ts = protocol_times()
    np.testing.assert_array_equal(ts, 24.0 * np.arange(65))
    ts = protocol_times(1.25, 1.0, per_day=2)
    np.testing.assert_array_equal(ts, [0, 12, 24, 30, 36, 48, 54])
    with pytest.raises(ValueError, match="per_day"):
        protocol_times(per_day=0)
    with pytest.raises(ValueError, match="off_days"):
        protocol_times(off_days=-2)


# -- observables on hand-built solutions --------------------------------------------------------
def hand_solution(s, w1=None, w2=None, b=None, log_weight=None, result=None):
    """A melanoma-shaped Solution (cells, times) with the given S, W1, W2, B; others 0."""
    s = np.asarray(s, np.float32)
    ys = np.zeros(s.shape + (len(SPECIES),), np.float32)
    for name, v in (("S", s), ("W1", w1), ("W2", w2), ("B", b)):
        if v is not None:
            ys[..., SPECIES.index(name)] = v
    cells, times = s.shape
    return grn.Solution(
        ts=jnp.arange(times, dtype=jnp.float32) * 24.0,
        ys=jnp.asarray(ys),
        log_weight=jnp.zeros((cells, times)) if log_weight is None else jnp.asarray(log_weight),
        n_events=jnp.zeros(cells, jnp.int32),
        result=jnp.zeros(cells, jnp.int32) if result is None else jnp.asarray(result),
        species=SPECIES,
    )


def test_sox10_low_fraction_known():
    assert default_sox10_threshold() == X0["S"] / 2
    # 8 cells, 3 times: 0, 3 and 8 cells below X0["S"] / 2 = 389
    s = np.full((8, 3), 700.0)
    s[:3, 1] = 100.0
    s[:, 2] = 388.0
    p, se = sox10_low_fraction(hand_solution(s))
    np.testing.assert_allclose(p, [0.0, 3 / 8, 1.0])
    np.testing.assert_allclose(se, [0.0, math.sqrt(3 / 8 * 5 / 8 / 8), 0.0], rtol=1e-6)
    p, _ = sox10_low_fraction(hand_solution(s), threshold=50.0)
    np.testing.assert_allclose(p, 0.0)
    # a failed cell (NaN after its failure) is left out
    s_fail = np.vstack([s, np.full((1, 3), np.nan)])
    p, se = sox10_low_fraction(hand_solution(s_fail, result=[0] * 8 + [1]))
    np.testing.assert_allclose(p, [0.0, 3 / 8, 1.0])
    # per-cell weights exp(log_weight): two cells, weights 1 : 3
    s2 = np.array([[100.0], [700.0]])
    lw = np.log([[1.0], [3.0]])
    p, se = sox10_low_fraction(hand_solution(s2, log_weight=lw), weighted=True)
    n_eff = 1 / (0.25**2 + 0.75**2)
    np.testing.assert_allclose(p, [0.25], rtol=1e-6)
    np.testing.assert_allclose(se, [math.sqrt(0.25 * 0.75 / n_eff)], rtol=1e-5)
    # concentrations: Omega_slow = 2 halves S, so 700 copies read as 350 < 389
    p, _ = sox10_low_fraction(hand_solution(s), params={"Omega_slow": 2.0})
    np.testing.assert_allclose(p, [1.0, 1.0, 1.0])


def test_soft_sox10_fraction_and_its_gradient():
    rng = np.random.default_rng(0)
    s = rng.uniform(100.0, 800.0, size=(50, 2)).astype(np.float32).astype(np.float64)
    width = 20.0
    sol = hand_solution(s)
    p, se = sox10_low_fraction(sol, soft=width)
    f = scipy.special.expit((X0["S"] / 2 - s) / width)
    np.testing.assert_allclose(p, f.mean(0), rtol=1e-5)
    np.testing.assert_allclose(se, f.std(0) / math.sqrt(50), rtol=1e-4)
    # the hard fraction is the soft one's limit
    hard, _ = sox10_low_fraction(sol)
    np.testing.assert_allclose(sox10_low_fraction(sol, soft=1e-3)[0], hard, atol=1 / 50)

    # d p / d threshold against float64 central differences, traced under jit
    with jax.enable_x64(True):
        sol64 = eqx.tree_at(lambda x: x.ys, sol, jnp.asarray(sol.ys, jnp.float64))

        @jax.jit
        def frac(theta):
            return sox10_low_fraction(sol64, threshold=theta, soft=width)[0][0]

        theta, h = X0["S"] / 2, 1e-3  # where f was evaluated
        grad = jax.grad(frac)(jnp.float64(theta))
        fd = (frac(theta + h) - frac(theta - h)) / (2 * h)
        expected = np.mean(f[:, 0] * (1 - f[:, 0]) / width)
        np.testing.assert_allclose(grad, fd, rtol=1e-6)
        np.testing.assert_allclose(grad, expected, rtol=1e-9)


def test_sox10_low_validation():
    sol = hand_solution(np.ones((4, 2)))
    with pytest.raises(ValueError, match="threshold"):
        sox10_low_fraction(sol, threshold=-1.0)
    with pytest.raises(ValueError, match="soft"):
        sox10_low_fraction(sol, soft=0.0)
    other = dataclasses.replace(sol, species=tuple(f"X{i}" for i in range(13)))
    with pytest.raises(ValueError, match="no species"):
        wave_scores(other)
    with pytest.raises(TypeError, match="grn.Solution"):
        apoptotic_priming(np.ones((3, 4)))


def test_wave_scores_and_priming_known():
    w1 = np.array([[10.0, 20.0], [30.0, 40.0]])
    w2 = np.array([[1.0, 2.0], [5.0, 6.0]])
    b = np.array([[20.0, 0.0], [60.0, 180.0]])
    sol = hand_solution(np.ones((2, 2)), w1=w1, w2=w2, b=b)
    m1, m2 = wave_scores(sol)
    np.testing.assert_allclose(m1, [20.0, 30.0])
    np.testing.assert_allclose(m2, [3.0, 4.0])
    # B / (B + 20): (0.5, 0.75) at t0 and (0, 0.9) at t1
    np.testing.assert_allclose(apoptotic_priming(sol), [0.625, 0.45], rtol=1e-6)
    # KBh = 60, Omega_slow = 2: B read as (10, 30 | 0, 90)
    primed = apoptotic_priming(sol, params={"KBh": 60.0, "Omega_slow": 2.0})
    np.testing.assert_allclose(primed, [(10 / 70 + 30 / 90) / 2, (0 + 90 / 150) / 2], rtol=1e-6)
    # per-cell parameters broadcast over times
    primed = apoptotic_priming(sol, params={"KBh": jnp.array([20.0, 60.0])})
    np.testing.assert_allclose(primed, [(0.5 + 0.5) / 2, (0 + 0.75) / 2], rtol=1e-6)
    # weighted: all weight on cell 1
    lw = np.array([[-1e9, -1e9], [0.0, 0.0]])
    m1, _ = wave_scores(hand_solution(np.ones((2, 2)), w1=w1, log_weight=lw), weighted=True)
    np.testing.assert_allclose(m1, [30.0, 40.0])


def test_melanoma_observables_table():
    s = np.array([[700.0, 100.0], [700.0, 700.0], [100.0, 700.0], [700.0, 100.0], [np.nan] * 2])
    b = np.full((5, 2), 20.0)
    lw = np.log(np.array([[1.0, 2.0]] * 4 + [[np.nan, np.nan]]))
    sol = hand_solution(s, b=b, log_weight=lw, result=[0, 0, 0, 0, 3])
    out = melanoma_observables(sol)
    np.testing.assert_allclose(out["day"], [0.0, 1.0])
    np.testing.assert_allclose(out["sox10_low_fraction"], [0.25, 0.5])
    np.testing.assert_allclose(out["priming"], [0.5, 0.5])
    np.testing.assert_allclose(out["viable_cells"], [1.0, 2.0], rtol=1e-6)
    expected_bc = bimodality_coefficient(s[:4].astype(np.float64))
    np.testing.assert_allclose(out["S_bimodality"], expected_bc, rtol=1e-5)
    assert all(v.dtype == np.float64 and v.shape == (2,) for v in out.values())


# -- Sarle's bimodality coefficient -------------------------------------------------------------
def scipy_bc(x, axis=0):
    n = x.shape[axis]
    g = scipy.stats.skew(x, axis=axis, bias=False)
    k = scipy.stats.kurtosis(x, axis=axis, bias=False)
    return (g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def test_bimodality_coefficient_against_scipy():
    rng = np.random.default_rng(1)
    unimodal = rng.normal(500.0, 50.0, size=(300, 3))
    bimodal = np.concatenate([rng.normal(100, 20, (150, 3)), rng.normal(700, 40, (150, 3))])
    skewed = rng.exponential(100.0, size=(7, 3))  # small n: the bias corrections matter
    for x in (unimodal, bimodal, skewed):
        np.testing.assert_allclose(bimodality_coefficient(x), scipy_bc(x), rtol=1e-4)
        np.testing.assert_allclose(bimodality_coefficient(x.T, axis=1), scipy_bc(x), rtol=1e-4)
    assert np.all(bimodality_coefficient(unimodal) < 5 / 9)
    assert np.all(bimodality_coefficient(bimodal) > 5 / 9)


def test_bimodality_coefficient_edge_cases():
    assert np.isnan(bimodality_coefficient(np.full(10, 3.0)))
    with pytest.raises(ValueError, match="at least 4 values, got 3"):
        bimodality_coefficient(np.arange(3.0))
    # integer input is accepted; a symmetric two-point law has G1 = 0
    x = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(bimodality_coefficient(x), scipy_bc(x.astype(float)), rtol=1e-5)


# -- a short simulation -------------------------------------------------------------------------
def test_short_protocol_simulation():
    """Two days (one on drug, one off) with a NAC pulse, CLE, 16 cells with per-cell kM1; a second
    protocol with as many breakpoints (0, 6, 24, 36 h against 0, 12, 18, 24 h) reuses the compiled
    program."""
    net = melanoma()
    n = 16
    key_cells, key_sim = jax.random.split(jax.random.key(7))
    params = melanoma_cell_params(key_cells, n)
    ts = protocol_times(1.0, 1.0, per_day=4)
    solver = grn.CLE(dt=0.02)

    def run(schedule):
        return grn.simulate(
            net, ts, key=key_sim, solver=solver, n_cells=n, params=params, schedule=schedule
        )

    before = TRACE_COUNT["ensemble"]
    sol = run(braf_schedule(1.0, 1.0, interventions={"NAC": (1.0, 12.0, 6.0)}))
    out = melanoma_observables(sol)
    assert out["day"].tolist() == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]
    assert all(np.all(np.isfinite(v)) for k, v in out.items() if k != "S_bimodality")
    assert np.all((0 <= out["sox10_low_fraction"]) & (out["sox10_low_fraction"] <= 1))
    assert np.all((0 < out["priming"]) & (out["priming"] < 1))
    # BRAFi lowers ERK, which de-represses BIM: priming up on drug, back down after removal
    assert out["priming"][4] > 1.5 * out["priming"][0]
    assert out["priming"][8] < 0.75 * out["priming"][4]
    sol2 = run(braf_schedule(1.0, 1.0, level=0.5, interventions={"EPIi": (0.8, 6.0, 30.0)}))
    assert TRACE_COUNT["ensemble"] - before == 1
    assert not np.allclose(sol2.ys, sol.ys)


# -- the network diagram's edges ------------------------------------------------------------------
def test_network_diagram_edges_from_rate_laws():
    """docs/network_diagram.py derives the regulatory edges from the rate laws: spot-check them
    against MODEL.md's table (signs included) and its input-edge check."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "docs" / "network_diagram.py"
    spec = importlib.util.spec_from_file_location("network_diagram", path)
    diagram = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagram)
    net = melanoma()
    edges, self_loops = diagram.regulatory_edges(net, samples=6)
    expected = {
        ("E", "A"): 1,  # row 3
        ("A", "R"): -1,  # row 6: antioxidant removes ROS
        ("R", "I"): -1,  # row 12: ROS -> IKK degrades IkBa
        ("I", "Nn"): -1,  # rows 7-8
        ("Nn", "Im"): 1,  # row 9
        ("Im", "I"): 1,  # row 11
        ("Nn", "W1"): 1,
        ("W2", "W1"): -1,  # row 13
        ("Nn", "M"): 1,  # row 15
        ("M", "S"): -1,  # row 17
        ("S", "M"): -1,  # row 16: SOX10 restores chromatin
        ("M", "W2"): 1,  # row 19
        ("E", "B"): -1,  # row 21
        ("B", "Bc"): -1,  # row 25: sequestration
        ("C", "B"): 1,  # row 26
    }
    assert {k: edges.get(k) for k in expected} == expected
    assert {"M", "S"} <= self_loops and "E" not in self_loops and "W1" not in self_loops
    assert ("W1", "E") not in edges and ("S", "E") not in edges
    diagram.check_inputs(net)
