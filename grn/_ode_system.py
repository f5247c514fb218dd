"""A general ODE system with events: what a model is when reactions alone cannot say it.

An imported SBML model with rate rules, time-dependent laws, variable stoichiometry, conversion
factors, delayed or prioritised events, ... is simulated deterministically from an `ODESystem`
that `grn.load_sbml` attaches to the network (``Network(ode=...)``); `grn.ODE` integrates it, the
stochastic solvers refuse such a network by name. The state ``y`` is the network's species
(initial values from ``x0``) followed by the varying quantities ``from_p`` (parameters,
compartment sizes, stoichiometries changed by rate rules or events; initial values from the
parameters). Every function takes ``(t, env)`` where ``env`` maps each name to its value: the
parameters, overridden by the state.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx


class ODEEvent(eqx.Module):
    """An SBML event for the deterministic solver.

    ``atoms(t, env)`` lists the trigger's ``n_atoms`` comparisons as ``(level, truth)``: a
    continuous function with the comparison's sign changes (root finding locates them) and its
    exact truth; ``combine(truths)`` is the trigger's truth from theirs. ``values(t, env)`` are
    the assigned values (a list), ``apply(t, env, values)`` the new values of the targets (a
    dict). ``delay`` and ``priority`` are functions or None.
    """

    name: str = eqx.field(static=True)
    atoms: Callable = eqx.field(static=True)
    n_atoms: int = eqx.field(static=True)
    combine: Callable = eqx.field(static=True)
    values: Callable = eqx.field(static=True)
    apply: Callable = eqx.field(static=True)
    n_values: int = eqx.field(static=True)
    delay: Callable | None = eqx.field(static=True, default=None)
    priority: Callable | None = eqx.field(static=True, default=None)
    persistent: bool = eqx.field(static=True, default=True)
    initial_value: bool = eqx.field(static=True, default=True)
    use_trigger_values: bool = eqx.field(static=True, default=True)


class ODESystem(eqx.Module):
    """``dy/dt = rhs(t, env)`` over the state ``from_x0 + from_p``, with events and outputs.

    ``outputs`` are (name, fn(t, env)) for every quantity beyond the network's species that a
    solution reports (rule targets, parameters, compartment sizes). ``settle(t, env)``, where
    given, returns new values of state entries (a dict) that the solver applies at the start
    and after every event execution (fast reactions brought to their equilibrium).
    """

    from_x0: tuple[str, ...] = eqx.field(static=True)
    from_p: tuple[str, ...] = eqx.field(static=True)
    rhs: Callable = eqx.field(static=True)
    outputs: tuple[tuple[str, Callable], ...] = eqx.field(static=True)
    events: tuple[ODEEvent, ...] = eqx.field(static=True, default=())
    settle: Callable | None = eqx.field(static=True, default=None)

    @property
    def state(self) -> tuple[str, ...]:
        return self.from_x0 + self.from_p

    @property
    def extra_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.outputs)

    def env(self, y, params) -> dict:
        return {**params, **{name: y[i] for i, name in enumerate(self.state)}}
