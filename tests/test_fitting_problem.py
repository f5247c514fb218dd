"""fitting.Problem with several conditions (input schedules), nuisance scales, variance
observables and single-cell snapshot rows, against exact immigration-death laws."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import fitting
import grn

ALPHA, MU, SCALE = 8.0, 0.5, 2.0


def exact_mean(t, condition):
    """m' = alpha I(t) - mu m, m(0) = 0; condition a: I = 1 then 0 from t = 2; b: I = 2."""
    t = np.asarray(t, np.float64)
    if condition == "b":
        return 2 * ALPHA / MU * (1 - np.exp(-MU * t))
    m2 = ALPHA / MU * (1 - np.exp(-MU * 2.0))
    return np.where(t <= 2.0, ALPHA / MU * (1 - np.exp(-MU * t)), m2 * np.exp(-MU * (t - 2.0)))


def test_conditions_nuisance_and_snapshots(tmp_path):
    network = grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", lambda x, p, u: p["alpha"] * u["I"], "immigration"),
            grn.Reaction("X ->", grn.mass_action("mu"), "death"),
        ],
        params={"alpha": ALPHA, "mu": MU},
        inputs=["I"],
    )
    rng = np.random.default_rng(0)
    cells = rng.poisson(exact_mean(3.0, "a"), 60)
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters\tcellId"]
    for c in ("a", "b"):
        for t in (1.0, 3.0):
            lines.append(f"X_obs\t{c}\t{t}\t{SCALE * exact_mean(t, c) + 0.4}\t0.5\t")
            lines.append(f"X_var\t{c}\t{t}\t{exact_mean(t, c) - 0.3}\t1.5\t")
    lines += [f"X_cell\ta\t3.0\t{v}\t\tcell{i}" for i, v in enumerate(cells)]
    (tmp_path / "m.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "c.tsv").write_text("conditionId\ttime\tI\na\t0\t1\na\t2\t0\nb\t0\t2\n")
    data = fitting.Measurements.read(tmp_path / "m.tsv", tmp_path / "c.tsv")
    space = fitting.ParameterSpace(
        {"alpha": fitting.Parameter(ALPHA, 0.1, 100.0)}, frozen={"s": SCALE}
    )
    observables = {
        "X_obs": fitting.Observable("X", scale="s"),
        "X_var": fitting.Observable("X", "var"),
        "X_cell": "X",
    }
    problem = fitting.Problem(
        network,
        data,
        observables,
        space,
        solver=grn.LNA(method=diffrax.Tsit5(), rtol=1e-8, atol=1e-8),
        n_cells=4000,
        key=jax.random.key(3),
    )
    values = space.to_values(space.initial_phi())
    summary, per_cell, ok = problem.predict(values, cells=True)
    assert bool(ok)
    ts = np.asarray(problem.ts)
    np.testing.assert_array_equal(ts, [0.0, 1.0, 3.0])
    for j, c in enumerate(problem.condition_ids):
        m = exact_mean(ts, c)
        np.testing.assert_allclose(summary[0, j], SCALE * m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(summary[1, j], m, rtol=1e-5, atol=1e-6)  # Poisson: var = mean
    # LNA draws for the snapshot: N(m, m) at t = 3 in condition a, checked by z-scores
    draws = np.asarray(per_cell[2, 0, :, 2], np.float64)
    m = exact_mean(3.0, "a")
    assert abs((draws.mean() - m) / np.sqrt(m / draws.size)) < 4
    se_var = np.sqrt(2 * m**2 / (draws.size - 1))
    assert abs((draws.var(ddof=1) - m) / se_var) < 4
    # the loss is the Gaussian NLL of the eight summary rows plus the energy distance
    rows = ~data.is_cell
    pred = []
    for o, c, t in zip(data.observable[rows], data.condition[rows], data.time[rows]):
        factor = SCALE if o == "X_obs" else 1.0
        pred.append(factor * exact_mean(t, c))
    nll = -scipy.stats.norm.logpdf(data.value[rows], pred, data.sigma[rows]).sum()
    energy = scipy.stats.energy_distance(draws, cells) ** 2
    assert float(problem.loss(space.initial_phi())) == pytest.approx(nll + energy, rel=1e-4)
    moments = fitting.Problem(
        network, data, observables, space, solver=problem.solver, n_cells=4000,
        key=jax.random.key(3), snapshot_loss="moments",
    )  # fmt: skip
    z1 = (cells.mean() - draws.mean()) / np.sqrt(cells.var(ddof=1) / cells.size)
    s2 = cells.var(ddof=1)
    z2 = (s2 - draws.var(ddof=1)) / (s2 * np.sqrt(2 / (cells.size - 1)))
    expect = nll + 0.5 * (z1**2 + z2**2)
    assert float(moments.loss(space.initial_phi())) == pytest.approx(expect, rel=1e-4)
    # a new data set with the same shapes is a new leaf value: jnp arrays, same structure
    assert jax.tree.structure(moments) == jax.tree.structure(
        fitting.Problem(
            network, data, observables, space, solver=problem.solver, n_cells=4000,
            key=jax.random.key(4), snapshot_loss="moments",
        )
    )  # fmt: skip
    assert isinstance(problem.rows["value"], jnp.ndarray)


def test_observable_order_survives_jit(tmp_path):
    """Observables given in non-alphabetical order: the loss is the same inside `filter_jit` (as
    `fitting.fit` evaluates it) and outside. A dict of observables comes back from jit with its
    keys sorted; the rows must still meet their own observables (regression: the demo's fit
    compared pERK rows with SOX10 predictions, a loss of 1.5e10 instead of 87)."""
    import equinox as eqx

    network = grn.models.immigration_death()
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters"]
    for t in (1.0, 2.0, 4.0):
        m = ALPHA / MU * (1 - np.exp(-MU * t))
        lines += [f"b_count\tc\t{t}\t{m}\t0.5", f"A_tenfold\tc\t{t}\t{10 * m}\t0.5"]
    (tmp_path / "m.tsv").write_text("\n".join(lines) + "\n")
    data = fitting.Measurements.read(tmp_path / "m.tsv")
    space = fitting.ParameterSpace({"alpha": fitting.Parameter(ALPHA, 0.1, 100.0)})
    problem = fitting.Problem(
        network,
        data,
        {"b_count": "X", "A_tenfold": "10 * X"},
        space,
        solver=grn.ODE(rtol=1e-8, atol=1e-8),
        x0={"X": 0.0},
    )
    values = {"alpha": jnp.asarray(ALPHA), "mu": jnp.asarray(MU)}
    eager = float(problem.loss_at(values))
    jitted = float(eqx.filter_jit(lambda p, v: p.loss_at(v))(problem, values))
    # At the truth every residual is ~0: the loss is the sum of log sigma + log(2 pi)/2 terms.
    assert eager == pytest.approx(6 * (np.log(0.5) + 0.5 * np.log(2 * np.pi)), abs=1e-3)
    assert jitted == pytest.approx(eager, rel=1e-6)


def test_cell_params_and_forward_mode_gradient(tmp_path):
    """Per-cell parameter factors reproduce `grn.simulate` with per-cell parameters (same key,
    same cells), and the forward-mode loss gradient equals the reverse-mode one."""
    network = grn.models.immigration_death()
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters"]
    lines += [f"X_obs\tc\t{t}\t{exact_mean(t, 'b') / 2}\t0.5" for t in (1.0, 2.0, 4.0)]
    (tmp_path / "m.tsv").write_text("\n".join(lines) + "\n")
    data = fitting.Measurements.read(tmp_path / "m.tsv")
    space = fitting.ParameterSpace(
        {"alpha": fitting.Parameter(6.0, 0.1, 100.0), "mu": fitting.Parameter(0.4, 0.01, 10.0)}
    )
    factors = np.exp(0.5 * np.random.default_rng(1).standard_normal(16))
    key = jax.random.key(4)
    problem = fitting.Problem(
        network, data, {"X_obs": "X"}, space, solver=grn.CLE(dt=0.05), n_cells=16, key=key,
        x0={"X": 0.0}, cell_params={"alpha": factors},
    )  # fmt: skip
    values = {"alpha": jnp.asarray(6.0), "mu": jnp.asarray(0.4)}
    got = problem.simulate(values)
    direct = grn.simulate(
        network, problem.ts, jax.random.split(key, 1)[0], problem.solver, 16,
        {"alpha": 6.0 * factors, "mu": 0.4}, x0={"X": 0.0}, throw=False,
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(got.ys[0]), np.asarray(direct.ys), rtol=1e-5)
    phi = space.to_phi({"alpha": np.array(6.0), "mu": np.array(0.4)})
    loss_r, grad_r = fitting._fit.value_and_grad(problem.loss, "reverse")(phi)
    loss_f, grad_f = fitting._fit.value_and_grad(problem.loss, "forward")(phi)
    assert float(loss_f) == pytest.approx(float(loss_r), rel=1e-6)
    for name in ("alpha", "mu"):
        assert abs(float(grad_r[name])) > 1e-3
        assert float(grad_f[name]) == pytest.approx(float(grad_r[name]), rel=1e-4)
    with pytest.raises(ValueError, match="16 positive finite factors"):
        fitting.Problem(
            network, data, {"X_obs": "X"}, space, solver=grn.CLE(dt=0.05), n_cells=16,
            cell_params={"alpha": factors[:3]},
        )  # fmt: skip
    with pytest.raises(KeyError, match="unknown parameter 'beta'"):
        fitting.Problem(
            network, data, {"X_obs": "X"}, space, solver=grn.CLE(dt=0.05), n_cells=16,
            cell_params={"beta": factors},
        )  # fmt: skip
    with pytest.raises(ValueError, match="gradient must be one of"):
        fitting.fit(problem, starts={"alpha": [6.0], "mu": [0.4]}, steps=1, gradient="sideways")


def test_lognormal_factors_stratify_the_spread():
    """Stratified factors exp(sd z_c), z_c = Phi^-1((c + 1/2)/n): their mean is within a tenth of
    a random draw's standard error of the log-normal mean exp(sd^2 / 2); with a key, draws."""
    n, sd = 64, 0.4
    f = fitting.lognormal_factors(n, sd)
    assert f.shape == (n,) and np.all(np.diff(f) > 0)
    np.testing.assert_allclose(np.log(f) + np.log(f)[::-1], 0.0, atol=1e-12)  # symmetric
    se_random = np.sqrt((np.exp(sd**2) - 1) * np.exp(sd**2) / n)
    assert abs(f.mean() - np.exp(sd**2 / 2)) < 0.1 * se_random
    drawn = fitting.lognormal_factors(n, sd, jax.random.key(0))
    assert drawn.shape == (n,) and not np.allclose(np.sort(drawn), f)
    assert np.allclose(drawn, fitting.lognormal_factors(n, sd, jax.random.key(0)))
    with pytest.raises(ValueError, match="log_sd"):
        fitting.lognormal_factors(n, -0.1)
    with pytest.raises(ValueError, match="n_cells"):
        fitting.lognormal_factors(0, sd)


def test_fit_frees_a_declared_distributions_median_and_spread(tmp_path):
    """A network's own `grn.LogNormal` is drawn by stratified quantiles with the median and log-sd
    taken from the fitted values ("alpha", "alpha.sigma"): the same cells as `grn.simulate` with
    those per-cell values, and a spread gradient equal to a central difference."""
    network = grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", grn.mass_action("alpha"), "immigration"),
            grn.Reaction("X ->", grn.mass_action("mu"), "death"),
        ],
        params={"alpha": ALPHA, "mu": MU},
        cell_params={"alpha": grn.LogNormal(median=ALPHA, sigma=0.3)},
    )
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters"]
    lines += [f"X_obs\tc\t{t}\t{exact_mean(t, 'b') / 2}\t0.5" for t in (1.0, 2.0, 4.0)]
    lines += [f"X_var\tc\t{t}\t{exact_mean(t, 'b')}\t2.0" for t in (1.0, 2.0, 4.0)]
    (tmp_path / "m.tsv").write_text("\n".join(lines) + "\n")
    data = fitting.Measurements.read(tmp_path / "m.tsv")
    space = fitting.ParameterSpace(
        {
            "alpha": fitting.Parameter(6.0, 0.1, 100.0),
            "alpha.sigma": fitting.Parameter(0.5, 0.01, 3.0),
        },
        frozen={"mu": MU},
    )
    key = jax.random.key(4)
    observables = {"X_obs": "X", "X_var": fitting.Observable("X", "var")}
    problem = fitting.Problem(
        network, data, observables, space, solver=grn.CLE(dt=0.05), n_cells=16, key=key,
        x0={"X": 0.0},
    )  # fmt: skip
    got = problem.simulate({"alpha": jnp.asarray(6.0), "alpha.sigma": jnp.asarray(0.5)})
    per_cell = 6.0 * np.exp(0.5 * grn.stratified_normal(16))
    direct = grn.simulate(
        network, problem.ts, jax.random.split(key, 1)[0], problem.solver, 16,
        {"alpha": per_cell, "mu": MU}, x0={"X": 0.0}, throw=False,
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(got.ys[0]), np.asarray(direct.ys), rtol=1e-5)
    # not freed: the network's own spread (0.3)
    median_only = fitting.ParameterSpace(
        {"alpha": fitting.Parameter(6.0, 0.1, 100.0)}, frozen={"mu": MU}
    )
    fixed = fitting.Problem(
        network, data, observables, median_only, solver=grn.CLE(dt=0.05), n_cells=16, key=key,
        x0={"X": 0.0},
    )  # fmt: skip
    direct = grn.simulate(
        network, problem.ts, jax.random.split(key, 1)[0], problem.solver, 16,
        {"alpha": 6.0 * np.exp(0.3 * grn.stratified_normal(16)), "mu": MU}, x0={"X": 0.0},
        throw=False,
    )  # fmt: skip
    got = fixed.simulate({"alpha": jnp.asarray(6.0)})
    np.testing.assert_allclose(np.asarray(got.ys[0]), np.asarray(direct.ys), rtol=1e-5)

    phi = space.to_phi({"alpha": np.array(6.0), "alpha.sigma": np.array(0.5)})
    _, grad_r = fitting._fit.value_and_grad(problem.loss, "reverse")(phi)
    h = 1e-2
    up = problem.loss({**phi, "alpha.sigma": phi["alpha.sigma"] + h})
    down = problem.loss({**phi, "alpha.sigma": phi["alpha.sigma"] - h})
    central = (float(up) - float(down)) / (2 * h)
    assert abs(float(grad_r["alpha.sigma"])) > 1e-2
    assert float(grad_r["alpha.sigma"]) == pytest.approx(central, rel=2e-2)

    with pytest.raises(ValueError, match="'alpha.sigma'.*stochastic solver"):
        fitting.Problem(network, data, observables, space, solver=grn.LNA(), x0={"X": 0.0})
    with pytest.raises(ValueError, match="'alpha.sigma'.*stochastic solver"):
        fitting.Problem(
            network, data, observables, space, solver=grn.CLE(dt=0.05), n_cells=16,
            x0={"X": 0.0}, cell_params={"alpha": np.ones(16)},
        )  # fmt: skip
