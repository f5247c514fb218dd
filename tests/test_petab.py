"""PEtab import: the references of seven Benchmark-Models-PEtab problems, gradients, bad input."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import equinox as eqx
import jax
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
_TIME = "the SBML importer reads no csymbol time (kinetic laws use a time-dependent rule: {})"
BLOCKED = {
    "Boehm_JProteomeRes2014": _TIME.format("BaF3_Epo"),
    "Brannmark_JBC2010": _TIME.format("the insulin step"),
    "Fiedler_BMCSystBiol2016": _TIME.format("k1max"),
    "Weber_BMC2015": _TIME.format("the inputs u3..u6"),
    "Fujita_SciSignal2010": (
        "the SBML importer rejects reversible reactions whose law is not 'forward - reverse' "
        "(v1_reaction_1), and reads no csymbol time (the EGF step)"
    ),
}


def _yaml(name: str) -> Path:
    return DATA / name / f"{name}.yaml"


def _load(name: str, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is not used by grn")
        return fitting.load_petab(_yaml(name), **kwargs)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=BLOCKED[n]))
        if n in BLOCKED
        else n
        for n in REFERENCE
    ],
)
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
