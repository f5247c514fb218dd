"""fitting's data tables, observables, parameter spaces and loss functions (no simulation)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import fitting
import grn

HEADER = "observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters\n"


def _write(path, text):
    path.write_text(text)
    return path


# -- Measurements ------------------------------------------------------------------------------
def test_read_tables_and_schedules(tmp_path):
    meas = _write(
        tmp_path / "m.tsv",
        HEADER + "X_obs\tdrug\t1.0\t3.5\t0.5\nX_obs\tctrl\t2\t4\t0.5\nX_obs\tdrug\t2\t5\t1\n",
    )
    cond = _write(
        tmp_path / "c.csv", "conditionId,time,I\ndrug,5,0\ndrug,0,2.0\nctrl,0,\n"
    )  # rows out of order, empty level = 0
    m = fitting.Measurements.read(meas, cond)
    assert len(m) == 3
    assert m.condition_ids == ("drug", "ctrl")
    np.testing.assert_array_equal(m.time, [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(m.sigma, [0.5, 0.5, 1.0])
    s = m.schedule("drug")
    np.testing.assert_array_equal(s.times, [0.0, 5.0])
    np.testing.assert_array_equal(s.values["I"], [2.0, 0.0])
    np.testing.assert_array_equal(m.schedule("ctrl").values["I"], [0.0])
    m.check(["X_obs"], ["I"])
    # round trip through write/read
    m2 = fitting.Measurements.read(
        m.write(tmp_path / "w.csv"), m.write_conditions(tmp_path / "wc.tsv")
    )
    for field in ("observable", "condition", "time", "value", "sigma", "cell"):
        np.testing.assert_array_equal(getattr(m2, field), getattr(m, field))
    np.testing.assert_array_equal(m2.schedule("drug").values["I"], [2.0, 0.0])


def test_single_cell_rows(tmp_path):
    text = "observableId,simulationConditionId,time,measurement,noiseParameters,cellId\n"
    text += "X,c,1,3,,a\nX,c,1,5,,b\nX,c,1,4.2,0.3,\n"
    m = fitting.Measurements.read(_write(tmp_path / "m.csv", text))
    np.testing.assert_array_equal(m.is_cell, [True, True, False])
    assert np.isnan(m.sigma[0]) and m.sigma[2] == 0.3


@pytest.mark.parametrize(
    "row, message",
    [
        ("X_obs\tc\t-1\t3\t0.5\n", "line 3: negative time"),
        ("X_obs\tc\t1\tnan\t0.5\n", "line 3: measurement must be finite"),
        ("X_obs\tc\t1\tabc\t0.5\n", "line 3: measurement must be a number"),
        ("X_obs\tc\t1\t3\t\n", "line 3: missing noiseParameters"),
        ("X_obs\tc\t1\t3\t0\n", "line 3: noiseParameters must be positive"),
        ("X_obs\tc\t1\t3\n", "line 3: 4 fields for 5 columns"),
        ("X_obs\tother\t1\t3\t0.5\n", "line 3: condition 'other' differs"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    path = _write(tmp_path / "m.tsv", HEADER + "X_obs\tc\t0.5\t1\t0.5\n" + row)
    with pytest.raises(ValueError, match=message) as err:
        fitting.Measurements.read(path)
    assert str(path) in str(err.value)


def test_bad_tables(tmp_path):
    path = _write(tmp_path / "m.tsv", "observableId\ttime\tmeasurement\nX\t1\t2\n")
    with pytest.raises(ValueError, match="missing column 'simulationConditionId'"):
        fitting.Measurements.read(path)
    meas = _write(tmp_path / "m2.tsv", HEADER + "X_obs\tc\t1\t2\t1\nY\tc\t1\t2\t1\n")
    with pytest.raises(ValueError, match=r"m2.tsv line 3: unknown observable 'Y'"):
        fitting.Measurements.read(meas).check(["X_obs"], [])
    cond = _write(tmp_path / "c.tsv", "conditionId\ttime\tI\nd\t0\t1\n")
    with pytest.raises(ValueError, match=r"m2.tsv line 2: unknown condition 'c'"):
        fitting.Measurements.read(meas, cond)
    cond = _write(tmp_path / "c2.tsv", "conditionId\ttime\tJ\nc\t0\t1\nc\t0\t2\n")
    with pytest.raises(ValueError, match=r"c2.tsv line 3: condition 'c' sets its inputs twice"):
        fitting.Measurements.read(meas, cond)
    cond = _write(tmp_path / "c3.tsv", "conditionId\ttime\tJ\nc\t0\t1\n")
    with pytest.raises(ValueError, match=r"c3.tsv line 2: condition 'c' sets unknown input 'J'"):
        fitting.Measurements.read(meas, cond).check(["X_obs", "Y"], ["I"])


# -- Observables -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('true')",
        "X.real",
        "X if X else 1",
        "X > 2",
        "[X]",
        "lambda: X",
        "open(X)",
        "'a'",
        "X // 2",
    ],
)
def test_unsafe_or_bad_expressions_are_rejected(expr):
    with pytest.raises(ValueError, match="observable expression"):
        fitting.Observable(expr)


def test_expression_values_and_names():
    obs = fitting.Observable("S / (S + 20) + 2 * exp(-X) - -1")
    assert obs.names == ("S", "X")
    ys = jnp.array([[[10.0, 0.0], [20.0, 1.0]]])  # (cells, times, species [S, X])
    expect = np.array([10 / 30 + 2 + 1, 20 / 40 + 2 * np.exp(-1) + 1])
    np.testing.assert_allclose(obs.values(ys, ["S", "X"])[0], expect, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown species 'S'"):
        obs.check(["X"], "o")


def test_ensemble_statistics_and_nuisance():
    ys = jax.random.normal(jax.random.key(0), (1000, 3, 1)) * 2.0 + 5.0
    sp, params = ["X"], {"s": 2.0, "b": 1.0}
    x = np.asarray(ys[..., 0], np.float64)
    mean = fitting.Observable("X", scale="s", offset="b").summary(ys, sp, params)
    np.testing.assert_allclose(mean, 2 * x.mean(0) + 1, rtol=1e-5)
    np.testing.assert_allclose(
        fitting.Observable("X", "var").summary(ys, sp, {}), x.var(0, ddof=1), rtol=1e-4
    )
    hard = fitting.Observable("X", "fraction", threshold=6.0).summary(ys, sp, {}, hard=True)
    np.testing.assert_allclose(hard, (x > 6.0).mean(0), rtol=1e-6)
    soft = fitting.Observable("X", "fraction", threshold=6.0, width=1e-3).summary(ys, sp, {})
    np.testing.assert_allclose(soft, hard, atol=2e-3)  # only cells within ~0.01 of 6 differ
    below = fitting.Observable("X", "fraction", threshold=6.0, above=False)
    np.testing.assert_allclose(below.summary(ys, sp, {}, hard=True), 1 - hard, atol=1e-6)


def test_lna_delta_method():
    """On an LNA solution (mean mu, covariance Sigma) a linear observable has the exact Gaussian
    statistics: mean a.mu, variance a' Sigma a, fraction Phi((a.mu - c) / sd)."""
    mu = jnp.array([[[3.0, 4.0]]])
    cov = jnp.array([[[[2.0, 0.5], [0.5, 1.0]]]])
    sp = ["A", "B"]
    a = np.array([2.0, -1.0])
    var = a @ np.asarray(cov[0, 0]) @ a
    o = fitting.Observable("2 * A - B")
    np.testing.assert_allclose(o.summary(mu, sp, {}, cov), [2.0], rtol=1e-6)
    np.testing.assert_allclose(fitting.Observable("2*A - B", "var").summary(mu, sp, {}, cov), [var])
    frac = fitting.Observable("2*A - B", "fraction", threshold=3.0).summary(mu, sp, {}, cov)
    np.testing.assert_allclose(frac, [scipy.stats.norm.sf(3.0, 2.0, np.sqrt(var))], rtol=1e-5)
    with pytest.raises(ValueError, match="needs a distribution"):
        fitting.Observable("A", "fraction", threshold=1.0).summary(mu, sp, {}, deterministic=True)


