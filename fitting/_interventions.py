"""Early intervention points: scans, time-resolved sensitivities, schedule optimisation, ranking.

An `Intervention` sets one input (a drug such as ``NFKBi``) to a level in [0, 1] from ``start_h``
for ``duration_h`` hours on top of a base protocol (a `grn.Schedule`, e.g. BRAFi 0.95 for 29
days). Levels combine by Bliss independence, ``u = 1 - (1 - u_base) prod_i (1 - level_i)``, so
an intervention on an input the base leaves at 0 sets it to ``level`` and two inhibitors of the
same node act as independent fractional inhibitions.

Every scenario of a scan is simulated on ONE breakpoint grid (the union of the base's breakpoints
and every scenario's start and end), so scenarios differ only in their table of levels, a traced
value: `scan` compiles one program for all scenarios x cells, and the same cells (per-cell
parameters and PRNG keys) are used in every scenario (common random numbers). Benefits are paired
differences over cells, with standard errors ``sd(d_c) / sqrt(n)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import grn
from grn._schedule import Schedule

TRACE_COUNT = {"scenarios": 0, "sensitivity": 0, "objective": 0}
"""How often each compiled program was traced (tests prove that new values never recompile)."""

DAY = 24.0


# -- interventions ------------------------------------------------------------------------------
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
    table = _tables(network, base, [interventions], grid)[0]
    return Schedule(times=grid, values={n: table[:, j] for j, n in enumerate(network.inputs)})


# -- outcomes -----------------------------------------------------------------------------------
class Outcome(eqx.Module):
    """An ensemble outcome at ``time_h``: the mean over cells of ``per_cell(x, log_weight)``.

    ``per_cell`` maps species name -> counts (cells,) and the log fate weights (cells,) at that
    time to one value per cell (traceable); ``better`` is ``"lower"`` or ``"higher"``. The benefit
    of an intervention is ``outcome(base) - outcome(with)`` for a lower-is-better outcome (the
    opposite sign otherwise), so a positive benefit is always good.
    """

    name: str = eqx.field(static=True)
    per_cell: Callable = eqx.field(static=True)
    time_h: float = eqx.field(static=True)
    better: str = eqx.field(static=True, default="lower")

    def __check_init__(self):
        if self.better not in ("lower", "higher"):
            raise ValueError(f"outcome {self.name!r}: better must be 'lower' or 'higher'")
        if not (isinstance(self.time_h, int | float) and math.isfinite(self.time_h)):
            raise ValueError(f"outcome {self.name!r}: time_h must be a finite number")

    @property
    def sign(self) -> float:
        """+1 when lower is better: benefit = sign * (outcome(base) - outcome(with))."""
        return 1.0 if self.better == "lower" else -1.0


class _BelowThreshold(eqx.Module):
    species: str = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    softness: float = eqx.field(static=True)

    def __call__(self, x, log_weight):
        s = x[self.species]
        if self.softness == 0.0:
            return (s < self.threshold).astype(s.dtype)
        return jax.nn.sigmoid((self.threshold - s) / (self.softness * self.threshold))


class _Viable(eqx.Module):
    def __call__(self, x, log_weight):
        return jnp.exp(log_weight)


class _Priming(eqx.Module):
    species: str = eqx.field(static=True)
    K: float = eqx.field(static=True)

    def __call__(self, x, log_weight):
        b = jnp.maximum(x[self.species], 0.0)
        return b / (b + self.K)


def sox10_low_fraction(
    network: grn.Network,
    day: float = 29.0,
    threshold: float | None = None,
    softness: float = 0.0,
    species: str = "S",
) -> Outcome:
    """Fraction of cells with SOX10 (``S``) below ``threshold`` (default: half the untreated
    ``x0``) at ``day``; lower is better. ``softness > 0`` replaces the indicator by the sigmoid
    ``sigma((threshold - S) / (softness * threshold))`` so that it has pathwise gradients."""
    if species not in network.species:
        raise ValueError(f"sox10_low_fraction: the network has no species {species!r}")
    if threshold is None:
        threshold = float(network.x0[network.species.index(species)]) / 2.0
    if not threshold > 0 or softness < 0:
        raise ValueError("sox10_low_fraction: threshold must be > 0 and softness >= 0")
    name = "sox10_low_fraction" if softness == 0 else "sox10_low_fraction_soft"
    return Outcome(name, _BelowThreshold(species, float(threshold), float(softness)), day * DAY)


def viable_cells(day: float = 29.0) -> Outcome:
    """Viable cells per starting cell at ``day``: ``mean_c exp(log_weight_c)``; lower is better."""
    return Outcome("viable_cells", _Viable(), day * DAY)


def priming(network: grn.Network, day: float = 10.0, species: str = "B", K: float = 20.0):
    """Mean apoptotic priming ``B / (B + K)`` at ``day`` (BIM, K = 20); higher is better."""
    if species not in network.species:
        raise ValueError(f"priming: the network has no species {species!r}")
    return Outcome("priming", _Priming(species, float(K)), day * DAY, better="higher")


OUTCOMES = {"sox10_low_fraction": sox10_low_fraction, "viable_cells": viable_cells}
OUTCOMES["priming"] = priming


def make_outcome(network: grn.Network, kind: str, day: float, **options) -> Outcome:
    """A built-in outcome by name (``sox10_low_fraction``, ``viable_cells``, ``priming``)."""
    if kind not in OUTCOMES:
        raise ValueError(f"unknown outcome kind {kind!r}; choose one of {list(OUTCOMES)}")
    if kind == "viable_cells":
        return viable_cells(day, **options)
    return OUTCOMES[kind](network, day, **options)


# -- the scenario program -----------------------------------------------------------------------
def _output_times(outcomes, ts, pre_h):
    if ts is None:
        end = max(o.time_h for o in outcomes)
        ts = np.union1d(np.arange(-pre_h, end + 1e-9, DAY), [o.time_h for o in outcomes])
    ts = np.asarray(ts, np.float64)
    index = []
    for o in outcomes:
        hit = np.flatnonzero(np.isclose(ts, o.time_h))
        if hit.size == 0:
            raise ValueError(f"outcome {o.name!r} at t = {o.time_h} h is not an output time")
        index.append(int(hit[0]))
    return ts, tuple(index)


def _schedule_of(network, times, table):
    return Schedule(times, {name: table[:, j] for j, name in enumerate(network.inputs)})


def _cells(network, solver, ts, times, table, key, params, n_cells):
    return grn.simulate(
        network,
        ts,
        key,
        solver,
        n_cells,
        params,
        schedule=_schedule_of(network, times, table),
        throw=False,
    )


@eqx.filter_jit
def _scenario_program(network, solver, ts, times, tables, key, params, outcomes, index, n_cells):
    TRACE_COUNT["scenarios"] += 1

    def one(table):
        sol = _cells(network, solver, ts, times, table, key, params, n_cells)
        values = []
        for outcome, i in zip(outcomes, index):
            x = {s: sol.ys[:, i, k] for k, s in enumerate(network.species)}
            values.append(outcome.per_cell(x, sol.log_weight[:, i]))
        ok = (sol.result == 0)[:, None]
        n_ok = jnp.maximum(jnp.sum(ok), 1)
        mean = jnp.sum(jnp.where(ok[..., None], sol.ys, 0.0), axis=0) / n_ok
        viable = jnp.sum(jnp.where(ok, jnp.exp(sol.log_weight), 0.0), axis=0) / n_ok
        return jnp.stack(values), sol.result, mean, viable

    return jax.vmap(one)(tables)


def _bind(network, solver, ts, grid):
    return solver.bind(network, np.asarray(ts), np.concatenate([[-np.inf], grid]))


@dataclasses.dataclass
class ScenarioRun:
    """Per-cell outcomes of a set of scenarios simulated on the same cells.

    ``values[s, o, c]``: outcome ``o``'s per-cell value in scenario ``s`` for cell ``c``; ``ok``
    marks cells that succeeded; ``mean`` (scenarios, times, species) and ``viable`` (scenarios,
    times) are ensemble means over successful cells.
    """

    scenarios: list
    outcomes: tuple
    ts: np.ndarray
    species: tuple
    values: np.ndarray
    ok: np.ndarray
    mean: np.ndarray
    viable: np.ndarray

    def outcome(self, o: int = 0):
        """Per scenario: the outcome (mean over successful cells) and its standard error."""
        v, ok = self.values[:, o, :], self.ok
        n = ok.sum(axis=1)
        mean = np.where(ok, v, 0.0).sum(axis=1) / np.maximum(n, 1)
        var = np.where(ok, (v - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(n - 1, 1)
        return mean, np.sqrt(var / np.maximum(n, 1))

    def benefit(self, o: int = 0, reference: int = 0):
        """Per scenario: benefit over scenario ``reference`` (paired over cells) and its SE."""
        sign = self.outcomes[o].sign
        d = sign * (self.values[reference, o, :][None, :] - self.values[:, o, :])
        ok = self.ok & self.ok[reference][None, :]
        n = ok.sum(axis=1)
        mean = np.where(ok, d, 0.0).sum(axis=1) / np.maximum(n, 1)
        var = np.where(ok, (d - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(n - 1, 1)
        return mean, np.sqrt(var / np.maximum(n, 1))


def simulate_scenarios(
    network: grn.Network,
    base: Schedule | None,
    scenarios: Sequence[Sequence[Intervention]],
    outcomes: Sequence[Outcome],
    solver: grn.AbstractSolver,
    n_cells: int,
    key,
    params: Mapping | None = None,
    ts=None,
    pre_h: float = 0.0,
    chunk: int | None = None,
    progress: bool = False,
) -> ScenarioRun:
    """Simulate every scenario (a tuple of interventions; ``()`` is the base protocol) on the same
    ``n_cells`` cells and evaluate ``outcomes``.

    One compiled program runs scenarios x cells (vmapped); ``chunk`` scenarios at a time when
    given (the last chunk padded, so every call reuses the program), with a progress bar if
    ``progress``. ``ts`` defaults to daily output times from ``-pre_h`` (a pre-equilibration with
    all inputs 0 before the base protocol starts at 0) to the latest outcome time.
    """
    if not isinstance(network, grn.Network):
        raise TypeError(f"expected a grn.Network, got {type(network).__name__}")
    if not network.inputs:
        raise ValueError("the network has no inputs to intervene on")
    if base is not None:
        if not isinstance(base, Schedule):
            raise TypeError(f"base must be a grn.Schedule, got {type(base).__name__}")
        base.check_inputs(network.inputs)
    scenarios = [tuple(s) for s in scenarios]
    if not scenarios:
        raise ValueError("no scenarios to simulate")
    for scenario in scenarios:
        check_targets(network, scenario)
    outcomes = tuple(outcomes)
    if not outcomes or not all(isinstance(o, Outcome) for o in outcomes):
        raise TypeError("outcomes must be a non-empty sequence of fitting.Outcome")
    if not (isinstance(pre_h, int | float) and pre_h >= 0):
        raise ValueError(f"pre_h must be >= 0, got {pre_h!r}")
    ts, index = _output_times(outcomes, ts, pre_h)
    grid = _grid(base, [t for s in scenarios for iv in s for t in (iv.start_h, iv.end_h)])
    if grid.size == 0:
        grid = np.zeros(1)
    tables = _tables(network, base, scenarios, grid)
    return _run_tables(
        network,
        solver,
        ts,
        index,
        grid,
        tables,
        scenarios,
        outcomes,
        n_cells,
        key,
        params,
        chunk,
        progress,
    )


def _run_tables(
    network,
    solver,
    ts,
    index,
    grid,
    tables,
    scenarios,
    outcomes,
    n_cells,
    key,
    params,
    chunk,
    progress,
) -> ScenarioRun:
    solver = _bind(network, solver, ts, grid)
    dtype = jnp.zeros(()).dtype
    args = (jnp.asarray(ts, dtype), jnp.asarray(grid, dtype))
    params = None if params is None else {k: jnp.asarray(v, dtype) for k, v in params.items()}

    def run(block):
        return _scenario_program(
            network,
            solver,
            *args,
            jnp.asarray(block, dtype),
            key,
            params,
            tuple(outcomes),
            index,
            n_cells,
        )

    n = len(tables)
    if chunk is None or chunk >= n:
        outs = [run(tables)]
    else:
        from tqdm.auto import tqdm

        outs = []
        with tqdm(total=n, desc="scenarios", unit="scenario", disable=not progress) as bar:
            for start in range(0, n, chunk):
                idx = np.minimum(np.arange(start, start + chunk), n - 1)
                out = jax.block_until_ready(run(tables[idx]))
                outs.append(jax.tree.map(lambda v: v[: min(chunk, n - start)], out))
                bar.update(min(chunk, n - start))
    values, result, mean, viable = (
        np.concatenate([np.asarray(o[k]) for o in outs]) for k in range(4)
    )
    return ScenarioRun(
        scenarios=list(scenarios),
        outcomes=tuple(outcomes),
        ts=np.asarray(ts),
        species=network.species,
        values=values.astype(np.float64),
        ok=result == 0,
        mean=mean,
        viable=viable,
    )


# -- scan ---------------------------------------------------------------------------------------
def _levels_for(levels, target) -> list[float]:
    value = levels[target] if isinstance(levels, Mapping) else levels
    if isinstance(levels, Mapping) and target not in levels:
        raise ValueError(f"no level given for target {target!r}")
    return [float(v) for v in (value if isinstance(value, Sequence) else [value])]


@dataclasses.dataclass
class ScanResult:
    """A scan's table: one row per (target, start_h, duration_h, level) plus the base protocol.

    ``rows`` are dicts with ``target, start_h, duration_h, level, outcome, outcome_se, benefit,
    benefit_se``; ``base`` the base protocol's outcome and SE; ``run`` the underlying
    `ScenarioRun` (scenario 0 is the base protocol).
    """

    outcome: Outcome
    base: tuple[float, float]
    rows: list[dict]
    run: ScenarioRun


def scan(
    network: grn.Network,
    base: Schedule | None,
    targets: Sequence[str],
    start_h: Sequence[float],
    duration_h: Sequence[float],
    levels,
    outcome: Outcome,
    solver: grn.AbstractSolver,
    n_cells: int,
    key,
    params: Mapping | None = None,
    extra_outcomes: Sequence[Outcome] = (),
    **options,
) -> ScanResult:
    """Scan ``targets x start_h x duration_h x levels`` on top of ``base``, in one batched run.

    ``levels`` is one level, a list of levels, or a mapping target -> level(s). Benefits are paired
    differences against the base protocol on the same cells. ``options`` go to
    `simulate_scenarios` (``ts``, ``pre_h``, ``chunk``, ``progress``).
    """
    if not targets:
        raise ValueError("scan needs at least one target")
    for name, seq in (("start_h", start_h), ("duration_h", duration_h)):
        if len(seq) == 0:
            raise ValueError(f"scan needs at least one {name}")
    grid = [
        Intervention(t, level, float(s), float(d))
        for t in targets
        for s, d in itertools.product(start_h, duration_h)
        for level in _levels_for(levels, t)
    ]
    check_targets(network, grid)
    scenarios = [()] + [(iv,) for iv in grid]
    run = simulate_scenarios(
        network,
        base,
        scenarios,
        (outcome, *extra_outcomes),
        solver,
        n_cells,
        key,
        params,
        **options,
    )
    value, se = run.outcome(0)
    benefit, benefit_se = run.benefit(0)
    rows = [
        {
            "target": iv.target,
            "start_h": iv.start_h,
            "duration_h": iv.duration_h,
            "level": iv.level,
            "outcome": float(value[i + 1]),
            "outcome_se": float(se[i + 1]),
            "benefit": float(benefit[i + 1]),
            "benefit_se": float(benefit_se[i + 1]),
            "n_ok": int(run.ok[i + 1].sum()),
        }
        for i, iv in enumerate(grid)
    ]
    return ScanResult(outcome, (float(value[0]), float(se[0])), rows, run)


def rank(result: ScanResult, keep: float = 0.8) -> list[dict]:
    """Targets ranked by their earliest-start benefit (at each target's first level and longest
    duration), with benefit against start time and the intervention window: the latest start
    before the benefit first drops below ``keep`` x the earliest-start benefit."""
    table = []
    for target in dict.fromkeys(r["target"] for r in result.rows):
        rows = [r for r in result.rows if r["target"] == target]
        level, duration = rows[0]["level"], max(r["duration_h"] for r in rows)
        rows = sorted(
            (r for r in rows if r["level"] == level and r["duration_h"] == duration),
            key=lambda r: r["start_h"],
        )
        first = rows[0]
        window = first["start_h"]
        for r in rows[1:]:
            if first["benefit"] <= 0 or r["benefit"] < keep * first["benefit"]:
                break
            window = r["start_h"]
        table.append(
            {
                "target": target,
                "level": level,
                "duration_h": duration,
                "start_h": first["start_h"],
                "benefit": first["benefit"],
                "benefit_se": first["benefit_se"],
                "window_h": window if first["benefit"] > 0 else None,
                "benefit_by_start": {r["start_h"]: r["benefit"] for r in rows},
            }
        )
    table.sort(key=lambda r: -r["benefit"])
    for i, r in enumerate(table, 1):
        r["rank"] = i
    return table


# -- time-resolved sensitivity ------------------------------------------------------------------
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


def _perturbed(table, P, onehot, around, delta):
    """``table`` with one input (``onehot``) at level ``around + delta[b]`` inside bin ``b``,
    combined with its base level by Bliss independence."""
    level = around * P.sum(axis=1) + P @ delta
    col = 1.0 - (1.0 - table) * (1.0 - level[:, None])
    return table * (1.0 - onehot) + col * onehot


@eqx.filter_jit
def _sensitivity_program(
    network, solver, ts, times, table, P, onehots, around, key, params, outcome, i, n
):
    TRACE_COUNT["sensitivity"] += 1

    def per_target(onehot, level):
        def per_cell(delta):
            perturbed = _perturbed(table, P, onehot, level, delta)
            sol = _cells(network, solver, ts, times, perturbed, key, params, n)
            x = {s: sol.ys[:, i, k] for k, s in enumerate(network.species)}
            v = outcome.per_cell(x, sol.log_weight[:, i])
            return v, (v, sol.result)

        # Forward mode for the fixed-step CLE (memory independent of the number of steps);
        # reverse mode for diffrax-based ODE/LNA (their adjoint is reverse-only).
        jacobian = jax.jacfwd if solver.stochastic else jax.jacrev
        return jacobian(per_cell, has_aux=True)(jnp.zeros(P.shape[1], table.dtype))

    jac, (v, result) = jax.vmap(per_target)(onehots, around)
    return jac, v, result  # (targets, cells, bins), (targets, cells), (targets, cells)


@dataclasses.dataclass
class Sensitivity:
    """``grad[t, b]`` = d outcome / d u_target(t) for level changes held over bin ``b`` (mean over
    cells, with standard error ``se``), averaged over the levels ``around[t]`` at which the target
    is held over all bins on top of the base protocol; ``edges`` the bin edges (hours); ``value``
    the outcome there (first target and level); ``n_cells`` cells used, ``n_excluded`` left out
    (failed, or a non-finite path derivative)."""

    outcome: Outcome
    targets: tuple
    edges: np.ndarray
    grad: np.ndarray
    se: np.ndarray
    value: float
    value_se: float
    around: tuple = ()
    n_cells: int = 0
    n_excluded: int = 0

    def predicted_benefit(self, iv: Intervention) -> float:
        """First-order benefit of ``iv``: ``-sign * level * sum_b g_b * overlap_b / width_b``."""
        t = self.targets.index(iv.target)
        lo, hi = self.edges[:-1], self.edges[1:]
        overlap = np.clip(np.minimum(hi, iv.end_h) - np.maximum(lo, iv.start_h), 0.0, None)
        return float(-self.outcome.sign * iv.level * np.sum(self.grad[t] * overlap / (hi - lo)))

    def windows(self, fraction: float = 0.5) -> list[dict]:
        """Per target: the bin where acting helps most per hour (benefit per unit level and hour,
        ``grad / width``: bins of different widths compare fairly) and the contiguous run of bins
        around it whose gain per hour is >= ``fraction`` of that peak."""
        out = []
        for t, target in enumerate(self.targets):
            gain = -self.outcome.sign * self.grad[t] / np.diff(self.edges)
            b = int(np.argmax(gain))
            lo = hi = b
            if gain[b] > 0:
                while lo > 0 and gain[lo - 1] >= fraction * gain[b]:
                    lo -= 1
                while hi < len(gain) - 1 and gain[hi + 1] >= fraction * gain[b]:
                    hi += 1
            out.append(
                {
                    "target": target,
                    "peak_bin_h": [float(self.edges[b]), float(self.edges[b + 1])],
                    "peak_gain_per_h": float(gain[b]),
                    "window_h": [float(self.edges[lo]), float(self.edges[hi + 1])],
                }
            )
        return out


def sensitivity(
    network: grn.Network,
    base: Schedule | None,
    targets: Sequence[str],
    edges: Sequence[float] | np.ndarray,
    outcome: Outcome,
    solver: grn.AbstractSolver,
    n_cells: int,
    key,
    params: Mapping | None = None,
    ts=None,
    pre_h: float = 0.0,
    around: Mapping[str, float | Sequence[float]] | None = None,
) -> Sensitivity:
    """Time-resolved sensitivity d outcome / d u_target(t) over the time bins ``edges`` (hours).

    Pathwise: for a fixed key the noise of a `grn.CLE` path is fixed, and forward-mode
    differentiation (one tangent per target x bin) of each cell's outcome gives its exact
    derivative along the discretised path; their mean over cells estimates the derivative of the
    expected outcome (use a soft outcome such as ``sox10_low_fraction(..., softness=0.05)``: an
    indicator has zero pathwise derivative). ODE and LNA work the same way with one trajectory
    (reverse mode through diffrax). The derivative of an explicit Euler path is stable only where
    ``dt`` times the stiffest rate is small: for the melanoma model ``CLE(dt=0.005)``. Measured
    on 32 cells over 29 days with NAC 0.5: at ``dt = 0.02`` the tangent grew past 1e6 within
    12-48 h in 31 cells (the path itself stays bounded through its ``max(x, 0)`` clamps), at
    ``dt = 0.01`` in 1 cell, at ``dt = 0.005`` in none. Cells whose derivative is not finite are
    left out and counted (``n_excluded``); if every cell's is, an error names the remedy.

    ``around`` (target -> level, or a sequence of levels; default 0) is the level of each target,
    over all bins, at which its derivative is taken; with several levels ``grad`` is the mean of
    the derivatives at those levels (the same number for every target). With ``around = level /
    2`` the first-order prediction ``level * g(level / 2)`` of a benefit is the midpoint rule of
    ``int_0^level g(l) dl``, which follows a nonlinear response far better than the slope at 0;
    `midpoints` gives the composite rule over several panels, for a sigmoidal dose response.
    """
    check_targets(network, [Intervention(t, 0.0) for t in targets])
    if isinstance(solver, grn.SSA | grn.TauLeap):
        raise ValueError("sensitivity needs a pathwise-differentiable solver: grn.CLE, ODE or LNA")
    edges = _check_edges(edges)
    ts, (i,) = _output_times([outcome], ts, pre_h)
    grid = _grid(base, edges)
    table = _tables(network, base, [()], grid)[0]
    solver = _bind(network, solver, ts, grid)
    dtype = jnp.zeros(()).dtype
    nodes = _around_nodes(around, targets)
    n_nodes = nodes.shape[1]
    onehots = np.eye(len(network.inputs))[[network.inputs.index(t) for t in targets]]
    onehots = np.repeat(onehots, n_nodes, axis=0)  # (targets x nodes, inputs)
    params = None if params is None else {k: jnp.asarray(v, dtype) for k, v in params.items()}
    jac, v, result = _sensitivity_program(
        network,
        solver,
        jnp.asarray(ts, dtype),
        jnp.asarray(grid, dtype),
        jnp.asarray(table, dtype),
        jnp.asarray(_bin_matrix(grid, edges), dtype),
        jnp.asarray(onehots, dtype),
        jnp.asarray(nodes.ravel(), dtype),
        key,
        params,
        outcome,
        i,
        n_cells,
    )
    # the same cells and keys for every target and node; the value is the first run's
    ok = np.all(np.asarray(result) == 0, axis=0)
    jac = np.asarray(jac, np.float64).reshape(len(targets), n_nodes, -1, len(edges) - 1)
    jac = np.moveaxis(jac.mean(axis=1), 1, 0)[ok]  # (cells, targets, bins)
    v = np.asarray(v, np.float64)[0][ok]
    finite = np.all(np.isfinite(jac), axis=(1, 2))
    if not np.any(finite):
        raise ValueError(
            f"pathwise derivatives diverged (non-finite) with {solver!r}: use a smaller CLE dt "
            "(the Euler scheme's derivative is unstable where dt x the stiffest rate is large)"
        )
    # A cell whose path derivative overflowed (a propensity near 0, where d sqrt(a) / dx is
    # unbounded: the CLE is a poor model there) is left out and counted in `n_excluded`.
    jac, v = jac[finite], v[finite]
    n = max(int(finite.sum()), 1)
    se = jac.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(jac.shape[1:])
    return Sensitivity(
        outcome=outcome,
        targets=tuple(targets),
        edges=edges,
        grad=jac.mean(axis=0),
        se=se,
        value=float(v.mean()),
        value_se=float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        around=tuple(tuple(float(v) for v in row) for row in nodes),
        n_cells=n,
        n_excluded=int(np.size(finite) - finite.sum() + np.size(ok) - ok.sum()),
    )


def midpoints(level: float, panels: int = 1) -> list[float]:
    """Nodes of the composite midpoint rule over ``[0, level]``: ``level (k + 1/2) / panels``."""
    if not (isinstance(panels, int) and panels >= 1):
        raise ValueError(f"panels must be a positive integer, got {panels!r}")
    return [level * (k + 0.5) / panels for k in range(panels)]


def _around_nodes(around, targets) -> np.ndarray:
    """``around`` as a (targets, nodes) array of levels; targets left out are taken at 0."""
    around = dict(around or {})
    rows = {}
    for t, levels in around.items():
        levels = [levels] if isinstance(levels, int | float) else list(levels)
        if t not in targets or not levels or not all(0.0 <= lv <= 1.0 for lv in levels):
            raise ValueError(
                f"around: {t!r} must be a target with levels in [0, 1], got {around[t]!r}"
            )
        rows[t] = levels
    counts = {len(v) for v in rows.values()}
    if len(counts) > 1:
        raise ValueError(f"around: give every target the same number of levels, got {around}")
    n = counts.pop() if counts else 1
    return np.array([rows.get(t, [0.0] * n) for t in targets], np.float64)


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN where either side is constant."""

    def ranks(x):
        x = np.asarray(x, np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for value in np.unique(x):
            tie = x == value
            r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = math.sqrt(np.sum(ra**2) * np.sum(rb**2))
    return float(np.sum(ra * rb) / norm) if norm > 0 else math.nan


def compare(sens: Sensitivity, result: ScanResult) -> dict:
    """Spearman correlation between sensitivity-predicted and scanned benefits over the scan's
    rows whose target the sensitivity covers."""
    rows = [r for r in result.rows if r["target"] in sens.targets]
    predicted = [
        sens.predicted_benefit(Intervention(r["target"], r["level"], r["start_h"], r["duration_h"]))
        for r in rows
    ]
    scanned = [r["benefit"] for r in rows]
    return {"spearman": spearman(predicted, scanned), "predicted": predicted, "scanned": scanned}


# -- schedule optimisation ----------------------------------------------------------------------
def project_budget(levels, widths, budget, iterations: int = 60):
    """Euclidean projection of each row of ``levels`` onto ``{0 <= l <= 1, sum_b w_b l_b <= B}``.

    The KKT conditions give ``l = clip(v - lam w, 0, 1)`` with the smallest ``lam >= 0`` meeting
    the budget; ``lam`` is found by bisection (the dose is decreasing in ``lam``).
    """
    widths = jnp.asarray(widths, levels.dtype)

    def row(v, b):
        dose = lambda lam: jnp.sum(widths * jnp.clip(v - lam * widths, 0.0, 1.0))  # noqa: E731
        hi = jnp.max(jnp.abs(v)) / jnp.min(widths) + 1.0

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            over = dose(mid) > b
            return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

        lo, hi = jax.lax.fori_loop(0, iterations, body, (jnp.zeros_like(hi), hi))
        lam = jnp.where(dose(0.0) <= b, 0.0, hi)
        return jnp.clip(v - lam * widths, 0.0, 1.0)

    return jax.vmap(row)(levels, jnp.asarray(budget, levels.dtype))


def _set_levels(table, P, cols, levels):
    """Replace input ``cols[i]``'s levels inside the bins by ``levels[i]`` (outside unchanged)."""
    inside = P.sum(axis=1)
    for i, j in enumerate(cols):
        table = table.at[:, j].set(table[:, j] * (1.0 - inside) + P @ levels[i])
    return table


@eqx.filter_jit
def _objective(network, solver, ts, times, table, P, cols, key, params, outcome, i, n, levels):
    TRACE_COUNT["objective"] += 1

    def f(lv):
        sol = _cells(network, solver, ts, times, _set_levels(table, P, cols, lv), key, params, n)
        x = {s: sol.ys[:, i, k] for k, s in enumerate(network.species)}
        v = jnp.mean(outcome.per_cell(x, sol.log_weight[:, i]))
        return outcome.sign * v, v

    jacobian = jax.jacfwd if solver.stochastic else jax.jacrev
    grad, value = jacobian(f, has_aux=True)(levels)
    return value, grad


@dataclasses.dataclass
class Optimised:
    """A schedule optimised under a dose budget, validated against the best constant schedule on
    fresh cells (paired standard errors)."""

    inputs: tuple
    edges: np.ndarray
    budget_h: np.ndarray
    levels: np.ndarray
    constant: np.ndarray
    history: list
    outcome: dict
    benefit_over_base: tuple
    benefit_over_constant: tuple


def optimise_schedule(
    network: grn.Network,
    base: Schedule | None,
    inputs: Sequence[str],
    edges: Sequence[float] | np.ndarray,
    budget_h,
    outcome: Outcome,
    solver: grn.AbstractSolver,
    n_cells: int,
    key,
    params: Mapping | None = None,
    steps: int = 50,
    optimizer: optax.GradientTransformation | None = None,
    validate_outcome: Outcome | None = None,
    validate_cells: int | None = None,
    pre_h: float = 0.0,
    progress: bool = False,
) -> Optimised:
    """Optimise per-bin levels of ``inputs`` (replacing the base's levels inside the bins) under
    a dose budget ``sum_b width_b level_b <= budget_h`` per input (hours at level 1), by projected
    gradient steps of ``optimizer`` on the sample-average outcome of ``n_cells`` fixed cells
    (pathwise forward-mode gradients; use a soft outcome), keeping the best iterate. The default
    optimizer is normalised gradient descent with a cosine-decaying step from 0.5 (an adaptive
    per-coordinate scaling such as Adam's would erase the differences between bins that the
    budget projection trades off).

    The best constant schedule (each input at one level over all bins, within the budget) is
    picked from 4 levels (1/4 .. 1 of the affordable maximum) on the same cells; then the
    optimum, the best constant and the base are compared on fresh cells (``validate_outcome``,
    default ``outcome``).
    """
    check_targets(network, [Intervention(t, 0.0) for t in inputs])
    edges = _check_edges(edges)
    widths = np.diff(edges)
    budget = np.broadcast_to(np.asarray(budget_h, np.float64), (len(inputs),)).copy()
    if np.any(budget < 0):
        raise ValueError(f"dose budget must be >= 0 hours, got {budget.tolist()}")
    if optimizer is None:
        rate = optax.cosine_decay_schedule(0.5, max(steps, 1))
        optimizer = optax.chain(
            optax.normalize_by_update_norm(), optax.scale_by_learning_rate(rate)
        )
    key_opt, key_val = jax.random.split(key)
    ts, (i,) = _output_times([outcome], None, pre_h)
    grid = _grid(base, edges)
    table = jnp.asarray(_tables(network, base, [()], grid)[0])
    solver_b = _bind(network, solver, ts, grid)
    dtype = table.dtype
    cols = tuple(network.inputs.index(t) for t in inputs)
    P = jnp.asarray(_bin_matrix(grid, edges), dtype)
    p = None if params is None else {k: jnp.asarray(v, dtype) for k, v in params.items()}
    static = (
        network,
        solver_b,
        jnp.asarray(ts, dtype),
        jnp.asarray(grid, dtype),
        table,
        P,
        cols,
        key_opt,
        p,
        outcome,
        i,
        n_cells,
    )

    c_max = np.minimum(1.0, budget / (edges[-1] - edges[0]))
    grid_c = np.linspace(0.0, 1.0, 5)[1:]
    best_c, best_v = None, np.inf
    for frac in grid_c:
        c = jnp.asarray(np.repeat((frac * c_max)[:, None], len(widths), axis=1), dtype)
        v, _ = _objective(*static, c)
        if outcome.sign * float(v) < best_v:
            best_c, best_v = np.asarray(c), outcome.sign * float(v)

    levels = jnp.asarray(best_c, dtype)
    state = optimizer.init(levels)
    history = []
    from tqdm.auto import trange

    best = (best_v, np.asarray(best_c))
    for _ in trange(steps + 1, desc="optimise schedule", disable=not progress):
        value, grad = _objective(*static, levels)
        history.append(float(value))
        if outcome.sign * float(value) < best[0]:
            best = (outcome.sign * float(value), np.asarray(levels))
        updates, state = optimizer.update(grad, state, levels)
        levels = project_budget(optax.apply_updates(levels, updates), widths, budget)
    levels = best[1]

    tables = np.stack(
        [np.asarray(_set_levels(table, P, cols, jnp.asarray(lv, dtype))) for lv in (best_c, levels)]
    )
    check = validate_outcome or outcome
    ts_v, index = _output_times([check], None, pre_h)
    run = _run_tables(
        network,
        solver,
        ts_v,
        index,
        grid,
        np.concatenate([np.asarray(table)[None], tables]),
        ["base", "best_constant", "optimised"],
        (check,),
        validate_cells or n_cells,
        key_val,
        params,
        None,
        False,
    )
    value, se = run.outcome(0)
    over_base = run.benefit(0, reference=0)
    over_const = run.benefit(0, reference=1)
    return Optimised(
        inputs=tuple(inputs),
        edges=edges,
        budget_h=budget,
        levels=levels,
        constant=np.asarray(best_c)[:, 0],
        history=history,
        outcome={
            name: (float(value[k]), float(se[k]))
            for k, name in enumerate(("base", "best_constant", "optimised"))
        },
        benefit_over_base=(float(over_base[0][2]), float(over_base[1][2])),
        benefit_over_constant=(float(over_const[0][2]), float(over_const[1][2])),
    )
