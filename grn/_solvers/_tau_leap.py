"""Adaptive explicit tau-leaping (Cao, Gillespie & Petzold 2006) with exact SSA fallback."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._solution import RESULTS
from ._base import AbstractSolver

_MAX_REJECTIONS = 16  # consecutive rejected leaps before an exact step is forced
_INVERSION_BELOW = 16.0  # Poisson means below this are sampled exactly by inversion
_INVERSION_TERMS = 48  # pmf terms summed by inversion: P(Poisson(16) >= 48) < 1e-10


def _poisson(u, lam):
    """Poisson(``lam``) counts from uniforms ``u`` in [0, 1), one per mean; int32.

    Means below 16 are inverted exactly: ``k = #{m : F(m) <= u}`` over the first 48 terms of the
    cdf ``F``, which truncates only the upper tail beyond ``P < 1e-10`` (and float32 rounding of
    ``F``, ~1e-7). Larger means use the normal quantile ``z = Phi^-1(u)`` with a Cornish-Fisher
    skewness term and continuity correction, ``k = floor(lam + sqrt(lam) z + (z^2 - 1)/6 + 1/2)``,
    whose mean is exact and whose variance is ``lam + 5/36``; its total-variation distance from
    Poisson(lam) is below 3e-3 at lam = 16 and falls as ``1/lam``.
    """
    small = lam < _INVERSION_BELOW
    lam_s = jnp.where(small, lam, 1.0)
    m = jnp.arange(_INVERSION_TERMS, dtype=lam.dtype)
    log_fact = jnp.asarray(
        [math.lgamma(i + 1.0) for i in range(_INVERSION_TERMS)], dtype=lam.dtype
    )
    log_pmf = m * jnp.log(jnp.maximum(lam_s, 1e-30))[..., None] - lam_s[..., None] - log_fact
    cdf = jnp.cumsum(jnp.exp(log_pmf), axis=-1)
    k_small = jnp.sum(cdf <= u[..., None], axis=-1)
    z = jax.scipy.special.ndtri(jnp.clip(u, 1e-7, 1.0 - 1e-7))
    k_large = jnp.floor(lam + jnp.sqrt(lam) * z + (z * z - 1.0) / 6.0 + 0.5)
    k_large = jnp.maximum(k_large, 0.0)
    return jnp.where(small, k_small, k_large.astype(jnp.int32)).astype(jnp.int32)


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
    ``x <- x + sum_j K_j nu_j``, assuming the propensities stay nearly constant over the leap.
    ``tau`` follows Cao, Gillespie & Petzold (2006), J. Chem. Phys. 124:044109, "Efficient step
    size selection for the tau-leaping simulation method":

    - a reaction is *critical* if it could exhaust one of its reactants within ``n_critical``
      firings, ``min_{i: nu_ji < 0} floor(x_i / |nu_ji|) < n_critical``; critical reactions are
      never leapt but fire at most once per step, at an exact time ``tau'' ~ Exp(a0_critical)``;
    - over the non-critical reactions, ``mu_i = sum_j nu_ji a_j`` and
      ``sigma_i^2 = sum_j nu_ji^2 a_j``, and over every reactant species ``i``

      .. math::
          \tau' = \min_i \left\{ \frac{\max(\epsilon x_i / g_i, 1)}{|\mu_i|},
                                 \frac{\max(\epsilon x_i / g_i, 1)^2}{\sigma_i^2} \right\}

      bounds the expected relative change of every propensity by about ``epsilon``; ``g_i``
      comes from the highest order of reaction of species ``i`` (``2 + 1/(x_i - 1)`` for
      ``2 X_i -> ...``, see `_g`), built from the reactant matrix at trace time;
    - the step is ``min(tau', tau'')``: if ``tau''`` is the smaller, one critical reaction fires
      (chosen with probability ``a_j / a0_critical``) besides the leap of the others;
    - a leap that would make a count negative is rejected without changing the state and retried
      with ``tau'`` halved (``tau''`` redrawn);
    - when ``tau' < ssa_threshold / a0`` a leap would fire only a few reactions, so an exact
      Gillespie direct-method step is taken instead (one per iteration, after which ``tau'`` is
      re-evaluated), as are steps after ``16`` consecutive rejections.

    Output times and schedule breakpoints are restart points, as in `grn.SSA`: a step never
    crosses one. A leap is truncated to end there (a shorter leap, no further approximation) and
    a critical or exact event drawn beyond it is discarded, which is exact by memorylessness.
    ``log_weight`` integrates ``g - h`` with the left-point rule over each leap (exact over SSA
    steps), so its error is of the order of the leap's change of ``g - h``.

    Accuracy and speed: ``epsilon`` trades bias for steps. A leap fires about
    ``(epsilon x / g)^2`` reactions of a species with ``x`` copies, so the step count falls as
    ``1 / epsilon^2`` once leaping pays off, while the bias grows with ``epsilon``. Fast linear
    decay is the worst case: for immigration-death ``0 -> X`` (alpha), ``X -> 0`` (mu), a leap of
    fixed ``tau`` has the stationary variance ``(alpha/mu) / (1 - mu tau / 2)``, so the sd is
    overstated by about ``mu tau / 4``. Measured (n = 10^5 cells, alpha = 500, mu = 0.5, mean
    1000): the sd is 9.6 % high at epsilon = 0.03 and 1.0 % at epsilon = 0.01; the mean is
    unbiased. At epsilon = 0.01 the DSMTS birth-death, immigration-death and dimerisation cases
    are within 1 % of the exact mean and sd (mostly exact steps at those copy numbers).

    Poisson counts come from one uniform each (see `_poisson`): exact inversion for means below
    16, a skewness-corrected normal quantile above, about 3 times faster than
    ``jax.random.poisson`` in this solver.

    Counts are int32; ``n_events`` counts reaction firings (leapt and exact). ``max_steps``
    bounds the steps per cell (leaps, exact steps and rejected leaps); a cell that reaches it gets
    ``RESULTS.max_events_reached``. ``block`` is the number of steps between checks for finished
    cells, as in `grn.SSA`.
    """

    epsilon: float = 0.03
    n_critical: int = 10
    ssa_threshold: float = 10.0
    max_steps: int = 10_000_000
    block: int = 32
    stochastic = True

    def __check_init__(self):
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 < eps < 1.0:
            raise ValueError(f"TauLeap(epsilon=...) must be a number in (0, 1), got {eps!r}")
        thr = self.ssa_threshold
        if isinstance(thr, bool) or not isinstance(thr, int | float) or not thr >= 0.0:
            raise ValueError(
                f"TauLeap(ssa_threshold=...) must be a non-negative number, got {thr!r}"
            )
        for name in ("n_critical", "max_steps", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TauLeap({name}=...) must be a positive integer, got {value!r}")

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        ys, lws, n, res, _ = self.solve_cell_with_stats(
            network, ts, key, params, x0, schedule_times, schedule_table
        )
        return ys, lws, n, res

    def solve_cell_with_stats(self, network, ts, key, params, x0, schedule_times, schedule_table):
        """`solve_cell`, plus a dict of step counters: ``leaps`` (accepted), ``exact`` (SSA
        steps, including restarts), ``rejected`` (leaps that would have gone negative)."""
        dtype = ts.dtype
        nu_np = np.asarray(network.stoichiometry, np.int32)
        nu = jnp.asarray(nu_np)
        nu_f = nu.astype(dtype)
        consumed = jnp.asarray(nu_np < 0)
        depth = jnp.asarray(np.maximum(-nu_np, 1), dtype)  # copies consumed per firing
        terms = _hor_terms(np.asarray(network.reactant_matrix))
        is_reactant = jnp.asarray([bool(p) for p in terms])
        n_reactions = nu_np.shape[0]
        n_segments = schedule_times.shape[0]
        n_times = ts.shape[0]
        exact_limit = 2**24 if dtype == jnp.float32 else 2**31 - 1
        eps = self.epsilon

        def step(state, r):
            x, k, t, seg, n, lw, res, rej, counts, ys, lws = state
            steps = counts.sum()
            active = (k < n_times - 1) & (res == RESULTS.successful) & (steps < self.max_steps)
            t_start = ts[k]
            span = ts[jnp.minimum(k + 1, n_times - 1)] - t_start
            u = schedule_table[seg]
            xf = x.astype(dtype)
            a = network.propensities(xf, params, u)
            a0 = jnp.sum(a)

            # Critical reactions: fewer than n_critical firings from exhausting a reactant.
            firings_left = jnp.min(jnp.where(consumed, jnp.floor(xf / depth), jnp.inf), axis=1)
            critical = (a > 0) & (firings_left < self.n_critical)
            a_nc = jnp.where(critical, 0.0, a)
            a_c = jnp.where(critical, a, 0.0)
            a0_c = jnp.sum(a_c)

            # Cao et al. (2006) eq. 33 over the non-critical reactions.
            mu = a_nc @ nu_f
            sigma2 = a_nc @ (nu_f * nu_f)
            bound = jnp.maximum(eps * xf / jnp.where(is_reactant, _g(terms, xf), 1.0), 1.0)
            tau_mu = jnp.where(mu != 0, bound / jnp.abs(mu), jnp.inf)
            tau_sigma = jnp.where(sigma2 > 0, bound * bound / sigma2, jnp.inf)
            tau_p = jnp.min(jnp.where(is_reactant, jnp.minimum(tau_mu, tau_sigma), jnp.inf))
            tau_p = tau_p * jnp.asarray(0.5, dtype) ** rej
            exact = (tau_p * a0 < self.ssa_threshold) | (rej >= _MAX_REJECTIONS)

            # One exponential serves the exact step (rate a0) or the critical one (a0_c).
            e = -jnp.log1p(-r[0])
            tau_ssa = jnp.where(a0 > 0, e / a0, jnp.inf)
            tau_crit = jnp.where(a0_c > 0, e / a0_c, jnp.inf)
            fire_crit = ~exact & (tau_crit <= tau_p)
            tau = jnp.where(exact, tau_ssa, jnp.minimum(tau_p, tau_crit))

            # Restart points: the next schedule breakpoint inside this interval, or its end.
            nxt = jnp.minimum(seg + 1, n_segments - 1)
            bp = jnp.where(seg + 1 < n_segments, schedule_times[nxt] - t_start, jnp.inf)
            t_cand = t + tau
            hits_bp = (bp <= span) & (t_cand >= bp)
            hits_end = ~hits_bp & (t_cand >= span)
            hits = hits_bp | hits_end
            t_new = jnp.where(hits_bp, bp, jnp.where(hits_end, span, t_cand))
            dt = t_new - t

            # The single event: any reaction (exact step) or a critical one (leap).
            weights = jnp.where(exact, a, a_c)
            cumulative = jnp.cumsum(weights)
            total = cumulative[-1]
            j = jnp.sum(cumulative <= r[1] * total)
            last_positive = n_reactions - 1 - jnp.argmax((weights > 0)[::-1])
            j = jnp.where(j >= n_reactions, last_positive, j)
            fire_one = ~hits & (exact | fire_crit)

            lam = jnp.where(exact, 0.0, a_nc * dt)
            leapt = _poisson(r[2:], lam)
            x_new = x + leapt @ nu + fire_one * nu[j]
            fired = leapt.sum() + fire_one

            negative = jnp.any(x_new < 0)
            reject = ~exact & negative
            code = jnp.where(
                ~jnp.isfinite(a0) | jnp.any(a < 0),
                RESULTS.invalid_propensity,
                jnp.where(
                    exact & negative,
                    RESULTS.negative_population,
                    jnp.where(jnp.any(x_new >= exact_limit), RESULTS.count_overflow, res),
                ),
            )
            code = jnp.where(active, code, res)
            ok = active & (code == RESULTS.successful)
            accept = ok & ~reject
            lw_new = lw + network.fate_rate(xf, params, u) * dt
            record = hits_end & accept
            row = jnp.where(record, k + 1, n_times)  # out of range: the write is dropped
            ys = ys.at[row].set(x_new.astype(dtype), mode="drop")
            lws = lws.at[row].set(lw_new, mode="drop")
            counts = counts + ok * jnp.stack(
                [accept & ~exact, accept & exact, reject]
            ).astype(jnp.int32)
            return (
                jnp.where(accept, x_new, x),
                k + record,
                jnp.where(record, jnp.zeros_like(t), jnp.where(accept, t_new, t)),
                seg + (hits_bp & accept),
                n + accept * fired,
                jnp.where(accept, lw_new, lw),
                code,
                jnp.where(ok & reject, rej + 1, jnp.where(accept, 0, rej)),
                counts,
                ys,
                lws,
            )

        def running(carry):
            (_, k, _, _, _, _, res, _, counts, _, _), _ = carry
            return (k < n_times - 1) & (res == RESULTS.successful) & (counts.sum() < self.max_steps)

        def block(carry):
            state, key = carry
            key, sub = jax.random.split(key)
            r = jax.random.uniform(sub, (self.block, 2 + n_reactions), dtype)
            state = jax.lax.fori_loop(0, self.block, lambda i, st: step(st, r[i]), state)
            return state, key

        x0 = jnp.round(x0).astype(jnp.int32)
        ys = jnp.full((n_times, x0.shape[0]), jnp.nan, dtype).at[0].set(x0.astype(dtype))
        lws = jnp.full((n_times,), jnp.nan, dtype).at[0].set(0.0)
        seg0 = jnp.searchsorted(schedule_times, ts[0], side="right") - 1
        zero = jnp.zeros((), jnp.int32)
        state = (
            x0,
            zero,
            jnp.zeros((), dtype),
            seg0,
            zero,
            jnp.zeros((), dtype),
            jnp.asarray(RESULTS.successful, jnp.int32),
            zero,
            jnp.zeros((3,), jnp.int32),
            ys,
            lws,
        )
        state, _ = jax.lax.while_loop(running, block, (state, key))
        _, k, _, _, n, _, res, _, counts, ys, lws = state
        res = jnp.where(
            (k < n_times - 1) & (res == RESULTS.successful), RESULTS.max_events_reached, res
        )
        stats = {"leaps": counts[0], "exact": counts[1], "rejected": counts[2]}
        return ys, lws, n, res, stats
