"""`simulate`: validate at the boundary, then run one compiled program over all cells."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import overload

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from . import _distributions as _dist
from ._lanes import run_lanes
from ._network import Network
from ._schedule import Schedule, no_schedule
from ._solution import RESULTS, Solution
from ._solvers import CLE, ODE, SSA, AbstractSolver, CellPath
from ._streaming import EnsembleMoments, Moments, chunk_stats, combine, to_result

TRACE_COUNT = {"ensemble": 0}
"""How often the ensemble program was traced (tests use it to prove nothing recompiles)."""

STREAM_BATCH = 16_384
"""Default cells per chunk of a streaming (``reduce=``) run: ~60 MB of float32 trajectories at
73 output times and 13 species, and enough cells per step to fill a GPU."""


@overload
def simulate(
    network: Network,
    ts,
    key=None,
    solver: AbstractSolver | None = None,
    n_cells: int | None = None,
    params: Mapping | None = None,
    x0: Mapping | None = None,
    schedule: Schedule | None = None,
    batch_size: int | None = None,
    throw: bool = True,
    progress: bool = False,
    reduce: None = None,
    equilibrate: float | None = None,
) -> Solution: ...


@overload
def simulate(
    network: Network,
    ts,
    key=None,
    solver: AbstractSolver | None = None,
    n_cells: int | None = None,
    params: Mapping | None = None,
    x0: Mapping | None = None,
    schedule: Schedule | None = None,
    batch_size: int | None = None,
    throw: bool = True,
    progress: bool = False,
    reduce: str | Moments = ...,
    equilibrate: float | None = None,
) -> EnsembleMoments: ...


def simulate(
    network: Network,
    ts,
    key=None,
    solver: AbstractSolver | None = None,
    n_cells: int | None = None,
    params: Mapping | None = None,
    x0: Mapping | None = None,
    schedule: Schedule | None = None,
    batch_size: int | None = None,
    throw: bool = True,
    progress: bool = False,
    reduce: str | Moments | None = None,
    equilibrate: float | None = None,
) -> Solution | EnsembleMoments:
    """Simulate ``n_cells`` cells of ``network`` and return their trajectories at ``ts``.

    - ``solver``: `grn.SSA()` (default, exact), `grn.ODE()`, ... Deterministic solvers return one
      trajectory per parameter set.
    - ``key``: a `jax.random.key`; each cell gets its own key from ``jax.random.split(key,
      n_cells)``, so results do not depend on ``batch_size`` or the number of devices.
    - ``params`` / ``x0``: overrides of the network's defaults, by name. A value with a leading
      axis of length ``n_cells`` is per cell (extrinsic noise); scalars are shared.
    - Parameters the network declares in ``cell_params`` (a `grn.Distribution`) are drawn per
      cell from ``jax.random.fold_in(key, 2**32 - 1)`` (never a cell's own key); an explicit
      value in ``params`` (per cell or shared) wins, a `grn.Distribution` there replaces the
      declared one, and ``params={"k": dist.sample(None, n, stratified=True)}`` gives stratified
      draws. A deterministic solver without ``n_cells`` uses each distribution's median.
    - ``equilibrate``: hours each cell first runs untreated (every input 0, as before a
      schedule's first breakpoint), from ``x0`` up to ``ts[0]``, with its own parameters and a
      key of its own; the protocol then starts from that state (``log_weight`` from ``ts[0]``).
      Defaults to the network's ``equilibrate_h`` when the run starts from the network's ``x0``,
      and to 0 when ``x0`` is given. ``n_events`` and a path ``log_likelihood`` include the
      pre-run; a failure there is the cell's result code.
    - ``schedule``: a `grn.Schedule` of the network's inputs (unscheduled inputs are 0).
    - ``batch_size``: cells simulated at once (bounds memory); ``progress`` shows a bar over
      batches. Solvers that step each cell until it is done (`grn.SSA`, `grn.TauLeap`,
      `grn.Hybrid`) keep ``batch_size`` cells in flight and start the next cell in a lane whose
      cell has finished (`grn._lanes`; the same paths, bit for bit); on CPU devices the SSA
      does so with `grn.SSA.cpu_lanes` cells per device by default. With several
      devices the cells are sharded across them, also across processes (hosts) joined by
      `jax.distributed.initialize`, each of which gets the whole result.
    - ``throw``: raise if any cell did not succeed (see `grn.RESULTS`); with ``throw=False`` the
      codes are returned in ``Solution.result`` instead.
    - ``reduce``: ``"moments"`` or `grn.Moments` (with histograms) returns a
      `grn.EnsembleMoments` accumulated chunk by chunk of ``batch_size`` cells (default
      16,384) instead of every trajectory, so memory does not grow with ``n_cells``. With
      ``throw=False`` the moments exclude failed cells (``count`` successful cells enter them)
      and ``result_counts[code]`` counts the cells per `grn.RESULTS` code, failed ones included.
    """
    if not isinstance(network, Network):
        raise TypeError(f"simulate expects a grn.Network, got {type(network).__name__}")
    solver = SSA() if solver is None else solver
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            f"solver must be a grn solver such as grn.SSA() or grn.ODE(), got {solver!r}"
        )
    if network.stochastic_refusal is not None and not isinstance(solver, ODE):
        raise ValueError(
            f"{type(solver).__name__} cannot simulate this network: {network.stochastic_refusal}"
            f"; use grn.ODE()"
        )
    solver.check(network)
    if isinstance(solver, ODE) and solver.fallback is not None and reduce is None:
        options = dict(
            n_cells=n_cells, params=params, x0=x0, schedule=schedule, batch_size=batch_size,
            progress=progress, equilibrate=equilibrate,
        )  # fmt: skip
        return _with_fallback(network, ts, key, solver, throw, options)
    dtype = jnp.zeros(()).dtype
    ts = _check_times(ts, dtype)
    equilibrate = _dist.equilibrate_hours(
        network.equilibrate_h if equilibrate is None and x0 is None else equilibrate
    )
    distributions, params = _dist.split_overrides(network, params)
    _dist.check_per_cell_length(params, n_cells)
    params = _merge_params(network, params, dtype)
    x0s = _merge_x0(network, x0, dtype, solver.stochastic)
    cells_asked = n_cells
    n_cells = _count_cells(params, x0s, n_cells, solver.stochastic)
    if distributions:  # drawn per cell; one deterministic trajectory takes the medians
        if solver.stochastic or cells_asked is not None or n_cells > 1:
            n_draw = n_cells if cells_asked is None else cells_asked
            draws = _dist.draw(distributions, _aux_key(key, solver, 0), n_draw)
        else:
            draws = {name: d.median for name, d in distributions.items()}
        params.update({k: jnp.asarray(v, dtype) for k, v in draws.items()})
        n_cells = _count_cells(params, x0s, cells_asked, solver.stochastic)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if schedule is not None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a grn.Schedule, got {type(schedule).__name__}")
        schedule.check_inputs(network.inputs)
        sched = schedule.as_arrays(network.inputs, dtype)
    else:
        sched = no_schedule(network.inputs, dtype)
    hist_index, hist_names, edges = _check_reduce(network, reduce, dtype)
    unbound, solver = solver, solver.bind(network, _concrete(ts), _concrete(sched[0]))
    if key is None:
        if solver.stochastic:
            raise ValueError("a stochastic solver needs a PRNG key: pass key=jax.random.key(0)")
        key = jax.random.key(0)
    keys = jax.random.split(key, n_cells)

    per_cell = {k: v for k, v in params.items() if v.ndim == 1}
    shared = {k: v for k, v in params.items() if v.ndim == 0}
    cells = {"key": keys, "params": per_cell}
    if x0s.ndim == 2:
        cells["x0"] = x0s
    common = {"ts": ts, "params": shared, "x0": None if x0s.ndim == 2 else x0s, "schedule": sched}
    if hist_index is not None:
        cells["valid"] = jnp.ones(n_cells, bool)
        common["edges"] = edges
    if equilibrate > 0:
        cells["pre_key"] = jax.random.split(_aux_key(key, unbound, 1), n_cells)
        common["equilibrate"] = _equilibration(network, unbound, ts, equilibrate, dtype)

    if not progress:
        out = _ensemble(network, solver, cells, common, batch_size, throw, hist_index)
    else:
        out = _ensemble_with_progress(
            network, solver, cells, common, n_cells, batch_size, throw, hist_index
        )
    if hist_index is not None:
        return to_result(out, ts, network.species, hist_names, edges)
    assert isinstance(out, CellPath)
    return Solution(
        ts=ts,
        ys=out.ys,
        log_weight=out.log_weight,
        n_events=out.n_events,
        result=out.result,
        species=network.outputs if out.ys.shape[-1] > network.n_species else network.species,
        cov_within=out.cov,
        log_likelihood=out.log_likelihood,
    )


def _ensemble_with_progress(network, solver, cells, common, n_cells, batch_size, throw, hist_index):
    """Host loop over batches of cells (never over cells) that drives a progress bar."""
    from tqdm.auto import tqdm

    size = min(batch_size or max(1, math.ceil(n_cells / 20)), n_cells)
    outs = []
    with tqdm(total=n_cells, desc=f"{type(solver).__name__}", unit="cell") as bar:
        for start in range(0, n_cells, size):
            stop = min(start + size, n_cells)
            # Pad the last batch to the batch size so it reuses the compiled program.
            idx = jnp.minimum(jnp.arange(start, start + size), n_cells - 1)
            chunk = jax.tree.map(lambda v: v[idx], cells)
            if hist_index is None:
                out = _ensemble(network, solver, chunk, common, None, throw, None)
                outs.append(jax.tree.map(lambda v: v[: stop - start], out))
            else:
                chunk["valid"] = jnp.arange(start, start + size) < n_cells
                out = _ensemble(network, solver, chunk, common, None, throw, hist_index)
                outs = [out] if not outs else [_combine(outs[0], out)]
            jax.block_until_ready(outs[-1])
            bar.update(stop - start)
    if hist_index is not None:
        return outs[0]
    return jax.tree.map(
        lambda *vs: None if vs[0] is None else jnp.concatenate(vs),
        *outs,
        is_leaf=lambda v: v is None,
    )


_combine = jax.jit(combine)


@eqx.filter_jit
def _ensemble(network, solver, cells, common, batch_size, throw, hist_index):
    """All cells' paths, or with ``hist_index`` (a tuple) their streamed statistics."""
    TRACE_COUNT["ensemble"] += 1

    def inputs(cell):
        """One cell's key, parameters (shared and its own) and initial state."""
        params = {**common["params"], **cell["params"]}
        return cell["key"], params, cell["x0"] if "x0" in cell else common["x0"]

    def one(cell):
        _, params, x0 = inputs(cell)
        pre = None
        if "equilibrate" in common:  # untreated, from x0 up to ts[0]; the protocol starts there
            pre_solver, pre_ts, untreated = common["equilibrate"]
            pre = CellPath(
                *pre_solver.solve_cell(network, pre_ts, cell["pre_key"], params, x0, *untreated)
            )
            x0 = pre.ys[-1].astype(x0.dtype)
        path = CellPath(
            *solver.solve_cell(network, common["ts"], cell["key"], params, x0, *common["schedule"])
        )
        return path if pre is None else _after_equilibration(pre, path)

    def in_lanes(local_cells, program, lanes):
        """`one` over the cells, ``lanes`` at a time in refilled lanes (`run_lanes`), or None
        where the pre-run's solver cannot run that way."""
        pre = None
        if "equilibrate" in common:
            pre_solver, pre_ts, untreated = common["equilibrate"]
            pre_program = pre_solver.program(network, pre_ts, *untreated)
            if pre_program is None:
                return None
            pre_inputs = lambda c: (c["pre_key"], *inputs(c)[1:])  # noqa: E731
            pre = run_lanes(pre_program, local_cells, lanes, pre_inputs, pre_solver.lane_halvings)
            x0 = local_cells["x0"] if "x0" in local_cells else common["x0"]
            local_cells = {**local_cells, "x0": pre.ys[:, -1].astype(x0.dtype)}
        path = run_lanes(program, local_cells, lanes, inputs, solver.lane_halvings)
        return path if pre is None else jax.vmap(_after_equilibration)(pre, path)

    def run_local(local_cells):
        n_local = jax.tree.leaves(local_cells)[0].shape[0]
        if hist_index is not None:
            return _stream(one, local_cells, batch_size, hist_index, common["edges"])
        program = solver.program(network, common["ts"], *common["schedule"])
        lanes = batch_size
        if lanes is None and jax.default_backend() == "cpu":
            lanes = solver.cpu_lanes
        out = None if program is None else in_lanes(local_cells, program, lanes or n_local)
        if out is not None:
            return out
        if lanes is None or lanes >= n_local:
            return jax.vmap(one)(local_cells)
        return jax.lax.map(one, local_cells, batch_size=lanes)

    n_cells = cells["key"].shape[0]
    n_devices = jax.device_count()  # every process's devices (hosts of jax.distributed)
    if n_devices > 1 and n_cells > 1:
        padded = math.ceil(n_cells / n_devices) * n_devices
        idx = jnp.minimum(jnp.arange(padded), n_cells - 1)
        mesh = jax.make_mesh((n_devices,), ("cells",), axis_types=(AxisType.Auto,))
        spec = PartitionSpec("cells")
        sharding = NamedSharding(mesh, spec)
        local = jax.tree.map(lambda v: v[idx], cells)
        if hist_index is not None:  # padding cells repeat the last one: leave them out
            local["valid"] = local["valid"] & (jnp.arange(padded) < n_cells)
        local = jax.lax.with_sharding_constraint(local, sharding)
        # Cells are independent: no collectives, so the varying-axes check has nothing to add.
        if hist_index is None:
            out = jax.shard_map(
                run_local, mesh=mesh, in_specs=(spec,), out_specs=spec, check_vma=False
            )(local)
            out = jax.tree.map(lambda v: v[:n_cells], out)
        else:  # one set of statistics per device, merged here in device order
            per_device = jax.shard_map(
                lambda c: jax.tree.map(lambda v: v[None], run_local(c)),
                mesh=mesh,
                in_specs=(spec,),
                out_specs=spec,
                check_vma=False,
            )(local)
            out = jax.tree.map(lambda v: v[0], per_device)
            for d in range(1, n_devices):
                out = combine(out, jax.tree.map(lambda v, d=d: v[d], per_device))
        if jax.process_count() > 1:  # several hosts: every process gets the whole result
            out = jax.lax.with_sharding_constraint(out, NamedSharding(mesh, PartitionSpec()))
    else:
        out = run_local(cells)
    if hist_index is not None:
        assert isinstance(out, dict)
        if throw:
            mean = out["mean"]
            for code in RESULTS:
                if code != RESULTS.successful:
                    failed = out["result_counts"][code] > 0
                    mean = eqx.error_if(mean, failed, RESULTS.message(code))
            out = {**out, "mean": mean}
        return out
    assert isinstance(out, CellPath)
    return out._replace(ys=_checked(out.ys, out.result)) if throw else out


def _checked(ys, result):
    """``ys``, raising if any cell's ``result`` is not successful (`eqx.error_if`)."""
    for code in RESULTS:
        if code != RESULTS.successful:
            ys = eqx.error_if(ys, jnp.any(result == code), RESULTS.message(code))
    return ys


def _with_fallback(network, ts, key, solver, throw, options):
    """`grn.ODE`'s automatic method: its ``method`` first; where a cell's integration failed
    (step budget exhausted: a stiff system) every cell again with its ``fallback`` method. The
    check needs concrete results; under a JAX transformation only ``method`` runs."""
    first = dataclasses.replace(solver, fallback=None)
    sol = simulate(network, ts, key, solver=first, throw=False, **options)
    assert isinstance(sol, Solution)
    failed = not isinstance(sol.result, jax.core.Tracer) and bool(
        np.any(np.asarray(sol.result) == RESULTS.solver_failed)
    )
    if failed:
        stiff = dataclasses.replace(first, method=solver.fallback)
        return simulate(network, ts, key, solver=stiff, throw=throw, **options)
    return eqx.tree_at(lambda s: s.ys, sol, _checked(sol.ys, sol.result)) if throw else sol


def _stream(one, cells, batch_size, hist_index, edges):
    """Statistics of ``cells``: a scan over chunks that keeps one chunk's paths at a time."""
    n = cells["key"].shape[0]
    size = min(batch_size or STREAM_BATCH, n)
    n_chunks = math.ceil(n / size)
    size = math.ceil(n / n_chunks)  # the fewest padding cells for this many chunks
    idx = jnp.minimum(jnp.arange(n_chunks * size), n - 1)
    padded = jax.tree.map(lambda v: v[idx], cells)
    padded["valid"] = padded["valid"] & (jnp.arange(n_chunks * size) < n)
    chunks = jax.tree.map(lambda v: v.reshape(n_chunks, size, *v.shape[1:]), padded)

    def stats(chunk):
        path = jax.vmap(one)(chunk)
        ok = chunk["valid"] & (path.result == RESULTS.successful)
        return chunk_stats(path, ok, chunk["valid"], hist_index, edges)

    first = stats(jax.tree.map(lambda v: v[0], chunks))
    if n_chunks == 1:
        return first
    rest = jax.tree.map(lambda v: v[1:], chunks)
    acc, _ = jax.lax.scan(lambda acc, c: (combine(acc, stats(c)), None), first, rest)
    return acc


def _after_equilibration(pre: CellPath, path: CellPath) -> CellPath:
    """The protocol's path, with the pre-run's failures, work and path likelihood carried over."""
    ok = pre.result == RESULTS.successful
    extra = {}
    if path.log_likelihood is not None:
        extra["log_likelihood"] = path.log_likelihood + pre.log_likelihood[-1]
    return path._replace(
        result=jnp.where(ok, path.result, pre.result),
        n_events=path.n_events + pre.n_events,
        **extra,
    )


def _aux_key(key, solver, stream: int):
    """The key of the draws (stream 0) or the pre-equilibration (1): never a cell's own key."""
    if key is None:
        if solver.stochastic:
            raise ValueError("a stochastic solver needs a PRNG key: pass key=jax.random.key(0)")
        key = jax.random.key(0)
    return jax.random.fold_in(jax.random.fold_in(key, _dist.AUX_TAG), stream)


def _equilibration(network, solver, ts, hours, dtype):
    """(bound solver, times [ts[0] - hours, ts[0]], the all-zero schedule) of the pre-run."""
    for i, event in enumerate(network.events):
        params = [target for target, _ in event.assign if target in network.params]
        if params:
            raise ValueError(
                f"equilibrate: event {i} {event.label} assigns parameter {params[0]!r}, which "
                f"the pre-equilibration cannot carry into the protocol; pass equilibrate=0"
            )
    untreated = no_schedule(network.inputs, dtype)
    pre_ts = jnp.stack([ts[0] - hours, ts[0]])
    t0 = _concrete(ts)
    if isinstance(solver, CLE):
        # Its loop may be sized for the protocol already (callers that bind once and reuse the
        # solver, as fitting does); the pre-run needs a loop of its own length. Sized from the
        # duration, plus one restart per network event (t0 may be traced).
        window = np.array([0.0, hours]) if t0 is None else np.array([t0[0] - hours, t0[0]])
        bound = CLE(solver.dt).bind(network, window, np.zeros(0))  # untreated: no breakpoints
        assert isinstance(bound, CLE) and bound.max_steps is not None
        return CLE(solver.dt, bound.max_steps + len(network.events)), pre_ts, untreated
    concrete = None if t0 is None else np.array([t0[0] - hours, t0[0]])
    return solver.bind(network, concrete, _concrete(untreated[0])), pre_ts, untreated


# -- boundary validation (plain Python, naming the culprit) -----------------------------------
def _check_reduce(network, reduce, dtype):
    """``(species indices, names, edges)`` of the histograms, or Nones without ``reduce``."""
    if reduce is None:
        return None, None, None
    if isinstance(reduce, str):
        if reduce != "moments":
            raise ValueError(f'reduce must be None, "moments" or grn.Moments(...), got {reduce!r}')
        reduce = Moments()
    if not isinstance(reduce, Moments):
        raise TypeError(
            f'reduce must be None, "moments" or grn.Moments(...), got {type(reduce).__name__}'
        )
    for name in reduce.histograms:
        if name not in network.species:
            raise KeyError(
                f"histogram of unknown species {name!r} (species: {list(network.species)})"
            )
    names = tuple(reduce.histograms)
    index = tuple(network.species.index(name) for name in names)
    edges = tuple(jnp.asarray(reduce.histograms[name], dtype) for name in names)
    return index, names, edges


def _concrete(value) -> np.ndarray | None:
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def _check_times(ts, dtype):
    arr = _concrete(ts)
    if arr is not None:
        if arr.ndim != 1 or arr.size < 1:
            raise ValueError(f"ts must be a 1-D array of output times, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("ts must be finite")
        if np.any(np.diff(arr) <= 0):
            bad = int(np.argmax(np.diff(arr) <= 0))
            raise ValueError(
                f"output times must be strictly increasing: ts[{bad}] = {arr[bad]} is followed "
                f"by ts[{bad + 1}] = {arr[bad + 1]}"
            )
    return jnp.asarray(ts, dtype)


def _merge_params(network, overrides, dtype):
    signed = network.stochastic_refusal is not None
    merged = dict(network.params)
    for name, value in (overrides or {}).items():
        if name not in network.params:
            raise KeyError(
                f"unknown parameter {name!r} (the network's parameters: {list(network.params)})"
            )
        arr = _concrete(value)
        if arr is not None:
            if arr.ndim > 1:
                raise ValueError(
                    f"parameter {name!r} must be a scalar or a per-cell vector, "
                    f"got shape {arr.shape}"
                )
            if not np.all(np.isfinite(arr)) or (np.any(arr < 0) and not signed):
                raise ValueError(
                    f"parameter {name!r} must be finite and non-negative, got {value!r}"
                )
        merged[name] = value
    return {k: jnp.asarray(v, dtype) for k, v in merged.items()}


def _merge_x0(network, overrides, dtype, stochastic):
    signed = network.stochastic_refusal is not None
    if overrides is None:
        columns = [jnp.asarray(v, dtype) for v in network.x0]
    elif isinstance(overrides, Mapping):
        for name in overrides:
            if name not in network.species:
                raise KeyError(
                    f"x0 names unknown species {name!r} (species: {list(network.species)})"
                )
        columns = [
            jnp.asarray(overrides.get(s, network.x0[i]), dtype)
            for i, s in enumerate(network.species)
        ]
    else:
        raise TypeError("x0 must be a mapping of species name -> initial count")
    shapes = {c.shape for c in columns}
    n = max((s[0] for s in shapes if len(s) == 1), default=None)
    for name, col in zip(network.species, columns):
        if col.ndim > 1 or (col.ndim == 1 and col.shape[0] != n):
            raise ValueError(f"initial count of {name!r} must be a scalar or a per-cell vector")
        arr = _concrete(col)
        if arr is not None:
            if not np.all(np.isfinite(arr)) or (np.any(arr < 0) and not signed):
                raise ValueError(f"initial count of {name!r} must be finite and non-negative")
            if stochastic and np.any(arr != np.round(arr)):
                raise ValueError(
                    f"initial count of {name!r} must be an integer for a stochastic "
                    f"solver, got {np.asarray(arr).tolist()}"
                )
    if n is None:
        x0 = jnp.stack(columns) if columns else jnp.zeros((0,), dtype)
    else:
        x0 = jnp.stack([jnp.broadcast_to(c, (n,)) for c in columns], axis=-1)
    if stochastic and any(_concrete(c) is None for c in columns):  # traced: checked in the run
        x0 = eqx.error_if(
            x0,
            jnp.any(x0 != jnp.round(x0)),
            "initial counts must be integers for a stochastic solver; under jit the values "
            "are checked when the simulation runs (they are not rounded)",
        )
    return x0


def _count_cells(params, x0, n_cells, stochastic):
    sizes = {v.shape[0] for v in params.values() if v.ndim == 1}
    if x0.ndim == 2:
        sizes.add(x0.shape[0])
    if len(sizes) > 1:
        raise ValueError(
            f"per-cell parameters and initial counts disagree on the number of cells: "
            f"{sorted(sizes)}"
        )
    if n_cells is None:
        return sizes.pop() if sizes else 1
    if not isinstance(n_cells, int | np.integer) or isinstance(n_cells, bool) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    if sizes and sizes != {n_cells}:
        raise ValueError(f"n_cells={n_cells} but per-cell values have {sizes.pop()} entries")
    if not stochastic and not sizes:
        return 1  # a deterministic solver gives the same trajectory for every cell
    return int(n_cells)
