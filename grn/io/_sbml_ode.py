"""An imported SBML model's deterministic form: a `grn._ode_system.ODESystem`.

The state is every species not set by an assignment rule (its amount) and every parameter,
compartment size or species reference (stoichiometry) that a rate rule or an event changes.

- ``d amount / dt = conversionFactor * sum_j stoichiometry_j * rate_j`` over the reactions
  (stoichiometries may be ``stoichiometryMath`` or species references set by rules or events);
  a kinetic law may read ``time``, any rule target and reaction rates; reversible reactions
  take their law as it is;
- a rate rule sets the derivative of its variable; on a species with concentration units it
  sets ``d[S]/dt``, so ``d amount/dt = V d[S]/dt + [S] dV/dt``;
- assignment rules are substituted into every expression that reads their variable;
- events: see `grn._solvers._ode_events` (delays, priorities, persistence, initial values,
  values from trigger time); a value assigned to a concentration species is converted to an
  amount with the compartment size before the event's assignments (all of an event's
  assignments read the state before it, SBML L3v2 section 4.12.7; a size assigned by the same
  event then changes the concentration, not the amount).

``rateOf(x)`` is x's rate rule, its reactions' net rate (a concentration's for a species in
concentration units), or 0 for what only events change. Fast reactions are held at equilibrium
(rapid-equilibrium semantics, `_rapid_equilibrium`). Algebraic rules that do not determine one
variable linearly, the ``delay`` csymbol and ``rateOf`` of an assignment-rule target or of a
species a fast reaction changes raise a `ValueError` naming the element.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .._ode_system import ODEEvent, ODESystem
from ._mathml import _Compiler, _Expr, _Scope

SETTLE_STEPS = 100_000  # steps of the fast reactions' own flow towards their equilibrium
SETTLE_ITERATIONS = 60  # Newton steps polishing it (quadratic; a double root, e.g. A + B -> C
# from A = B, halves the error per step)


def _at(expr):
    """``expr`` as a function of ``(t, env)``."""
    fn = expr.fn
    return lambda t, env: fn(env, env, t)


class _ODEBuilder:
    def __init__(self, importer):
        self.imp = importer
        self.c = _Compiler(importer, "jax", rate_of=self.rate_of)
        self.label = importer.label
        self._rates: dict | None = None
        self._building = False
        self._fast_species: set[str] = set()

    def fail(self, message):
        raise ValueError(f"{self.label}: {message}")

    # -- the state ------------------------------------------------------------------------------
    def varying(self) -> list[str]:
        imp = self.imp
        names = []
        for variable in imp.rate_rules:
            if variable in imp.species:
                continue
            if variable not in imp.net_params or imp.net_params[variable][0] == "local":
                self.fail(
                    f"rateRule for {variable!r}: not a species, compartment, parameter or "
                    f"species reference of the model with a value"
                )
            names.append(variable)
        for e in imp.model.getListOfEvents():
            for ea in e.getListOfEventAssignments():
                if ea.getMath() is None:
                    continue
                target = ea.getVariable()
                where = f"event {self.event_name(e)!r}: the eventAssignment to {target!r}"
                if target in imp.rules:
                    self.fail(f"{where}: {target!r} is set by an assignmentRule")
                if target in imp.species:
                    if imp.species[target].getConstant():
                        self.fail(f"{where}: species {target!r} is constant")
                    continue
                if target not in imp.net_params or imp.net_params[target][0] == "local":
                    self.fail(f"{where}: not a species, compartment or parameter of the model")
                obj = imp.net_params[target][1]
                if imp.net_params[target][0] != "speciesReference" and obj.getConstant():
                    kind = imp.net_params[target][0]
                    self.fail(f'{where}: {kind} {target!r} is constant (constant="true")')
                if target not in names:
                    names.append(target)
        return [n for n in imp.net_params if n in names]

    @staticmethod
    def event_name(e):
        return e.getId() or e.getMetaId() or "(no id)"

    def compile(self, node, where, local=None):
        if node is None:
            self.fail(f"{where} has no math")
        return self.c.compile(node, _Scope(where, local=local or {}))

    def concentration_species(self, sid) -> bool:
        sp = self.imp.species[sid]
        return not sp.getHasOnlySubstanceUnits() and not self.imp.dimensionless(sp.getCompartment())

    def rate_of(self, name, scope) -> _Expr:
        """``rateOf(name)``: its rate rule, its reactions' net rate, or 0 where nothing moves it."""
        imp = self.imp
        text = f"rateOf({name})"
        if name in imp.rate_rules:
            return self.c.compile(imp.rate_rules[name], _Scope(f"rateRule for {name!r}"))
        if name in imp.rules:
            self.fail(
                f"{scope.where} uses rateOf({name}) of a variable set by an assignmentRule, "
                f"which grn does not support"
            )
        if name in imp.species and name in imp.state:
            if name in self._fast_species:
                self.fail(
                    f"{scope.where} uses rateOf({name}) of a species that a fast reaction "
                    f"changes, which grn does not support"
                )
            if self._building:
                self.fail(f"{scope.where} uses rateOf({name}) while the reactions are compiled")
            if self._rates is None:
                self._building = True
                try:
                    terms, factors = self.reaction_terms(tuple(imp.state))
                finally:
                    self._building = False
                self._rates = {
                    sid: _reaction_sum(terms[sid], factors.get(sid)) for sid in terms if terms[sid]
                }
            total = self._rates.get(name)
            if total is not None:
                if self.concentration_species(name):
                    comp = imp.species[name].getCompartment()
                    if comp in imp.rate_rules or comp in imp.rules:
                        self.fail(
                            f"{scope.where} uses rateOf({name}) of a concentration in a "
                            f"compartment that changes size, which grn does not support"
                        )
                    size = _at(self.c.symbol(comp, scope))
                    fn = lambda x, p, t, total=total, size=size: total(t, x) / size(t, x)  # noqa: E731
                else:
                    fn = lambda x, p, t, total=total: total(t, x)  # noqa: E731
                return _Expr(fn, text, uses_time=True)
        return _Expr(lambda x, p, t: 0.0, text)

    # -- pieces ---------------------------------------------------------------------------------
    def reaction_terms(self, state, fast=False):
        """{species: [(rate fn, stoichiometry fn, sign, reaction id)]} over the slow (or the
        fast) reactions, and the conversion factors."""
        imp = self.imp
        terms = {sid: [] for sid in state}
        for r in imp.model.getListOfReactions():
            if _is_fast(r) != fast:
                continue
            rid = r.getId()
            kl = r.getKineticLaw()
            if kl is None or kl.getMath() is None:
                self.fail(f"reaction {rid!r} has no kineticLaw")
            rate = _at(
                self.compile(
                    kl.getMath(), f"the kineticLaw of reaction {rid!r}", imp.locals.get(rid, {})
                )
            )
            for refs, sign in ((r.getListOfReactants(), -1.0), (r.getListOfProducts(), 1.0)):
                for sr in refs:
                    sid = sr.getSpecies()
                    sp = imp.species.get(sid)
                    if sp is None:
                        self.fail(f"reaction {rid!r} uses unknown species {sid!r}")
                    if sp.getBoundaryCondition() or sp.getConstant():
                        continue
                    if sid in imp.rules or sid in imp.rate_rules:
                        self.fail(
                            f"reaction {rid!r} changes species {sid!r}, which a rule also sets"
                        )
                    if imp.level == 2 and sr.isSetStoichiometryMath():
                        nu = _at(
                            self.compile(
                                sr.getStoichiometryMath().getMath(),
                                f"the stoichiometryMath of {sid!r} in reaction {rid!r}",
                            )
                        )
                    elif sr.isSetId():
                        nu = _at(self.c.symbol(sr.getId(), _Scope(f"reaction {rid!r}")))
                    else:
                        if imp.level >= 3 and not sr.isSetStoichiometry():
                            self.fail(
                                f"reaction {rid!r}: the stoichiometry of species {sid!r} is not set"
                            )
                        value = sr.getStoichiometry()
                        if imp.level <= 2 and sr.getDenominator() != 1:
                            value = value / sr.getDenominator()
                        nu = lambda t, env, value=value: value  # noqa: E731
                    terms[sid].append((rate, nu, sign, rid))
        m = imp.model
        factors = {}
        for sid in state:
            sp = imp.species[sid]
            name = sp.getConversionFactor() if sp.isSetConversionFactor() else None
            if name is None and m.isSetConversionFactor():
                name = m.getConversionFactor()
            if name is not None and terms[sid]:
                factors[sid] = _at(self.c.symbol(name, _Scope(f"the conversionFactor of {sid!r}")))
        return terms, factors

    def rate_rules(self):
        imp = self.imp
        laws = {
            v: _at(self.compile(node, f"rateRule for {v!r}")) for v, node in imp.rate_rules.items()
        }
        out = {}
        for variable, law in laws.items():
            if variable in imp.species and self.concentration_species(variable):
                comp = imp.species[variable].getCompartment()
                if comp in imp.rules:
                    self.fail(
                        f"rateRule for concentration species {variable!r}: its compartment "
                        f"{comp!r} changes by an assignmentRule"
                    )
                size = _at(self.c.symbol(comp, _Scope(f"rateRule for {variable!r}")))
                dsize = laws.get(comp)

                def amount_rate(t, env, law=law, size=size, dsize=dsize, sid=variable):
                    v = size(t, env)
                    rate = law(t, env) * v
                    if dsize is not None:
                        rate = rate + env[sid] / v * dsize(t, env)
                    return rate

                out[variable] = amount_rate
            else:
                out[variable] = law
        return out

    def to_amount(self, sid, value_fn):
        """A species value (concentration unless amount units) as an amount."""
        if not self.concentration_species(sid):
            return value_fn
        size = _at(self.c.symbol(self.imp.species[sid].getCompartment(), _Scope(f"{sid!r}")))
        return lambda t, env: value_fn(t, env) * size(t, env)

    def outputs(self, from_p):
        imp = self.imp
        out: list[tuple[str, Callable]] = [
            (name, lambda t, env, name=name: env[name]) for name in from_p
        ]
        for variable in imp.rules:
            fn = _at(self.c.rule(variable))
            if variable in imp.species:
                fn = self.to_amount(variable, fn)
            out.append((variable, fn))
        taken = {name for name, _ in out} | set(imp.state)
        values = imp._values[0]  # constants the reaction network leaves out (unread sizes)
        for name, (kind, _) in imp.net_params.items():
            if kind in ("parameter", "compartment") and name not in taken:
                out.append((name, lambda t, env, name=name: env.get(name, values[name])))
        return tuple(out)

    # -- events ---------------------------------------------------------------------------------
    def atoms(self, node, where):
        """The trigger's comparisons, each located by root finding, and its truth from theirs.

        Returns ``(atoms, combine)``: each atom maps ``(t, env)`` to ``(level, truth)``, a
        continuous function with the comparison's sign changes and the exact comparison;
        ``combine`` maps the atoms' truths (a list, in order) to the trigger's. Between two
        roots of the atoms the trigger cannot change, so no window of truth is stepped over.
        """
        L = self.imp.L
        kind, n = node.getType(), node.getNumChildren()
        if kind in (L.AST_CONSTANT_TRUE, L.AST_CONSTANT_FALSE):
            value = kind == L.AST_CONSTANT_TRUE
            return [], lambda truths: jnp.asarray(value)
        comparisons = {
            L.AST_RELATIONAL_GT: (1.0, jnp.greater),
            L.AST_RELATIONAL_GEQ: (1.0, jnp.greater_equal),
            L.AST_RELATIONAL_LT: (-1.0, jnp.less),
            L.AST_RELATIONAL_LEQ: (-1.0, jnp.less_equal),
        }
        if kind in comparisons and n >= 2:
            sign, op = comparisons[kind]
            cs = [_at(self.compile(node.getChild(i), where)) for i in range(n)]

            def atom(a, b):
                def pair(t, env):
                    va, vb = jnp.asarray(a(t, env), float), jnp.asarray(b(t, env), float)
                    scale = jnp.maximum(jnp.abs(va) + jnp.abs(vb), 1e-300)
                    return sign * (va - vb) / scale, op(va, vb)

                return pair

            pairs = [atom(a, b) for a, b in zip(cs[:-1], cs[1:])]  # a < b < c: a < b and b < c
            return pairs, lambda truths: _fold(jnp.logical_and, truths, True)
        logical = {
            L.AST_LOGICAL_AND: (jnp.logical_and, True),
            L.AST_LOGICAL_OR: (jnp.logical_or, False),
            L.AST_LOGICAL_XOR: (jnp.logical_xor, False),
        }
        if kind in logical:
            f, empty = logical[kind]
            atoms, parts = self._children([node.getChild(i) for i in range(n)], where)
            return atoms, lambda truths: _fold(f, parts(truths), empty)
        if kind == L.AST_LOGICAL_NOT and n == 1:
            atoms, inner = self.atoms(node.getChild(0), where)
            return atoms, lambda truths: jnp.logical_not(inner(truths))
        if kind == L.AST_LOGICAL_IMPLIES and n == 2:
            atoms, parts = self._children([node.getChild(0), node.getChild(1)], where)

            def implies(truths):
                a, b = parts(truths)
                return jnp.logical_or(jnp.logical_not(a), b)

            return atoms, implies
        if kind == L.AST_FUNCTION_PIECEWISE and n >= 1:
            # piecewise(v1, c1, v2, c2, ..., otherwise) of booleans; no otherwise: false
            atoms, parts = self._children([node.getChild(i) for i in range(n)], where)

            def piecewise(truths):
                vals = parts(truths)
                out = vals[-1] if n % 2 else jnp.asarray(False)
                for i in reversed(range(0, n - 1, 2)):
                    out = jnp.where(vals[i + 1], vals[i], out)
                return out

            return atoms, piecewise
        fd = (
            self.imp.model.getFunctionDefinition(node.getName()) if kind == L.AST_FUNCTION else None
        )
        if fd is not None and fd.getBody() is not None and fd.getNumArguments() == n:
            body = fd.getBody().deepCopy()  # the call with its arguments substituted
            for i in range(n):
                body.replaceArgument(fd.getArgument(i).getName(), node.getChild(i))
            return self.atoms(body, where)
        self.fail(
            f"{where} ({L.formulaToL3String(node)}) is not a comparison (<, <=, >, >=) or a "
            f"logical and/or/xor/not/implies or boolean piecewise of comparisons, so its "
            f"switching time cannot be located"
        )

    def _children(self, nodes, where):
        """The atoms of several boolean nodes, and a map from their truths to each node's."""
        atoms, combines, bounds = [], [], []
        for child in nodes:
            child_atoms, combine = self.atoms(child, where)
            bounds.append((len(atoms), len(atoms) + len(child_atoms)))
            atoms += child_atoms
            combines.append(combine)

        def parts(truths):
            return [c(truths[a:b]) for c, (a, b) in zip(combines, bounds)]

        return atoms, parts

    def event(self, e, state):
        imp = self.imp
        name = self.event_name(e)
        where = f"event {name!r}"
        trig = e.getTrigger()
        atoms, combine = self.atoms(trig.getMath(), f"{where}: the trigger")
        targets, laws = [], []
        for ea in e.getListOfEventAssignments():
            if ea.getMath() is None:  # SBML L3v2: no math, no effect
                continue
            target = ea.getVariable()
            law = _at(self.compile(ea.getMath(), f"{where}: the eventAssignment to {target!r}"))
            targets.append(target)
            laws.append(law)
        sizes = {
            t: _at(self.c.symbol(imp.species[t].getCompartment(), _Scope(where)))
            for t in targets
            if t in imp.species and self.concentration_species(t)
        }

        def values(t, env, laws=laws):
            return [law(t, env) for law in laws]

        def apply(t, env, vals, targets=targets, sizes=sizes):
            new = dict(env)
            for target, v in zip(targets, vals):
                new[target] = v
            for target in sizes:  # concentrations -> amounts, with the sizes before the event
                new[target] = new[target] * sizes[target](t, env)
            return {target: new[target] for target in targets}

        delay = priority = None
        if e.isSetDelay() and e.getDelay().getMath() is not None:
            delay = _at(self.compile(e.getDelay().getMath(), f"{where}: the delay"))
        if imp.level >= 3 and e.isSetPriority() and e.getPriority().getMath() is not None:
            priority = _at(self.compile(e.getPriority().getMath(), f"{where}: the priority"))
        l3 = imp.level >= 3
        use_trigger = e.getUseValuesFromTriggerTime() if e.isSetUseValuesFromTriggerTime() else True
        return ODEEvent(
            name=name,
            atoms=lambda t, env, atoms=atoms: [a(t, env) for a in atoms],
            n_atoms=len(atoms),
            combine=combine,
            values=values,
            apply=apply,
            n_values=len(laws),
            delay=delay,
            priority=priority,
            persistent=bool(trig.getPersistent()) if l3 else True,
            initial_value=bool(trig.getInitialValue()) if l3 else True,
            use_trigger_values=bool(use_trigger),
        )

    # -- the system -----------------------------------------------------------------------------
    def system(self) -> ODESystem:
        imp = self.imp
        for rule in imp.algebraic:
            imp._algebraic(rule)
        from_x0 = tuple(imp.state)
        from_p = tuple(self.varying())
        state = from_x0 + from_p
        fast_terms, fast_factors = self.reaction_terms(from_x0, fast=True)
        self._fast_species = {sid for sid, ts in fast_terms.items() if ts}
        terms, factors = self.reaction_terms(from_x0)
        rates = self.rate_rules()
        for variable in rates:
            if variable in imp.species and imp.species[variable].getConstant():
                self.fail(f"rateRule for {variable!r}: the species is constant")
        derivatives = []
        for name in state:
            if name in rates:
                derivatives.append(rates[name])
            elif name in terms and terms[name]:
                derivatives.append(_reaction_sum(terms[name], factors.get(name)))
            else:
                derivatives.append(None)

        def slow(t, env):
            return [0.0 if d is None else d(t, env) for d in derivatives]

        rhs, settle = slow, None
        if self._fast_species:
            rhs, settle = _rapid_equilibrium(slow, fast_terms, fast_factors, state)

        events = [
            self.event(e, state)
            for e in imp.model.getListOfEvents()
            if e.getTrigger() is not None and e.getTrigger().getMath() is not None
        ]
        events = [e for e in events if e.n_values]
        outputs = self.outputs(from_p)
        return ODESystem(from_x0, from_p, rhs, outputs, tuple(events), settle)


