"""Interventions on a base protocol and the schedules they make.

An `Intervention` sets one input (a drug such as ``NFKBi``) to a level in [0, 1] from ``start_h``
for ``duration_h`` hours on top of a base protocol (a `grn.Schedule`, e.g. BRAFi 0.95 for 29
days). Levels combine by Bliss independence, ``u = 1 - (1 - u_base) prod_i (1 - level_i)``, so
an intervention on an input the base leaves at 0 sets it to ``level`` and two inhibitors of the
same node act as independent fractional inhibitions. Scenarios are laid out on one breakpoint
grid as tables of levels (scenarios, breakpoints, inputs); time bins map onto that grid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

import grn
from grn import Schedule

DAY = 24.0
"""Hours per day."""


@dataclasses.dataclass(frozen=True)
class Intervention:
    """Input ``target`` held at ``level`` in [0, 1] on ``[start_h, start_h + duration_h)``.

    ``duration_h=math.inf`` keeps it to the end of the simulation. The target is checked against
    a network's inputs where the intervention is applied (`apply_interventions`, `scan`).
    """

    target: str
    level: float
    start_h: float = 0.0
    duration_h: float = math.inf

    def __post_init__(self):
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(f"intervention target must be an input name, got {self.target!r}")
        for field in ("level", "start_h", "duration_h"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"intervention on {self.target!r}: {field} must be a number")
            if math.isnan(value):
                raise ValueError(f"intervention on {self.target!r}: {field} is NaN")
        if not 0.0 <= self.level <= 1.0:
            raise ValueError(
                f"intervention on {self.target!r}: level must be in [0, 1], got {self.level}"
            )
        if not (math.isfinite(self.start_h) and self.start_h >= 0.0):
            raise ValueError(
                f"intervention on {self.target!r}: start_h must be finite and >= 0, got "
                f"{self.start_h}"
            )
        if not self.duration_h > 0.0:
            raise ValueError(
                f"intervention on {self.target!r}: duration_h must be positive, got "
                f"{self.duration_h}"
            )

    @property
    def end_h(self) -> float:
        return self.start_h + self.duration_h


def check_targets(network: grn.Network, interventions: Sequence[Intervention]) -> None:
    """Raise naming the first intervention whose target is not one of the network's inputs."""
    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise TypeError(f"expected fitting.Intervention, got {iv!r}")
        if iv.target not in network.inputs:
            raise ValueError(
                f"unknown intervention target {iv.target!r}; the network's inputs are "
                f"{list(network.inputs)}"
            )


def _base_level(base: Schedule | None, name: str, t: float) -> float:
    if base is None or name not in base.values:
        return 0.0
    i = int(np.searchsorted(base.times, t, side="right")) - 1
    return 0.0 if i < 0 else float(base.values[name][i])


def _grid(base: Schedule | None, times: Sequence[float] | np.ndarray) -> np.ndarray:
    points = set() if base is None else {float(t) for t in base.times}
    points |= {float(t) for t in times if math.isfinite(t)}
    return np.array(sorted(points), np.float64)


def _tables(network, base, scenarios, grid) -> np.ndarray:
    """Levels (scenarios, breakpoints, inputs) of each scenario on the shared ``grid``."""
    inputs = network.inputs
    tables = np.zeros((len(scenarios), len(grid), len(inputs)))
    for j, name in enumerate(inputs):
        tables[:, :, j] = [_base_level(base, name, t) for t in grid]
    for s, scenario in enumerate(scenarios):
        for iv in scenario:
            j = inputs.index(iv.target)
            on = (grid >= iv.start_h) & (grid < iv.end_h)
            tables[s, on, j] = 1.0 - (1.0 - tables[s, on, j]) * (1.0 - iv.level)
    return tables


def apply_interventions(
    network: grn.Network, base: Schedule | None, *interventions: Intervention
) -> Schedule:
    """The base protocol with ``interventions`` applied (Bliss combination), as a `grn.Schedule`."""
    check_targets(network, interventions)
    times = [t for iv in interventions for t in (iv.start_h, iv.end_h)]
    grid = _grid(base, times)
    if grid.size == 0:
        grid = np.zeros(1)
    return _schedule_of(network, grid, _tables(network, base, [interventions], grid)[0])


def _schedule_of(network, times, table):
    return Schedule(times, {name: table[:, j] for j, name in enumerate(network.inputs)})


def levels_for(levels, target) -> list[float]:
    """``target``'s levels from a scan's ``levels``: one level, a list, or a mapping target ->
    level(s)."""
    value = levels[target] if isinstance(levels, Mapping) else levels
    if isinstance(levels, Mapping) and target not in levels:
        raise ValueError(f"no level given for target {target!r}")
    return [float(v) for v in (value if isinstance(value, Sequence) else [value])]


def _bin_matrix(grid, edges) -> np.ndarray:
    """P[k, b] = 1 where grid segment k (from grid[k]) lies in bin b = [edges[b], edges[b+1])."""
    P = np.zeros((len(grid), len(edges) - 1))
    for k, t in enumerate(grid):
        b = int(np.searchsorted(edges, t, side="right")) - 1
        if 0 <= b < len(edges) - 1:
            P[k, b] = 1.0
    return P


def _check_edges(edges) -> np.ndarray:
    edges = np.asarray(edges, np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0:
        raise ValueError(
            f"time bins must be >= 2 increasing, non-negative edges in hours, got {edges.tolist()}"
        )
    return edges
