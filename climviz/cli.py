"""The ``climviz`` command line.

``climviz demo | train | predict | label | events | report | fetch``. Each
subcommand lives beside the code it drives (``climviz/<subpackage>/cli.py``,
with a ``register(subparsers)`` function); this module only wires them up, and
imports nothing heavy until a command runs.

Errors: a :class:`~climviz.errors.ClimvizError` (a user's mistake or an
environment problem: bad file, unwritable output, unreachable cluster, ...) is
printed as one line ``climviz <command>: error: <message>`` on stderr with exit
code 1 and no traceback; ``--debug`` (before or after the command name) shows
its traceback too. Any other exception is a bug in climviz and propagates with
its full traceback. Ctrl-C ends with exit code 130 and one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings
from typing import Sequence

from climviz._version import __version__
from climviz.errors import ClimvizError

#: modules providing ``register(subparsers)``, in the order shown by ``--help``
_COMMAND_MODULES = (
    "climviz.demo",  # demo, report
    "climviz.training.cli",  # train
    "climviz.inference.cli",  # predict
    "climviz.labels.cli",  # label
    "climviz.events.cli",  # events
    "climviz.data.cli",  # fetch
)

_DEBUG_HELP = "on an error, show the full traceback (for bug reports)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="climviz",
        description="Segment and study extreme weather (tropical cyclones, atmospheric rivers) "
        "in climate model output.",
    )
    parser.add_argument("--version", action="version", version=f"climviz {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a subpackage without a CLI yet
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    # `--debug` is also accepted after the command name (climviz predict ... --debug)
    for command_parser in sub.choices.values():
        if not any("--debug" in a.option_strings for a in command_parser._actions):
            command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                        help=_DEBUG_HELP)
    return parser


def _notes_not_warnings(command: str) -> None:
    """Show climviz's own warnings as one plain line each; keep libraries' warnings quiet.

    A warning raised by climviz (a caveat about the user's data or settings, e.g. a run
    too short to stitch TC tracks) prints as ``climviz <command>: note: <message>``, without
    a source line. Warnings raised inside libraries (deprecations, Bokeh/pyproj notices)
    are not the user's concern in normal use; ``--verbose`` or ``--debug`` shows everything
    as Python would.
    """
    package = os.path.dirname(os.path.abspath(__file__))

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings API
        if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(package + os.sep):
            print(f"climviz {command}: note: {message}", file=sys.stderr)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 climviz error, 2 usage, 130 Ctrl-C).

    A :class:`~climviz.errors.ClimvizError` is printed as one line
    ``climviz <command>: error: ...`` (plus its traceback with ``--debug``); any
    other exception is a bug and propagates with its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if not (args.debug or args.verbose):
        _notes_not_warnings(args.command)
    try:
        return int(args.func(args) or 0)
    except ClimvizError as exc:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split("\n")) if str(exc) else type(exc).__name__
        print(f"climviz {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(f"climviz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
