"""PEtab v1 problems (Schmiester et al. 2021, PLoS Comput Biol 17:e1008646) as `fitting.Problem` s.

`load_petab` reads the YAML file and its tables through the ``petab`` library and the SBML model
through `grn.load_sbml`; `log_likelihood` is PEtab's log-likelihood. Semantics (those of AMICI):

- a species symbol in a formula, condition table or initial assignment means its concentration
  (amount / compartment size) unless it has ``hasOnlySubstanceUnits``; grn's state is amounts;
- initial assignments of species and parameters are re-evaluated (as JAX functions) from the
  parameter and condition tables, so initial states follow estimated parameters;
- a condition sets model parameters, compartment sizes (model parameters in grn) and initial
  species values (``NaN``: keep the model's / the pre-equilibrium value); its values are numbers
  or parameter-table ids;
- pre-equilibration integrates the pre-equilibration condition to ``steady_state_time`` (with
  `grn.ODE`, stopping once ``rms(dx/dt) <= atol + rtol rms(x)``, ``ODE(steady_state=True)``, as
  AMICI's simulation to steady state does; models with SBML events run the whole way) and
  checks that the state changed by less than ``steady_state_tol`` (relative, plus the same
  absolute in amount) over its second half; `log_likelihood` raises if not, the loss is infinite.
  Where the solve fails late in the approach (a stiff method's huge steps at steady state), the
  last finite pair of the outputs ``steady_state_time * 2^-k`` (k = 20 .. 0) is checked instead:
  the state at the later of the two, if converged, is the steady state;
- formulas (`fitting._formula`'s ``PETAB`` grammar, the parser observables share) are
  arithmetic (``+ - * / ^ **``, unary minus, numbers, ``pi``, ``exponentiale``, ``exp ln log
  log10 log2 sqrt abs pow sin cos tan``) over species, model parameters, compartments,
  assignment-rule variables, parameter-table ids, ``time`` and the
  ``observableParameter{n}_{id}`` / ``noiseParameter{n}_{id}`` placeholders of their
  observable.

- with ``grn.LNA`` or ``grn.CLE`` (``load_petab(..., solver=)``) the formulas see the
  ensemble-mean state (the LNA's mean; the mean over the CLE's cells).

Anything else raises a `ValueError` naming the file, row (the file's line) and column.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import grn

from ._formula import PETAB, evaluate, parse
from ._parameters import Parameter, ParameterSpace
from ._problem import Problem

PETAB_SCALES = {"lin": "linear", "log": "log", "log10": "log10"}
TRANSFORMATIONS = ("lin", "log", "log10")
DISTRIBUTIONS = ("normal", "laplace")
PRIORS = (
    "uniform",
    "normal",
    "laplace",
    "logNormal",
    "logLaplace",
    "parameterScaleUniform",
    "parameterScaleNormal",
    "parameterScaleLaplace",
)
_LOG10 = math.log(10.0)
# Columns PEtab defines that grn reads, per table; any other column is warned about and ignored.
_USED = {
    "measurement": {
        "observableId",
        "preequilibrationConditionId",
        "simulationConditionId",
        "measurement",
        "time",
        "observableParameters",
        "noiseParameters",
    },
    "observable": {
        "observableId",
        "observableFormula",
        "noiseFormula",
        "observableTransformation",
        "noiseDistribution",
    },
    "parameter": {
        "parameterId",
        "parameterScale",
        "lowerBound",
        "upperBound",
        "nominalValue",
        "estimate",
        "objectivePriorType",
        "objectivePriorParameters",
    },
}
_SILENT = {"observableName", "conditionName", "parameterName"}


class PetabError(ValueError):
    """A PEtab problem grn cannot read; the message names the file, row and column."""


def _where(file, row=None, column=None) -> str:
    text = str(file)
    if row is not None:
        text += f", row {row}"
    if column is not None:
        text += f", column {column!r}"
    return text


# -- formulas -------------------------------------------------------------------------------------
def _symbols(text: str, where: str) -> tuple[str, ...]:
    try:
        return parse(text, PETAB)[1]
    except ValueError as err:
        raise PetabError(f"{where}: {err}") from None


# -- the SBML side ---------------------------------------------------------------------------------
class _Model:
    """What the PEtab layer needs from the SBML file beyond the `grn.Network`."""

    def __init__(self, path: Path, network: grn.Network):
        import libsbml

        doc = libsbml.readSBMLFromFile(str(path))
        m = doc.getModel()
        self.sizes: dict[str, float] = {
            c.getId(): (c.getSize() if c.isSetSize() else 1.0) for c in m.getListOfCompartments()
        }
        self.compartment: dict[str, str] = {}
        self.concentration: dict[str, bool] = {}
        self.initial: dict[str, str] = {}  # species/parameter id -> formula (SBML meaning)
        for s in m.getListOfSpecies():
            sid = s.getId()
            self.compartment[sid] = s.getCompartment()
            self.concentration[sid] = not s.getHasOnlySubstanceUnits()
            if s.isSetInitialConcentration():
                value = s.getInitialConcentration()
                if not self.concentration[sid]:  # the symbol is an amount
                    value = value * self.sizes[self.compartment[sid]]
            elif s.isSetInitialAmount():
                value = s.getInitialAmount()
                if self.concentration[sid]:
                    value = value / self.sizes[self.compartment[sid]]
            else:
                value = 0.0
            self.initial[sid] = repr(float(value))
        for a in m.getListOfInitialAssignments():
            self.initial[a.getSymbol()] = libsbml.formulaToL3String(a.getMath())
        self.rules = {
            r.getVariable() for r in m.getListOfRules() if r.isAssignment() and r.isSetVariable()
        }
        self.parameters = {p.getId() for p in m.getListOfParameters()}
        self.species = tuple(network.species)
        self.network = network
        for name in self.initial:
            try:
                parse(self.initial[name], PETAB)
            except ValueError as err:
                if name in network.params or name in self.species:
                    raise PetabError(
                        f"{path}: the initial value of {name!r} ({self.initial[name]}) cannot be "
                        f"re-evaluated: {err}"
                    ) from None

    def size(self, compartment: str, params):
        return params[compartment] if compartment in params else self.sizes[compartment]

    def amount_factor(self, species: str, params):
        """Amount per unit of the species' symbol: its compartment size or 1."""
        if not self.concentration[species]:
            return 1.0
        return self.size(self.compartment[species], params)


