"""`fit`: multi-start optimisation (optax, or optimistix least squares / quasi-Newton), early
stopping and exact resume."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx

import grn

from ._problem import Problem

TRACE_COUNT = {"step": 0}
"""How often the optimisation step was traced (tests use it to prove nothing recompiles)."""

_CHECKPOINT_VERSION = 2


@functools.cache
def default_optimizer(learning_rate: float = 0.05, max_norm: float = 10.0):
    """Adam (Kingma & Ba 2015) after clipping the gradient's global norm to ``max_norm``.

    Cached, so the same settings give the same object and a second fit does not recompile.
    """
    return optax.chain(optax.clip_by_global_norm(max_norm), optax.adam(learning_rate))


OPTIMISTIX = (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)
"""The optimistix solver kinds `fit` accepts beside optax transformations."""


def _to_unbounded(space, phi):
    """Unbounded coordinates ``z = logit((phi - lo) / (hi - lo))`` of ``phi`` inside the box."""
    lo, hi = space.bounds_phi()
    out = {}
    for n in space.free:
        u = (phi[n] - lo[n]) / (hi[n] - lo[n])
        u = jnp.clip(u, 1e-12, 1.0 - 1e-12)
        out[n] = jnp.log(u) - jnp.log1p(-u)
    return out


def _from_unbounded(space, z):
    """``phi = lo + (hi - lo) sigmoid(z)``: the inverse of `_to_unbounded`."""
    lo, hi = space.bounds_phi()
    return {n: lo[n] + (hi[n] - lo[n]) * jax.nn.sigmoid(z[n]) for n in space.free}


def _jvp_by_grad(loss_fn):
    """``loss_fn`` with a JVP rule computed from its reverse-mode gradient, so that
    optimistix's ``jax.linearize`` works through reverse-only adjoints (checkpointed ODE
    solves) at the cost of one backward pass, taken only where the loss is finite.

    A minimiser's trial point may be one where the simulation fails (the loss is infinite and
    the point is rejected): its backward pass through every step up to ``max_steps`` would
    be wasted, and cost many times the forward solve (Elowitz, BFGS's first trial points from
    log-uniform starts: 20 s a step). The forward solve is then taken once more inside the
    gradient where the loss is finite (one more simulation per evaluation)."""

    @jax.custom_jvp
    def f(z):
        return loss_fn(z)

    @f.defjvp
    def f_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        value = loss_fn(z)
        grad = jax.lax.cond(
            jnp.isfinite(value),
            lambda: jax.grad(loss_fn)(z),
            lambda: jax.tree.map(jnp.zeros_like, z),
        )
        slope = sum(jnp.sum(g * t) for g, t in zip(jax.tree.leaves(grad), jax.tree.leaves(dz)))
        return value, slope

    return f


def _forward_solver(problem: Problem) -> Problem:
    """``problem`` with a forward-mode diffrax adjoint (for Jacobians by ``jax.jacfwd``)."""
    import diffrax

    if hasattr(problem.solver, "adjoint"):
        return eqx.tree_at(lambda p: p.solver.adjoint, problem, diffrax.ForwardMode())
    return problem


class _Optimistix(eqx.Module):
    """The functions one optimistix solver iterates on, in unbounded coordinates ``z``."""

    solver: optx.AbstractLeastSquaresSolver | optx.AbstractMinimiser
    least_squares: bool = eqx.field(static=True)
    gradient: str = eqx.field(static=True)

    def fn(self, problem: Problem):
        """``fn(z, args) -> (value, loss)`` with ``value`` the residuals or the loss."""
        space = problem.space

        def loss(z):
            return problem.loss(_from_unbounded(space, z))

        if self.least_squares:

            def residual_fn(z, args):
                r, total = problem.residuals(_from_unbounded(space, z))
                return jnp.where(jnp.isfinite(total), r, 1e10), total

            return residual_fn
        smooth = loss if self.gradient == "forward" else _jvp_by_grad(loss)

        def scalar_fn(z, args):
            value = smooth(z)
            return jnp.where(jnp.isfinite(value), value, 1e300), value

        return scalar_fn

    @property
    def options(self) -> dict:
        return {"jac": "fwd"} if self.least_squares else {"autodiff_mode": "fwd"}


def _as_optimistix(optimizer, gradient: str) -> _Optimistix | None:
    if isinstance(optimizer, OPTIMISTIX):
        least = isinstance(optimizer, optx.AbstractLeastSquaresSolver)
        return _Optimistix(optimizer, least, gradient)
    return None


class _State(eqx.Module):
    phi: dict  # current optimiser coordinates, (starts,) leaves
    opt_state: optax.OptState
    best_phi: dict
    best_loss: jax.Array  # (starts,)
    stall: jax.Array  # steps since the last improvement
    done: jax.Array  # early-stopped starts
    failed: jax.Array  # starts whose step raised (a simulation failed inside a derivative)


GRADIENT_MODES = ("reverse", "forward")

FORWARD_MAX_FREE = 14
"""``gradient="auto"`` takes forward mode up to this many free parameters: on the seven PEtab
benchmark problems with the default `grn.Rodas5P`, a forward-mode gradient cost 0.67x a
reverse-mode one at 9 free parameters (Boehm) and 1.05-6.6x at 19-36 (the six others;
benchmarks/README.md, "PEtab: cost of one log-likelihood and its gradient"); the threshold
lies between the two."""


def resolve_gradient(problem: Problem, gradient: str) -> str:
    """``gradient`` (``"reverse"``, ``"forward"`` or ``"auto"``) as a mode: ``"auto"`` is forward
    mode for the CLE (memory independent of its many fixed steps) and for at most
    `FORWARD_MAX_FREE` free parameters (``n`` tangents cost less than a checkpointed adjoint's
    recomputation there), reverse mode otherwise."""
    if gradient == "auto":
        few = len(problem.space.free) <= FORWARD_MAX_FREE
        return "forward" if few or isinstance(problem.solver, grn.CLE) else "reverse"
    if gradient not in GRADIENT_MODES:
        raise ValueError(f"gradient must be one of {GRADIENT_MODES + ('auto',)}, got {gradient!r}")
    return gradient


def value_and_grad(loss_fn: Callable, mode: str = "reverse") -> Callable:
    """``phi -> (loss, grad)`` by reverse mode (`jax.value_and_grad`: one backward pass, memory
    growing with the solver's steps) or forward mode (`jax.jacfwd`: one tangent per free
    parameter, memory independent of the steps: long fixed-step CLE paths with a few
    parameters)."""
    if mode == "reverse":
        return jax.value_and_grad(loss_fn)
    if mode == "forward":

        def forward(phi):
            grad, loss = jax.jacfwd(lambda p: (loss_fn(p),) * 2, has_aux=True)(phi)
            return loss, grad

        return forward
    raise ValueError(f"gradient mode must be one of {GRADIENT_MODES}, got {mode!r}")


@eqx.filter_jit
def _step(problem: Problem, optimizer, state: _State, fixed, patience, rtol, mode="reverse"):
    """One optimisation step of every start at once: the whole step is one compiled program."""
    TRACE_COUNT["step"] += 1

    def one(phi, opt_state, fixed_):
        loss, grad = value_and_grad(problem.loss, mode)(phi)
        grad = {n: jnp.where(fixed_[n], 0.0, g) for n, g in grad.items()}
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in grad.values()])
        )
        grad = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grad)
        updates, new_opt = optimizer.update(grad, opt_state, phi)
        # apply_updates returns phi's structure (a dict); optax annotates it as any pytree.
        new_phi = problem.space.project(optax.apply_updates(phi, updates))  # pyright: ignore[reportArgumentType]
        return loss, finite, new_phi, new_opt

    def one_unless_done(args):
        phi, opt_state, fixed_, done, best = args
        return jax.lax.cond(
            done,
            lambda: (best, jnp.array(False), phi, opt_state),
            lambda: one(phi, opt_state, fixed_),
        )

    # Starts in sequence (lax.map), not vmapped: a vmapped step costs every start as much as
    # the start whose simulation takes the most solver steps, and a done start costs nothing.
    loss, finite, new_phi, new_opt = jax.lax.map(
        one_unless_done, (state.phi, state.opt_state, fixed, state.done, state.best_loss)
    )
    unusable = _unusable(loss, state)
    keep = finite & ~state.done
    # A step that landed where the loss is not finite (the simulation fails there) is halved
    # back towards the best point so far, the optimiser's state kept; staying put would
    # evaluate the same failing point at every later step.
    retreat = ~finite & jnp.isfinite(state.best_loss) & ~state.done

    def choose(new, old):
        mask = keep.reshape(keep.shape + (1,) * (new.ndim - 1))
        return jnp.where(mask, new, old)

    def halved_back(phi, best):
        mask = retreat.reshape(retreat.shape + (1,) * (phi.ndim - 1))
        return jnp.where(mask, 0.5 * (phi + best), phi)

    improved = loss < state.best_loss - rtol * jnp.abs(state.best_loss)
    better = loss < state.best_loss
    best_phi = jax.tree.map(
        lambda cur, best: jnp.where(better, cur, best), state.phi, state.best_phi
    )
    stall = jnp.where(improved, 0, state.stall + 1)
    new_state = _State(
        phi=jax.tree.map(halved_back, jax.tree.map(choose, new_phi, state.phi), state.best_phi),
        opt_state=jax.tree.map(choose, new_opt, state.opt_state),
        best_phi=best_phi,
        best_loss=jnp.where(better, loss, state.best_loss),
        stall=stall,
        done=state.done | unusable | (stall >= patience),
        failed=state.failed | unusable,
    )
    return new_state, loss


@eqx.filter_jit
def _optx_step(problem: Problem, opt: _Optimistix, state: _State, static, patience, rtol):
    """One optimistix step of every start (coordinates ``state.phi`` are unbounded ``z``)."""
    TRACE_COUNT["step"] += 1
    fn = opt.fn(problem)
    tags = frozenset()

    def one(z, dynamic):
        st = eqx.combine(dynamic, static)
        new_z, new_st, loss = opt.solver.step(fn, z, None, opt.options, st, tags)
        stop, _ = opt.solver.terminate(fn, new_z, None, opt.options, new_st, tags)
        return new_z, _strong(eqx.filter(new_st, eqx.is_array)), loss, stop

    def one_unless_done(args):
        z, dynamic, done, best = args
        return jax.lax.cond(
            done, lambda: (z, dynamic, best, jnp.array(True)), lambda: one(z, dynamic)
        )

    # Starts in sequence (lax.map), not vmapped: each start's solver iterates on its own, and
    # a start that is done (or failed) costs nothing.
    new_z, new_opt, loss, stop = jax.lax.map(
        one_unless_done, (state.phi, state.opt_state, state.done, state.best_loss)
    )
    finite_z = jnp.all(jnp.stack([jnp.isfinite(v) for v in jax.tree.leaves(new_z)]), axis=0)
    stop = stop | ~finite_z  # a start whose step came out non-finite stops where it was
    keep = ~state.done & finite_z
    finite = jnp.isfinite(loss) & finite_z
    unusable = _unusable(loss, state)

    def choose(new, old):
        mask = keep.reshape(keep.shape + (1,) * (new.ndim - 1))
        return jnp.where(mask, new, old)

    better = finite & (loss < state.best_loss) & keep
    improved = loss < state.best_loss - rtol * jnp.abs(state.best_loss)
    stall = jnp.where(improved, 0, state.stall + 1)
    new_state = _State(
        phi=jax.tree.map(choose, new_z, state.phi),
        opt_state=jax.tree.map(choose, new_opt, state.opt_state),
        best_phi=jax.tree.map(lambda c, b: jnp.where(better, c, b), new_z, state.best_phi),
        best_loss=jnp.where(better, loss, state.best_loss),
        stall=stall,
        done=state.done | stop | unusable | (stall >= patience),
        failed=state.failed | unusable,
    )
    return new_state, loss


@eqx.filter_jit
def _losses(problem: Problem, phi):
    return jax.lax.map(problem.loss, phi)  # in sequence: a failing start costs only itself


def _unusable(loss, state: _State):
    """Starts with no finite loss yet, not even at their start point (the simulation fails
    there): nothing to descend from (the derivative of an infinite loss is no direction), so
    they fail at once instead of being stepped, each step as costly as a failing simulation."""
    return ~jnp.isfinite(loss) & ~jnp.isfinite(state.best_loss) & ~state.done


def _strong(tree):
    """Arrays without weak types, so that a state restored from a checkpoint (whose arrays
    are strongly typed) hits the same compiled step."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), tree)


