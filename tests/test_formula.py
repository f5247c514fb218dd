"""`fitting._formula`: the one parser of observable expressions and PEtab formulas."""

from __future__ import annotations

import math

import jax
import pytest

from fitting._formula import OBSERVABLE, PETAB, evaluate, parse


def test_dialects_share_one_parser():
    tree, names = parse("2 * A^2 + pi * log10(B)", PETAB)
    assert names == ("A", "B")  # pi is a constant, log10 a function
    value = evaluate(tree, {"A": 3.0, "B": 100.0}.__getitem__, PETAB)
    assert value == pytest.approx(18.0 + 2 * math.pi)
    # the observable dialect: no caret, no constants, its own functions
    assert parse("pi * tanh(X)", OBSERVABLE)[1] == ("pi", "X")
    with pytest.raises(ValueError, match=r"observable expression 'A\^2': operator BitXor"):
        parse("A^2", OBSERVABLE)
    with pytest.raises(ValueError, match=r"formula 'tanh\(A\)': unsupported function 'tanh'"):
        parse("tanh(A)", PETAB)
    with pytest.raises(ValueError, match=r"formula 'pow\(A\)': pow\(\) takes 2 argument"):
        parse("pow(A)", PETAB)
    with pytest.raises(ValueError, match=r"observable expression 'A if B else C'.*IfExp"):
        parse("A if B else C", OBSERVABLE)


def test_integer_exponents_are_exact():
    """``x^2`` is lax.integer_pow: defined and differentiable for x <= 0."""
    tree, _ = parse("x^2 + x^-1", PETAB)
    f = jax.grad(lambda x: evaluate(tree, lambda _: x, PETAB))
    assert float(f(-2.0)) == pytest.approx(2 * -2.0 - 1 / 4.0, rel=1e-12)
    assert "integer_pow" in str(jax.make_jaxpr(f)(1.0))
