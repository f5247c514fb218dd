"""Shared test helpers: the DSMTS data folder, standard-error based statistics, exact laws."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
import scipy.stats
from _data import data_file

import grn


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every XLA:CPU executable keeps memory mappings; the whole suite in one process compiles
    thousands of programs and would exceed the kernel's ``vm.max_map_count`` (65,530), which
    crashes the compiler with a segmentation fault late in the run.
    """
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def dsmts_dir() -> Path:
    """The DSMTS cases 00001-00039 shipped in ``tests/data/dsmts`` (missing: fails under CI)."""
    return data_file("dsmts")


def z_mean(samples, mean, var) -> np.ndarray:
    """z = (sample mean - mean) / sqrt(var / n) along axis 0: N(0, 1) for n iid draws."""
    samples = np.asarray(samples, np.float64)
    n = samples.shape[0]
    return (samples.mean(axis=0) - mean) / np.sqrt(np.asarray(var, np.float64) / n)


def z_var(samples, var, mu4) -> np.ndarray:
    """z of the unbiased sample variance S^2 against ``var``, given the 4th central moment ``mu4``.

    Var(S^2) = mu4 / n - var^2 (n - 3) / (n (n - 1)) exactly for n iid draws.
    """
    samples = np.asarray(samples, np.float64)
    n = samples.shape[0]
    var = np.asarray(var, np.float64)
    se = np.sqrt(np.asarray(mu4, np.float64) / n - var**2 * (n - 3) / (n * (n - 1)))
    return (samples.var(axis=0, ddof=1) - var) / se


def chi_square(counts, expected) -> tuple[float, int, float]:
    """Pearson chi-square of observed ``counts`` against ``expected`` counts over ordered bins.

    Neighbouring bins are pooled left to right until each has expected count >= 5 (a short last
    group joins the one before). Returns (statistic, degrees of freedom, p-value).
    """
    counts, expected = np.asarray(counts, np.float64), np.asarray(expected, np.float64)
    groups, start, acc = [], 0, 0.0
    for i, e in enumerate(expected):
        acc += e
        if acc >= 5.0:
            groups.append((start, i + 1))
            start, acc = i + 1, 0.0
    if start < len(expected):
        groups[-1] = (groups[-1][0], len(expected))
    obs = np.array([counts[a:b].sum() for a, b in groups])
    exp = np.array([expected[a:b].sum() for a, b in groups])
    stat = float(np.sum((obs - exp) ** 2 / exp))
    dof = len(groups) - 1
    return stat, dof, float(scipy.stats.chi2.sf(stat, dof))


def binomial_poisson(n0, p, lam):
    """Mean, variance and 4th central moment of Binomial(n0, p) + Poisson(lam), independent.

    This is the exact law of X(t) for immigration-death from X = n0: survivors of the n0 initial
    molecules plus a Poisson number of immigrants. Cumulants add: k2 = n0 p q + lam,
    k4 = n0 p q (1 - 6 p q) + lam, and mu4 = k4 + 3 k2^2.
    """
    n0, p, lam = (np.asarray(v, np.float64) for v in (n0, p, lam))
    pq = p * (1.0 - p)
    k2 = n0 * pq + lam
    k4 = n0 * pq * (1.0 - 6.0 * pq) + lam
    return n0 * p + lam, k2, k4 + 3.0 * k2**2


def binomial_poisson_pmf(n0: int, p: float, lam: float, kmax: int) -> np.ndarray:
    """pmf of Binomial(n0, p) + Poisson(lam) on 0..kmax, the last entry holding the upper tail."""
    k = np.arange(kmax + 1)
    pmf = np.convolve(scipy.stats.binom.pmf(k, n0, p), scipy.stats.poisson.pmf(k, lam))[: kmax + 1]
    pmf[-1] += 1.0 - pmf.sum()
    return pmf


@pytest.fixture(scope="session")
def stats() -> SimpleNamespace:
    """The z-statistic helpers above, for test modules (which should not import conftest)."""
    return SimpleNamespace(
        z_mean=z_mean,
        z_var=z_var,
        chi_square=chi_square,
        binomial_poisson=binomial_poisson,
        binomial_poisson_pmf=binomial_poisson_pmf,
    )


class SteppedImmigration:
    """Immigration-death whose immigration ``alpha * I(t)`` follows a piecewise-constant schedule.

    From X = x0 at t0, X(t) is exactly Binomial(x0, exp(-mu (t - t0))) + Poisson(m(t)) where
    m' = alpha I(t) - mu m, m(t0) = 0, i.e. on a segment of constant level L from time a,
    m(t) = alpha L / mu + (m(a) - alpha L / mu) exp(-mu (t - a)). The breakpoints 2.25, 5.6 and
    8.1 are off the half-hour output grids used with it.
    """

    alpha, mu = 10.0, 0.5
    times = (0.0, 2.25, 5.6, 8.1)
    levels = (1.0, 3.0, 0.0, 2.0)

    def __init__(self):
        self.network = grn.Network(
            species=["X"],
            reactions=[
                grn.Reaction("-> X", lambda x, p, u: p["alpha"] * u["I"], "immigration"),
                grn.Reaction("X ->", grn.mass_action("mu"), "death"),
            ],
            params={"alpha": self.alpha, "mu": self.mu},
            inputs=["I"],
        )
        self.schedule = grn.Schedule(times=list(self.times), values={"I": list(self.levels)})

    def level(self, t: float) -> float:
        """I(t): the level of the last breakpoint at or before t, 0 before the first."""
        i = np.searchsorted(self.times, t, side="right") - 1
        return 0.0 if i < 0 else self.levels[i]

    def poisson_mean(self, t: float, t0: float) -> float:
        m, a = 0.0, t0
        for b in [b for b in self.times if t0 < b < t] + [t]:
            eq = self.alpha * self.level(a) / self.mu
            m, a = eq + (m - eq) * np.exp(-self.mu * (b - a)), b
        return m

    def law(self, ts, t0: float, x0: int):
        """Exact mean, variance and 4th central moment of X at ``ts`` (float64) from x0 at t0."""
        ts = np.asarray(ts, np.float64)
        lam = np.array([self.poisson_mean(t, t0) for t in ts])
        return binomial_poisson(x0, np.exp(-self.mu * (ts - t0)), lam)


@pytest.fixture(scope="session")
def stepped() -> SteppedImmigration:
    return SteppedImmigration()
