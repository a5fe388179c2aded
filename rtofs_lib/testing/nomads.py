"""A small NOMADS-like HTTP server for tests and demos, with fault injection.

It serves a local archive (``ROOT/rtofs.YYYYMMDD/<name>.nc``) the way NOMADS does::

    http://127.0.0.1:PORT/pub/data/nccf/com/rtofs/prod/                 root index (day folders)
    http://127.0.0.1:PORT/pub/data/nccf/com/rtofs/prod/rtofs.YYYYMMDD/  Apache fancy index
    http://127.0.0.1:PORT/pub/data/nccf/com/rtofs/prod/rtofs.YYYYMMDD/ls-l

Index pages copy the real ``mod_autoindex`` format byte for byte in layout
(:mod:`rtofs_lib.testing.autoindex`: :func:`index_page`, :func:`strfsize`). Files are
served with ``Content-Length``, ``Last-Modified``, an Apache-style ``ETag``,
``Accept-Ranges`` and single ``Range``/``If-Range`` requests; HEAD works everywhere.
Hidden names (starting with ``.``) are neither listed nor served.

Faults are injected for real on the socket: a connection cut mid-body, bursts of a status
(503, 403 with ``Retry-After``, 429, 302), a wrong ``Content-Length``, a stalled body and
a file that really grows on disk between the listing and the download. Every request is
logged in :attr:`NomadsServer.log` so tests can count what was fetched.

Examples
--------
>>> import tempfile
>>> with NomadsServer(tempfile.mkdtemp()) as server:
...     server.url.endswith("/pub/data/nccf/com/rtofs/prod/")
True

Publishing over time
--------------------
Files appear on the server the moment they appear in its folder. :func:`publish_file` makes
one appear atomically (a hidden copy, renamed into place), as NOAA's files appear on NOMADS;
:func:`publish` does it for many files in waves, in a background thread, and keeps the time
each file became visible (for latency measurements: benchmarks, the demo, the follow tests):

>>> import pathlib
>>> src, served = pathlib.Path(tempfile.mkdtemp()), tempfile.mkdtemp()
>>> files = [src / f"rtofs_glo_2ds_f00{i}_prog.nc" for i in range(3)]
>>> for f in files:
...     _ = f.write_bytes(b"netcdf bytes")
>>> publisher = publish(files, served, "20260708", waves=[1, 2], gap=0.01)
>>> times = publisher.wait(timeout=30)
>>> list(times) == [f.name for f in files], times["rtofs_glo_2ds_f000_prog.nc"].tzname()
(True, 'UTC')

Run it by hand (e.g. for the cluster tests or a demo)::

    python -m rtofs_lib.testing.nomads ARCHIVE --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import email.utils
import fnmatch
import os
import re
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rtofs_lib.testing.autoindex import index_page, ls_l_text, strfsize, strnatcmp

__all__ = ["PREFIX", "Fault", "NomadsServer", "Publisher", "Request", "index_page", "ls_l_text",
           "publish", "publish_file", "strfsize", "strnatcmp"]  # fmt: skip

#: Path of the RTOFS production root on NOMADS.
PREFIX = "/pub/data/nccf/com/rtofs/prod/"


@dataclass
class Fault:
    """One injected fault: applies to requests whose path matches ``pattern``, ``times`` times.

    ``kind`` is ``status`` (answer ``status`` with ``headers``), ``cut`` (send ``after``
    bytes of the body, then close the connection), ``length`` (declare a ``Content-Length``
    off by ``delta``), ``stall`` (send ``after`` bytes, then hold the connection silent for
    ``seconds``).
    """

    kind: str
    pattern: str
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0
    delta: int = 0
    seconds: float = 0.0
    methods: tuple[str, ...] = ("GET", "HEAD")

    def matches(self, rel: str, method: str) -> bool:
        base = rel.rstrip("/").rsplit("/", 1)[-1]
        return (
            self.times > 0
            and method in self.methods
            and (fnmatch.fnmatchcase(rel, self.pattern) or fnmatch.fnmatchcase(base, self.pattern))
        )


@dataclass
class Request:
    """One logged request: method, path under the prefix, ``Range`` header, status, body bytes."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int = 0
    time: float = 0.0
    user_agent: str = ""

    @property
    def name(self) -> str:
        """Base name of the requested path (``""`` for an index)."""
        return "" if self.path.endswith("/") else self.path.rsplit("/", 1)[-1]


@dataclass
class _Growth:
    data: bytes
    stages: list[int]