# -- tables --------------------------------------------------------------------------------------
def _read_yaml(path: Path) -> dict:
    import petab.v1 as petab

    if not path.is_file():
        raise PetabError(f"{path}: PEtab problem file not found")
    config = petab.yaml.load_yaml(str(path))
    version = str(config.get("format_version", ""))
    if not version.startswith("1"):
        raise PetabError(
            f"{_where(path, column='format_version')}: PEtab format {version!r} is not supported "
            f"(grn reads PEtab v1)"
        )
    problems = config.get("problems") or []
    if len(problems) != 1:
        raise PetabError(
            f"{path}: expected exactly one entry under 'problems', got {len(problems)}"
        )
    problem = problems[0]
    files = {"parameter_file": config.get("parameter_file")}
    for key in ("sbml_files", "condition_files", "measurement_files", "observable_files"):
        files[key] = problem.get(key)
    out = {}
    for key, value in files.items():
        if not value:
            raise PetabError(f"{path}: no {key!r} given")
        names = [value] if isinstance(value, str) else list(value)
        if key == "sbml_files" and len(names) != 1:
            raise PetabError(f"{path}: exactly one SBML model is supported, got {names}")
        for name in names:
            if not (path.parent / name).is_file():
                raise PetabError(f"{path}: the {key} entry {name!r} does not exist")
        out[key] = [path.parent / n for n in names]
    for key in ("mapping_files", "extensions"):
        if problem.get(key) or config.get(key):
            raise PetabError(f"{path}: {key!r} are not supported")
    return out


