"""Rosenbrock methods for diffrax: small stiff systems without Newton iterations."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


class RosenbrockTableau(NamedTuple):
    """A Rosenbrock method in the transformed variables of Hairer & Wanner (Solving ODEs II,
    sec. IV.7, eq. 7.4'): stage ``i`` solves
    ``(I / (h gamma) - J) k_i = f(t0 + alpha_i h, y0 + sum_j a_ij k_j) + sum_j (c_ij / h) k_j
    + h d_i df/dt``; ``y1 = y0 + sum_i m_i k_i``, error estimate ``sum_i e_i k_i``."""

    gamma: float
    a: tuple[tuple[float, ...], ...]  # strictly lower triangular, row i has i entries
    c: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    d: tuple[float, ...]
    m: tuple[float, ...]
    e: tuple[float, ...]
    order: int


_RODAS4_A = (
    (),
    (1.544,),
    (0.9466785280815826, 0.2557011698983284),
    (3.314825187068521, 2.896124015972201, 0.9986419139977817),
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895),
    (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895, 1.0),
)
RODAS4 = RosenbrockTableau(
    gamma=0.25,
    a=_RODAS4_A,
    c=(
        (),
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.7089089320616),
        (
            8.083246795921522,
            -7.981132988064893,
            -31.52159432874371,
            16.31930543123136,
            -6.058818238834054,
        ),
    ),
    alpha=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0),
    m=(*_RODAS4_A[5], 1.0),  # stiffly accurate: y1 is the last stage's point plus k_6
    e=(0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    order=4,
)
"""RODAS4 (Hairer & Wanner 1996, Solving ODEs II, sec. VI.4): six stages, order 4 with an
embedded order-3 solution, L-stable and stiffly accurate."""


class Rodas4(diffrax.AbstractAdaptiveSolver):
    r"""RODAS4, an L-stable, stiffly accurate Rosenbrock method of order 4 (embedded order 3;
    Hairer & Wanner 1996, Solving ODEs II, sec. VI.4), for diffrax.

    Each step solves six linear systems with one LU factorisation of ``I / (h gamma) - J``
    (``J = df/dy`` at the step's start, exact, by forward mode: a Rosenbrock method's order
    conditions need it) instead of diffrax's ESDIRK Newton iterations, whose nested loops
    dominate the cost of a step on small stiff models (PEtab benchmark problems, SBML
    kinetics). Non-autonomous fields get the ``df/dt`` term. Dense output: cubic Hermite
    between the step's ends (``f`` at the end is the next step's first stage). For ODE terms
    (``diffrax.ODETerm``); the state may be any pytree of arrays (raveled for the solve).
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )
    tableau: ClassVar[RosenbrockTableau] = RODAS4

    def order(self, terms):
        del terms
        return self.tableau.order

    def error_order(self, terms):
        del terms
        return self.tableau.order  # local error of the embedded order-(p - 1) solution: h^p

    def init(self, terms, t0, t1, y0, args):
        del t1
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        tab = self.tableau
        f0 = jax.lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: solver_state)
        # diffrax may take a step of length 0 (y1 = y0): 1 / h would put inf into the stages,
        # and NaN into every reverse-mode derivative through them
        empty = t1 == t0
        h = jnp.where(empty, jnp.ones_like(t1 - t0), t1 - t0)
        flat0, unravel = ravel_pytree(y0)

        def f(t, flat):
            return ravel_pytree(terms.vf(t, unravel(flat), args))[0]

        jac = jax.jacfwd(lambda y: f(t0, y))(flat0)
        dfdt = jax.jacfwd(lambda t: f(t, flat0))(t0)
        eye = jnp.eye(flat0.size, dtype=flat0.dtype)
        # the six stage solves share one matrix: its inverse (by LU with partial pivoting) costs
        # about one solve, then each stage is a matrix-vector product; a triangular solve's
        # fixed cost per call on CPU (~1 us at n = 9) dominated the step otherwise
        inverse = jax.scipy.linalg.lu_solve(
            jax.scipy.linalg.lu_factor(eye / (h * tab.gamma) - jac), eye
        )
        ks = []
        for i in range(len(tab.alpha)):
            if i == 0:
                fi = ravel_pytree(f0)[0]
            else:
                yi = flat0 + sum(a * k for a, k in zip(tab.a[i], ks))
                fi = f(t0 + tab.alpha[i] * h, yi)
            rhs = fi + (tab.d[i] * h) * dfdt + sum((c / h) * k for c, k in zip(tab.c[i], ks))
            ks.append(inverse @ rhs)
        flat1 = jnp.where(empty, flat0, flat0 + sum(m * k for m, k in zip(tab.m, ks) if m))
        error = jnp.where(empty, 0.0, sum(e * k for e, k in zip(tab.e, ks) if e))
        y1 = unravel(flat1)
        f1 = terms.vf(t1, y1, args)
        h = t1 - t0
        k = jnp.stack([h * ravel_pytree(f0)[0], h * ravel_pytree(f1)[0]])
        dense_info = dict(y0=y0, y1=y1, k=jax.vmap(unravel)(k))
        # a non-finite stage makes the error estimate NaN, and diffrax rejects the step
        return y1, unravel(error), dense_info, f1, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
