"""Peer simulators for the benchmarks: GillesPy2's compiled C++ SSA (``SSACSolver``).

Models are described once, in a neutral :class:`ModelSpec`, and built from it for
both ``grn`` and GillesPy2, so both codes simulate the same reactions with the same
propensity formulas. GillesPy2 gets every propensity as a custom propensity string
(no mass-action shortcuts), which its C++ build turns into plain expressions.

GillesPy2 needs ``g++`` and ``scons`` to build its C++ solvers; ``scons`` comes from
pip, so :func:`ensure_scons_on_path` puts this interpreter's ``bin`` directory on
``PATH`` before anything is built.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# A grn propensity: (state dict, params dict, inputs) -> rate. ``None`` means
# ``grn.mass_action(rate_param)``.
GrnPropensity = Callable[[Any, Any, Any], Any] | None


@dataclass(frozen=True)
class ReactionSpec:
    name: str
    reactants: dict[str, int]
    products: dict[str, int]
    # Propensity as a GillesPy2 custom propensity string (C++-translatable Python).
    propensity: str
    # The same propensity for grn: a callable, or None for mass action at ``rate_param``.
    grn_propensity: GrnPropensity = None
    rate_param: str | None = None

    @property
    def rate_name(self) -> str:
        """The mass-action rate parameter of a reaction without a grn callable."""
        if self.rate_param is None:
            raise ValueError(f"reaction {self.name!r} has neither grn_propensity nor rate_param")
        return self.rate_param

    @property
    def equation(self) -> str:
        """grn reaction string, e.g. ``"m1 -> m1 + p1"`` or ``"-> U"``."""

        def side(d: dict[str, int]) -> str:
            return " + ".join(s if k == 1 else f"{k} {s}" for s, k in d.items())

        lhs, rhs = side(self.reactants), side(self.products)
        return f"{lhs} -> {rhs}".strip()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    species: list[str]
    params: dict[str, float]
    x0: dict[str, int]
    t_end: float
    reactions: list[ReactionSpec] = field(default_factory=list)


# --------------------------------------------------------------------------- GillesPy2


def ensure_scons_on_path() -> None:
    """Put the running interpreter's ``bin`` dir (where pip puts ``scons``) on PATH."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path


def gillespy2_version() -> str | None:
    try:
        import gillespy2
    except ImportError:
        return None
    return getattr(gillespy2, "__version__", "unknown")


def gillespy2_model(spec: ModelSpec, ts: np.ndarray):
    """Build a ``gillespy2.Model`` from ``spec`` with custom propensities everywhere."""
    import gillespy2

    model = gillespy2.Model(name=spec.name)
    model.add_species(
        [
            gillespy2.Species(name=s, initial_value=int(spec.x0.get(s, 0)), mode="discrete")
            for s in spec.species
        ]
    )
    model.add_parameter(
        [gillespy2.Parameter(name=k, expression=float(v)) for k, v in spec.params.items()]
    )
    model.add_reaction(
        [
            gillespy2.Reaction(
                name=r.name,
                reactants=dict(r.reactants),
                products=dict(r.products),
                propensity_function=r.propensity,
            )
            for r in spec.reactions
        ]
    )
    model.timespan(np.asarray(ts, dtype=np.float64))
    return model


