"""A researcher's Spark UI through her own notebook server, and nobody else's.

The driver of a notebook's Spark session runs in the kernel and serves Spark's web UI on a
port of the host it runs on, where every user of that host can connect. So:

- the UI answers only requests that carry a token signed with the researcher's key: Spark's
  ``org.apache.spark.ui.JWSFilter`` (``spark.ui.filters``) checks ``Authorization: Bearer
  <JWS>`` on every request and answers 403 otherwise. The key is made on first use in
  ``~/.local/share/rtofs/spark-ui.key`` (mode 0600; a key file other users can read is
  refused); tokens expire after :data:`TOKEN_LIFETIME` seconds;
- her Jupyter server serves the UI at ``<base_url>spark-ui/<port>/`` for her alone (the
  server extension :mod:`rtofs_lib.notebook.sparkui_proxy`), adding a fresh token to each
  request it forwards;
- ``spark.ui.proxyBase`` (``<base_url>spark-ui/<port>``, no trailing slash) makes every
  link, script and API call of the UI's pages point under that route. Without it (the server's
  ``base_url`` unknown to the kernel) Spark takes the prefix from the route's
  ``X-Forwarded-Context`` header instead.

:func:`driver_ui_conf` gives the driver's properties, split into public ones and secret ones
(the key: it must not reach the JVM's command line, which ``ps`` shows to every user).

Examples
--------
>>> key = bytes(range(32))
>>> public, secret = ui_conf(4050, prefix="/user/alice/", key=key)
>>> public["spark.ui.proxyBase"]
'/user/alice/spark-ui/4050'
>>> sorted(secret)
['spark.org.apache.spark.ui.JWSFilter.param.secretKey']
>>> ui_url("http://10.0.0.5:4050", prefix="/user/alice/")
'/user/alice/spark-ui/4050/'
>>> token(key, now=0).count(".")
2
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from rtofs_lib.hub.secrets import ensure_secret

#: Spark's servlet filter that requires a JWS (HS256) signed with the key.
JWS_FILTER = "org.apache.spark.ui.JWSFilter"
#: The filter's parameters as Spark properties (``spark.<filter class>.param.<name>``).
FILTER_PARAM = f"spark.{JWS_FILTER}.param"
#: Route of the UI under the Jupyter server's ``base_url``: ``spark-ui/<port>/``.
ROUTE = "spark-ui"
#: Seconds a token is valid (the filter refuses tokens without an expiry, and expired ones).
TOKEN_LIFETIME = 120
#: The key file under the user's data folder (``$XDG_DATA_HOME``, else ``~/.local/share``).
KEY_NAME = Path("rtofs") / "spark-ui.key"


def key_path() -> Path:
    """The user's Spark UI key file: ``~/.local/share/rtofs/spark-ui.key``."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / KEY_NAME


def ui_key(path: str | Path | None = None) -> bytes:
    """Return the user's 256-bit UI key, making it (mode 0600) on first use.

    Parameters
    ----------
    path
        Key file (default :func:`key_path`).

    Raises
    ------
    ConfigError
        The file is readable or writable by other users, belongs to another user, or does
        not hold a hex key; the message says how to fix it.
    """
    return bytes.fromhex(ensure_secret(path or key_path()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(key: bytes, *, lifetime: float = TOKEN_LIFETIME, now: float | None = None) -> str:
    """Return a JWS (HS256) that the UI's filter accepts for ``lifetime`` seconds.

    The header is ``{"alg":"HS256","typ":"JWT"}``, the payload carries the expiry
    (``exp``), the signature is HMAC-SHA256 of ``<header>.<payload>`` with ``key``.
    """
    issued = int(time.time() if now is None else now)
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64url(json.dumps({"exp": issued + int(lifetime)}).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def route(port: int, prefix: str = "/") -> str:
    """The UI's path under the server: ``<prefix>spark-ui/<port>`` (no trailing slash)."""
    return f"{prefix.rstrip('/')}/{ROUTE}/{int(port)}"


def ui_conf(port: int, *, prefix: str | None, key: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """Return the driver's UI properties as ``(public, secret)``.

    Parameters
    ----------
    port
        The UI's port (``spark.ui.port``).
    prefix
        The Jupyter server's ``base_url`` (``/user/alice/``); None leaves
        ``spark.ui.proxyBase`` unset (Spark then follows ``X-Forwarded-Context``).
    key
        The user's UI key (:func:`ui_key`), at least 32 bytes.
    """
    if len(key) < 32:
        raise ValueError(f"the Spark UI key must have at least 256 bits, not {8 * len(key)}")
    public = {
        "spark.ui.enabled": "true",
        "spark.ui.port": str(int(port)),
        "spark.ui.filters": JWS_FILTER,
        f"{FILTER_PARAM}.requireExpiration": "true",
    }
    if prefix:
        public["spark.ui.proxyBase"] = route(port, prefix)
    secret = {f"{FILTER_PARAM}.secretKey": b64url(key)}
    return public, secret


def server_prefix() -> str | None:
    """The notebook server's ``base_url`` as its kernels see it (JupyterHub sets it)."""
    return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or None


def in_jupyter_server() -> bool:
    """Whether this process is a kernel of a Jupyter server (or a hub's single-user server)."""
    return bool(server_prefix() or os.environ.get("JPY_SESSION_NAME"))


def free_port() -> int:
    """A TCP port nothing listens on right now, on any address of this host."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def driver_ui_conf() -> tuple[dict[str, str], dict[str, str]]:
    """The UI properties of a notebook's driver as ``(public, secret)``; empty outside Jupyter.

    Inside a Jupyter server's kernel: a free port, the proxy route of this user's server
    (``spark.ui.proxyBase``) and the token filter with the user's key (made on first use).
    Put the secret ones in a private properties file, never on the JVM's command line.

    Raises
    ------
    ConfigError
        If the key file is unsafe or unreadable (see :func:`ui_key`).
    """
    if not in_jupyter_server():
        return {}, {}
    return ui_conf(free_port(), prefix=server_prefix(), key=ui_key())


def ui_url(web_url: str | None, prefix: str | None = None) -> str | None:
    """The proxied address of a UI that Spark reports at ``web_url`` (``sc.uiWebUrl``).

    A path on this user's notebook server (``/user/alice/spark-ui/4050/``); None when the
    session has no UI. ``prefix`` defaults to :func:`server_prefix` (``/`` when unset).
    """
    if not web_url:
        return None
    port = urlsplit(web_url).port
    if port is None:
        return None
    return route(port, prefix or server_prefix() or "/") + "/"
