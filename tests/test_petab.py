"""PEtab import: the references of seven Benchmark-Models-PEtab problems, gradients, bad input."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fitting
import grn

DATA = Path(__file__).parent / "data" / "petab"

# AMICI's llh at the nominal parameters (tests/data/petab/README.md).
REFERENCE = {
    "Boehm_JProteomeRes2014": -138.22199693517703,
    "Elowitz_Nature2000": 63.20279991419332,
    "Fiedler_BMCSystBiol2016": 58.58390161681,
    "Fujita_SciSignal2010": 53.08377736998929,
    "Brannmark_JBC2010": -141.889113770537,
    "Weber_BMC2015": -296.2017922646865,
    "Schwen_PONE2014": -943.9992988598723,
}


def _yaml(name: str) -> Path:
    return DATA / name / f"{name}.yaml"


def _load(name: str, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is not used by grn")
        return fitting.load_petab(_yaml(name), **kwargs)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_llh(name):
    with jax.enable_x64(True):
        problem = _load(name)
        llh = fitting.log_likelihood(problem)
    ref = REFERENCE[name]
    assert abs(llh - ref) <= 0.02 + 1e-4 * abs(ref), (llh, ref)


@pytest.fixture(scope="module")
def schwen():
    with jax.enable_x64(True):
        yield _load("Schwen_PONE2014")


def test_objective_prior(schwen):
    """Schwen's six parameterScaleNormal priors (log10 scale, sd 3), by hand from the table."""
    import csv

    table = DATA / "Schwen_PONE2014" / "parameters_Schwen_PONE2014.tsv"
    with open(table) as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["objectivePriorType"]]
    assert {r["objectivePriorType"] for r in rows} == {"parameterScaleNormal"}

    def expected(values):
        total = 0.0
        for r in rows:
            mean, sd = (float(q) for q in r["objectivePriorParameters"].split(";"))
            z = (math.log10(values[r["parameterId"]]) - mean) / sd
            total += -0.5 * math.log(2 * math.pi * sd**2) - 0.5 * z**2
        return total

    nominal = {r["parameterId"]: float(r["nominalValue"]) for r in rows}
    moved = {**nominal, "ini_R1": 10.0**2.5}
    with jax.enable_x64(True):
        at_nominal = float(schwen.log_prior(dict(schwen.nominal)))
        at_moved = float(schwen.log_prior({**schwen.nominal, "ini_R1": 10.0**2.5}))
    assert len(schwen.priors) == 6
    assert at_nominal == pytest.approx(expected(nominal), rel=1e-12)
    assert at_moved == pytest.approx(expected(moved), rel=1e-12)
    assert at_moved != pytest.approx(at_nominal, rel=1e-6)


def _direction_check(problem, seed, mode):
    """Gradient of the loss (``mode`` reverse/forward) along a random direction, against the
    central finite difference of the float64 loss, at a point off the nominal optimum."""
    from fitting._fit import value_and_grad

    names = problem.space.free
    rng = np.random.default_rng(seed)
    phi = problem.space.initial_phi()
    lo, hi = problem.space.bounds_phi()
    phi = {
        n: np.clip(float(phi[n]) + 0.05 * rng.choice([-1.0, 1.0]), float(lo[n]), float(hi[n]))
        for n in names
    }
    v = {n: rng.normal() for n in names}
    loss = eqx.filter_jit(problem.loss)
    value, grad = jax.jit(value_and_grad(problem.loss, mode))(phi)
    h = 1e-4
    plus = float(loss({n: phi[n] + h * v[n] for n in names}))
    minus = float(loss({n: phi[n] - h * v[n] for n in names}))
    fd = (plus - minus) / (2 * h)
    ad = sum(float(grad[n]) * v[n] for n in names)
    return float(value), ad, fd


