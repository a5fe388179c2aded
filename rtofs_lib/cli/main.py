"""The ``rtofs`` command line.

Each sub-command lives in a small module of :mod:`rtofs_lib.cli` that defines
``register(subparsers)``; heavy imports happen inside the command, so ``rtofs --help``
stays fast. Exit status: :class:`rtofs_lib.status.ExitStatus`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from rtofs_lib import __version__
from rtofs_lib.errors import ConfigError, RtofsError
from rtofs_lib.status import ExitStatus

#: Sub-command modules, in the order ``rtofs --help`` lists them.
COMMAND_MODULES = (
    "sample",
    "render",
    "crawl",
    "run",
    "stream",
    "series",
    "cube",
    "demo",
    "dashboard",
    "animate",
    "kernel",
    "hub",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``rtofs`` argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="rtofs",
        description="Global RTOFS ocean forecasts: sample data, crawl, render, run on Spark.",
    )
    parser.add_argument("--version", action="version", version=f"rtofs {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = import_module(f"rtofs_lib.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"rtofs_lib.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtofs`` command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"rtofs {args.command}: error: {e}", file=sys.stderr)
        return ExitStatus.USAGE
    except RtofsError as e:
        print(f"rtofs {args.command}: error: {e}", file=sys.stderr)
        return ExitStatus.FAILED
    except KeyboardInterrupt:
        print(f"rtofs {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
