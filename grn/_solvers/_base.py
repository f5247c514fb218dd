"""The interface every solver implements: one cell's trajectory at the output times."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx


class AbstractSolver(eqx.Module):
    """A simulation method for one cell; `grn.simulate` batches, chunks and shards the cells.

    ``solve_cell(network, ts, key, params, x0, schedule_times, schedule_table)`` returns
    ``(ys (times, species), log_weight (times,), n_events (), result ())`` where the schedule is
    given as breakpoints with a leading -inf and one row of input levels per segment (see
    `grn.Schedule.as_arrays`). Solvers are small final classes; configuration is in their fields.
    """

    stochastic: ClassVar[bool]

    @abc.abstractmethod
    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table): ...

    def check(self, network) -> None:
        """Raise, in plain Python, if this solver cannot simulate ``network``."""
