"""xoshiro128++: a small, fast per-cell uniform generator for the event loops.

Blackman & Vigna (2021), "Scrambled linear pseudorandom number generators", ACM Trans. Math.
Softw. 47:36. 128-bit state, period 2**128 - 1, passes BigCrush and PractRand; the 32-bit
member of the family Julia's default generator (xoshiro256++) belongs to. One draw costs about
a dozen 32-bit integer operations, against a threefry2x32 hash (20 rounds) per pair of words
for `jax.random.uniform`: for a cheap event (a few propensities) threefry was the largest single
cost of an SSA step (benchmarks/ssa_profile.md).

The state is seeded from the cell's JAX key (threefry bits), so distinct keys give independent
streams in the sense of the key tree; within a cell the stream is xoshiro's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_INV_2_24 = 2.0**-24


def _rotl(x, k: int):
    return (x << k) | (x >> (32 - k))


def seed(key) -> jax.Array:
    """A non-zero 4-word uint32 state from a JAX key."""
    state = jax.random.bits(key, (4,), jnp.uint32)
    return state.at[0].set(jnp.where(jnp.all(state == 0), jnp.uint32(1), state[0]))


def next_uniform(state, dtype=jnp.float32):
    """``(state', u)``: one step of xoshiro128++ and ``u`` uniform on [0, 1) with 24 bits."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    word = _rotl(s0 + s3, 7) + s0
    t = s1 << 9
    s2 = s2 ^ s0
    s3 = s3 ^ s1
    s1 = s1 ^ s2
    s0 = s0 ^ s3
    s2 = s2 ^ t
    s3 = _rotl(s3, 11)
    u = (word >> 8).astype(dtype) * jnp.asarray(_INV_2_24, dtype)
    return jnp.stack([s0, s1, s2, s3]), u
