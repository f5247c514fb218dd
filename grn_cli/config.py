"""Reading and checking the TOML configs of ``grn fit``, ``grn interventions`` and ``grn demo``.

Every error is a `ConfigError` in one format, ``FILE: KEY: problem`` (``KEY`` the dotted key, e.g.
``fit.solver`` or ``scan.levels.EPIi``, or the section), and says what was expected.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import NoReturn


class ConfigError(ValueError):
    """A bad config: the message names the file and the key."""


def fail(path, key: str, message: str) -> NoReturn:
    """Raise the `ConfigError` ``PATH: KEY: MESSAGE``."""
    raise ConfigError(f"{path}: {key}: {message}")


def read(
    path,
    sections: Mapping[str, Collection[str] | None],
    required: Collection[str] = (),
    nonempty: Collection[str] = (),
) -> dict:
    """Parse the TOML file ``path`` and check its layout.

    ``sections`` maps each allowed section to its allowed keys (``None``: any key); every
    ``required`` section must be present, every ``nonempty`` one present and non-empty. Returns
    the parsed tables.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    for section, table in raw.items():
        if section not in sections:
            fail(path, section, f"unknown section (expected {', '.join(sections)})")
        if not isinstance(table, dict):
            fail(path, section, "must be a table")
        known = sections[section]
        for key in table:
            if known is not None and key not in known:
                fail(path, f"{section}.{key}", f"unknown key (expected {', '.join(sorted(known))})")
    for section in (*required, *nonempty):
        if section not in raw:
            fail(path, section, "missing section")
    for section in nonempty:
        if not raw[section]:
            fail(path, section, "empty section")
    return raw


def optional_number(path, key, value, **checks) -> int | float | None:
    """``None``, or ``value`` checked as `number` does."""
    return None if value is None else number(path, key, value, **checks)


def number(path, key, value, *, integer=False, positive=False, minimum=None) -> int | float:
    """``value`` if it is a finite number (an integer with ``integer``), positive with
    ``positive``, at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(path, key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if integer and not isinstance(value, int):
        fail(path, key, f"must be an integer, got {value!r}")
    if not math.isfinite(value):
        fail(path, key, f"must be finite, got {value!r}")
    if positive and value <= 0:
        fail(path, key, f"must be positive, got {value!r}")
    if minimum is not None and value < minimum:
        fail(path, key, f"must be >= {minimum}, got {value!r}")
    return value


def numbers(path, key, value, **checks) -> list[float]:
    """A non-empty list of numbers, each checked as `number` does."""
    if not isinstance(value, list) or not value:
        fail(path, key, f"must be a non-empty list of numbers, got {value!r}")
    return [float(number(path, key, v, **checks)) for v in value]


def flag(path, key, value) -> bool:
    """``value`` if it is ``true`` or ``false``."""
    if not isinstance(value, bool):
        fail(path, key, f"must be true or false, got {value!r}")
    return value


def model_source(path, model: Mapping) -> None:
    """``[model]`` names exactly one network: ``builtin = NAME`` or ``sbml = FILE``."""
    if ("builtin" in model) == ("sbml" in model):
        fail(path, "model", "give exactly one of builtin = NAME or sbml = FILE")
    if "sbml" in model and not isinstance(model["sbml"], str):
        fail(path, "model.sbml", f"must be a path string, got {model['sbml']!r}")


def network(path, model: Mapping):
    """The `grn.Network` of a checked ``[model]``: a built-in one or an SBML file (relative to
    the config file)."""
    import grn

    path = Path(path)
    if "builtin" in model:
        if model["builtin"] not in grn.models.BUILTIN:
            fail(
                path,
                "model.builtin",
                f"unknown model {model['builtin']!r} (built-in: {list(grn.models.BUILTIN)})",
            )
        return grn.models.BUILTIN[model["builtin"]]()
    file = (path.parent / model["sbml"]).resolve()
    if not file.is_file():
        fail(path, "model.sbml", f"file {str(file)!r} not found")
    return grn.load_sbml(file)
