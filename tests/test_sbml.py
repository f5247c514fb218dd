"""SBML import and export: every DSMTS model at every level, semantics, errors, round trips."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn.io import SBMLMath, consistency_errors, load_sbml, save_sbml, to_sbml

libsbml = pytest.importorskip("libsbml")


def _bd(lam, mu, x0=100, scale=1.0, extra=None):
    """Birth-death X -> 2X (lam X), X -> (mu X), rates times ``scale``; optional Sink column."""
    stoich = {"X": [1, -1], **(extra or {})}
    x0s = {"X": x0, **dict.fromkeys(extra or {}, 0)}
    return x0s, stoich, lambda x: [scale * lam * x["X"], scale * mu * x["X"]]


def _id(alpha, mu, extra=None):
    stoich = {"X": [1, -1], **(extra or {})}
    return {"X": 0, **dict.fromkeys(extra or {}, 0)}, stoich, lambda x: [alpha, mu * x["X"]]


def _dimer(k1, k2, p0):
    return (
        {"P": p0, "P2": 0},
        {"P": [-2, 2], "P2": [1, -1]},
        lambda x: [k1 * x["P"] * (x["P"] - 1) / 2, k2 * x["P2"]],
    )


_MONOMER_FREE = (
    {"P2": 0},
    {"P2": [1, -1]},
    lambda x: [0.5 * 0.001 * (100 - 2 * x["P2"]) * (99 - 2 * x["P2"]), 0.01 * x["P2"]],
)

# case -> (initial counts, stoichiometry column per species, propensities), from INDEX.md.
EXPECTED = {
    "00001": _bd(0.1, 0.11),
    "00002": _bd(0.1, 0.11),
    "00003": _bd(1.0, 1.1),
    "00004": _bd(0.1, 0.11, x0=10),
    "00005": _bd(0.1, 0.11, x0=10_000),
    "00006": _bd(0.1, 0.11, extra={"Sink": [0, 0]}),  # boundary Sink never changes
    "00007": _bd(0.1, 0.11, extra={"Sink": [0, 1]}),
    "00008": _bd(0.1, 0.11),
    "00009": _bd(0.1, 0.11),  # volume 2, but amounts: no change
    "00010": _bd(0.1, 0.11),  # concentration in volume 1
    "00011": _bd(0.1, 0.11, scale=0.5),  # concentration X / 2 in volume 2: half the rates
    "00012": _bd(0.1, 0.11),
    "00013": _bd(0.1, 0.11),  # Lambda = 0.2 times 0.5
    "00014": _bd(0.1, 0.11),
    "00015": _bd(0.1, 0.11),
    "00016": _bd(0.1, 0.11),
    "00017": _bd(0.1, 0.11),  # Cell = 1 in the law
    "00018": _bd(0.1, 0.11, scale=0.5),  # Cell = 0.5 in the law
    "00019": _bd(0.1, 0.11),  # plus the rule y = 2 X
    "00020": _id(1.0, 0.1),
    "00021": _id(10.0, 0.1),
    "00022": _id(5.0, 0.1),  # local Alpha = 5 shadows the global 10
    "00023": _id(1000.0, 0.1),
    "00024": _id(10.0, 0.1, extra={"Source": [0, 0], "Sink": [0, 0]}),
    "00025": _id(10.0, 0.1, extra={"Source": [0, 0], "Sink": [0, 1]}),
    "00026": _id(10.0, 0.1, extra={"Source": [0, 0], "Sink": [0, 0]}),
    "00027": _id(1.0, 0.1),  # local k = 1 and k = 0.1 shadow the global k = 2
    "00028": _id(1.0, 0.1),
    "00029": _id(1.0, 0.1),
    "00030": _dimer(0.001, 0.01, 100),
    "00031": _dimer(0.0002, 0.004, 1000),
    "00032": _dimer(0.001, 0.01, 100),
    "00033": _dimer(0.001, 0.01, 100),
    "00034": _MONOMER_FREE,
    "00035": _MONOMER_FREE,
    "00036": _MONOMER_FREE,
    "00037": ({"X": 0}, {"X": [5, -1]}, lambda x: [1.0, 0.2 * x["X"]]),
    "00038": ({"X": 0}, {"X": [10, -1]}, lambda x: [1.0, 0.4 * x["X"]]),
    "00039": ({"X": 0}, {"X": [100, -1]}, lambda x: [1.0, 4.0 * x["X"]]),
}


def _propensities(net: grn.Network, state: dict, params=None):
    x = jnp.asarray([float(state[s]) for s in net.species])
    p = {k: jnp.asarray(v) for k, v in (params or net.params).items()}
    return np.asarray(net.propensities(x, p, jnp.zeros((len(net.inputs),))), np.float64)


def _random_states(species, n=5, seed=0, high=60):
    rng = np.random.default_rng(seed)
    return [dict(zip(species, rng.integers(0, high, len(species)).tolist())) for _ in range(n)]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_dsmts_models_load_at_every_level(case, dsmts_dir):
    """Every SBML level of every case gives the network that INDEX.md describes."""
    files = sorted((dsmts_dir / case).glob(f"{case}-sbml-l*v*.xml"))
    assert len(files) >= 6
    x0, stoich, expected = EXPECTED[case]
    for path in files:
        net = load_sbml(path)
        assert set(net.species) == set(stoich), path.name
        np.testing.assert_array_equal(net.x0, [x0[s] for s in net.species], err_msg=path.name)
        for s, column in stoich.items():
            np.testing.assert_array_equal(
                net.stoichiometry[:, net.species.index(s)], column, err_msg=f"{path.name} {s}"
            )
        for state in _random_states(net.species, high=40):
            np.testing.assert_allclose(
                _propensities(net, state), expected(state), rtol=1e-5, err_msg=path.name
            )


def test_concentration_semantics_00010_00011_00018(dsmts_dir):
    """hasOnlySubstanceUnits=false: X in math is X / volume. With volume 2 (00011) the rates are
    half those of 00001, exactly those of 00018 (Cell = 0.5 in the law), as the reference data of
    00011 and 00018 (identical) say; with volume 1 (00010) they equal 00001's. 00009 (volume 2,
    amounts) is unchanged."""
    nets = {
        c: load_sbml(dsmts_dir / c / f"{c}-sbml-l3v2.xml")
        for c in ("00001", "00009", "00010", "00011", "00018")
    }
    for state in _random_states(["X"], seed=1):
        a = {c: _propensities(n, state) for c, n in nets.items()}
        np.testing.assert_allclose(a["00009"], a["00001"], rtol=1e-6)
        np.testing.assert_allclose(a["00010"], a["00001"], rtol=1e-6)
        np.testing.assert_allclose(a["00011"], 0.5 * a["00001"], rtol=1e-6)
        np.testing.assert_allclose(a["00011"], a["00018"], rtol=1e-6)
    assert nets["00011"].params["Cell"] == 2.0
    assert nets["00011"].reactions[0].rate.formula == "(Lambda * (X / Cell))"
    # The compartment is a parameter: a new volume changes the rates without recompiling.
    p = dict(nets["00011"].params, Cell=4.0)
    np.testing.assert_allclose(_propensities(nets["00011"], {"X": 10}, p), [0.25, 0.275])


def test_local_parameters_shadow_globals(dsmts_dir):
    net = load_sbml(dsmts_dir / "00022" / "00022-sbml-l3v2.xml")
    assert net.params["Alpha"] == 10.0 and net.params["Immigration__Alpha"] == 5.0
    assert net.reactions[0].rate.formula == "Immigration__Alpha"
    net = load_sbml(dsmts_dir / "00027" / "00027-sbml-l2v1.xml")
    assert {k: float(v) for k, v in net.params.items()} == {
        "k": 2.0,
        "Immigration__k": 1.0,
        "Death__k": 0.1,
    }
    net = load_sbml(dsmts_dir / "00002" / "00002-sbml-l3v2.xml")
    assert set(net.params) == {"Birth__Lambda", "Death__Mu"}


def test_assignment_rule_00019(dsmts_dir):
    net = load_sbml(dsmts_dir / "00019" / "00019-sbml-l3v2.xml")
    assert net.species == ("X",)  # y is set by its rule, not a state variable
    values = net.rule_values(jnp.asarray([37.0]), net.params, jnp.zeros(0))
    assert float(values["y"]) == 74.0


def test_events(dsmts_dir):
    def load(case, level="l3v2"):
        return load_sbml(dsmts_dir / case / f"{case}-sbml-{level}.xml")

    for level in ("l2v1", "l3v2"):
        (e,) = load("00028", level).events
        assert e.at == 25.0 and e.when is None and e.name == "reset"
        assert [(t, float(law({}, {}, {}))) for t, law in e.assign] == [("X", 50.0)]
        (e,) = load("00029", level).events
        assert e.at == 22.5 and [t for t, _ in e.assign] == ["X"]
    (e,) = load("00032").events
    assert e.at == 25.0 and [t for t, _ in e.assign] == ["P", "P2"]
    (e,) = load("00033").events
    assert e.at is None and [t for t, _ in e.assign] == ["P", "P2"]
    assert bool(e.when(0.0, {"P": 0, "P2": 31}, {})) and not bool(e.when(0.0, {"P2": 30}, {}))


_MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="m">
    <listOfFunctionDefinitions>
      <functionDefinition id="hill">
        <math xmlns="http://www.w3.org/1998/Math/MathML">
          <lambda><bvar><ci>s</ci></bvar><bvar><ci>K</ci></bvar><bvar><ci>n</ci></bvar>
            <apply><divide/><apply><power/><ci>s</ci><ci>n</ci></apply>
              <apply><plus/><apply><power/><ci>K</ci><ci>n</ci></apply>
                <apply><power/><ci>s</ci><ci>n</ci></apply></apply></apply>
          </lambda>
        </math>
      </functionDefinition>
    </listOfFunctionDefinitions>
    <listOfCompartments>
      <compartment id="C" spatialDimensions="3" size="2" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="C" initialConcentration="5" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
      <species id="B" compartment="C" initialAmount="0" hasOnlySubstanceUnits="true"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="3" constant="true"/>
      <parameter id="k2" constant="true"/>
      <parameter id="v" constant="false"/>
    </listOfParameters>
    <listOfInitialAssignments>
      <initialAssignment symbol="k2">
        <math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><cn>2</cn><ci>k</ci></apply>
        </math>
      </initialAssignment>
      <initialAssignment symbol="B">
        <math xmlns="http://www.w3.org/1998/Math/MathML"><ci>k2</ci></math>
      </initialAssignment>
    </listOfInitialAssignments>
    <listOfRules>
      <assignmentRule variable="v">
        <math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><times/><ci>k</ci><ci>B</ci></apply>
        </math>
      </assignmentRule>
    </listOfRules>
    <listOfReactions>
      <reaction id="make" reversible="false">
        <listOfProducts>
          <speciesReference species="B" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><times/><ci>k</ci><apply><ci>hill</ci><ci>A</ci><cn>2</cn><cn>3</cn></apply>
            </apply>
          </math>
        </kineticLaw>
      </reaction>
      <reaction id="swap" reversible="true">
        <listOfReactants>
          <speciesReference species="A" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <listOfProducts>
          <speciesReference species="B" stoichiometry="2" constant="true"/>
        </listOfProducts>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><minus/>
              <apply><times/><ci>v</ci><ci>A</ci></apply>
              <piecewise>
                <piece><cn>1</cn><apply><gt/><ci>B</ci><cn>10</cn></apply></piece>
                <otherwise><apply><root/><ci>B</ci></apply></otherwise>
              </piecewise>
            </apply>
          </math>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def test_functions_initial_assignments_rules_piecewise_reversible():
    net = load_sbml(_MODEL)
    assert net.species == ("A", "B")
    np.testing.assert_array_equal(net.x0, [10.0, 6.0])  # A: 5 (concentration) x 2; B = k2 = 6
    assert {k: float(v) for k, v in net.params.items()} == {"k": 3.0, "k2": 6.0, "C": 2.0}
    assert [r.name for r in net.reactions] == ["make", "swap__forward", "swap__reverse"]
    np.testing.assert_array_equal(net.stoichiometry, [[0, 1], [-1, 2], [1, -2]])
    for state in _random_states(net.species, seed=3, high=20):
        a, b = state["A"], state["B"]
        conc = a / 2.0
        expected = [
            3.0 * conc**3 / (2.0**3 + conc**3),
            3.0 * b * conc,  # the rule v = k B, substituted
            1.0 if b > 10 else np.sqrt(b),
        ]
        np.testing.assert_allclose(_propensities(net, state), expected, rtol=1e-5)
    values = net.rule_values(jnp.asarray([1.0, 4.0]), net.params, jnp.zeros(0))
    assert float(values["v"]) == 12.0


def _dsmts_text(dsmts_dir, case, level="l3v2") -> str:
    return (dsmts_dir / case / f"{case}-sbml-{level}.xml").read_text()


def test_unreadable_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SBML file"):
        load_sbml(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<sbml><model")
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ".*not valid SBML.*line"):
        load_sbml(bad)
    html = tmp_path / "page.xml"
    html.write_text('<?xml version="1.0"?><html><body>hello</body></html>')
    with pytest.raises(ValueError, match=re.escape(str(html)) + ".*root element is <html>"):
        load_sbml(html)
    with pytest.raises(ValueError, match="SBML string is not valid SBML"):
        load_sbml("<sbml")
    with pytest.raises(TypeError, match="path or an SBML XML string"):
        load_sbml(42)


@pytest.mark.parametrize(
    "case, old, new, message",
    [
        (
            "00001",
            "<listOfReactions>",
            '<listOfRules><algebraicRule><math xmlns="http://www.w3.org/1998/Math/MathML">'
            "<apply><minus/><ci>X</ci><cn>1</cn></apply></math></algebraicRule></listOfRules>"
            "<listOfReactions>",
            r"algebraicRule .*X - 1.*not supported",
        ),
        (
            "00001",
            "<listOfReactions>",
            '<listOfRules><rateRule variable="Mu"><math xmlns="http://www.w3.org/1998/Math/'
            'MathML"><cn>1</cn></math></rateRule></listOfRules><listOfReactions>',
            r"rateRule for 'Mu'",
        ),
        (
            "00028",
            "</trigger>",
            '</trigger><delay><math xmlns="http://www.w3.org/1998/Math/MathML"><cn>1</cn>'
            "</math></delay>",
            r"event 'reset' has a delay",
        ),
        (
            "00028",
            "</trigger>",
            '</trigger><priority><math xmlns="http://www.w3.org/1998/Math/MathML"><cn>1</cn>'
            "</math></priority>",
            r"event 'reset' has a priority",
        ),
        (
            "00001",
            "<ci> Lambda </ci>",
            '<apply><csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/'
            'delay"> delay </csymbol><ci> Lambda </ci><cn> 1 </cn></apply>',
            r"kineticLaw of reaction 'Birth' uses the delay csymbol",
        ),
        (
            "00001",
            "<ci> Lambda </ci>",
            '<csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time"> t'
            " </csymbol>",
            r"kineticLaw of reaction 'Birth' depends on time",
        ),
        (
            "00001",
            "<ci> Lambda </ci>",
            "<ci> Nope </ci>",
            r"kineticLaw of reaction 'Birth' uses unknown identifier 'Nope'",
        ),
        (
            "00001",
            'value="0.1"',
            'value="-0.1"',
            r"parameter 'Lambda' has the value -0.1",
        ),
        (
            "00037",
            'stoichiometry="5"',
            'stoichiometry="2.5"',
            r"reaction 'Immigration': stoichiometry 2.5 of species 'X' is not a non-negative "
            r"integer",
        ),
        (
            "00001",
            'id="Birth" reversible="false"',
            'id="Birth" reversible="true"',
            r"reaction 'Birth' is reversible",
        ),
        (
            "00001",
            'hasOnlySubstanceUnits="true"',
            'hasOnlySubstanceUnits="true" conversionFactor="Mu"',
            r"species 'X' has a conversionFactor",
        ),
    ],
)
def test_unsupported_constructs_name_the_element(dsmts_dir, case, old, new, message):
    """Refused when loading, or (what only the ODE form can simulate) by the stochastic solver."""
    text = _dsmts_text(dsmts_dir, case)
    assert old in text
    with pytest.raises(ValueError, match=message):
        net = load_sbml(text.replace(old, new, 1))
        grn.simulate(net, [0.0, 1.0], key=jax.random.key(0), solver=grn.SSA())


def test_fast_reaction_is_rejected_by_the_stochastic_solvers(dsmts_dir):
    # The ODE form holds it at equilibrium (tests/test_sbml_ode.py); an SSA cannot.
    text = _dsmts_text(dsmts_dir, "00001", "l3v1")
    text = text.replace(
        'id="Birth" reversible="false" fast="false"', 'id="Birth" reversible="false" fast="true"'
    )
    net = load_sbml(text)
    with pytest.raises(ValueError, match=r"reaction 'Birth' is fast"):
        grn.simulate(net, [0.0, 1.0], key=jax.random.key(0), solver=grn.SSA())


def test_required_package_is_rejected(dsmts_dir):
    text = _dsmts_text(dsmts_dir, "00001", "l3v1").replace(
        'level="3" version="1"',
        'xmlns:distrib="http://www.sbml.org/sbml/level3/version1/distrib/version1" '
        'level="3" version="1" distrib:required="true"',
    )
    with pytest.raises(ValueError, match="package 'distrib'"):
        load_sbml(text)


# -- export -------------------------------------------------------------------------------------
REFERENCE_MODELS = sorted(set(grn.models.BUILTIN) - {"melanoma"})


def test_melanoma_exports_its_own_formulas(tmp_path):
    """The melanoma laws carry SBML formulas (``sbml_formula``; equivalence:
    tests/test_melanoma_sbml.py); what SBML cannot hold is named in a warning."""
    with pytest.warns(UserWarning, match="spread of 'kM1'.*pre-equilibration"):
        path = grn.save_sbml(grn.models.melanoma(), tmp_path / "melanoma.xml")
    assert len(load_sbml(path).reactions) == 27


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_round_trip_reference_models(name, tmp_path):
    net = grn.models.BUILTIN[name]()
    path = save_sbml(net, tmp_path / f"{name}.xml")
    text = path.read_text()
    assert consistency_errors(text) == []
    back = load_sbml(path)
    assert back.species == net.species
    np.testing.assert_array_equal(back.x0, net.x0)
    np.testing.assert_array_equal(back.stoichiometry, net.stoichiometry)
    assert {k: float(v) for k, v in back.params.items()} == {
        k: float(v) for k, v in net.params.items()
    }
    rng = np.random.default_rng(7)
    for state in _random_states(net.species, n=8, seed=11, high=300):
        params = {k: float(v) * rng.uniform(0.5, 2.0) for k, v in net.params.items()}
        np.testing.assert_allclose(
            _propensities(back, state, params), _propensities(net, state, params), rtol=1e-5
        )
    # Export of the re-imported network (SBMLMath laws keep their formulas) is stable.
    assert consistency_errors(to_sbml(back)) == []


def test_mass_action_formula_has_the_combinatorial_factor():
    text = to_sbml(grn.models.dimerisation())
    doc = libsbml.readSBMLFromString(text)
    law = doc.getModel().getReaction("dimerisation").getKineticLaw()
    assert libsbml.formulaToL3String(law.getMath()) == "k1 * P * (P - 1) / 2"
    schlogl = libsbml.readSBMLFromString(to_sbml(grn.models.schlogl())).getModel()
    assert libsbml.formulaToL3String(schlogl.getReaction(1).getKineticLaw().getMath()) == (
        "k2 * X * (X - 1) * (X - 2) / 6"
    )


def test_export_inputs_events_rules_and_dsmts(dsmts_dir):
    net = grn.Network(
        species=["G", "M"],
        reactions=[
            grn.Reaction("-> M", grn.mass_action("nu") * grn.hill_activation("G", "v", "K", 2)),
            grn.Reaction("M ->", grn.mass_action("delta")),
        ],
        params={"nu": 2.0, "v": 1.0, "K": 3.0, "delta": 0.5},
        x0={"G": 4},
        inputs=["drug"],
        events=[grn.Event(at=5.0, assign={"G": 0, "nu": "delta"})],
    )
    text = to_sbml(net)
    assert consistency_errors(text) == []
    model = libsbml.readSBMLFromString(text).getModel()
    drug = model.getParameter("drug")
    assert drug.getValue() == 0.0 and not drug.getConstant()
    assert not model.getParameter("nu").getConstant()  # an event assigns it
    back = load_sbml(text)
    assert set(back.params) == {"nu", "v", "K", "delta", "drug"}
    (event,) = back.events
    assert event.at == 5.0 and [t for t, _ in event.assign] == ["G", "nu"]
    for state in _random_states(net.species, seed=5):
        np.testing.assert_allclose(
            _propensities(back, state, {**net.params, "drug": 0.0}),
            _propensities(net, state),
            rtol=1e-5,
        )
    # Imported DSMTS models with rules, events and local parameters export and read back.
    for case in ("00011", "00019", "00027", "00033"):
        original = load_sbml(dsmts_dir / case / f"{case}-sbml-l3v2.xml")
        text = to_sbml(original)
        assert consistency_errors(text) == [], case
        again = load_sbml(text)
        assert [r for r, _ in again.rules] == [r for r, _ in original.rules]
        assert len(again.events) == len(original.events)
        for state in _random_states(original.species, seed=2):
            np.testing.assert_allclose(
                _propensities(again, state), _propensities(original, state), rtol=1e-6
            )


def test_callables_cannot_be_exported():
    net = grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", lambda x, p, u: p["a"], "make"),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"a": 1.0, "mu": 0.1},
    )
    with pytest.raises(ValueError, match=r"reaction 0 'make' .*plain Python callable"):
        to_sbml(net)
    timed = grn.Network(
        species=["X"],
        reactions=[grn.Reaction("X ->", grn.mass_action("mu"))],
        params={"mu": 0.1},
        events=[grn.Event(when=lambda t, x, p: x["X"] > 3, assign={"X": 0}, name="reset")],
    )
    with pytest.raises(ValueError, match="event 0 'reset': its trigger is a plain Python"):
        to_sbml(timed)


def test_sbml_math_is_a_rate_law():
    law = load_sbml(_MODEL).reactions[0].rate
    assert isinstance(law, SBMLMath) and isinstance(law, grn.AbstractRateLaw)
    assert "hill" not in law.formula and "A / C" in law.formula  # inlined, concentration


def test_save_sbml_returns_path(tmp_path):
    out = save_sbml(grn.models.birth_death(), str(tmp_path / "bd.xml"))
    assert isinstance(out, Path) and out.read_text().startswith("<?xml")


_EVENTS = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="m">
    <listOfCompartments>
      <compartment id="C" spatialDimensions="3" size="4" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="X" compartment="C" initialAmount="8" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="t_on" value="2.5" constant="true"/>
      <parameter id="k" value="1" constant="false"/>
    </listOfParameters>
    <listOfReactions>
      <reaction id="decay" reversible="false">
        <listOfReactants>
          <speciesReference species="X" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><times/><ci>k</ci><ci>X</ci><ci>C</ci></apply>
          </math>
        </kineticLaw>
      </reaction>
    </listOfReactions>
    <listOfEvents>
      <event id="switch" useValuesFromTriggerTime="true">
        <trigger initialValue="false" persistent="true">
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><lt/><ci>t_on</ci>
              <csymbol encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time">
                t </csymbol></apply>
          </math>
        </trigger>
        <listOfEventAssignments>
          <eventAssignment variable="k">
            <math xmlns="http://www.w3.org/1998/Math/MathML"><cn>3</cn></math>
          </eventAssignment>
        </listOfEventAssignments>
      </event>
      <event id="refill" useValuesFromTriggerTime="true">
        <trigger initialValue="false" persistent="true">
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><lt/><ci>X</ci><cn>0.5</cn></apply>
          </math>
        </trigger>
        <listOfEventAssignments>
          <eventAssignment variable="X">
            <math xmlns="http://www.w3.org/1998/Math/MathML"><cn>2</cn></math>
          </eventAssignment>
        </listOfEventAssignments>
      </event>
    </listOfEvents>
  </model>
</sbml>
"""


