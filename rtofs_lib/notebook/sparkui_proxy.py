"""Jupyter server extension: the user's own Spark UIs at ``<base_url>spark-ui/<port>/``.

Built on jupyter-server-proxy's handler (authentication of every request by the server,
headers, redirects). For each request it

1. requires the server's authenticated user (a browser without a session is sent to the
   login page, an API client gets 403; under JupyterHub only the server's owner gets in);
2. finds the socket listening on ``<port>`` on this host and proxies only when it belongs to
   the server's own Unix user (:func:`listening_address`, from ``/proc/net/tcp*``): a UI of
   another user, or anything else on that port, gets 404, and never sees this user's token;
3. connects to the address that socket is bound to (``127.0.0.1`` for a ``local[N]``
   session, the host's cluster address for a driver that other hosts' executors reach),
   without the browser's cookies and ``Authorization``, with ``Authorization: Bearer`` and
   a fresh token signed with the user's key (:func:`rtofs_lib.notebook.sparkui.token`);
4. rewrites the UI's redirects (absolute URLs to its own address, or root paths) to stay
   under the route.

Enabled for every server of the environment by
``etc/jupyter/jupyter_server_config.d/rtofs-spark-ui.json`` (installed with the package).
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import LocalProxyHandler, ProxyHandler
from tornado import web

from rtofs_lib.errors import RtofsError
from rtofs_lib.notebook import sparkui

#: ``/proc/net`` files of listening TCP sockets (IPv4, IPv6) and the LISTEN state code.
PROC_NET = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"


def _decode_address(hexaddr: str) -> str:
    """An address of ``/proc/net/tcp*`` (32-bit words in host byte order) as text."""
    words = [int(hexaddr[i : i + 8], 16) for i in range(0, len(hexaddr), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw)


def _connect_host(address: str) -> str:
    """The host to connect to for a socket bound to ``address`` (wildcards: loopback)."""
    if address in ("0.0.0.0", "::"):
        return "127.0.0.1"
    if address.startswith("::ffff:") and "." in address:
        return address[len("::ffff:") :]
    return f"[{address}]" if ":" in address else address


def listening_address(port: int, uid: int | None = None) -> str | None:
    """The host to reach the TCP socket listening on ``port`` that belongs to ``uid``.

    Parameters
    ----------
    port
        TCP port.
    uid
        Owner required (default: this process's user).

    Returns
    -------
    str or None
        ``127.0.0.1`` for a socket bound to every address, else its own address (IPv6 in
        brackets); None when no socket of ``uid`` listens on ``port`` on this host.
    """
    uid = os.geteuid() if uid is None else uid
    for table in PROC_NET:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hexport = fields[1].partition(":")
            if fields[3] == _LISTEN and int(hexport, 16) == port and int(fields[7]) == uid:
                return _connect_host(_decode_address(address))
    return None


class SparkUIHandler(LocalProxyHandler):
    """``<base_url>spark-ui/<port>/<path>``: the user's Spark UI on ``<port>``."""

    _target: str = ""

    def _check_host_allowlist(self, host: str) -> bool:
        return True  # the host is the one the user's own socket listens on (see proxy)

    async def proxy(self, port: str, proxied_path: str) -> Any:  # type: ignore[override]
        host = listening_address(int(port))
        if host is None:
            raise web.HTTPError(
                404,
                "Start Spark in a notebook of this server (spark.range(1).count()) and open "
                "the address that spark.ui_url shows",
                reason=f"No Spark UI of yours listens on port {port} on this host",
            )
        try:
            self._key = sparkui.ui_key()
        except RtofsError as e:
            raise web.HTTPError(500, "%s", str(e), reason="Your Spark UI key is unusable") from None
        self.proxy_base = f"{sparkui.ROUTE}/{port}"
        self._target = f"{host}:{port}"
        return await ProxyHandler.proxy(self, host, port, proxied_path)

    async def open(self, port: str, proxied_path: str) -> None:  # type: ignore[override]
        raise web.HTTPError(404, "the Spark UI has no websockets")

    def proxy_request_headers(self) -> Any:
        headers = super().proxy_request_headers()
        for name in ("Cookie", "Authorization", "X-XSRFToken"):  # the server's, not the UI's
            headers.pop(name, None)
        headers["Host"] = self._target
        headers["Authorization"] = f"Bearer {sparkui.token(self._key)}"
        return headers

    def _rewrite_location_header(
        self, location: str, host: str, port: str, proxied_path: str
    ) -> str:
        parts = urlsplit(location)
        if parts.netloc:
            if parts.netloc != self._target:
                return location  # elsewhere: leave it
            location = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
        context = self._get_context_path(host, port)
        if location == context or location.startswith(context + "/"):
            return location  # already under the route (spark.ui.proxyBase)
        return super()._rewrite_location_header(location, host, port, proxied_path)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "rtofs_lib.notebook.sparkui_proxy"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base_url = serverapp.web_app.settings["base_url"]
    pattern = url_path_join(base_url, sparkui.ROUTE, r"(\d+)(/.*|)")
    serverapp.web_app.add_handlers(".*", [(pattern, SparkUIHandler, {"absolute_url": False})])
    serverapp.log.info("rtofs: Spark UIs of this user at %s", url_path_join(base_url, "spark-ui"))
