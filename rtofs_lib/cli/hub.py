"""``rtofs hub``: run the multi-user JupyterHub on this machine, or publish shared notebooks."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``hub`` sub-command (``rtofs hub run`` and ``rtofs hub publish``)."""
    p = subparsers.add_parser(
        "hub",
        help="run the JupyterHub (proxy + hub) or publish the shared notebooks",
        description="The multi-user JupyterHub; see hub_config/README.md.",
    )
    sub = p.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run configurable-http-proxy and JupyterHub (as root)")
    run.add_argument("--settings", help="hub settings TOML (default $RTOFS_HUB_SETTINGS)")
    run.add_argument("what", nargs="?", choices=("all", "proxy", "hub"), default="all")
    run.set_defaults(func=run_hub)
    pub = sub.add_parser("publish", help="publish example notebooks and the collab folder")
    pub.add_argument("--examples", help="notebook folder (default: example_notebooks/)")
    pub.add_argument("--root", help="shared root (default: shared.root setting)")
    pub.add_argument("--group", help="researchers' group (default: groups.users setting)")
    pub.set_defaults(func=run_publish)


def run_hub(args: argparse.Namespace) -> int:
    """Run the proxy and/or the hub in the foreground."""
    from rtofs_lib.hub import run_local

    argv = ["--settings", args.settings] if args.settings else []
    return run_local.main([*argv, args.what])


def run_publish(args: argparse.Namespace) -> int:
    """Publish the shared notebook folders."""
    from rtofs_lib.hub import publish

    argv = []
    for name in ("examples", "root", "group"):
        if getattr(args, name):
            argv += [f"--{name}", getattr(args, name)]
    return publish.main(argv)
