"""The ``rtofs`` command line: :func:`main` and one small module per sub-command."""

from rtofs_lib.cli.main import main

__all__ = ["main"]
