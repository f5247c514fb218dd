"""Scenarios simulated on the same cells, scans of interventions and their ranking.

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
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import grn
from grn import Schedule

from ._intervention import (
    DAY,
    Intervention,
    _grid,
    _schedule_of,
    _tables,
    check_targets,
    levels_for,
)
from ._outcomes import Outcome, outcome_span, window_values

INTEGRATION_STEP_H = 6.0
"""Default output step (h) where an outcome is integrated over a window (trapezoid rule)."""
TRACE_COUNT = {"scenarios": 0, "sensitivity": 0, "objective": 0}
"""How often each compiled program was traced: the scenario program here, the sensitivity and
objective programs of `_sensitivity` and `_schedule_optimisation` (tests prove that new values
never recompile)."""


def _output_times(outcomes, ts, pre_h):
    """Output times (default: from ``-pre_h`` to the latest outcome time, daily, every
    `INTEGRATION_STEP_H` where an outcome is integrated) and each outcome's `outcome_span`."""
    if ts is None:
        end = max(o.time_h for o in outcomes)
        step = INTEGRATION_STEP_H if any(o.integrated for o in outcomes) else DAY
        ends = [t for o in outcomes for t in (o.start_h, o.time_h) if t is not None]
        ts = np.union1d(np.arange(-pre_h, end + 1e-9, step), [t for t in ends if t >= -pre_h])
    ts = np.asarray(ts, np.float64)
    return ts, tuple(outcome_span(o, ts) for o in outcomes)


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
        values = [
            window_values(o, network.species, ts, sol.ys, sol.log_weight, span)
            for o, span in zip(outcomes, index)
        ]
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
    params = None if params is None else jax.tree.map(lambda v: jnp.asarray(v, dtype), dict(params))

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
    for s in np.flatnonzero(~np.any(result == 0, axis=1)):
        codes = {
            grn.RESULTS(int(c)).name: int(k)
            for c, k in zip(*np.unique(result[s], return_counts=True))
        }
        raise RuntimeError(
            f"scenario {scenarios[s]!r}: all {result.shape[1]} cells failed ({codes}); no "
            f"outcome can be estimated. With grn.CLE, a smaller dt usually cures this"
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


@dataclasses.dataclass
class ScanResult:
    """A scan's table: one row per (target, start_h, duration_h, level) plus the base protocol.

    ``rows`` are dicts with ``target, start_h, duration_h, level, outcome, outcome_se, benefit,
    benefit_se``; ``base`` the base protocol's outcome and SE; ``run`` the underlying
    `ScenarioRun` (scenario 0 is the base protocol, then one per row, then one per pair);
    ``pairs`` one dict per pair of targets given together (``target`` ``"A+B"``, the row keys,
    and ``over_best_single``, ``over_best_single_se``: the pair's benefit minus that of the
    better of its two singles at the same start, paired over cells).
    """

    outcome: Outcome
    base: tuple[float, float]
    rows: list[dict]
    run: ScenarioRun
    pairs: list = dataclasses.field(default_factory=list)

    def row_outcome(self, o: int) -> list[dict]:
        """The rows for outcome ``o`` of the run (0: the scan's; then ``extra_outcomes``)."""
        value, se = self.run.outcome(o)
        benefit, benefit_se = self.run.benefit(o)
        return [
            {
                **r,
                "outcome": float(value[i + 1]),
                "outcome_se": float(se[i + 1]),
                "benefit": float(benefit[i + 1]),
                "benefit_se": float(benefit_se[i + 1]),
            }
            for i, r in enumerate(self.rows)
        ]


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
    pairs: Sequence[Sequence[str]] = (),
    **options,
) -> ScanResult:
    """Scan ``targets x start_h x duration_h x levels`` on top of ``base``, in one batched run.

    ``levels`` is one level, a list of levels, or a mapping target -> level(s). ``pairs`` (each
    two targets) are given together at the earliest start, longest duration and each target's
    first level, in the same run. Benefits are paired differences against the base protocol on
    the same cells. ``options`` go to `simulate_scenarios` (``ts``, ``pre_h``, ``chunk``,
    ``progress``).
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
        for level in levels_for(levels, t)
    ]
    check_targets(network, grid)
    start, duration = float(min(start_h)), float(max(duration_h))
    couples = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"a pair must name two different targets, got {pair!r}")
        couples.append(
            tuple(
                Intervention(t, levels_for(levels, t)[0], float(start), float(duration))
                for t in pair
            )
        )
    check_targets(network, [iv for c in couples for iv in c])
    scenarios = [()] + [(iv,) for iv in grid] + couples
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
    return ScanResult(
        outcome, (float(value[0]), float(se[0])), rows, run, _pair_rows(run, grid, couples)
    )


def _pair_rows(run, grid, couples) -> list[dict]:
    """Rows of the pairs (scenarios after the singles), with the gain over the better single."""
    value, se = run.outcome(0)
    benefit, benefit_se = run.benefit(0)
    sign, v = run.outcomes[0].sign, run.values[:, 0, :]
    out = []
    for k, couple in enumerate(couples):
        s = 1 + len(grid) + k
        singles = [1 + grid.index(single) for single in couple]  # each single is in the grid
        best = max(singles, key=lambda i: benefit[i])
        ok = run.ok[s] & run.ok[best]
        d = (sign * (v[best] - v[s]))[ok]
        out.append(
            {
                "target": "+".join(iv.target for iv in couple),
                "start_h": couple[0].start_h,
                "duration_h": couple[0].duration_h,
                "level": "+".join(f"{iv.level:g}" for iv in couple),
                "outcome": float(value[s]),
                "outcome_se": float(se[s]),
                "benefit": float(benefit[s]),
                "benefit_se": float(benefit_se[s]),
                "over_best_single": float(d.mean()),
                "over_best_single_se": float(d.std(ddof=1) / np.sqrt(d.size))
                if d.size > 1
                else 0.0,
            }
        )
    return out


def _crossing(starts, b, keep):
    """The start where the piecewise-linear benefit ``b(starts)`` first falls to ``keep x b[0]``
    (``starts[-1]`` if it never does, NaN where ``b[0] <= 0``)."""
    if not b[0] > 0:
        return math.nan
    line = keep * b[0]
    for k in range(1, len(b)):
        if b[k] < line:
            return starts[k - 1] + (starts[k] - starts[k - 1]) * (b[k - 1] - line) / (
                b[k - 1] - b[k]
            )
    return starts[-1]


def delay_cost(result: ScanResult, scenarios, starts, keep=0.8, o=0, n_boot=200) -> dict:
    """From per-cell benefits at ``starts`` (scenario indices ``scenarios``, outcome ``o``): the
    cost of each day of delay (minus the least-squares slope of benefit on start, per day; per
    cell, so its SE is paired) and the latest start keeping ``keep`` of the first start's
    benefit, interpolated linearly between starts (``window_h``; the last start if the benefit
    never falls that far, ``window_reached`` False), with a bootstrap SE over cells."""
    run = result.run
    sign = run.outcomes[o].sign
    ok = run.ok[0] & np.all(run.ok[list(scenarios)], axis=0)
    d = sign * (run.values[0, o, ok][None, :] - run.values[list(scenarios), o][:, ok])
    s = np.asarray(starts, np.float64) / DAY
    n = d.shape[1]
    out = {"cost_per_day": math.nan, "cost_per_day_se": math.nan}
    if len(s) > 1 and n > 1:
        slope = (s - s.mean()) @ (d - d.mean(axis=0)) / np.sum((s - s.mean()) ** 2)
        out = {
            "cost_per_day": float(-slope.mean()),
            "cost_per_day_se": float(slope.std(ddof=1) / math.sqrt(n)),
        }
    starts = list(np.asarray(starts, np.float64))
    mean = d.mean(axis=1)
    window = _crossing(starts, mean, keep)
    rng = np.random.default_rng(0)
    boot = [
        _crossing(starts, d[:, rng.integers(0, n, n)].mean(axis=1), keep) for _ in range(n_boot)
    ]
    boot = np.asarray(boot)
    out["window_h"] = window
    out["window_se_h"] = float(np.nanstd(boot, ddof=1)) if np.isfinite(boot).sum() > 1 else math.nan
    out["window_reached"] = bool(math.isfinite(window) and any(mean[1:] < keep * mean[0]))
    return out


def rank(result: ScanResult, keep: float = 0.8, o: int = 0) -> list[dict]:
    """Targets ranked by their earliest-start benefit for outcome ``o`` (at each target's first
    level and longest duration), with benefit against start time and the intervention window:
    the latest start before the benefit first drops below ``keep`` x the earliest-start benefit;
    ``delay`` holds `delay_cost` (cost per day of delay, interpolated window, their SEs)."""
    table = []
    all_rows = result.rows if o == 0 else result.row_outcome(o)
    scenario = {id(r): i + 1 for i, r in enumerate(all_rows)}
    for target in dict.fromkeys(r["target"] for r in all_rows):
        rows = [r for r in all_rows if r["target"] == target]
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
                "benefit_se_by_start": {r["start_h"]: r["benefit_se"] for r in rows},
                "delay": delay_cost(
                    result, [scenario[id(r)] for r in rows], [r["start_h"] for r in rows], keep, o
                ),
            }
        )
    table.sort(key=lambda r: -r["benefit"])
    for i, r in enumerate(table, 1):
        r["rank"] = i
    return table
