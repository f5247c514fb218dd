"""The packaged synthetic melanoma data set reads as valid measurement/condition tables."""

import json

import numpy as np

import fitting
from grn.models._melanoma import INPUTS, PARAMS
from grn.models._melanoma_data import CONDITIONS, DAYS, OBSERVABLES, SOX10_LOW, synthetic_paths


def test_synthetic_set_is_valid_labelled_and_complete():
    paths = synthetic_paths()
    truth = json.loads(paths["truth"].read_text())
    assert truth["synthetic"] is True and "SYNTHETIC" in truth["description"]
    assert truth["solver"].startswith("grn.SSA")
    # the truth is the model's current defaults: regenerate the set when they change
    assert truth["params"] == {k: float(v) for k, v in PARAMS.items()}
    data = fitting.Measurements.read(paths["measurements"], paths["conditions"])
    assert set(data.condition) == set(CONDITIONS)
    assert set(data.observable) == set(OBSERVABLES) | {SOX10_LOW}
    population = data.cell == ""
    for cond, days in DAYS.items():
        for obs in (*OBSERVABLES, SOX10_LOW):
            rows = population & (data.condition == cond) & (data.observable == obs)
            np.testing.assert_allclose(np.sort(data.time[rows]), np.array(days) * 24.0)
    assert np.all(data.sigma[population] > 0) and np.all(np.isfinite(data.value))
    snapshots = ~population
    assert snapshots.sum() == truth["snapshot_cells"] * len(truth["snapshot_days"])
    assert set(data.observable[snapshots]) == {"SOX10"}
    # the drug takes SOX10 down and NF-kB inhibition keeps it up (behaviours 2 and 5)
    low = {
        c: data.value[population & (data.condition == c) & (data.observable == SOX10_LOW)]
        for c in CONDITIONS
    }
    day29 = list(DAYS["braf"]).index(29)
    assert low["braf"][day29] > 0.7 and low["braf_nfkbi"][day29] < 0.5 * low["braf"][day29]
    schedule = data.schedule("braf")
    assert set(schedule.values) <= set(INPUTS)
