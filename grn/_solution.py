"""Simulation results: trajectories of an ensemble of cells, their fate weights and result codes."""

from __future__ import annotations

import enum

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


class RESULTS(enum.IntEnum):
    """Per-cell result codes (``Solution.result``), in the spirit of diffrax's ``RESULTS``."""

    successful = 0
    max_events_reached = 1  # the per-cell event budget ran out before the last output time
    invalid_propensity = 2  # a propensity was negative or not finite
    negative_population = 3  # a reaction fired that drove a count below zero
    count_overflow = 4  # a count grew past what the float dtype holds exactly (2**24 in float32)
    solver_failed = 5  # step budget (ODE/LNA) exhausted or a non-finite state
    event_loop = 6  # state events kept triggering each other at one instant

    @classmethod
    def message(cls, code: int) -> str:
        return _MESSAGES[cls(code)]


_MESSAGES = {
    RESULTS.successful: "successful",
    RESULTS.max_events_reached: (
        "a cell reached its maximum number of events (steps) before the last output time; raise "
        "SSA(max_events=...) / TauLeap(max_steps=...) or pass throw=False to get result codes "
        "instead of an error"
    ),
    RESULTS.invalid_propensity: (
        "a propensity was negative or not finite: check the rate laws and parameters"
    ),
    RESULTS.negative_population: (
        "a reaction fired while a reactant count was zero: a rate law does not vanish when its "
        "reactants are absent"
    ),
    RESULTS.count_overflow: (
        "a count exceeded 2**24 and is no longer exact in float32: enable float64 "
        "(jax.config.update('jax_enable_x64', True)) or rescale the model"
    ),
    RESULTS.solver_failed: (
        "the solver failed (ODE/LNA: step budget exhausted; any: a non-finite state): raise "
        "max_steps, loosen the tolerances, or for a stiff network use an implicit method, "
        "e.g. grn.ODE(method=diffrax.Kvaerno5()); for the CLE, a smaller dt"
    ),
    RESULTS.event_loop: (
        "state events kept triggering each other at one instant (an assignment turns another "
        "trigger true, and so on, past grn._solvers._events.CHAIN_CAP rounds): check the "
        "events' triggers and assignments"
    ),
}


class Solution(eqx.Module):
    """Trajectories of ``cells`` cells at the output times.

    ``ys[c, t, s]`` is species ``s`` of cell ``c`` at ``ts[t]``; ``log_weight[c, t]`` is
    ``int_{ts[0]}^{ts[t]} (g - h) dt``, the log of the cell's expected offspring; ``n_events`` the
    reactions fired per cell; ``result`` a `grn.RESULTS` code per cell (entries of ``ys`` after a
    cell failed are NaN). Statistics are unweighted unless ``weighted=True`` is asked for, which
    weights cells by ``exp(log_weight)`` (the surviving population's composition).

    Moment solvers (LNA) return each parameter set's mean in ``ys`` and its covariance in
    ``cov_within``; ensemble moments are then those of the mixture. ``log_likelihood[c, t]`` is
    the log-likelihood of cell ``c``'s path up to ``ts[t]`` with ``grn.SSA(likelihood=True)``,
    else None.
    """

    ts: Float[Array, " times"]
    ys: Float[Array, "cells times species"]
    log_weight: Float[Array, "cells times"]
    n_events: Int[Array, " cells"]
    result: Int[Array, " cells"]
    species: tuple[str, ...] = eqx.field(static=True)
    cov_within: Float[Array, "cells times species species"] | None = None
    log_likelihood: Float[Array, "cells times"] | None = None

    @property
    def n_cells(self) -> int:
        return self.ys.shape[0]

    def __getitem__(self, name: str) -> Float[Array, "cells times"]:
        try:
            return self.ys[..., self.species.index(name)]
        except ValueError:
            raise KeyError(f"no species {name!r} in this solution (species: {list(self.species)})")

    def _weights(self, weighted: bool):
        if not weighted:
            return jnp.full(self.log_weight.shape, 1.0 / self.n_cells, self.ys.dtype)
        return jax.nn.softmax(self.log_weight, axis=0)

    def moments(self, weighted: bool = False):
        """Ensemble mean (times, species) and covariance (times, species, species).

        Unweighted statistics use the unbiased (n - 1) covariance; weighted ones use weights
        ``w_c = exp(log_weight_c) / sum exp(log_weight)`` and the plain weighted covariance.
        With a solver's own covariances the result is the mixture's:
        ``sum_c w_c cov_c + cov_w(ys)``.
        """
        w = self._weights(weighted)
        mean = jnp.einsum("ct,cts->ts", w, self.ys)
        dev = self.ys - mean
        cov = jnp.einsum("ct,cts,ctr->tsr", w, dev, dev)
        if not weighted and self.n_cells > 1:
            cov = cov * self.n_cells / (self.n_cells - 1)
        if self.cov_within is not None:
            cov = cov + jnp.einsum("ct,ctsr->tsr", w, self.cov_within)
        return mean, cov

    @property
    def mean(self) -> Float[Array, "times species"]:
        """Unweighted ensemble mean."""
        return self.moments()[0]

    @property
    def cov(self) -> Float[Array, "times species species"]:
        """Unweighted ensemble covariance (zero for a single deterministic trajectory)."""
        return self.moments()[1]

    @property
    def std(self) -> Float[Array, "times species"]:
        """Unweighted ensemble standard deviation per species."""
        return jnp.sqrt(jnp.diagonal(self.cov, axis1=-2, axis2=-1))

    def viable_cells(self, n0: float = 1.0) -> Float[Array, " times"]:
        """Expected viable-cell count ``n0 * mean_c exp(log_weight_c)`` over time."""
        return n0 * jnp.mean(jnp.exp(self.log_weight), axis=0)