# Both modes on both problems; CI runs one mode per problem (each compile takes minutes).
@pytest.mark.parametrize(
    "name, mode",
    [
        ("Elowitz_Nature2000", "forward"),
        ("Schwen_PONE2014", "reverse"),
        pytest.param("Elowitz_Nature2000", "reverse", marks=pytest.mark.slow),
        pytest.param("Schwen_PONE2014", "forward", marks=pytest.mark.slow),
    ],
)
def test_gradient_matches_finite_differences(name, mode):
    import diffrax

    with jax.enable_x64(True):
        solver = fitting.default_petab_solver()
        if mode == "forward":
            solver = grn.ODE(
                method=solver.method,
                rtol=solver.rtol,
                atol=solver.atol,
                adjoint=diffrax.ForwardMode(),
            )
        problem = _load(name, solver=solver)
        value, ad, fd = _direction_check(problem, 0, mode)
    assert np.isfinite(value)
    # the slope is O(10-1000) here; the finite difference's error (h^2 truncation and the
    # solver's 1e-6 tolerance divided by h) is below 1e-3 of it
    assert abs(fd) > 1.0
    assert ad == pytest.approx(fd, rel=1e-3), (ad, fd)


# -- bad input: each error names the file, row and column -------------------------------------
ELOWITZ = "Elowitz_Nature2000"


@pytest.fixture
def elowitz(tmp_path):
    """A writable copy of the Elowitz problem: (folder, yaml path)."""
    folder = tmp_path / ELOWITZ
    shutil.copytree(DATA / ELOWITZ, folder)
    return folder, folder / f"{ELOWITZ}.yaml"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_missing_table(elowitz):
    folder, yaml = elowitz
    (folder / f"observables_{ELOWITZ}.tsv").unlink()
    with pytest.raises(fitting.PetabError, match=rf"{ELOWITZ}.yaml: the observable_files entry"):
        fitting.load_petab(yaml)


def test_unknown_symbol_in_observable_formula(elowitz):
    folder, yaml = elowitz
    table = folder / f"observables_{ELOWITZ}.tsv"
    _edit(table, "GFP * observableParameter2", "GFPX * observableParameter2")
    with pytest.raises(
        fitting.PetabError,
        match=rf"observables_{ELOWITZ}.tsv, row 2, column 'observableFormula'.*'GFPX'",
    ):
        fitting.load_petab(yaml)


def test_condition_names_unknown_parameter(elowitz):
    folder, yaml = elowitz
    table = folder / f"experimentalCondition_{ELOWITZ}.tsv"
    lines = table.read_text().splitlines()
    lines = [lines[0] + "\tnot_a_parameter"] + [line + "\t1.0" for line in lines[1:]]
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        fitting.PetabError,
        match=rf"experimentalCondition_{ELOWITZ}.tsv, row 1, column 'not_a_parameter'",
    ):
        fitting.load_petab(yaml)


def test_non_positive_noise(elowitz):
    folder, yaml = elowitz
    table = folder / f"measurementData_{ELOWITZ}.tsv"
    _edit(table, "background;scale\tsigma", "background;scale\t-0.5")
    with pytest.raises(
        fitting.PetabError,
        match=rf"measurementData_{ELOWITZ}.tsv, row 2, column 'noiseParameters'.*positive",
    ):
        fitting.load_petab(yaml)


def test_unsupported_noise_distribution(elowitz):
    folder, yaml = elowitz
    _edit(folder / f"observables_{ELOWITZ}.tsv", "\tnormal\t", "\tcauchy\t")
    with pytest.raises(
        fitting.PetabError,
        match=rf"observables_{ELOWITZ}.tsv, row 2, column 'noiseDistribution'.*'cauchy'",
    ):
        fitting.load_petab(yaml)


def test_unused_columns_warn(elowitz):
    folder, yaml = elowitz
    table = folder / f"measurementData_{ELOWITZ}.tsv"
    lines = table.read_text().splitlines()
    lines = [lines[0] + "\treplicateId"] + [line + "\tr1" for line in lines[1:]]
    table.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="column 'replicateId' is not used by grn; ignored"):
        fitting.load_petab(yaml)


