"""A two-parameter PEtab problem with a closed form (X decays at rate k), shared by the PEtab CLI
and stochastic-solver tests."""

from __future__ import annotations

import math
from pathlib import Path

# X decays at rate k from X0 (100, or 50 in condition "half"); data: the exact decay for k = 0.5
# plus fixed deviations, normal noise of sd sigma.
SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="decay">
    <listOfCompartments>
      <compartment id="cell" size="1" constant="true" spatialDimensions="3"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="cell" initialConcentration="100" hasOnlySubstanceUnits="false"
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
DEVIATIONS = {"full": (1.0, -2.0, 0.5, 1.0), "half": (-1.0, 1.5, -0.5, 0.0)}
X0 = {"full": 100.0, "half": 50.0}


def _measurements() -> str:
    lines = ["observableId\tsimulationConditionId\ttime\tmeasurement\tnoiseParameters\tdatasetId"]
    for c, deviations in DEVIATIONS.items():
        for t, d in zip(TIMES, deviations):
            lines.append(f"obs_X\t{c}\t{t}\t{X0[c] * math.exp(-0.5 * t) + d!r}\tsigma\td1")
    return "\n".join(lines) + "\n"


TABLES = {
    "conditions.tsv": "conditionId\tX\nfull\tNaN\nhalf\t50\n",
    "observables.tsv": "observableId\tobservableFormula\tnoiseFormula\n"
    "obs_X\tX\tnoiseParameter1_obs_X\n",
    "parameters.tsv": "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue"
    "\testimate\nk\tlog10\t0.01\t10\t0.5\t1\nsigma\tlog10\t0.01\t10\t0.2\t1\n",
    "problem.yaml": "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
    "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
    "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n",
}


def llh(k: float, sigma: float) -> float:
    """PEtab's llh by hand: normal noise on the exact decay."""
    total = 0.0
    for c, deviations in DEVIATIONS.items():
        for t, d in zip(TIMES, deviations):
            r = X0[c] * math.exp(-0.5 * t) + d - X0[c] * math.exp(-k * t)
            total += -0.5 * math.log(2 * math.pi * sigma**2) - 0.5 * (r / sigma) ** 2
    return total


def write_problem(folder: Path) -> Path:
    """Write the problem's files into ``folder``; returns its YAML file."""
    (folder / "model.xml").write_text(SBML)
    (folder / "measurements.tsv").write_text(_measurements())
    for name, text in TABLES.items():
        (folder / name).write_text(text)
    return folder / "problem.yaml"
