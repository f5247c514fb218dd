"""Refilled lanes: run many cells on fewer SIMD lanes, starting a new cell where one finished.

A vmapped stepping loop runs until its slowest cell is done; every lane whose cell finished
earlier idles meanwhile (the exact SSA's repressilator: 1 - mean/max events per cell is 20 % at
10^4 cells, benchmarks/ssa_profile.md). `run_lanes` keeps ``lanes`` cells in flight instead:
after each block of steps it writes the paths of up to ``ceil(lanes / 16)`` finished cells to
the output and starts the next cells in their lanes; once every cell has started, the lanes
are halved whenever at most half of them still run (`_drain`), so the slowest cells' tail
does not keep every lane stepping (this applies to all cells at once, too). The recorded
paths stay outside the lanes: each block's rows go straight into the ``(cells, times, ...)``
outputs, so no loop carries, copies or selects them. Each cell's computation is the
same as in a plain ``vmap`` (its own key, inputs and steps), so the paths are bit-identical;
only the order in which cells run changes (tests/test_lanes.py; a differently compiled kernel,
such as the vmapped single-cell loop of ``solve_cell``, may round a rate law differently: on
the melanoma model 9 of 512 cells took another path after ~490,000 events). The refill is part
of the compiled loop (no host round-trip), so it runs unchanged on a GPU (not measured there:
no GPU was lent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._solvers import CellProgram
from ._solvers._stepping import split_outputs

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


FROZEN_MAX = 0.25
"""Blocks that record one row switch to stacked rows when more than this fraction of their
steps were frozen (a cell that reaches output times faster than one per block idles)."""

ROWS_MIN = 0.5
"""Blocks that stack every step's row switch back to one row when their lanes reached fewer
than this many output times each."""


def _next_one_row(one_row: bool, written, outputs):
    """Whether the next block records one row per lane (`grn._solvers._stepping.Stepper.block`):
    the cheaper block where output times are sparse among the events (the exact SSA's
    repressilator: -25 % wall time per event), stacked rows where they are dense (one row per
    block would idle the lanes: 14x slower on immigration-death with 2.5 output times per
    event). Either way the paths are the same; only the cost changes."""
    if one_row:
        return jnp.mean(written["frozen"]) <= FROZEN_MAX
    times = jax.tree.leaves(outputs)[0].shape[1]
    return jnp.mean(jnp.sum(written["row"] < times, axis=-1)) < ROWS_MIN


def _write(outputs, cells, written):
    """Every lane's block rows (`grn._solvers.record`) written into the ensemble's output
    arrays at its cell's index ``cells`` (``>= n``: an idle lane, dropped)."""
    rows = written["row"]
    at = jnp.broadcast_to(cells[:, None], rows.shape)
    return {name: v.at[at, rows].set(written[name], mode="drop") for name, v in outputs.items()}