def _fold(f, values, empty):
    out = jnp.asarray(empty)
    for i, v in enumerate(values):
        out = v if i == 0 else f(out, v)
    return out


def _is_fast(reaction) -> bool:
    return bool(reaction.isSetFast() and reaction.getFast())


def _rapid_equilibrium(slow, terms, factors, state):
    """(rhs, settle) of a model with fast reactions held at equilibrium (rate 0).

    With ``N`` the fast reactions' stoichiometry (state x fast), ``v(y)`` their rates and ``J``
    its Jacobian, the fast fluxes ``w`` keep ``v = 0`` along the slow motion ``s``:
    ``J (s + N w) = 0``, so ``dy/dt = s + N w`` with ``w = -(J N)^+ J s`` (pseudo-inverse).
    ``settle`` moves the state onto ``v = 0`` along ``N`` at the start and after each event:
    the extents ``xi`` follow the fast reactions' own flow ``d xi / d tau = v(y + N xi)`` until
    a Newton step towards a root is under 1e-6 of the state's scale and along the flow, then
    Newton polishes that root; a flow that reaches none fails the cell.
    """
    rids = list(dict.fromkeys(term[3] for ts in terms.values() for term in ts))
    rates = {}
    for ts in terms.values():
        for rate, _, _, rid in ts:
            rates[rid] = rate
    names = list(state)

    entries = [  # (state index, fast reaction index, stoichiometry fn, sign, factor fn)
        (i, rids.index(rid), nu, sign, factors.get(name))
        for i, name in enumerate(names)
        for _, nu, sign, rid in terms.get(name, ())
    ]
    rows, cols = np.array([e[0] for e in entries]), np.array([e[1] for e in entries])

    def matrix(t, env):
        values = [
            sign * jnp.asarray(nu(t, env), float) * (1.0 if factor is None else factor(t, env))
            for _, _, nu, sign, factor in entries
        ]
        return jnp.zeros((len(names), len(rids))).at[rows, cols].add(jnp.stack(values))

    def fast_rates(t, env, y):
        e = {**env, **{name: y[i] for i, name in enumerate(names)}}
        return jnp.stack([jnp.asarray(rates[rid](t, e), float) for rid in rids])

    def current(env):
        return jnp.stack([jnp.asarray(env[name], float) for name in names])

    def rhs(t, env):
        s = jnp.stack([jnp.asarray(v, float) for v in slow(t, env)])
        y, n = current(env), matrix(t, env)
        jn = jax.jacfwd(lambda xi: fast_rates(t, env, y + n @ xi))(jnp.zeros(len(rids)))
        js = jax.jvp(lambda y: fast_rates(t, env, y), (y,), (s,))[1]
        w = -jnp.linalg.pinv(jn) @ js  # J N singular (A = B = 0 in A + B -> C): 0
        return list(s + n @ w)

    def settle(t, env):
        y0, n = current(env), matrix(t, env)

        def v(xi):
            return fast_rates(t, env, y0 + n @ xi)

        def newton_step(xi):
            f, jac = v(xi), jax.jacfwd(v)(xi)
            step = -jnp.linalg.pinv(jac) @ f  # pinv: a rate that is 0 throughout
            return f, step, jnp.max(jnp.abs(f + jac @ step))  # the step's linear residual

        def near_root(tau, xi, args, **kwargs):
            # within 1e-6 of the state's scale of a root that the flow moves towards
            f, step, residual = newton_step(xi)
            close = jnp.all(jnp.isfinite(step)) & (jnp.max(jnp.abs(step)) <= 1e-6 * scale)
            solves = residual <= 1e-6 * jnp.max(jnp.abs(f))  # not a singular J away from a root
            return jnp.all(f == 0) | (close & solves & (step @ f >= 0))

        # The fast reactions run on their own (d xi / d tau = v, each in the direction of its
        # rate) until they near a root: the equilibrium they reach, not just any root of v.
        scale = jnp.maximum(jnp.max(jnp.abs(y0)), 1e-300)
        flow = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda tau, xi, args: v(xi)),
            diffrax.Tsit5(),
            t0=0.0,
            t1=jnp.inf,
            dt0=None,
            y0=jnp.zeros(len(rids)),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-12 * scale),
            event=diffrax.Event(near_root),
            max_steps=SETTLE_STEPS,
            throw=False,
        )
        reached = flow.result == diffrax.RESULTS.event_occurred
        assert flow.ys is not None  # saves t1 by default

        def newton(_, xi):  # then Newton polishes the root the flow approached
            f, step, _ = newton_step(xi)
            ok = jnp.all(jnp.isfinite(step)) & jnp.any(f != 0)
            return xi + jnp.where(ok, step, 0.0)

        xi = jax.lax.fori_loop(0, SETTLE_ITERATIONS, newton, flow.ys[-1])
        y = jnp.where(reached, y0 + n @ xi, jnp.nan)  # no equilibrium: the cell fails
        return {name: y[i] for i, name in enumerate(names)}

    return rhs, settle


def _reaction_sum(terms, factor):
    def total(t, env):
        out = 0.0
        for rate, nu, sign, _ in terms:
            out = out + sign * nu(t, env) * rate(t, env)
        return out if factor is None else out * factor(t, env)

    return total
