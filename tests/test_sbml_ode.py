"""The ODE form of imported SBML models: each construct against its hand-solved solution."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import grn

libsbml = pytest.importorskip("libsbml")


def _math(formula):
    ast = libsbml.parseL3Formula(formula)
    assert ast is not None, libsbml.getLastParseL3Error()
    return ast


def build(
    params=None,
    species=None,
    compartments=None,
    rules=None,
    rate_rules=None,
    reactions=(),
    events=(),
    algebraic=(),
    version=2,
):
    """An SBML Level 3 Version 2 string.

    ``params``: id -> value (or (value, constant)); ``species``: id -> dict(amount= or conc=,
    substance=True, compartment="C", boundary=False); ``reactions``: dicts with id, law,
    reactants/products {species: stoichiometry or species-reference id}, reversible, fast
    (Level 3 Version 1 only: ``version=1``);
    ``events``: dicts with trigger, assign {target: formula}, delay, priority, persistent,
    initial, from_trigger, id.
    """
    doc = libsbml.SBMLDocument(3, version)
    m = doc.createModel()
    m.setId("m")
    for cid, size in (compartments or {"C": (1.0, True)}).items():
        size, constant = size if isinstance(size, tuple) else (size, True)
        c = m.createCompartment()
        c.setId(cid), c.setSize(size), c.setConstant(constant), c.setSpatialDimensions(3)
    for pid, value in (params or {}).items():
        value, constant = value if isinstance(value, tuple) else (value, False)
        p = m.createParameter()
        p.setId(pid), p.setValue(value), p.setConstant(constant)
    for sid, spec in (species or {}).items():
        s = m.createSpecies()
        s.setId(sid), s.setCompartment(spec.get("compartment", "C"))
        s.setHasOnlySubstanceUnits(spec.get("substance", True))
        s.setBoundaryCondition(spec.get("boundary", False)), s.setConstant(False)
        if "conc" in spec:
            s.setInitialConcentration(spec["conc"])
        else:
            s.setInitialAmount(spec.get("amount", 0.0))
        if "factor" in spec:
            s.setConversionFactor(spec["factor"])
    for variable, formula in (rules or {}).items():
        r = m.createAssignmentRule()
        r.setVariable(variable), r.setMath(_math(formula))
    for variable, formula in (rate_rules or {}).items():
        r = m.createRateRule()
        r.setVariable(variable), r.setMath(_math(formula))
    for formula in algebraic:
        m.createAlgebraicRule().setMath(_math(formula))
    for spec in reactions:
        r = m.createReaction()
        r.setId(spec["id"]), r.setReversible(spec.get("reversible", False))
        if version == 1:
            r.setFast(spec.get("fast", False))
        for side, create in (("reactants", r.createReactant), ("products", r.createProduct)):
            for sid, nu in spec.get(side, {}).items():
                ref = create()
                ref.setSpecies(sid), ref.setConstant(not isinstance(nu, str))
                if isinstance(nu, str):
                    ref.setId(nu), ref.setStoichiometry(1.0)
                else:
                    ref.setStoichiometry(nu)
        r.createKineticLaw().setMath(_math(spec["law"]))
    for i, spec in enumerate(events):
        e = m.createEvent()
        e.setId(spec.get("id", f"e{i}"))
        e.setUseValuesFromTriggerTime(spec.get("from_trigger", True))
        t = e.createTrigger()
        t.setMath(_math(spec["trigger"]))
        t.setPersistent(spec.get("persistent", True)), t.setInitialValue(spec.get("initial", True))
        if "delay" in spec:
            e.createDelay().setMath(_math(spec["delay"]))
        if "priority" in spec:
            e.createPriority().setMath(_math(spec["priority"]))
        for target, formula in spec["assign"].items():
            a = e.createEventAssignment()
            a.setVariable(target), a.setMath(_math(formula))
    return libsbml.writeSBMLToString(doc)


def run(text, ts, **kw):
    with jax.enable_x64(True):
        net = grn.load_sbml(text)
        sol = grn.simulate(net, np.asarray(ts, float), solver=grn.ODE(rtol=1e-10, atol=1e-12), **kw)
        return {name: np.asarray(sol[name])[0] for name in sol.species}


TS = np.linspace(0.0, 2.0, 9)


def test_rate_rule_on_a_parameter():
    out = run(build(params={"p": 1.0, "k": (0.5, True)}, rate_rules={"p": "k"}), TS)
    np.testing.assert_allclose(out["p"], 1.0 + 0.5 * TS, rtol=1e-9)
    np.testing.assert_allclose(out["k"], 0.5)  # a constant parameter is an output too


def test_time_in_a_kinetic_law_and_an_assignment_rule():
    text = build(
        params={"q": 0.0},
        species={"S": {"amount": 0.0}},
        reactions=[{"id": "r", "law": "time", "products": {"S": 1}}],
        rules={"q": "2 * time"},
    )
    out = run(text, TS)
    np.testing.assert_allclose(out["S"], TS**2 / 2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["q"], 2 * TS, rtol=1e-12)


def test_model_without_reactions_or_species():
    text = build(params={"a": 1.0, "b": 0.0}, rate_rules={"a": "-a"}, rules={"b": "2 * a"})
    out = run(text, TS)
    np.testing.assert_allclose(out["a"], np.exp(-TS), rtol=1e-8)
    np.testing.assert_allclose(out["b"], 2 * np.exp(-TS), rtol=1e-8)


def test_reversible_reaction_with_any_law():
    # A <-> B with law kf*A - kr*B written as one product: (kf + kr) * (A - K B) / ...; here the
    # law k * (A - B) is not a forward - reverse difference of positive terms at every state.
    text = build(
        params={"k": (1.0, True)},
        species={"A": {"amount": 2.0}, "B": {"amount": 0.0}},
        reactions=[{"id": "r", "law": "k * (A - B)", "reactants": {"A": 1}, "products": {"B": 1}}],
    )
    out = run(text, TS)
    # d(A - B)/dt = -2 k (A - B): A - B = 2 exp(-2 t), A + B = 2.
    np.testing.assert_allclose(out["A"], 1 + np.exp(-2 * TS), rtol=1e-8)
    np.testing.assert_allclose(out["B"], 1 - np.exp(-2 * TS), rtol=1e-8, atol=1e-12)


def test_variable_stoichiometry_and_conversion_factor():
    text = build(
        params={"n": 2.0, "f": (3.0, True)},
        species={"S": {"amount": 0.0, "factor": "f"}},
        reactions=[{"id": "r", "law": "1", "products": {"S": "n"}}],
        rules={"n": "1 + time"},
    )
    out = run(text, TS)
    # dS/dt = f * n(t) * 1 = 3 (1 + t)
    np.testing.assert_allclose(out["S"], 3 * (TS + TS**2 / 2), rtol=1e-9)


def test_growing_compartment_keeps_amounts_and_dilutes_concentrations():
    text = build(
        compartments={"V": (1.0, False)},
        params={"g": (1.0, True)},
        species={
            "S": {"conc": 2.0, "compartment": "V", "substance": False},
            "R": {"conc": 2.0, "compartment": "V", "substance": False},
        },
        rate_rules={"V": "g", "R": "0"},
    )
    out = run(text, TS)
    np.testing.assert_allclose(out["V"], 1 + TS, rtol=1e-10)
    np.testing.assert_allclose(out["S"], 2.0, rtol=1e-10)  # no reaction: the amount stays
    # a rate rule on a concentration: d[R]/dt = 0, so the amount grows with the volume
    np.testing.assert_allclose(out["R"], 2.0 * (1 + TS), rtol=1e-8)


def test_state_event_is_located_by_root_finding():
    text = build(
        params={"x": 0.0, "hit": 0.0},
        rate_rules={"x": "1"},
        events=[{"trigger": "x >= 0.7371", "assign": {"hit": "time"}}],
    )
    out = run(text, [0.0, 1.0])
    np.testing.assert_allclose(out["hit"][-1], 0.7371, rtol=1e-8)


@pytest.mark.parametrize(
    "trigger",
    [
        "x > 0.5 && x < 0.51",
        "xor(x > 0.5, x >= 0.51)",
        "!(x <= 0.5 || x >= 0.51)",
        "piecewise(x < 0.51, x > 0.5, false)",
    ],
)
def test_narrow_trigger_window_is_located_on_each_comparison(trigger):
    # dx/dt = 1 from 0: the trigger is true only for 0.5 < t < 0.51, far inside one step of the
    # integrator; it fires once, at t = 0.5, and never again.
    text = build(
        params={"x": 0.0, "hit": -1.0, "n": 0.0},
        rate_rules={"x": "1"},
        events=[{"trigger": trigger, "assign": {"hit": "time", "n": "n + 1"}}],
    )
    out = run(text, [0.0, 2.0])
    np.testing.assert_allclose(out["hit"][-1], 0.5, rtol=1e-8)
    assert out["n"][-1] == 1.0


def test_comparison_with_zero_is_located():
    # x / |x| jumps from -1 to 1 where x = t - 1.3 crosses 0: the root is the jump itself.
    text = build(
        params={"x": -1.3, "hit": -1.0},
        rate_rules={"x": "1"},
        events=[{"trigger": "x > 0", "assign": {"hit": "time"}}],
    )
    np.testing.assert_allclose(run(text, [0.0, 2.0])["hit"][-1], 1.3, rtol=1e-10)


def test_event_delay_and_values_from_trigger_or_execution_time():
    def case(from_trigger):
        text = build(
            params={"p": 0.0},
            events=[
                {
                    "trigger": "time >= 0.5",
                    "delay": "1",
                    "assign": {"p": "time"},
                    "from_trigger": from_trigger,
                }
            ],
        )
        return run(text, TS)["p"]

    np.testing.assert_allclose(case(True), np.where(TS >= 1.5, 0.5, 0.0), rtol=1e-9)
    np.testing.assert_allclose(case(False), np.where(TS >= 1.5, 1.5, 0.0), rtol=1e-9)


def test_priorities_order_simultaneous_events():
    def case(double_first):
        hi, lo = (2, 1) if double_first else (1, 2)
        text = build(
            params={"p": 1.0},
            events=[
                {
                    "trigger": "time >= 1",
                    "assign": {"p": "2 * p"},
                    "priority": str(hi),
                    "from_trigger": False,
                },
                {
                    "trigger": "time >= 1",
                    "assign": {"p": "p + 1"},
                    "priority": str(lo),
                    "from_trigger": False,
                },
            ],
        )
        return run(text, [0.0, 2.0])["p"][-1]

    assert case(True) == pytest.approx(3.0)
    assert case(False) == pytest.approx(4.0)


def test_persistence_and_initial_value():
    def case(persistent):
        text = build(
            params={"p": 0.0, "x": 0.0},
            rate_rules={"x": "1"},
            events=[
                {
                    "trigger": "x >= 1 && x < 1.2",
                    "delay": "0.5",
                    "assign": {"p": "1"},
                    "persistent": persistent,
                }
            ],
        )
        return run(text, [0.0, 2.0])["p"][-1]

    assert case(True) == 1.0  # executes at 1.5 although the trigger turned false at 1.2
    assert case(False) == 0.0  # cancelled when the trigger turned false

    def fires_at_start(initial):
        text = build(
            params={"p": 0.0},
            events=[{"trigger": "time >= 0", "assign": {"p": "p + 1"}, "initial": initial}],
        )
        return run(text, [0.0, 1.0])["p"]

    np.testing.assert_array_equal(fires_at_start(False), [1.0, 1.0])
    np.testing.assert_array_equal(fires_at_start(True), [0.0, 0.0])


def test_fast_reactions_are_held_at_equilibrium():
    # A <-> B fast (A - 2 B): A = 2 T / 3 of the total T = A + B, which the slow A -> (rate 3 A)
    # drains: dT/dt = -2 T, so from A = 3, B = 0 (settled at once to A = 2, B = 1)
    # A = 2 exp(-2 t), B = exp(-2 t).
    text = build(
        params={"kf": 1.0, "kr": 2.0, "k": 3.0},
        species={"A": {"amount": 3.0}, "B": {"amount": 0.0}},
        reactions=[
            {
                "id": "eq",
                "law": "kf * A - kr * B",
                "reactants": {"A": 1},
                "products": {"B": 1},
                "reversible": True,
                "fast": True,
            },
            {"id": "drain", "law": "k * A", "reactants": {"A": 1}},
        ],
        version=1,
    )
    out = run(text, TS)
    np.testing.assert_allclose(out["A"], 2 * np.exp(-2 * TS), rtol=1e-7)
    np.testing.assert_allclose(out["B"], np.exp(-2 * TS), rtol=1e-7)

    # A + B -> C fast and irreversible runs until the scarcer of A and B is used up, at the
    # start and again after an event adds A: (2, 3, 0) -> (0, 1, 2); A += 1 at t = 1 -> (0, 0, 3).
    text = build(
        params={"k": 1.0},
        species={"A": {"amount": 2.0}, "B": {"amount": 3.0}, "C": {"amount": 0.0}},
        reactions=[
            {
                "id": "bind",
                "law": "k * A * B",
                "reactants": {"A": 1, "B": 1},
                "products": {"C": 1},
                "fast": True,
            },
        ],
        events=[{"trigger": "time >= 1", "assign": {"A": "A + 1"}}],
        version=1,
    )
    out = run(text, [0.0, 0.5, 2.0])
    got = np.stack([out["A"], out["B"], out["C"]], axis=1)
    np.testing.assert_allclose(got, [[0, 1, 2], [0, 1, 2], [0, 0, 3]], atol=1e-9)

    # A negative rate runs the reaction backwards: S1 -> S2 at k S1 S2 with k = -1 from
    # S1 = S2 = 5 (where the rate's derivative along the reaction is 0) ends at S1 = 10, S2 = 0.
    text = build(
        params={"k": -1.0},
        species={"S1": {"amount": 5.0}, "S2": {"amount": 5.0}},
        reactions=[
            {
                "id": "J0",
                "law": "k * S1 * S2",
                "reactants": {"S1": 1},
                "products": {"S2": 1},
                "fast": True,
            },
        ],
        version=1,
    )
    out = run(text, [0.0, 1.0])
    np.testing.assert_allclose(out["S1"], [10.0, 10.0], rtol=1e-12)
    np.testing.assert_allclose(out["S2"], [0.0, 0.0], atol=1e-9)


def test_stochastic_solvers_refuse_what_they_cannot_simulate_exactly():
    text = build(params={"p": 1.0}, species={"S": {"amount": 1.0}}, rate_rules={"p": "1"})
    net = grn.load_sbml(text)
    with pytest.raises(ValueError, match=r"SSA cannot simulate.*rateRule for 'p'.*hybrid"):
        grn.simulate(net, [0.0, 1.0], key=jax.random.key(0), solver=grn.SSA())
    with pytest.raises(ValueError, match=r"LNA cannot simulate.*rateRule for 'p'"):
        grn.simulate(net, [0.0, 1.0], solver=grn.LNA())


# -- bad input ----------------------------------------------------------------------------------
def test_rule_on_unknown_symbol_is_named():
    text = build(params={"p": 1.0}, rules={"p": "nope * 2"})
    with pytest.raises(ValueError, match=r"assignmentRule for 'p' uses unknown identifier 'nope'"):
        grn.load_sbml(text)


def test_rate_rule_for_unknown_variable_is_named():
    text = build(params={"p": 1.0}, rate_rules={"p": "1"}).replace(
        'rateRule variable="p"', 'rateRule variable="ghost"'
    )
    with pytest.raises(ValueError, match=r"ghost"):
        grn.load_sbml(text)


def test_event_assigning_a_constant_parameter_is_named():
    text = build(
        params={"k": (1.0, True)},
        species={"S": {"amount": 1.0}},
        events=[{"id": "bump", "trigger": "time >= 1", "assign": {"k": "2"}}],
    )
    with pytest.raises(ValueError, match=r"event 'bump'.*'k'.*constant"):
        grn.load_sbml(text)


def test_malformed_piecewise_is_named():
    text = build(params={"p": 1.0}, rules={"p": "piecewise(1, 2)"})
    # piecewise(value, condition) with a numeric condition: libsbml flags it, or grn names it
    with pytest.raises(ValueError, match=r"assignmentRule|piecewise|not valid SBML"):
        grn.load_sbml(text)


def test_algebraic_rule_is_named():
    text = build(params={"p": 1.0, "q": 0.0}, algebraic=["p + q - 3"])
    with pytest.raises(ValueError, match=r"algebraicRule .*p \+ q - 3"):
        grn.load_sbml(text)


def test_trigger_without_a_locatable_switch_is_named():
    text = build(
        params={"p": 0.0, "x": 0.0},
        rate_rules={"x": "1"},
        events=[{"id": "eq", "trigger": "x == 1", "assign": {"p": "1"}}],
    )
    with pytest.raises(ValueError, match=r"event 'eq': the trigger .*cannot be located"):
        grn.load_sbml(text)


def test_level3_zero_dimensional_compartment_with_a_size_is_ordinary():
    text = build(
        compartments={"C": 2.0},
        species={"S": {"conc": 1.0, "substance": False}},
        reactions=[{"id": "r", "law": "1.5", "products": {"S": 1}}],
    ).replace('spatialDimensions="3"', 'spatialDimensions="0"')
    assert 'spatialDimensions="0"' in text
    out = run(text, TS)
    np.testing.assert_allclose(out["S"], 2.0 + 1.5 * TS, rtol=1e-10)  # amount = conc * size


def test_stiff_model_passes_with_the_default_method():
    """Robertson's chemical kinetics to t = 4e4: Tsit5 alone runs out of steps (the result code
    says so); the default `grn.ODE` then re-runs with its fallback, Kvaerno5, and matches
    scipy's Radau."""
    from scipy.integrate import solve_ivp

    k1, k2, k3 = 0.04, 3e7, 1e4
    text = build(
        params={"k1": (k1, True), "k2": (k2, True), "k3": (k3, True)},
        species={"A": {"amount": 1.0}, "B": {"amount": 0.0}, "D": {"amount": 0.0}},
        reactions=[
            {"id": "r1", "law": "k1 * A", "reactants": {"A": 1}, "products": {"B": 1}},
            {"id": "r2", "law": "k2 * B^2", "reactants": {"B": 2}, "products": {"B": 1, "D": 1}},
            {"id": "r3", "law": "k3 * B * D", "reactants": {"B": 1}, "products": {"A": 1}},
        ],
    )
    ts = np.array([0.0, 0.4, 4.0, 40.0, 400.0, 4e3, 4e4])

    def rhs(t, y):
        a, b, d = y
        r1, r2, r3 = k1 * a, k2 * b * b, k3 * b * d
        return [-r1 + r3, r1 - r2 - r3, r2]

    ref = solve_ivp(rhs, (0, ts[-1]), [1, 0, 0], "Radau", t_eval=ts, rtol=1e-12, atol=1e-16).y
    out = run(text, ts)
    for i, name in enumerate("ABD"):
        np.testing.assert_allclose(out[name], ref[i], rtol=1e-7, atol=1e-13, err_msg=name)
    with jax.enable_x64(True):
        explicit = grn.ODE(rtol=1e-10, atol=1e-12, fallback=None)
        sol = grn.simulate(grn.load_sbml(text), ts, solver=explicit, throw=False)
    assert int(sol.result[0]) == grn.RESULTS.solver_failed
