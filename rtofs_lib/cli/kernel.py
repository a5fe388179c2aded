"""``rtofs kernel``: install the shared "RTOFS (PySpark)" Jupyter kernel."""

from __future__ import annotations

import argparse
from pathlib import Path


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of threads")
    return n


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``kernel`` sub-command (``rtofs kernel install``)."""
    p = subparsers.add_parser(
        "kernel",
        help="install the shared RTOFS (PySpark) notebook kernel",
        description="Manage the shared 'RTOFS (PySpark)' Jupyter kernel of this environment.",
    )
    sub = p.add_subparsers(dest="kernel_command", metavar="ACTION", required=True)
    inst = sub.add_parser(
        "install",
        help="install the kernel spec",
        description=(
            "Install the kernel spec (kernel.json and its start-up file) that runs this "
            "environment's Python with `spark` (started on first use), the rtofs library "
            "and the viewers. Default location: system-wide (/usr/local/share/jupyter/kernels). "
            "Prints the folder written."
        ),
    )
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user only")
    where.add_argument(
        "--sys-prefix", action="store_true", help="into this environment (sys.prefix)"
    )
    where.add_argument(
        "--prefix", type=Path, metavar="P", help="into P/share/jupyter/kernels (e.g. /usr/local)"
    )
    inst.add_argument("--name", default=None, help="spec folder name (default: rtofs)")
    inst.add_argument("--display-name", default=None, help="default: 'RTOFS (PySpark)'")
    inst.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings file for RTOFS_CONFIG (default: $RTOFS_CONFIG, else "
        "/etc/rtofs/rtofs.toml if present)",
    )
    inst.add_argument(
        "--omp-threads",
        type=_threads,
        default=None,
        metavar="N",
        help="OMP_NUM_THREADS of notebooks (default 2)",
    )
    inst.set_defaults(func=run_install)


def run_install(args: argparse.Namespace) -> int:
    """Install the spec and print where it went."""
    from rtofs_lib.notebook import kernel
    from rtofs_lib.status import ExitStatus

    dest = kernel.install(
        user=args.user,
        sys_prefix=args.sys_prefix,
        prefix=args.prefix,
        name=args.name or kernel.KERNEL_NAME,
        display_name=args.display_name or kernel.DISPLAY_NAME,
        config=args.config,
        omp_threads=args.omp_threads or kernel.DEFAULT_OMP_THREADS,
    )
    print(dest)
    return ExitStatus.OK
