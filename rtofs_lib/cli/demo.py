"""``rtofs demo``: make a sample day, render it with Spark in local mode, open the dashboard."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

#: Steps of the demo day: the nowcast and the first forecast day, hourly.
DEMO_STEPS = "n024,f000-f024"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="make a sample day, render it on local Spark and write the dashboard",
        description=(
            "Write a synthetic day of real-format RTOFS prog files into OUT/archive, render "
            "its maps and region statistics with Spark in local mode into OUT/maps and "
            "write the dashboard OUT/maps/index.html."
        ),
    )
    p.add_argument("--out", default="rtofs-demo", help="folder for the demo (default ./rtofs-demo)")
    p.add_argument("--grid", default="small", help="small (330x450), full (3298x4500) or NYxNX")
    p.add_argument("--steps", default=DEMO_STEPS, help=f"steps to make (default {DEMO_STEPS})")
    p.add_argument("--date", help="cycle day YYYYMMDD (default: today, UTC)")
    p.add_argument("--fields", default="sst", help="fields to draw (default sst)")
    p.add_argument(
        "--master", default="local[*]", help="Spark master, or 'serial' (default local[*])"
    )
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Make the sample day, run the job and say where the dashboard is."""
    from rtofs_lib.cli.run import print_progress
    from rtofs_lib.fetch import catalog, names
    from rtofs_lib.jobs import pipeline
    from rtofs_lib.testing import sample

    out = Path(args.out).expanduser().resolve()
    archive, maps, cache = out / "archive", out / "maps", out / "cache"
    date = args.date or f"{dt.datetime.now(dt.UTC):%Y%m%d}"
    steps = names.expand_steps(args.steps, "prog")
    present = {names.parse_name(p.name).step for p in catalog.day_files(archive, date)}
    missing = [s for s in steps if s not in present]
    if missing:
        print(f"writing {len(missing)} sample files ({args.grid} grid) into {archive} ...")
        sample.write_sample(archive, date, steps=",".join(missing), grid=args.grid)
    report = pipeline.run(
        date,
        archive=archive,
        maps=maps,
        cache_dir=cache,
        fields=args.fields,
        master=args.master,
        progress=print_progress,
    )
    print(report.summary())
    index = maps / "index.html"
    print(f"\nOpen the dashboard: {index.as_uri()}")
    print(f"or serve it:        python -m http.server -d {maps} 8000  (http://localhost:8000/)")
    return report.exit_status
