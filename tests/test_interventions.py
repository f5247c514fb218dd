"""Interventions: scans, sensitivities and schedule optimisation against exact answers on a linear
cascade, bad specifications, and the built-in melanoma model's day-0 ranking.

The cascade ``-> Y`` at ``kY (1 + rho Drug)(1 - A)``, ``Y ->`` at ``muY Y``, ``Y -> Y + X`` at
``kX (1 - B) Y``, ``X ->`` at ``muX X`` has propensities linear in the counts, so the exact mean of
the jump process solves the linear ODE ``z' = M(u) z`` with ``z = (Y, X, 1)`` (matrix exponential
per segment), and the Euler-Maruyama mean of the CLE is ``z <- (I + h M) z`` per step. Both are
affine in each input's levels, so first-order sensitivities predict benefits exactly.
"""

import math

import jax
import numpy as np
import pytest
import scipy.linalg

import fitting
import grn
from fitting import Intervention, _scan as iv_mod

P = {"kY": 20.0, "rho": 1.0, "muY": 0.5, "kX": 0.2, "muX": 0.1}
T_END = 24.0
TS = np.arange(0.0, T_END + 1.0, 1.0)
STARTS = [0.0, 3.0, 8.0, 16.0]
EDGES = np.arange(0.0, T_END + 1.0, 4.0)
LEVELS = {"A": 1.0, "B": 0.6}
BASE = grn.Schedule(times=[0.0], values={"Drug": [1.0]})
Z_MAX = 4.5  # max |z| over <= 20 statistics: P(exceed) < 20 * 7e-6 under N(0, 1)


@pytest.fixture(scope="module")
def cascade():
    return grn.Network(
        species=["Y", "X"],
        reactions=[
            grn.Reaction(
                "-> Y", lambda x, p, u: p["kY"] * (1 + p["rho"] * u["Drug"]) * (1 - u["A"])
            ),
            grn.Reaction("Y ->", grn.mass_action("muY")),
            grn.Reaction("Y -> Y + X", lambda x, p, u: p["kX"] * (1 - u["B"]) * x["Y"]),
            grn.Reaction("X ->", grn.mass_action("muX")),
        ],
        params=P,
        x0={"Y": 40, "X": 80},
        inputs=["Drug", "A", "B"],
    )


def _generator(levels):
    drug, a, b = levels
    c1 = P["kY"] * (1 + P["rho"] * drug) * (1 - a)
    return np.array([[-P["muY"], 0.0, c1], [P["kX"] * (1 - b), -P["muX"], 0.0], [0, 0, 0.0]])


def _levels_at(t, interventions):
    u = {"Drug": 1.0, "A": 0.0, "B": 0.0}
    for iv in interventions:
        if iv.start_h <= t < iv.start_h + iv.duration_h:
            u[iv.target] = 1 - (1 - u[iv.target]) * (1 - iv.level)
    return u["Drug"], u["A"], u["B"]


def exact_mean_x(interventions, t_end=T_END):
    """E[X(t_end)] of the jump process (matrix exponential per constant segment), float64."""
    cuts = sorted({0.0, t_end} | {t for iv in interventions for t in (iv.start_h, iv.end_h)})
    cuts = [c for c in cuts if 0.0 <= c <= t_end]
    z = np.array([40.0, 80.0, 1.0])
    for a, b in zip(cuts[:-1], cuts[1:]):
        z = scipy.linalg.expm(_generator(_levels_at(a, interventions)) * (b - a)) @ z
    return z[1]


def euler_mean_x(interventions, h=0.25, t_end=T_END):
    """The Euler-Maruyama mean of X(t_end) for steps of h (all breakpoints on the h grid)."""
    z = np.array([40.0, 80.0, 1.0])
    for n in range(round(t_end / h)):
        z = z + h * _generator(_levels_at(n * h, interventions)) @ z
    return z[1]


