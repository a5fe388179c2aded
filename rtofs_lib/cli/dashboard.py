"""``rtofs dashboard serve``: the dashboard (zoomable map, tiles, gallery) on this machine."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dashboard`` sub-command (``serve``)."""
    from rtofs_lib.hub import dashboard_service

    p = subparsers.add_parser(
        "dashboard",
        help="serve the dashboard (map, tiles, gallery) on loopback",
        description="The dashboard on one machine, without the hub's login.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sub.add_parser(
        "serve",
        parents=[dashboard_service.parser()],
        add_help=False,
        help="serve the map of the archive's files and the maps of `rtofs run` on loopback",
        description=(
            "Serve the zoomable map (tiles drawn from the archive's files on the native grid, "
            "a point's series from the cube), and the gallery of `rtofs run`'s maps, on "
            "http://127.0.0.1:PORT/ with no login (loopback only). Paths default to the "
            "settings (archive, maps, cube, cache)."
        ),
    )
    serve.set_defaults(func=serve_command, port=8092, local=True)


def serve_command(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from rtofs_lib.hub import dashboard_service

    args.local = True
    print(f"dashboard: http://{args.ip}:{args.port}/ (Ctrl-C stops it)", flush=True)
    dashboard_service.serve(args)
    return 0
