"""The calibrated melanoma model shows MODEL.md's five behaviours and fits the reference kinetics.

One exact-SSA ensemble (`run_protocols`, shared by the tests of this module) of CELLS cells, every
condition the plain call ``grn.simulate(melanoma(), ts, key=key, solver=grn.SSA(),
n_cells=CELLS, schedule=...)``: the network's own per-cell chromatin remodelling rates and 20-day
untreated pre-equilibration. Conditions: the control protocol (BRAFi 0.95 days 0-29, removal to
day 64), NFKBi 0.8, NAC 1, EPIi 0.8, BH3i 1 from day 0, and pERK over the first 48 h on BRAFi.
The assertions are MODEL.md's thresholds on the ensemble estimates of this fixed-seed ensemble
(the same numbers as ``python benchmarks/melanoma_behaviours.py --solver ssa --cells 64``);
`assess` reports each estimate's Monte-Carlo standard error, and the test checks those are small
enough for the thresholds to be meaningful at this size. The confirmation at 256 cells is the slow
test below (``pytest -m slow``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import grn
from grn.models._melanoma_behaviours import assess, run_protocols

CELLS = 64


def _check(report, rebound=True):
    """MODEL.md's thresholds. ``rebound`` (the large ensemble): pERK's partial rebound after its
    1-h fall, resolved at 256 cells (day 29 0.112 +- 0.009 of untreated against 0.078 at 1 h) but
    not at 64 (a difference of ~0.01 against an SE of ~0.02), so the small ensemble leaves it
    out; and the 1-h fall itself, 0.922 +- 0.007 at 256 cells, is checked at 64 cells (SE
    0.013-0.015) as an estimate consistent with >= 0.9 within two standard errors: two exact
    realisations of this seed, the same cells simulated by two compilations of the step (all
    cells at once and refilled lanes, which can round the exp/log rate laws differently),
    gave 0.927 and 0.898."""
    b = report["behaviours"]
    b1, b2, b3, b4, b5 = (b[k] for k in sorted(b))
    # 1. two sequential waves
    assert 1 <= b1["W1_peak_day"] <= 5
    assert b1["W1_d29_over_peak"] < 0.5
    assert b1["W2_max_day"] > b1["W1_peak_day"]
    assert b1["W2_d29_over_max"] >= 0.8
    # 2. reversible tolerance with memory
    assert b2["sox10_low_d29"] > 0.8
    assert b2["sox10_low_d64"] < 0.2
    assert b2["W1_back"] < b2["W1_out"] - 2 * b2["W1_se"]
    # 3. stochastic escape
    assert b3["max"] > 5 / 9
    # 4. priming falls in the tolerant state; BH3 mimetics restore it without changing tolerance
    assert b4["priming_d10"] < 0.5 * b4["priming_d1"]
    assert b4["BH3i_priming_d10"] >= 0.8 * b4["priming_d1"]
    assert abs(b4["BH3i_sox10_low_d29"] - b2["sox10_low_d29"]) <= 2 * b4["sox10_low_difference_se"]
    # 5. interventions at day 0
    low, control = b5["sox10_low_d29"], b5["control_sox10_low_d29"]
    assert low["NFKBi"] < 0.5 * control and low["NAC"] < 0.5 * control
    assert low["EPIi"] < control
    # the reference two-wave kinetics, one affine map per score
    for score in ("lambda1", "lambda2"):
        for phase in ("on_drug", "drug_removed"):
            assert report["reference_fit"][score][f"r2_{phase}"] >= 0.9, (score, phase)
    # pERK falls >= 90 % within ~1 h of BRAFi (MODEL.md) and partly rebounds as W2 rises
    perk = report["perk"]
    assert perk["E_d29_over_untreated"] < 0.5
    if rebound:
        assert perk["drop_1h"] >= 0.9
        assert 1.0 - perk["drop_1h"] + 2 * perk["E_d29_se"] < perk["E_d29_over_untreated"]
        assert report["all_pass"]
    else:  # `assess`'s all_pass includes the strict pERK threshold
        assert perk["drop_1h"] + 2 * perk["drop_1h_se"] >= 0.9
        assert all(b["pass"] for b in report["behaviours"].values())
        assert report["reference_fit"]["pass"]


def _check_precision(report, n):
    """The Monte-Carlo errors are small against the margins the thresholds leave."""
    b = report["behaviours"]
    assert report["cells"] == n
    assert b["1_two_waves"]["W1_d29_over_peak_se"] < 0.1
    assert b["3_bimodality"]["max_se_bootstrap"] < 0.15
    assert report["perk"]["drop_1h_se"] < 0.02


_RUN = """
import json, jax, grn
from grn.models._melanoma_behaviours import assess, run_protocols
runs = run_protocols(grn.SSA(max_events=10**9), jax.random.key(0), {cells})
print(json.dumps(assess(runs)))
"""


@pytest.fixture(scope="module")
def ssa_report():
    """The ensemble, simulated in a subprocess with the cells sharded over two host devices (one
    per core: ~3x faster here; the same key gives the same cells on any device count,
    tests/test_simulate.py)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run(
        [sys.executable, "-c", _RUN.format(cells=CELLS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_behaviours_and_reference_fit_exact_ssa(ssa_report):
    _check(ssa_report, rebound=False)
    _check_precision(ssa_report, CELLS)


def test_viable_cells_fall_on_drug(ssa_report):
    """Cell fate: on BRAFi the population grows far less than untreated cells would (~2^25)."""
    viable = ssa_report["viable_d29_over_d0"]
    assert np.isfinite(list(viable.values())).all()
    assert viable["control"] < 2.0**10


@pytest.mark.slow
def test_behaviours_exact_ssa():
    """The exact-SSA confirmation at 256 cells (minutes on 2 cores: ``pytest -m slow``)."""
    runs = run_protocols(grn.SSA(max_events=10**9), jax.random.key(1), 256)
    report = assess(runs)
    _check(report)
    _check_precision(report, 256)
