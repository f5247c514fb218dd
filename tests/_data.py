"""The test data shipped in ``tests/data`` (see its README), found by `data_file`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


def data_file(relative: str) -> Path:
    """``tests/data/<relative>`` (a file or folder); if missing, skip, or fail under ``CI=true``."""
    path = DATA / relative
    if not path.exists():
        message = f"test data {path} is missing (it ships with the repository in tests/data)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    return path
