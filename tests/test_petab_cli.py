"""``grn fit PROBLEM.yaml``: a PEtab problem fitted from the command line (issue 18, item 5)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from grn_cli.main import main

# X decays at rate k from X0 (10, or 5 in condition "half"); data: the exact decay for k = 0.5
# plus fixed deviations, normal noise of sd sigma.
SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="decay">
    <listOfCompartments>
      <compartment id="cell" size="1" constant="true" spatialDimensions="3"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="cell" initialConcentration="10" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="k" value="1" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="decay" reversible="false" fast="false">
        <listOfReactants><speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> cell </ci><ci> k </ci><ci> X </ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""
TIMES = (0.5, 1.0, 2.0, 3.0)
DEVIATIONS = {"full": (0.1, -0.2, 0.05, 0.1), "half": (-0.1, 0.15, -0.05, 0.0)}
X0 = {"full": 10.0, "half": 5.0}


def _measurements() -> str:
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters\tdatasetId"]
    for c, deviations in DEVIATIONS.items():
        for t, d in zip(TIMES, deviations):
            lines.append(f"obs_X\t{c}\t{t}\t{X0[c] * math.exp(-0.5 * t) + d!r}\tsigma\td1")
    return "\n".join(lines) + "\n"


TABLES = {
    "conditions.tsv": "conditionId\tX\nfull\tNaN\nhalf\t5\n",
    "observables.tsv": "observableId\tobservableFormula\tnoiseFormula\n"
    "obs_X\tX\tnoiseParameter1_obs_X\n",
    "parameters.tsv": "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue"
    "\testimate\nk\tlog10\t0.01\t10\t0.5\t1\nsigma\tlog10\t0.01\t10\t0.2\t1\n",
    "problem.yaml": "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
    "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
    "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n",
}


def _llh(k: float, sigma: float) -> float:
    """PEtab's llh by hand: normal noise on the exact decay."""
    total = 0.0
    for c, deviations in DEVIATIONS.items():
        for t, d in zip(TIMES, deviations):
            r = X0[c] * math.exp(-0.5 * t) + d - X0[c] * math.exp(-k * t)
            total += -0.5 * math.log(2 * math.pi * sigma**2) - 0.5 * (r / sigma) ** 2
    return total


@pytest.fixture
def problem(tmp_path):
    (tmp_path / "model.xml").write_text(SBML)
    (tmp_path / "measurements.tsv").write_text(_measurements())
    for name, text in TABLES.items():
        (tmp_path / name).write_text(text)
    return tmp_path / "problem.yaml"


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
    # the ODE solver's error (rtol 1e-6 on X <= 10 moves each r / sigma^2 * dX term by ~1e-4)
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
