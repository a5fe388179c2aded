"""``rtofs cube build``: fill the analysis-ready cube from archive days on Spark."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cube`` sub-command."""
    p = subparsers.add_parser(
        "cube",
        help="the analysis-ready cube: build (backfill) it from archive days",
        description="The analysis-ready cube (Zarr in an Icechunk repository).",
    )
    sub = p.add_subparsers(dest="cube_command", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build",
        help="append every archive file of a range of days the cube lacks",
        description=(
            "Append the prog files of the cycle days --from..--to to the cube, one Spark task "
            "per file; files already in the cube are skipped, files NOAA replaced are written "
            "again; complete days get their series-chunked copy. Exit status: 0 complete, 3 "
            "partial, 1 failed."
        ),
    )
    b.add_argument("--from", dest="start", required=True, help="first cycle day YYYYMMDD")
    b.add_argument("--to", dest="end", required=True, help="last cycle day YYYYMMDD")
    b.add_argument("--archive", help="archive root (default: config)")
    b.add_argument("--cube", help="the cube folder (default: config)")
    b.add_argument("--fields", help="fields to store, e.g. sst,sss (default: config)")
    b.add_argument(
        "--master", help="Spark master URL (spark://host:7077, local[2]) or 'serial' (no Spark)"
    )
    b.set_defaults(func=build_command)


def build_command(args: argparse.Namespace) -> int:
    """Run the backfill and return its exit status."""
    from rtofs_lib.jobs import cubebuild

    report = cubebuild.build(
        args.start,
        args.end,
        archive=args.archive,
        cube=args.cube,
        fields=args.fields,
        master=args.master,
    )
    print(report.summary())
    return report.exit_status
