"""xoshiro128++: a small, fast per-cell uniform generator for the event loops.

Blackman & Vigna (2021), "Scrambled linear pseudorandom number generators", ACM Trans. Math.
Softw. 47:36. 128-bit state, period 2**128 - 1, passes BigCrush and PractRand; the 32-bit
member of the family Julia's default generator (xoshiro256++) belongs to. One draw costs about
a dozen 32-bit integer operations, against a threefry2x32 hash (20 rounds) per pair of words
for `jax.random.uniform` (about 23 ns per draw per cell on the project's 2-core CPU, against
50-75 ns for a whole toggle-switch event; benchmarks/ssa_profile.md, lever 5).

The state is seeded from the cell's JAX key (threefry bits), so distinct keys give independent
streams in the sense of the key tree; within a cell the stream is xoshiro's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _rotl(x, k: int):
    return (x << k) | (x >> (32 - k))


def seed(key, shape: tuple[int, ...] = ()) -> jax.Array:
    """Non-zero xoshiro128++ states, uint32 ``(4, *shape)``, for lanes of ``shape`` from a key."""
    state = jax.random.bits(key, (4, *shape), jnp.uint32)
    zero = jnp.all(state == 0, axis=0)
    return state.at[0].set(jnp.where(zero, jnp.uint32(1), state[0]))


def next_word(state):
    """``(state', w)``: one step of xoshiro128++ per lane, ``w`` a uint32 word."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    word = _rotl(s0 + s3, 7) + s0
    t = s1 << 9
    s2 = s2 ^ s0
    s3 = s3 ^ s1
    s1 = s1 ^ s2
    s0 = s0 ^ s3
    s2 = s2 ^ t
    s3 = _rotl(s3, 11)
    return jnp.stack([s0, s1, s2, s3]), word


def _bits(state, dtype, float32_bits: int, float64_bits: int):
    """``(state', m, bits)``: an integer ``m`` of ``bits`` random bits as ``dtype``: the top
    ``float32_bits`` of one word in float32; in float64 ``float64_bits`` from two words, the
    top ``float64_bits - 26`` of the first and the top 26 of the second."""
    state, word = next_word(state)
    if jnp.dtype(dtype) != jnp.float64:
        return state, (word >> (32 - float32_bits)).astype(dtype), float32_bits
    state, low = next_word(state)
    high = (word >> (58 - float64_bits)).astype(dtype) * jnp.asarray(2.0**26, dtype)
    return state, high + (low >> 6).astype(dtype), float64_bits


def next_uniform(state, dtype=jnp.float32):
    """``(state', u)``: ``u`` uniform on [0, 1) per lane, on a grid of ``2**-24`` in float32
    (one word: the smallest positive draw is 6e-8, so a reaction with a smaller share of ``a0``
    is chosen with probability 0 or 6e-8) and of ``2**-53`` in float64 (two words)."""
    state, m, bits = _bits(state, dtype, 24, 53)
    return state, m * jnp.asarray(2.0**-bits, dtype)


def next_normal(state, dtype=jnp.float32):
    """``(state', z)``: ``z`` standard normal per lane, ``sqrt(2) erfinv(v)`` with ``v`` uniform
    on the open interval (-1, 1): midpoints of ``2**23`` cells in float32 (all exact, so never
    +-1; ``|z| <= 5.3``) and of ``2**52`` cells in float64 (two words); the inverse-CDF
    transform `jax.random.normal` uses."""
    state, m, bits = _bits(state, dtype, 23, 52)
    v = (m + 0.5) * jnp.asarray(2.0 ** (1 - bits), dtype) - 1.0
    return state, jnp.asarray(2.0**0.5, dtype) * jax.lax.erf_inv(v)
