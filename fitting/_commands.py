"""Sub-commands of the ``grn`` command line that live in `fitting` (``fit``, ``interventions``,
``demo``). `grn._cli.build_parser` calls `register` once; each command module adds its parser and
sets ``func``."""

from __future__ import annotations


def register(commands) -> None:
    """Add fitting's sub-commands to the ``grn`` argparse sub-parsers ``commands``."""
    from ._fit_cli import add_parser as add_fit_parser

    add_fit_parser(commands)
    from ._interventions_cli import add_parser as add_interventions_parser

    add_interventions_parser(commands)
    from ._demo import add_parser as add_demo_parser

    add_demo_parser(commands)
