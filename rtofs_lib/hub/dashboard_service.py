"""The maps dashboard as a JupyterHub service: static files behind hub login.

Serves the maps folder that ``rtofs run`` writes (``index.html`` and the PNGs) under the
service prefix (``/services/maps/``), only to users the hub has logged in (HubOAuth); anonymous
requests are sent to the hub's login page. Run by the hub as a managed service::

    python -m rtofs_lib.hub.dashboard_service --root /srv/rtofs/maps --port 8091

``--local`` serves the same files on loopback without the hub login, for one person on
their own machine (the demo, the browser tests)::

    python -m rtofs_lib.hub.dashboard_service --root rtofs-demo/maps --port 8092 --local
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Sequence
from pathlib import Path

PLACEHOLDER = (
    "<!doctype html><title>RTOFS maps</title><h1>RTOFS maps</h1>"
    "<p>No maps yet: <code>rtofs run</code> writes them here.</p>"
)


@functools.cache
def static_handler_class() -> type:
    """Tornado's ``StaticFileHandler`` with an ETag that follows the file on disk.

    Tornado remembers each file's content hash for the life of the process, so a file
    replaced in place (``index.json`` after each published step) would keep its first ETag
    and a polling page would get ``304 Not Modified`` for ever. Here the ETag is the file's
    inode, modification time and size (one ``stat`` per request; an atomic rename changes
    it), and every response says ``Cache-Control: no-cache`` so browsers revalidate.
    """
    from tornado import web

    class FreshStaticFileHandler(web.StaticFileHandler):
        def compute_etag(self) -> str | None:
            try:
                st = Path(self.absolute_path).stat()
            except (OSError, TypeError):
                return None
            return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'

        def set_extra_headers(self, path: str) -> None:
            self.set_header("Cache-Control", "no-cache")

    return FreshStaticFileHandler


def make_app(root: Path, prefix: str):
    """Return the tornado application serving ``root`` under ``prefix`` behind HubOAuth."""
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web

    class MapsHandler(HubOAuthenticated, static_handler_class()):
        """Static files, for logged-in hub users only."""

        @web.authenticated
        async def get(self, path: str, include_body: bool = True) -> None:
            if path in ("", "index.html") and not (root / "index.html").exists():
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(PLACEHOLDER)
                return
            await super().get(path, include_body)

    return web.Application(
        [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (
                prefix + r"(.*)",
                MapsHandler,
                {"path": str(root), "default_filename": "index.html"},
            ),
        ],
        cookie_secret=os.urandom(32),
    )


#: Addresses ``--local`` may listen on: without a login, only this machine may connect.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def make_local_app(root: Path):
    """Return the tornado application serving ``root`` at ``/`` with no login (loopback only)."""
    from tornado import web

    return web.Application(
        [(r"/(.*)", static_handler_class(), {"path": str(root), "default_filename": "index.html"})]
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the dashboard service (the hub starts it with its ``JUPYTERHUB_*`` variables)."""
    from tornado.ioloop import IOLoop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="the maps folder")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument(
        "--local", action="store_true", help="no hub login, at /, on a loopback address only"
    )
    args = parser.parse_args(argv)
    if args.local and args.ip not in LOOPBACK:
        parser.error(
            f"--local serves the maps without a login: --ip {args.ip} is not a loopback "
            f"address; use one of {', '.join(LOOPBACK)}, or run it as the hub's service"
        )
    if args.local:
        app = make_local_app(args.root)
    else:
        app = make_app(args.root, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/maps/"))
    app.listen(args.port, args.ip)
    with contextlib.suppress(KeyboardInterrupt):  # the hub stops its services with SIGINT
        IOLoop.current().start()


if __name__ == "__main__":
    main()
