"""The synthetic melanoma data set as a shipped PEtab problem (`grn.models._melanoma_petab`), fitted
by ``grn fit --solver cle`` (issue 18, item 6)."""

from __future__ import annotations

import csv
import json
import math
import shutil
import warnings

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fitting
import grn
from grn.models._melanoma_data import (
    _OBSERVABLE_VALUES,
    CONDITIONS,
    DAY,
    schedule,
    synthetic_paths,
)
from grn.models._melanoma_petab import PETAB_DIR, petab_path, washout_time, write_petab
from grn_cli.main import main

FILES = (
    "melanoma.yaml",
    "model.xml",
    "conditions.tsv",
    "observables.tsv",
    "measurements.tsv",
    "parameters.tsv",
)


def test_shipped_problem_is_its_regeneration(tmp_path):
    write_petab(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_text() == (PETAB_DIR / name).read_text(), name
    assert washout_time() == 29 * DAY


def test_shipped_problem_passes_the_petab_linter():
    import petab.v1 as petab

    with warnings.catch_warnings():  # pandas deprecations inside petab's readers
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        problem = petab.Problem.from_yaml(str(petab_path()))
        assert petab.lint_problem(problem) is False  # False: no error found


def _population_rows():
    with open(synthetic_paths()["measurements"], newline="") as f:
        return [
            r
            for r in csv.DictReader(f, delimiter="\t")
            if r["observableId"] in _OBSERVABLE_VALUES and not r["cellId"]
        ]


def test_ode_llh_is_the_gaussian_llh_of_the_scheduled_python_model():
    """The PEtab encoding (SBML laws, on-drug conditions with the washout event, observables,
    noise, rows) gives the llh computed directly from the Python model under the synthetic
    schedules and the synthetic table. (The ODE at the truth is not the data's SSA ensemble
    mean, which has per-cell kM1 spread and a 20-day pre-run: its residuals are far from the
    noise, sum (r / sigma)^2 about 4000 over 135 rows, so no chi-square bound holds here.)"""
    ode = grn.ODE(method=diffrax.Tsit5(), rtol=1e-8, atol=1e-8, max_steps=1_000_000)
    rows = _population_rows()
    net = grn.models.melanoma()
    with jax.enable_x64(True):
        llh = fitting.log_likelihood(fitting.load_petab(petab_path(), solver=ode))
        want = 0.0
        for condition in CONDITIONS:
            mine = [r for r in rows if r["simulationConditionId"] == condition]
            ts = np.unique([float(r["time"]) for r in mine])
            sol = grn.simulate(
                net, jnp.asarray(ts), solver=ode, schedule=schedule(condition), equilibrate=0
            )
            counts = {s: np.asarray(sol[s])[0] for s in net.species}
            for r in mine:
                y = _OBSERVABLE_VALUES[r["observableId"]](counts)[ts == float(r["time"])][0]
                sigma = float(r["noiseParameters"])
                z = (y - float(r["measurement"])) / sigma
                want += -0.5 * math.log(2 * math.pi * sigma**2) - 0.5 * z**2
    assert len(rows) == 135
    assert llh == pytest.approx(want, abs=1e-3)


def _short_problem(tmp_path, hours):
    """The shipped problem with the measurement rows up to ``hours`` only."""
    folder = tmp_path / "melanoma_petab"
    shutil.copytree(PETAB_DIR, folder)
    table = folder / "measurements.tsv"
    lines = table.read_text().splitlines()
    keep = [lines[0]] + [x for x in lines[1:] if float(x.split("\t")[2]) <= hours]
    table.write_text("\n".join(keep) + "\n")
    return folder / "melanoma.yaml", len(keep) - 1


def test_grn_fit_fits_the_problem_with_the_cle(tmp_path, capsys):
    """``grn fit`` on the shipped files with the CLE: a CI-sized run (the first day's rows, 4
    cells, 2 starts, 4 Adam steps); the 64-day fit is in docs/petab.md."""
    yaml, n_rows = _short_problem(tmp_path, 24.0)
    out = tmp_path / "out"
    argv = ["fit", str(yaml), "--out", str(out), "--solver", "cle", "--dt", "0.01"]
    argv += ["--cells", "4", "--starts", "2", "--steps", "4", "--optimizer", "adam", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    for name in ("fit.json", "fit.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "fit.json").read_text())
    assert report["solver"] == "cle" and report["settings"]["cells"] == 4
    assert report["settings"]["dt"] == 0.01 and report["n_measurements"] == n_rows
    llh = report["log_likelihood"]
    with open(out / "history.csv", newline="") as f:
        first = next(csv.DictReader(f))
    start = -float(first["best"])  # no priors: llh = -loss
    assert math.isfinite(llh) and llh > start, (llh, start)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--solver", "cle", "--cells", "0"], "--cells: must be a positive integer"),
        (["--cells", "4"], "--cells applies to --solver cle only"),
    ],
)
def test_cells_option_is_checked(tmp_path, capsys, extra, message):
    argv = ["fit", str(petab_path()), "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
