"""SBML import: a libsbml model -> a `grn.Network` with JAX-traceable rate laws.

Semantics (those of the SBML specification, read for a discrete stochastic simulation, as in
Evans, Gillespie & Wilkinson 2008, the DSMTS):

- every species is a *count* (amount) in the network state; where a species with
  ``hasOnlySubstanceUnits="false"`` appears in math its symbol means the concentration
  ``amount / size`` of its compartment, and a value assigned to it (initial assignment, event) is a
  concentration, converted to an amount with the compartment size;
- a kinetic law is the reaction's propensity (substance per time, i.e. molecules per time);
- compartment ids in math are their sizes; compartments with a size become network parameters, as
  do global parameters and local parameters (renamed ``<reaction id>__<parameter id>`` so that
  they shadow globals of the same name without clashing);
- boundary and constant species stay in the state but no reaction changes them;
- initial assignments are evaluated once at load time (float64); assignment rules are
  substituted into every expression that uses their variable and also returned as network rules
  (``Network.rule_values``); a species set by an assignment rule leaves the state;
- events become `grn.Event`: a trigger ``time >= c`` (or ``time > c``, ``c <= time``, ...) with a
  constant ``c`` is the exact time event ``Event(at=c)``, any other trigger a state trigger;
- a reversible reaction whose kinetic law is a difference ``f - r`` is split into the forward and
  reverse reactions ``<id>__forward`` and ``<id>__reverse`` (as COPASI does for stochastic runs);
- unit definitions are ignored (values are taken as they stand); constraints are not checked.

Anything else that changes the dynamics (algebraic and rate rules, delays, event priorities, fast
reactions, conversion factors, variable stoichiometry, required SBML packages, ...) raises a
`ValueError` that names the element, never a silently different model.

MathML is compiled once per model by `grn.io._mathml` into closures over ``jax.numpy``.
"""

from __future__ import annotations

import io
import math
import os
import xml.etree.ElementTree as ET
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._network import Event, Network, Reaction
from ._mathml import SBMLMath, _Compiler, _const, _Expr, _libsbml, _Scope
from ._sbml_ode import _ODEBuilder


