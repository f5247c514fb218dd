"""A fitting problem: network + data + observables + parameter space + solver -> a scalar loss."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import grn

from ._data import Measurements
from ._losses import energy_distance, gaussian_nll, moment_nll
from ._observables import Observable, as_observable
from ._parameters import ParameterSpace

SNAPSHOT_LOSSES = ("energy", "moments")
_PAD_TIME = 1e30  # breakpoints padding a short schedule: never reached


class Problem(eqx.Module):
    r"""The objective of a fit: ``loss(phi)`` for optimiser coordinates ``phi`` (a dict).

    ``Problem(network, measurements, observables, space, solver=grn.LNA(), n_cells=1000,
    key=jax.random.key(0))`` simulates every condition of ``measurements`` (its own input
    schedule; conditions are vmapped) at the data's time points (and t = 0, where ``x0`` holds),
    evaluates each observable and sums

    - the Gaussian negative log-likelihood of population rows (`gaussian_nll`; ensemble means of
      a stochastic solver, the solver's own mean/variance for `grn.LNA`, the trajectory for
      `grn.ODE`), and
    - for single-cell snapshot rows (with a ``cellId``), grouped by (observable, condition, time),
      ``snapshot_weight`` times the energy distance between simulated and observed cells
      (``snapshot_loss="energy"``) or the mean-and-variance NLL (``"moments"``). Under the LNA,
      cells are drawn from its Gaussian with fixed normals.

    Extrinsic heterogeneity. A parameter the network declares in ``Network(cell_params=...)``
    (a `grn.Distribution`) is, under a stochastic solver, drawn by stratified quantiles (fixed
    cells, no sampling noise; `grn.stratified_normal`) from the distribution with its numbers
    taken from ``values``: the parameter's own name sets the median, ``"name.field"`` any other
    field (``"kM1.sigma"``, the log-sd of a `grn.LogNormal`), so a fit can free a distribution's
    median and spread. ``cell_params`` (name -> ``(n_cells,)`` positive factors) instead fixes
    the spread: cell ``c`` uses ``value * cell_params[name][c]``. Deterministic solvers use the
    value (or the distribution's median) for every cell.

    Stochastic solvers use ``key`` for every evaluation (common random numbers), so the loss is a
    deterministic, differentiable function of ``phi`` for `grn.CLE` (pathwise) as well as for the
    ODE and LNA; `grn.SSA` and `grn.TauLeap` give the loss but no pathwise gradient. Failed
    simulations give an infinite loss. All data and parameter values are pytree leaves: new
    values of the same shapes never recompile.
    """

    network: grn.Network
    solver: grn.AbstractSolver
    space: ParameterSpace
    observables: tuple[Observable, ...]  # in the order of observable_ids
    observable_ids: tuple[str, ...] = eqx.field(static=True)
    condition_ids: tuple[str, ...] = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)
    snapshot_loss: str = eqx.field(static=True)
    has_schedules: bool = eqx.field(static=True)
    snapshot_weight: jax.Array
    ts: jax.Array
    x0: dict | None
    cell_params: dict | None
    distributions: dict
    key: jax.Array
    schedule_times: jax.Array
    schedule_table: jax.Array
    rows: dict
    snapshots: dict | None

    def __init__(
        self,
        network: grn.Network,
        measurements: Measurements,
        observables: Mapping,
        space: ParameterSpace,
        solver: grn.AbstractSolver | None = None,
        n_cells: int = 1000,
        key=None,
        x0: Mapping | None = None,
        snapshot_loss: str = "energy",
        snapshot_weight: float = 1.0,
        cell_params: Mapping | None = None,
    ):
        if not isinstance(network, grn.Network):
            raise TypeError(f"network must be a grn.Network, got {type(network).__name__}")
        if not isinstance(measurements, Measurements):
            raise TypeError("measurements must be a fitting.Measurements")
        if not isinstance(space, ParameterSpace):
            raise TypeError("space must be a fitting.ParameterSpace")
        solver = grn.LNA() if solver is None else solver
        if not isinstance(solver, grn.AbstractSolver):
            raise TypeError(f"solver must be a grn solver, got {solver!r}")
        if not isinstance(observables, Mapping) or not observables:
            raise ValueError("observables must be a non-empty mapping of observableId -> spec")
        obs = {str(k): as_observable(v, str(k)) for k, v in observables.items()}
        for name, o in obs.items():
            o.check(network.species, name)
        if snapshot_loss not in SNAPSHOT_LOSSES:
            raise ValueError(
                f"snapshot_loss must be one of {SNAPSHOT_LOSSES}, got {snapshot_loss!r}"
            )
        if not isinstance(n_cells, int) or isinstance(n_cells, bool) or n_cells < 2:
            raise ValueError(f"n_cells must be an integer >= 2, got {n_cells!r}")
        measurements.check(list(obs), network.inputs)
        explicit = set(cell_params or {})
        self.distributions = {
            name: dist
            for name, dist in network.cell_params.items()
            if solver.stochastic and name not in explicit
        }
        _check_names(network, obs, space, self.distributions)
        deterministic = not solver.stochastic and not isinstance(solver, grn.LNA)
        for i in np.flatnonzero(measurements.is_cell)[:1]:
            if deterministic:
                raise ValueError(
                    f"{measurements.where[i]}: single-cell rows need a distribution of cells; "
                    f"use grn.LNA() or a stochastic solver, not {type(solver).__name__}"
                )
        used = set(measurements.observable.tolist())
        for name, o in obs.items():
            if o.statistic == "fraction" and deterministic and name in used:
                raise ValueError(
                    f"observable {name!r}: a fraction of cells needs grn.LNA() or a stochastic "
                    f"solver, not {type(solver).__name__}"
                )

        dtype = jnp.zeros(()).dtype
        times = measurements.time.astype(dtype)
        ts = np.unique(np.concatenate([np.zeros(1, dtype), times]))
        t_index = np.searchsorted(ts, times)
        conds = measurements.condition_ids
        self.observable_ids, self.condition_ids = tuple(obs), conds
        o_index = np.array([self.observable_ids.index(o) for o in measurements.observable])
        c_index = np.array([conds.index(c) for c in measurements.condition])

        self.has_schedules = bool(network.inputs) and any(
            measurements.schedule(c) is not None for c in conds
        )
        arrays = []
        for c in conds:
            sched = measurements.schedule(c) if self.has_schedules else None
            if sched is None:
                arrays.append((np.array([-np.inf]), np.zeros((1, len(network.inputs)))))
            else:
                sched.check_inputs(network.inputs)
                t, table = sched.as_arrays(network.inputs, dtype)
                arrays.append((np.asarray(t), np.asarray(table)))
        width = max(t.shape[0] for t, _ in arrays)
        times_pad, table_pad = [], []
        for t, table in arrays:
            extra = width - t.shape[0]
            times_pad.append(np.concatenate([t, _PAD_TIME * (1 + np.arange(extra))]))
            table_pad.append(np.concatenate([table, np.repeat(table[-1:], extra, axis=0)]))
        self.schedule_times = jnp.asarray(np.stack(times_pad), dtype)
        self.schedule_table = jnp.asarray(np.stack(table_pad), dtype)
        breaks = np.concatenate([t[np.isfinite(t)] for t, _ in arrays] + [np.array([-np.inf])])
        solver.check(network)
        self.solver = solver.bind(network, ts, np.unique(breaks))

        cell = measurements.is_cell
        pop = ~cell
        self.rows = {
            "obs": jnp.asarray(o_index[pop]),
            "cond": jnp.asarray(c_index[pop]),
            "t": jnp.asarray(t_index[pop]),
            "value": jnp.asarray(measurements.value[pop], dtype),
            "sigma": jnp.asarray(measurements.sigma[pop], dtype),
        }
        self.snapshots = None
        if cell.any():
            groups: dict[tuple[int, int, int], list[float]] = {}
            for i in np.flatnonzero(cell):
                key_ = (int(o_index[i]), int(c_index[i]), int(t_index[i]))
                groups.setdefault(key_, []).append(float(measurements.value[i]))
            for (o, c, t), vals in groups.items():
                if len(vals) < 2:
                    raise ValueError(
                        f"single-cell snapshot of {self.observable_ids[o]!r} in condition "
                        f"{conds[c]!r} at time {float(ts[t])} has {len(vals)} cell; need >= 2"
                    )
            m = max(len(v) for v in groups.values())
            values = np.zeros((len(groups), m))
            mask = np.zeros((len(groups), m), bool)
            for g, vals in enumerate(groups.values()):
                values[g, : len(vals)] = vals
                mask[g, : len(vals)] = True
            index = np.array(list(groups), dtype=np.int32)
            self.snapshots = {
                "obs": jnp.asarray(index[:, 0]),
                "cond": jnp.asarray(index[:, 1]),
                "t": jnp.asarray(index[:, 2]),
                "values": jnp.asarray(values, dtype),
                "mask": jnp.asarray(mask),
            }
        # A tuple, not the dict: a dict pytree comes back from jit with its keys sorted, which
        # would pair the rows' observable indices with the wrong observables.
        self.network, self.space = network, space
        self.observables = tuple(obs[name] for name in self.observable_ids)
        self.n_cells, self.snapshot_loss = n_cells, snapshot_loss
        self.snapshot_weight = jnp.asarray(snapshot_weight, dtype)
        self.ts = jnp.asarray(ts, dtype)
        self.x0 = None if x0 is None else {k: jnp.asarray(v, dtype) for k, v in x0.items()}
        if x0 is not None:
            for name in x0:
                if name not in network.species:
                    raise KeyError(f"x0 names unknown species {name!r} ({list(network.species)})")
        self.key = jax.random.key(0) if key is None else key
        self.cell_params = None
        if cell_params:
            if not solver.stochastic:
                raise ValueError(
                    f"cell_params need a stochastic solver (cells), not {type(solver).__name__}"
                )
            self.cell_params = {}
            for name, factors in cell_params.items():
                if name not in network.params:
                    raise KeyError(f"cell_params names unknown parameter {name!r}")
                f = np.asarray(factors, np.float64)
                if f.shape != (n_cells,) or not np.all(np.isfinite(f) & (f > 0)):
                    raise ValueError(
                        f"cell_params[{name!r}] must be {n_cells} positive finite factors "
                        f"(one per cell), got shape {f.shape}"
                    )
                self.cell_params[name] = jnp.asarray(f, dtype)

    # -- evaluation ----------------------------------------------------------------------------
    @property
    def pathwise(self) -> bool:
        """Whether ``jax.grad`` of the loss is the derivative of the objective (ODE/LNA/CLE)."""
        return not isinstance(self.solver, grn.SSA | grn.TauLeap)

    def _schedule(self, times, table):
        if not self.has_schedules:
            return None
        values = {name: table[1:, i] for i, name in enumerate(self.network.inputs)}
        return grn.Schedule(times=times[1:], values=values)

    def simulate(self, values: Mapping, ts=None, key=None):
        """One `grn.Solution` per condition, stacked on a leading axis (conditions first)."""
        ts = self.ts if ts is None else ts
        key = self.key if key is None else key
        params = {k: v for k, v in values.items() if k in self.network.params}
        for name, factors in (self.cell_params or {}).items():
            params[name] = params.get(name, self.network.params[name]) * factors
        for name, dist in self.distributions.items():
            for field, free in distribution_fields(name, dist).items():
                if free in values:
                    dist = eqx.tree_at(lambda d, f=field: getattr(d, f), dist, values[free])
            params[name] = dist.sample(None, self.n_cells, stratified=True)

        def one(times, table, k):
            return grn.simulate(
                self.network,
                ts=ts,
                key=k,
                solver=self.solver,
                n_cells=self.n_cells,
                params=params,
                x0=self.x0,
                schedule=self._schedule(times, table),
                throw=False,
            )

        keys = jax.random.split(key, len(self.condition_ids))
        return jax.vmap(one)(self.schedule_times, self.schedule_table, keys)

    def predict(self, values: Mapping, ts=None, key=None, hard: bool = False, cells=False):
        """Model predictions of every observable in every condition at ``ts`` (default: the
        data's times).

        Returns ``(summary, per_cell, ok)``: ``summary`` (observables, conditions, times);
        ``per_cell`` (observables, conditions, cells, times) single-cell values if ``cells``
        (LNA: drawn from its Gaussian with fixed normals), else None; ``ok`` whether every
        simulation succeeded. ``hard=True`` uses hard thresholds for fractions (reporting).
        """
        key = self.key if key is None else key
        sim_key, draw_key = jax.random.split(key)
        sols = self.simulate(values, ts, sim_key)
        species = list(self.network.species)
        deterministic = not self.solver.stochastic and sols.cov_within is None

        def per_condition(sol_ys, sol_cov):
            stats = [
                o.summary(sol_ys, species, values, sol_cov, deterministic, hard)
                for o in self.observables
            ]
            return jnp.stack(stats)

        cov = sols.cov_within
        summary = (
            jax.vmap(per_condition)(sols.ys, cov)
            if cov is not None
            else jax.vmap(lambda y: per_condition(y, None))(sols.ys)
        )
        summary = jnp.swapaxes(summary, 0, 1)
        ok = jnp.all(sols.result == grn.RESULTS.successful)
        per_cell = None
        if cells:
            ys = sols.ys  # (conditions, cells, times, species)
            if cov is not None:
                chol = jnp.linalg.cholesky(cov[:, 0] + 1e-6 * jnp.eye(cov.shape[-1]))
                z = jax.random.normal(draw_key, (self.n_cells, *ys.shape[2:]), ys.dtype)
                ys = ys[:, :1] + jnp.einsum("ctsr,ntr->cnts", chol, z)
            per_cell = jnp.stack([o.per_cell(ys, species, values) for o in self.observables])
        return summary, per_cell, ok

    def loss(self, phi: Mapping, key=None):
        """The objective at optimiser coordinates ``phi`` (see the class docstring)."""
        return self.loss_at(self.space.to_values(phi), key)

    def loss_at(self, values: Mapping, key=None):
        """The objective at natural parameter ``values`` (a dict name -> value)."""
        summary, per_cell, ok = self.predict(values, key=key, cells=self.snapshots is not None)
        total = jnp.zeros((), self.ts.dtype)
        r = self.rows
        if r["value"].shape[0]:
            pred = summary[r["obs"], r["cond"], r["t"]]
            total = total + gaussian_nll(pred, r["value"], r["sigma"])
        if self.snapshots is not None:
            s = self.snapshots
            assert per_cell is not None  # predict(cells=True) returns it
            sim = jnp.moveaxis(per_cell, -1, 2)[s["obs"], s["cond"], s["t"]]  # (groups, cells)
            if self.snapshot_loss == "energy":
                term = jnp.sum(energy_distance(sim, s["values"], s["mask"]))
            else:
                term = moment_nll(sim, s["values"], s["mask"])
            total = total + self.snapshot_weight * term
        return jnp.where(ok & jnp.isfinite(total), total, jnp.inf)

    def residuals(self, phi: Mapping):
        """``(residuals, loss)`` for least-squares optimisers: ``(value - prediction) / sigma``
        of the population rows (``loss = 0.5 sum residuals^2 + const``, the sigmas being
        fixed); single-cell snapshot terms are not sums of squares and raise."""
        if self.snapshots is not None:
            raise ValueError("single-cell snapshot terms are not least squares: use a minimiser")
        summary, _, ok = self.predict(self.space.to_values(phi))
        r = self.rows
        res = (r["value"] - summary[r["obs"], r["cond"], r["t"]]) / r["sigma"]
        total = gaussian_nll(summary[r["obs"], r["cond"], r["t"]], r["value"], r["sigma"])
        return res, jnp.where(ok & jnp.isfinite(total), total, jnp.inf)


def distribution_fields(name: str, dist: grn.Distribution) -> dict[str, str]:
    """Field -> the name a fit frees it by: ``name`` for the median, ``"name.field"`` else."""
    return {
        f.name: name if f.name == "median" else f"{name}.{f.name}" for f in dataclasses.fields(dist)
    }


def _check_names(
    network, observables: Mapping[str, Observable], space: ParameterSpace, distributions
):
    nuisance = {n for o in observables.values() for n in o.nuisance}
    spreads = {
        free
        for name, dist in distributions.items()
        for free in distribution_fields(name, dist).values()
        if free != name
    }
    for name in space.names:
        if name in spreads or name in network.params or name in nuisance:
            continue
        base = name.split(".")[0]
        if base in network.cell_params:
            raise ValueError(
                f"parameter {name!r}: a distribution's spread is fitted only with a stochastic "
                f"solver and the network's own distribution of {base!r} (not explicit "
                f"cell_params factors); free fields: {sorted(spreads)}"
            )
        raise ValueError(
            f"parameter {name!r} is neither a network parameter ({list(network.params)}), "
            f"a distribution's field ({sorted(spreads)}) nor an observable's scale/offset "
            f"({sorted(nuisance)})"
        )
    for label, o in observables.items():
        for name in o.nuisance:
            if name not in space.names:
                raise ValueError(
                    f"observable {label!r} uses nuisance parameter {name!r}, which the "
                    f"ParameterSpace neither frees nor freezes"
                )
            if name in network.params:
                raise ValueError(
                    f"observable {label!r}: nuisance parameter {name!r} has the name of a "
                    f"network parameter"
                )
