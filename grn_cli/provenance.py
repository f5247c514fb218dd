"""The provenance record every command writes (``run.json``, ``fit.json``, ``results.json``)."""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def environment() -> dict:
    """Versions (grn, jax, Python), the JAX devices, the platform and the time of writing."""
    import jax

    import grn

    devices = jax.devices()
    return {
        "versions": {
            "grn": grn.__version__,
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
        "device": {
            "backend": jax.default_backend(),
            "count": len(devices),
            "kind": devices[0].device_kind,
            "devices": [str(d) for d in devices],
        },
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write(path: Path, record: Mapping, args, files: Mapping[str, Path | str]) -> Path:
    """Write ``record`` as JSON to ``path``: the command and its ``argv`` first, then the record,
    the `environment` and the names of the command's output ``files``. Returns ``path``."""
    full = {
        "command": args.command,
        "argv": list(args.argv),
        **record,
        **environment(),
        "files": {k: Path(p).name for k, p in files.items()},
    }
    path = Path(path)
    path.write_text(json.dumps(full, indent=2, default=_json_default) + "\n")
    return path
