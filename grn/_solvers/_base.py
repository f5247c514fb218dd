"""The interface every solver implements: one cell's trajectory at the output times."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx


class CellPath(NamedTuple):
    """One cell's (or one parameter set's) solution at the output times."""

    ys: Any  # (times, species): counts, or the mean for moment solvers
    log_weight: Any  # (times,): int (g - h) dt from ts[0]
    n_events: Any  # (): reactions fired (stochastic) or steps taken
    result: Any  # (): a RESULTS code
    cov: Any = None  # (times, species, species): the solver's own covariance (LNA), else None
    log_likelihood: Any = None  # (times,): path log-likelihood, SSA(likelihood=True), else None


class CellProgram(NamedTuple):
    """One cell's run cut into pieces, so that `grn._lanes.run_lanes` can start a new cell in a
    lane whose cell has finished: ``start(key, params, x0, live) -> state`` (``live=False``: an
    idle lane, already finished; the state holds the output arrays ``ys``, ``lws``, ``lls``
    with their initial rows), ``advance(params, state) -> (state, written)`` (one block of steps
    on the state without its output arrays; ``written``: the rows it reached and their values,
    `grn._solvers._stepping.record`), ``running(state) -> bool``, ``finish(state) -> CellPath``
    (the state with its outputs). ``solve_cell`` is ``finish(while running: advance(start(...)))``
    (`grn._solvers._stepping.run_program`)."""

    start: Callable
    advance: Callable
    running: Callable
    finish: Callable
    one_row: bool = False
    """``advance(params, state, one_row=True)`` runs a block that records one output row at
    most (`grn._solvers._stepping.Stepper.block`)."""


class AbstractSolver(eqx.Module):
    """A simulation method for one cell; `grn.simulate` batches, chunks and shards the cells.

    ``solve_cell(network, ts, key, params, x0, schedule_times, schedule_table)`` returns a
    `CellPath` where the schedule is given as breakpoints with a leading -inf and one row of input
    levels per segment (see `grn.Schedule.as_arrays`). Solvers are small final classes;
    configuration is in their fields.
    """

    stochastic: ClassVar[bool]
    cpu_lanes: ClassVar[int | None] = None
    """Cells in flight per CPU device when ``batch_size`` is not given, for a solver with a
    `program` (`grn._lanes.run_lanes`); None: all cells at once."""
    lane_halvings: ClassVar[int] = 0
    """How often `grn._lanes.run_lanes` may halve the lanes as the last cells finish (each
    width is compiled once more)."""

    @abc.abstractmethod
    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table): ...

    def program(self, network, ts, schedule_times, schedule_table) -> CellProgram | None:
        """The solver's `CellProgram`, or None where cells cannot be run in refilled lanes."""
        return None

    def check(self, network) -> None:
        """Raise, in plain Python, if this solver cannot simulate ``network``."""
        if network.events:
            raise ValueError(
                f"{type(self).__name__} cannot honour the network's events; use grn.SSA()"
            )

    def bind(self, network, ts, schedule_times) -> AbstractSolver:
        """Fix static settings that depend on concrete output times and breakpoints.

        Called by `grn.simulate` before compiling, with NumPy arrays when the values are
        concrete (None when they are traced). Fixed-step solvers use it to size their loops.
        """
        return self
