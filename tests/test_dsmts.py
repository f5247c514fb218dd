"""The SSA against the Discrete Stochastic Models Test Suite (Evans, Gillespie & Wilkinson 2008).

Each case is built with the grn API from its ``NNNNN-model.m`` description (no SBML import), run
for n = 10,000 cells on the case's grid t = 0, 1, ..., 50 with one fixed seed, and scored as in
the DSMTS user guide §3: at every time with reference sd sigma_t > 0,
``Z_t = sqrt(n) (mean - mu_t) / sigma_t`` and ``Y_t = sqrt(n / 2) (S_t^2 / sigma_t^2 - 1)``. A case
passes with at most 2 of its Z_t outside (-3, 3) and at most 3 of its Y_t outside (-5, 5) over its
times and species (for a correct simulator each Z_t is outside with probability 0.0027, so 2 of 50
is already unlikely); where sigma_t = 0 every cell must equal mu_t exactly.

Case 00003 (Lambda = 1, Mu = 1.1) is so skewed late in time that S^2 is far from normal, and the
guide (§5.1.3) expects correct simulators to fail its sd test: its Y_t are printed, not asserted.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _dsmts import load_reference, score

import grn

N_CELLS = 10_000


def _batch_immigration_death(batch: int, mu: float) -> grn.Network:
    """DSMTS model 004: ``-> batch X`` at Alpha = 1, ``X ->`` at Mu X, from X = 0."""
    return grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction(f"-> {batch} X", grn.mass_action("Alpha"), "Immigration"),
            grn.Reaction("X ->", grn.mass_action("Mu"), "Death"),
        ],
        params={"Alpha": 1.0, "Mu": mu},
        x0={"X": 0},
    )


def _with_events(build, *events) -> grn.Network:
    """A reference model with events added (DSMTS 00028, 00029, 00032, 00033)."""
    net = build()
    return grn.Network(
        net.species, net.reactions, dict(net.params), dict(zip(net.species, net.x0)), events=events
    )


# case -> (network, parameter overrides, initial-count overrides), from NNNNN-model.m.
CASES = {
    # Birth-death: X -> 2X (Lambda X), X -> (Mu X).
    "00001": (grn.models.birth_death, {"lam": 0.1, "mu": 0.11}, {"X": 100}),
    "00003": (grn.models.birth_death, {"lam": 1.0, "mu": 1.1}, {"X": 100}),
    "00004": (grn.models.birth_death, {"lam": 0.1, "mu": 0.11}, {"X": 10}),
    # Immigration-death: -> X (Alpha), X -> (Mu X), X0 = 0.
    "00020": (grn.models.immigration_death, {"alpha": 1.0, "mu": 0.1}, {"X": 0}),
    "00021": (grn.models.immigration_death, {"alpha": 10.0, "mu": 0.1}, {"X": 0}),
    # Immigration-death with a time event: at t >= 25 set X = 50 (00028), t >= 22.5, X = 20 (00029,
    # between output times).
    "00028": (
        lambda: _with_events(grn.models.immigration_death, grn.Event(at=25.0, assign={"X": 50})),
        {},
        {},
    ),
    "00029": (
        lambda: _with_events(grn.models.immigration_death, grn.Event(at=22.5, assign={"X": 20})),
        {},
        {},
    ),
    # Dimerisation: 2P -> P2 (k1 P (P - 1) / 2), P2 -> 2P (k2 P2), P = 100, P2 = 0.
    "00030": (grn.models.dimerisation, {"k1": 0.001, "k2": 0.01}, {"P": 100, "P2": 0}),
    # ... with a time event resetting both species at t >= 25 (00032), and a state event that
    # resets them whenever P2 rises above 30 (00033).
    "00032": (
        lambda: _with_events(
            grn.models.dimerisation, grn.Event(at=25.0, assign={"P": 100, "P2": 0})
        ),
        {},
        {},
    ),
    "00033": (
        lambda: _with_events(
            grn.models.dimerisation,
            grn.Event(when=lambda t, x, p: x["P2"] > 30, assign={"P": 100, "P2": 0}),
        ),
        {},
        {},
    ),
    # Batch immigration-death: -> 5X / 10X / 100X (Alpha = 1), X -> (Mu X), X0 = 0.
    "00037": (lambda: _batch_immigration_death(5, 0.2), {}, {}),
    "00038": (lambda: _batch_immigration_death(10, 0.4), {}, {}),
    "00039": (lambda: _batch_immigration_death(100, 4.0), {}, {}),
}

SD_REPORTED_ONLY = {"00003"}
MAX_MEAN_FAILS = 2
MAX_SD_FAILS = 3


def test_case_models_match_descriptions():
    """The batch model's non-unit stoichiometry and defaults are the ones the cases describe."""
    net = _batch_immigration_death(100, 4.0)
    np.testing.assert_array_equal(net.stoichiometry, [[100], [-1]])
    x = jnp.asarray([7.0])
    a = net.propensities(x, {"Alpha": jnp.asarray(1.0), "Mu": jnp.asarray(4.0)}, jnp.zeros(0))
    np.testing.assert_allclose(np.asarray(a), [1.0, 28.0])
    dimer = grn.models.dimerisation()
    a = dimer.propensities(jnp.asarray([100.0, 3.0]), {"k1": 0.001, "k2": 0.01}, jnp.zeros(0))
    np.testing.assert_allclose(np.asarray(a), [0.001 * 100 * 99 / 2, 0.01 * 3], rtol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dsmts_case(case, dsmts_dir, record_property):
    ref = load_reference(dsmts_dir, case)
    build, params, x0 = CASES[case]
    net = build()
    assert set(ref.species) <= set(net.species)
    sol = grn.simulate(
        net,
        jnp.asarray(ref.times),
        key=jax.random.key(int(case)),
        n_cells=N_CELLS,
        params=params or None,
        x0=x0 or None,
    )
    assert np.all(np.asarray(sol.result) == grn.RESULTS.successful)
    np.testing.assert_array_equal(np.asarray(sol.ts), ref.times.astype(np.float32))

    scores = [score(ref, s, np.asarray(sol[s])) for s in ref.species]
    n_mean = sum(len(sc.mean_fails) for sc in scores)
    n_sd = sum(len(sc.sd_fails) for sc in scores)
    for sc in scores:
        print(
            f"DSMTS {case} {sc.species}: max|Z| = {np.nanmax(np.abs(sc.z)):.2f}, "
            f"max|Y| = {np.nanmax(np.abs(sc.y)):.2f}; mean fails at t = "
            f"{sc.mean_fails.tolist()}, sd fails at t = {sc.sd_fails.tolist()}"
        )
    print(
        f"DSMTS {case}: {n_mean} mean fails, {n_sd} sd fails "
        f"({'reported only' if case in SD_REPORTED_ONLY else 'asserted'} sd test)"
    )
    record_property("mean_fails", n_mean)  # in the junit XML
    record_property("sd_fails", n_sd)

    for sc in scores:
        assert sc.exact_mismatch.size == 0, (
            f"{case} {sc.species}: at t = {sc.exact_mismatch.tolist()} the reference sd is 0 but "
            f"cells differ from the reference mean"
        )
    assert n_mean <= MAX_MEAN_FAILS, (
        f"{case}: {n_mean} mean tests outside {ref.mean_range}: "
        + "; ".join(f"{sc.species} Z = {np.round(sc.z, 2).tolist()}" for sc in scores)
    )
    if case not in SD_REPORTED_ONLY:
        assert n_sd <= MAX_SD_FAILS, (
            f"{case}: {n_sd} sd tests outside {ref.sd_range}: "
            + "; ".join(f"{sc.species} Y = {np.round(sc.y, 2).tolist()}" for sc in scores)
        )