def _optx_init(problem: Problem, opt: _Optimistix, z0):
    """The solver state of every start, split into arrays and the (shared) static rest."""
    dynamic, static = eqx.partition(_optx_init_jit(problem, opt, z0), eqx.is_array)
    return _strong(dynamic), static


@eqx.filter_jit
def _optx_init_jit(problem: Problem, opt: _Optimistix, z0):
    fn = opt.fn(problem)
    one = jax.tree.map(lambda v: v[0], z0)
    f_struct, aux_struct = eqx.filter_eval_shape(fn, one, None)
    return eqx.filter_vmap(
        lambda z: opt.solver.init(fn, z, None, opt.options, f_struct, aux_struct, frozenset())
    )(z0)


@dataclasses.dataclass
class FitResult:
    """The outcome of `fit`.

    ``params``: natural values of all fitted and frozen parameters of the best start; ``loss``
    its objective; ``best_start`` its index. Per start: ``start_params`` (name -> (starts,)),
    ``start_loss``, ``converged`` (early-stopped), ``phi`` (optimiser coordinates). A start
    whose loss stayed non-finite, or whose step raised (``failed``: a simulation failed inside
    a derivative), has status ``failed`` in `to_json`. ``history`` (steps, starts) is the loss
    before each step (infinite for failed starts; a stopped start, skipped, repeats its best);
    ``n_steps`` steps were taken.
    """

    params: dict[str, float]
    loss: float
    best_start: int
    start_params: dict[str, np.ndarray]
    start_loss: np.ndarray
    converged: np.ndarray
    phi: dict[str, np.ndarray]
    history: np.ndarray
    n_steps: int
    failed: np.ndarray | None = None

    def status(self, i: int) -> str:
        """``"failed"`` (its step raised, or its loss stayed non-finite) or ``"fitted"``."""
        raised = self.failed is not None and bool(self.failed[i])
        return "failed" if raised or not np.isfinite(self.start_loss[i]) else "fitted"

    @property
    def best_phi(self) -> dict[str, float]:
        """Optimiser coordinates of the best start."""
        return {n: float(v[self.best_start]) for n, v in self.phi.items()}

    def to_json(self) -> dict:
        """A JSON-ready summary."""
        return {
            "params": self.params,
            "loss": self.loss,
            "best_start": self.best_start,
            "n_steps": self.n_steps,
            "starts": [
                {
                    "params": {n: float(v[i]) for n, v in self.start_params.items()},
                    "loss": float(self.start_loss[i]),
                    "converged": bool(self.converged[i]),
                    "status": self.status(i),
                }
                for i in range(self.start_loss.shape[0])
            ],
        }


