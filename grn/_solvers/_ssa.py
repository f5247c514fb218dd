"""Exact stochastic simulation: Gillespie's direct method."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._solution import RESULTS
from . import _xoshiro
from ._base import AbstractSolver, CellPath, CellProgram
from ._events import any_true, select_reaction, weight_sum
from ._stepping import block_program, run_program

BARRIER_MIN = 33
"""From this many reactions the propensity array is computed once per step behind an
``optimization_barrier`` rather than fused by XLA into each of its consumers (-22 % CPU per
event at 100 reactions, +9 % at 24; benchmarks/ssa_profile.md)."""


class SSA(AbstractSolver):
    r"""Gillespie's direct method (Gillespie 1977, J. Phys. Chem. 81:2340), exact.

    Each event draws ``tau = -log(1 - r1) / a0`` and reaction ``j`` with
    ``sum_{i<j} a_i <= r2 a0 < sum_{i<=j} a_i``. Output times and schedule breakpoints are restart
    points: a candidate event beyond the next one is discarded and the clock set to it, which is
    exact because the process is memoryless, so piecewise-constant inputs stay exact. The clock is
    a two-float sum relative to the current output interval (`grn._solvers._stepping`), exact in
    float32 over any output grid (1e7 events in one interval, up to 1e7 h), and counts are int32
    (flagged ``count_overflow`` past 2**24 in float32, where the returned floats stop being
    exact). Between events the fate integral
    ``log_weight += (g - h)(x) dt`` is exact.

    ``max_events`` bounds the reactions fired per cell over the whole simulation; a cell that
    reaches it gets ``RESULTS.max_events_reached`` (`grn.simulate` raises unless ``throw=False``).
    ``block`` is the number of steps run between checks for finished cells (a tuning knob).
    The uniforms come from a per-cell xoshiro128++ stream seeded from the cell's key
    (`grn._solvers._xoshiro`), cheaper than a threefry hash per event: 24 bits in float32 (a
    reaction whose share of ``a0`` is below ``2**-24 = 6e-8`` is chosen with probability 0 or
    6e-8), 53 bits in float64.

    ``likelihood=True`` also records, per output time, the log-likelihood of the path so far,
    ``log L = sum_k log a_{r_k}(x_k) - int a0(x(t)) dt`` (Gillespie 1977; the integral is
    accumulated piecewise between events, breakpoints and event times), in
    ``Solution.log_likelihood``. The sampling (waiting times, reaction choice) then sees the
    propensities through ``stop_gradient``, so parameters enter only ``log L`` and forward-mode
    derivatives (``jax.jvp``/``jax.jacfwd`` through `grn.simulate`) give the score
    ``d log L / d theta`` of the likelihood-ratio gradient estimator (Glynn 1990, Commun. ACM
    33:75); see `fitting.score_function_grad`. Off by default, when it costs nothing.
    """

    max_events: int = 10_000_000
    block: int = 64
    likelihood: bool = False
    stochastic = True
    cpu_lanes = 512
    """Refilled lanes per CPU device by default: enough to fill the SIMD loops, few enough that
    a step's arrays stay in cache (repressilator with reporters, 10^4 cells, 2 devices: 39 wall
    ns per event against 63 with 1,024 lanes and 46 with all cells at once; toggle 11.4
    against 10.4; benchmarks/ssa_profile.md)."""
    lane_halvings = 2
    """Lanes halved twice at most as the last cells finish (repressilator, 10^3 cells: 10-15 %
    less wall time per event, ~5 s more compilation; benchmarks/ssa_profile.md)."""

    def __check_init__(self):
        for name in ("max_events", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SSA({name}=...) must be a positive integer, got {value!r}")
        if not isinstance(self.likelihood, bool):
            raise ValueError(f"SSA(likelihood=...) must be True or False, got {self.likelihood!r}")

    def check(self, network) -> None:
        pass  # SSA honours every event exactly

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        program = self.program(network, ts, schedule_times, schedule_table)
        return run_program(program, key, params, x0)

    def program(self, network, ts, schedule_times, schedule_table) -> CellProgram:
        dtype = ts.dtype
        nu = jnp.asarray(network.stoichiometry, jnp.int32)
        fate = network.growth is not None or network.death is not None

        def cell(core):
            def start(key, x0):
                state = core.initial_state(jnp.round(x0).astype(jnp.int32))
                if not fate:  # log_weight stays 0: filled in from the rows reached, at the end
                    del state["lw"], state["lws"]
                state["rng"] = _xoshiro.seed(key)
                if self.likelihood:
                    state["ll"] = jnp.zeros((), dtype)
                    state["lls"] = jnp.full((ts.shape[0],), jnp.nan, dtype).at[0].set(0.0)
                return state

            # Each step fires a reaction, crosses a schedule breakpoint or time event, or reaches
            # the next output time. Steps run in blocks of fixed length (a scan) that record one
            # output row each; a step that would reach a second one is frozen until the next
            # block (`Stepper.block`). See benchmarks/ssa_profile.md for where the time per
            # event goes.
            def step(s, _):
                rng, r1 = _xoshiro.next_uniform(s["rng"], dtype)
                rng, r2 = _xoshiro.next_uniform(rng, dtype)
                active = core.unfinished(s) & (s["n"] < self.max_events)
                at = core.begin(s)
                xf = at.x.astype(dtype)
                a = network.propensities(xf, at.p, at.u)
                if a.shape[0] >= BARRIER_MIN:
                    a = jax.lax.optimization_barrier(a)
                a0 = weight_sum(a)
                # With the likelihood on, the path is sampled from propensities held constant.
                a_s = jax.lax.stop_gradient(a) if self.likelihood else a
                a0_s = weight_sum(a_s) if self.likelihood else a0
                tau = jnp.where(a0_s > 0, -jnp.log1p(-r1) / a0_s, jnp.inf)
                reach = core.reach(at, tau)
                frozen = core.frozen(s, reach)
                active = active & ~frozen
                fire = ~reach.restart
                j = select_reaction(a_s, r2)
                x_new = jnp.where(fire, at.x + nu[j], at.x)
                if fate:
                    lw_new = s["lw"] + network.fate_rate(xf, at.p, at.u) * reach.dt
                x_new, _, updates, looped = core.fire_events(s, at, reach, x_new)
                invalid = ~jnp.isfinite(a0) | any_true(a < 0)
                code = core.code(s, active, invalid, any_true(x_new < 0), looped, x_new)
                ok = active & (code == RESULTS.successful)
                moved, row = core.advance(s, reach, ok, x_new, updates)
                rng = jnp.where(frozen, s["rng"], rng)
                out = {**s, **moved, "n": s["n"] + (fire & ok), "res": code, "rng": rng}
                written = {"row": row, "ys": xf, "frozen": frozen.astype(jnp.int32)}
                keep = lambda a, b: jnp.where(ok, a, b)  # noqa: E731
                if fate:
                    out["lw"] = keep(lw_new, s["lw"])
                    written["lws"] = lw_new
                if self.likelihood:
                    log_aj = jnp.where(fire, jnp.log(jnp.where(fire, a[j], 1.0)), 0.0)
                    ll_new = s["ll"] + log_aj - a0 * reach.dt
                    out["ll"] = keep(ll_new, s["ll"])
                    written["lls"] = ll_new
                return out, written

            return start, step, None

        def finish(state, result):
            # Rows not reached stay NaN; a cell that stopped early without an error ran out of
            # events.
            lls = state["lls"] if self.likelihood else None
            reached = ~jnp.isnan(state["ys"][:, 0])
            lws = state["lws"] if fate else jnp.where(reached, 0.0, jnp.nan).astype(dtype)
            return CellPath(state["ys"], lws, state["n"], result, log_likelihood=lls)

        budget = lambda s: s["n"] < self.max_events  # noqa: E731
        args = (network, ts, schedule_times, schedule_table, self.block, budget, finish, cell)
        return block_program(*args, one_row=True)
