"""Adaptive explicit tau-leaping (Cao, Gillespie & Petzold 2006) with exact SSA fallback."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .._solution import RESULTS
from ._base import AbstractSolver, CellPath, CellProgram
from ._events import select_reaction
from ._stepping import block_program, run_program, run_to_end

_MAX_REJECTIONS = 16  # consecutive rejected leaps before an exact step is forced
_INVERSION_BELOW = 10.0  # Poisson means below this are sampled by inversion
_INVERSION_TERMS = 36  # P(Poisson(10) >= 36) < 1e-9
_NEGLIGIBLE = 2.0**-25  # pmf terms below this end the inversion (the cdf no longer changes)


def _poisson(u, lam):
    """Poisson(``lam``) counts (int32) from uniforms ``u`` in [0, 1), one uniform per mean.

    Means below 10 are inverted: ``k = min{m : F(m) > u}`` with the cdf ``F`` summed from the
    pmf recursion ``p_m = p_{m-1} lam / m`` over at most 36 terms (unrolled: a fixed, fused
    elementwise loop). The search also ends at the first term below ``2^-25``, where float32
    ``F`` stops changing, so the upper tail beyond it (mass < 5e-8) is cut off; otherwise the
    draw is exact up to float32 rounding of ``F`` (~1e-7 in probability).

    Larger means use the normal quantile ``z = Phi^{-1}(u)`` with a Cornish-Fisher skewness
    term, rounded: ``k = floor(lam + sqrt(lam - 5/36) z + (z^2 - 1)/6 + 1/2)``. The
    ``-5/36`` cancels the variance that the skewness term (1/18) and the rounding (1/12) add.
    Against Poisson(lam) at lam = 10 its mean and variance are off by 1e-6 and 2e-5
    (relative), its third cumulant by 1 %, and its total-variation distance is 2.2e-3, falling
    as ``1/lam`` (2e-4 at lam = 100); ``u`` is clipped to [1e-7, 1 - 1e-7], so draws beyond
    5.2 standard deviations (probability 2e-7) are pulled in to it.
    """
    small = lam < _INVERSION_BELOW
    lam_s = jnp.where(small, lam, 0.0)
    # The two conditions hold on prefixes of m (p_m >= exp(-lam) > 2^-25 below the mode), so
    # counting where both hold counts the prefix.
    p = jnp.exp(-lam_s)
    cdf = p
    k_small = (cdf <= u).astype(lam.dtype)
    for m in range(1, _INVERSION_TERMS):
        p = p * lam_s * (1.0 / m)
        cdf = cdf + p
        k_small = k_small + ((cdf <= u) & (p >= _NEGLIGIBLE))
    z = jax.scipy.special.ndtri(jnp.clip(u, 1e-7, 1.0 - 1e-7))
    sd = jnp.sqrt(jnp.maximum(lam - 5.0 / 36.0, 0.0))
    k_large = jnp.floor(lam + sd * z + (z * z - 1.0) / 6.0 + 0.5)
    k_large = jnp.clip(k_large, 0.0, 2.0**30).astype(jnp.int32)
    return jnp.where(small, k_small.astype(jnp.int32), k_large)


def _hor_terms(reactant_matrix: np.ndarray):
    """Per species, the ``(order, coefficient)`` pairs of the reactions it is a reactant of."""
    orders = reactant_matrix.sum(axis=1)
    terms = []
    for i in range(reactant_matrix.shape[1]):
        pairs = {
            (int(orders[j]), int(reactant_matrix[j, i]))
            for j in range(reactant_matrix.shape[0])
            if reactant_matrix[j, i] > 0
        }
        terms.append(sorted(pairs))
    return terms


def _g(terms, xf):
    """Cao et al.'s g_i(x): ``max over reactions of (order / c) sum_{k<c} x / (x - k)``.

    For a species that a reaction of order ``m`` consumes ``c`` copies of, a relative change
    ``dx/x`` changes the propensity by at most ``(m/c) sum_{k<c} x/(x-k) dx/x``; this gives
    1, 2, ``2 + 1/(x-1)``, 3, ``3/2 (2 + 1/(x-1))``, ``3 + 1/(x-1) + 2/(x-2)`` exactly as the
    paper's highest-order-of-reaction table (eq. 27) for orders up to 3, and extends it to any
    order. Below ``c`` copies the term is infinite, so the bound ``max(eps x/g, 1)`` falls to 1.
    Species that are no reactant get ``g = 0`` (masked out of the step selection).
    """
    gs = []
    for i, pairs in enumerate(terms):
        x = xf[i]
        g = jnp.zeros((), xf.dtype)
        for order, c in pairs:
            total = jnp.ones((), xf.dtype)
            for k in range(1, c):
                total = total + jnp.where(x > k, x / jnp.maximum(x - k, 1.0), jnp.inf)
            g = jnp.maximum(g, order / c * total)
        gs.append(g)
    return jnp.stack(gs)


class TauLeap(AbstractSolver):
    r"""Adaptive explicit tau-leaping (Gillespie 2001; Cao, Gillespie & Petzold 2006).

    A leap of length ``tau`` fires each reaction ``j`` ``K_j ~ Poisson(a_j(x) tau)`` times,
    ``x <- x + sum_j K_j nu_j``, taking the propensities as constant over the leap (Gillespie
    2001, J. Chem. Phys. 115:1716). ``tau`` follows Cao, Gillespie & Petzold (2006), J. Chem.
    Phys. 124:044109, "Efficient step size selection for the tau-leaping simulation method":

    - a reaction is *critical* if it could exhaust one of its reactants within ``n_critical``
      firings, ``min_{i: nu_ji < 0} floor(x_i / |nu_ji|) < n_critical``; critical reactions are
      never leapt but fire at most once per step, at an exact time ``tau'' ~ Exp(a0_critical)``;
    - over the non-critical reactions, ``mu_i = sum_j nu_ji a_j`` and
      ``sigma_i^2 = sum_j nu_ji^2 a_j``, and over every reactant species ``i``

      .. math::
          \tau' = \min_i \left\{ \frac{\max(\epsilon x_i / g_i, 1)}{|\mu_i|},
                                 \frac{\max(\epsilon x_i / g_i, 1)^2}{\sigma_i^2} \right\}

      bounds the mean and the sd of the relative change of every propensity by about
      ``epsilon``; ``g_i`` comes from the highest order of reaction of species ``i`` (``2`` for
      ``X_i + Y ->``, ``2 + 1/(x_i - 1)`` for ``2 X_i ->``, ...: see `_g`), laid out from the
      reactant matrix at trace time;
    - the step is ``min(tau', tau'')``; where ``tau''`` is the smaller, one critical reaction
      (chosen with probability ``a_j / a0_critical``) fires besides the leap of the others;
    - a leap that would make a count negative is rejected, the state left as it was, and retried
      with ``tau'`` halved and ``tau''`` redrawn;
    - where ``tau' < ssa_threshold / a0`` a leap would fire only a few reactions, and an exact
      Gillespie direct-method step is taken instead (also after 16 consecutive rejections). As
      Cao et al. run a batch of SSA steps there, a cell whose step was exact then takes up to
      ``exact_burst`` further exact steps, cheap ones that skip the step selection and the Poisson
      draws, before ``tau'`` is evaluated again. ``ssa_threshold=inf`` gives the exact SSA.

    Output times, schedule breakpoints and time events are restart points, as in `grn.SSA` (the
    same stepping core and two-float clock): no step crosses one; state events are checked after
    every step (so they fire up to one leap late). A leap that would cross one is shortened to
    end there (a shorter leap: no extra approximation) and a critical or exact event drawn beyond
    it is discarded, which is exact by memorylessness, so piecewise-constant inputs switch
    exactly. ``log_weight`` integrates ``g - h`` with the
    left-point rule over each leap (exact over exact steps), an error of the order of the change
    of ``g - h`` over a leap.

    Accuracy and cost. A leap fires about ``tau' a0 = (epsilon x / g)^2`` reactions where the
    variance bound holds, so leaps take over from exact steps at about
    ``x = sqrt(ssa_threshold) g / epsilon`` copies (some 100 at epsilon = 0.03, 300 at 0.01),
    and above that the number of steps scales as ``1 / epsilon^2``. The mean is first-order
    accurate: like explicit Euler it runs ahead in transients, by about ``epsilon / 2`` relative
    (1.5 % at epsilon = 0.03 and 0.4 % at 0.01 for immigration-death, alpha = 1000, mu = 1).
    Fluctuations are overstated where a species decays fast relative to the leap: for
    ``0 -> X`` (alpha), ``X -> 0`` (mu) a leap of length ``tau`` has the stationary variance
    ``(alpha/mu) / (1 - mu tau / 2)``, and here ``mu tau`` is about ``epsilon^2 m / 2`` for the
    mean ``m``, capped by ``mu`` times the output interval (leaps stop at output times).
    Measured with mu = 0.5 (n = 4 10^4, at equilibrium): the sd is 0.2 % high for m = 100,
    7.0 % for m = 700, 12.6 % for m = 1000 and 15 % for m = 10^4 at epsilon = 0.03; 0.2 %,
    1.1 %, 1.3 % and 16 % at epsilon = 0.01 (where leaps span the whole output interval,
    mu tau = 0.5). Equilibrium means are within 0.15 %. On the DSMTS cases 00001, 00005, 00021 and
    00030 at epsilon = 0.01 the mean is within 0.6 % and the sd within 2.6 % of the exact values
    (n = 10^4, t >= 5), inside the 2 % / 5 % band of the DSMTS guide for approximate simulators.

    Poisson counts use one uniform each (`_poisson`: exact inversion below mean 10, a
    skewness-corrected normal quantile above), 6-8 times cheaper than ``jax.random.poisson`` in
    this solver. Counts are int32 and ``n_events`` counts reaction firings, leapt and exact.
    ``max_steps`` bounds the steps per cell (leaps, exact and rejected steps); a cell that reaches
    it gets ``RESULTS.max_events_reached``. ``block`` is the number of full steps (each with its
    exact burst) between checks for finished cells.
    """

    epsilon: float = 0.03
    n_critical: int = 10
    ssa_threshold: float = 10.0
    max_steps: int = 10_000_000
    exact_burst: int = 8
    block: int = 16
    stochastic = True

    def __check_init__(self):
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < eps < 1.0:
            raise ValueError(f"TauLeap(epsilon=...) must be a number in (0, 1), got {eps!r}")
        thr = self.ssa_threshold
        if isinstance(thr, bool) or not isinstance(thr, numbers.Real) or not thr >= 0.0:
            raise ValueError(
                f"TauLeap(ssa_threshold=...) must be a non-negative number, got {thr!r}"
            )
        for name in ("n_critical", "max_steps", "exact_burst", "block"):
            value = getattr(self, name)
            minimum = 0 if name == "exact_burst" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                kind = "non-negative" if minimum == 0 else "positive"
                raise ValueError(f"TauLeap({name}=...) must be a {kind} integer, got {value!r}")

    def check(self, network) -> None:
        pass  # time events are restart points; state events are checked after every step

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        program = self.program(network, ts, schedule_times, schedule_table)
        return run_program(program, key, params, x0)

    def solve_cell_with_stats(self, network, ts, key, params, x0, schedule_times, schedule_table):
        """`solve_cell`, and a dict of step counts: ``leaps`` (accepted leaps), ``exact`` (exact
        steps, including those that only reach a restart point) and ``rejected`` leaps."""
        program = self.program(network, ts, schedule_times, schedule_table)
        state = run_to_end(program, key, params, x0)
        steps = state["steps"]
        stats = {"leaps": steps[0], "exact": steps[1], "rejected": steps[2]}
        return program.finish(state), stats

    def program(self, network, ts, schedule_times, schedule_table) -> CellProgram:
        dtype = ts.dtype
        nu_np = np.asarray(network.stoichiometry, np.int32)
        nu = jnp.asarray(nu_np)
        nu_f = nu.astype(dtype)
        consumed = jnp.asarray(nu_np < 0)
        depth = jnp.asarray(np.maximum(-nu_np, 1), dtype)  # copies of a reactant one firing uses
        terms = _hor_terms(np.asarray(network.reactant_matrix))
        is_reactant = jnp.asarray([bool(pairs) for pairs in terms])
        n_reactions = nu_np.shape[0]
        eps = self.epsilon
        fate = network.growth is not None or network.death is not None

        def leap_size(xf, a, rej):
            """Cao et al.'s tau' (eq. 33) over the non-critical reactions, halved per rejection."""
            left = jnp.min(jnp.where(consumed, jnp.floor(xf / depth), jnp.inf), axis=1)
            critical = (a > 0) & (left < self.n_critical)
            a_nc = jnp.where(critical, 0.0, a)
            mu = a_nc @ nu_f
            sigma2 = a_nc @ (nu_f * nu_f)
            bound = jnp.maximum(eps * xf / jnp.where(is_reactant, _g(terms, xf), 1.0), 1.0)
            tau_mu = jnp.where(mu != 0, bound / jnp.abs(mu), jnp.inf)
            tau_sigma = jnp.where(sigma2 > 0, bound * bound / sigma2, jnp.inf)
            tau_p = jnp.min(jnp.where(is_reactant, jnp.minimum(tau_mu, tau_sigma), jnp.inf))
            return tau_p * jnp.asarray(0.5, dtype) ** rej, critical

        def cell(core):
            def step(s, r, full):
                # A full step leaps, or takes an exact step where tau' is too short; a burst
                # step (full=False, static) is an exact step, taken only by cells whose last full
                # step was exact, which skips the cost of step selection and Poisson sampling.
                active = core.unfinished(s) & (s["steps"].sum() < self.max_steps)
                active = active & (full | s["was_exact"])
                at = core.begin(s)
                x = at.x
                xf = x.astype(dtype)
                a = network.propensities(xf, at.p, at.u)
                a0 = jnp.sum(a)
                e = -jnp.log1p(-r[0])  # one exponential times the exact or the critical event
                tau_exact = jnp.where(a0 > 0, e / a0, jnp.inf)
                if full:
                    tau_p, critical = leap_size(xf, a, s["rej"])
                    exact = (tau_p * a0 < self.ssa_threshold) | (s["rej"] >= _MAX_REJECTIONS)
                    a_c = jnp.where(critical, a, 0.0)
                    a0_c = jnp.sum(a_c)
                    tau_c = jnp.where(a0_c > 0, e / a0_c, jnp.inf)
                    tau = jnp.where(exact, tau_exact, jnp.minimum(tau_p, tau_c))
                    single = exact | (tau_c <= tau_p)  # one reaction fires besides any leap
                    weights = jnp.where(exact, a, a_c)
                else:
                    exact, tau, single, weights = jnp.asarray(True), tau_exact, True, a

                reach = core.reach(at, tau)

                # The single event (any reaction, or a critical one in a leap), discarded beyond a
                # restart point.
                j = select_reaction(weights, r[1])
                fire = single & ~reach.restart
                x_new = x + fire * nu[j]
                fired = fire.astype(jnp.int32)
                if full:
                    lam = jnp.where(exact | critical, 0.0, a * reach.dt)
                    leapt = _poisson(r[2:], lam)
                    x_new = x_new + leapt @ nu
                    fired = fired + leapt.sum(dtype=jnp.int32)

                negative = jnp.any(x_new < 0)
                reject = ~exact & negative  # a leap overshot: retry with tau' halved
                x_new, _, updates, looped = core.fire_events(s, at, reach, x_new)
                invalid = ~jnp.isfinite(a0) | jnp.any(a < 0)
                code = core.code(s, active, invalid, exact & negative, looped, x_new)
                ok = active & (code == RESULTS.successful)
                accept = ok & ~reject
                moved, row = core.advance(s, reach, accept, x_new, updates)
                kind = jnp.stack([accept & ~exact, accept & exact, ok & reject])
                out = {
                    **s,
                    **moved,
                    "n": s["n"] + accept * fired,
                    "res": code,
                    "rej": jnp.where(ok & reject, s["rej"] + 1, jnp.where(accept, 0, s["rej"])),
                    "was_exact": jnp.where(active & full, exact, s["was_exact"]),
                    "steps": s["steps"] + kind.astype(jnp.int32),
                }
                written = {"row": row, "ys": x_new.astype(dtype)}
                if fate:
                    lw_new = s["lw"] + network.fate_rate(xf, at.p, at.u) * reach.dt
                    out["lw"] = jnp.where(accept, lw_new, s["lw"])
                    written["lws"] = lw_new
                return out, written

            def full_then_burst(s, r):
                r_full, r_burst = r
                s, written = step(s, r_full, True)
                if self.exact_burst:
                    burst = lambda s, r: step(s, r, False)  # noqa: E731
                    s, more = jax.lax.scan(burst, s, r_burst)
                    written = jax.tree.map(
                        lambda a, b: jnp.concatenate([a[None], b]), written, more
                    )
                return s, written

            def draws(s):
                key, k_full, k_burst = jax.random.split(s["key"], 3)
                r_full = jax.random.uniform(k_full, (self.block, 2 + n_reactions), dtype)
                r_burst = jax.random.uniform(k_burst, (self.block, self.exact_burst, 2), dtype)
                return {**s, "key": key}, (r_full, r_burst)

            def start(key, x0):
                state = core.initial_state(jnp.round(x0).astype(jnp.int32))
                if not fate:  # log_weight stays 0: filled in from the rows reached, at the end
                    del state["lw"], state["lws"]
                zero = jnp.zeros((), jnp.int32)
                steps = jnp.zeros((3,), jnp.int32)
                state.update(key=key, rej=zero, was_exact=jnp.asarray(False), steps=steps)
                return state

            return start, full_then_burst, draws

        def finish(state, result):
            # Rows not reached stay NaN; a cell that stopped early without an error ran out of
            # steps.
            reached = ~jnp.isnan(state["ys"][:, 0])
            lws = state["lws"] if fate else jnp.where(reached, 0.0, jnp.nan).astype(dtype)
            return CellPath(state["ys"], lws, state["n"], result)

        budget = lambda s: s["steps"].sum() < self.max_steps  # noqa: E731
        args = (network, ts, schedule_times, schedule_table, self.block, budget, finish, cell)
        return block_program(*args)
