"""Reaction networks: species, reactions with rate laws, default parameters, inputs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._distributions import Distribution, check_cell_params, equilibrate_hours
from ._rate_laws import AbstractRateLaw, _as_law

STACK_CHUNK = 8
"""Rate laws are stacked into an array this many at a time: XLA's CPU backend fuses a
concatenate of a few operands with the operands' computations, but not one of many, where each
law becomes a kernel of its own (one per reaction and step); see benchmarks/ssa_profile.md."""

_TERM = re.compile(r"^\s*(?:(\d+)\s*\*?\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")
_EMPTY = {"", "0", "∅", "None", "none"}


def _parse_side(side: str, equation: str) -> tuple[tuple[str, int], ...]:
    side = side.strip()
    if side in _EMPTY:
        return ()
    counts: dict[str, int] = {}
    for term in side.split("+"):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(
                f"malformed term {term.strip()!r} in reaction {equation!r}: write terms as "
                f"'SPECIES' or 'N SPECIES' joined by '+', e.g. '2 P -> P2'"
            )
        coeff = int(match.group(1)) if match.group(1) is not None else 1
        if coeff == 0:
            raise ValueError(f"zero coefficient for {match.group(2)!r} in reaction {equation!r}")
        counts[match.group(2)] = counts.get(match.group(2), 0) + coeff
    return tuple(counts.items())


class Reaction(eqx.Module):
    """One reaction: ``Reaction("2 P -> P2", grn.mass_action("k1"))``.

    ``equation`` lists reactants and products as ``N SPECIES`` joined by ``+``, either side may be
    empty (``"-> M"``, ``"M ->"``). ``rate`` is a grn rate law, or a plain callable
    ``(x, p, u) -> propensity`` over name -> value mappings.
    """

    equation: str = eqx.field(static=True)
    rate: AbstractRateLaw = eqx.field(static=True)
    name: str | None = eqx.field(static=True)
    reactants: tuple[tuple[str, int], ...] = eqx.field(static=True)
    products: tuple[tuple[str, int], ...] = eqx.field(static=True)

    def __init__(self, equation: str, rate, name: str | None = None):
        if not isinstance(equation, str):
            raise TypeError(
                f"a reaction equation must be a string like 'A + B -> C', got {equation!r}"
            )
        if "<->" in equation or "<=>" in equation:
            raise ValueError(
                f"reversible reaction {equation!r}: write the forward and backward reactions apart"
            )
        if equation.count("->") != 1:
            raise ValueError(f"malformed reaction {equation!r}: expected exactly one '->'")
        left, right = equation.split("->")
        self.equation = equation.strip()
        self.reactants = _parse_side(left, equation)
        self.products = _parse_side(right, equation)
        self.rate = _as_law(rate)
        self.name = name

    @property
    def label(self) -> str:
        return f"{self.name!r} ({self.equation})" if self.name else repr(self.equation)


class Event(eqx.Module):
    """A discrete change of species counts or parameter values during a simulation.

    ``Event(at=25.0, assign={"X": 50})`` fires once when time reaches 25 (exactly, also between
    output times); ``Event(when=lambda t, x, p: x["P2"] > 30, assign={"P": 100, "P2": 0})`` fires
    each time its trigger turns from false to true, checked after every reaction (exact SSA) or
    step (approximate solvers). ``Event(after=5.0, when=...)`` is the trigger ``time > 5 and
    when``: time 5 is a restart point, so it fires exactly at 5 if ``when`` holds then (a trigger
    that reads ``t`` itself is only seen after the next reaction). Assigned values are numbers,
    parameter names or callables ``(x, p, u) -> value``. Targets are species or parameters.

    Events at one instant (SBML semantics, no delays; the same in every solver): the time events
    at that time fire first, in definition order, then the state events whose triggers turned
    true, in definition order; an assignment that turns another trigger true fires that event at
    the same instant, round after round until no trigger turns true (at most
    `grn._solvers._events.CHAIN_CAP` rounds, else the cell gets ``RESULTS.event_loop``). An event
    at a schedule breakpoint sees the new input levels. The SBML attributes:

    - ``use_values_from_trigger_time`` (default True): assignments use the values from before
      the instant's round of events (the trigger time); False: from just before this event runs,
      after the events before it in the round.
    - ``persistent`` (default True): fire even if an earlier event of the round made the
      trigger false; False: cancelled then.
    - ``initial_value`` (default True): the trigger counts as true before the start, so one that
      holds at ``ts[0]`` does not fire (nor does a time event at ``ts[0]``); False: it fires at
      ``ts[0]``, before the first output is recorded.
    """

    assign: tuple[tuple[str, AbstractRateLaw], ...] = eqx.field(static=True)
    at: float | None = eqx.field(static=True)
    when: Callable | None = eqx.field(static=True)
    name: str | None = eqx.field(static=True)
    after: float | None = eqx.field(static=True)
    persistent: bool = eqx.field(static=True)
    initial_value: bool = eqx.field(static=True)
    use_values_from_trigger_time: bool = eqx.field(static=True)

    def __init__(
        self,
        assign: Mapping,
        at: float | None = None,
        when: Callable | None = None,
        name: str | None = None,
        after: float | None = None,
        persistent: bool = True,
        initial_value: bool = True,
        use_values_from_trigger_time: bool = True,
    ):
        if (at is None) == (when is None):
            raise ValueError(
                f"event {name or ''}: give exactly one of at= (a time) or when= "
                f"(a trigger callable (t, x, p) -> bool)"
            )
        if at is not None:
            at = float(at)
            if not np.isfinite(at):
                raise ValueError(f"event {name or ''}: time at={at} must be finite")
        if when is not None and not callable(when):
            raise TypeError(f"event {name or ''}: when= must be a callable (t, x, p) -> bool")
        if not isinstance(assign, Mapping) or not assign:
            raise ValueError(f"event {name or ''}: assign= must be a non-empty mapping")
        if after is not None:
            if when is None:
                raise ValueError(f"event {name or ''}: after= needs a state trigger when=")
            after = float(after)
            if not np.isfinite(after):
                raise ValueError(f"event {name or ''}: time after={after} must be finite")
        flags = {
            "persistent": persistent,
            "initial_value": initial_value,
            "use_values_from_trigger_time": use_values_from_trigger_time,
        }
        for flag, value in flags.items():
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"event {name or ''}: {flag}= must be True or False, got {value!r}")
        self.assign = tuple((str(k), _as_law(v)) for k, v in assign.items())
        self.at, self.when, self.name, self.after = at, when, name, after
        self.persistent, self.initial_value = bool(persistent), bool(initial_value)
        self.use_values_from_trigger_time = bool(use_values_from_trigger_time)

    @property
    def label(self) -> str:
        return (
            repr(self.name)
            if self.name
            else (f"at t={self.at}" if self.at is not None else "with a state trigger")
        )


class _UnknownName(KeyError):
    def __init__(self, kind: str, name: str, known: Iterable[str]):
        super().__init__(name)
        self.kind, self.name, self.known = kind, name, list(known)

    def __str__(self):
        return f"unknown {self.kind} {self.name!r} (known: {self.known})"


class _Probe(Mapping):
    """A name -> value mapping that reports unknown names, used to validate rate laws."""

    def __init__(self, kind: str, values: Mapping[str, float]):
        self._kind, self._values = kind, dict(values)

    def __getitem__(self, name):
        if name not in self._values:
            raise _UnknownName(self._kind, name, self._values)
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)


def _check_names(kind: str, names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{kind} names must be non-empty strings, got {name!r}")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {kind} name {name!r}")
        seen.add(name)
    return names


def _finite_number(kind: str, name: str, value, signed: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{kind} {name!r} must be a number, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{kind} {name!r} must be finite, got {value!r}")
    if np.any(arr < 0) and not signed:
        raise ValueError(f"{kind} {name!r} must be non-negative, got {value!r}")
    return arr


class Network(eqx.Module):
    """A reaction network: the one place that defines a model for every solver.

    ``species`` are counted molecules; ``reactions`` carry rate laws; ``params`` are default
    parameter values; ``x0`` default initial counts (missing species start at 0); ``inputs`` name
    the schedule-driven inputs (levels set by a `grn.Schedule`, 0 when unscheduled). Optional
    ``growth`` and ``death`` rate laws give the per-cell fate rates ``g(x, p, u)`` and
    ``h(x, p, u)`` whose integral ``log_weight = int (g - h) dt`` every solver returns.

    ``cell_params`` declares extrinsic heterogeneity: ``{"k": grn.LogNormal(median=...,
    sigma=...)}`` gives every simulated cell its own value of parameter ``k``, drawn by
    `grn.simulate` from its key (the default ``params["k"]``, if given, must equal the median).
    ``equilibrate_h`` is the network's default pre-equilibration: `grn.simulate` runs each cell
    untreated (inputs 0) for that many hours from ``x0`` before ``ts[0]``, so a protocol starts
    from each cell's own untreated state.

    The network is a pytree whose leaves are the default parameter values, the distributions'
    numbers and the initial state, so new values never recompile a simulation; species,
    reactions and inputs are static structure.
    See `grn._rate_laws` for the count (volume) convention shared by all solvers.

    ``ode`` (a `grn._ode_system.ODESystem`, from `grn.load_sbml`) is the model's deterministic
    form where reactions alone cannot say it (rate rules, time-dependent laws, delayed events, ...);
    `grn.ODE` integrates it instead of the reactions. ``stochastic_refusal`` says why the
    stochastic solvers (and the LNA) cannot simulate the network, if they cannot; such a network
    may have no species and signed (real-valued) parameters and initial values.
    """

    species: tuple[str, ...] = eqx.field(static=True)
    reactions: tuple[Reaction, ...] = eqx.field(static=True)
    inputs: tuple[str, ...] = eqx.field(static=True)
    growth: AbstractRateLaw | None = eqx.field(static=True)
    death: AbstractRateLaw | None = eqx.field(static=True)
    events: tuple[Event, ...] = eqx.field(static=True)
    rules: tuple[tuple[str, AbstractRateLaw], ...] = eqx.field(static=True)
    ode: Any = eqx.field(static=True)
    stochastic_refusal: str | None = eqx.field(static=True)
    equilibrate_h: float = eqx.field(static=True)
    params: dict[str, Any]
    x0: Any
    cell_params: dict[str, Distribution]

    def __init__(
        self,
        species: Sequence[str],
        reactions: Sequence[Reaction],
        params: Mapping[str, float] | None = None,
        x0: Mapping[str, float] | None = None,
        inputs: Sequence[str] = (),
        growth: AbstractRateLaw | Callable | None = None,
        death: AbstractRateLaw | Callable | None = None,
        events: Sequence[Event] = (),
        rules: Mapping[str, AbstractRateLaw | Callable] | None = None,
        ode: Any = None,
        stochastic_refusal: str | None = None,
        cell_params: Mapping[str, Distribution] | None = None,
        equilibrate_h: float | None = None,
    ):
        if isinstance(species, str) or isinstance(inputs, str):
            raise TypeError("species and inputs must be sequences of names, not a single string")
        self.species = _check_names("species", species)
        self.inputs = _check_names("input", inputs)
        self.ode, self.stochastic_refusal = ode, stochastic_refusal
        signed = stochastic_refusal is not None
        if not self.species and not signed:
            raise ValueError("a network needs at least one species")
        reactions = tuple(reactions)
        for i, reaction in enumerate(reactions):
            if not isinstance(reaction, Reaction):
                raise TypeError(f"reaction {i} must be a grn.Reaction, got {reaction!r}")
            for name, _ in reaction.reactants + reaction.products:
                if name not in self.species:
                    raise ValueError(
                        f"reaction {i} {reaction.label} uses unknown species {name!r} "
                        f"(species: {list(self.species)})"
                    )
        names = [r.name for r in reactions if r.name is not None]
        _check_names("reaction", names)
        self.reactions = reactions

        params = dict(params or {})
        self.params = {str(k): _finite_number("parameter", k, v, signed) for k, v in params.items()}
        for name, value in self.params.items():
            if value.ndim:
                raise ValueError(
                    f"default parameter {name!r} must be a scalar; pass per-cell values to "
                    f"grn.simulate(params=...) instead"
                )
        self.cell_params = check_cell_params(cell_params or {}, self.params)
        for name, dist in self.cell_params.items():
            if name not in self.params:
                raise ValueError(
                    f"cell_params names unknown parameter {name!r} (the network's parameters: "
                    f"{list(self.params)})"
                )
            if float(self.params[name]) != float(np.asarray(dist.median)):
                raise ValueError(
                    f"parameter {name!r}: the default {float(self.params[name])} differs from "
                    f"its cell distribution's median {float(np.asarray(dist.median))}"
                )
        self.equilibrate_h = equilibrate_hours(equilibrate_h, "equilibrate_h")
        x0 = dict(x0 or {})
        for name in x0:
            if name not in self.species:
                raise KeyError(f"x0 names unknown species {name!r} (species: {list(self.species)})")
        values = [
            _finite_number("initial count of", s, x0.get(s, 0.0), signed) for s in self.species
        ]
        self.x0 = np.array(values, dtype=np.float64).reshape(len(values))
        self.growth = None if growth is None else _as_law(growth)
        self.death = None if death is None else _as_law(death)
        self.events = tuple(events)
        for i, event in enumerate(self.events):
            if not isinstance(event, Event):
                raise TypeError(f"event {i} must be a grn.Event, got {event!r}")
            for target, _ in event.assign:
                if target not in self.species and target not in self.params:
                    raise ValueError(
                        f"event {i} {event.label} assigns {target!r}, which is "
                        f"neither a species nor a parameter"
                    )
        self.rules = tuple((str(k), _as_law(v)) for k, v in (rules or {}).items())
        _check_names("rule", [name for name, _ in self.rules])
        for name, _ in self.rules:
            if name in self.species:
                raise ValueError(f"rule {name!r} has the name of a species")
        self._validate_laws()

    def _validate_laws(self):
        """Evaluate every law once at the defaults, naming any unknown name or bad value."""
        x = _Probe("species", dict(zip(self.species, self.x0.tolist())))
        p = _Probe("parameter", {k: float(v) for k, v in self.params.items()})
        u = _Probe("input", {name: 0.0 for name in self.inputs})
        laws = [
            (f"reaction {i} {r.label}", r.rate, r.reactants) for i, r in enumerate(self.reactions)
        ]
        laws += [
            (f"{kind} rate", law, ())
            for kind, law in (("growth", self.growth), ("death", self.death))
            if law
        ]
        laws += [(f"rule {name!r}", law, ()) for name, law in self.rules]
        laws += [
            (f"event {i} {e.label} assignment to {target!r}", law, ())
            for i, e in enumerate(self.events)
            for target, law in e.assign
        ]
        with np.errstate(all="ignore"):
            for where, law, reactants in laws:
                try:
                    value = law(x, p, u, reactants, True)
                except _UnknownName as err:
                    raise ValueError(f"{where}: the law uses {err}") from None
                value = np.asarray(value, dtype=np.float64)
                if value.shape != ():
                    raise ValueError(
                        f"{where}: rate law must return a scalar, got shape {value.shape}"
                    )
                if not np.isfinite(value) or (value < 0 and where.startswith("reaction")):
                    raise ValueError(
                        f"{where}: rate is {float(value)} at the default initial state and "
                        f"parameters; propensities must be finite and non-negative"
                    )
            for i, event in enumerate(self.events):
                if event.when is not None:
                    try:
                        event.when(0.0, x, p)
                    except _UnknownName as err:
                        raise ValueError(
                            f"event {i} {event.label}: the trigger uses {err}"
                        ) from None

    # -- structure -------------------------------------------------------------------------
    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of a deterministic solution's columns: the species, then the ODE system's
        further outputs (rule targets, parameters, compartment sizes)."""
        return self.species + (self.ode.extra_names if self.ode is not None else ())

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def n_reactions(self) -> int:
        return len(self.reactions)

    def _matrix(self, side: str) -> np.ndarray:
        m = np.zeros((self.n_reactions, self.n_species), dtype=np.int32)
        for i, reaction in enumerate(self.reactions):
            for name, nu in getattr(reaction, side):
                m[i, self.species.index(name)] += nu
        return m

    @property
    def reactant_matrix(self) -> np.ndarray:
        """(reactions, species) reactant coefficients."""
        return self._matrix("reactants")

    @property
    def product_matrix(self) -> np.ndarray:
        """(reactions, species) product coefficients."""
        return self._matrix("products")

    @property
    def stoichiometry(self) -> np.ndarray:
        """(reactions, species) net change of each species when each reaction fires."""
        return self.product_matrix - self.reactant_matrix

    # -- evaluation (traced) ---------------------------------------------------------------
    def _maps(self, x, params, u):
        xs = {name: x[i] for i, name in enumerate(self.species)}
        us = {name: u[i] for i, name in enumerate(self.inputs)}
        return xs, params, us

    def _stack(self, values, dtype):
        values = [jnp.asarray(v, dtype=dtype) for v in values]
        n = STACK_CHUNK
        if len(values) <= n:
            return jnp.stack(values)
        return jnp.concatenate([jnp.stack(values[i : i + n]) for i in range(0, len(values), n)])

    def propensities(self, x, params, u):
        """Stochastic propensities ``a(x, p, u)``, shape (reactions,)."""
        xs, ps, us = self._maps(x, params, u)
        return self._stack([r.rate(xs, ps, us, r.reactants, True) for r in self.reactions], x.dtype)

    def rates(self, x, params, u):
        """Macroscopic reaction rates (mass action as powers), shape (reactions,)."""
        xs, ps, us = self._maps(x, params, u)
        return self._stack(
            [r.rate(xs, ps, us, r.reactants, False) for r in self.reactions], x.dtype
        )

    def rule_values(self, x, params, u) -> dict:
        """Values of the assignment rules (derived quantities) at state ``x``."""
        xs, ps, us = self._maps(x, params, u)
        return {name: law(xs, ps, us) for name, law in self.rules}

    def fate_rate(self, x, params, u):
        """Net growth minus death rate ``g - h`` of one cell (0 without fate laws)."""
        xs, ps, us = self._maps(x, params, u)
        rate = jnp.zeros((), x.dtype)
        if self.growth is not None:
            rate = rate + self.growth(xs, ps, us)
        if self.death is not None:
            rate = rate - self.death(xs, ps, us)
        return rate

    def __repr__(self):
        return (
            f"Network(species={list(self.species)}, reactions={self.n_reactions}, "
            f"params={list(self.params)}, inputs={list(self.inputs)})"
        )
