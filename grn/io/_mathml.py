"""MathML -> JAX: SBML math compiled into Python closures over an array backend.

Each libsbml AST is compiled once into a closure ``fn(x, p, t)`` over ``jax.numpy`` (or NumPy, for
values at load time), with no string evaluation; each compiled expression also keeps its formula in
network names (SBML Level 3 infix syntax) so that `grn.io.to_sbml` can write an imported network
back. Symbols are resolved by the importer (`grn.io._sbml_import`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np

from .._rate_laws import AbstractRateLaw

if TYPE_CHECKING:
    from ._sbml_import import _Importer

AVOGADRO = 6.02214179e23  # the value the SBML Level 3 specifications fix (CODATA 2006)


def _libsbml():
    try:
        import libsbml
    except ImportError:  # pragma: no cover - exercised only without the optional dependency
        raise ImportError(
            "SBML import/export needs python-libsbml: pip install python-libsbml"
        ) from None
    return libsbml


class SBMLMath(AbstractRateLaw):
    """A rate law (or rule, or event assignment) compiled from SBML MathML.

    ``fn(x, p, u)`` evaluates it with jax.numpy; ``formula`` is the same expression in the
    network's species and parameter names, in SBML Level 3 infix syntax (what the exporter
    writes back). The law is the same in the stochastic and the deterministic form: an SBML
    kinetic law already is the propensity.
    """

    fn: Callable[..., Any]
    formula: str

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        return self.fn(x, p, u)


# -- math compilation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Expr:
    """A compiled expression: ``fn(x, p, t)``, its formula in network names, whether it reads t."""

    fn: Callable[..., Any]
    text: str
    uses_time: bool = False
    names: frozenset = frozenset()  # network species/parameter names it reads


def _const(value: float, text: str | None = None) -> _Expr:
    value = float(value) if not isinstance(value, bool) else value
    if text is None:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif math.isnan(value):
            text = "NaN"
        elif math.isinf(value):
            text = "INF" if value > 0 else "-INF"
        elif value == int(value) and abs(value) < 1e15:
            text = str(int(value))
        else:
            text = repr(value)
    return _Expr(lambda x, p, t: value, text)


def _merge(children, fn, text) -> _Expr:
    return _Expr(
        fn,
        text,
        any(c.uses_time for c in children),
        frozenset().union(*(c.names for c in children)),
    )


def _np_factorial(v):
    return np.vectorize(math.gamma, otypes=[float])(np.asarray(v, float) + 1.0)


_BACKENDS = {
    "jax": (jnp, lambda v: jss.gamma(jnp.asarray(v) + 1.0)),
    "numpy": (np, _np_factorial),
}


@dataclass
class _Scope:
    where: str
    local: Mapping[str, str] = field(default_factory=dict)  # local parameter id -> network name
    bound: Mapping[str, _Expr] = field(default_factory=dict)  # function-definition arguments
    calls: tuple[str, ...] = ()  # function definitions being expanded (recursion guard)


class _Compiler:
    """Compiles libsbml ASTs into closures over one array backend (jax.numpy or numpy)."""

    def __init__(self, importer: _Importer, backend: str, rate_of=None):
        self.imp = importer
        self.rate_of = rate_of  # name -> _Expr of its rate of change, where rateOf is supported
        self.L = importer.L
        self.xp, self.factorial = _BACKENDS[backend]
        self.rules: dict[str, _Expr] = {}
        self.active: list[str] = []
        L = self.L
        self.unary = {
            L.AST_FUNCTION_ABS: ("abs", "abs"),
            L.AST_FUNCTION_EXP: ("exp", "exp"),
            L.AST_FUNCTION_LN: ("log", "ln"),
            L.AST_FUNCTION_FLOOR: ("floor", "floor"),
            L.AST_FUNCTION_CEILING: ("ceil", "ceil"),
            L.AST_FUNCTION_SIN: ("sin", "sin"),
            L.AST_FUNCTION_COS: ("cos", "cos"),
            L.AST_FUNCTION_TAN: ("tan", "tan"),
            L.AST_FUNCTION_SINH: ("sinh", "sinh"),
            L.AST_FUNCTION_COSH: ("cosh", "cosh"),
            L.AST_FUNCTION_TANH: ("tanh", "tanh"),
            L.AST_FUNCTION_ARCSIN: ("arcsin", "arcsin"),
            L.AST_FUNCTION_ARCCOS: ("arccos", "arccos"),
            L.AST_FUNCTION_ARCTAN: ("arctan", "arctan"),
            L.AST_FUNCTION_ARCSINH: ("arcsinh", "arcsinh"),
            L.AST_FUNCTION_ARCCOSH: ("arccosh", "arccosh"),
            L.AST_FUNCTION_ARCTANH: ("arctanh", "arctanh"),
        }
        # f(x) = g(1 / x) or 1 / g(x)
        self.reciprocal = {
            L.AST_FUNCTION_SEC: ("cos", False, "sec"),
            L.AST_FUNCTION_CSC: ("sin", False, "csc"),
            L.AST_FUNCTION_COT: ("tan", False, "cot"),
            L.AST_FUNCTION_SECH: ("cosh", False, "sech"),
            L.AST_FUNCTION_CSCH: ("sinh", False, "csch"),
            L.AST_FUNCTION_COTH: ("tanh", False, "coth"),
            L.AST_FUNCTION_ARCSEC: ("arccos", True, "arcsec"),
            L.AST_FUNCTION_ARCCSC: ("arcsin", True, "arccsc"),
            L.AST_FUNCTION_ARCCOT: ("arctan", True, "arccot"),
            L.AST_FUNCTION_ARCSECH: ("arccosh", True, "arcsech"),
            L.AST_FUNCTION_ARCCSCH: ("arcsinh", True, "arccsch"),
            L.AST_FUNCTION_ARCCOTH: ("arctanh", True, "arccoth"),
        }
        self.relational = {
            L.AST_RELATIONAL_EQ: ("equal", "=="),
            L.AST_RELATIONAL_NEQ: ("not_equal", "!="),
            L.AST_RELATIONAL_GT: ("greater", ">"),
            L.AST_RELATIONAL_GEQ: ("greater_equal", ">="),
            L.AST_RELATIONAL_LT: ("less", "<"),
            L.AST_RELATIONAL_LEQ: ("less_equal", "<="),
        }

    # -- symbols --------------------------------------------------------------------------------
    def rule(self, variable: str) -> _Expr:
        """The compiled assignment rule of ``variable`` (memoised; cycles raise)."""
        if variable in self.rules:
            return self.rules[variable]
        if variable in self.active:
            cycle = " -> ".join([*self.active[self.active.index(variable) :], variable])
            raise ValueError(f"{self.imp.label}: assignment rules form a cycle: {cycle}")
        self.active.append(variable)
        try:
            if variable in self.imp.solved:
                expr = self._solve_linear(variable)
            else:
                expr = self.compile(
                    self.imp.rules[variable], _Scope(f"assignmentRule for {variable!r}")
                )
        finally:
            self.active.pop()
        self.rules[variable] = expr
        return expr

    def _solve_linear(self, variable: str) -> _Expr:
        """``v = -f(0) / (f(1) - f(0))`` for an algebraic rule ``f(v) = 0`` linear in ``v``."""
        node = self.imp.rules[variable]
        where = f"algebraicRule ({self.L.formulaToL3String(node)} = 0) for {variable!r}"
        f0, f1 = (
            self.compile(node, _Scope(where, bound={variable: _const(v)})) for v in (0.0, 1.0)
        )
        return _merge(
            (f0, f1),
            lambda x, p, t: -f0.fn(x, p, t) / (f1.fn(x, p, t) - f0.fn(x, p, t)),
            f"(-{f0.text} / ({f1.text} - {f0.text}))",
        )

    def symbol(self, name: str, scope: _Scope) -> _Expr:
        if name in scope.bound:
            return scope.bound[name]
        if name in scope.local:
            net = scope.local[name]
            return _Expr(lambda x, p, t: p[net], net, names=frozenset([net]))
        imp = self.imp
        if name in imp.rules:
            return self.rule(name)
        if name in imp.species:
            sp = imp.species[name]
            amount = _Expr(lambda x, p, t: x[name], name, names=frozenset([name]))
            if sp.getHasOnlySubstanceUnits() or imp.dimensionless(sp.getCompartment()):
                return amount
            size = self.symbol(sp.getCompartment(), scope)
            return _merge(
                (amount, size),
                lambda x, p, t: x[name] / size.fn(x, p, t),
                f"({name} / {size.text})",
            )
        if name in imp.net_params:
            return _Expr(lambda x, p, t: p[name], name, names=frozenset([name]))
        if name in imp.compartments:
            raise ValueError(
                f"{imp.label}: {scope.where} uses the size of compartment {name!r}, which has "
                f"no size"
            )
        if name in imp.parameters:
            raise ValueError(
                f"{imp.label}: {scope.where} uses parameter {name!r}, which has no value"
            )
        if name in imp.reaction_ids:  # the reaction's rate: its kinetic law
            if name in scope.calls:
                raise ValueError(f"{imp.label}: the rate of reaction {name!r} depends on itself")
            r = imp.model.getReaction(name)
            law = r.getKineticLaw()
            if law is None or law.getMath() is None:
                raise ValueError(
                    f"{imp.label}: {scope.where} uses the rate of reaction {name!r}, which has "
                    f"no kineticLaw"
                )
            inner = _Scope(
                f"the kineticLaw of reaction {name!r} (used in {scope.where})",
                local=imp.locals.get(name, {}),
                calls=(*scope.calls, name),
            )
            return self.compile(law.getMath(), inner)
        if name in imp.species_reference_ids:
            raise ValueError(
                f"{imp.label}: {scope.where} uses species reference {name!r} (a variable "
                f"stoichiometry), which grn does not support"
            )
        raise ValueError(f"{imp.label}: {scope.where} uses unknown identifier {name!r}")

    # -- nodes ----------------------------------------------------------------------------------
    def compile(self, node, scope: _Scope) -> _Expr:
        if node is None:
            raise ValueError(f"{self.imp.label}: {scope.where} has no math")
        L, xp = self.L, self.xp
        kind = node.getType()
        n = node.getNumChildren()

        def kids():
            return [self.compile(node.getChild(i), scope) for i in range(n)]

        if kind in (L.AST_INTEGER, L.AST_REAL, L.AST_REAL_E, L.AST_RATIONAL):
            return _const(node.getValue())
        if kind == L.AST_CONSTANT_PI:
            return _const(math.pi, "pi")
        if kind == L.AST_CONSTANT_E:
            return _const(math.e, "exponentiale")
        if kind == L.AST_CONSTANT_TRUE:
            return _const(True)
        if kind == L.AST_CONSTANT_FALSE:
            return _const(False)
        if kind == L.AST_NAME_AVOGADRO:
            return _const(AVOGADRO, "avogadro")
        if kind == L.AST_NAME_TIME:
            return _Expr(lambda x, p, t: t, "time", uses_time=True)
        if kind == L.AST_NAME:
            return self.symbol(node.getName(), scope)
        if kind == L.AST_PLUS:
            return self._fold(kids(), lambda a, b: a + b, "+", 0.0)
        if kind == L.AST_TIMES:
            return self._fold(kids(), lambda a, b: a * b, "*", 1.0)
        if kind == L.AST_MINUS:
            cs = kids()
            if n == 1:
                (a,) = cs
                return _merge(cs, lambda x, p, t: -a.fn(x, p, t), f"(-{a.text})")
            if n == 2:
                a, b = cs
                return _merge(
                    cs, lambda x, p, t: a.fn(x, p, t) - b.fn(x, p, t), f"({a.text} - {b.text})"
                )
        if kind == L.AST_DIVIDE and n == 2:
            a, b = kids()
            return _merge(
                (a, b), lambda x, p, t: a.fn(x, p, t) / b.fn(x, p, t), f"({a.text} / {b.text})"
            )
        if kind in (L.AST_POWER, L.AST_FUNCTION_POWER) and n == 2:
            a, b = kids()
            return _merge(
                (a, b),
                lambda x, p, t: xp.power(a.fn(x, p, t), b.fn(x, p, t)),
                f"({a.text} ^ {b.text})",
            )
        if kind == L.AST_FUNCTION_ROOT and n in (1, 2):
            cs = kids()
            if n == 1 or (node.getChild(0).isNumber() and node.getChild(0).getValue() == 2):
                a = cs[-1]
                return _merge(cs, lambda x, p, t: xp.sqrt(a.fn(x, p, t)), f"sqrt({a.text})")
            d, a = cs
            return _merge(
                cs,
                lambda x, p, t: xp.power(a.fn(x, p, t), 1.0 / d.fn(x, p, t)),
                f"root({d.text}, {a.text})",
            )
        if kind == L.AST_FUNCTION_LOG and n in (1, 2):
            cs = kids()
            if n == 1 or (node.getChild(0).isNumber() and node.getChild(0).getValue() == 10):
                a = cs[-1]
                return _merge(cs, lambda x, p, t: xp.log10(a.fn(x, p, t)), f"log10({a.text})")
            b, a = cs
            return _merge(
                cs,
                lambda x, p, t: xp.log(a.fn(x, p, t)) / xp.log(b.fn(x, p, t)),
                f"log({b.text}, {a.text})",
            )
        if kind in self.unary and n == 1:
            (a,) = kids()
            op, name = self.unary[kind]
            f = getattr(xp, op)
            return _merge((a,), lambda x, p, t: f(a.fn(x, p, t)), f"{name}({a.text})")
        if kind in self.reciprocal and n == 1:
            (a,) = kids()
            op, inner, name = self.reciprocal[kind]
            f = getattr(xp, op)
            if inner:
                fn = lambda x, p, t: f(1.0 / a.fn(x, p, t))  # noqa: E731
            else:
                fn = lambda x, p, t: 1.0 / f(a.fn(x, p, t))  # noqa: E731
            return _merge((a,), fn, f"{name}({a.text})")
        if kind == L.AST_FUNCTION_FACTORIAL and n == 1:
            (a,) = kids()
            g = self.factorial
            return _merge((a,), lambda x, p, t: g(a.fn(x, p, t)), f"factorial({a.text})")
        if kind in (L.AST_FUNCTION_MAX, L.AST_FUNCTION_MIN) and n >= 1:
            cs = kids()
            f = xp.maximum if kind == L.AST_FUNCTION_MAX else xp.minimum
            name = "max" if kind == L.AST_FUNCTION_MAX else "min"
            return self._call(cs, f, name)
        if kind in (L.AST_FUNCTION_QUOTIENT, L.AST_FUNCTION_REM) and n == 2:
            a, b = kids()
            if kind == L.AST_FUNCTION_QUOTIENT:
                fn = lambda x, p, t: xp.trunc(a.fn(x, p, t) / b.fn(x, p, t))  # noqa: E731
                name = "quotient"
            else:
                fn = lambda x, p, t: xp.fmod(a.fn(x, p, t), b.fn(x, p, t))  # noqa: E731
                name = "rem"
            return _merge((a, b), fn, f"{name}({a.text}, {b.text})")
        if kind in self.relational and n >= 2:
            cs = kids()
            op, sym = self.relational[kind]
            f = getattr(xp, op)

            def relation(x, p, t, cs=cs, f=f):
                values = [c.fn(x, p, t) for c in cs]
                out = f(values[0], values[1])
                for a, b in zip(values[1:-1], values[2:]):
                    out = xp.logical_and(out, f(a, b))
                return out

            pairs = [f"({a.text} {sym} {b.text})" for a, b in zip(cs[:-1], cs[1:])]
            return _merge(cs, relation, "(" + " && ".join(pairs) + ")")
        if kind in (L.AST_LOGICAL_AND, L.AST_LOGICAL_OR, L.AST_LOGICAL_XOR):
            cs = kids()
            f, sym, empty = {
                L.AST_LOGICAL_AND: (xp.logical_and, "&&", True),
                L.AST_LOGICAL_OR: (xp.logical_or, "||", False),
                L.AST_LOGICAL_XOR: (xp.logical_xor, None, False),
            }[kind]
            if not cs:
                return _const(empty)
            if sym is None:
                return self._call(cs, f, "xor")
            return self._fold(cs, f, sym, empty)
        if kind == L.AST_LOGICAL_NOT and n == 1:
            (a,) = kids()
            return _merge((a,), lambda x, p, t: xp.logical_not(a.fn(x, p, t)), f"!({a.text})")
        if kind == L.AST_LOGICAL_IMPLIES and n == 2:
            a, b = kids()
            return _merge(
                (a, b),
                lambda x, p, t: xp.logical_or(xp.logical_not(a.fn(x, p, t)), b.fn(x, p, t)),
                f"implies({a.text}, {b.text})",
            )
        if kind == L.AST_FUNCTION_PIECEWISE:
            return self._piecewise(node, kids(), scope)
        if kind == L.AST_FUNCTION:
            return self._user_function(node, scope)
        if kind == L.AST_FUNCTION_DELAY:
            raise ValueError(
                f"{self.imp.label}: {scope.where} uses the delay csymbol (delay differential "
                f"equations), which grn does not support"
            )
        if kind == L.AST_FUNCTION_RATE_OF and self.rate_of is not None:
            if n != 1 or node.getChild(0).getType() != L.AST_NAME:
                raise ValueError(
                    f"{self.imp.label}: {scope.where} uses rateOf on something other than an "
                    f"identifier"
                )
            return self.rate_of(node.getChild(0).getName(), scope)
        if kind == L.AST_FUNCTION_RATE_OF:
            raise ValueError(
                f"{self.imp.label}: {scope.where} uses the rateOf csymbol, which grn does not "
                f"support"
            )
        name = node.getName() or self.L.formulaToL3String(node)
        raise ValueError(
            f"{self.imp.label}: {scope.where} uses MathML {name!r} (libsbml AST type {kind}"
            f" with {n} arguments), which grn does not support"
        )

    def _fold(self, cs, f, sym, empty) -> _Expr:
        if not cs:
            return _const(empty)
        if len(cs) == 1:
            return cs[0]

        def fold(x, p, t):
            out = cs[0].fn(x, p, t)
            for c in cs[1:]:
                out = f(out, c.fn(x, p, t))
            return out

        return _merge(cs, fold, "(" + f" {sym} ".join(c.text for c in cs) + ")")

    def _call(self, cs, f, name) -> _Expr:
        def call(x, p, t):
            out = cs[0].fn(x, p, t)
            for c in cs[1:]:
                out = f(out, c.fn(x, p, t))
            return out

        return _merge(cs, call, f"{name}(" + ", ".join(c.text for c in cs) + ")")

    def _piecewise(self, node, cs, scope) -> _Expr:
        L, xp = self.L, self.xp
        boolean = {
            *self.relational,
            L.AST_LOGICAL_AND,
            L.AST_LOGICAL_OR,
            L.AST_LOGICAL_XOR,
            L.AST_LOGICAL_NOT,
            L.AST_LOGICAL_IMPLIES,
            L.AST_CONSTANT_TRUE,
            L.AST_CONSTANT_FALSE,
            L.AST_FUNCTION,  # a functionDefinition may return a boolean
            L.AST_FUNCTION_PIECEWISE,
            L.AST_NAME,  # a boolean argument of a functionDefinition
        }
        conditions = [node.getChild(i) for i in range(1, node.getNumChildren(), 2)]
        if not cs or any(c.getType() not in boolean for c in conditions):
            raise ValueError(
                f"{self.imp.label}: {scope.where} has a malformed piecewise "
                f"({L.formulaToL3String(node)}): it needs (value, boolean condition) pairs and "
                f"an optional otherwise value"
            )
        pieces = [(cs[i], cs[i + 1]) for i in range(0, len(cs) - 1, 2)]
        otherwise = cs[-1] if len(cs) % 2 else _const(math.nan)

        def piecewise(x, p, t):
            out = otherwise.fn(x, p, t)
            for value, cond in reversed(pieces):
                out = xp.where(xp.asarray(cond.fn(x, p, t), bool), value.fn(x, p, t), out)
            return out

        text = "piecewise(" + ", ".join(c.text for c in cs) + ")"
        return _merge(cs, piecewise, text)

    def _user_function(self, node, scope: _Scope) -> _Expr:
        name = node.getName()
        fd = self.imp.model.getFunctionDefinition(name)
        if fd is None or fd.getBody() is None:
            raise ValueError(f"{self.imp.label}: {scope.where} calls unknown function {name!r}")
        if name in scope.calls:
            raise ValueError(
                f"{self.imp.label}: functionDefinition {name!r} calls itself (in {scope.where})"
            )
        n_args = fd.getNumArguments()
        if n_args != node.getNumChildren():
            raise ValueError(
                f"{self.imp.label}: {scope.where} calls functionDefinition {name!r} with "
                f"{node.getNumChildren()} arguments; it takes {n_args}"
            )
        args = [self.compile(node.getChild(i), scope) for i in range(n_args)]
        bound = {fd.getArgument(i).getName(): args[i] for i in range(n_args)}
        inner = _Scope(
            f"functionDefinition {name!r} (called in {scope.where})",
            local={},
            bound=bound,
            calls=(*scope.calls, name),
        )
        return self.compile(fd.getBody(), inner)
