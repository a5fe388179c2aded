"""``rtofs animate``: a GIF (or MP4) of a day's steps for one field and region."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``animate`` sub-command."""
    p = subparsers.add_parser(
        "animate",
        help="make a GIF or MP4 of a day's steps",
        description=(
            "Animate a day's steps of one field, globally or in a named region. "
            "GIF needs nothing more; MP4 needs ffmpeg (apt install ffmpeg, or "
            "pip install imageio-ffmpeg)."
        ),
    )
    p.add_argument("--date", required=True, help="cycle day YYYYMMDD")
    p.add_argument("--field", default="sst", help="field (default sst)")
    p.add_argument("--region", help="named region, e.g. gulf_stream (default: global)")
    p.add_argument("--out", required=True, help="output FILE.gif or FILE.mp4")
    p.add_argument("--fps", type=float, default=4.0, help="frames per second (default 4)")
    p.add_argument("--archive", help="archive root (default: config)")
    p.add_argument("--maps", help="maps folder, used for global frames (default: config)")
    p.add_argument("--cache", help="grid-index cache folder (default: config)")
    p.set_defaults(func=run_animate)


def run_animate(args: argparse.Namespace) -> int:
    """Write the animation and print its path."""
    from rtofs_lib.maps import animation as animate

    out = animate.animate(
        args.date,
        args.out,
        field=args.field,
        region=args.region,
        fps=args.fps,
        archive=args.archive,
        maps=args.maps,
        cache_dir=args.cache,
        progress=lambda i, n, name: print(f"[{i}/{n}] {name}", flush=True),
    )
    print(f"wrote {out}")
    return 0
