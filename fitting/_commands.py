"""Sub-commands of the ``grn`` command line that live in `fitting` (``fit``, ``interventions``,
``demo``). `grn._cli.build_parser` calls `register` once; each command module adds its parser and
sets ``func``."""

from __future__ import annotations


def register(commands) -> None:
    """Add fitting's sub-commands to the ``grn`` argparse sub-parsers ``commands``."""