class NomadsServer:
    """Serve ``root`` on loopback in the NOMADS layout; a context manager.

    Parameters
    ----------
    root
        Archive root holding ``rtofs.YYYYMMDD/`` folders.
    host, port
        Where to listen; port 0 picks a free one.
    prefix
        URL path of the production root.

    Attributes
    ----------
    url
        Base URL of the production root (ends in ``/``), for ``rtofs crawl --base-url``.
    log
        Every request answered, in order.
    """

    def __init__(
        self, root: str | Path, *, host: str = "127.0.0.1", port: int = 0, prefix: str = PREFIX
    ) -> None:
        self.root = Path(root)
        self.host = host
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self._growth: dict[str, _Growth] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.app = self
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    def start(self) -> NomadsServer:
        """Start serving in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (stalled responses are released)."""
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> NomadsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection -------------------------------------------------------------------

    def fail(
        self,
        pattern: str,
        status: int = 503,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        methods: tuple[str, ...] = ("GET", "HEAD"),
    ) -> None:
        """Answer the next ``times`` requests matching ``pattern`` with ``status``/``headers``."""
        self._add(Fault("status", pattern, times, status, dict(headers or {}), methods=methods))

    def cut(self, pattern: str, after: int, *, times: int = 1) -> None:
        """Close the connection after ``after`` body bytes of the next ``times`` GETs."""
        self._add(Fault("cut", pattern, times, after=after, methods=("GET",)))

    def wrong_length(self, pattern: str, delta: int, *, times: int = 1) -> None:
        """Declare ``Content-Length`` off by ``delta`` bytes (the real body is sent, then close)."""
        self._add(Fault("length", pattern, times, delta=delta, methods=("GET",)))

    def stall(self, pattern: str, after: int, seconds: float, *, times: int = 1) -> None:
        """Send ``after`` body bytes, then go silent for ``seconds`` and close."""
        self._add(Fault("stall", pattern, times, after=after, seconds=seconds, methods=("GET",)))

    def grow(self, day: str, name: str, fractions: Iterable[float] = (0.5, 0.8)) -> None:
        """Make ``day/name`` a file still being written, for real on disk.

        The file is cut to ``fractions[0]`` of its bytes now; each GET of it first appends up
        to the next fraction (the last step completes it), so the size a listing shows is
        always smaller than what the following download finds, until the file is whole.
        """
        path = self.root / day / name
        data = path.read_bytes()
        stages = [int(len(data) * f) for f in fractions] + [len(data)]
        with self._lock:
            self._growth[f"{day}/{name}"] = _Growth(data, stages[1:])
        _write_prefix(path, data, stages[0])

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def _take_fault(self, rel: str, method: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.matches(rel, method):
                    f.times -= 1
                    return f
        return None

    def _advance_growth(self, rel: str) -> None:
        with self._lock:
            g = self._growth.get(rel)
            if g is None:
                return
            size = g.stages.pop(0)
            if not g.stages:
                del self._growth[rel]
        _write_prefix(self.root / rel, g.data, size)

    # -- request log -----------------------------------------------------------------------

    def count(
        self, name: str | None = None, *, method: str = "GET", status: int | None = None
    ) -> int:
        """Number of logged requests for base name ``name`` (any when None) by ``method``."""
        return sum(
            1
            for r in list(self.log)
            if r.method == method
            and (name is None or r.name == name)
            and (status is None or r.status == status)
        )

    def fetched(self) -> list[str]:
        """Base names of files whose body was sent in full or in part (GET 200/206)."""
        return [
            r.name
            for r in list(self.log)
            if r.method == "GET" and r.status in (200, 206) and r.name
        ]

    def _record(self, req: Request, handler: BaseHTTPRequestHandler | None = None) -> None:
        req.time = time.monotonic()
        if handler is not None:
            req.user_agent = handler.headers.get("User-Agent", "")
        with self._lock:
            self.log.append(req)


def _write_prefix(path: Path, data: bytes, size: int) -> None:
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.seek(0)
        f.write(data[:size])
        f.truncate(size)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    app: NomadsServer


_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    # -- dispatch --------------------------------------------------------------------------

    def _serve(self, head: bool) -> None:
        app = self.server.app
        path = unquote(urlsplit(self.path).path)
        method = "HEAD" if head else "GET"
        rng = self.headers.get("Range")
        if not path.startswith(app.prefix):
            return self._simple(404, "Not Found", method, path, rng)
        rel = path[len(app.prefix) :]
        if any(part.startswith(".") for part in rel.split("/") if part) or "\\" in rel:
            return self._simple(404, "Not Found", method, rel, rng)
        fault = app._take_fault(rel, method)
        if fault is not None and fault.kind == "status":
            return self._simple(fault.status, "Injected", method, rel, rng, fault.headers)
        target = app.root / rel
        if rel == "" or (rel.endswith("/") and target.is_dir()):
            return self._index(rel, head, method, rng)
        if target.is_dir():
            return self._simple(301, "Moved", method, rel, rng, {"Location": path + "/"})
        if rel.endswith("/ls-l") and not target.exists() and target.parent.is_dir():
            body = ls_l_text(_files(target.parent)).encode()
            return self._body(200, body, "text/plain", method, rel, rng, head)
        if not head:
            app._advance_growth(rel)
        if not target.is_file():
            return self._simple(404, "Not Found", method, rel, rng)
        self._file(target, rel, head, method, rng, fault)

    def _index(self, rel: str, head: bool, method: str, rng: str | None) -> None:
        app = self.server.app
        folder = app.root / rel
        title = (app.prefix + rel).rstrip("/")
        if rel == "":
            entries = [
                (p.name + "/", p.stat().st_mtime, -1)
                for p in folder.iterdir()
                if p.is_dir() and p.name.startswith("rtofs.")
            ]
            parent = app.prefix.rstrip("/").rsplit("/", 1)[0] + "/"
        else:
            entries = list(_files(folder))
            entries.append(
                ("ls-l", max([0.0, *(m for _, m, _ in entries)]), len(ls_l_text(entries)))
            )
            parent = app.prefix
        body = index_page(title, parent, entries).encode()
        self._body(200, body, "text/html;charset=ISO-8859-1", method, rel, rng, head)

    # -- responses -------------------------------------------------------------------------

    def _simple(
        self,
        status: int,
        text: str,
        method: str,
        rel: str,
        rng: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = f"<html><body><h1>{status} {text}</h1></body></html>\n".encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(body)
        self.server.app._record(Request(method, rel, rng, status, len(body)), self)

    def _body(
        self,
        status: int,
        body: bytes,
        ctype: str,
        method: str,
        rel: str,
        rng: str | None,
        head: bool,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.server.app._record(Request(method, rel, rng, status, 0 if head else len(body)), self)

    def _file(
        self, target: Path, rel: str, head: bool, method: str, rng: str | None, fault: Fault | None
    ) -> None:
        app = self.server.app
        with open(target, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = f'"{size:x}-{st.st_mtime_ns // 1000:x}"'
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            start, end, status = 0, size - 1, 200
            m = _RANGE_RE.match(rng or "")
            if_range = self.headers.get("If-Range")
            if m and (if_range is None or if_range in (etag, modified)):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start >= size:
                    return self._simple(
                        416,
                        "Range Not Satisfiable",
                        method,
                        rel,
                        rng,
                        {"Content-Range": f"bytes */{size}"},
                    )
                status = 206
            count = end - start + 1
            declared = count + (fault.delta if fault and fault.kind == "length" else 0)
            self.send_response(status)
            self.send_header("Last-Modified", modified)
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(declared))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Type", "application/x-netcdf")
            self.end_headers()
            req = Request(method, rel, rng, status)
            app._record(req, self)  # logged when the body starts, so a stalled body shows up
            if not head:
                try:
                    req.sent = self._send_body(f, start, count, fault)
                except OSError:
                    self.close_connection = True

    def _send_body(self, f, start: int, count: int, fault: Fault | None) -> int:
        app = self.server.app
        if fault is None or fault.kind not in ("cut", "stall", "length"):
            return self.connection.sendfile(f, start, count) if count else 0
        limit = count if fault.kind == "length" else min(fault.after, count)
        sent = self.connection.sendfile(f, start, limit) if limit else 0
        if fault.kind == "stall":
            app._stop.wait(fault.seconds)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        return sent


def _files(folder: Path) -> Iterable[tuple[str, float, int]]:
    for p in folder.iterdir():
        if p.name.startswith(".") or p.name == "ls-l":
            continue
        st = p.stat()
        if stat.S_ISREG(st.st_mode):
            yield p.name, st.st_mtime, st.st_size


# --- publishing over time --------------------------------------------------------------------


def publish_file(
    src: str | Path,
    root: str | Path,
    date: str | dt.date,
    *,
    name: str | None = None,
    mtime: float | None = None,
) -> dt.datetime:
    """Make ``src`` appear in the served day folder ``root/rtofs.YYYYMMDD/`` as NOAA does.

    The bytes go to a hidden ``.NAME.publishing`` (neither listed nor served), then are
    renamed to ``name`` (default: ``src``'s name), so a listing never shows a partial file;
    an existing file of that name is replaced (new content, new modification time). The
    day folder is created when missing.

    Parameters
    ----------
    src
        The file to publish.
    root
        The server's root folder (:attr:`NomadsServer.root`).
    date
        The cycle day (``YYYYMMDD`` or a date).
    name
        Name on the server; ``src``'s name by default.
    mtime
        Modification time to give the file (seconds since the epoch; default: now).

    Returns
    -------
    datetime
        When the file became visible (UTC, right after the rename).
    """
    from rtofs_lib.fetch import names

    folder = Path(root) / names.day_folder(date)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or Path(src).name
    hidden = folder / f".{name}.publishing"
    shutil.copyfile(src, hidden)
    if mtime is not None:
        os.utime(hidden, (mtime, mtime))
    hidden.replace(folder / name)
    return dt.datetime.now(dt.UTC)


class Publisher:
    """Publish files into a served day folder in waves, in a background thread.

    Use :func:`publish` to make and start one. Files are published in the given order:
    wave ``i`` holds ``waves[i]`` files (one file per wave when ``waves`` is None), waves
    are ``gap`` seconds apart, the first comes ``delay`` seconds after the start (the day
    folder appears with it).

    Attributes
    ----------
    published
        File name → when it became visible (UTC), in publication order; filled as it goes.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        root: str | Path,
        date: str | dt.date,
        *,
        waves: Sequence[int] | None = None,
        gap: float = 1.0,
        delay: float = 0.0,
    ) -> None:
        self.files = [Path(f) for f in files]
        waves = list(waves) if waves is not None else [1] * len(self.files)
        if any(n < 1 for n in waves) or sum(waves) != len(self.files):
            raise ValueError(
                f"waves={waves}: wave sizes must be positive and add up to the "
                f"{len(self.files)} files to publish"
            )
        if gap < 0 or delay < 0:
            raise ValueError(f"gap={gap}, delay={delay}: neither may be negative")
        self.root, self.date, self.waves, self.gap, self.delay = root, date, waves, gap, delay
        self.published: dict[str, dt.datetime] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nomads-publish", daemon=True)

    def start(self) -> Publisher:
        """Start publishing in the background; return self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            files = iter(self.files)
            for i, count in enumerate(self.waves):
                if self._stop.wait(self.delay if i == 0 else self.gap):
                    return
                for _ in range(count):
                    f = next(files)
                    self.published[f.name] = publish_file(f, self.root, self.date)
        except BaseException as e:  # handed to wait()
            self.error = e

    @property
    def done(self) -> bool:
        """Whether every wave is out (or publishing stopped)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> dict[str, dt.datetime]:
        """Wait until every file is published; return :attr:`published`.

        Raises
        ------
        TimeoutError
            If publishing is not over after ``timeout`` seconds.
        OSError
            Whatever stopped the publishing thread (say, a missing source file).
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(
                f"publishing into {self.root}: {len(self.published)} of {len(self.files)} "
                f"files out after {timeout} s"
            )
        if self.error is not None:
            raise self.error
        return self.published

    def stop(self) -> None:
        """Publish no further wave (the one under way finishes)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def publish(
    files: Sequence[str | Path],
    root: str | Path,
    date: str | dt.date,
    *,
    waves: Sequence[int] | None = None,
    gap: float = 1.0,
    delay: float = 0.0,
) -> Publisher:
    """Start publishing ``files`` into ``root/rtofs.YYYYMMDD/`` in waves; return the publisher.

    See :class:`Publisher` (``waves``: files per wave, ``gap``: seconds between waves,
    ``delay``: seconds before the first) and :func:`publish_file` (how one file appears).
    ``publisher.wait(timeout)`` returns each file's publication time.

    Raises
    ------
    ValueError
        If the wave sizes do not add up to the number of files, or a time is negative.
    """
    return Publisher(files, root, date, waves=waves, gap=gap, delay=delay).start()


def main(argv: list[str] | None = None) -> None:
    """Serve an archive folder like NOMADS until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m rtofs_lib.testing.nomads", description=main.__doc__
    )
    parser.add_argument("root", type=Path, help="archive root with rtofs.YYYYMMDD/ folders")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = NomadsServer(args.root, host=args.host, port=args.port)
    print(f"serving {args.root} at {server.url}", flush=True)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