# -- ParameterSpace ----------------------------------------------------------------------------
def test_parameter_space_round_trip_and_bounds():
    space = fitting.ParameterSpace(
        {
            "alpha": fitting.Parameter(6.0, 0.1, 1000.0, "log"),
            "b": {"init": -1.0, "lower": -5.0, "upper": 5.0, "scale": "linear"},
        },
        frozen={"mu": 0.1},
    )
    values = {"alpha": 3.7, "b": 2.5}
    phi = space.to_phi(values)
    np.testing.assert_allclose(phi["alpha"], np.log(3.7), rtol=1e-6)
    back = space.to_values(phi)
    assert set(back) == {"alpha", "b", "mu"}
    for name, value in {**values, "mu": 0.1}.items():
        np.testing.assert_allclose(back[name], value, rtol=1e-6)
    clipped = space.to_values(space.project({"alpha": jnp.log(5e3), "b": jnp.asarray(-9.0)}))
    np.testing.assert_allclose([clipped["alpha"], clipped["b"]], [1000.0, -5.0], rtol=1e-5)
    starts = space.starts(jax.random.key(0), 200)
    natural = space.to_values(starts)
    assert float(natural["alpha"][0]) == pytest.approx(6.0) and float(natural["b"][0]) == -1.0
    assert np.all((natural["alpha"] >= 0.1 * (1 - 1e-6)) & (natural["alpha"] <= 1000 * (1 + 1e-6)))
    # log-uniform: ln(alpha) uniform on [ln 0.1, ln 1000]; KS test on the 199 draws
    u = (np.asarray(starts["alpha"][1:], np.float64) - np.log(0.1)) / np.log(1e4)
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3


