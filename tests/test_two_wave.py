"""The packaged two-wave reference kinetics (Su et al. 2026) and the wave-score R²."""

import csv

import numpy as np
import pytest
from _data import data_file

from grn.models._two_wave import PHASES, SCORING_DAYS, two_wave_reference, wave_score_fit


def test_matches_the_published_trajectories():
    path = data_file("reference/su2026_two_wave_model.csv")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    for phase in PHASES:
        mine = [r for r in rows if r["phase"] == phase]
        days = np.array([float(r["day"]) for r in mine])
        published = np.array([[float(r["lambda1"]), float(r["lambda2"])] for r in mine])
        assert len(days) >= 59  # every half day
        # the CSV is rounded to 4 decimals
        np.testing.assert_allclose(two_wave_reference(phase, days), published, atol=6e-5, rtol=0)


def test_time_constants_and_start():
    on = two_wave_reference("on_drug", [0.0])[0]
    np.testing.assert_allclose(on, (97.372417, 17.516865))
    # lambda1 peaks near day 3 on drug; lambda2 falls below its day-29 half within 5 days off drug
    days = np.arange(0.0, 29.01, 0.5)
    assert 2.0 <= days[np.argmax(two_wave_reference("on_drug", days)[:, 0])] <= 3.5


def test_wave_score_fit_is_exact_for_an_affine_image_and_rejects_bad_shapes():
    ref = {ph: two_wave_reference(ph, SCORING_DAYS[ph]) for ph in PHASES}
    image = {ph: (ref[ph] - [10.0, -3.0]) / [2.0, 0.5] for ph in PHASES}
    fit = wave_score_fit(image["on_drug"], image["drug_removed"])
    for k, name in enumerate(("lambda1", "lambda2")):
        assert fit[name]["r2_on_drug"] == pytest.approx(1.0, abs=1e-12)
        assert fit[name]["r2_drug_removed"] == pytest.approx(1.0, abs=1e-12)
        assert fit[name]["scale"] == pytest.approx([2.0, 0.5][k])
    flat = {ph: np.full((6, 2), 5.0) + np.arange(6)[:, None] for ph in PHASES}
    # a model rising linearly in both phases cannot follow the on-drug peak and decay of lambda1
    assert wave_score_fit(flat["on_drug"], flat["drug_removed"])["lambda1"]["r2_on_drug"] < 0.5
    with pytest.raises(ValueError, match="drug_removed"):
        wave_score_fit(image["on_drug"], image["drug_removed"][:5])