def mean_x(day=T_END):
    return fitting.Outcome("mean_X", lambda x, lw: x["X"], day)


@pytest.fixture(scope="module")
def scanned(cascade):
    return fitting.scan(
        cascade,
        BASE,
        ["A", "B"],
        STARTS,
        [100.0],
        LEVELS,
        mean_x(),
        grn.SSA(),
        400,
        jax.random.key(0),
        ts=TS,
    )


# -- specifications -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="NFKBi", level=1.5), "level must be in \\[0, 1\\]"),
        (dict(target="NFKBi", level=-0.1), "level must be in \\[0, 1\\]"),
        (dict(target="NFKBi", level=0.5, start_h=-1.0), "start_h must be finite and >= 0"),
        (dict(target="NFKBi", level=0.5, duration_h=-2.0), "duration_h must be positive"),
        (dict(target="NFKBi", level=0.5, duration_h=0.0), "duration_h must be positive"),
        (dict(target="NFKBi", level=float("nan")), "level is NaN"),
        (dict(target="", level=0.5), "must be an input name"),
    ],
)
def test_bad_intervention(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Intervention(**kwargs)


def test_unknown_target_and_outcome(cascade):
    with pytest.raises(ValueError, match="unknown intervention target 'NFKBi'.*'Drug', 'A', 'B'"):
        fitting.scan(
            cascade,
            BASE,
            ["NFKBi"],
            [0.0],
            [10.0],
            1.0,
            mean_x(),
            grn.SSA(),
            2,
            jax.random.key(0),
            ts=TS,
        )
    with pytest.raises(ValueError, match="schedule sets unknown input 'BRAFi'"):
        fitting.scan(
            cascade,
            grn.Schedule([0.0], {"BRAFi": [1.0]}),
            ["A"],
            [0.0],
            [1.0],
            1.0,
            mean_x(),
            grn.SSA(),
            2,
            jax.random.key(0),
            ts=TS,
        )
    with pytest.raises(ValueError, match="unknown outcome kind 'tumour'"):
        fitting.make_outcome(cascade, "tumour", 29)
    with pytest.raises(ValueError, match="not an output time"):
        fitting.scan(
            cascade,
            BASE,
            ["A"],
            [0.0],
            [1.0],
            1.0,
            mean_x(2.5),
            grn.SSA(),
            2,
            jax.random.key(0),
            ts=TS,
        )
    with pytest.raises(ValueError, match="time bins"):
        fitting.sensitivity(
            cascade,
            BASE,
            ["A"],
            [4.0, 2.0],
            mean_x(),
            grn.CLE(dt=0.25),
            2,
            jax.random.key(0),
            ts=TS,
        )


def test_apply_combines_levels(cascade):
    sched = fitting.apply_interventions(
        cascade, BASE, Intervention("A", 0.5, 2.0, 4.0), Intervention("A", 0.5, 4.0, 10.0)
    )
    np.testing.assert_allclose(sched.times, [0.0, 2.0, 4.0, 6.0, 14.0])
    np.testing.assert_allclose(sched.values["A"], [0.0, 0.5, 0.75, 0.5, 0.0])
    np.testing.assert_allclose(sched.values["Drug"], 1.0)


# -- scan ---------------------------------------------------------------------------------------
def test_scan_matches_exact_means(scanned):
    value, se = scanned.base
    assert abs(value - exact_mean_x([])) / se < Z_MAX
    z_out, z_ben = [], []
    for row in scanned.rows:
        ivs = [Intervention(row["target"], row["level"], row["start_h"], row["duration_h"])]
        exact = exact_mean_x(ivs)
        z_out.append((row["outcome"] - exact) / row["outcome_se"])
        z_ben.append((row["benefit"] - (exact_mean_x([]) - exact)) / row["benefit_se"])
    assert np.max(np.abs(z_out)) < Z_MAX, z_out
    assert np.max(np.abs(z_ben)) < Z_MAX, z_ben


def test_rank_and_windows(scanned):
    table = fitting.rank(scanned)
    exact = {
        t: [exact_mean_x([]) - exact_mean_x([Intervention(t, LEVELS[t], s, 100.0)]) for s in STARTS]
        for t in ("A", "B")
    }
    for row in table:
        b = exact[row["target"]]
        # the known answer: the latest start before the exact benefit drops below 80 % of day 0
        k = next((k for k in range(1, len(b)) if b[k] < 0.8 * b[0]), len(b))
        assert row["window_h"] == STARTS[k - 1]
        # the design keeps the exact values clear of the 80 % line (else the test is moot)
        se = row["benefit_se"]
        assert all(abs(v - 0.8 * b[0]) > 4 * se for v in b[1:])
    order = sorted(exact, key=lambda t: -exact[t][0])
    assert abs(exact["A"][0] - exact["B"][0]) > 4 * table[0]["benefit_se"]
    assert [r["target"] for r in table] == order


def test_scan_does_not_recompile(cascade, scanned):
    """New starts, durations, levels and key (same counts): the compiled program is reused."""
    before = iv_mod.TRACE_COUNT["scenarios"]
    again = fitting.scan(
        cascade,
        BASE,
        ["A", "B"],
        [0.0, 2.5, 7.5, 12.5],
        [50.0],
        0.7,
        scanned.outcome,
        grn.SSA(),
        400,
        jax.random.key(3),
        ts=TS,
    )
    assert iv_mod.TRACE_COUNT["scenarios"] == before
    assert again.rows[1]["level"] == 0.7 and again.rows[1]["start_h"] == 2.5
    assert again.rows[1]["outcome"] != scanned.rows[1]["outcome"]


# -- sensitivity --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sens(cascade):
    return fitting.sensitivity(
        cascade,
        BASE,
        ["A", "B"],
        EDGES,
        mean_x(),
        grn.CLE(dt=0.25),
        400,
        jax.random.key(1),
        ts=TS,
    )


def test_sensitivity_matches_euler_mean_derivative(sens):
    eps = 1e-3
    for t, target in enumerate(("A", "B")):
        for b in range(len(EDGES) - 1):
            ivs = [Intervention(target, eps, EDGES[b], EDGES[b + 1] - EDGES[b])]
            exact = (euler_mean_x(ivs) - euler_mean_x([])) / eps  # affine in the level: exact
            z = (sens.grad[t, b] - exact) / sens.se[t, b]
            assert abs(z) < Z_MAX, (target, b, sens.grad[t, b], exact, sens.se[t, b])


def test_sensitivity_predicts_scan(sens, scanned):
    result = fitting.compare(sens, scanned)
    assert result["spearman"] >= 0.8
    windows = {w["target"]: w for w in sens.windows()}
    # d E[X(24)] / d u_B(t) = -kX E[Y](t) exp(-muX (24 - t)) is largest in the last bin
    assert windows["B"]["peak_bin_h"] == [20.0, 24.0]


def test_sensitivity_averages_its_levels_per_target(cascade):
    """With several levels per target, ``grad`` is the per-target mean of the single-level
    derivatives on the same cells (nodes of one target never mix with another's)."""

    def run(around):
        return fitting.sensitivity(
            cascade, BASE, ["A", "B"], EDGES, mean_x(), grn.CLE(dt=0.5), 40,
            jax.random.key(2), ts=TS, around=around,
        )  # fmt: skip

    both = run({"A": fitting.midpoints(0.8, 2), "B": [0.1, 0.9]})
    np.testing.assert_allclose(both.around, [[0.2, 0.6], [0.1, 0.9]])
    singles = [run({"A": a, "B": b}) for a, b in ((0.2, 0.1), (0.6, 0.9))]
    np.testing.assert_allclose(both.grad, (singles[0].grad + singles[1].grad) / 2, rtol=1e-5)
    assert np.all(both.grad[1] != 0) and not np.allclose(both.grad[0], both.grad[1])
    with pytest.raises(ValueError, match="same number of levels"):
        run({"A": [0.1, 0.2], "B": 0.3})
    with pytest.raises(ValueError, match="levels in \\[0, 1\\]"):
        run({"A": [0.1, 1.2]})


# -- schedule optimisation ----------------------------------------------------------------------
def test_projection_onto_budget():
    rng = np.random.default_rng(0)
    widths = np.array([1.0, 2.0, 3.0, 2.0])
    v = rng.normal(0.5, 1.0, (20, 4)).astype(np.float32)
    budget = np.full(20, 2.5)
    p = np.asarray(fitting.project_budget(jax.numpy.asarray(v), widths, budget))
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(p @ widths <= 2.5 + 1e-4)
    for row_v, row_p in zip(v, p):  # no feasible point is closer (random feasible candidates)
        q = rng.uniform(0, 1, (2000, 4))
        q = q[q @ widths <= 2.5]
        assert np.linalg.norm(row_v - row_p) <= np.min(np.linalg.norm(q - row_v, axis=1)) + 1e-5


def test_optimise_schedule_reaches_lp_optimum(cascade):
    budget = 8.0
    opt = fitting.optimise_schedule(
        cascade,
        BASE,
        ["A"],
        EDGES,
        budget,
        mean_x(),
        grn.CLE(dt=0.25),
        100,
        jax.random.key(2),
        steps=15,
        validate_cells=400,
    )
    widths = np.diff(EDGES)
    assert opt.levels[0] @ widths == pytest.approx(budget, rel=1e-3)

    def exact_with(levels):
        return exact_mean_x(
            [Intervention("A", float(lv), e, w) for lv, e, w in zip(levels[0], EDGES, widths) if lv]
        )

    # the exact optimum is a linear programme: fill the bins of largest exact gain first
    gain = [exact_mean_x([]) - exact_with(np.eye(len(widths))[b][None]) for b in range(len(widths))]
    lp, left = np.zeros(len(widths)), budget
    for b in np.argsort(gain)[::-1]:
        lp[b] = min(1.0, left / widths[b])
        left -= lp[b] * widths[b]
    best = exact_mean_x([]) - exact_with(lp[None])
    assert exact_mean_x([]) - exact_with(opt.levels) >= 0.98 * best
    ben, se = opt.benefit_over_constant
    assert ben / se > 4


# -- the built-in model -------------------------------------------------------------------------
def test_melanoma_day0_ranking():
    """MODEL.md behaviour 5 in the day-0 scan (CLE, dt = 0.1 h, 96 cells with per-cell kM1, 29
    days; a coarse step, cheap for CI: its numbers are biased against dt = 0.02 h and the exact
    SSA, e.g. viable cells at day 3 0.64 against 0.32, but not the directions checked here):
    NF-kB inhibition, NAC and EPIi each lower the SOX10-low fraction, NFKBi and NAC by more than
    half, and the BH3 mimetic (no path to SOX10) leaves it within two standard errors; NF-kB
    inhibition or NAC ranks first (issue 7; exact SSA, 64 cells: SOX10-low at day 29 0.11 with
    NAC, 0.25 NFKBi, 0.36 EPIi, control 0.88).
    """
    from grn.models._melanoma import melanoma, melanoma_cell_params

    net = melanoma()
    key_p, key = jax.random.split(jax.random.key(0))
    base = grn.Schedule(times=[0.0, 696.0], values={"BRAFi": [0.95, 0.0]})
    result = fitting.scan(
        net,
        base,
        ["NFKBi", "NAC", "EPIi", "BH3i"],
        [0.0],
        [696.0],
        {"NFKBi": 0.8, "NAC": 1.0, "EPIi": 0.8, "BH3i": 1.0},
        fitting.sox10_low_fraction(net, 29),
        grn.CLE(dt=0.1),
        96,
        key,
        params=melanoma_cell_params(key_p, 96),
        extra_outcomes=[
            fitting.viable_cells(3),
            fitting.viable_cells(29),
            fitting.persister_burden(net, 0, 29),
        ],
    )
    ranked = fitting.rank(result)
    benefit = {r["target"]: r["benefit"] for r in ranked}
    index = {r["target"]: k + 1 for k, r in enumerate(result.rows)}
    values = result.run.values[:, 0, :]
    assert benefit["NFKBi"] > 0.5 * result.base[0] and benefit["NAC"] > 0.5 * result.base[0]
    assert benefit["EPIi"] > 0
    d = values[index["BH3i"]] - values[0]  # paired, per cell
    assert abs(d.mean()) <= 2 * max(d.std(ddof=1) / math.sqrt(d.size), 1 / d.size)
    assert ranked[0]["target"] in ("NFKBi", "NAC") and ranked[-1]["target"] == "BH3i"
    assert math.isfinite(result.base[0]) and result.base[0] > 0.8
    # docs/interventions.md, population dynamics: on BRAFi alone the primed SOX10-high cells die
    # (viable cells per starting cell fall below 1 by day 3) and the tolerant ones persist and
    # regrow (day 29 above day 3); every day-0 intervention lowers viable cells at days 3 and 29
    # and the persister burden, each by more than two standard errors (paired over cells)
    v3, se3 = result.run.outcome(1)
    assert 1.0 - v3[0] > 2 * se3[0]
    d = result.run.values[0, 2] - result.run.values[0, 1]
    assert d.mean() > 2 * d.std(ddof=1) / math.sqrt(d.size)
    for o in (1, 2, 3):
        benefit, se = result.run.benefit(o)
        assert np.all(benefit[1:] > 2 * se[1:]), (result.run.outcomes[o].name, benefit, se)


def test_pairs_integrated_outcome_and_delay_cost(cascade):
    """A scan with a pair and an integrated outcome (int_0^24 X dt, trapezoid on TS) against the
    exact means; the cost per day of delay against the exact slope of benefit on start."""
    integral = fitting.Outcome("int_X", lambda x, lw: x["X"], T_END, start_h=0.0)
    result = fitting.scan(
        cascade, BASE, ["A", "B"], STARTS, [100.0], LEVELS, integral, grn.SSA(), 400,
        jax.random.key(5), ts=TS, pairs=[("A", "B")],
    )  # fmt: skip

    def exact(ivs):
        x = [exact_mean_x(ivs, t) for t in TS]
        return float(np.sum(0.5 * (np.add(x[1:], x[:-1])) * np.diff(TS)))

    z = []
    for row in result.rows + result.pairs:
        ivs = [Intervention(t, LEVELS[t], row["start_h"], 100.0) for t in row["target"].split("+")]
        z.append((row["benefit"] - (exact([]) - exact(ivs))) / row["benefit_se"])
    assert np.max(np.abs(z)) < Z_MAX, z
    (pair,) = result.pairs
    assert pair["target"] == "A+B" and pair["level"] == "1+0.6"
    assert pair["over_best_single"] > 4 * pair["over_best_single_se"]
    for r in fitting.rank(result):
        b = [exact([]) - exact([Intervention(r["target"], LEVELS[r["target"]], s, 100.0)])
             for s in STARTS]  # fmt: skip
        s = np.asarray(STARTS) / 24
        slope = np.polyfit(s, b, 1)[0]
        delay = r["delay"]
        assert abs(delay["cost_per_day"] + slope) < Z_MAX * delay["cost_per_day_se"]
        assert delay["cost_per_day"] > 4 * delay["cost_per_day_se"]
        assert math.isfinite(delay["window_se_h"]) and 0 <= delay["window_h"] <= STARTS[-1]
