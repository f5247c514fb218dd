"""SBML export: a `grn.Network` -> an SBML Level 3 Version 2 document.

What is written (and how it reads back with `grn.io.load_sbml`):

- one compartment ``cell`` of size 1; every species as an amount (``hasOnlySubstanceUnits``
  true), its initial amount the network's default count;
- every network parameter as a global parameter (``constant="false"`` where an event assigns it);
- every schedule-driven *input* as a global parameter with value 0 and ``constant="false"``
  (SBML has no piecewise-constant inputs; set its value, or add events, in the receiving tool);
- every reaction with its stoichiometry and a kinetic law written from the builder rate laws:
  mass action with the stochastic combinatorial factor written out (``k * P * (P - 1) / 2`` for
  ``2 P ->``), Hill activation / repression, constants, products, and laws imported from SBML
  (`grn.io.SBMLMath`, which keep their formula), and any law with a method
  ``sbml_formula(reactants) -> str | None`` giving its propensity as an SBML L3 infix formula
  (the built-in melanoma model's Omega-scaled laws). A plain Python callable cannot be written
  and raises a `ValueError` naming the reaction;
- network rules as assignment rules on parameters of the same name;
- events: ``Event(at=c)`` as the trigger ``time >= c``; state triggers only where they came from
  SBML (they carry their formula);
- the fate rates (``growth``, ``death``) have no SBML counterpart: they are written as assignment
  rules on parameters ``grn_growth`` / ``grn_death`` so that they are not lost, but they do not
  change the SBML model's dynamics (and read back as rules, not fate laws);
- per-cell distributions (``cell_params``) as their median, the parameter's value; the spread
  and the pre-equilibration time (``equilibrate_h``) have no SBML counterpart: a `UserWarning`
  names what is dropped.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

from .._network import Network
from .._rate_laws import AbstractRateLaw, Constant, Function, Hill, MassAction, Product
from ._mathml import SBMLMath, _libsbml

_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _number(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write the non-finite number {value} to SBML")
    return repr(value)


def _ref(ref) -> str:
    return ref if isinstance(ref, str) else _number(ref)


def _formula(law: AbstractRateLaw, reactants, where: str) -> str:
    """The SBML L3 infix formula of a grn rate law (the stochastic propensity)."""
    if isinstance(law, SBMLMath):
        return law.formula
    own = getattr(law, "sbml_formula", None)  # a law that writes itself (e.g. the melanoma's)
    text = own(reactants) if callable(own) else None
    if isinstance(text, str):
        return text
    if isinstance(law, Constant):
        return _ref(law.value)
    if isinstance(law, MassAction):
        factors = [_ref(law.k)]
        denominator = 1
        for name, nu in reactants:
            factors += [name] + [f"({name} - {i})" for i in range(1, nu)]
            denominator *= math.factorial(nu)
        text = " * ".join(factors)
        return f"{text} / {denominator}" if denominator > 1 else text
    if isinstance(law, Hill):
        ratio = f"({law.species} / {_ref(law.K)}) ^ {_ref(law.n)}"
        top = f"{_ref(law.vmax)} * {ratio}" if law.activating else _ref(law.vmax)
        return f"{top} / (1 + {ratio})"
    if isinstance(law, Product):
        return " * ".join(f"({_formula(f, reactants, where)})" for f in law.factors)
    if isinstance(law, Function):
        raise ValueError(
            f"{where}: its rate law is a plain Python callable, which cannot be written to SBML; "
            f"build it from grn.mass_action, grn.hill_activation, grn.hill_repression and their "
            f"products to export it"
        )
    raise ValueError(f"{where}: a {type(law).__name__} rate law cannot be written to SBML")


def _check(status: int, what: str):
    libsbml = _libsbml()
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ValueError(
            f"libsbml could not set {what}: {libsbml.OperationReturnValue_toString(status)}"
        )


def _math(model, text: str, where: str):
    libsbml = _libsbml()
    ast = libsbml.parseL3FormulaWithModel(text, model)
    if ast is None:
        raise ValueError(
            f"{where}: libsbml cannot parse the formula {text!r}: {libsbml.getLastParseL3Error()}"
        )
    return ast


def _names(ast) -> set[str]:
    """The identifiers (``<ci>``) an AST reads."""
    libsbml = _libsbml()
    out = {ast.getName()} if ast.getType() == libsbml.AST_NAME else set()
    for i in range(ast.getNumChildren()):
        out |= _names(ast.getChild(i))
    return out


def _unique(name: str, taken: set[str]) -> str:
    out = name
    while out in taken:
        out += "_"
    taken.add(out)
    return out


def to_sbml(network: Network, model_id: str = "grn_model") -> str:
    """The network as an SBML Level 3 Version 2 document (a string); see the module docs."""
    libsbml = _libsbml()
    if not isinstance(network, Network):
        raise TypeError(f"to_sbml expects a grn.Network, got {type(network).__name__}")
    names = (
        [("species", s) for s in network.species]
        + [("parameter", p) for p in network.params]
        + [("input", u) for u in network.inputs]
    )
    names += [("rule", r) for r, _ in network.rules]
    seen: dict[str, str] = {}
    for kind, name in names:
        if not _SID.match(name):
            raise ValueError(
                f"{kind} {name!r} is not a valid SBML identifier (letters, digits and '_', not "
                f"starting with a digit)"
            )
        if name in seen:
            raise ValueError(f"the name {name!r} is used by a {seen[name]} and a {kind}")
        seen[name] = kind
    taken = set(seen)

    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    _check(model.setId(_unique(model_id, taken)), "the model id")
    comp = model.createCompartment()
    cell = _unique("cell", taken)
    for status in (
        comp.setId(cell),
        comp.setSize(1.0),
        comp.setConstant(True),
        comp.setSpatialDimensions(3),
    ):
        _check(status, "the compartment")

    for name, count in zip(network.species, network.x0.tolist()):
        sp = model.createSpecies()
        for status in (
            sp.setId(name),
            sp.setCompartment(cell),
            sp.setInitialAmount(float(count)),
            sp.setHasOnlySubstanceUnits(True),
            sp.setBoundaryCondition(False),
            sp.setConstant(False),
        ):
            _check(status, f"species {name!r}")

    assigned = {target for e in network.events for target, _ in e.assign}

    def parameter(name, value, constant):
        par = model.createParameter()
        _check(par.setId(name), f"parameter {name!r}")
        if value is not None:
            _check(par.setValue(float(value)), f"the value of parameter {name!r}")
        _check(par.setConstant(constant), f"parameter {name!r}")

    for name, value in network.params.items():
        if name in network.cell_params:
            value = network.cell_params[name].median
        parameter(name, value, name not in assigned)
    for name in network.inputs:
        parameter(name, 0.0, False)

    def rule(name, law, where):
        parameter(name, None, False)
        r = model.createAssignmentRule()
        _check(r.setVariable(name), f"the rule for {name!r}")
        _check(r.setMath(_math(model, _formula(law, (), where), where)), where)

    for name, law in network.rules:
        rule(name, law, f"rule {name!r}")
    for kind, law in (("growth", network.growth), ("death", network.death)):
        if law is not None:
            rule(_unique(f"grn_{kind}", taken), law, f"the {kind} rate")

    for i, reaction in enumerate(network.reactions):
        where = f"reaction {i} {reaction.label}"
        rid = _unique(
            reaction.name if reaction.name and _SID.match(reaction.name) else f"R{i}", taken
        )
        r = model.createReaction()
        _check(r.setId(rid), where)
        _check(r.setReversible(False), where)
        for side, create in (
            (reaction.reactants, r.createReactant),
            (reaction.products, r.createProduct),
        ):
            for name, nu in side:
                ref = create()
                for status in (
                    ref.setSpecies(name),
                    ref.setStoichiometry(float(nu)),
                    ref.setConstant(True),
                ):
                    _check(status, where)
        ast = _math(model, _formula(reaction.rate, reaction.reactants, where), where)
        listed = {name for name, _ in reaction.reactants + reaction.products}
        for name in sorted(_names(ast) & set(network.species) - listed):
            _check(r.createModifier().setSpecies(name), where)
        _check(r.createKineticLaw().setMath(ast), where)

    for i, event in enumerate(network.events):
        where = f"event {i} {event.label}"
        e = model.createEvent()
        if event.name and _SID.match(event.name):
            _check(e.setId(_unique(event.name, taken)), where)
        _check(e.setUseValuesFromTriggerTime(True), where)
        trig = e.createTrigger()
        _check(trig.setInitialValue(False), where)
        _check(trig.setPersistent(True), where)
        if event.at is not None:
            ast = libsbml.ASTNode(libsbml.AST_RELATIONAL_GEQ)
            time = libsbml.ASTNode(libsbml.AST_NAME_TIME)
            time.setName("time")
            bound = libsbml.ASTNode(libsbml.AST_REAL)
            bound.setValue(float(event.at))
            ast.addChild(time)
            ast.addChild(bound)
        else:
            text = getattr(event.when, "sbml_formula", None)
            if text is None:
                raise ValueError(
                    f"{where}: its trigger is a plain Python callable, which cannot be written "
                    f"to SBML (only Event(at=...) and triggers imported from SBML can)"
                )
            ast = _math(model, text, where)
        _check(trig.setMath(ast), where)
        for target, law in event.assign:
            ea = e.createEventAssignment()
            _check(ea.setVariable(target), where)
            _check(ea.setMath(_math(model, _formula(law, (), where), where)), where)

    dropped = [
        f"the per-cell {type(d).__name__} spread of {name!r}"
        for name, d in network.cell_params.items()
    ]
    if network.equilibrate_h:
        dropped.append(f"the {network.equilibrate_h:g}-h pre-equilibration (equilibrate_h)")
    if dropped:
        warnings.warn(
            "SBML cannot carry " + "; ".join(dropped) + " (each distribution is written as its "
            "median; the model starts from x0)",
            UserWarning,
            stacklevel=2,
        )
    return libsbml.writeSBMLToString(doc)


def consistency_errors(sbml: str) -> list[str]:
    """libsbml's ``checkConsistency()`` errors (not warnings) of an SBML string."""
    libsbml = _libsbml()
    doc = libsbml.readSBMLFromString(sbml)
    doc.checkConsistency()
    return [
        f"line {err.getLine()}: {err.getShortMessage()}: {err.getMessage().strip()}"
        for err in (doc.getError(i) for i in range(doc.getNumErrors()))
        if err.getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]


def save_sbml(network: Network, path: str | os.PathLike, validate: bool = True) -> Path:
    """Write the network to ``path`` as SBML Level 3 Version 2 (see `to_sbml`).

    With ``validate`` (the default) libsbml's ``checkConsistency()`` runs first and any error
    (not warning) raises a `ValueError` instead of writing a file other tools would reject.
    """
    text = to_sbml(network)
    if validate:
        errors = consistency_errors(text)
        if errors:
            raise ValueError("the exported SBML is not consistent: " + "; ".join(errors[:5]))
    path = Path(path)
    path.write_text(text)
    return path
