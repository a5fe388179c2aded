"""The maps dashboard as a JupyterHub service: the zoomable map, its tiles, the gallery.

Under the service prefix (``/services/maps/``), only to users the hub has logged in
(HubOAuth, :mod:`.oauth`; anonymous requests are sent to the hub's login page):

==============================================  ===============================================
``<prefix>``                                    the map (``data/dashboard/map.html``)
``<prefix>static/…``                            its scripts, styles and Leaflet, from the package
``<prefix>tiles/D/STEP/FIELD/Z/X/Y.png``        a map tile (:class:`.tileserver.TileService`)
``<prefix>api/layers.json``                     days, steps, fields, colormaps, the deepest zoom
``<prefix>api/palette/FIELD.json?cmap=``        the colours of a field's tiles (the legend)
``<prefix>api/series.json?lon=&lat=&field=``    a point's series (the cube, or the day's files)
``<prefix>index.html`` and the rest             the maps folder ``rtofs run`` writes (gallery)
==============================================  ===============================================

A request for something that does not exist gets a 404 with a message, never a 500. Run by
the hub as a managed service::

    python -m rtofs_lib.hub.dashboard_service --root /srv/rtofs/maps --port 8091

``--local`` serves the same on loopback without the hub login, for one person on their own
machine (``rtofs dashboard serve``, the demo, the browser tests)::

    python -m rtofs_lib.hub.dashboard_service --root rtofs-demo/maps --port 8092 --local
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtofs_lib.hub.tileserver import TileService

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


#: The map page and its scripts, styles and vendored Leaflet (package data).
STATIC = Path(__file__).resolve().parents[1] / "data" / "dashboard"


@functools.cache
def _map_handlers() -> dict[str, type]:  # noqa: C901 - one small class per route
    """The handler classes of the map (no login: :func:`_with_login` adds the hub's)."""
    from tornado import web
    from tornado.ioloop import IOLoop

    from rtofs_lib.errors import RtofsError

    class Api(web.RequestHandler):
        def initialize(self, service: TileService) -> None:
            self.service = service

        async def answer(self, fn, *args) -> None:
            self.set_header("Cache-Control", "no-cache")
            try:
                result = await IOLoop.current().run_in_executor(None, fn, *args)
            except (RtofsError, ValueError) as e:  # NotFound, a damaged file, a bad value
                self.set_status(404)
                result = {"error": str(e)}
            self.finish(result)

    class Layers(Api):
        async def get(self) -> None:
            await self.answer(self.service.layers)

    class Palette(Api):
        async def get(self, field: str) -> None:
            await self.answer(self.service.palette, field, self.get_argument("cmap", None))

    class Series(Api):
        async def get(self) -> None:
            try:
                lon, lat = float(self.get_argument("lon")), float(self.get_argument("lat"))
            except (web.MissingArgumentError, ValueError):
                self.set_status(400)
                self.finish({"error": "give lon and lat in degrees: series.json?lon=-71.8&lat=-33"})
                return
            field, date = self.get_argument("field", "sst"), self.get_argument("date", None)
            await self.answer(self.service.series, lon, lat, field, date)

    class Tile(Api):
        async def get(self, date: str, step: str, field: str, z: str, x: str, y: str) -> None:
            cmap = self.get_argument("cmap", None)
            args = (date, step, field, int(z), int(x), int(y), cmap)
            try:  # a tile in memory is answered here; one to draw or read in a thread
                found = self.service.cached(*args)
                if found is None:
                    found = await IOLoop.current().run_in_executor(None, self.service.tile, *args)
                png, version = found
            except RtofsError as e:
                self.set_status(404)
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.set_header("Cache-Control", "no-cache")
                self.finish(str(e) + "\n")
                return
            scope = "private" if self.private else "public"
            immutable = self.get_argument("v", None) == version  # the URL names this very file
            age = "max-age=31536000, immutable" if immutable else "max-age=60"
            self.set_header("Cache-Control", f"{scope}, {age}")
            self.set_header("Content-Type", "image/png")
            self.set_header("Etag", f'"{version}-{cmap or field}"')
            if self.check_etag_header():  # the browser holds this very tile
                self.set_status(304)
                self.finish()
                return
            self.finish(png)

        private = False

        def compute_etag(self) -> str | None:
            return None  # set in get(), from the file's version: no hash of the body

    class MapPage(web.RequestHandler):
        def get(self) -> None:
            self.xsrf_token  # noqa: B018 - sets the "_xsrf" cookie the page's script sends back
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")
            self.finish((STATIC / "map.html").read_bytes())

    return {"layers": Layers, "palette": Palette, "series": Series, "tile": Tile,
            "page": MapPage, "static": static_handler_class()}  # fmt: skip


def _with_login(cls: type, auth: type) -> type:
    """``cls`` for logged-in hub users only (``auth``: :class:`.oauth.MapsAuthenticated`)."""
    from tornado import web

    return type(cls.__name__, (auth, cls), {"get": web.authenticated(cls.get), "private": True})


def _tile_handlers(prefix: str, service: TileService | None, auth: type | None) -> list:
    """Routes of the map page, its static files, the tiles and the JSON API."""
    if service is None:
        return []
    h = _map_handlers()
    if auth is not None:
        h = {name: _with_login(cls, auth) for name, cls in h.items()}
    api = {"service": service}
    tile = r"tiles/([^/]+)/([^/]+)/([^/]+)/(-?\d+)/(-?\d+)/(-?\d+)\.png"
    return [
        (prefix, h["page"]),
        (prefix + r"static/(.*)", h["static"], {"path": str(STATIC)}),
        (prefix + tile, h["tile"], api),
        (prefix + r"api/layers\.json", h["layers"], api),
        (prefix + r"api/palette/([^/]+)\.json", h["palette"], api),
        (prefix + r"api/series\.json", h["series"], api),
    ]


def make_app(root: Path, prefix: str, service: TileService | None = None):
    """Return the tornado application serving ``root`` (and the map of ``service``) under
    ``prefix`` behind the hub's login (:mod:`.oauth`)."""
    from jupyterhub.utils import url_path_join
    from tornado import web

    from rtofs_lib.hub.oauth import MapsAuthenticated, MapsOAuthCallback

    class MapsHandler(MapsAuthenticated, static_handler_class()):
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
            (url_path_join(prefix, "oauth_callback"), MapsOAuthCallback),
            *_tile_handlers(prefix, service, MapsAuthenticated),
            (
                prefix + r"(.*)",
                MapsHandler,
                {"path": str(root), "default_filename": "index.html"},
            ),
        ],
        cookie_secret=os.urandom(32),
    )