class GillesPy2SSA:
    """GillesPy2 ``SSACSolver`` for one model: built (compiled) once, then run repeatedly.

    GillesPy2 builds its C++ with ``CXXFLAGS=-std=c++14`` and no optimisation flag (-O0).
    With ``cxxflags`` (e.g. ``("-O3",)``) the executable is rebuilt from the same generated
    sources with those flags and put in place of GillesPy2's own, so ``model.run`` runs the
    optimised build through GillesPy2's usual path (argument passing, output decoding).
    """

    def __init__(self, spec: ModelSpec, ts: np.ndarray, cxxflags: tuple[str, ...] = ()):
        ensure_scons_on_path()
        import gillespy2

        self.spec = spec
        self.cxxflags = tuple(cxxflags)
        self.model = gillespy2_model(spec, ts)
        t0 = time.perf_counter()
        # The constructor generates the C++ template and compiles the executable
        # (the first build ever in this user account also builds GillesPy2's object cache).
        self.solver = gillespy2.SSACSolver(model=self.model)
        if self.cxxflags:
            self._rebuild(self.cxxflags)
        self.compile_s = time.perf_counter() - t0

    def _rebuild(self, flags: tuple[str, ...]) -> None:
        """Recompile the SSA executable (same sources as GillesPy2's SConstruct) with flags."""
        import gillespy2

        engine = self.solver.build_engine
        exe = Path(engine.get_executable_path())
        cbase = Path(gillespy2.__file__).parent / "solvers" / "cpp" / "c_base"
        tdir = Path(engine.template_dir)
        sources = [
            cbase / "model.cpp",
            cbase / "arg_parser.cpp",
            cbase / "ssa_cpp_solver" / "SSASimulation.cpp",
            cbase / "ssa_cpp_solver" / "SSASolver.cpp",
            tdir / "template.cpp",
        ]
        includes = [cbase, tdir, cbase / "Sundials" / "include", cbase / "Tau"]
        tmp = exe.with_name(exe.name + ".opt")
        cmd = ["g++", "-std=c++14", *flags, *(f"-I{d}" for d in includes), *map(str, sources)]
        proc = subprocess.run([*cmd, "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"g++ {' '.join(flags)} rebuild failed:\n{proc.stderr}")
        os.replace(tmp, exe)

    def run(self, n_traj: int, seed: int) -> tuple[np.ndarray, float, float]:
        """Run ``n_traj`` trajectories.

        Returns (ys of shape (n_traj, n_times, n_species), wall s, CPU s). CPU s counts the
        C++ child process and this process (output decoding).

        The wall time covers ``model.run`` end to end: the C++ executable plus GillesPy2's
        decoding of its output into numpy arrays, i.e. what a user of the library waits for.
        """
        return timed_run(self.model, self.solver, self.spec.species, n_traj, seed)


def timed_run(model, solver, species, n_traj: int, seed: int, **run_kwargs):
    """``model.run(solver=solver, ...)`` timed; returns (ys, wall s, CPU s) as `GillesPy2SSA.run`.

    ``run_kwargs`` go to ``model.run`` (e.g. ``tau_tol`` for ``TauLeapingCSolver``).
    """
    ru0, c0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
    t0 = time.perf_counter()
    results = model.run(solver=solver, number_of_trajectories=n_traj, seed=seed, **run_kwargs)
    wall = time.perf_counter() - t0
    ru1, c1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
    cpu = (c1 - c0) + (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    trajs = list(results)  # gillespy2.Results is a list of Trajectory dicts
    ys = np.stack([np.stack([np.asarray(tr[s]) for s in species], axis=-1) for tr in trajs])
    return ys, wall, cpu


class GillesPy2TauLeap:
    """GillesPy2 ``TauLeapingCSolver`` for one model: built (compiled) once, then run repeatedly.

    GillesPy2's own build (SCons, ``-std=c++14``, no optimisation flag). Its step selection is
    Cao, Gillespie & Petzold (2006) with ``tau_tol`` as epsilon, a run-time argument, so one
    build serves every tolerance. Propensities are the same custom strings as `GillesPy2SSA`.
    """

    def __init__(self, spec: ModelSpec, ts: np.ndarray):
        ensure_scons_on_path()
        import gillespy2

        self.spec = spec
        self.model = gillespy2_model(spec, ts)
        t0 = time.perf_counter()
        self.solver = gillespy2.TauLeapingCSolver(model=self.model)
        self.compile_s = time.perf_counter() - t0

    def run(self, n_traj: int, seed: int, tau_tol: float = 0.03):
        """Run ``n_traj`` trajectories at ``tau_tol``; returns (ys, wall s, CPU s)."""
        return timed_run(self.model, self.solver, self.spec.species, n_traj, seed, tau_tol=tau_tol)


# ------------------------------------------------------------------- JAX peers (bench extra)


def spec_rate_functions(spec: ModelSpec) -> list[Callable[[Any], Any]]:
    """Each reaction's propensity as a function of a name -> count mapping: the spec's grn
    callable (parameters bound), or mass action ``k prod_s C(x_s, c_s)`` at ``rate_param``."""
    params = dict(spec.params)

    def mass_action(r: ReactionSpec):
        def rate(x):
            a = params[r.rate_name]
            for s, c in r.reactants.items():
                for i in range(c):  # falling factorial / c!: the binomial coefficient
                    a = a * (x[s] - i) / (i + 1)
            return a

        return rate

    return [
        (lambda x, f=r.grn_propensity: f(x, params, {}))
        if r.grn_propensity is not None
        else mass_action(r)
        for r in spec.reactions
    ]


def _stoichiometry(spec: ModelSpec) -> np.ndarray:
    """(reactions, species) net change per reaction, in ``spec.species`` order."""
    nu = np.zeros((len(spec.reactions), len(spec.species)), np.int64)
    for j, r in enumerate(spec.reactions):
        for side, sign in ((r.reactants, -1), (r.products, 1)):
            for s, c in side.items():
                nu[j, spec.species.index(s)] += sign * c
    return nu


def crn_jax_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("crn-jax")
    except Exception:
        return None


def stochastix_version() -> str | None:
    try:
        import stochastix

        return stochastix.__version__
    except ImportError:
        return None


def crn_jax_simulator(spec: ModelSpec, ts: np.ndarray):
    """crn-jax's batch SSA for ``spec`` on the uniform grid ``ts``: ``run(keys) -> ys``.

    crn-jax (``crn_jax.models._common.make_vmap_simulator``, the engine behind its
    ``sample_trajectories``): a jitted ``vmap`` over cells of a ``scan`` over output intervals, each
    a ``while_loop`` of direct-method steps (two ``jax.random`` draws per event, reaction by
    ``jax.random.choice``), float32 counts; propensities are the spec's functions, stoichiometry
    through its ``make_apply_reaction``. ``ys``: (cells, len(ts), species), ``ts[0]`` is x0.
    """
    import jax.numpy as jnp
    from crn_jax.models._common import make_apply_reaction, make_vmap_simulator

    dts = np.diff(ts)
    if not np.allclose(dts, dts[0]) or ts[0] != 0:
        raise ValueError("crn-jax steps a uniform grid from t = 0")
    fns = spec_rate_functions(spec)
    names = list(spec.species)

    def propensities(state, _u):
        x = {s: state.x[i] for i, s in enumerate(names)}
        return jnp.stack([jnp.asarray(f(x), jnp.float32) for f in fns])

    apply = make_apply_reaction(tuple(map(tuple, _stoichiometry(spec).tolist())))
    sim = make_vmap_simulator(len(ts) - 1, propensities, apply)
    x0 = jnp.asarray([spec.x0.get(s, 0) for s in names], jnp.float32)

    def run(keys):
        x0s = jnp.broadcast_to(x0, (keys.shape[0], x0.shape[0]))
        xs = sim(keys, x0s, float(dts[0])).x
        return jnp.concatenate([x0s[:, None, :], xs], axis=1)

    return run


def stochastix_simulator(spec: ModelSpec):
    """stochastix's exact SSA for ``spec``: ``run(keys) -> final counts`` (cells, 1, species).

    ``stochastix.faststochsimsolve`` (its ``while_loop`` path; ``stochsimsolve`` records every
    event up to ``max_steps``) with ``DirectMethod``, ``jax.vmap``-ed over cells and jitted. It
    returns the initial and final states only, so only the state at ``t_end`` is compared. Each
    reaction's kinetics is a small `AbstractKinetics` around the spec's propensity function (the
    same formulas as every other code).
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import stochastix as stx
    from stochastix.kinetics import AbstractKinetics

    order = tuple(sorted(spec.species))  # stochastix orders its species by name

    class SpecKinetics(AbstractKinetics):
        fn: Callable = eqx.field(static=True)
        _requires_species: tuple[str, ...] = eqx.field(static=True)

        def propensity_fn(self, x, reactants, t=None, volume=1.0):
            return self.fn({s: x[i] for i, s in enumerate(order)})

        def ode_rate_fn(self, x, reactants, t=None, volume=1.0):
            return self.propensity_fn(x, reactants, t, volume)

    net = stx.ReactionNetwork(
        [
            stx.Reaction(r.equation, SpecKinetics(fn=f, _requires_species=order), r.name)
            for r, f in zip(spec.reactions, spec_rate_functions(spec))
        ]
    )
    if tuple(net.species) != order:
        raise RuntimeError(f"stochastix species {net.species} differ from {order}")
    x0 = jnp.asarray([spec.x0.get(s, 0) for s in order], jnp.float32)
    back = [order.index(s) for s in spec.species]

    def one(key):
        res = stx.faststochsimsolve(
            key,
            net,
            x0,
            T=spec.t_end,
            max_steps=10**8,
            solver=stx.DirectMethod(),
            save_propensities=False,
        )
        return res.x[-1][jnp.asarray(back)]

    batched = jax.jit(jax.vmap(one))
    return lambda keys: batched(keys)[:, None, :]
