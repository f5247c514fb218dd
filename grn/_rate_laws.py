"""Rate laws: the propensity of one reaction as a function of state, parameters and inputs.

Volume convention (used everywhere in grn): the state is a vector of molecule *counts* per cell and
every parameter is a *stochastic* rate constant in those units (per hour, say). A rate law gives the
propensity ``a(x)`` of the exact chemical master equation; the deterministic solvers (ODE, and later
CLE/LNA) use the same law in its macroscopic form, where the falling factorials of mass action
``X(X-1)...(X-nu+1)`` become powers ``X^nu``. Counts at a reduced scale ``Omega`` are the
modeller's choice: a law written as ``Omega * f(x / Omega)`` is an ordinary callable law.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp

ParamRef = str | float
"""A rate-law argument: the name of a network parameter, or a constant number."""


def _resolve(ref: ParamRef, p: Mapping[str, Any]):
    return p[ref] if isinstance(ref, str) else ref


class AbstractRateLaw(eqx.Module):
    """A propensity ``a(x, p, u)`` for one reaction.

    ``x``, ``p`` and ``u`` map species, parameter and input names to (traced) values.
    ``reactants`` is the reaction's ``((species, coefficient), ...)``; ``stochastic`` selects the
    combinatorial (SSA) or macroscopic (ODE) form, which differ only for mass action.
    Laws multiply: ``mass_action("k") * hill_repression("R", K="K", n="n")``.
    """

    @abc.abstractmethod
    def __call__(self, x, p, u, reactants=(), stochastic=True) -> Any: ...

    def __mul__(self, other: AbstractRateLaw | float) -> Product:
        return Product((self, _as_law(other)))

    def __rmul__(self, other: float) -> Product:
        return Product((_as_law(other), self))


class Constant(AbstractRateLaw):
    """A constant factor: a number or a parameter name."""

    value: ParamRef

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        return _resolve(self.value, p)


class MassAction(AbstractRateLaw):
    r"""Mass action, ``k * prod_s C(x_s, nu_s)`` (stochastic) or ``k * prod_s x_s^nu_s / nu_s!``.

    For ``2 X -> ...`` the propensity is ``k X (X - 1) / 2`` (Gillespie 1977, eq. 13); the
    deterministic rate is ``k X^2 / 2``, so ``k`` is the same stochastic constant in both.
    """

    k: ParamRef

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        rate = _resolve(self.k, p)
        for name, nu in reactants:
            count = x[name]
            if stochastic:
                term = count
                for i in range(1, nu):
                    term = term * (count - i)
                if nu > 1:  # zero below nu molecules, also for non-integer (CLE) states
                    term = jnp.maximum(term, 0.0)
            else:
                term = count**nu
            rate = rate * term / math.factorial(nu)
        return rate


class Hill(AbstractRateLaw):
    r"""Hill activation ``vmax x^n / (K^n + x^n)`` or repression ``vmax K^n / (K^n + x^n)``."""

    species: str
    vmax: ParamRef
    K: ParamRef
    n: ParamRef
    activating: bool

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        xs = x[self.species]
        vmax, K, n = (_resolve(r, p) for r in (self.vmax, self.K, self.n))
        ratio = hill_ratio(xs, K, n)
        return vmax * (ratio if self.activating else 1.0) / (1.0 + ratio)


def hill_ratio(x, K, n):
    """``(x/K)**n`` for ``x > 0`` and 0 for ``x <= 0`` (1 if ``n == 0``), as ``exp(n log(x/K))``.

    XLA's CPU backend turns a float power into a scalar libm ``powf`` call per element, about a
    third of an exact-SSA event on the toggle switch; ``exp``/``log`` vectorise
    (benchmarks/ssa_profile.md). The ``where`` keeps ``x <= 0`` and its gradient finite.
    """
    positive = x > 0
    power = jnp.exp(n * jnp.log(jnp.where(positive, x, K) / K))
    return jnp.where(positive, power, jnp.where(n == 0, 1.0, 0.0))


class Product(AbstractRateLaw):
    """The product of several rate laws (each sees the same reaction)."""

    factors: tuple[AbstractRateLaw, ...]

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        rate = 1.0
        for factor in self.factors:
            rate = rate * factor(x, p, u, reactants, stochastic)
        return rate

    def __mul__(self, other):
        return Product(self.factors + (_as_law(other),))


class Function(AbstractRateLaw):
    """A user callable ``fn(x, p, u) -> rate`` over name -> value mappings (jit/vmap/grad safe)."""

    fn: Callable[..., Any]

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        return self.fn(x, p, u)


def _as_law(law) -> AbstractRateLaw:
    if isinstance(law, AbstractRateLaw):
        return law
    if isinstance(law, int | float | str):
        return Constant(law)
    if callable(law):
        return Function(law)
    raise TypeError(
        f"a rate law must be a grn rate law, a callable (x, p, u) -> rate, a number or a "
        f"parameter name; got {law!r}"
    )


def mass_action(k: ParamRef) -> MassAction:
    """Mass-action kinetics with rate constant ``k`` (a parameter name or a number)."""
    return MassAction(k)


def hill_activation(species: str, vmax: ParamRef = 1.0, K: ParamRef = 1.0, n: ParamRef = 1.0):
    """Hill activation by ``species``: ``vmax * x^n / (K^n + x^n)``."""
    return Hill(species, vmax, K, n, activating=True)


def hill_repression(species: str, vmax: ParamRef = 1.0, K: ParamRef = 1.0, n: ParamRef = 1.0):
    """Hill repression by ``species``: ``vmax * K^n / (K^n + x^n)``."""
    return Hill(species, vmax, K, n, activating=False)
