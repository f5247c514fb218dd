"""The published two-wave kinetics of Su et al. (2026) and the score of a model against them.

Su et al. fitted a linear two-module model to the RNA-seq module scores of M397 melanoma cells on
vemurafenib (days 0-29) and after its removal (35 days), t in days:

    dλ1/dt = α1 − β1 λ1 − a1 λ2,    dλ2/dt = α2 + a2 λ1 − a3 λ2,

with one parameter set per phase (public, MIT-licensed repository
jihoonlee0/melanoma_reversible_transition, ``Nullclines.ipynb``; values in ``shared/MODEL.md``).
`two_wave_reference` integrates it exactly (matrix exponential of a linear system), so the
reference curves ship as six numbers per phase instead of a data file; the tests check them
against the published trajectories in ``shared/reference/su2026_two_wave_model.csv``.

A mechanistic model's wave scores (mean W1 and W2) are compared with λ1 and λ2 on the sequenced
days only (`SCORING_DAYS`; between them the published curves are the linear model's own
interpolation) through one affine map per score shared by both phases (`wave_score_fit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PHASES = ("on_drug", "drug_removed")

TWO_WAVE_PARAMS = {
    "on_drug": {
        "a1": 0.55,
        "a2": 0.06,
        "a3": 0.57,
        "alpha1": 39.33,
        "beta1": 0.002,
        "alpha2": 40.8,
    },
    "drug_removed": {
        "a1": 0.098,
        "a2": 0.007,
        "a3": 0.19,
        "alpha1": 5.54,
        "beta1": 0.035,
        "alpha2": 1.98,
    },
}
"""Per phase, the published parameters of the two-module model (per day)."""

TWO_WAVE_START = {"on_drug": (97.372417, 17.516865), "drug_removed": (14.092750, 69.199379)}
"""Per phase, (λ1, λ2) at the phase's day 0: the measured day-0 and day-29 module scores."""

SCORING_DAYS = {"on_drug": (0, 3, 7, 14, 21, 29), "drug_removed": (4, 7, 14, 21, 28, 35)}
"""Per phase, the sequenced days (days since the phase began) on which a model is scored."""


def two_wave_reference(phase: str, days) -> np.ndarray:
    """(λ1, λ2) of the published model at ``days`` (since the phase began): shape ``(len, 2)``.

    Exact solution x(t) = x* + expm(A t)(x(0) − x*) of x' = A x + c, with
    A = [[−β1, −a1], [a2, −a3]], c = (α1, α2) and x* = −A⁻¹ c (A's eigenvalues are real and
    negative in both phases).
    """
    if phase not in TWO_WAVE_PARAMS:
        raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
    p = TWO_WAVE_PARAMS[phase]
    A = np.array([[-p["beta1"], -p["a1"]], [p["a2"], -p["a3"]]])
    c = np.array([p["alpha1"], p["alpha2"]])
    fixed = -np.linalg.solve(A, c)
    eigenvalues, vectors = np.linalg.eig(A)
    coeffs = np.linalg.solve(vectors, np.asarray(TWO_WAVE_START[phase]) - fixed)
    t = np.asarray(days, np.float64)[:, None]
    x = (vectors[None] * (coeffs * np.exp(eigenvalues * t))[:, None, :]).sum(-1)
    return np.real(x) + fixed


def wave_score_fit(
    on_drug: Sequence[Sequence[float]] | np.ndarray,
    drug_removed: Sequence[Sequence[float]] | np.ndarray,
) -> dict:
    """Score model wave scores against the reference on `SCORING_DAYS`.

    ``on_drug`` and ``drug_removed``: ``(6, 2)`` arrays of the model's (W1, W2) on the scoring
    days of each phase. Per score k, one affine map λ_k ≈ offset + scale·W_k is fitted by least
    squares over both phases' 12 points together; R² = 1 − SS_res/SS_tot is then computed per
    phase (SS_tot about that phase's reference mean). Returns ``{"lambda1": {"offset", "scale",
    "r2_on_drug", "r2_drug_removed"}, "lambda2": {...}}``.
    """
    model = {"on_drug": np.asarray(on_drug, np.float64), "drug_removed": np.asarray(drug_removed)}
    for phase, values in model.items():
        expected = (len(SCORING_DAYS[phase]), 2)
        if values.shape != expected:
            raise ValueError(
                f"{phase}: expected model scores of shape {expected}, got {values.shape}"
            )
    ref = {phase: two_wave_reference(phase, SCORING_DAYS[phase]) for phase in PHASES}
    out = {}
    for k, name in enumerate(("lambda1", "lambda2")):
        w = np.concatenate([model[ph][:, k] for ph in PHASES])
        lam = np.concatenate([ref[ph][:, k] for ph in PHASES])
        scale, offset = np.polyfit(w, lam, 1)
        fit = {"offset": float(offset), "scale": float(scale)}
        for ph in PHASES:
            resid = ref[ph][:, k] - (offset + scale * model[ph][:, k])
            total = ref[ph][:, k] - ref[ph][:, k].mean()
            fit[f"r2_{ph}"] = float(1.0 - np.sum(resid**2) / np.sum(total**2))
        out[name] = fit
    return out