def _table(path: Path, kind: str):
    """(rows, header) of a PEtab table read by ``petab``: rows are (file line, dict)."""
    import pandas as pd
    import petab.v1 as petab

    reader = {
        "measurement": petab.get_measurement_df,
        "observable": petab.get_observable_df,
        "condition": petab.get_condition_df,
        "parameter": petab.get_parameter_df,
    }[kind]
    try:
        with warnings.catch_warnings():  # pandas deprecations inside petab's readers
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            df = reader(str(path))
    except (KeyError, ValueError, pd.errors.ParserError) as err:
        raise PetabError(f"{path}: cannot read the {kind} table: {err}") from None
    if df.index.name is not None:
        df = df.reset_index()
    header = [str(c) for c in df.columns]
    rows = [(i + 2, dict(zip(header, r))) for i, r in enumerate(df.itertuples(index=False))]
    used = _USED.get(kind)
    if used is not None:
        for column in header:
            if column not in used and column not in _SILENT:
                warnings.warn(
                    f"{path}: column {column!r} is not used by grn; ignored", stacklevel=3
                )
    return rows, header


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _float(value, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise PetabError(f"{where}: expected a number, got {value!r}") from None
    return out


def _required(row: dict, column: str, file, line):
    if column not in row or _empty(row[column]):
        raise PetabError(f"{_where(file, line, column)}: a value is required")
    return row[column]


# -- the problem -----------------------------------------------------------------------------------
class PetabProblem(Problem):
    r"""A PEtab v1 problem: the `Problem` that `load_petab` returns.

    ``loss(phi)`` is the negative log-posterior ``-(llh + log prior)`` (PEtab's objective);
    `log_likelihood` gives the llh alone and `log_prior` the prior term. Simulations are the
    distinct (pre-equilibration, simulation) condition pairs of the measurement table, vmapped.
    """

    parameter_ids: tuple[str, ...] = eqx.field(static=True)
    model: _Model = eqx.field(static=True)
    model_params: tuple[str, ...] = eqx.field(static=True)
    petab_observables: tuple[tuple, ...] = eqx.field(static=True)
    priors: tuple[tuple, ...] = eqx.field(static=True)
    simulation_ids: tuple[str, ...] = eqx.field(static=True)  # "sim" or "pre:sim" per pair
    steady_state_time: jax.Array
    steady_state_tol: jax.Array
    conditions: dict  # per condition: parameter and species sources
    simulations: dict  # the condition pairs
    measurements: dict  # per row
    row_groups: tuple  # row indices per observable
    nominal: dict

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)

    # -- parameter values ---------------------------------------------------------------------
    def _vector(self, values):
        dtype = self.ts.dtype
        return jnp.stack([jnp.asarray(values[p], dtype) for p in self.parameter_ids])

    def _condition_params(self, vec):
        """Model parameters of every condition: name -> (conditions,)."""
        c = self.conditions
        index = c["param_index"]
        chosen = jnp.where(index >= 0, vec[jnp.maximum(index, 0)], c["param_const"])
        params = {name: chosen[:, j] for j, name in enumerate(self.model_params)}
        return jax.vmap(self._assigned_params)(params)

    def _assigned_params(self, params):
        """Parameters with an SBML initial assignment, re-evaluated from the others."""
        model, out = self.model, dict(params)
        for name in self.model_params:
            if name in model.initial and name in model.parameters:
                tree, _ = parse(model.initial[name], PETAB)
                value = evaluate(
                    tree, lambda n: params[n] if n in params else model.sizes[n], PETAB
                )
                out[name] = jnp.asarray(value, params[name].dtype)
        return out

    def _x0(self, vec, params, x_index, x_const, x_set):
        """Initial amounts (species -> value) of one condition."""
        model = self.model
        cache: dict = {}

        def symbol(name):  # the SBML symbol's value at t = 0 (a concentration unless amounts)
            if name not in cache:
                if name in model.species:
                    value = evaluate(parse(model.initial[name], PETAB)[0], symbol, PETAB)
                    j = model.species.index(name)
                    if self.conditions["x_any"][j]:
                        table = jnp.where(
                            x_index[j] >= 0, vec[jnp.maximum(x_index[j], 0)], x_const[j]
                        )
                        value = jnp.where(x_set[j], table, value)
                elif name in params:
                    value = params[name]
                elif name in model.sizes:
                    value = model.sizes[name]
                else:
                    raise KeyError(name)
                cache[name] = value
            return cache[name]

        dtype = vec.dtype
        return {
            s: jnp.asarray(symbol(s) * model.amount_factor(s, params), dtype) for s in model.species
        }

    # -- evaluation ---------------------------------------------------------------------------
    def simulate(self, values, ts=None, key=None):
        """``(states, params, ok, steady)``: the state (amounts; a stochastic solver's mean over
        its ``n_cells`` cells) of every simulation (pre-equilibrated where asked) at ``ts``,
        (simulations, times, species); the model parameters per condition; whether every
        simulation succeeded; whether each pre-equilibration reached a steady state."""
        ts = self.ts if ts is None else ts
        key = self.key if key is None else key
        vec = self._vector(values)
        params = self._condition_params(vec)
        c, sims = self.conditions, self.simulations
        x0 = jax.vmap(lambda p, i, v, s: self._x0(vec, p, i, v, s))(
            params, c["x_index"], c["x_const"], c["x_set"]
        )
        stochastic = self.solver.stochastic

        def run(p, x, times, cell_key, solver=self.solver):
            sol = grn.simulate(
                self.network,
                ts=times,
                key=cell_key if stochastic else None,
                solver=solver,
                n_cells=self.n_cells if stochastic else None,
                params={k: v for k, v in p.items() if k in self.network.params},
                x0=x,
                throw=False,
            )
            succeeded = jnp.all(sol.result == grn.RESULTS.successful)
            return jnp.mean(sol.ys, axis=0), succeeded  # the ensemble mean (one cell: itself)

        def take(tree, index):
            return jax.tree.map(lambda v: v[index], tree)

        start = take(x0, sims["sim"])
        n = sims["sim"].shape[0]
        keys = jax.random.split(key, n)
        steady, ok = jnp.ones((n,), bool), jnp.ones((n,), bool)
        if sims["pre"] is not None:
            pre, pre_of = sims["pre"], sims["pre_of"]
            t_end = self.steady_state_time
            halvings = 2.0 ** -jnp.arange(_PRE_HALVINGS, -1, -1)  # t_end 2^-k, k = 20 .. 0
            times = (jnp.concatenate([jnp.zeros((1,)), halvings]) * t_end).astype(ts.dtype)
            pre_solver = self.solver
            if isinstance(pre_solver, grn.ODE) and not (
                self.network.ode and self.network.ode.events
            ):
                pre_solver = eqx.tree_at(lambda s: s.steady_state, pre_solver, True)
            pre_keys = jax.random.split(jax.random.fold_in(key, 1), pre.shape[0])
            ys, succeeded = jax.vmap(lambda p, x, k: run(p, x, times, k, pre_solver))(
                take(params, pre), take(x0, pre), pre_keys
            )
            # the last pair of finite outputs: t_end and t_end / 2 unless the solve failed late
            # in the approach (a stiff method's huge steps at steady state), then an earlier pair
            finite = jnp.all(jnp.isfinite(ys), axis=-1)
            last = jnp.maximum(times.shape[0] - 1 - jnp.argmax(finite[:, ::-1], axis=1), 1)
            rows = jnp.arange(pre.shape[0])
            end, mid = ys[rows, last], ys[rows, last - 1]
            tol = self.steady_state_tol
            converged = jnp.all(jnp.abs(end - mid) <= tol * (1.0 + jnp.abs(end)), axis=-1)
            end, converged, succeeded = end[pre_of], converged[pre_of], succeeded[pre_of]
            with_pre = sims["pre_mask"]
            steady = converged | ~with_pre
            ok = succeeded | converged | ~with_pre
            reset = c["x_set"][sims["sim"]]  # species the simulation condition re-initialises
            start = {
                s: jnp.where(with_pre & ~reset[:, j], end[:, j], start[s])
                for j, s in enumerate(self.model.species)
            }
        ys, succeeded = jax.vmap(lambda p, x, k: run(p, x, ts, k))(
            take(params, sims["sim"]), start, keys
        )
        return ys, params, ok & succeeded, steady

    def _predictions(self, values):
        """Per observable: (simulated, noise, measured) on the rows of the measurement table,
        with whether all simulations succeeded and each pre-equilibration's convergence."""
        states, params, ok, steady = self.simulate(values)
        vec = self._vector(values)
        model, m = self.model, self.measurements
        groups = []
        for (obs_id, formula, noise, transform, dist, n_obs, n_noise), rows in zip(
            self.petab_observables, self.row_groups
        ):
            sim = m["sim"][rows]
            x = states[sim, m["t"][rows]]
            row_params = {k: v[self.simulations["sim"][sim]] for k, v in params.items()}
            extra = {"time": self.ts[m["t"][rows]]}
            for kind, label, count in (
                ("obs", "observableParameter", n_obs),
                ("noise", "noiseParameter", n_noise),
            ):
                idx, const = m[f"{kind}_index"][rows], m[f"{kind}_const"][rows]
                vals = jnp.where(idx >= 0, vec[jnp.maximum(idx, 0)], const)
                for k in range(count):
                    extra[f"{label}{k + 1}_{obs_id}"] = vals[:, k]
            rule_values = {}

            def lookup(name, x=x, row_params=row_params, extra=extra, rule_values=rule_values):
                if name in extra:
                    return extra[name]
                if name in model.species:
                    amount = x[:, model.species.index(name)]
                    return amount / model.amount_factor(name, row_params)
                if name in row_params:
                    return row_params[name]
                if name in model.sizes:
                    return model.sizes[name]
                if name in model.rules:
                    if not rule_values:
                        net = {k: v for k, v in row_params.items() if k in self.network.params}
                        u = jnp.zeros((len(self.network.inputs),), x.dtype)
                        rule_values.update(
                            jax.vmap(lambda xi, pi: self.network.rule_values(xi, pi, u))(x, net)
                        )
                    return rule_values[name]
                return vec[self.parameter_ids.index(name)]

            shape = rows.shape
            y = jnp.broadcast_to(evaluate(parse(formula, PETAB)[0], lookup, PETAB), shape)
            sigma = jnp.broadcast_to(evaluate(parse(noise, PETAB)[0], lookup, PETAB), shape)
            groups.append((y, sigma, m["value"][rows]))
        return groups, jnp.all(ok), steady

    @property
    def least_squares(self) -> bool:
        """Whether the objective is a sum of squares (`residuals`): normal noise, and normal or
        uniform priors only."""
        return all(obs[4] == "normal" for obs in self.petab_observables) and all(
            p[1] in ("uniform", "normal", "parameterScaleUniform", "parameterScaleNormal")
            for p in self.priors
        )

    def row_predictions(self, values):
        """``(simulated, sigma, ok)``: the observable and noise sd of every measurement row (the
        tables' order) at natural ``values`` (unnamed: nominal), and whether all simulations
        succeeded. Row ``i`` belongs to ``simulation_ids[measurements["sim"][i]]``."""
        groups, ok, steady = self._predictions({**self.nominal, **values})
        n = self.measurements["value"].shape[0]
        y, sigma = jnp.full((n,), jnp.nan, self.ts.dtype), jnp.full((n,), jnp.nan, self.ts.dtype)
        for (y_o, sigma_o, _), rows in zip(groups, self.row_groups):
            y, sigma = y.at[rows].set(y_o), sigma.at[rows].set(sigma_o)
        return y, sigma, ok & jnp.all(steady)

    def log_likelihood_terms(self, values):
        """``(llh, ok, steady)``: PEtab's log-likelihood at natural ``values`` (every
        parameter-table id), whether all simulations succeeded, and each pre-equilibration's
        convergence."""
        groups, ok, steady = self._predictions(values)
        total = jnp.zeros((), self.ts.dtype)
        for (y, sigma, data), obs in zip(groups, self.petab_observables):
            total = total + jnp.sum(_log_density(data, y, sigma, obs[3], obs[4]))
        return total, ok, steady

    def residuals(self, phi):
        """``(residuals, loss)`` at optimiser coordinates ``phi``, with
        ``loss = 0.5 sum residuals^2 + const`` (Gaussian noise and normal priors only):
        ``(t(y) - t(m)) / sigma`` per measurement (``t`` its transformation),
        ``sqrt(2 log sigma + 60)`` per measurement for the noise normalisation (sigma > 1e-13),
        ``(v - a) / b`` per normal prior."""
        values = {**self.nominal, **self.space.to_values(phi)}
        for obs in self.petab_observables:
            if obs[4] != "normal":
                raise ValueError(
                    f"observable {obs[0]!r} has {obs[4]} noise: least squares need normal noise; "
                    f"use a minimiser (optx.BFGS) instead"
                )
        groups, ok, steady = self._predictions(values)
        parts = []
        for (y, sigma, data), obs in zip(groups, self.petab_observables):
            t = {"lin": lambda v: v, "log": jnp.log, "log10": jnp.log10}[obs[3]]
            parts += [(t(y) - t(data)) / sigma, jnp.sqrt(2.0 * jnp.log(sigma) + 60.0)]
        for name, kind, scale, a, b, lower, upper in self.priors:
            if kind in ("uniform", "parameterScaleUniform"):
                continue
            if kind not in ("normal", "parameterScaleNormal"):
                raise ValueError(f"parameter {name!r}: a {kind} prior is not a least-squares term")
            v = jnp.asarray(values[name], self.ts.dtype)
            if kind == "parameterScaleNormal":
                v = {"linear": lambda z: z, "log": jnp.log, "log10": jnp.log10}[scale](v)
            parts.append(jnp.atleast_1d((v - a) / b))
        llh = sum(
            jnp.sum(_log_density(data, y, sigma, obs[3], obs[4]))
            for (y, sigma, data), obs in zip(groups, self.petab_observables)
        )
        return jnp.concatenate(parts), self._objective(llh, values, ok, steady)

    def log_prior(self, values):
        """The objective priors' log-density (0 without priors)."""
        total = jnp.zeros((), self.ts.dtype)
        for name, kind, scale, a, b, lower, upper in self.priors:
            v = jnp.asarray(values[name], self.ts.dtype)
            if kind.startswith("parameterScale"):
                v = {"linear": lambda z: z, "log": jnp.log, "log10": jnp.log10}[scale](v)
                kind = kind[len("parameterScale") :].lower()
            if kind in ("logNormal", "logLaplace"):
                total = total - jnp.log(v)  # the density of v, not of log v
                v = jnp.log(v)
                kind = kind[3:].lower()
            if kind == "normal":
                total = total - 0.5 * jnp.log(2 * jnp.pi * b**2) - 0.5 * ((v - a) / b) ** 2
            elif kind == "laplace":
                total = total - jnp.log(2 * b) - jnp.abs(v - a) / b
            else:  # uniform on [a, b]
                total = total - math.log(b - a)
        return total

    def loss_at(self, values, key=None):
        """The negative log-posterior ``-(llh + log prior)`` at natural ``values``; infinite
        where a simulation fails or a pre-equilibration does not converge."""
        values = {**self.nominal, **values}
        llh, ok, steady = self.log_likelihood_terms(values)
        return self._objective(llh, values, ok, steady)

    def _objective(self, llh, values, ok, steady):
        total = -(llh + self.log_prior(values))
        return jnp.where(ok & jnp.all(steady) & jnp.isfinite(total), total, jnp.inf)

    def predict(self, values, ts=None, key=None, hard=False, cells=False):
        raise NotImplementedError(
            "a PEtab problem predicts per measurement row: see log_likelihood"
        )