INDEX = "index.html"

#: Addresses ``--local`` may listen on: without a login, only this machine may connect.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def make_local_app(root: Path, service: TileService | None = None):
    """Return the tornado application serving ``root`` (and the map of ``service``) at ``/``
    with no login (loopback only)."""
    from tornado import web

    return web.Application(
        [
            *_tile_handlers("/", service, None),
            (
                r"/(.*)",
                static_handler_class(),
                {"path": str(root), "default_filename": "index.html"},
            ),
        ]
    )


def parser() -> argparse.ArgumentParser:
    """The service's options (``rtofs dashboard serve`` takes the same)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", "--maps", dest="root", type=Path,
                   help="the maps folder of `rtofs run` (default: the maps setting)")  # fmt: skip
    p.add_argument("--archive", type=Path, help="the archive (default: the archive setting)")
    p.add_argument("--cube", type=Path, help="the cube, for point series (default: the setting)")
    p.add_argument("--cache", type=Path, help="grid-index cache (default: the cache setting)")
    p.add_argument(
        "--tile-cache", type=Path, help="drawn tiles (default: CACHE/tiles; unwritable: memory)"
    )
    p.add_argument("--port", type=int, default=8091)
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument(
        "--local", action="store_true", help="no hub login, at /, on a loopback address only"
    )
    return p


def serve(args: argparse.Namespace) -> None:
    """Run the service with parsed :func:`parser` options until interrupted."""
    import threading

    from tornado.ioloop import IOLoop

    from rtofs_lib import config
    from rtofs_lib.hub.tileserver import TileService

    if args.local and args.ip not in LOOPBACK:
        raise SystemExit(
            f"--local serves the maps without a login: --ip {args.ip} is not a loopback "
            f"address; use one of {', '.join(LOOPBACK)}, or run it as the hub's service"
        )
    settings = config.load()
    root = args.root or settings.maps
    cache = args.cache or settings.cache
    archive, cube = args.archive or settings.archive, args.cube or settings.cube
    tile_cache = args.tile_cache or cache / "tiles"
    service = TileService(archive, cube=cube, cache_dir=cache, tile_cache=tile_cache)
    # the tile index of the latest grid (minutes at full size, once per grid): before any click
    threading.Thread(target=service.warm, name="rtofs-tiles-warm", daemon=True).start()
    if args.local:
        app = make_local_app(root, service)
    else:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/maps/")
        app = make_app(root, prefix, service)
    app.listen(args.port, args.ip)
    with contextlib.suppress(KeyboardInterrupt):  # the hub stops its services with SIGINT
        IOLoop.current().start()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the dashboard service (the hub starts it with its ``JUPYTERHUB_*`` variables)."""
    args = parser().parse_args(argv)
    if args.local and args.ip not in LOOPBACK:
        parser().error(
            f"--local serves the maps without a login: --ip {args.ip} is not a loopback "
            f"address; use one of {', '.join(LOOPBACK)}, or run it as the hub's service"
        )
    serve(args)


if __name__ == "__main__":
    main()
