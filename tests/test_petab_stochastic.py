"""`load_petab(..., solver=grn.LNA() or grn.CLE(dt))`: observables of the ensemble mean (issue 18,
item 6), on the decay problem whose mean is known exactly."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import numpy as np
import pytest
from _petab_decay import TIMES, X0, write_problem

import fitting
import grn

K = 0.5  # the nominal k
pytestmark = pytest.mark.filterwarnings("ignore:.*is not used by grn")


def _rows(problem, solver):
    """(simulated X, t, x0) per measurement row at the nominal parameters."""
    y, _, ok = eqx.filter_jit(type(problem).row_predictions)(problem, {})
    assert bool(ok), solver
    t = np.asarray(problem.ts)[np.asarray(problem.measurements["t"])]
    sim = np.asarray(problem.measurements["sim"])
    x0 = np.array([X0[problem.simulation_ids[i]] for i in sim])
    return np.asarray(y), t, x0


def test_lna_and_cle_observe_the_ensemble_mean(tmp_path):
    yaml = write_problem(tmp_path)
    with jax.enable_x64(True):
        lna = fitting.load_petab(
            yaml, solver=grn.LNA(method=diffrax.Tsit5(), rtol=1e-10, atol=1e-12)
        )
        y, t, x0 = _rows(lna, "lna")
        # the LNA's mean obeys the rate equation: X0 exp(-k t)
        np.testing.assert_allclose(y, x0 * np.exp(-K * t), rtol=1e-8)

        n, dt = 4000, 0.1
        cle = fitting.load_petab(yaml, solver=grn.CLE(dt=dt), n_cells=n, key=jax.random.key(3))
        y, t, x0 = _rows(cle, "cle")
    assert len(y) == 2 * len(TIMES)
    # Euler-Maruyama keeps the mean of a linear SDE on the Euler recursion exactly:
    # E X(t) = X0 (1 - k dt)^(t / dt); the mean of n cells has standard error
    # sqrt(var / n), var ~ X0 p (1 - p) with p = exp(-k t) (the CLE's binomial variance)
    steps = np.rint(t / dt)
    mean = x0 * (1 - K * dt) ** steps
    p = np.exp(-K * t)
    z = (y - mean) / np.sqrt(x0 * p * (1 - p) / n)
    assert np.all(np.abs(z) < 5), z
    # and not on the exact mean: the Euler bias is over 5 standard errors at dt = 0.1
    assert np.abs((x0 * np.exp(-K * t) - mean) / np.sqrt(x0 * p * (1 - p) / n)).max() > 5


def test_cle_refuses_preequilibration(tmp_path):
    yaml = write_problem(tmp_path)
    table = tmp_path / "measurements.tsv"
    lines = table.read_text().splitlines()
    lines = [lines[0] + "\tpreequilibrationConditionId"] + [f"{x}\tfull" for x in lines[1:]]
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(fitting.PetabError, match="preequilibrationConditionId.*use grn.ODE"):
        fitting.load_petab(yaml, solver=grn.CLE(dt=0.01))
