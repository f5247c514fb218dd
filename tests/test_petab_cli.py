"""``grn fit PROBLEM.yaml``: a PEtab problem fitted from the command line (issue 18, item 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _petab_decay import DEVIATIONS, llh as _llh, write_problem

from grn_cli.main import main


@pytest.fixture
def problem(tmp_path):
    return write_problem(tmp_path)


def test_fit_petab_problem(problem, capsys):
    out = problem.parent / "out"
    argv = ["fit", str(problem), "--out", str(out), "--starts", "3", "--steps", "40", "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    # a column PEtab defines but grn does not use: a warning, not an error
    assert "grn: warning:" in err and "column 'datasetId' is not used by grn; ignored" in err
    for name in ("fit.json", "history.csv", "fit.png", "history.png", "checkpoint.npz"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "fit.json").read_text())
    assert report["optimizer"] == "lm" and report["solver"] == "ode"  # normal noise: LM
    assert report["settings"]["starts"] == 3 and not report["settings"]["nominal"]
    params = report["params"]
    llh = report["log_likelihood"]
    # the reported llh is PEtab's at the reported parameters (no priors: llh = -loss), up to
    # the ODE solver's error (rtol 1e-6 on X <= 100 moves each r / sigma^2 * dX term by ~1e-4)
    assert llh == pytest.approx(_llh(params["k"], params["sigma"]), abs=5e-3)
    assert llh == pytest.approx(-report["loss"], rel=1e-12)
    per_start = [s["log_likelihood"] for s in report["starts"]]
    assert len(per_start) == 3 and llh == max(v for v in per_start if v is not None)
    # ... and the fit reached the maximum: above the llh of the data-generating k, the maximum
    # over sigma at k = 0.5 (sigma^2 = mean squared deviation)
    deviations = np.concatenate([np.array(d) for d in DEVIATIONS.values()])
    assert llh >= _llh(0.5, float(np.sqrt(np.mean(deviations**2)))) - 1e-6
    assert params["k"] == pytest.approx(0.5, rel=0.05)


def test_petab_options_rejected_for_toml(tmp_path, capsys):
    config = tmp_path / "fit.toml"
    config.write_text("[model]\nbuiltin = 'immigration_death'\n")
    assert main(["fit", str(config), "--out", str(tmp_path / "o"), "--starts", "3"]) == 2
    assert "--starts applies to PEtab problems" in capsys.readouterr().err