def test_events_on_parameters_and_concentrations():
    net = load_sbml(_EVENTS)
    switch, refill = net.events
    assert switch.at == 2.5 and [t for t, _ in switch.assign] == ["k"]  # 't_on < time'
    assert refill.at is None
    # X is a concentration in a volume of 4: the trigger X < 0.5 reads X / 4, the assignment
    # X = 2 sets 8 molecules, and the law k X C is k (X / 4) 4 molecules per unit time.
    assert bool(refill.when(0.0, {"X": 1.0}, net.params))
    assert not bool(refill.when(0.0, {"X": 2.0}, net.params))
    ((_, law),) = refill.assign
    assert float(law({"X": 1.0}, net.params, {})) == 8.0
    np.testing.assert_allclose(_propensities(net, {"X": 5}), [5.0])


def test_sbml_laws_are_jit_and_grad_safe():
    import jax

    net = load_sbml(_MODEL)
    x = jnp.asarray([6.0, 3.0])

    @jax.jit
    def total(k):
        p = {name: jnp.asarray(v, jnp.float32) for name, v in net.params.items()}
        return net.propensities(x, {**p, "k": k}, jnp.zeros(0)).sum()

    grad = jax.grad(total)(jnp.asarray(3.0))
    conc = 3.0  # A / C
    expected = conc**3 / (8.0 + conc**3) + 3.0 * conc  # d/dk of k hill(...) + k B A/C
    np.testing.assert_allclose(float(grad), expected, rtol=1e-5)
