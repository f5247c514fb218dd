"""Piecewise-constant input schedules (drug and intervention levels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np


class Schedule(eqx.Module):
    """Piecewise-constant levels of named inputs.

    ``Schedule(times=[0.0, 25.0], values={"I": [1.0, 0.0]})`` sets input ``I`` to 1 from t = 0 and
    to 0 from t = 25. Before the first time, and for inputs a schedule does not name, levels are 0.
    Times and levels are pytree leaves, so a new schedule of the same size never recompiles.
    Exact solvers treat each breakpoint as a restart point (the SSA is memoryless), so inputs that
    change in time keep the simulation exact.
    """

    times: np.ndarray | jax.Array
    values: dict[str, np.ndarray | jax.Array]

    def __init__(self, times: Sequence[float] | np.ndarray, values: Mapping[str, Sequence[float]]):
        if not isinstance(values, Mapping) or not values:
            raise ValueError("schedule values must be a non-empty mapping of input name -> levels")
        self.times = _validated("schedule times", times)
        if self.times.ndim != 1 or self.times.shape[0] == 0:
            raise ValueError(f"schedule times must be a non-empty 1-D sequence, got {times!r}")
        if isinstance(self.times, np.ndarray) and np.any(np.diff(self.times) <= 0):
            raise ValueError(
                f"schedule times must be strictly increasing, got {self.times.tolist()}"
            )
        self.values = {}
        for name, levels in values.items():
            levels = _validated(f"schedule input {name!r}", levels)
            if levels.shape != self.times.shape:
                raise ValueError(
                    f"schedule input {name!r} has {levels.shape} levels for "
                    f"{self.times.shape} times"
                )
            self.values[str(name)] = levels

    def check_inputs(self, inputs: Sequence[str]) -> None:
        """Raise if the schedule names an input the network does not have."""
        for name in self.values:
            if name not in inputs:
                raise ValueError(
                    f"schedule sets unknown input {name!r}; the network's inputs are {list(inputs)}"
                )

    def as_arrays(self, inputs: Sequence[str], dtype):
        """Breakpoints with a leading -inf and a (breakpoints + 1, inputs) table of levels.

        Segment ``i`` (from ``times[i]`` on) has levels ``table[i]``; segment 0 is "before the
        first breakpoint", all zeros.
        """
        times = jnp.asarray(self.times, dtype)
        n = times.shape[0]
        columns = [
            jnp.asarray(self.values[name], dtype) if name in self.values else jnp.zeros((n,), dtype)
            for name in inputs
        ]
        table = jnp.stack(columns, axis=-1) if columns else jnp.zeros((n, 0), dtype)
        times = jnp.concatenate([jnp.full((1,), -jnp.inf, dtype), times])
        table = jnp.concatenate([jnp.zeros((1, len(inputs)), dtype), table])
        return times, table


def no_schedule(inputs: Sequence[str], dtype):
    """The arrays of a schedule that keeps every input at 0."""
    return jnp.full((1,), -jnp.inf, dtype), jnp.zeros((1, len(inputs)), dtype)


def _validated(what: str, values) -> np.ndarray | jax.Array:
    """Concrete values become float64 arrays checked to be finite; traced values pass through."""
    if isinstance(values, jax.core.Tracer):
        return values
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite, got {values.tolist()}")
    return values
