"""``rtofs series``: a point or box-mean series from the cube, as CSV (and a plot)."""

from __future__ import annotations

import argparse
import sys

from rtofs_lib.errors import RtofsError


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        west, east, south, north = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--box {text!r}: write four numbers west,east,south,north, e.g. -80,-70,-45,-18"
        ) from None
    return west, east, south, north


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``series`` sub-command."""
    p = subparsers.add_parser(
        "series",
        help="a point or box-mean series from the cube, as CSV",
        description=(
            "Print the series of a field at the ocean cell nearest --lon/--lat (or its "
            "area-weighted mean over --box) from the cube, one row per valid time, each from "
            "the most recent forecast (nowcast first): CSV valid_time,<field>."
        ),
    )
    p.add_argument("--lon", type=float, help="longitude, degrees (any convention)")
    p.add_argument("--lat", type=float, help="latitude, degrees")
    p.add_argument(
        "--box",
        type=_box,
        help="west,east,south,north: a box mean instead (write --box=-80,-70,-45,-18)",
    )
    p.add_argument("--field", default="sst", help="stored field (default sst)")
    p.add_argument("--from", dest="start", help="first valid day YYYYMMDD")
    p.add_argument("--to", dest="end", help="last valid day YYYYMMDD")
    p.add_argument("--cube", help="the cube folder (default: config)")
    p.add_argument("--plot", metavar="PNG", help="also draw the series into this PNG")
    p.set_defaults(func=series_command)


def series_command(args: argparse.Namespace) -> int:
    """Print the series as CSV; 2 for a bad request."""
    import numpy as np

    from rtofs_lib.cube import query

    if args.box is None and (args.lon is None or args.lat is None):
        print("rtofs series: error: give --lon and --lat, or --box W,E,S,N", file=sys.stderr)
        return 2
    common = {"field": args.field, "start": args.start, "end": args.end, "cube": args.cube}
    if args.box is not None:
        series = query.box_series(args.box, **common)
    else:
        series = query.point_series(args.lon, args.lat, **common)
    print(f"valid_time,{args.field}")
    for t, v in zip(series["valid_time"].values, series.values, strict=True):
        # the shortest text that reads back as the same float32 (box means: float64)
        value = np.format_float_positional(v, unique=True, trim="-") if np.isfinite(v) else ""
        print(f"{str(t)[:16].replace('T', ' ')}Z,{value}")
    if args.plot:
        _plot(series, args.plot)
    return 0


def _plot(series, path: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(series["valid_time"].values, series.values, lw=1.2)
    where = (f"box {series.attrs['box']}" if "box" in series.attrs
             else f"{series.attrs['lat']:.3f}°, {series.attrs['lon']:.3f}°")  # fmt: skip
    ax.set_title(f"{series.name} at {where} (best forecast per valid time)")
    ax.set_ylabel(f"{series.name} ({series.attrs.get('units', '')})")
    ax.grid(alpha=0.3)
    try:
        fig.savefig(path)
    except OSError as e:
        raise RtofsError(
            f"{path}: cannot write the plot ({e.strerror}); give another --plot"
        ) from e
