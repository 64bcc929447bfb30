"""The ``climviz`` command line.

``climviz demo | train | predict | label | events | report | fetch``. Each
subcommand lives beside the code it drives (``climviz/<subpackage>/cli.py``,
with a ``register(subparsers)`` function); this module only wires them up, and
imports nothing heavy until a command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="climviz",
        description="Segment and study extreme weather (tropical cyclones, atmospheric rivers) "
        "in climate model output.",
    )
    parser.add_argument("--version", action="version", version=f"climviz {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a subpackage without a CLI yet
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 climviz error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ClimvizError as exc:
        print(f"climviz {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
