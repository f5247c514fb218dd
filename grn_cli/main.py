"""The ``grn`` command line: ``grn simulate``, ``dsmts``, ``sbml-suite``, ``fit``,
``interventions``, ``demo``.

Every sub-command writes machine-readable results and plots into an output folder. Bad options
exit with status 2 and a one-line ``grn: error: ...`` message naming the culprit, no traceback.
Each command lives in its own module (`grn_cli.simulate`, ...), which adds its parser and sets
``func``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grn import __version__

from . import demo, dsmts, fit, interventions, sbml_suite, simulate
from .options import UsageError


def build_parser() -> argparse.ArgumentParser:
    """The ``grn`` parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="grn",
        description="Stochastic gene-regulatory-network simulation in JAX.",
        epilog="Run 'grn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"grn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (simulate, dsmts, sbml_suite, fit, interventions, demo):
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``grn`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's own errors (status 2)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, KeyError, TypeError) as err:
        if not _raised_by_grn(err):
            raise  # a bug, not a bad option: keep the traceback
        print(f"grn: error: {_message(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"grn: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("grn: interrupted", file=sys.stderr)
        return 130


def _raised_by_grn(err: BaseException) -> bool:
    """Whether ``err`` was raised in grn's own code (its validation), not deep inside JAX."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return True
    here = Path(__file__).resolve().parent
    packages = (here, here.parent / "grn", here.parent / "fitting")  # the checks of all three
    return any(p in Path(tb.tb_frame.f_code.co_filename).resolve().parents for p in packages)


def _message(err: Exception) -> str:
    # str(KeyError("text")) is "'text'": show the plain message instead.
    if type(err) is KeyError and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