@pytest.mark.parametrize(
    "free, frozen, message",
    [
        ({"a": {"init": 1, "lower": 0, "upper": 2}}, None, "log scale needs a positive lower"),
        ({"a": {"init": 3, "lower": 1, "upper": 2}}, None, "init 3.0 lies outside"),
        ({"a": {"init": 1, "lower": 2, "upper": 1}}, None, "lower 2.0 must be below"),
        ({"a": {"init": 1, "lower": 0.5}}, None, "missing 'upper'"),
        ({"a": {"init": 1, "lower": 0.5, "upper": 2, "scal": "log"}}, None, "unknown key 'scal'"),
        ({"a": fitting.Parameter(1, 0.5, 2)}, {"a": 1.0}, "both free and frozen"),
        ({}, None, "at least one free"),
    ],
)
def test_parameter_space_rejects(free, frozen, message):
    with pytest.raises(ValueError, match=message):
        fitting.ParameterSpace(free, frozen)


# -- losses ------------------------------------------------------------------------------------
def test_gaussian_nll_is_the_normal_log_density():
    rng = np.random.default_rng(1)
    y, m, s = rng.normal(size=5), rng.normal(size=5), rng.uniform(0.5, 2, 5)
    expect = -scipy.stats.norm.logpdf(y, m, s).sum()
    assert float(fitting.gaussian_nll(m, y, s)) == pytest.approx(expect, rel=1e-5)
    mask = np.array([1, 1, 0, 1, 0], bool)
    expect = -scipy.stats.norm.logpdf(y[mask], m[mask], s[mask]).sum()
    assert float(fitting.gaussian_nll(m, y, s, mask)) == pytest.approx(expect, rel=1e-5)


