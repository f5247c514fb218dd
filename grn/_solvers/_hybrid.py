"""A hybrid solver for multiscale networks: fast reactions by the CLE, slow ones exact."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._solution import RESULTS
from . import _xoshiro
from ._base import AbstractSolver, CellPath, CellProgram
from ._events import any_true, select_reaction, weight_sum
from ._stepping import block_program, run_program


class Hybrid(AbstractSolver):
    r"""Fast reactions by the chemical Langevin equation, slow ones fired exactly as jumps.

    The reactions are partitioned into FAST and SLOW at the start of every step (Haseltine &
    Rawlings 2002, J. Chem. Phys. 117:6959; Salis & Kaznessis 2005, J. Chem. Phys. 122:054103;
    GillesPy2's ``TauHybridSolver`` has the same structure with an ODE/CLE for the fast part):

    - Fast reactions advance the state by one Euler-Maruyama step of the CLE, as `grn.CLE`:
      ``x += sum_j nu_j (a_j h + sqrt(a_j h) z_j)`` over the fast ``j``, step ``h <= dt``.
    - Slow reactions fire exactly, by the time-change (integrated-propensity) representation
      (Salis & Kaznessis 2005): each cell keeps an Exp(1) threshold ``T`` and the
      integral ``I`` of the total slow propensity ``a0s``. Within a step the slow propensities are
      those at its start, so ``I`` grows linearly and reaches ``T`` after ``(T - I) / a0s``; the
      step is shortened to end exactly there (through `Stepper.reach`, so output times,
      schedule breakpoints and time events stay exact restart points and are never crossed);
      then one slow reaction fires, ``j`` with probability ``a_j / a0s`` among the slow ones, a
      new ``T`` is drawn and ``I`` restarts at 0. With no fast reaction this is exactly the SSA
      (the propensities change only at slow events and restart points, where a step starts).
      The slow propensities are held at the step's start while the fast part moves the state
      within the step: an error of order ``dt`` in the slow clock, the Euler scheme's own.

    Partition (``fast``): a tuple of reaction names (or equations, for unnamed reactions) fixed
    by the user, ``()`` for all slow, or ``None`` (default) for automatic, re-checked every step
    with masks (no recompilation) by Salis & Kaznessis' two conditions: reaction ``j`` is fast
    when it fires many times per step, ``a_j dt >= min_firings`` (default 10: the Poisson count
    of firings in a step is then close to Gaussian, the CLE's premise), and one firing is small
    against the species it touches, every species it consumes or whose count it changes has
    ``>= min_count`` copies (default 100: a firing moves it by <= 1 %, and the CLE's ``sqrt(a h)``
    excursions stay far from 0, where the CLE is a poor model of the jump process). A reaction
    switches to fast as its counts grow, and back to slow as they fall.

    Like `grn.CLE`: propensities are evaluated at ``max(X, 0)`` (the state, continuous where fast
    reactions act, may dip slightly below 0 and is not clipped); the fate integral
    ``log_weight += (g - h)(x) h`` uses the state at the step's start; state events are checked
    after every step (so they fire up to one step late); time events are restart points. A
    negative or non-finite propensity stops the cell with ``RESULTS.invalid_propensity``.

    ``max_steps`` bounds the steps per cell over the whole simulation (each slow firing, restart
    point or ``dt`` ends one); a cell that reaches it gets ``RESULTS.max_events_reached``.
    ``Solution.n_events`` counts the slow firings. ``block``: steps between checks for finished
    cells (a tuning knob). The Gaussian increments come from one xoshiro128++ stream per
    reaction and the threshold and selection uniforms from one more (`grn._solvers._xoshiro`).
    """

    dt: float
    fast: tuple[str, ...] | None = None
    min_firings: float = 10.0
    min_count: float = 100.0
    max_steps: int = 10_000_000
    block: int = 16
    stochastic = True

    def __check_init__(self):
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"Hybrid(dt=...) must be a positive finite number, got {self.dt!r}")
        for name in ("min_firings", "min_count"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(
                    f"Hybrid({name}=...) must be a non-negative finite number, got {value!r}"
                )
        for name in ("max_steps", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Hybrid({name}=...) must be a positive integer, got {value!r}")
        if self.fast is not None and not (
            isinstance(self.fast, tuple) and all(isinstance(f, str) for f in self.fast)
        ):
            raise ValueError(
                f"Hybrid(fast=...) must be None (automatic) or a tuple of reaction names, "
                f"got {self.fast!r}"
            )

    def check(self, network) -> None:
        """Every name in ``fast`` names a reaction (time events are restart points, state
        events are checked after every step)."""
        if self.fast is None:
            return
        known = {r.name for r in network.reactions} | {r.equation for r in network.reactions}
        for name in self.fast:
            if name not in known:
                names = [r.name or r.equation for r in network.reactions]
                raise ValueError(
                    f"Hybrid(fast=...): unknown reaction {name!r}; the network's reactions are "
                    f"{names}"
                )

    def _fixed(self, network):
        """The user's partition as a boolean mask, or None when automatic."""
        if self.fast is None:
            return None
        return np.array([r.name in self.fast or r.equation in self.fast for r in network.reactions])

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        program = self.program(network, ts, schedule_times, schedule_table)
        return run_program(program, key, params, x0)

    def program(self, network, ts, schedule_times, schedule_table) -> CellProgram:
        dtype = ts.dtype
        nu = jnp.asarray(network.stoichiometry, dtype)
        # Species each reaction consumes or changes: the counts the partition rule checks.
        touched = (network.reactant_matrix > 0) | (network.stoichiometry != 0)
        fixed = self._fixed(network)
        dt = jnp.asarray(self.dt, dtype)
        fate = network.growth is not None or network.death is not None

        def split(a, xp):
            """``(a_fast, nu_fast, a_slow, nu_slow)``: a given partition gathers its reactions
            (no normals drawn for slow ones); the automatic one masks."""
            if fixed is not None:
                fi, si = np.flatnonzero(fixed), np.flatnonzero(~fixed)
                return a[fi], nu[fi], a[si], nu[si]
            fewest = jnp.min(jnp.where(touched, xp[None, :], jnp.inf), axis=1)
            fast = (a * dt >= self.min_firings) & (fewest >= self.min_count)
            return jnp.where(fast, a, 0.0), nu, jnp.where(fast, 0.0, a), nu

        def cell(core):
            def step(s, _):
                active = core.unfinished(s) & (s["n"] < self.max_steps)
                at = core.begin(s)
                xp = jnp.maximum(at.x, 0.0)
                a = network.propensities(xp, at.p, at.u)
                invalid = ~jnp.isfinite(jnp.sum(a)) | any_true(a < 0)
                a = jnp.where(invalid, 0.0, a)  # the cell stops; keeps the step's arithmetic finite
                a_fast, nu_fast, a_slow, nu_slow = split(a, xp)
                a0s = weight_sum(a_slow) if a_slow.shape[0] else jnp.zeros((), dtype)
                # The slow clock reaches its threshold after (T - I) / a0s.
                to_jump = jnp.where(
                    a0s > 0,
                    jnp.maximum(s["T"] - s["I"], 0.0) / jnp.where(a0s > 0, a0s, 1.0),
                    jnp.inf,
                )
                reach = core.reach(at, jnp.minimum(dt, to_jump))
                h = jnp.where(active, reach.dt, 0.0)
                jump = ~reach.restart & (to_jump <= dt)
                x_new, rng = at.x, s["rng"]
                if a_fast.shape[0]:  # fast part: one Euler-Maruyama step of the CLE over h
                    positive = a_fast > 0
                    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, a_fast, 1.0)), 0.0)
                    rng, z = _xoshiro.next_normal(rng, dtype)
                    x_new = x_new + (a_fast * h + root * z * jnp.sqrt(h)) @ nu_fast
                # Slow part: the jump that ends the step, and a new threshold.
                urng, r1 = _xoshiro.next_uniform(s["urng"], dtype)
                urng, r2 = _xoshiro.next_uniform(urng, dtype)
                if a_slow.shape[0]:
                    x_new = jnp.where(jump, x_new + nu_slow[select_reaction(a_slow, r2)], x_new)
                lw_new = s["lw"] + network.fate_rate(xp, at.p, at.u) * h if fate else s["lw"]
                x_new, _, updates, looped = core.fire_events(s, at, reach, x_new)
                code = core.code(s, active, invalid, False, looped, x_new)
                ok = active & (code == RESULTS.successful)
                moved, row = core.advance(s, reach, ok, x_new, updates)
                keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
                out = {
                    **s,
                    **moved,
                    "n": s["n"] + ok,
                    "jumps": s["jumps"] + (ok & jump),
                    "res": code,
                    "rng": jnp.where(ok & (h > 0), rng, s["rng"]),  # zero-length steps draw nothing
                    "urng": jnp.where(ok & jump, urng, s["urng"]),
                    "T": keep(jnp.where(jump, -jnp.log1p(-r1), s["T"]), s["T"]),
                    "I": keep(jnp.where(jump, 0.0, s["I"] + a0s * h), s["I"]),
                    "lw": keep(lw_new, s["lw"]),
                }
                return out, {"row": row, "ys": x_new, "lws": lw_new}

            def start(key, x0):
                state = core.initial_state(x0.astype(dtype))
                n_fast = nu.shape[0] if fixed is None else int(fixed.sum())
                state["rng"] = _xoshiro.seed(jax.random.fold_in(key, 0), (n_fast,))
                uniforms = _xoshiro.seed(jax.random.fold_in(key, 1))
                urng, r1 = _xoshiro.next_uniform(uniforms, dtype)
                state.update(urng=urng, T=-jnp.log1p(-r1), I=jnp.zeros((), dtype))
                state["jumps"] = jnp.zeros((), jnp.int32)
                return state

            return start, step, None

        def finish(state, result):
            return CellPath(state["ys"], state["lws"], state["jumps"], result)

        budget = lambda s: s["n"] < self.max_steps  # noqa: E731
        args = (network, ts, schedule_times, schedule_table, self.block, budget, finish, cell)
        return block_program(*args)