# -- reading ------------------------------------------------------------------------------------
def _read_document(source):
    """(document, label) from a path or an XML string; ValueError naming the first error."""
    libsbml = _libsbml()
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("<"):
        label, text = "SBML string", source
        doc = libsbml.readSBMLFromString(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no SBML file at {str(path)!r}")
        label, text = str(path), None
        doc = libsbml.readSBMLFromFile(str(path))
    else:
        raise TypeError(
            f"load_sbml expects a path or an SBML XML string, got {type(source).__name__}"
        )
    errors = [
        doc.getError(i)
        for i in range(doc.getNumErrors())
        if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if errors:
        root = _root_element(text if text is not None else Path(source))
        if root is not None and root != "sbml":
            raise ValueError(
                f"{label} is not an SBML document: its root element is <{root}>, not <sbml>"
            )
        err = errors[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise ValueError(
            f"{label} is not valid SBML: line {err.getLine()}: {err.getShortMessage()}: "
            f"{err.getMessage().strip()}{more}"
        )
    if doc.getModel() is None:
        raise ValueError(f"{label}: the SBML document has no <model>")
    return doc, label


def _root_element(source) -> str | None:
    """Local name of the XML root element, or None where the XML is not well formed."""
    stream = io.BytesIO(source.encode("utf-8")) if isinstance(source, str) else str(source)
    try:
        for _, element in ET.iterparse(stream, events=("start",)):
            return element.tag.rsplit("}", 1)[-1]
    except ET.ParseError:
        return None
    return None


def _check_packages(doc, label):
    """Raise for SBML Level 3 packages that change the model's meaning (``required="true"``)."""
    namespaces = doc.getNamespaces()
    for i in range(namespaces.getNumNamespaces()):
        uri, prefix = namespaces.getURI(i), namespaces.getPrefix(i)
        if not uri.startswith("http://www.sbml.org/sbml/level3/") or uri.endswith("/core"):
            continue
        required = doc.getPackageRequired(uri) or doc.getPackageRequired(prefix)
        if required:
            raise ValueError(
                f"{label} uses the SBML Level 3 package {prefix!r} ({uri}), which grn does not "
                f"support (it is marked required: the model means something else without it)"
            )


# -- the importer -------------------------------------------------------------------------------
class _LazyValues(Mapping):
    """Name -> initial value, computed on first access (initial assignments may chain)."""

    def __init__(self, names, compute, label):
        self._names, self._compute, self._label = list(names), compute, label
        self._values: dict[str, float] = {}
        self._active: list[str] = []

    def __getitem__(self, name):
        if name not in self._names:
            raise KeyError(name)
        if name not in self._values:
            if name in self._active:
                raise ValueError(
                    f"{self._label}: initial values depend on each other in a cycle: "
                    + " -> ".join([*self._active[self._active.index(name) :], name])
                )
            self._active.append(name)
            try:
                self._values[name] = float(self._compute(name))
            finally:
                self._active.pop()
        return self._values[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


class _Importer:
    def __init__(self, model, label: str):
        self.L = _libsbml()
        self.model, self.label = model, label
        m = model
        self.level = m.getLevel()
        self.species = {s.getId(): s for s in m.getListOfSpecies()}
        self.compartments = {c.getId(): c for c in m.getListOfCompartments()}
        self.parameters = {p.getId(): p for p in m.getListOfParameters()}
        self.reaction_ids = {r.getId() for r in m.getListOfReactions()}
        self.species_reference_ids = {
            sr.getId()
            for r in m.getListOfReactions()
            for sr in [*r.getListOfReactants(), *r.getListOfProducts()]
            if sr.isSetId()
        }
        # SBML Level 3 Version 2 lets math be absent: such a rule or assignment has no effect.
        self.initial = {
            a.getSymbol(): a.getMath()
            for a in m.getListOfInitialAssignments()
            if a.getMath() is not None
        }
        self.rules = {}  # assignment rules
        self.rate_rules = {}
        self.algebraic = []
        for rule in m.getListOfRules():
            if rule.getMath() is None:
                continue
            variable = rule.getVariable() if rule.isSetVariable() else ""
            if rule.isAlgebraic():
                self.algebraic.append(rule)
            elif rule.isRate():
                self.rate_rules[variable] = rule.getMath()
            else:
                self.rules[variable] = rule.getMath()
        self.solved = self._solve_algebraic()
        # Network parameters: globals and sized compartments not set by rules, local parameters.
        self.net_params: dict[str, tuple[str, Any]] = {}
        for pid, par in self.parameters.items():
            if pid not in self.rules and (par.isSetValue() or pid in self.initial):
                self.net_params[pid] = ("parameter", par)
        for cid, comp in self.compartments.items():
            if cid not in self.rules and (comp.isSetSize() or cid in self.initial):
                self.net_params[cid] = ("compartment", comp)
        for r in m.getListOfReactions():
            for sr in [*r.getListOfReactants(), *r.getListOfProducts()]:
                if sr.isSetId() and sr.getId() not in self.rules:
                    self.net_params[sr.getId()] = ("speciesReference", sr)
        taken = set(self.species) | set(self.compartments) | set(self.parameters)
        taken |= self.reaction_ids | self.species_reference_ids
        taken |= {f.getId() for f in m.getListOfFunctionDefinitions()}
        self.locals: dict[str, dict[str, str]] = {}
        for r in m.getListOfReactions():
            kl = r.getKineticLaw()
            if kl is None:
                continue
            params = kl.getListOfLocalParameters() if self.level >= 3 else kl.getListOfParameters()
            names = {}
            for par in params:
                net = f"{r.getId()}__{par.getId()}"
                while net in taken:
                    net += "_"
                taken.add(net)
                names[par.getId()] = net
                if not par.isSetValue():
                    raise ValueError(
                        f"{label}: local parameter {par.getId()!r} of reaction {r.getId()!r} "
                        f"has no value"
                    )
                self.net_params[net] = ("local", par)
            self.locals[r.getId()] = names
        self.state = [s for s in self.species if s not in self.rules]
        self.used: set[str] = set()  # network names that compiled expressions read
        self.jax = _Compiler(self, "jax")
        self.numpy = _Compiler(self, "numpy", rate_of=self._rate_of_at_start)
        self._builder = None

    def _solve_algebraic(self) -> dict:
        """Algebraic rules that determine one variable: {variable: rule}, now assignment rules.

        The variable is the rule's only symbol that nothing else determines (not constant, not
        set by another rule, not changed by reactions or events); the rule must be linear in it
        (checked at the initial values)."""
        m = self.model
        changed = {
            sr.getSpecies()
            for r in m.getListOfReactions()
            for sr in [*r.getListOfReactants(), *r.getListOfProducts()]
        }
        assigned = {
            ea.getVariable() for e in m.getListOfEvents() for ea in e.getListOfEventAssignments()
        }

        def free(name):
            if name in self.rules or name in self.rate_rules or name in assigned:
                return False
            if name in self.species:
                sp = self.species[name]
                return not sp.getConstant() and (sp.getBoundaryCondition() or name not in changed)
            obj = self.parameters.get(name) or self.compartments.get(name)
            return obj is not None and not obj.getConstant()

        solved = {}
        for rule in self.algebraic:
            names = {n for n in _names(rule.getMath()) if free(n) and n not in solved}
            if len(names) == 1:
                (variable,) = names
                solved[variable] = rule
                self.rules[variable] = rule.getMath()
        self.algebraic = [r for r in self.algebraic if all(r is not s for s in solved.values())]
        return solved

    def _check_linear(self):
        """Raise where an algebraic rule is not linear in the variable it determines."""
        for variable, rule in self.solved.items():
            node = rule.getMath()
            scope = _Scope(f"algebraicRule for {variable!r}")
            with np.errstate(all="ignore"):
                f = [
                    float(
                        self.numpy.compile(
                            node, _Scope(scope.where, bound={variable: _const(v)})
                        ).fn(self._xvals, self._pvals, 0.0)
                    )
                    for v in (0.0, 1.0, 2.0)
                ]
            scale = abs(f[0]) + abs(f[1]) + abs(f[2])
            if f[1] == f[0] or abs(f[2] - 2 * f[1] + f[0]) > 1e-9 * scale:
                raise ValueError(
                    f"{self.label}: algebraicRule ({self.L.formulaToL3String(node)} = 0) is "
                    f"not linear in {variable!r}, the variable it determines; grn solves only "
                    f"linear algebraic rules"
                )

    def dimensionless(self, compartment: str) -> bool:
        """A compartment of 0 dimensions has no size in Level 2; Level 3 gives it no special rule
        unless it has no size at all."""
        comp = self.compartments.get(compartment)
        if comp is None or comp.getSpatialDimensionsAsDouble() != 0:
            return False
        sized = comp.isSetSize() or compartment in self.initial or compartment in self.rules
        return self.level < 3 or not (sized or compartment in self.rate_rules)

    def _algebraic(self, rule) -> str:
        ident = rule.getId() or rule.getMetaId() or "(no id)"
        raise ValueError(
            f"{self.label}: algebraicRule {ident} ({self.L.formulaToL3String(rule.getMath())} "
            f"= 0): algebraic rules are not supported"
        )

    def _check_stochastic(self):
        """Raise for what the reaction network (the stochastic form) cannot say."""
        m, label = self.model, self.label
        for rule in self.algebraic:
            self._algebraic(rule)
        for r in m.getListOfReactions():
            if r.isSetFast() and r.getFast():
                raise ValueError(
                    f'{label}: reaction {r.getId()!r} is fast (fast="true", a rapid-equilibrium '
                    f"approximation that only the ODE form holds)"
                )
        for variable in self.rate_rules:
            raise ValueError(
                f"{label}: rateRule for {variable!r}: a rate rule (continuous dynamics outside "
                f"reactions) inside a stochastic simulation makes a hybrid model"
            )
        if m.isSetConversionFactor():
            raise ValueError(
                f"{label}: model conversionFactor {m.getConversionFactor()!r} is not supported"
            )
        for sid, sp in self.species.items():
            if sp.isSetConversionFactor():
                raise ValueError(
                    f"{label}: species {sid!r} has a conversionFactor, which is not supported"
                )
        for r in m.getListOfReactions():
            rid = r.getId()
            for sr in [*r.getListOfReactants(), *r.getListOfProducts()]:
                if self.level == 2 and sr.isSetStoichiometryMath():
                    raise ValueError(
                        f"{label}: reaction {rid!r}: stoichiometryMath for species "
                        f"{sr.getSpecies()!r} (variable stoichiometry) is not supported"
                    )
        events_assign = {
            ea.getVariable() for e in m.getListOfEvents() for ea in e.getListOfEventAssignments()
        }
        for ident in self.species_reference_ids:
            if ident in self.rules or ident in self.initial or ident in events_assign:
                raise ValueError(
                    f"{label}: speciesReference {ident!r} has its stoichiometry set by a rule, "
                    f"initialAssignment or event (variable stoichiometry), which is not supported"
                )
        for e in m.getListOfEvents():
            ident = e.getId() or e.getMetaId() or "(no id)"
            if e.isSetDelay():
                raise ValueError(
                    f"{label}: event {ident!r} has a delay, which grn does not support"
                )
            if self.level >= 3 and e.isSetPriority():
                raise ValueError(
                    f"{label}: event {ident!r} has a priority, which grn does not support"
                )
        params, x0 = self._values
        for name, value in params.items():
            kind, obj = self.net_params[name]
            if value < 0:
                raise ValueError(
                    f"{label}: {kind} {name!r} has the value {value}; grn.Network needs "
                    f"non-negative parameters"
                )
        for name, value in x0.items():
            if value < 0:
                raise ValueError(
                    f"{label}: species {name!r} starts at {value}; initial amounts must be "
                    f"non-negative"
                )

    # -- values at load time --------------------------------------------------------------------
    def initial_values(self):
        pvals = _LazyValues(self.net_params, self._initial_param, self.label)
        xvals = _LazyValues(self.state, self._initial_species, self.label)
        self._pvals, self._xvals = pvals, xvals
        with np.errstate(all="ignore"):
            params = {name: pvals[name] for name in self.net_params}
            x0 = {name: xvals[name] for name in self.state}
        for name, value in params.items():
            kind, obj = self.net_params[name]
            if not math.isfinite(value):
                raise ValueError(
                    f"{self.label}: {kind} {name!r} has the value {value}; grn.Network needs "
                    f"finite parameters"
                )
        for name, value in x0.items():
            if not math.isfinite(value):
                raise ValueError(
                    f"{self.label}: species {name!r} starts at {value}; initial amounts must be "
                    f"finite"
                )
        self._values = params, x0
        self._check_linear()
        return params, x0

    def _rate_of_at_start(self, name, scope) -> _Expr:
        """``rateOf(name)`` in a value computed at load time: the rate at the initial state."""
        if self._builder is None:
            self._builder = _ODEBuilder(self)
        expr = self._builder.rate_of(name, scope)

        def fn(x, p, t):
            env = ChainMap(x, p)
            return float(expr.fn(env, env, t))

        return _Expr(fn, expr.text, uses_time=True)

    def _evaluate(self, math_node, where):
        expr = self.numpy.compile(math_node, _Scope(where))
        return expr.fn(self._xvals, self._pvals, 0.0)

    def _initial_param(self, name):
        kind, obj = self.net_params[name]
        if kind != "local" and name in self.initial:
            return self._evaluate(self.initial[name], f"initialAssignment to {name!r}")
        if kind == "speciesReference":
            nu = obj.getStoichiometry() if obj.isSetStoichiometry() or self.level < 3 else 1.0
            return nu / obj.getDenominator() if self.level <= 2 else nu
        return obj.getValue() if kind != "compartment" else obj.getSize()

    def _initial_species(self, sid):
        sp = self.species[sid]
        concentration = not sp.getHasOnlySubstanceUnits()
        if sid in self.initial:
            value = self._evaluate(self.initial[sid], f"initialAssignment to {sid!r}")
        elif sp.isSetInitialAmount():
            value, concentration = sp.getInitialAmount(), False
        elif sp.isSetInitialConcentration():
            value, concentration = sp.getInitialConcentration(), True
        else:
            raise ValueError(f"{self.label}: species {sid!r} has no initial amount or value")
        if concentration and not self.dimensionless(sp.getCompartment()):
            scope = _Scope(f"the initial value of species {sid!r}")
            value = value * self.numpy.symbol(sp.getCompartment(), scope).fn(
                self._xvals, self._pvals, 0.0
            )
        return value

    # -- pieces of the network ------------------------------------------------------------------
    def law(self, math_node, scope: _Scope, allow_time=False) -> SBMLMath:
        expr = self.jax.compile(math_node, scope)
        self.used |= expr.names
        if expr.uses_time and not allow_time:
            raise ValueError(
                f"{self.label}: {scope.where} depends on time (csymbol time), which grn rate "
                f"laws, rules and event assignments cannot read"
            )
        fn = expr.fn
        return SBMLMath(lambda x, p, u: fn(x, p, None), expr.text)

    def _as_amount(self, target: str, law: SBMLMath) -> SBMLMath:
        """A value assigned to a species: amount, or concentration times compartment size."""
        sp = self.species[target]
        if sp.getHasOnlySubstanceUnits() or self.dimensionless(sp.getCompartment()):
            return law
        size = self.jax.symbol(sp.getCompartment(), _Scope(f"species {target!r}"))
        self.used |= size.names
        fn, sfn = law.fn, size.fn
        return SBMLMath(
            lambda x, p, u: fn(x, p, u) * sfn(x, p, None), f"({law.formula} * {size.text})"
        )

    def reactions(self) -> list[Reaction]:
        out = []
        for r in self.model.getListOfReactions():
            rid = r.getId()
            kl = r.getKineticLaw()
            if kl is None or kl.getMath() is None:
                raise ValueError(f"{self.label}: reaction {rid!r} has no kineticLaw")
            left = self._side(r, r.getListOfReactants())
            right = self._side(r, r.getListOfProducts())
            scope = _Scope(f"the kineticLaw of reaction {rid!r}", local=self.locals.get(rid, {}))
            math_node = kl.getMath()
            if not r.getReversible():
                out.append(Reaction(f"{left} -> {right}", self.law(math_node, scope), rid))
                continue
            if math_node.getType() != self.L.AST_MINUS or math_node.getNumChildren() != 2:
                raise ValueError(
                    f"{self.label}: reaction {rid!r} is reversible and its kineticLaw "
                    f"({self.L.formulaToL3String(math_node)}) is not a difference "
                    f"'forward - reverse'; a stochastic simulation needs irreversible "
                    f'reactions: split it in two, or set reversible="false" if the law is '
                    f"never negative"
                )
            forward = self.law(math_node.getChild(0), scope)
            reverse = self.law(math_node.getChild(1), scope)
            out.append(Reaction(f"{left} -> {right}", forward, f"{rid}__forward"))
            out.append(Reaction(f"{right} -> {left}", reverse, f"{rid}__reverse"))
        return out

    def _side(self, reaction, refs) -> str:
        rid = reaction.getId()
        terms: dict[str, float] = {}
        for sr in refs:
            sid = sr.getSpecies()
            sp = self.species.get(sid)
            if sp is None:
                raise ValueError(f"{self.label}: reaction {rid!r} uses unknown species {sid!r}")
            if self.level >= 3 and not sr.isSetStoichiometry():
                raise ValueError(
                    f"{self.label}: reaction {rid!r}: the stoichiometry of species {sid!r} "
                    f"is not set"
                )
            nu = sr.getStoichiometry()
            if self.level <= 2 and sr.getDenominator() != 1:
                nu = nu / sr.getDenominator()
            if not math.isfinite(nu) or nu < 0 or nu != round(nu):
                raise ValueError(
                    f"{self.label}: reaction {rid!r}: stoichiometry {nu} of species {sid!r} "
                    f"is not a non-negative integer (molecule counts change in whole numbers)"
                )
            if sp.getBoundaryCondition() or sp.getConstant() or nu == 0:
                continue
            if sid in self.rules:
                raise ValueError(
                    f"{self.label}: reaction {rid!r} changes species {sid!r}, which an "
                    f"assignmentRule also sets"
                )
            terms[sid] = terms.get(sid, 0) + int(round(nu))
        return " + ".join(sid if nu == 1 else f"{nu} {sid}" for sid, nu in terms.items())

    def rule_laws(self) -> dict[str, SBMLMath]:
        laws = {}
        for variable in self.rules:
            law = self.law(self.rules[variable], _Scope(f"assignmentRule for {variable!r}"))
            if variable in self.species:
                law = self._as_amount(variable, law)
            laws[variable] = law
        return laws

    def events(self, constant_params: set[str]) -> list[Event]:
        out = []
        for e in self.model.getListOfEvents():
            ident = e.getId() or e.getMetaId() or None
            where = f"event {ident!r}" if ident else "an event"
            assign = {}
            for ea in e.getListOfEventAssignments():
                target = ea.getVariable()
                scope = _Scope(f"{where}: the eventAssignment to {target!r}")
                if ea.getMath() is None:
                    continue
                law = self.law(ea.getMath(), scope)
                if target in self.species:
                    sp = self.species[target]
                    if target in self.rules or sp.getConstant():
                        raise ValueError(
                            f"{self.label}: {where} assigns species {target!r}, which is "
                            f"constant or set by an assignmentRule"
                        )
                    law = self._as_amount(target, law)
                elif (
                    target in self.net_params
                    and self.net_params[target][0] != "local"
                    and (self.net_params[target][1].getConstant())
                ):
                    raise ValueError(
                        f"{self.label}: {where}: the eventAssignment to {target!r} assigns a "
                        f'{self.net_params[target][0]} that is constant (constant="true")'
                    )
                elif target not in self.net_params:
                    raise ValueError(
                        f"{self.label}: {where} assigns {target!r}, which is not a species, "
                        f"compartment or parameter of the model (or has no value)"
                    )
                assign[target] = law
            if not assign:
                continue  # an event without assignments changes nothing
            trigger = e.getTrigger().getMath() if e.getTrigger() is not None else None
            if trigger is None:  # SBML L3v2: an event without trigger math never fires
                continue
            at = self._time_trigger(trigger, constant_params, where)
            if at is not None:
                out.append(Event(assign, at=at, name=ident))
                continue
            expr = self.jax.compile(trigger, _Scope(f"{where}: the trigger"))
            self.used |= expr.names
            out.append(Event(assign, when=_trigger(expr.fn, expr.text), name=ident))
        return out

    def _time_trigger(self, node, constant_params, where) -> float | None:
        """``c`` of a trigger ``time >= c`` (``time > c``, ``c <= time``, ``c < time``)."""
        L = self.L
        kind = node.getType()
        if node.getNumChildren() != 2:
            return None
        a, b = node.getChild(0), node.getChild(1)
        if kind in (L.AST_RELATIONAL_GEQ, L.AST_RELATIONAL_GT):
            time, bound = a, b
        elif kind in (L.AST_RELATIONAL_LEQ, L.AST_RELATIONAL_LT):
            time, bound = b, a
        else:
            return None
        if time.getType() != L.AST_NAME_TIME:
            return None
        expr = self.numpy.compile(bound, _Scope(f"{where}: the trigger"))
        if expr.uses_time or not expr.names <= constant_params:
            return None
        with np.errstate(all="ignore"):
            value = float(expr.fn(self._xvals, self._pvals, 0.0))
        if not math.isfinite(value):
            raise ValueError(f"{self.label}: {where} fires at time {value}")
        return value

    def _stochastic(self, params, x0) -> dict:
        """The reaction network's arguments (the form every solver simulates), or raise."""
        self._check_stochastic()
        assigned = {
            ea.getVariable()
            for e in self.model.getListOfEvents()
            for ea in e.getListOfEventAssignments()
        }
        constant_params = {name for name in self.net_params if name not in assigned}
        reactions = self.reactions()
        rules = self.rule_laws()
        events = self.events(constant_params)
        # Compartment sizes and stoichiometries that no expression reads are left out.
        params = {
            name: value
            for name, value in params.items()
            if self.net_params[name][0] not in ("compartment", "speciesReference")
            or name in self.used | assigned
        }
        if not self.state:
            raise ValueError(f"{self.label}: the model has no species that reactions can change")
        return dict(
            species=self.state,
            reactions=reactions,
            params=params,
            x0=x0,
            events=events,
            rules=rules,
        )

    def network(self) -> Network:
        params, x0 = self.initial_values()
        try:
            stochastic, refusal = self._stochastic(params, x0), None
        except ValueError as err:
            stochastic, refusal = None, str(err).removeprefix(f"{self.label}: ")
        try:
            ode = _ODEBuilder(self).system()
        except ValueError:
            if stochastic is None:
                raise
            ode = None
        try:
            if stochastic is not None:
                return Network(**stochastic, ode=ode)
            return Network(
                species=self.state,
                reactions=(),
                params=params,
                x0=x0,
                ode=ode,
                stochastic_refusal=refusal,
            )
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{self.label}: {err}") from err


def _names(node) -> set[str]:
    """Identifiers a math AST reads."""
    out = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if n.getType() == _libsbml().AST_NAME:
            out.add(n.getName())
        stack += [n.getChild(i) for i in range(n.getNumChildren())]
    return out


def _trigger(fn, text):
    def when(t, x, p):
        return fn(x, p, t)

    when.sbml_formula = text
    return when


def load_sbml(source: str | os.PathLike) -> Network:
    """Read an SBML model (a file path, or the XML itself as a string) into a `grn.Network`.

    Species become counts, parameters, sized compartments and (renamed) local parameters become
    network parameters, kinetic laws become propensities, assignment rules become network rules
    and events `grn.Event` s; see the module documentation for the exact semantics. Anything that
    grn cannot simulate faithfully raises a `ValueError` that names the SBML element.
    """
    doc, label = _read_document(source)
    _check_packages(doc, label)
    return _Importer(doc.getModel(), label).network()
