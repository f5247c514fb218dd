"""The one parser of fitting's arithmetic formulas: observable expressions and PEtab formulas.

A formula is parsed with Python's `ast` (never ``eval``) and checked against a `Grammar`: numbers,
names, ``+ - * / **``, unary ``+``/``-`` and the grammar's functions and named constants. Both
dialects evaluate the same way: names through a lookup, integer exponents exactly
(``lax.integer_pow``), other numbers as floats.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp

BINARY = {
    ast.Add: jnp.add,
    ast.Sub: jnp.subtract,
    ast.Mult: jnp.multiply,
    ast.Div: jnp.divide,
    ast.Pow: jnp.power,
}


@dataclasses.dataclass(frozen=True, eq=False)
class Grammar:
    """A dialect: ``what`` names its formulas in errors; ``functions`` name -> (function, number
    of arguments); ``constants`` name -> value; ``caret`` reads ``^`` as a power."""

    what: str
    functions: Mapping[str, tuple[Callable, int]]
    constants: Mapping[str, float] = dataclasses.field(default_factory=dict)
    caret: bool = False


OBSERVABLE = Grammar(
    "observable expression",
    {name: (fn, 1) for name, fn in (("exp", jnp.exp), ("log", jnp.log), ("sqrt", jnp.sqrt),
                                    ("abs", jnp.abs), ("tanh", jnp.tanh))},
)  # fmt: skip
"""`fitting.Observable` expressions over species names."""

PETAB = Grammar(
    "formula",
    {
        "exp": (jnp.exp, 1),
        "ln": (jnp.log, 1),
        "log": (jnp.log, 1),
        "log10": (jnp.log10, 1),
        "log2": (jnp.log2, 1),
        "sqrt": (jnp.sqrt, 1),
        "abs": (jnp.abs, 1),
        "pow": (jnp.power, 2),
        "sin": (jnp.sin, 1),
        "cos": (jnp.cos, 1),
        "tan": (jnp.tan, 1),
    },
    {"pi": math.pi, "exponentiale": math.e},
    caret=True,
)
"""PEtab observable, noise and SBML initial-assignment formulas (infix, ``^`` a power)."""


@functools.cache
def parse(text: str, grammar: Grammar) -> tuple[ast.expr, tuple[str, ...]]:
    """The checked syntax tree of ``text`` and the names it uses (not functions or constants),
    in order of appearance; a ValueError names the formula and what is wrong."""
    what = f"{grammar.what} {text!r}"
    source = text.strip().replace("^", "**") if grammar.caret else text.strip()
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"{what} is not valid: {err.msg}") from None
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            known = node.id in grammar.functions or node.id in grammar.constants
            if node.id not in names and not known:
                names.append(node.id)
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            if name not in grammar.functions:
                raise ValueError(
                    f"{what}: unsupported function {ast.unparse(node.func)!r} "
                    f"(supported: {sorted(grammar.functions)})"
                )
            if len(node.args) != grammar.functions[name][1] or node.keywords:
                raise ValueError(f"{what}: {name}() takes {grammar.functions[name][1]} argument(s)")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in BINARY:
                raise ValueError(
                    f"{what}: operator {type(node.op).__name__} is not allowed (use + - * / **)"
                )
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd):
                raise ValueError(f"{what}: only unary +/- are allowed")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise ValueError(f"{what}: constant {node.value!r} is not a number")
        elif not isinstance(node, ast.expr_context | ast.operator | ast.unaryop):
            raise ValueError(
                f"{what}: {type(node).__name__} is not allowed; write arithmetic over names and "
                f"numbers"
            )
    return tree, tuple(names)


def evaluate(node: ast.expr, lookup: Callable[[str], Any], grammar: Grammar) -> Any:
    """The value of a `parse` tree, names through ``lookup(name)``."""
    if isinstance(node, ast.Constant):
        return float(node.value)  # pyright: ignore[reportArgumentType]  # parse admits numbers only
    if isinstance(node, ast.Name):
        return grammar.constants[node.id] if node.id in grammar.constants else lookup(node.id)
    if isinstance(node, ast.BinOp):
        left = evaluate(node.left, lookup, grammar)
        if isinstance(node.op, ast.Pow) and _is_int(node.right):
            return jnp.power(left, int(ast.literal_eval(node.right)))  # exact: lax.integer_pow
        return BINARY[type(node.op)](left, evaluate(node.right, lookup, grammar))
    if isinstance(node, ast.UnaryOp):
        value = evaluate(node.operand, lookup, grammar)
        return -value if isinstance(node.op, ast.USub) else value
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # all parse admits
    fn = grammar.functions[node.func.id][0]
    return fn(*(evaluate(a, lookup, grammar) for a in node.args))


def _is_int(node: ast.expr) -> bool:
    """An integer literal, possibly signed (``2``, ``-1``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int
