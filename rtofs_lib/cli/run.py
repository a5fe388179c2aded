"""``rtofs run``: render a day's maps (or every day's) on Spark, or serially."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` sub-command."""
    p = subparsers.add_parser(
        "run",
        help="render maps, region statistics and the dashboard of a day on Spark",
        description=(
            "Render the maps of a day's files (one Spark task per file) into "
            "MAPS/rtofs.YYYYMMDD/, with region statistics and the dashboard. Files whose "
            "maps are newer than the file are skipped unless --force. Exit status: 0 "
            "complete, 3 partial (some files failed), 1 failed. Defaults come from the "
            "rtofs configuration."
        ),
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--date", help="cycle day YYYYMMDD (default: the latest day in the archive)")
    when.add_argument("--all", action="store_true", help="every day in the archive")
    add_job_options(p)
    p.add_argument("--force", action="store_true", help="render even files whose maps are current")
    p.add_argument("--cube", help="the cube each file is appended to (default: config)")
    p.set_defaults(func=run_command)


def add_job_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``demo``."""
    p.add_argument("--fields", help="fields to draw, e.g. sst,sss (default: config)")
    p.add_argument("--archive", help="archive root (default: config)")
    p.add_argument("--maps", help="maps folder (default: config)")
    p.add_argument("--cache", help="grid-index cache folder (default: config)")
    p.add_argument(
        "--master",
        help="Spark master URL (spark://host:7077, local[2]) or 'serial' for no Spark "
        "(default: config, else local[*])",
    )


def print_progress(result, done: int, total: int) -> None:
    """Print one line per finished file."""
    width = len(str(total))
    print(f"[{done:>{width}}/{total}] {result.line()}", flush=True)


def run_command(args: argparse.Namespace) -> int:
    """Run the rendering job and return its exit status."""
    from rtofs_lib import config
    from rtofs_lib.fetch import catalog
    from rtofs_lib.jobs import pipeline

    s = config.load()
    archive = args.archive or s.archive
    date, dates = args.date, None
    if args.all:
        dates = [d.strftime("%Y%m%d") for d in catalog.list_days(archive)]
        if not dates:
            print(f"rtofs run: error: {archive}: no rtofs.YYYYMMDD folders", file=sys.stderr)
            return 1
    elif date is None:
        days = catalog.list_days(archive)
        if not days:
            print(
                f"rtofs run: error: {archive}: no rtofs.YYYYMMDD folders; fetch a day with "
                "`rtofs crawl` or make one with `rtofs sample`",
                file=sys.stderr,
            )
            return 1
        date = days[-1].strftime("%Y%m%d")
    report = pipeline.run(
        date,
        dates=dates,
        archive=archive,
        maps=args.maps,
        cache_dir=args.cache,
        fields=args.fields,
        master=args.master,
        force=args.force,
        cube=args.cube,
        progress=print_progress,
        settings=s,
    )
    print(report.summary())
    if report.outputs:
        print(f"dashboard: {report.maps / 'index.html'}")
    return report.exit_status
