"""``grn fit CONFIG.toml --out DIR [--resume]``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import fitting
from grn_cli.fit import build_problem, load_config
from grn_cli.main import main

ALPHA, MU, SIGMA = 10.0, 1.0, 0.5

CONFIG = """
[model]
builtin = "immigration_death"
[model.x0]
X = 0
[data]
measurements = "measurements.tsv"
[observables]
X_obs = "X"
[parameters]
alpha = {{ init = 3.0, lower = 0.1, upper = 1000.0, scale = "log" }}
mu = {{ init = 0.3, lower = 0.001, upper = 100.0 }}
[fit]
solver = "lna"
method = "tsit5"
steps = {steps}
starts = 4
seed = 0
learning_rate = 0.1
checkpoint_every = 10
"""


@pytest.fixture
def folder(tmp_path):
    t = np.linspace(0.5, 5.0, 10)
    y = ALPHA / MU * (1 - np.exp(-MU * t)) + SIGMA * np.random.default_rng(0).normal(size=10)
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters"]
    lines += [f"X_obs\tc\t{float(a)!r}\t{float(b)!r}\t{SIGMA}" for a, b in zip(t, y)]
    (tmp_path / "measurements.tsv").write_text("\n".join(lines) + "\n")
    return tmp_path


def write_config(folder, steps, **replace):
    text = CONFIG.format(steps=steps)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = folder / "fit.toml"
    path.write_text(text)
    return path


def test_fit_writes_results_and_resumes(folder):
    config = write_config(folder, steps=200)
    assert main(["fit", str(config), "--out", str(folder / "full"), "--quiet"]) == 0
    out = folder / "full"
    for name in ("fit.json", "history.csv", "fit.png", "history.png", "checkpoint.npz"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "fit.json").read_text())
    for name, truth in (("alpha", ALPHA), ("mu", MU)):
        assert abs(report["params"][name] - truth) < 4 * report["stderr"][name]
    assert report["identifiable"] == {"alpha": True, "mu": True}
    with open(out / "history.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "loss_start0", "loss_start1", "loss_start2", "loss_start3", "best"]
    assert len(rows) == 201

    # a run stopped after 120 steps and resumed to 200 ends where the uninterrupted run did
    part = folder / "part"
    write_config(folder, steps=120)
    assert main(["fit", str(config), "--out", str(part), "--quiet"]) == 0
    write_config(folder, steps=200)
    assert main(["fit", str(config), "--out", str(part), "--quiet", "--resume"]) == 0
    resumed = json.loads((part / "fit.json").read_text())
    assert resumed["params"] == report["params"] and resumed["loss"] == report["loss"]
    assert (part / "history.csv").read_text() == (out / "history.csv").read_text()


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('solver = "lna"', 'solver = "rk4"', "fit.solver: must be one of"),
        ("steps = 5", "stpes = 5", "fit.stpes: unknown key"),
        ("steps = 5", "steps = -5", "fit.steps: must be positive"),
        ('builtin = "immigration_death"', 'builtin = "nope"', "model.builtin: unknown model"),
        ("X = 0", "Y = 0", "model.x0.Y: unknown species"),
        ('"measurements.tsv"', '"missing.tsv"', "data.measurements: file"),
        ("init = 3.0, ", "", "parameters.alpha.init: missing"),
        ('scale = "log"', 'scale = "ln"', "parameters.alpha.scale: must be 'log' or 'linear'"),
        ('X_obs = "X"', 'X_obs = "X +"', "observables.X_obs: observable expression"),
        ('X_obs = "X"', 'Y_obs = "X"', "unknown observable 'X_obs'"),
        ('solver = "lna"', 'solver = "ssa"', "fit.solver: 'ssa' simulates piecewise-constant"),
        ("[fit]", "[fitt]", "fitt: unknown section"),
        ("seed = 0", 'seed = 0\ngradient = "sideways"', "fit.gradient: must be 'reverse' or"),
        ("X = 0", "X = 0\n[model.cell_spread]\nalpha = -0.3", "model.cell_spread.alpha: must be"),
        ("X = 0", "X = 0\n[model.cell_spread]\nalpha = 0.3", "model.cell_spread: per-cell"),
        ("X = 0", "X = 0\n[model.cell_spread]\nbeta = 0.3", "model.cell_spread.beta: unknown"),
    ],
)
def test_bad_configs_name_the_key(folder, capsys, old, new, message):
    config = write_config(folder, steps=5, **{old: new})
    assert main(["fit", str(config), "--out", str(folder / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grn: error: ") and message in err, err


def test_cell_spread_gives_the_cells_stratified_factors(folder):
    config = write_config(
        folder, steps=5, **{"X = 0": "X = 0\n[model.cell_spread]\nalpha = 0.3",
                            'solver = "lna"': 'solver = "cle"\nn_cells = 16'}
    )  # fmt: skip
    problem, _ = build_problem(load_config(config))
    np.testing.assert_allclose(
        np.asarray(problem.cell_params["alpha"]), fitting.lognormal_factors(16, 0.3), rtol=1e-6
    )
    assert main(["fit", str(config), "--out", str(folder / "o"), "--quiet"]) == 0
    report = json.loads((folder / "o" / "fit.json").read_text())
    assert report["cell_spread"] == {"alpha": 0.3}
    with open(folder / "o" / "history.csv") as fh:
        best = [float(row["best"]) for row in csv.DictReader(fh)]
    assert best[-1] < best[0]  # the CLE fit with spread cells makes progress
