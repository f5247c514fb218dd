"""The linear-noise approximation: ODEs for the mean and the covariance."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import CellPath
from ._ode import AbstractDiffraxSolver


class LNA(AbstractDiffraxSolver):
    r"""Linear-noise approximation (van Kampen; Elf & Ehrenberg 2003, Genome Res. 13:2475).

    The mean follows the reaction-rate equations ``dphi/dt = f(phi) = S^T r(phi)`` and the
    covariance ``dSigma/dt = J Sigma + Sigma J^T + S^T diag(r(phi)) S`` with ``J = df/dphi``,
    integrated together through diffrax (same method, tolerances and breakpoint handling as
    `ODE`, so differentiable with diffrax's adjoints). Exact for networks with linear propensities
    (immigration-death, birth-death). ``Solution.ys`` holds the mean, ``Solution.cov`` the
    covariance.
    """

    def solve_cell(self, network, ts, key, params, x0, schedule_times, schedule_table):
        nu = jnp.asarray(network.stoichiometry, ts.dtype)
        n = x0.shape[0]

        def field(t, y, args):
            (phi, sigma, _), (params, breaks, table) = y, args
            seg = jnp.searchsorted(breaks, t, side="right") - 1
            u = table[seg]

            def drift(z):
                return network.rates(z, params, u) @ nu

            jac = jax.jacfwd(drift)(phi)
            r = network.rates(phi, params, u)
            noise = (nu.T * r) @ nu
            dsigma = jac @ sigma + sigma @ jac.T + noise
            return drift(phi), dsigma, network.fate_rate(phi, params, u)

        y0 = (x0.astype(ts.dtype), jnp.zeros((n, n), ts.dtype), jnp.zeros((), ts.dtype))
        args = (params, schedule_times, schedule_table)
        (mean, cov, lws), steps, result = self._integrate(field, ts, y0, schedule_times, args)
        return CellPath(mean, lws, steps, result, cov)
