"""Option types of the ``grn`` command line (argparse ``type=`` callables) and its own errors."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


class UsageError(Exception):
    """A user error found by the command line itself (printed as ``grn: error: ...``, status 2)."""


def output_folder(out: Path) -> Path:
    """``--out``: a folder, created later by the command; an existing file there is an error."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a folder")
    return out


def cell_parameters(network, values, heterogeneity: bool = True) -> dict:
    """``params=`` for `grn.simulate` from a command's parameter values. A value for a parameter
    the network draws per cell (``Network.cell_params``) sets that distribution's median and
    keeps its spread; ``heterogeneity=False`` gives every cell one value (the median, or the
    value given)."""
    import equinox as eqx
    import numpy as np

    params = dict(values)
    for name, dist in network.cell_params.items():
        value = params.pop(name, None)
        if not heterogeneity:
            params[name] = float(dist.median) if value is None else value
        elif value is not None:
            params[name] = eqx.tree_at(lambda d: d.median, dist, np.asarray(value, np.float64))
    return params


def describe_cell_params(params: dict, network) -> dict:
    """What ``run.json`` says of the per-cell distributions a run draws (name -> fields)."""
    import dataclasses

    import grn

    drawn = {**network.cell_params, **params}
    return {
        name: {"distribution": type(d).__name__}
        | {f.name: float(getattr(d, f.name)) for f in dataclasses.fields(d)}
        for name, d in drawn.items()
        if isinstance(d, grn.Distribution)
    }


def case_numbers(cases: list[str] | None) -> list[str] | None:
    """``--cases``: suite case numbers such as 1 or 00001 (None: all cases)."""
    bad = [c for c in cases or () if not c.isdigit()]
    if bad:
        raise UsageError(f"--cases takes case numbers such as 1 or 00001, got {bad[0]!r}")
    return cases


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def points(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be at least 2 (output times run from 0 to --t-end), got {text!r}"
        )
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {text!r}")
    return value


def param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"value of {name!r} must be a number, got {value!r} (in {text!r})"
        ) from None
    return name, number


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def level(text: str) -> float:
    value = number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a level in [0, 1], got {text!r}")
    return value


def days(text: str) -> float:
    value = number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of days >= 0, got {text!r}")
    return value


def dose(text: str) -> tuple:
    """``INPUT=LEVEL@START_H[:DURATION_H]`` -> (input, level, start_h, duration_h or None, text)."""
    name, sep, rest = text.partition("=")
    level, at, when = rest.partition("@")
    start, colon, duration = when.partition(":")
    parts = (name.strip(), level.strip(), start.strip())
    if not (sep and at and all(parts)) or (colon and not duration.strip()):
        raise argparse.ArgumentTypeError(
            f"expected INPUT=LEVEL@START_H[:DURATION_H] (e.g. NFKBi=0.8@0:696), got {text!r}"
        )
    numbers = []
    for what, value in (("LEVEL", level), ("START_H", start), ("DURATION_H", duration)):
        if what == "DURATION_H" and not colon:
            numbers.append(None)
            continue
        try:
            numbers.append(float(value))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a number, got {value.strip()!r} (in {text!r})"
            ) from None
    return (parts[0], *numbers, text)
