"""Reaction selection of the exact SSA: the defining inequality, on both code paths (prefix sums
unrolled for few reactions, two-level partial sums for many), and a many-reaction network
against its exact law. About 15 s of CPU time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn._solvers._events import UNROLL_MAX, select_reaction

Z_MAX = 4.5  # two-sided p = 7e-6 per z; 120 z-scores below: family false alarm < 1e-3


@pytest.mark.parametrize("n", [1, 3, UNROLL_MAX, UNROLL_MAX + 8])
def test_select_reaction_satisfies_the_defining_inequality(n):
    """``sum_{i<j} w_i <= r W < sum_{i<=j} w_i``, a positive weight, also when ``r W`` rounds up
    to ``W`` and when zero weights trail."""
    rng = np.random.default_rng(n)
    select = jax.jit(select_reaction)
    for trial in range(200):
        w = (rng.exponential(size=n) * (rng.random(n) < 0.7)).astype(np.float32)
        if trial % 7 == 0:
            w[-(n // 3) :] = 0.0  # trailing zero weights
        if w.sum() == 0:
            w[rng.integers(n)] = 1.0
        r = np.float32(1 - 2**-24) if trial % 10 == 0 else np.float32(rng.random())
        j = int(select(jnp.asarray(w), jnp.asarray(r)))
        c = np.cumsum(w, dtype=np.float32)
        target = np.float32(r * c[-1])
        assert 0 <= j < n and w[j] > 0, (w, r, j)
        assert j == 0 or c[j - 1] <= target, (w, r, j)
        assert target < c[j] or c[j] == c[-1], (w, r, j)


def test_many_reaction_network_matches_its_poisson_law(stats):
    """60 immigration-death pairs (120 reactions, the two-level path): from 0, each count is
    exactly Poisson with mean ``k_i (1 - exp(-d t)) / d``."""
    n_species, d = 60, 1.0
    k = np.linspace(0.5, 6.0, n_species)
    species = [f"X{i}" for i in range(n_species)]
    reactions = []
    for i, s in enumerate(species):
        reactions += [
            grn.Reaction(f"-> {s}", grn.mass_action(f"k{i}")),
            grn.Reaction(f"{s} ->", grn.mass_action("d")),
        ]
    params = {f"k{i}": float(v) for i, v in enumerate(k)} | {"d": d}
    net = grn.Network(species=species, reactions=reactions, params=params)
    assert net.n_reactions > UNROLL_MAX
    ts = jnp.asarray([0.0, 0.5, 2.0])
    sol = grn.simulate(net, ts=ts, key=jax.random.key(8), solver=grn.SSA(), n_cells=2000)
    ys = np.asarray(sol.ys)
    for ti in (1, 2):
        mean = k * (1 - np.exp(-d * float(ts[ti]))) / d
        z = stats.z_mean(ys[:, ti, :], mean, mean)  # Poisson: variance = mean
        assert np.all(np.abs(z) < Z_MAX), (ti, z)
    np.testing.assert_array_equal(np.asarray(sol.log_weight), 0.0)