# -- a small problem with an exact solution: pre-equilibration, overrides, every noise model ----
SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version1/core" level="3" version="1">
  <model id="isomerisation">
    <listOfCompartments>
      <compartment id="cell" size="2" constant="true" spatialDimensions="3"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="cell" initialConcentration="10" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
      <species id="B" compartment="cell" initialConcentration="0" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k1" value="1" constant="true"/>
      <parameter id="k2" value="0.5" constant="true"/>
      <parameter id="a0" value="10" constant="true"/>
    </listOfParameters>
    <listOfInitialAssignments>
      <initialAssignment symbol="A">
        <math xmlns="http://www.w3.org/1998/Math/MathML"><ci> a0 </ci></math>
      </initialAssignment>
    </listOfInitialAssignments>
    <listOfReactions>
      <reaction id="forward" reversible="false" fast="false">
        <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> cell </ci><ci> k1 </ci><ci> A </ci></apply></math></kineticLaw>
      </reaction>
      <reaction id="back" reversible="false" fast="false">
        <listOfReactants><speciesReference species="B" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <listOfProducts><speciesReference species="A" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci> cell </ci><ci> k2 </ci><ci> B </ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""
TABLES = {
    "conditions.tsv": (
        "conditionId\tk1\tB\npre\t1\tNaN\nsim\t3\tNaN\nfresh\tk1_fresh\t1\npre2\t2\tNaN\n"
    ),
    "observables.tsv": (
        "observableId\tobservableFormula\tnoiseFormula\tobservableTransformation"
        "\tnoiseDistribution\n"
        "obsA\tobservableParameter1_obsA * A\tnoiseParameter1_obsA\tlog10\tlaplace\n"
        "obsB\tB + observableParameter1_obsB\t0.1 * noiseParameter1_obsB\tlin\tnormal\n"
        "ratio\tA / (A + B)\tsd_ratio\tlog\tnormal\n"
    ),
    "measurements.tsv": (
        "observableId\tpreequilibrationConditionId\tsimulationConditionId\ttime\tmeasurement"
        "\tobservableParameters\tnoiseParameters\n"
        "obsA\tpre\tsim\t0\t7.0\tscale\t0.2\n"
        "obsA\tpre\tsim\t0.3\t5.0\t2\tsd_A\n"
        "obsB\tpre\tsim\t0.3\t5.5\toffset\t3\n"
        "obsA\tpre2\tsim\t0.3\t4.0\t2\tsd_A\n"
        "ratio\t\tfresh\t0.5\t0.4\t\t\n"
        "obsB\t\tfresh\t1.0\t2.0\t0.5\tsd_A\n"
    ),
    "parameters.tsv": (
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate"
        "\tobjectivePriorType\tobjectivePriorParameters\n"
        "k2\tlog10\t0.01\t100\t2\t1\tnormal\t1;2\n"
        "a0\tlin\t0\t100\t10\t0\t\t\n"
        "k1_fresh\tlog\t0.01\t100\t0.7\t1\t\t\n"
        "scale\tlog10\t0.01\t100\t1.5\t1\tlaplace\t1;0.5\n"
        "offset\tlin\t-10\t10\t0.25\t1\t\t\n"
        "sd_A\tlog10\t0.01\t10\t0.3\t1\t\t\n"
        "sd_ratio\tlog10\t0.01\t10\t0.05\t0\t\t\n"
    ),
    "problem.yaml": (
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
        "- condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n"
    ),
}