def _log_density(m, y, sigma, transform, dist):
    """PEtab v1 log-density of measurements ``m`` given simulations ``y`` and noise ``sigma``."""
    if transform == "lin":
        r, jac = y - m, 0.0
    elif transform == "log":
        r, jac = jnp.log(y) - jnp.log(m), jnp.log(m)
    else:
        r, jac = jnp.log10(y) - jnp.log10(m), jnp.log(m * _LOG10)
    if dist == "normal":
        return -0.5 * jnp.log(2 * jnp.pi * sigma**2) - 0.5 * (r / sigma) ** 2 - jac
    return -jnp.log(2 * sigma) - jnp.abs(r / sigma) - jac


# -- loading -------------------------------------------------------------------------------------
_PRE_HALVINGS = 20
"""Pre-equilibration outputs at ``steady_state_time * 2^-k``, k = `_PRE_HALVINGS` .. 0."""


def default_petab_solver() -> grn.ODE:
    """The ODE method `load_petab` uses by default: the L-stable, stiffly accurate fifth-order
    Rosenbrock method `grn.Rodas5P` (Steinebach 2023), rtol 1e-6, atol 1e-8.

    It reproduces the seven shared problems' references (every llh within 4e-4 of AMICI's) at
    1.2-2.1x less cost per llh than `grn.Rodas4` (one core: Elowitz 3.9 ms against 6.0,
    Fujita 2.2 against 4.2) and far less than diffrax's ESDIRK Kvaerno3 (Fujita 43 ms): a step
    inverts ``I / (h gamma) - J`` once and has no Newton iterations, and order 5 takes fewer
    steps at this tolerance."""
    return grn.ODE(method=grn.Rodas5P(), rtol=1e-6, atol=1e-8, max_steps=100_000)


