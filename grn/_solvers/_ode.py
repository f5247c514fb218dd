"""Reaction-rate equations through diffrax."""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._solution import RESULTS
from ._base import AbstractSolver, CellPath
from ._ode_events import defined_field, held_after_stop, solve_system, steady_state_event


class AbstractDiffraxSolver(AbstractSolver):
    """A deterministic solver whose equations diffrax integrates (`ODE`, `LNA`).

    Holds the shared configuration (tolerances, step budget, method, adjoint) and the
    integration with schedule breakpoints as ``jump_ts``; subclasses give the vector field.
    """

    rtol: float = 1e-6
    atol: float = 1e-6
    max_steps: int = 100_000
    method: diffrax.AbstractSolver = eqx.field(default_factory=diffrax.Tsit5)
    adjoint: diffrax.AbstractAdjoint = eqx.field(default_factory=diffrax.RecursiveCheckpointAdjoint)
    stochastic = False

    def __check_init__(self):
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(
                f"ODE tolerances must be positive, got rtol={self.rtol}, atol={self.atol}"
            )

    def _integrate(
        self, field, ts, y0, schedule_times, args, event=None
    ) -> tuple[Any, Any, jax.Array]:
        """Solve ``dy/dt = field(t, y)`` from ``ts[0]``, saving at ``ts``; steps land on breaks;
        a diffrax ``event`` may end the solve early (the outputs after it hold its state)."""
        controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        if schedule_times.shape[0] > 1:
            controller = diffrax.ClipStepSizeController(controller, jump_ts=schedule_times[1:])
        # Closed-over arrays (the stoichiometry, traced under jit) must become leaves of the term:
        # BacksolveAdjoint fails with "No constant handler ... DynamicJaxprTracer" otherwise.
        field = defined_field(field, ts[0], y0, args)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            self.method,
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(ts=ts, t1=True),
            stepsize_controller=controller,
            max_steps=self.max_steps,
            adjoint=self.adjoint,
            event=event,
            throw=False,
        )
        ys, ok = held_after_stop(sol, ts)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(y)) for y in jax.tree.leaves(ys)]))
        ok = ok & finite
        result = jnp.where(ok, RESULTS.successful, RESULTS.solver_failed).astype(jnp.int32)
        return ys, sol.stats["num_steps"], result


class ODE(AbstractDiffraxSolver):
    r"""The reaction-rate equations ``dx/dt = S^T r(x, p, u(t))`` integrated with diffrax.

    ``r`` are the macroscopic rates of the network's rate laws (mass action with powers, see
    `grn._rate_laws`), ``S`` the stoichiometry. The default method is the explicit ``Tsit5``
    (Tsitouras 2011) with a PID step-size controller. Stiff systems are handled automatically:
    where a cell's integration fails (a stiff system exhausts ``max_steps`` with an explicit
    method), `grn.simulate` runs every cell again with ``fallback`` (default the L-stable ESDIRK
    ``diffrax.Kvaerno5()``; ``fallback=None`` turns this off, ``method=diffrax.Kvaerno5()``
    starts implicit). The check needs concrete results: under ``jax.jit`` or ``jax.grad`` of
    `grn.simulate` only ``method`` runs. On the built-in melanoma model (64-day BRAFi protocol,
    rtol = atol = 1e-6, 2-core CPU) Tsit5 takes 22,536 steps (1.5 s; 4 s to compile) while
    Kvaerno5 exhausted 100,000 steps (23 s; 12 s to compile, the LNA 33-51 s). Schedule
    breakpoints are passed as ``jump_ts`` so no step straddles a change of input. The fate
    integral ``log_weight`` is integrated alongside. Returns one trajectory per parameter set.

    ``adjoint`` is any diffrax adjoint (default ``RecursiveCheckpointAdjoint``; also
    ``BacksolveAdjoint``, ``ForwardMode``): parameters and input levels reach the vector field as
    diffrax ``args``, so each adjoint differentiates with respect to them (docs/gradients.md).

    A network with an ODE system (``network.ode``, from `grn.load_sbml`: rate rules, time-dependent
    laws, events with delays and priorities, ...) is integrated from that system instead, events
    located by root finding (`grn._solvers._ode_events`); its solution also holds the system's
    further outputs (rule targets, parameters, compartment sizes) by name.
    """

    fallback: diffrax.AbstractSolver | None = eqx.field(default_factory=diffrax.Kvaerno5)
    steady_state: bool = False
    """Stop once the state is steady, ``rms(dx/dt) <= atol + rtol rms(x)`` (the criterion of
    ``diffrax.steady_state_event``, as AMICI's simulation to steady state): the outputs after
    that time hold the steady state (pre-equilibration: no stiff steps across a long idle
    stretch). For equations that no longer change with time: a plain network's schedule is
    waited for (no stop before its last change); an SBML model's explicit time dependence
    (a rule of ``time``) is not, as in PEtab's pre-equilibration. Not with SBML events or
    growth/death laws."""

    def check(self, network) -> None:
        if network.ode is None:
            super().check(network)
            if self.steady_state and (network.growth is not None or network.death is not None):
                raise ValueError(
                    "ODE(steady_state=True): the network's growth/death laws keep its fate "
                    "weights changing after a steady state; use steady_state=False"
                )
        elif self.steady_state and network.ode.events:
            raise ValueError(
                "ODE(steady_state=True) cannot stop a model with SBML events at a steady state; "
                "use steady_state=False"
            )

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        if network.ode is not None:
            ys, steps, result = solve_system(self, network.ode, ts, params, x0, key)
            return CellPath(ys, jnp.zeros(ts.shape, ts.dtype), steps, result)
        nu = jnp.asarray(network.stoichiometry, ts.dtype)

        def field(t, y, args):
            (x, _), (params, breaks, table) = y, args
            seg = jnp.searchsorted(breaks, t, side="right") - 1
            u = table[seg]
            return network.rates(x, params, u) @ nu, network.fate_rate(x, params, u)

        y0 = (x0.astype(ts.dtype), jnp.zeros((), ts.dtype))
        args = (params, schedule_times, schedule_table)
        # steady only once the schedule has made its last change
        event = (
            steady_state_event(self, lambda y: y[0], after=schedule_times[-1])
            if self.steady_state
            else None
        )
        (ys, lws), steps, result = self._integrate(field, ts, y0, schedule_times, args, event)
        return CellPath(ys, lws, steps, result)
