"""Refilled lanes: run many cells on fewer SIMD lanes, starting a new cell where one finished.

A vmapped stepping loop runs until its slowest cell is done; every lane whose cell finished
earlier idles meanwhile (the exact SSA's repressilator: 1 - mean/max events per cell is 20 % at
10^4 cells, benchmarks/ssa_profile.md). `run_lanes` keeps ``lanes`` cells in flight instead:
after each block of steps it writes the paths of up to ``ceil(lanes / 16)`` finished cells to
the output and starts the next cells in their lanes, so lanes idle only at the very end. Each cell's
computation is the same as in a plain ``vmap`` (its own key, inputs and steps), so the paths are
bit-identical; only the order in which cells run changes. The refill is part of the compiled
loop (no host round-trip), so it runs unchanged on a GPU (not measured there: no GPU was lent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._solvers import CellProgram

REFILLS_PER_BLOCK = 16
"""A block refills at most ``ceil(lanes / REFILLS_PER_BLOCK)`` lanes (the cost of a refill
grows with it; more finished lanes wait for the next block)."""


def _running_count(flags):
    """``sum(flags[:i + 1])`` for every ``i``, by an associative scan: ``jnp.cumsum`` is a
    ``reduce_window`` on the CPU, O(n^2) (25 ms per block at 10^4 lanes)."""
    return jax.lax.associative_scan(jnp.add, flags.astype(jnp.int32))


def _first_true(flags, size):
    """Indices of the first ``size`` true entries of ``flags``, padded with ``len(flags)``
    (``jnp.nonzero(flags, size=size, fill_value=len(flags))`` without its ``cumsum``)."""
    n = flags.shape[0]
    count = _running_count(flags)
    at = jnp.where(flags & (count <= size), count - 1, size)
    return jnp.full(size, n, jnp.int32).at[at].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def run_lanes(program: CellProgram, cells, lanes: int, inputs):
    """Every cell's `CellPath`, computed ``lanes`` cells at a time.

    ``cells``: a pytree of per-cell arrays (leading axis: cells); ``inputs(cell) -> (key, params,
    x0)`` gives one cell's arguments of ``program.start`` (``params`` also feeds
    ``program.advance``).
    """
    n = jax.tree.leaves(cells)[0].shape[0]
    width = min(lanes, n)
    per_block = -(-width // REFILLS_PER_BLOCK)

    def begin(idx):
        """Lanes starting cells ``idx``; an index ``>= n`` makes an idle lane."""
        cell = jax.tree.map(lambda v: v[jnp.minimum(idx, n - 1)], cells)

        def start(c, live):
            key, params, x0 = inputs(c)
            return program.start(key, params, x0, live)

        return {"idx": idx, "cell": cell, "state": jax.vmap(start)(cell, idx < n)}

    def advance(c, state):
        return program.advance(inputs(c)[1], state)

    first = begin(jnp.arange(width))
    shapes = jax.eval_shape(jax.vmap(program.finish), first["state"])
    out = jax.tree.map(lambda s: jnp.zeros((n, *s.shape[1:]), s.dtype), shapes)

    def block(carry):
        lane, next_cell, out = carry
        lane = {**lane, "state": jax.vmap(advance)(lane["cell"], lane["state"])}
        done = (lane["idx"] < n) & ~jax.vmap(program.running)(lane["state"])
        slots = _first_true(done, per_block)
        taken = slots < width
        emptied = jax.tree.map(lambda v: v[jnp.minimum(slots, width - 1)], lane)
        paths = jax.vmap(program.finish)(emptied["state"])
        rows = jnp.where(taken, emptied["idx"], n)  # out of range: dropped
        out = jax.tree.map(lambda o, p: o.at[rows].set(p, mode="drop"), out, paths)
        rank = _running_count(taken) - 1
        fresh = begin(jnp.where(taken, next_cell + rank, n).clip(max=n))
        into = jnp.where(taken, slots, width)
        lane = jax.tree.map(lambda v, f: v.at[into].set(f, mode="drop"), lane, fresh)
        return lane, next_cell + jnp.sum(taken), out

    def unwritten(carry):
        return jnp.any(carry[0]["idx"] < n)

    return jax.lax.while_loop(unwritten, block, (first, jnp.asarray(width), out))[2]