def _overrides(text, n_expected: int, ids: dict, where: str):
    """(index, const) lists for a ``;``-separated override cell (numbers or parameter ids)."""
    if _empty(text):
        parts = []
    elif isinstance(text, int | float):
        parts = [repr(float(text))]
    else:
        parts = [p.strip() for p in str(text).split(";")]
    if len(parts) != n_expected:
        raise PetabError(f"{where}: {len(parts)} value(s) for {n_expected} placeholder(s)")
    index, const = [], []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            if part not in ids:
                raise PetabError(
                    f"{where}: {part!r} is neither a number nor a parameter-table id"
                ) from None
            index.append(ids[part])
            const.append(0.0)
        else:
            index.append(-1)
            const.append(value)
    return index, const


def _placeholders(formula: str, prefix: str, obs_id: str, where: str) -> int:
    pattern = f"{prefix}"
    numbers = []
    for name in _symbols(formula, where):
        if name.startswith(pattern) and name.endswith(f"_{obs_id}"):
            middle = name[len(pattern) : -len(obs_id) - 1]
            if middle.isdigit():
                numbers.append(int(middle))
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        raise PetabError(f"{where}: placeholders {prefix}N_{obs_id} must be numbered 1..n")
    return len(numbers)


def load_petab(
    path: str | os.PathLike,
    solver: grn.AbstractSolver | None = None,
    *,
    steady_state_time: float = 1e6,
    steady_state_tol: float = 1e-6,
    n_cells: int = 1000,
    key=None,
) -> PetabProblem:
    """A PEtab v1 problem (its YAML file) as a `fitting.Problem` (a `PetabProblem`).

    ``solver`` defaults to `default_petab_solver` (stiff, tight tolerances: the references of the
    Benchmark-Models-PEtab collection to 0.02 in llh); use float64 (``jax_enable_x64``).
    Estimated parameters are the `ParameterSpace`'s free ones (on their PEtab scale, ``lin`` ->
    ``linear``, with the table's bounds, nominal values as ``init``), the others frozen at
    their nominal values. See the module documentation for the semantics; anything unsupported
    raises `PetabError` (a ValueError) naming the file, row and column.

    Stochastic fitting: with ``solver=grn.LNA(...)`` the observables are evaluated on the LNA's
    mean (the reaction-rate equations: the ODE's llh); with ``solver=grn.CLE(dt)`` on the mean
    state of ``n_cells`` cells simulated from ``key`` (common random numbers: the loss is a
    deterministic, pathwise-differentiable function of the parameters). Observables are
    formulas of the ensemble-mean state, not ensemble means of formulas; species amounts are
    taken as molecule counts (the noise of the CLE scales with them). The CLE cannot
    pre-equilibrate (no exact steady state).
    """
    yaml_path = Path(path)
    files = _read_yaml(yaml_path)
    solver = default_petab_solver() if solver is None else solver
    if not isinstance(solver, grn.AbstractSolver):
        raise TypeError(f"solver must be a grn solver, got {solver!r}")
    if not isinstance(solver, grn.ODE | grn.LNA | grn.CLE):
        raise ValueError(
            f"load_petab simulates with grn.ODE, grn.LNA or grn.CLE, got {type(solver).__name__}"
        )
    if not isinstance(n_cells, int) or isinstance(n_cells, bool) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    sbml_path = files["sbml_files"][0]
    network = grn.load_sbml(sbml_path)
    model = _Model(sbml_path, network)
    dtype = jnp.zeros(()).dtype

    # parameter table -> ParameterSpace, priors
    ids: dict[str, int] = {}
    free, frozen, nominal, priors = {}, {}, {}, []
    for file in files["parameter_file"]:
        rows, header = _table(file, "parameter")
        for line, row in rows:
            pid = str(_required(row, "parameterId", file, line))
            if pid in ids:
                raise PetabError(f"{_where(file, line, 'parameterId')}: duplicate id {pid!r}")
            if pid in model.species or pid in model.rules:
                raise PetabError(
                    f"{_where(file, line, 'parameterId')}: {pid!r} is a species or an "
                    f"assignment-rule variable of the model, not a parameter"
                )
            scale = str(_required(row, "parameterScale", file, line))
            if scale not in PETAB_SCALES:
                raise PetabError(
                    f"{_where(file, line, 'parameterScale')}: {scale!r} is not one of "
                    f"{list(PETAB_SCALES)}"
                )
            value = _float(
                _required(row, "nominalValue", file, line), _where(file, line, "nominalValue")
            )
            estimate = _float(
                _required(row, "estimate", file, line), _where(file, line, "estimate")
            )
            if estimate not in (0.0, 1.0):
                raise PetabError(
                    f"{_where(file, line, 'estimate')}: must be 0 or 1, got {estimate}"
                )
            ids[pid] = len(ids)
            nominal[pid] = value
            if estimate:
                lo = _float(
                    _required(row, "lowerBound", file, line), _where(file, line, "lowerBound")
                )
                hi = _float(
                    _required(row, "upperBound", file, line), _where(file, line, "upperBound")
                )
                if not (lo < hi and lo <= value <= hi):
                    raise PetabError(
                        f"{_where(file, line, 'nominalValue')}: {value} must lie within the bounds "
                        f"[{lo}, {hi}] (lower < upper)"
                    )
                if scale != "lin" and lo <= 0:
                    raise PetabError(
                        f"{_where(file, line, 'lowerBound')}: a {scale} scale needs a positive "
                        f"lower bound, got {lo}"
                    )
                free[pid] = Parameter(value, lo, hi, PETAB_SCALES[scale])
                kind = row.get("objectivePriorType")
                if not _empty(kind):
                    if kind not in PRIORS:
                        raise PetabError(
                            f"{_where(file, line, 'objectivePriorType')}: {kind!r} is not one of "
                            f"{list(PRIORS)}"
                        )
                    where = _where(file, line, "objectivePriorParameters")
                    text = row.get("objectivePriorParameters")
                    parts = [] if _empty(text) else str(text).split(";")
                    if len(parts) != 2:
                        raise PetabError(f"{where}: a {kind} prior needs two numbers 'a;b'")
                    a, b = (_float(q, where) for q in parts)
                    if (kind.endswith("niform") and not a < b) or (
                        not kind.endswith("niform") and not b > 0
                    ):
                        raise PetabError(f"{where}: invalid {kind} prior parameters {a};{b}")
                    priors.append((pid, kind, PETAB_SCALES[scale], a, b, lo, hi))
            else:
                frozen[pid] = value
    if not free:
        raise PetabError(f"{files['parameter_file'][0]}: no parameter is estimated")
    space = ParameterSpace(free, frozen)

    # model parameters: sources per condition
    model_params = tuple(network.params)
    defaults = {}
    for name in model_params:
        defaults[name] = (ids[name], 0.0) if name in ids else (-1, float(network.params[name]))

    # condition table
    conditions: dict[str, dict] = {}
    cond_where: dict[str, str] = {}
    for file in files["condition_files"]:
        rows, header = _table(file, "condition")
        for column in header:
            if column in ("conditionId", "conditionName"):
                continue
            known = column in network.params or column in model.species or column in model.sizes
            if not known or column in model.rules:
                raise PetabError(
                    f"{_where(file, 1, column)}: the condition table names {column!r}, which is "
                    f"neither a parameter, a species nor a compartment of the model"
                )
            if column in ids:
                raise PetabError(
                    f"{_where(file, 1, column)}: {column!r} is also in the parameter table"
                )
        for line, row in rows:
            cid = str(_required(row, "conditionId", file, line))
            if cid in conditions:
                raise PetabError(f"{_where(file, line, 'conditionId')}: duplicate id {cid!r}")
            sources = {}
            for column in header:
                if column in ("conditionId", "conditionName"):
                    continue
                value = row[column]
                where = _where(file, line, column)
                if _empty(value):
                    if column not in model.species:
                        raise PetabError(f"{where}: a parameter or compartment needs a value")
                    continue
                if column in model.sizes and column not in network.params:
                    raise PetabError(
                        f"{where}: compartment {column!r} is not a parameter of the grn network "
                        f"(no expression reads its size), so a condition cannot set it"
                    )
                try:
                    sources[column] = (-1, float(value))
                except ValueError:
                    if str(value) not in ids:
                        raise PetabError(
                            f"{where}: {value!r} is neither a number nor a parameter-table id"
                        ) from None
                    sources[column] = (ids[str(value)], 0.0)
            conditions[cid] = sources
            cond_where[cid] = f"{file}, row {line}"

    # observable table
    observables: dict[str, tuple] = {}
    obs_file: dict[str, str] = {}
    for file in files["observable_files"]:
        rows, header = _table(file, "observable")
        for line, row in rows:
            oid = str(_required(row, "observableId", file, line))
            if oid in observables:
                raise PetabError(f"{_where(file, line, 'observableId')}: duplicate id {oid!r}")
            formula = str(_required(row, "observableFormula", file, line))
            noise = row.get("noiseFormula")
            if _empty(noise):
                raise PetabError(f"{_where(file, line, 'noiseFormula')}: a value is required")
            noise = str(noise)
            transform = row.get("observableTransformation")
            transform = "lin" if _empty(transform) else str(transform)
            if transform not in TRANSFORMATIONS:
                raise PetabError(
                    f"{_where(file, line, 'observableTransformation')}: {transform!r} is not one "
                    f"of {list(TRANSFORMATIONS)}"
                )
            dist = row.get("noiseDistribution")
            dist = "normal" if _empty(dist) else str(dist)
            if dist not in DISTRIBUTIONS:
                raise PetabError(
                    f"{_where(file, line, 'noiseDistribution')}: noise distribution {dist!r} is "
                    f"not supported (PEtab v1: {list(DISTRIBUTIONS)})"
                )
            counts = []
            for column, text, prefix in (
                ("observableFormula", formula, "observableParameter"),
                ("noiseFormula", noise, "noiseParameter"),
            ):
                where = _where(file, line, column)
                n = _placeholders(text, prefix, oid, where)
                counts.append(n)
                known = set(model.species) | set(network.params) | set(model.sizes)
                known |= model.rules | set(ids) | {"time"}
                for name in _symbols(text, where):
                    placeholder = name.endswith(f"_{oid}") and (
                        name.startswith("observableParameter") or name.startswith("noiseParameter")
                    )
                    if name not in known and not placeholder:
                        raise PetabError(f"{where}: unknown symbol {name!r} in {text!r}")
                    if placeholder and not name.startswith(prefix):
                        raise PetabError(f"{where}: {name!r} does not belong in {column}")
            observables[oid] = (oid, formula, noise, transform, dist, counts[0], counts[1])
            obs_file[oid] = str(file)

    # measurement table
    records = []
    for file in files["measurement_files"]:
        rows, header = _table(file, "measurement")
        for line, row in rows:
            oid = str(_required(row, "observableId", file, line))
            if oid not in observables:
                raise PetabError(
                    f"{_where(file, line, 'observableId')}: unknown observable {oid!r}"
                )
            sim = str(_required(row, "simulationConditionId", file, line))
            pre = row.get("preequilibrationConditionId")
            pre = None if _empty(pre) else str(pre)
            for column, cid in (
                ("simulationConditionId", sim),
                ("preequilibrationConditionId", pre),
            ):
                if cid is not None and cid not in conditions:
                    raise PetabError(
                        f"{_where(file, line, column)}: condition {cid!r} is not in the condition "
                        f"table"
                    )
            t = _float(_required(row, "time", file, line), _where(file, line, "time"))
            if not math.isfinite(t) or t < 0:
                raise PetabError(
                    f"{_where(file, line, 'time')}: time {t} is not supported (finite, >= 0; "
                    f"steady-state measurements, time 'inf', are not supported)"
                )
            value = _float(
                _required(row, "measurement", file, line), _where(file, line, "measurement")
            )
            _, formula, noise, transform, dist, n_obs, n_noise = observables[oid]
            if not math.isfinite(value) or (transform != "lin" and value <= 0):
                raise PetabError(
                    f"{_where(file, line, 'measurement')}: {value} is not a valid measurement "
                    f"(finite; positive under the {transform} transformation)"
                )
            oi, oc = _overrides(
                row.get("observableParameters"),
                n_obs,
                ids,
                _where(file, line, "observableParameters"),
            )
            ni, nc = _overrides(
                row.get("noiseParameters"), n_noise, ids, _where(file, line, "noiseParameters")
            )
            for i, c in zip(ni, nc):
                if i < 0 and not c > 0:
                    raise PetabError(
                        f"{_where(file, line, 'noiseParameters')}: noise parameter {c} must be "
                        f"positive"
                    )
            if n_noise == 0:
                tree, names = parse(noise, PETAB)
                if not names:
                    sigma = float(evaluate(tree, lambda n: None, PETAB))
                    if not sigma > 0:
                        raise PetabError(
                            f"{obs_file[oid]}, observable {oid!r}, column 'noiseFormula': the "
                            f"noise {sigma} must be positive"
                        )
            records.append((oid, pre, sim, t, value, oi, oc, ni, nc))
    if not records:
        raise PetabError(f"{files['measurement_files'][0]}: no measurements")

    # arrays
    cond_ids = tuple(conditions)
    n_c = len(cond_ids)
    param_index = np.array(
        [[conditions[c].get(p, defaults[p])[0] for p in model_params] for c in cond_ids], np.int32
    ).reshape(n_c, len(model_params))
    param_const = np.array(
        [[conditions[c].get(p, defaults[p])[1] for p in model_params] for c in cond_ids]
    ).reshape(n_c, len(model_params))
    species = model.species
    x_set = np.array([[s in conditions[c] for s in species] for c in cond_ids], bool).reshape(
        n_c, len(species)
    )
    x_index = np.array(
        [[conditions[c].get(s, (-1, 0.0))[0] for s in species] for c in cond_ids], np.int32
    ).reshape(n_c, len(species))
    x_const = np.array(
        [[conditions[c].get(s, (-1, 0.0))[1] for s in species] for c in cond_ids]
    ).reshape(n_c, len(species))

    pairs = sorted({(r[1], r[2]) for r in records}, key=lambda p: (p[0] or "", p[1]))
    pair_index = {p: i for i, p in enumerate(pairs)}
    pre_ids = sorted({p[0] for p in pairs if p[0] is not None})
    has_pre = bool(pre_ids)
    if has_pre and solver.stochastic:
        raise PetabError(
            f"{_where(files['measurement_files'][0], column='preequilibrationConditionId')}: "
            f"pre-equilibration needs a steady state, which a {type(solver).__name__} ensemble "
            f"mean does not reach exactly: use grn.ODE or grn.LNA"
        )
    ts = np.unique(np.concatenate([[0.0], [r[3] for r in records]])).astype(dtype)
    obs_ids = tuple(observables)
    width_o = max(1, max(o[5] for o in observables.values()))
    width_n = max(1, max(o[6] for o in observables.values()))

    def pad(values, width, fill):
        return list(values) + [fill] * (width - len(values))

    measurements = {
        "sim": np.array([pair_index[(r[1], r[2])] for r in records], np.int32),
        "t": np.searchsorted(ts, np.array([r[3] for r in records], dtype)).astype(np.int32),
        "value": np.array([r[4] for r in records], dtype),
        "obs_index": np.array([pad(r[5], width_o, -1) for r in records], np.int32),
        "obs_const": np.array([pad(r[6], width_o, 0.0) for r in records], dtype),
        "noise_index": np.array([pad(r[7], width_n, -1) for r in records], np.int32),
        "noise_const": np.array([pad(r[8], width_n, 0.0) for r in records], dtype),
    }
    row_obs = np.array([obs_ids.index(r[0]) for r in records])
    used = [o for o in range(len(obs_ids)) if np.any(row_obs == o)]
    solver.check(network)
    return PetabProblem(
        network=network,
        solver=solver.bind(network, ts, np.array([-np.inf])),
        space=space,
        observables=(),
        observable_ids=tuple(obs_ids[o] for o in used),
        condition_ids=cond_ids,
        n_cells=n_cells if solver.stochastic else 1,
        snapshot_loss="energy",
        has_schedules=False,
        snapshot_weight=jnp.ones((), dtype),
        ts=jnp.asarray(ts),
        x0=None,
        cell_params=None,
        distributions={},
        key=jax.random.key(0) if key is None else key,
        schedule_times=jnp.zeros((0,), dtype),
        schedule_table=jnp.zeros((0, 0), dtype),
        rows={},
        snapshots=None,
        parameter_ids=tuple(ids),
        model=model,
        model_params=model_params,
        petab_observables=tuple(observables[obs_ids[o]] for o in used),
        priors=tuple(priors),
        simulation_ids=tuple(sim if pre is None else f"{pre}:{sim}" for pre, sim in pairs),
        steady_state_time=jnp.asarray(steady_state_time, dtype),
        steady_state_tol=jnp.asarray(steady_state_tol, dtype),
        conditions={
            "param_index": jnp.asarray(param_index),
            "param_const": jnp.asarray(param_const, dtype),
            "x_set": jnp.asarray(x_set),
            "x_index": jnp.asarray(x_index),
            "x_const": jnp.asarray(x_const, dtype),
            "x_any": tuple(bool(v) for v in np.any(x_set, axis=0).tolist()),
        },
        simulations={
            "sim": jnp.asarray([cond_ids.index(p[1]) for p in pairs], jnp.int32),
            # each distinct pre-equilibration condition is run once (AMICI caches them too)
            "pre": jnp.asarray([cond_ids.index(c) for c in pre_ids], jnp.int32)
            if has_pre
            else None,
            "pre_of": jnp.asarray([pre_ids.index(p[0]) if p[0] else 0 for p in pairs], jnp.int32),
            "pre_mask": jnp.asarray([p[0] is not None for p in pairs]),
        },
        measurements={k: jnp.asarray(v) for k, v in measurements.items()},
        row_groups=tuple(jnp.asarray(np.flatnonzero(row_obs == o), jnp.int32) for o in used),
        nominal={k: jnp.asarray(v, dtype) for k, v in nominal.items()},
    )


