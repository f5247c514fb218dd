"""`simulate`: validate at the boundary, then run one compiled program over all cells."""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from ._network import Network
from ._schedule import Schedule, no_schedule
from ._solution import RESULTS, Solution
from ._solvers import SSA, AbstractSolver, CellPath

TRACE_COUNT = {"ensemble": 0}
"""How often the ensemble program was traced (tests use it to prove nothing recompiles)."""


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
) -> Solution:
    """Simulate ``n_cells`` cells of ``network`` and return their trajectories at ``ts``.

    - ``solver``: `grn.SSA()` (default, exact), `grn.ODE()`, ... Deterministic solvers return one
      trajectory per parameter set.
    - ``key``: a `jax.random.key`; each cell gets its own key from ``jax.random.split(key,
      n_cells)``, so results do not depend on ``batch_size`` or the number of devices.
    - ``params`` / ``x0``: overrides of the network's defaults, by name. A value with a leading
      axis of length ``n_cells`` is per cell (extrinsic noise); scalars are shared.
    - ``schedule``: a `grn.Schedule` of the network's inputs (unscheduled inputs are 0).
    - ``batch_size``: cells simulated at once (bounds memory); ``progress`` shows a bar over
      batches. With several local devices the cells are sharded across them.
    - ``throw``: raise if any cell did not succeed (see `grn.RESULTS`); with ``throw=False`` the
      codes are returned in ``Solution.result`` instead.
    """
    if not isinstance(network, Network):
        raise TypeError(f"simulate expects a grn.Network, got {type(network).__name__}")
    solver = SSA() if solver is None else solver
    if not isinstance(solver, AbstractSolver):
        raise TypeError(
            f"solver must be a grn solver such as grn.SSA() or grn.ODE(), got {solver!r}"
        )
    solver.check(network)
    dtype = jnp.zeros(()).dtype
    ts = _check_times(ts, dtype)
    params = _merge_params(network, params, dtype)
    x0 = _merge_x0(network, x0, dtype, solver.stochastic)
    n_cells = _count_cells(params, x0, n_cells, solver.stochastic)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if schedule is not None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a grn.Schedule, got {type(schedule).__name__}")
        schedule.check_inputs(network.inputs)
        sched = schedule.as_arrays(network.inputs, dtype)
    else:
        sched = no_schedule(network.inputs, dtype)
    solver = solver.bind(network, _concrete(ts), _concrete(sched[0]))
    if key is None:
        if solver.stochastic:
            raise ValueError("a stochastic solver needs a PRNG key: pass key=jax.random.key(0)")
        key = jax.random.key(0)
    keys = jax.random.split(key, n_cells)

    per_cell = {k: v for k, v in params.items() if v.ndim == 1}
    shared = {k: v for k, v in params.items() if v.ndim == 0}
    cells = {"key": keys, "params": per_cell}
    if x0.ndim == 2:
        cells["x0"] = x0
    common = {"ts": ts, "params": shared, "x0": None if x0.ndim == 2 else x0, "schedule": sched}

    if not progress:
        out = _ensemble(network, solver, cells, common, batch_size, throw)
    else:
        out = _ensemble_with_progress(network, solver, cells, common, n_cells, batch_size, throw)
    return Solution(
        ts=ts,
        ys=out.ys,
        log_weight=out.log_weight,
        n_events=out.n_events,
        result=out.result,
        species=network.species,
        cov_within=out.cov,
    )


def _ensemble_with_progress(network, solver, cells, common, n_cells, batch_size, throw):
    """Host loop over batches of cells (never over cells) that drives a progress bar."""
    from tqdm.auto import tqdm

    size = batch_size or max(1, math.ceil(n_cells / 20))
    outs = []
    with tqdm(total=n_cells, desc=f"{type(solver).__name__}", unit="cell") as bar:
        for start in range(0, n_cells, size):
            stop = min(start + size, n_cells)
            # Pad the last batch to the batch size so it reuses the compiled program.
            idx = jnp.minimum(jnp.arange(start, start + size), n_cells - 1)
            chunk = jax.tree.map(lambda v: v[idx], cells)
            out = _ensemble(network, solver, chunk, common, None, throw)
            outs.append(jax.tree.map(lambda v: v[: stop - start], out))
            jax.block_until_ready(outs[-1])
            bar.update(stop - start)
    return jax.tree.map(
        lambda *vs: None if vs[0] is None else jnp.concatenate(vs),
        *outs,
        is_leaf=lambda v: v is None,
    )


@eqx.filter_jit
def _ensemble(network, solver, cells, common, batch_size, throw):
    TRACE_COUNT["ensemble"] += 1

    def one(cell):
        params = {**common["params"], **cell["params"]}
        x0 = cell["x0"] if "x0" in cell else common["x0"]
        path = solver.solve_cell(
            network, common["ts"], cell["key"], params, x0, *common["schedule"]
        )
        return CellPath(*path)

    def run_local(local_cells):
        n_local = jax.tree.leaves(local_cells)[0].shape[0]
        if batch_size is None or batch_size >= n_local:
            return jax.vmap(one)(local_cells)
        return jax.lax.map(one, local_cells, batch_size=batch_size)

    n_cells = cells["key"].shape[0]
    n_devices = jax.local_device_count()
    if n_devices > 1 and n_cells > 1:
        padded = math.ceil(n_cells / n_devices) * n_devices
        idx = jnp.minimum(jnp.arange(padded), n_cells - 1)
        mesh = jax.make_mesh((n_devices,), ("cells",), axis_types=(AxisType.Auto,))
        spec = PartitionSpec("cells")
        sharding = NamedSharding(mesh, spec)
        local = jax.tree.map(lambda v: jax.lax.with_sharding_constraint(v[idx], sharding), cells)
        # Cells are independent: no collectives, so the varying-axes check has nothing to add.
        out = jax.shard_map(
            run_local, mesh=mesh, in_specs=(spec,), out_specs=spec, check_vma=False
        )(local)
        out = jax.tree.map(lambda v: v[:n_cells], out)
    else:
        out = run_local(cells)
    if throw:
        ys = out.ys
        for code in RESULTS:
            if code != RESULTS.successful:
                ys = eqx.error_if(ys, jnp.any(out.result == code), RESULTS.message(code))
        out = out._replace(ys=ys)
    return out


# -- boundary validation (plain Python, naming the culprit) -----------------------------------
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
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(
                    f"parameter {name!r} must be finite and non-negative, got {value!r}"
                )
        merged[name] = value
    return {k: jnp.asarray(v, dtype) for k, v in merged.items()}


def _merge_x0(network, overrides, dtype, stochastic):
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
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"initial count of {name!r} must be finite and non-negative")
            if stochastic and np.any(arr != np.round(arr)):
                raise ValueError(
                    f"initial count of {name!r} must be an integer for a stochastic "
                    f"solver, got {np.asarray(arr).tolist()}"
                )
    if n is None:
        return jnp.stack(columns)
    return jnp.stack([jnp.broadcast_to(c, (n,)) for c in columns], axis=-1)


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