def _check_starts(problem: Problem, starts, key, n_starts: int) -> dict:
    space = problem.space
    if starts is None:
        if key is None:
            raise ValueError("fit needs key= (a jax.random.key) to draw starts, or starts=")
        return space.starts(key, n_starts)
    if not isinstance(starts, Mapping):
        raise TypeError("starts must be a mapping of free parameter name -> values")
    for name in starts:
        if name not in space.free:
            raise KeyError(f"starts names {name!r}, not a free parameter ({list(space.free)})")
    phi = {}
    for i, name in enumerate(space.free):
        if name not in starts:
            raise KeyError(f"starts lacks free parameter {name!r}")
        values = np.atleast_1d(np.asarray(starts[name], np.float64))
        lo, hi = space.lower[i], space.upper[i]
        if (
            values.ndim != 1
            or np.any(~np.isfinite(values))
            or np.any((values < lo) | (values > hi))
        ):
            raise ValueError(f"starts of {name!r} must be finite and within [{lo}, {hi}]")
        phi[name] = values
    sizes = {v.shape[0] for v in phi.values()}
    if len(sizes) != 1:
        raise ValueError(f"starts have different lengths {sorted(sizes)}")
    return space.to_phi(phi)


def fit(
    problem: Problem,
    *,
    key=None,
    n_starts: int = 1,
    starts: Mapping | None = None,
    steps: int = 1000,
    optimizer: optax.GradientTransformation
    | optx.AbstractLeastSquaresSolver
    | optx.AbstractMinimiser
    | None = None,
    patience: int | None = None,
    rtol: float = 1e-4,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    callback: Callable[[int, np.ndarray], None] | None = None,
    fixed: Mapping | None = None,
    gradient: str = "reverse",
) -> FitResult:
    """Minimise ``problem.loss`` from several starts at once.

    - Starts: ``starts`` (name -> natural values, one per start) or ``n_starts`` drawn by
      `ParameterSpace.starts` from ``key`` (the ``init`` values first, then log-uniform draws in
      the bounds). All starts move together in one jitted step (`_step`), which takes them
      one after another (``lax.map``: each start costs its own simulation, not the slowest
      one's; a start that is done costs nothing); new data, values or starts of the same
      shapes never recompile.
    - ``optimizer``: any `optax.GradientTransformation` (default `default_optimizer()`: Adam with
      global-norm clipping; steps are projected back into the bounds), or an optimistix
      least-squares solver (``optx.LevenbergMarquardt``, ``optx.GaussNewton``, ...: on
      ``problem.residuals``, Gaussian noise) or minimiser (``optx.BFGS``, ...: on the loss),
      stepped one iteration per step until its own termination test (starts run in sequence
      within the compiled step). Optimistix solvers work in unbounded coordinates
      ``z = logit((phi - lo) / (hi - lo))`` (bounds by reparametrisation, on the
      `ParameterSpace` scale); least squares take the Jacobian by
      forward mode (the solver's diffrax adjoint becomes ``ForwardMode``), BFGS its gradient
      by ``gradient`` mode.
    - Early stopping: a start stops once its loss has not improved by ``rtol`` (relative) for
      ``patience`` steps (None: never); the loop ends when all have stopped. Non-finite losses or
      gradients skip the update of that start; with an optax optimizer a start whose step
      landed where the loss is not finite goes halfway back towards its best point (again at
      each such step).
    - Failures: a start whose step raises (a reverse-mode derivative through an implicit ODE
      method's step rejected at a non-finite state; forward mode is guarded against it, see
      `grn._solvers._ode_events.DefinedField`) is found by `_guarded_step`, marked failed and
      stopped with its state before that step; the others go on. A start whose loss is not
      finite at its start point (the simulation fails there) fails before the first step,
      found by one loss evaluation of every start (`_fail`), and is never stepped.
      ``loss`` is infinite when no start has a finite loss.
    - ``checkpoint``: a file written every ``checkpoint_every`` steps (atomically), on Ctrl-C
      and at the end, with the whole optimiser state and history; ``resume=True`` continues from
      it (if present) and reaches exactly the result of an uninterrupted run.
    - ``callback(step, losses)`` is called after each step (host side).
    - ``fixed``: name -> bool per start; those coordinates are held at their start values
      (used by `profile_likelihood`).
    - ``gradient``: ``"reverse"`` (default), ``"forward"`` mode (`value_and_grad`) or
      ``"auto"`` (`resolve_gradient`); forward mode suits CLE fits of a few parameters over many
      steps (docs/gradients.md) and ODE fits of up to a few dozen parameters.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"fit expects a fitting.Problem, got {type(problem).__name__}")
    gradient = resolve_gradient(problem, gradient)
    if not problem.pathwise:
        raise ValueError(
            f"{type(problem.solver).__name__} paths are piecewise constant in the parameters, so "
            f"jax.grad of its loss is not a gradient: fit with grn.LNA(), grn.ODE() or grn.CLE()"
        )
    for label, value in (("steps", steps), ("checkpoint_every", checkpoint_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    optimizer = default_optimizer() if optimizer is None else optimizer
    opt = _as_optimistix(optimizer, gradient)
    if opt is None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation or an optimistix least-squares "
            f"solver or minimiser, got {type(optimizer).__name__}"
        )
    phi0 = _check_starts(problem, starts, key, n_starts)
    if gradient == "forward" or (opt is not None and opt.least_squares):
        problem = _forward_solver(problem)  # least squares: Jacobians by jax.jacfwd
    n = next(iter(phi0.values())).shape[0]
    if opt is not None:
        if fixed:
            raise ValueError("fixed= (held coordinates) needs an optax optimizer")
        phi0 = _to_unbounded(problem.space, phi0)
        opt_state, static = _optx_init(problem, opt, phi0)
    else:
        assert isinstance(optimizer, optax.GradientTransformation)  # checked above
        opt_state = jax.vmap(optimizer.init)(phi0)
    fixed = {
        name: jnp.broadcast_to(jnp.asarray((fixed or {}).get(name, False), bool), (n,))
        for name in problem.space.free
    }
    dtype = problem.ts.dtype
    state = _State(
        phi=phi0,
        opt_state=opt_state,
        best_phi=phi0,
        best_loss=jnp.full((n,), jnp.inf, dtype),
        stall=jnp.zeros((n,), jnp.int32),
        done=jnp.zeros((n,), bool),
        failed=jnp.zeros((n,), bool),
    )
    history: list[np.ndarray] = []
    first = 0
    path = None if checkpoint is None else Path(checkpoint)
    if resume:
        if path is None:
            raise ValueError("resume=True needs checkpoint=")
        if path.exists():
            state, history, first = _load(path, state, problem.space.free, steps)
    patience_ = jnp.asarray(np.iinfo(np.int32).max if patience is None else patience, jnp.int32)
    rtol_ = jnp.asarray(rtol, dtype)

    def step_fn(state):
        if opt is None:
            return _step(problem, optimizer, state, fixed, patience_, rtol_, gradient)
        return _optx_step(problem, opt, state, static, patience_, rtol_)

    def unusable_starts(state):
        phi = state.phi if opt is None else _from_unbounded(problem.space, state.phi)
        return np.asarray(_unusable(_losses(problem, phi), state))

    if not history:  # a start whose simulation fails fails by its loss, not by a first step
        state = _fail(state, unusable_starts(state))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=first, desc="fit", unit="step")
    try:
        for step in range(first, steps):
            if bool(np.all(np.asarray(state.done))):
                break
            state, loss = _guarded_step(step_fn, state)
            history.append(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(best=f"{np.nanmin(np.asarray(state.best_loss)):.6g}")
            if path is not None and (step + 1) % checkpoint_every == 0:
                _save(path, state, history, step + 1, problem.space.free)
            if callback is not None:
                callback(step, loss)
    except KeyboardInterrupt:
        if path is not None:  # the state after the last completed step: resume is still exact
            _save(path, state, history, len(history), problem.space.free)
        raise
    finally:
        if bar is not None:
            bar.close()
    if path is not None:
        _save(path, state, history, len(history), problem.space.free)
    if opt is not None:  # report ParameterSpace coordinates
        state = eqx.tree_at(
            lambda s: s.best_phi, state, _from_unbounded(problem.space, state.best_phi)
        )
    return _result(problem, state, history)


def _guarded_step(step_fn, state: _State):
    """``step_fn(state)`` -> (state, losses), robust to starts whose step raises.

    An implicit ODE method's stage solve at extreme parameters may try a non-finite state (a
    negative amount under a fractional power) and reject the step; a reverse-mode derivative
    still carries that NaN into lineax's checked linear solves and raises, even where the
    simulation gives a finite loss (forward mode does not: its tangents are zero where the
    vector field is not finite). A step that
    raises is retried on halves of the starts (the others replaced by a copy of one start of
    the half, so shapes and the compiled program stay the same) to find the starts that raise;
    those are marked failed and done and keep their state from before the step. Starts already
    failed run as a copy of a sound start (done: skipped where starts run in sequence) and keep
    their state.
    """
    failed = np.array(state.failed)
    while True:
        sound = np.flatnonzero(~failed)
        if sound.size == 0:
            return state, np.full(failed.shape, np.inf)
        try:
            new, loss = step_fn(_take(state, _fill(failed.size, sound)) if failed.any() else state)
        except eqx.EquinoxRuntimeError:
            raising = _raising(step_fn, state, [int(i) for i in sound])
            if not raising:  # not any one start's failure
                raise
            failed[raising] = True
            continue
        loss = np.where(failed, np.inf, np.asarray(loss))
        mask = jnp.asarray(failed)
        new = jax.tree.map(
            lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), b, a),
            new,
            state,
        )
        return _fail(new, failed), loss


def _fail(state: _State, starts: np.ndarray) -> _State:
    """``state`` with ``starts`` (host booleans) failed and done.

    Before the first step, the starts whose simulation fails at their start point are found
    by their loss alone, each in turn, instead of a step taking the derivative of each such
    failure (on Fujita 4 of 20 starts fail after 100,000 solver steps, 5.9 s each for the loss
    alone, 19 tangents more for a forward-mode step).
    """
    mask = jnp.asarray(starts)
    return eqx.tree_at(
        lambda s: (s.done, s.failed), state, (state.done | mask, state.failed | mask)
    )


def _fill(n: int, keep) -> np.ndarray:
    """Indices taking the starts ``keep`` from themselves and every other from ``keep[0]``."""
    index = np.full(n, keep[0])
    index[keep] = keep
    return index


def _take(state: _State, index: np.ndarray) -> _State:
    """The starts ``index``; a start taken in place of another (a copy) is done."""
    taken = jax.tree.map(lambda v: v[index], state)
    copy = jnp.asarray(index != np.arange(index.size))
    return eqx.tree_at(lambda s: s.done, taken, taken.done | copy)


def _raising(step_fn, state: _State, starts: list[int]) -> list[int]:
    """Those of ``starts`` (whose step together raises) whose own step raises: bisection."""
    if len(starts) == 1:
        return starts
    out = []
    for half in (starts[: len(starts) // 2], starts[len(starts) // 2 :]):
        try:
            step_fn(_take(state, _fill(state.done.shape[0], half)))
        except eqx.EquinoxRuntimeError:
            out += _raising(step_fn, state, half)
    return out


def _result(problem: Problem, state: _State, history) -> FitResult:
    best_loss = np.asarray(state.best_loss, np.float64)
    best_phi = {n: np.asarray(v, np.float64) for n, v in state.best_phi.items()}
    start_values = problem.space.to_values({n: jnp.asarray(v) for n, v in state.best_phi.items()})
    start_params = {
        n: np.broadcast_to(np.asarray(v, np.float64), best_loss.shape).copy()
        for n, v in start_values.items()
    }
    best = int(np.argmin(np.where(np.isfinite(best_loss), best_loss, np.inf)))
    return FitResult(
        params={n: float(v[best]) for n, v in start_params.items()},
        loss=float(best_loss[best]),
        best_start=best,
        start_params=start_params,
        start_loss=best_loss,
        converged=np.asarray(state.done),
        phi=best_phi,
        history=np.array(history).reshape(len(history), best_loss.shape[0]),
        n_steps=len(history),
        failed=np.asarray(state.failed),
    )


def _save(path: Path, state: _State, history, step: int, names) -> None:
    leaves = jax.tree.leaves(state)
    arrays = {f"leaf_{i}": np.asarray(v) for i, v in enumerate(leaves)}
    meta = {"version": _CHECKPOINT_VERSION, "step": step, "free": list(names)}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as fh:
        np.savez(
            fh,
            history=np.array(history).reshape(len(history), -1) if history else np.zeros((0, 0)),
            meta=np.array(json.dumps(meta)),
            **arrays,  # pyright: ignore[reportArgumentType]  (keys are leaf_<i>, never allow_pickle)
        )
    os.replace(tmp, path)


def _load(path: Path, like: _State, names, steps: int):
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("version") != _CHECKPOINT_VERSION or meta.get("free") != list(names):
            raise ValueError(
                f"checkpoint {path} belongs to another fit (free parameters {meta.get('free')}, "
                f"this fit: {list(names)})"
            )
        leaves, treedef = jax.tree.flatten(like)
        loaded = []
        for i, leaf in enumerate(leaves):
            value = data[f"leaf_{i}"]
            if value.shape != np.shape(leaf):
                raise ValueError(
                    f"checkpoint {path} does not match this fit (state entry {i} has shape "
                    f"{value.shape}, expected {np.shape(leaf)}: another number of starts?)"
                )
            loaded.append(jnp.asarray(value, dtype=jnp.asarray(leaf).dtype))
        history = list(data["history"])
    step = int(meta["step"])
    if step > steps:
        raise ValueError(f"checkpoint {path} is at step {step}, beyond steps={steps}")
    return jax.tree.unflatten(treedef, loaded), history, step
