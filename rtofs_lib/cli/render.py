"""``rtofs render``: draw the low- and high-resolution maps of RTOFS files."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` sub-command."""
    p = subparsers.add_parser(
        "render",
        help="draw maps (PNG) of RTOFS netCDF files",
        description=(
            "Draw a global (or --region) map of each FILE at low resolution (about 1500 px "
            "wide) and native 1/12° detail (0.08° per pixel) into OUT/<file stem>/"
            "<field>.<size>.png. A bad file is reported and skipped; the others are still "
            "rendered. Exit status: 0 all rendered, 3 some failed, 1 all failed."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="RTOFS netCDF files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--field",
        action="append",
        metavar="F",
        help="field to draw; repeat for more: sst (default), sss, speed, ssh, temperature, "
        "salinity",
    )
    p.add_argument(
        "--region",
        metavar="LON0,LON1,LAT0,LAT1",
        help="crop to a box in degrees; LON1 < LON0 crosses the dateline (e.g. 160,-150,-10,20); "
        "write --region=-80,-40,20,50 when LON0 is negative",
    )
    p.add_argument(
        "--size", choices=("low", "high", "both"), default="both", help="map sizes (default both)"
    )
    p.add_argument("--depth", type=float, help="depth in metres for 3-D fields (nearest level)")
    p.add_argument("--cache", metavar="DIR", help="grid-index cache (default: config 'cache')")
    p.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    """Render every file; report each failure by file name and keep going."""
    import time

    from rtofs_lib.errors import RtofsError
    from rtofs_lib.maps import render
    from rtofs_lib.maps.rasters import parse_region
    from rtofs_lib.maps.styles import FIELDS
    from rtofs_lib.status import ExitStatus, RunStatus

    fields = tuple(args.field or ("sst",))
    sizes = ("low", "high") if args.size == "both" else (args.size,)
    try:
        region = parse_region(args.region) if args.region else None
        for f in fields:
            if f not in FIELDS:
                raise ValueError(f"unknown field {f!r}; choose one of {', '.join(FIELDS)}")
    except ValueError as e:
        print(f"rtofs render: error: {e}", file=sys.stderr)
        return ExitStatus.USAGE
    failed = 0
    for path in args.files:
        t0 = time.perf_counter()
        try:
            written = render.render_file(
                path, args.out, fields=fields, region=region, sizes=sizes,
                depth=args.depth, cache_dir=args.cache,
            )  # fmt: skip
        except RtofsError as e:  # the message names the file
            failed += 1
            print(f"rtofs render: failed: {e}", file=sys.stderr)
            continue
        except Exception as e:  # one bad file must not stop the others
            failed += 1
            print(f"rtofs render: {path}: failed: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        dt = time.perf_counter() - t0
        for w in written:
            print(w)
        print(f"rtofs render: {path}: {len(written)} maps in {dt:.2f} s", file=sys.stderr)
    return RunStatus.of(done=len(args.files) - failed, failed=failed).exit_status