def log_likelihood(problem: Problem, values=None) -> float:
    """PEtab's log-likelihood of ``problem`` (a `load_petab` result) at ``values`` (parameter id
    -> value on the linear scale; unnamed parameters at their nominal values; None: all
    nominal). Normalisation constants included; the log and log10 transformations add the
    Jacobian term of PEtab v1. Raises if a simulation fails or a pre-equilibration does not
    reach a steady state. Differentiable versions: `PetabProblem.log_likelihood_terms`."""
    if not isinstance(problem, PetabProblem):
        raise TypeError(f"log_likelihood needs a problem from fitting.load_petab, got {problem!r}")
    merged = dict(problem.nominal)
    for name, value in (values or {}).items():
        if name not in merged:
            raise KeyError(f"values names {name!r}, not a parameter-table id")
        merged[name] = jnp.asarray(value, problem.ts.dtype)
    llh, ok, steady = _llh_jit(problem, merged)
    if not bool(ok):
        raise ValueError(
            "a simulation failed (solver error or non-finite state; with pre-equilibration, a "
            "shorter steady_state_time may avoid a failure late in the approach)"
        )
    steady = np.asarray(steady)
    if not np.all(steady):
        pairs = np.flatnonzero(~steady)
        sims = problem.simulations
        pre = [problem.condition_ids[int(sims["pre"][sims["pre_of"][i]])] for i in pairs]
        raise ValueError(
            f"pre-equilibration of condition(s) {sorted(set(pre))} did not reach a steady state "
            f"by t = {float(problem.steady_state_time)} (relative change over its second half "
            f"above {float(problem.steady_state_tol)})"
        )
    return float(llh)


@eqx.filter_jit
def _llh_jit(problem: PetabProblem, values):
    return problem.log_likelihood_terms(values)
