"""Rosenbrock methods for diffrax: small stiff systems without Newton iterations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


class RosenbrockTableau(NamedTuple):
    """A Rosenbrock method in the transformed variables of Hairer & Wanner (Solving ODEs II,
    sec. IV.7, eq. 7.4'): stage ``i`` solves
    ``(I / (h gamma) - J) k_i = f(t0 + alpha_i h, y0 + sum_j a_ij k_j) + sum_j (c_ij / h) k_j
    + h d_i df/dt``; ``y1 = y0 + sum_i m_i k_i``, error estimate ``sum_i e_i k_i``. Dense
    output (Hairer & Wanner's RODAS, OrdinaryDiffEq's ``Rodas*`` interpolants): with
    ``D_r = sum_i dense_ri k_i`` and ``s = (t - t0) / h``,
    ``y(t) = (1 - s) y0 + s (y1 + (1 - s) (D_1 + s (D_2 + s (...))))``."""

    gamma: float
    a: tuple[tuple[float, ...], ...]  # strictly lower triangular, row i has i entries
    c: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    d: tuple[float, ...]
    m: tuple[float, ...]
    e: tuple[float, ...]
    dense: tuple[tuple[float, ...], ...]
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
    dense=(
        (
            10.12623508344586,
            -7.487995877610167,
            -34.80091861555747,
            -7.992771707568823,
            1.025137723295662,
            0.0,
        ),
        (
            -0.6762803392801253,
            6.087714651680015,
            16.43084320892478,
            24.76722511418386,
            -6.594389125716872,
            0.0,
        ),
    ),
    order=4,
)
"""RODAS4 (Hairer & Wanner 1996, Solving ODEs II, sec. VI.4): six stages, order 4 with an
embedded order-3 solution and order-3 dense output, L-stable and stiffly accurate."""

_RODAS5P_A6 = (
    -7.502846399306121,
    2.561846144803919,
    -11.627539656261098,
    -0.18268767659942256,
    0.030198172008377946,
)
RODAS5P = RosenbrockTableau(
    gamma=0.21193756319429014,
    a=(
        (),
        (3.0,),
        (2.849394379747939, 0.45842242204463923),
        (-6.954028509809101, 2.489845061869568, -10.358996098473584),
        (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
        _RODAS5P_A6,
        (*_RODAS5P_A6, 1.0),
        (*_RODAS5P_A6, 1.0, 1.0),
    ),
    c=(
        (),
        (-14.155112264123755,),
        (-17.97296035885952, -2.859693295451294),
        (147.12150275711716, -1.41221402718213, 71.68940251302358),
        (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
        (
            24.854864614690072,
            -3.0009227002832186,
            47.4931110020768,
            5.5814197821558125,
            -0.6610691825249471,
        ),
        (
            30.91273214028599,
            -3.1208243349937974,
            77.79954646070892,
            34.28646028294783,
            -19.097331116725623,
            -28.087943162872662,
        ),
        (
            37.80277123390563,
            -3.2571969029072276,
            112.26918849496327,
            66.9347231244047,
            -40.06618937091002,
            -54.66780262877968,
            -9.48861652309627,
        ),
    ),
    alpha=(
        0.0,
        0.6358126895828704,
        0.4095798393397535,
        0.9769306725060716,
        0.4288403609558664,
        1.0,
        1.0,
        1.0,
    ),
    d=(
        0.21193756319429014,
        -0.42387512638858027,
        -0.3384627126235924,
        1.8046452872882734,
        2.325825639765069,
        0.0,
        0.0,
        0.0,
    ),
    m=(*_RODAS5P_A6, 1.0, 1.0, 1.0),  # stiffly accurate
    e=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    dense=(
        (
            25.948786856663858,
            -2.5579724845846235,
            10.433815404888879,
            -2.3679251022685204,
            0.524948541321073,
            1.1241088310450404,
            0.4272876194431874,
            -0.17202221070155493,
        ),
        (
            -9.91568850695171,
            -0.9689944594115154,
            3.0438037242978453,
            -24.495224566215796,
            20.176138334709044,
            15.98066361424651,
            -6.789040303419874,
            -6.710236069923372,
        ),
        (
            11.419903575922262,
            2.8879645146136994,
            72.92137995996029,
            80.12511834622643,
            -52.072871366152654,
            -59.78993625266729,
            -0.15582684282751913,
            4.883087185713722,
        ),
    ),
    order=5,
)
"""Rodas5P (Steinebach 2023, BIT Numer. Math. 63:27): eight stages, order 5 with an embedded
order-4 solution and order-4 dense output, L-stable and stiffly accurate; coefficients as in
OrdinaryDiffEq.jl's ``Rodas5PTableau``."""


class RosenbrockInterpolation(diffrax.AbstractLocalInterpolation):
    """A Rosenbrock step's dense output (`RosenbrockTableau`): ``y(t) = (1 - s) y0 + s (y1 +
    (1 - s) (D_1 + s (D_2 + ...)))``, ``s = (t - t0) / (t1 - t0)``; ``dense`` stacks the
    ``D_r`` (leading axis ``r``) of each leaf of the state."""

    t0: Any
    t1: Any
    y0: Any
    y1: Any
    dense: Any

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jax.tree.map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        width = self.t1 - self.t0
        empty = width == 0  # a step of length 0: its one point
        s = jnp.where(empty, 0.0, (t0 - self.t0) / jnp.where(empty, 1.0, width))

        def at(y0, y1, dense):
            inner = dense[-1]
            for d in dense[-2::-1]:
                inner = d + s * inner
            return (1 - s) * y0 + s * (y1 + (1 - s) * inner)

        return jax.tree.map(at, self.y0, self.y1, self.dense)


class AbstractRosenbrock(diffrax.AbstractAdaptiveSolver):
    r"""A Rosenbrock (Rosenbrock-Wanner) method given by its `RosenbrockTableau`, for diffrax
    (Hairer & Wanner, Solving ODEs II, sec. IV.7).

    Each step evaluates ``J = df/dy`` at the step's start exactly (forward mode: a Rosenbrock
    method's order conditions need the exact Jacobian) and, for non-autonomous fields,
    ``df/dt``; it inverts ``I / (h gamma) - J`` once (LU with partial pivoting) and takes every
    stage by a matrix-vector product: no Newton iterations, whose nested loops dominate the
    cost of diffrax's ESDIRK steps on small stiff models (PEtab benchmark problems, SBML
    kinetics). Dense output from the stages (`RosenbrockInterpolation`). For ODE terms
    (``diffrax.ODETerm``); the state may be any pytree of arrays (raveled for the linear
    algebra), of a size where a dense ``n x n`` inverse per step is cheap.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        RosenbrockInterpolation
    )
    tableau: eqx.AbstractClassVar[RosenbrockTableau]

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
        return _step_finite_derivative(self, terms, t0, t1, y0, args, solver_state, made_jump)

    def _step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        tab = self.tableau
        f0 = jax.lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: solver_state)
        # diffrax may take a step of length 0 (y1 = y0): 1 / h would put inf into the stages,
        # and NaN into every reverse-mode derivative through them; its stages are all (t0, y0)
        empty = t1 == t0
        h = jnp.where(empty, jnp.ones_like(t1 - t0), t1 - t0)
        flat0, unravel = ravel_pytree(y0)

        def f(t, flat):
            return ravel_pytree(terms.vf(t, unravel(flat), args))[0]

        jac = jax.jacfwd(lambda y: f(t0, y))(flat0)
        dfdt = jax.jacfwd(lambda t: f(t, flat0))(t0)
        eye = jnp.eye(flat0.size, dtype=flat0.dtype)
        # the stages share one matrix: its inverse costs about one LU solve, and then each
        # stage is a matrix-vector product; a triangular solve's fixed cost per call on CPU
        # (~1 us at n = 9) made most of the step otherwise
        inverse = jax.scipy.linalg.lu_solve(
            jax.scipy.linalg.lu_factor(eye / (h * tab.gamma) - jac), eye
        )
        ks = []
        for i in range(len(tab.alpha)):
            if i == 0:
                fi = ravel_pytree(f0)[0]
            else:
                yi = flat0 + jnp.where(empty, 0.0, sum(a * k for a, k in zip(tab.a[i], ks)))
                fi = f(t0 + jnp.where(empty, 0.0, tab.alpha[i] * h), yi)
            rhs = fi + (tab.d[i] * h) * dfdt + sum((c / h) * k for c, k in zip(tab.c[i], ks))
            ks.append(inverse @ rhs)

        def combine(weights):
            return sum(w * k for w, k in zip(weights, ks) if w)

        flat1 = jnp.where(empty, flat0, flat0 + combine(tab.m))
        error = jnp.where(empty, 0.0, combine(tab.e))
        dense = jnp.stack([jnp.where(empty, 0.0, combine(row)) for row in tab.dense])
        y1 = unravel(flat1)
        f1 = terms.vf(t1, y1, args)  # the next step's first stage
        dense_info = dict(y0=y0, y1=y1, dense=jax.vmap(unravel)(dense))
        # a non-finite stage makes the error estimate NaN, and diffrax rejects the step
        return y1, unravel(error), dense_info, f1, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


@eqx.filter_custom_jvp
def _step_finite_derivative(solver, terms, t0, t1, y0, args, solver_state, made_jump):
    return solver._step(terms, t0, t1, y0, args, solver_state, made_jump)


@_step_finite_derivative.def_jvp
def _step_finite_derivative_jvp(primals, tangents):
    """A step whose solution or error estimate is not finite (a stage left the field's domain:
    a negative amount under a fractional power) is rejected, and its derivative is zero: it is
    taken at the zero-length step from the same start, whose stages are all the (finite) start.

    Masking the derivative of the step itself would not do in reverse mode: the transpose
    multiplies the zero cotangent by the NaN partial derivatives inside the step, 0 * NaN =
    NaN, and every parameter's gradient became NaN. Costs one more evaluation of the step in
    differentiated code only."""
    solver, terms, t0, t1, y0, args, solver_state, made_jump = primals
    out = solver._step(terms, t0, t1, y0, args, solver_state, made_jump)
    finite = [jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves((out[0], out[1]))]
    bad = ~jnp.all(jnp.stack(finite))
    safe = (solver, terms, t0, jnp.where(bad, t0, t1), y0, args, solver_state, made_jump)
    tangents = jax.tree.map(
        lambda x, t: jnp.zeros_like(x) if t is None and eqx.is_inexact_array(x) else t,
        safe,
        tangents,
        is_leaf=lambda t: t is None,
    )
    _, t_out = eqx.filter_jvp(lambda s, *a: s._step(*a), safe, tangents)
    zeroed = jax.tree.map(
        lambda t: None if t is None else jnp.where(bad, jnp.zeros_like(t), t),
        t_out,
        is_leaf=lambda t: t is None,
    )
    return out, zeroed


class Rodas4(AbstractRosenbrock):
    """RODAS4 (Hairer & Wanner 1996, Solving ODEs II, sec. VI.4): L-stable, stiffly accurate,
    order 4 (embedded order 3, dense output order 3), six stages."""

    tableau: ClassVar[RosenbrockTableau] = RODAS4


class Rodas5P(AbstractRosenbrock):
    """Rodas5P (Steinebach 2023, BIT Numer. Math. 63:27): L-stable, stiffly accurate, order 5
    (embedded order 4, dense output order 4), eight stages; the stages share one inverse, so
    the two extra stages cost two field evaluations and two products. Fewer steps than
    `Rodas4` at tight tolerances (PEtab's rtol 1e-6)."""

    tableau: ClassVar[RosenbrockTableau] = RODAS5P