def _isomerisation_llh(k2, k1_fresh, scale, offset, sd_a):
    """By hand: A <-> B (rates k1, k2) relaxes to A* = total k2 / (k1 + k2) at rate k1 + k2."""

    def relax(a0, total, k1, t):
        star = total * k2 / (k1 + k2)
        return star + (a0 - star) * np.exp(-(k1 + k2) * t)

    a_pre = relax(10.0, 10.0, 1.0, np.inf)  # steady state of "pre" (k1 = 1), B = 10 - A
    a = {t: relax(a_pre, 10.0, 3.0, t) for t in (0.0, 0.3)}  # "sim": k1 = 3, from the steady state
    a_pre2 = relax(10.0, 10.0, 2.0, np.inf)  # a second pre-equilibration condition, k1 = 2
    fresh = {t: relax(10.0, 11.0, k1_fresh, t) for t in (0.5, 1.0)}  # A0 = a0 = 10, B0 = 1

    def laplace_log10(m, y, s):
        return -math.log(2 * s * m * math.log(10)) - abs(math.log10(y) - math.log10(m)) / s

    def normal(m, y, s, jac=0.0):
        return -0.5 * math.log(2 * math.pi * s**2) - 0.5 * ((y - m) / s) ** 2 - jac

    return (
        laplace_log10(7.0, scale * a[0.0], 0.2)
        + laplace_log10(5.0, 2 * a[0.3], sd_a)
        + normal(5.5, 10.0 - a[0.3] + offset, 0.1 * 3)
        + laplace_log10(4.0, 2 * relax(a_pre2, 10.0, 3.0, 0.3), sd_a)
        + normal(math.log(0.4), math.log(fresh[0.5] / 11.0), 0.05, jac=math.log(0.4))
        + normal(2.0, 11.0 - fresh[1.0] + 0.5, 0.1 * sd_a)
    )


@pytest.fixture(scope="module")
def isomerisation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isomerisation")
    (folder / "model.xml").write_text(SBML)
    for name, text in TABLES.items():
        (folder / name).write_text(text)
    import diffrax

    solver = grn.ODE(method=diffrax.Kvaerno5(), rtol=1e-10, atol=1e-12)
    with jax.enable_x64(True):
        yield fitting.load_petab(folder / "problem.yaml", solver=solver)


def test_exact_problem_llh_and_prior(isomerisation):
    """Pre-equilibration (two conditions, each followed by the same simulation condition; a
    simulation without), species and parameter overrides by number and by id, per-row
    observable/noise parameters, Laplace/log10, normal/log and normal/lin noise, concentrations in
    a compartment of size 2 and an initial assignment, against the closed form."""
    values = {"k2": 0.8, "k1_fresh": 1.3, "scale": 1.7, "offset": -0.4, "sd_A": 0.25}
    with jax.enable_x64(True):
        at_nominal = fitting.log_likelihood(isomerisation)
        moved = fitting.log_likelihood(isomerisation, values)
        prior = float(isomerisation.log_prior({**isomerisation.nominal, **values}))
    expected = _isomerisation_llh(2.0, 0.7, 1.5, 0.25, 0.3)
    # the solver's 1e-10 tolerance moves the llh by < 1e-6, or 1e-9 of it (large residuals)
    assert at_nominal == pytest.approx(expected, rel=1e-9, abs=1e-6)
    expected = _isomerisation_llh(0.8, 1.3, 1.7, -0.4, 0.25)
    assert moved == pytest.approx(expected, rel=1e-9, abs=1e-6)
    normal = -0.5 * math.log(2 * math.pi * 4) - 0.5 * ((0.8 - 1) / 2) ** 2
    laplace = -math.log(2 * 0.5) - abs(1.7 - 1) / 0.5
    assert prior == pytest.approx(normal + laplace, rel=1e-12)


def test_unconverged_preequilibration_raises(isomerisation):
    """Pre-equilibration cut at t = 0.1 (relaxation rates k1 + k2 = 3 and 4): neither of the two
    conditions is steady, and both are named."""
    with jax.enable_x64(True):
        t_end = jnp.asarray(0.1, isomerisation.steady_state_time.dtype)  # a leaf: no recompile
        short = eqx.tree_at(lambda p: p.steady_state_time, isomerisation, t_end)
        with pytest.raises(
            ValueError, match=r"pre-equilibration of condition\(s\) \['pre', 'pre2'\]"
        ):
            fitting.log_likelihood(short)