def test_energy_distance_matches_scipy_and_masks():
    """scipy's energy_distance is sqrt(2 int (F - G)^2) = sqrt(D) for the V-statistic D."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 300), rng.normal(0.5, 1.5, 120)
    d = float(fitting.energy_distance(jnp.asarray(x), jnp.asarray(y)))
    assert d == pytest.approx(scipy.stats.energy_distance(x, y) ** 2, rel=1e-4)
    padded = jnp.concatenate([jnp.asarray(y), jnp.full(30, 1e6)])
    mask = jnp.arange(150) < 120
    assert float(fitting.energy_distance(jnp.asarray(x), padded, mask)) == pytest.approx(
        d, rel=1e-5
    )
    assert float(fitting.energy_distance(jnp.asarray(x), jnp.asarray(x))) == pytest.approx(
        0.0, abs=1e-6
    )


def test_moment_nll():
    """Zero when the simulated moments equal the data's; otherwise the stated z-scores."""
    rng = np.random.default_rng(3)
    y = rng.normal(2.0, 3.0, 400)
    n, ybar, s2 = y.size, y.mean(), y.var(ddof=1)
    sim = jnp.asarray(y)[None]
    assert float(fitting.moment_nll(sim, jnp.asarray(y)[None], jnp.ones((1, n), bool))) < 1e-6
    x = rng.normal(2.5, 2.0, 500)
    z1 = (ybar - x.mean()) / np.sqrt(s2 / n)
    z2 = (s2 - x.var(ddof=1)) / (s2 * np.sqrt(2 / (n - 1)))
    got = float(fitting.moment_nll(jnp.asarray(x)[None], jnp.asarray(y)[None], jnp.ones((1, n))))
    assert got == pytest.approx(0.5 * (z1**2 + z2**2), rel=1e-4)


def test_loss_gradients_against_float64_finite_differences():
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(0, 1, 40))
        y = jnp.asarray(rng.normal(0.3, 1.2, 25))
        mask = jnp.arange(25) < 20
        sigma = jnp.asarray(rng.uniform(0.5, 1.5, 40))

        def losses(theta):
            sim = theta[0] + theta[1] * x
            return (
                fitting.energy_distance(sim, y, mask)
                + fitting.moment_nll(sim[None], y[None], mask[None])
                + fitting.gaussian_nll(sim, x + 0.1, sigma)
            )

        theta = jnp.array([0.2, 1.3])
        grad = np.asarray(jax.grad(losses)(theta))
        h = 1e-6
        fd = np.array(
            [(losses(theta + h * e) - losses(theta - h * e)) / (2 * h) for e in np.eye(2)]
        )
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_problem_validates_names():
    net = grn.models.immigration_death()
    m = fitting.Measurements.from_rows(
        [
            dict(
                observableId="X_obs",
                simulationConditionId="c",
                time=1.0,
                measurement=1.0,
                noiseParameters=1.0,
            )
        ]
    )
    space = fitting.ParameterSpace({"alpha": fitting.Parameter(1.0, 0.1, 10.0)})
    with pytest.raises(ValueError, match="unknown observable 'X_obs'"):
        fitting.Problem(net, m, {"Y": "X"}, space)
    with pytest.raises(ValueError, match="unknown species 'Z'"):
        fitting.Problem(net, m, {"X_obs": "Z"}, space)
    with pytest.raises(ValueError, match="nuisance parameter 's'"):
        fitting.Problem(net, m, {"X_obs": fitting.Observable("X", scale="s")}, space)
    bad = fitting.ParameterSpace({"beta": fitting.Parameter(1.0, 0.1, 10.0)})
    with pytest.raises(ValueError, match="parameter 'beta' is neither"):
        fitting.Problem(net, m, {"X_obs": "X"}, bad)
    with pytest.raises(ValueError, match="fraction of cells needs"):
        frac = fitting.Observable("X", "fraction", threshold=2.0)
        fitting.Problem(net, m, {"X_obs": frac}, space, solver=grn.ODE())
    problem = fitting.Problem(net, m, {"X_obs": "X"}, space, solver=grn.SSA())
    with pytest.raises(ValueError, match="no pathwise gradient|not a gradient"):
        fitting.fit(problem, key=jax.random.key(0), steps=1, progress=False)