def run_lanes(
    program: CellProgram, cells, lanes: int, inputs, halvings: int = 0, narrowest: int = 64
):
    """Every cell's `CellPath`, computed ``lanes`` cells at a time (all at once when
    ``lanes >= n``).

    ``cells``: a pytree of per-cell arrays (leading axis: cells); ``inputs(cell) -> (key, params,
    x0)`` gives one cell's arguments of ``program.start`` (``params`` also feeds
    ``program.advance``). The cells' output arrays live outside the lanes, ``(cells, times,
    ...)``: each block's rows are written there directly, and a finished cell leaves its final
    state in ``finals``; ``finish`` runs on both at the end. Once every cell has started, the
    lanes are halved, up to ``halvings`` times and not below ``narrowest`` lanes, whenever at
    most half of them still run (`_drain`).
    """
    n = jax.tree.leaves(cells)[0].shape[0]
    width = min(lanes, n)
    per_block = -(-width // REFILLS_PER_BLOCK)

    def begin(idx):
        """Lanes starting cells ``idx`` (an index ``>= n`` makes an idle lane), and the cells'
        initial output arrays."""
        cell = jax.tree.map(lambda v: v[jnp.minimum(idx, n - 1)], cells)

        def start(c, live):
            key, params, x0 = inputs(c)
            return program.start(key, params, x0, live)

        state, outputs = split_outputs(jax.vmap(start)(cell, idx < n))
        return {"idx": idx, "cell": cell, "state": state}, outputs

    def blocks(one_row):
        """One block of every lane, its rows written; and whether the next block records one
        row (`_next_one_row`)."""

        def run(lane, outputs):
            advance = lambda c, s: program.advance(inputs(c)[1], s, one_row)  # noqa: E731
            state, written = jax.vmap(advance)(lane["cell"], lane["state"])
            outputs = _write(outputs, lane["idx"], written)
            return {**lane, "state": state}, outputs, _next_one_row(one_row, written, outputs)

        return run

    def step(lane, outputs, one_row):
        if not program.one_row:
            return blocks(False)(lane, outputs)
        return jax.lax.cond(one_row, blocks(True), blocks(False), lane, outputs)

    def live(lane):
        return (lane["idx"] < n) & jax.vmap(program.running)(lane["state"])

    first, outputs = begin(jnp.arange(width))
    if width == n:  # nothing to refill: lane i holds cell i
        finals = first["state"]
        carry = (first, outputs, finals, jnp.asarray(program.one_row))
    else:

        def everyone(tree):
            """``tree``'s first lane, broadcast to every cell (placeholders until a cell
            starts)."""
            return jax.tree.map(lambda v: jnp.broadcast_to(v[:1], (n, *v.shape[1:])), tree)

        outputs = jax.tree.map(lambda o, v: o.at[:width].set(v), everyone(outputs), outputs)
        finals = everyone(first["state"])

        def block(carry):
            lane, next_cell, outputs, finals, one_row = carry
            lane, outputs, one_row = step(lane, outputs, one_row)
            done = (lane["idx"] < n) & ~jax.vmap(program.running)(lane["state"])
            slots = _first_true(done, per_block)
            taken = slots < width
            emptied = jax.tree.map(lambda v: v[jnp.minimum(slots, width - 1)], lane)
            rows = jnp.where(taken, emptied["idx"], n)  # out of range: dropped
            finals = jax.tree.map(
                lambda f, e: f.at[rows].set(e, mode="drop"), finals, emptied["state"]
            )
            rank = _running_count(taken) - 1
            fresh, initial = begin(jnp.where(taken, next_cell + rank, n).clip(max=n))
            outputs = jax.tree.map(
                lambda o, v: o.at[fresh["idx"]].set(v, mode="drop"), outputs, initial
            )
            into = jnp.where(taken, slots, width)
            lane = jax.tree.map(lambda v, f: v.at[into].set(f, mode="drop"), lane, fresh)
            return lane, next_cell + jnp.sum(taken), outputs, finals, one_row

        def unstarted(carry):
            return carry[1] < n

        carry = (first, jnp.asarray(width), outputs, finals, jnp.asarray(program.one_row))
        lane, _, outputs, finals, one_row = jax.lax.while_loop(unstarted, block, carry)
        carry = (lane, outputs, finals, one_row)
    outputs, finals = _drain(carry, step, live, begin, n, halvings, narrowest)
    return jax.vmap(program.finish)({**finals, **outputs})


def _drain(carry, step, live, begin, n: int, halvings: int, narrowest: int):
    """Run every started cell to its end, halving the lanes (up to ``halvings`` times, each half
    ``narrowest`` lanes or more) whenever at most half of them still run, the live cells
    gathered into the narrower lanes: the tail of the slowest cells does not keep every lane
    stepping. The exact SSA's repressilator, 500 cells on one device: 1.22 lane-steps per event
    on 500 lanes throughout, 1.06 with 250 and 125 lanes at the end. Each width compiles the
    block once more. Returns ``(outputs, finals)``, ``finals`` every cell's final state."""
    lane, outputs, finals, one_row = carry

    def run_until(count, lane, outputs, finals, one_row):
        """Blocks until at most ``count`` lanes run; then every lane's state goes to finals."""
        lane, outputs, one_row = jax.lax.while_loop(
            lambda c: jnp.sum(live(c[0])) > count, lambda c: step(*c), (lane, outputs, one_row)
        )
        at = lane["idx"]
        finals = jax.tree.map(lambda f, s: f.at[at].set(s, mode="drop"), finals, lane["state"])
        return lane, outputs, finals, one_row

    for _ in range(halvings):
        width = lane["idx"].shape[0]
        if width // 2 < narrowest:
            break
        lane, outputs, finals, one_row = run_until(width // 2, lane, outputs, finals, one_row)
        keep = _first_true(live(lane), width // 2)  # padded with ``width``: an idle lane
        lane = jax.tree.map(
            lambda v, idle: jnp.where(_column(keep < width, v), v[keep.clip(max=width - 1)], idle),
            lane,
            begin(jnp.full(width // 2, n))[0],
        )
    _, outputs, finals, _ = run_until(0, lane, outputs, finals, one_row)
    return outputs, finals


def _column(flags, like):
    """``flags`` (lanes,) shaped to broadcast against ``like`` (lanes, ...)."""
    return flags.reshape((-1,) + (1,) * (like.ndim - 1))
