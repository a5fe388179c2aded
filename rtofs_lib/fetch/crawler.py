"""Fetch one day of Global RTOFS files from NOMADS into the archive, safely and politely.

The crawl of one cycle day:

1. **Discover**: read the day's Apache index page (``rtofs.YYYYMMDD/``), or its plain
   ``ls-l`` file when the index fails; ``latest`` picks the newest day of the root index.
2. **Select** by product and step through :mod:`rtofs_lib.fetch.names`, and report what the server
   does not have yet (nowcasts land ~03:30 UTC, forecast days 1–3 ~09:45, days 4–8 ~15:45)
   or no longer has (NOMADS keeps about two days).
3. **Download** each missing file to ``.NAME.part`` in the day folder, check the byte count
   against ``Content-Length``, open it as the expected product (:func:`verify_file`), then
   rename it into place and record it in the day's ``manifest.json``. A cut download resumes
   with ``Range``/``If-Range``; a file still being written (its size moved since the listing,
   or below the product's size floor, or it does not open) is retried later.
4. **Be polite**: a descriptive User-Agent, a token-bucket request-rate cap, at most
   ``parallel`` downloads, exponential backoff with jitter on connection errors and 5xx,
   a crawler-wide pause on 403/429/3xx honouring ``Retry-After``, and an overall deadline.

Only verified files ever carry a real name in the archive; hidden ``.NAME.part`` files are
resumable remnants of an interrupted run and disappear once the file completes.

Size floors
-----------
A real ``prog`` file is ~149 MiB; NOMADS lists files while they are still being written, so
a file far below that is not ready. Floors are given per product in bytes
(:data:`REAL_SIZE_FLOORS`, about 90% of the smallest real size). ``size_floors="auto"``
applies them only when the base URL is the real NOMADS host, because sample files on a test
or demo server are much smaller; tests pass explicit floors scaled to their sample files.

Examples
--------
>>> from rtofs_lib.testing.nomads import index_page
>>> page = index_page("/x/rtofs.20260708", "/x/", [("rtofs_glo_2ds_f024_prog.nc", 0, 156237824)])
>>> [(e.name, e.size_text) for e in parse_index(page)]
[('rtofs_glo_2ds_f024_prog.nc', '149M')]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import errno
import fcntl
import hashlib
import html
import json
import logging
import os
import random
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from rtofs_lib import __version__
from rtofs_lib.errors import (
    MissingVariableError,
    NotNetCDFError,
    RtofsError,
    RtofsFileError,
    TruncatedFileError,
    UnexpectedGridError,
)
from rtofs_lib.fetch import catalog, names

log = logging.getLogger(__name__)

MiB = 1 << 20

#: Size floors of real full-grid files in bytes (~90% of the smallest size in the real listing).
REAL_SIZE_FLOORS: dict[str, int] = {
    "prog": 140_000_000,
    "diag": 175_000_000,
    "ice": 59_000_000,
    "3ztio": 700_000_000,
    "3zsio": 525_000_000,
    "3zuio": 775_000_000,
    "3zvio": 775_000_000,
    "US_east": 240_000_000,
    "US_west": 250_000_000,
    "alaska": 124_000_000,
}

NOMADS_HOST = "nomads.ncep.noaa.gov"
LOCK_NAME = ".rtofs-crawl.lock"
USER_AGENT = (
    f"rtofs-lib/{__version__} (RTOFS ocean platform crawler; daily archive of Global RTOFS "
    "netCDF; <=2 connections, <120 requests/min)"
)
_MT_EPOCH = dt.datetime(1900, 12, 31)
_verify_lock = threading.Lock()  # HDF5 is not built thread-safe everywhere


class CrawlError(RtofsError):
    """The crawl cannot go on (a lock held by another crawler, a full disk, no listing)."""


class DiskFullError(CrawlError, OSError):
    """The archive lacks the space for the next download."""


class CrawlLockedError(CrawlError):
    """Another crawler works on the same archive."""


# --- listings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteEntry:
    """One entry of a NOMADS listing.

    ``size`` is exact for ``ls-l`` listings; for index pages it is the rounded
    ``size_text`` (``149M``) read as binary units, and ``size_exact`` is False.
    """

    name: str
    modified: dt.datetime | None
    size: int | None
    size_text: str = ""
    size_exact: bool = False
    is_dir: bool = False

    def size_range(self) -> tuple[int, int] | None:
        """The byte sizes that print as this entry's size (None when unknown)."""
        if self.size is None:
            return None
        if self.size_exact:
            return self.size, self.size
        return _size_text_range(self.size_text)


_INDEX_RE = re.compile(
    r'<a href="([^"]+)">[^<]*</a>\s+(\d\d-[A-Za-z]{3}-\d{4} \d\d:\d\d)\s+(\S+)', re.IGNORECASE
)
_LS_RE = re.compile(
    r"^([-dlrwxsStT]{10})\S*\s+\d+\s+\S+\s+\S+\s+(\d+)\s+"
    r"([A-Z][a-z]{2}\s+\d{1,2}\s+(?:\d\d:\d\d|\d{4}))\s+(.+)$"
)
_UNITS = "KMGTPE"


def parse_size(text: str) -> int | None:
    """Return the bytes of an Apache size such as ``149M``, ``3.1G``, ``60K`` (None for ``-``).

    Examples
    --------
    >>> parse_size("149M"), parse_size("3.1G"), parse_size("512"), parse_size("-")
    (156237824, 3328599654, 512, None)
    """
    text = text.strip()
    if not text or text == "-":
        return None
    if text[-1].upper() in _UNITS:
        return int(float(text[:-1]) * 1024 ** (_UNITS.index(text[-1].upper()) + 1))
    return int(text)


def _size_text_range(text: str) -> tuple[int, int]:
    """The interval of byte counts that ``apr_strfsize`` prints as ``text``."""
    text = text.strip()
    if text[-1].upper() not in _UNITS:
        n = int(text)
        return n, n
    scale = 1024 ** (_UNITS.index(text[-1].upper()) + 1)
    num = text[:-1]
    step = 0.1 if "." in num else 1.0
    value = float(num)
    return int((value - step / 2 - 0.01) * scale), int((value + step / 2 + 0.01) * scale)


def parse_index(page: str) -> list[RemoteEntry]:
    """Parse an Apache ``mod_autoindex`` page (the NOMADS layout) into entries.

    Names come from the ``href`` (the link text may be cut by Apache); each href counts
    once; the parent link and query links are skipped; folders keep their trailing ``/``
    in :attr:`RemoteEntry.is_dir` and lose it in the name.
    """
    seen: dict[str, RemoteEntry] = {}
    for href, when, size in _INDEX_RE.findall(page):
        href = html.unescape(href)
        if href.startswith(("/", "?", "http:", "https:")) or href in seen:
            continue
        is_dir = href.endswith("/")
        name = href.rstrip("/")
        if not name or "/" in name:
            continue
        try:
            modified = dt.datetime.strptime(when, "%d-%b-%Y %H:%M")
        except ValueError:
            modified = None
        seen[href] = RemoteEntry(name, modified, parse_size(size), size, False, is_dir)
    return list(seen.values())


def parse_ls_l(text: str) -> list[RemoteEntry]:
    """Parse a plain ``ls -l`` listing (NOMADS' ``ls-l`` file) into entries with exact sizes."""
    out: dict[str, RemoteEntry] = {}
    for line in text.splitlines():
        m = _LS_RE.match(line.strip())
        if not m:
            continue
        mode, size, _when, name = m.groups()
        name = name.split(" -> ", 1)[0].strip()
        if mode.startswith("l") or name in out:
            continue
        out[name] = RemoteEntry(name, None, int(size), size, True, mode.startswith("d"))
    return list(out.values())


@dataclass
class Listing:
    """What the server lists for one day: entries by name, and where they came from."""

    date: str
    entries: dict[str, RemoteEntry]
    source: str  # "index" or "ls-l"


# --- verification --------------------------------------------------------------------------


def verify_file(path: str | Path, product: str, step: str, date: str | dt.date) -> None:
    """Check that ``path`` opens as the RTOFS ``product`` at ``step`` of cycle ``date``.

    Opens the file with netCDF4, checks the product's variable (``sst`` for prog, …), its
    ``MT``/``Y``/``X`` dimensions and single time, decodes the last compressed chunk of that
    variable (HDF5 writes it last) and, except for ice files whose ``MT`` is not
    trustworthy, checks that ``MT`` is the valid time the name implies. With the reader's
    :func:`~rtofs_lib.fetch.check.check_file` first (file size against the HDF5 superblock), this
    costs tens of milliseconds for a 150 MB file.

    Raises
    ------
    NotNetCDFError, TruncatedFileError, MissingVariableError, UnexpectedGridError
        Naming the file and what is wrong.
    """
    import netCDF4  # heavy; only when verifying

    path = Path(path)
    var = names.KEY_VARIABLE[product]
    try:  # the reader's byte-level check (HDF5 superblock end vs file size) when present
        from rtofs_lib.fetch.check import check_file
    except ImportError:  # pragma: no cover - reader not installed
        check_file = None
    if check_file is not None:
        check_file(path)
    with _verify_lock:
        try:
            ds = netCDF4.Dataset(path)
        except OSError as e:
            with open(path, "rb") as f:
                magic = f.read(8)
            if magic.startswith((b"\x89HDF", b"CDF")):
                raise TruncatedFileError(
                    path, f"netCDF header present but the file does not open ({e})", "refetch it"
                ) from None
            raise NotNetCDFError(
                path, f"not a netCDF file (starts with {magic!r})", "the server sent something else"
            ) from None
        with ds:
            if var not in ds.variables:
                raise MissingVariableError(
                    path,
                    f"no variable {var!r} for product {product}; has {', '.join(ds.variables)}",
                    "the file is not the product its name says",
                )
            v = ds.variables[var]
            if v.dimensions[:1] != ("MT",) or v.dimensions[-2:] != ("Y", "X"):
                raise UnexpectedGridError(
                    path, f"{var} has dimensions {v.dimensions}, expected (MT, …, Y, X)"
                )
            if len(ds.dimensions["MT"]) != 1:
                raise UnexpectedGridError(
                    path, f"MT has {len(ds.dimensions['MT'])} times, expected 1"
                )
            try:
                v[(0,) * (v.ndim - 2) + (-1, -1)]  # decodes the last chunk, written last
                mt = float(ds.variables["MT"][0]) if "MT" in ds.variables else None
            except (OSError, RuntimeError, IndexError) as e:
                raise TruncatedFileError(path, f"data do not decode ({e})", "refetch it") from None
    if product != "ice" and mt is not None:
        when = _MT_EPOCH + dt.timedelta(days=mt)
        expect = names.valid_time(date, step)
        if abs((when - expect).total_seconds()) > 1800:
            raise UnexpectedGridError(
                path,
                f"MT is {when:%Y-%m-%d %H:%M} but step {step} of {date} is valid at "
                f"{expect:%Y-%m-%d %H:%M}",
                "the file is from another cycle or step",
            )


# --- politeness ----------------------------------------------------------------------------


class RateLimiter:
    """Token bucket: ``per_minute`` requests a minute, bursts of ``burst``; a shared pause.

    In any 60 s window at most ``per_minute + burst`` requests start (105 with the defaults,
    under NOMADS' 120). :meth:`pause` holds every request (a 403/429/302 from the server).
    """

    def __init__(
        self, per_minute: float, burst: int = 5, clock: Callable[[], float] = time.monotonic
    ):
        if per_minute <= 0:
            raise ValueError(f"request rate must be positive, not {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Hold all requests for ``seconds`` from now."""
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)

    def acquire(self, stop: threading.Event, deadline: float) -> bool:
        """Wait for a token; False when ``stop`` is set or ``deadline`` comes first."""
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait_for = max(0.0, self.paused_until - now)
                if wait_for == 0.0:
                    if self.tokens >= 1.0:
                        self.tokens -= 1.0
                        return True
                    wait_for = (1.0 - self.tokens) / self.rate
            if now + wait_for > deadline or stop.wait(min(wait_for, 1.0)):
                return False


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2**attempt)."""
    d = min(cap, base * 2 ** max(0, attempt))
    return (rng or random).uniform(d / 2, d)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


# --- options and report --------------------------------------------------------------------


@dataclass
class CrawlOptions:
    """Knobs of a crawl; the defaults suit NOMADS, tests shrink the times.

    Attributes
    ----------
    parallel
        Downloads at once.
    rate_per_minute, burst
        Request-rate cap (token bucket).
    connect_timeout, read_timeout
        Seconds before a connection attempt or a silent body counts as failed.
    retries
        Attempts per file for transient errors (connection, 5xx, throttling) before it fails.
    not_ready_retries, recheck_delay
        How often and how long after to retry a file still being written.
    backoff_base, backoff_max
        Exponential backoff parameters in seconds.
    max_pause
        Longest ``Retry-After`` honoured (longer ones are capped, the deadline still rules).
    deadline
        Seconds after which the run stops starting work and aborts transfers (kept for resume).
    size_floors
        ``"auto"`` (real floors for the NOMADS host only), ``"off"``, or bytes per product.
    reserve_bytes
        Free space to leave on the archive's file system besides each download.
    fsync
        Flush each file to disk before renaming it into place.
    progress
        ``"auto"`` (tqdm on a terminal, log lines otherwise), ``"bar"``, ``"log"`` or ``"off"``.
    """

    parallel: int = 2
    rate_per_minute: float = 100
    burst: int = 5
    connect_timeout: float = 20.0
    read_timeout: float = 60.0
    retries: int = 6
    not_ready_retries: int = 8
    recheck_delay: float = 300.0
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    max_pause: float = 900.0
    deadline: float = 4 * 3600.0
    size_floors: str | dict[str, int] = "auto"
    reserve_bytes: int = 256 * MiB
    fsync: bool = True
    user_agent: str = USER_AGENT
    chunk_size: int = 1 * MiB
    progress: str = "auto"


@dataclass
class CrawlReport:
    """What a crawl of one day did, and what is still missing."""

    date: str
    wanted: list[str] = field(default_factory=list)
    downloaded: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    not_listed: list[str] = field(default_factory=list)
    not_ready: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    day_note: str = ""
    source: str = ""
    fatal: str = ""
    seconds: float = 0.0
    requests: int = 0

    @property
    def present(self) -> int:
        """Files of the selection now in the archive, verified."""
        return len(self.downloaded) + len(self.kept)

    @property
    def status(self) -> str:
        """``complete``, ``partial`` or ``failed``."""
        if self.fatal:
            return "failed"
        if self.wanted and self.present == len(self.wanted):
            return "complete"
        if self.present == 0 and (self.failed or self.day_note or not self.wanted):
            return "failed"
        return "partial"

    @property
    def exit_code(self) -> int:
        """0 complete, 3 partial, 1 failed (the ``rtofs`` convention)."""
        return {"complete": 0, "partial": 3, "failed": 1}[self.status]

    @property
    def bytes(self) -> int:
        return sum(self.downloaded.values())

    def summary(self) -> str:
        """A few lines for people and the journal."""
        rate = self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0
        lines = [
            f"rtofs crawl {self.date}: {self.status}: {self.present}/{len(self.wanted)} files in "
            f"the archive ({len(self.downloaded)} fetched, {self.bytes / 1e6:.1f} MB in "
            f"{self.seconds:.1f} s, {rate:.1f} MB/s; {len(self.kept)} already there; "
            f"{self.requests} requests{'; listing from ' + self.source if self.source else ''})"
        ]
        if self.fatal:
            lines.append(f"  stopped: {self.fatal}")
        if self.day_note:
            lines.append(f"  {self.day_note}")
        if self.not_listed:
            lines.extend(f"  {line}" for line in describe_missing(self.date, self.not_listed))
        for title, items in (
            ("still being written, retry later", self.not_ready),
            ("failed", self.failed),
        ):
            if items:
                lines.append(f"  {title}: {len(items)} files")
                lines.extend(f"    {n}: {why}" for n, why in sorted(items.items())[:10])
                if len(items) > 10:
                    lines.append(f"    … and {len(items) - 10} more")
        if self.unfinished:
            lines.append(
                f"  not attempted before the deadline: {len(self.unfinished)} files "
                "(partial downloads are kept and resumed by the next run)"
            )
        return "\n".join(lines)


def wave(product: str, step: str) -> str:
    """The daily publication wave of a step (see ``shared/rtofs/format.md`` §2.2)."""
    kind, hours = names.parse_step(step)
    if kind == "n":
        return "nowcasts (published about 03:30 UTC)"
    last_early = 72 if names.family(product) == "2ds" else 96
    if hours <= last_early:
        return "forecast days 1-3 (published about 09:45 UTC)"
    return "forecast days 4-8 (published about 15:45 UTC)"


def _compress_steps(steps: Sequence[str], product: str) -> str:
    order = names.steps_for(product)
    idx = sorted(order.index(s) for s in steps)
    runs: list[tuple[int, int]] = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return ",".join(order[a] if a == b else f"{order[a]}-{order[b]}" for a, b in runs)


def describe_missing(date: str, missing: Iterable[str]) -> list[str]:
    """Group files a server does not list yet by publication wave, as readable lines."""
    groups: dict[str, dict[str, list[str]]] = {}
    for name in missing:
        n = names.parse_name(name)
        groups.setdefault(wave(n.product, n.step), {}).setdefault(n.product, []).append(n.step)
    lines = []
    for w, by_product in groups.items():
        count = sum(len(v) for v in by_product.values())
        detail = "; ".join(f"{p} {_compress_steps(s, p)}" for p, s in by_product.items())
        lines.append(f"not on the server yet: {count} files of {w}: {detail}")
    return lines


# --- the lock ------------------------------------------------------------------------------


@contextlib.contextmanager
def archive_lock(archive: str | Path):
    """Hold the archive's crawl lock (``flock``; an exclusive lock file where flock is missing).

    Raises
    ------
    CrawlLockedError
        If another process holds it; the message names that process.
    """
    root = Path(archive)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise CrawlLockedError(
                    f"{path}: another crawler holds the archive lock ({holder}); wait for it to "
                    "finish, or delete the file if that process is gone"
                ) from None
            raise  # flock unsupported: Lustre needs the 'flock' mount option
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode(),
            0,
        )
        yield path
    finally:
        os.close(fd)


# --- the crawler ---------------------------------------------------------------------------


@dataclass
class _Task:
    name: str
    product: str
    step: str
    entry: RemoteEntry
    attempts: int = 0
    not_ready: int = 0
    not_before: float = 0.0
    last_error: str = ""
    relist: bool = False


@dataclass
class _Outcome:
    kind: str  # done, retry, throttle, not_ready, failed, aborted
    reason: str = ""
    size: int = 0
    sha256: str = ""
    wait: float | None = None


class _Progress:
    """tqdm bytes bar with a files count on a terminal; log lines otherwise."""

    def __init__(self, mode: str, total_files: int, total_bytes: int) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode = mode
        self.total_files = total_files
        self.files = 0
        self.bar = None
        if mode == "bar" and total_files:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_bytes or None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"0/{total_files} files",
                dynamic_ncols=True,
            )

    def advance(self, nbytes: int) -> None:
        if self.bar is not None:
            self.bar.update(nbytes)

    def done(self, name: str, size: int, seconds: float) -> None:
        self.files += 1
        if self.bar is not None:
            self.bar.set_description(f"{self.files}/{self.total_files} files")
        elif self.mode == "log":
            log.info(
                "fetched %s (%.1f MB in %.1f s, %.1f MB/s) [%d/%d]",
                name,
                size / 1e6,
                seconds,
                size / 1e6 / max(seconds, 1e-6),
                self.files,
                self.total_files,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Crawler:
    """Crawl NOMADS-like servers into an archive. One instance per run; not reentrant.

    Parameters
    ----------
    archive
        Archive root (``rtofs.YYYYMMDD/`` folders go under it).
    base_url
        URL of the production root holding the day folders.
    options
        :class:`CrawlOptions`; defaults suit NOMADS.
    """

    def __init__(self, archive: str | Path, base_url: str, options: CrawlOptions | None = None):
        import requests  # heavy-ish; keep `rtofs --help` fast

        self.archive = Path(archive)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.options = options or CrawlOptions()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = self.options.user_agent
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=2, pool_maxsize=max(2, self.options.parallel + 1), max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.limiter = RateLimiter(self.options.rate_per_minute, self.options.burst)
        self.stop = threading.Event()
        self.requests = 0
        self._count_lock = threading.Lock()
        self._start = time.monotonic()
        self._deadline = self._start + self.options.deadline
        self._rng = random.Random()

    # -- HTTP helpers ----------------------------------------------------------------------

    def _get(self, url: str, headers: dict[str, str] | None = None, *, stream: bool = False):
        """One rate-limited request (no redirects followed); None when the deadline came."""
        if not self.limiter.acquire(self.stop, self._deadline):
            return None
        with self._count_lock:
            self.requests += 1
        return self.session.get(
            url,
            headers=headers or {},
            stream=stream,
            allow_redirects=False,
            timeout=(self.options.connect_timeout, self.options.read_timeout),
        )

    def _throttle_wait(self, response) -> float:
        wait_s = retry_after(response.headers.get("Retry-After"))
        if wait_s is None:
            wait_s = backoff_delay(
                2, self.options.backoff_base, self.options.backoff_max, self._rng
            )
        return min(wait_s, self.options.max_pause)

    def _fetch_text(self, url: str) -> tuple[int, str]:
        """GET a small text resource with retries; return (status, text); status 0 = unreachable."""
        import requests

        last = ""
        for attempt in range(self.options.retries):
            if time.monotonic() >= self._deadline:
                break
            try:
                r = self._get(url)
                if r is None:
                    break
                with r:
                    if r.status_code == 200:
                        return 200, r.text
                    if r.status_code == 404:
                        return 404, ""
                    last = f"HTTP {r.status_code}"
                    if r.status_code in (403, 429) or 300 <= r.status_code < 400:
                        pause = self._throttle_wait(r)
                        log.warning("%s: %s, pausing all requests %.1f s", url, last, pause)
                        self.limiter.pause(pause)
                        continue
                    if r.status_code < 500:
                        return r.status_code, ""
            except requests.RequestException as e:
                last = _short_error(e)
            delay = backoff_delay(
                attempt, self.options.backoff_base, self.options.backoff_max, self._rng
            )
            log.warning("%s: %s; retrying in %.1f s", url, last, delay)
            self.stop.wait(min(delay, max(0.0, self._deadline - time.monotonic())))
        log.warning("%s: giving up (%s)", url, last or "deadline")
        return 0, last

    # -- discovery -------------------------------------------------------------------------

    def latest_date(self) -> str:
        """Return the newest day folder (``YYYYMMDD``) on the server's root index.

        Raises
        ------
        CrawlError
            If the root index cannot be read or lists no day folder.
        """
        return self.server_days()[-1]

    def server_days(self) -> list[str]:
        """Return the ``YYYYMMDD`` day folders the root index lists, oldest first."""
        status, text = self._fetch_text(self.base_url)
        if status != 200:
            raise CrawlError(
                f"{self.base_url}: cannot read the root index ({text or f'HTTP {status}'}); "
                "check --base-url and the network"
            )
        days = []
        for e in parse_index(text):
            with contextlib.suppress(names.NotRtofsNameError):
                days.append(f"{names.parse_day_folder(e.name):%Y%m%d}")
        if not days:
            raise CrawlError(f"{self.base_url}: the root index lists no rtofs.YYYYMMDD folder")
        return sorted(days)

    def list_day(self, date: str) -> Listing | None:
        """Return the day's listing (index page, else ``ls-l``); None when the day is absent."""
        folder = urljoin(self.base_url, names.day_folder(date) + "/")
        status, text = self._fetch_text(folder)
        if status == 404:
            return None
        if status == 200:
            entries = [e for e in parse_index(text) if not e.is_dir]
            if entries:
                return Listing(date, {e.name: e for e in entries}, "index")
            log.warning("%s: index page lists no files; trying ls-l", folder)
        else:
            log.warning("%s: index unavailable (%s); trying ls-l", folder, text or status)
        status2, text2 = self._fetch_text(urljoin(folder, "ls-l"))
        if status2 == 200:
            entries = [e for e in parse_ls_l(text2) if not e.is_dir]
            return Listing(date, {e.name: e for e in entries}, "ls-l")
        if status == 404 or status2 == 404:
            return None
        raise CrawlError(
            f"{folder}: neither the index page nor ls-l could be read "
            f"({text or status}; {text2 or status2}); try again later"
        )

    def _day_note(self, date: str) -> str:
        try:
            days = self.server_days()
        except CrawlError as e:
            return f"rtofs.{date} is not on the server, and {e}"
        if date < days[0]:
            return (
                f"rtofs.{date} is no longer on the server (it keeps about two days; oldest now "
                f"rtofs.{days[0]}); nothing more can be fetched for that day"
            )
        if date > days[-1]:
            return f"rtofs.{date} is not on the server yet (newest is rtofs.{days[-1]})"
        return f"rtofs.{date} is not on the server (it has {', '.join(days)})"

    # -- the run ---------------------------------------------------------------------------

    def crawl(
        self,
        date: str | dt.date = "latest",
        products: str | Iterable[str] | None = "prog",
        steps: str | Iterable[str] | None = "all",
    ) -> CrawlReport:
        """Fetch the selected files of ``date`` (``"latest"`` = newest on the server).

        Raises
        ------
        CrawlLockedError
            If another crawler holds the archive lock.
        """
        with archive_lock(self.archive):
            report = self._crawl(date, products, steps)
        report.seconds = time.monotonic() - self._start
        report.requests = self.requests
        return report

    def _crawl(self, date, products, steps) -> CrawlReport:
        if date == "latest":
            date = self.latest_date()
        date = f"{names.parse_date(date):%Y%m%d}"
        report = CrawlReport(date)
        wanted: list[tuple[str, str, str]] = []
        for product in names.expand_products(products):
            for step in names.expand_steps(steps, product):
                wanted.append((names.compose_name(product, step), product, step))
        report.wanted = [w[0] for w in wanted]
        folder = catalog.day_dir(self.archive, date)
        manifest = catalog.read_manifest(self.archive, date)
        self._clean_manifest(folder, manifest)

        todo = [w for w in wanted if w[0] not in manifest["files"]]
        report.kept = [w[0] for w in wanted if w[0] in manifest["files"]]
        if not todo:
            log.info("rtofs.%s: all %d selected files already verified", date, len(wanted))
            if manifest["files"] or folder.is_dir():
                catalog.write_manifest(self.archive, date, manifest)
            return report

        listing = self.list_day(date)
        if listing is None:
            report.day_note = self._day_note(date)
            report.not_listed = []
            report.failed = {}
            return report
        report.source = listing.source
        tasks = []
        for name, product, step in todo:
            entry = listing.entries.get(name)
            if entry is None:
                report.not_listed.append(name)
                continue
            if (folder / name).is_file() and self._adopt(
                folder / name, product, step, date, entry, manifest
            ):
                report.kept.append(name)
                continue
            tasks.append(_Task(name, product, step, entry))
        log.info(
            "rtofs.%s: %d selected, %d already verified, %d to fetch, %d not listed yet (%s)",
            date,
            len(wanted),
            len(report.kept),
            len(tasks),
            len(report.not_listed),
            listing.source,
        )
        if tasks:
            folder.mkdir(parents=True, exist_ok=True)
            self._run_tasks(date, folder, tasks, manifest, report, listing)
        catalog.write_manifest(self.archive, date, manifest)
        return report

    def _clean_manifest(self, folder: Path, manifest: dict) -> None:
        """Drop entries whose file is gone or changed size (they get fetched again)."""
        for name, entry in list(manifest["files"].items()):
            p = folder / name
            if not p.is_file() or p.stat().st_size != entry.get("size"):
                log.warning("%s: in the manifest but missing or resized; fetching it again", p)
                del manifest["files"][name]

    def _adopt(
        self, path: Path, product: str, step: str, date: str, entry: RemoteEntry, manifest: dict
    ) -> bool:
        """Take a present file not in the manifest (say, a crash before the manifest write)."""
        rng = entry.size_range()
        size = path.stat().st_size
        try:
            if rng is not None and not rng[0] <= size <= rng[1]:
                raise RtofsFileError(
                    path, f"size {size} does not match the listed {entry.size_text}"
                )
            verify_file(path, product, step, date)
        except RtofsFileError as e:
            log.warning("%s; replacing it", e)
            path.unlink()
            return False
        manifest["files"][path.name] = catalog.file_entry(path)
        log.info("%s: already present and verified; recorded in the manifest", path)
        return True

    def _floor(self, product: str) -> int:
        floors = self.options.size_floors
        if floors == "off":
            return 0
        if floors == "auto":
            host = urlsplit(self.base_url).hostname or ""
            return REAL_SIZE_FLOORS.get(product, 0) if host == NOMADS_HOST else 0
        return int(floors.get(product, 0))  # type: ignore[union-attr]

    def _run_tasks(self, date, folder, tasks, manifest, report, listing) -> None:
        pending = list(tasks)
        total = sum((t.entry.size or 0) for t in tasks)
        progress = _Progress(self.options.progress, len(tasks), total)
        running: dict[Future, tuple[_Task, float]] = {}
        fatal: BaseException | None = None
        with ThreadPoolExecutor(self.options.parallel, thread_name_prefix="rtofs-crawl") as pool:
            try:
                while pending or running:
                    now = time.monotonic()
                    if now >= self._deadline and not self.stop.is_set():
                        log.warning("deadline reached; stopping (partial files kept for resume)")
                        self.stop.set()
                    if self.stop.is_set():
                        report.unfinished.extend(t.name for t in pending)
                        pending = []
                    ready = [t for t in pending if t.not_before <= now]
                    if any(t.relist for t in ready):
                        fresh = self.list_day(date)
                        for t in pending:
                            if t.relist and fresh and t.name in fresh.entries:
                                t.entry = fresh.entries[t.name]
                            t.relist = False
                    while ready and len(running) < self.options.parallel:
                        t = ready.pop(0)
                        pending.remove(t)
                        fut = pool.submit(self._fetch, date, folder, t, progress)
                        running[fut] = (t, time.monotonic())
                    if not running:
                        nxt = min((t.not_before for t in pending), default=now)
                        self.stop.wait(
                            min(max(0.0, nxt - now), max(0.0, self._deadline - now), 1.0)
                        )
                        continue
                    done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in done:
                        t, started = running.pop(fut)
                        try:
                            out = fut.result()
                        except DiskFullError as e:
                            fatal = e
                            self.stop.set()
                            continue
                        self._settle(
                            t, out, started, pending, manifest, report, progress, date, folder
                        )
            finally:
                self.stop.set()
                progress.close()
        if fatal is not None:
            # A full disk: partial downloads of the aborted transfers only hold space the
            # archive needs; drop them (the lock guarantees no other crawler owns them).
            for leftover in [*folder.glob(".*.part"), *folder.glob(".*.part.json")]:
                leftover.unlink(missing_ok=True)
            report.fatal = str(fatal)
            report.unfinished.extend(t.name for t in pending if t.name not in report.unfinished)

    def _settle(self, t, out, started, pending, manifest, report, progress, date, folder) -> None:
        o = self.options
        now = time.monotonic()
        if out.kind == "done":
            manifest["files"][t.name] = catalog.file_entry(folder / t.name, sha256=out.sha256)
            catalog.write_manifest(self.archive, date, manifest)
            report.downloaded[t.name] = out.size
            report.not_ready.pop(t.name, None)
            progress.done(t.name, out.size, now - started)
            return
        if out.kind == "aborted":
            report.unfinished.append(t.name)
            return
        if out.kind == "failed":
            report.failed[t.name] = out.reason
            log.error("%s: %s", t.name, out.reason)
            return
        if out.kind == "not_ready":
            t.not_ready += 1
            if t.not_ready > o.not_ready_retries:
                report.not_ready[t.name] = out.reason
                log.warning("%s: %s; giving up for this run", t.name, out.reason)
                return
            delay = o.recheck_delay
            t.relist = True
            log.info("%s: %s; retrying in %.1f s", t.name, out.reason, delay)
        else:  # retry, throttle
            t.attempts += 1
            if t.attempts >= o.retries:
                report.failed[t.name] = f"{out.reason} (after {t.attempts} attempts)"
                log.error("%s: %s; giving up after %d attempts", t.name, out.reason, t.attempts)
                return
            if out.kind == "throttle":
                delay = (
                    out.wait
                    if out.wait is not None
                    else backoff_delay(t.attempts, o.backoff_base, o.backoff_max, self._rng)
                )
                self.limiter.pause(delay)
                log.warning("%s: %s; pausing all requests %.1f s", t.name, out.reason, delay)
            else:
                delay = backoff_delay(t.attempts - 1, o.backoff_base, o.backoff_max, self._rng)
                log.warning("%s: %s; retrying in %.1f s", t.name, out.reason, delay)
        t.not_before = now + delay
        t.last_error = out.reason
        pending.append(t)

    # -- one download ----------------------------------------------------------------------

    def _fetch(self, date: str, folder: Path, t: _Task, progress: _Progress) -> _Outcome:
        import requests

        final = folder / t.name
        part = folder / f".{t.name}.part"
        meta_path = folder / f".{t.name}.part.json"
        meta = _read_json(meta_path)
        offset = part.stat().st_size if part.exists() and meta else 0
        if part.exists() and not meta:
            part.unlink()
        floor = self._floor(t.product)
        if t.entry.size is not None and t.entry.size < floor:
            return _Outcome(
                "not_ready", f"listed at {t.entry.size_text}, below the {floor / 1e6:.0f} MB floor"
            )
        self._check_space(folder, t.name, (t.entry.size or 0) - offset)
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if meta.get("etag") or meta.get("last_modified"):
                headers["If-Range"] = meta.get("etag") or meta["last_modified"]
        url = urljoin(self.base_url, f"{names.day_folder(date)}/{t.name}")
        try:
            r = self._get(url, headers, stream=True)
        except requests.RequestException as e:
            return _Outcome("retry", _short_error(e))
        if r is None:
            return _Outcome("aborted", "deadline")
        with r:
            code = r.status_code
            if code in (403, 429) or 300 <= code < 400:
                return _Outcome("throttle", f"HTTP {code}", wait=self._throttle_wait(r))
            if code >= 500:
                return _Outcome("retry", f"HTTP {code}")
            if code == 404:
                return _Outcome("failed", "HTTP 404: listed but gone from the server")
            if code == 416:
                _remove(part, meta_path)
                return _Outcome("retry", "HTTP 416: partial file longer than the server's")
            if code not in (200, 206):
                return _Outcome("failed", f"HTTP {code}")
            length = r.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return _Outcome("retry", "no Content-Length in the response")
            if code == 206:
                m = re.match(r"bytes (\d+)-(\d+)/(\d+)", r.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != offset:
                    _remove(part, meta_path)
                    return _Outcome("retry", "bad Content-Range; starting over")
                total = int(m.group(3))
                if meta.get("total") not in (None, total):
                    _remove(part, meta_path)
                    return _Outcome(
                        "not_ready",
                        f"size changed from {meta['total']} to {total} since the partial download",
                    )
            else:
                total = int(length)
                if offset:
                    log.info(
                        "%s: server sent the whole file (changed or no range); restarting", t.name
                    )
                    offset = 0
            rng = t.entry.size_range()
            if rng is not None and not rng[0] <= total <= rng[1]:
                _remove(part, meta_path)
                listed = t.entry.size_text if not t.entry.size_exact else str(t.entry.size)
                return _Outcome(
                    "not_ready",
                    f"size {total} differs from the listed {listed}: still being written",
                )
            if total < floor:
                return _Outcome("not_ready", f"{total} bytes, below the {floor / 1e6:.0f} MB floor")
            self._check_space(folder, t.name, total - offset)
            meta = {
                "url": url,
                "total": total,
                "etag": r.headers.get("ETag"),
                "last_modified": r.headers.get("Last-Modified"),
            }
            _write_json(meta_path, meta)
            h = hashlib.sha256()
            try:
                with open(part, "r+b" if offset else "wb") as f:
                    if offset:
                        while block := f.read(self.options.chunk_size):
                            h.update(block)
                        f.seek(offset)
                        f.truncate()
                    got = offset
                    for chunk in _body_chunks(r, self.options.chunk_size):
                        f.write(chunk)
                        h.update(chunk)
                        got += len(chunk)
                        progress.advance(len(chunk))
                        if self.stop.is_set():
                            return _Outcome("aborted", "deadline")
                    if got == total and self.options.fsync:
                        f.flush()
                        os.fsync(f.fileno())
            except requests.RequestException as e:
                have = part.stat().st_size if part.exists() else 0
                return _Outcome(
                    "retry", f"{_short_error(e)} after {have} of {total} bytes (resuming)"
                )
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    _remove(part, meta_path)
                    raise DiskFullError(
                        f"{folder}: disk full while writing {t.name} ({e.strerror}); free space "
                        "or run `rtofs prune --keep-days N`, then crawl again"
                    ) from None
                raise
        if got != total:
            if got > total:
                _remove(part, meta_path)
            return _Outcome("retry", f"received {got} of {total} bytes (resuming)")
        try:
            verify_file(part, t.product, t.step, date)
        except RtofsFileError as e:
            _remove(part, meta_path)
            return _Outcome(
                "not_ready", f"complete download does not open as {t.product}: {e.problem}"
            )
        part.replace(final)
        meta_path.unlink(missing_ok=True)
        _fsync_dir(folder)
        return _Outcome("done", size=total, sha256=h.hexdigest())

    def _check_space(self, folder: Path, name: str, need: int) -> None:
        free = shutil.disk_usage(folder if folder.exists() else self.archive).free
        if need + self.options.reserve_bytes > free:
            raise DiskFullError(
                f"{folder}: {free / 1e6:.1f} MB free, {name} needs {need / 1e6:.1f} MB "
                f"(+{self.options.reserve_bytes / 1e6:.0f} MB reserve); free space or run "
                "`rtofs prune --keep-days N`, then crawl again"
            )


def crawl(
    archive: str | Path,
    date: str | dt.date = "latest",
    *,
    base_url: str,
    products: str | Iterable[str] | None = "prog",
    steps: str | Iterable[str] | None = "all",
    options: CrawlOptions | None = None,
) -> CrawlReport:
    """Crawl one day into ``archive`` and return the report (see :class:`Crawler`).

    Raises
    ------
    CrawlLockedError
        If another crawler holds the archive lock.
    """
    return Crawler(archive, base_url, options).crawl(date, products, steps)


def _body_chunks(response, size: int) -> Iterable[bytes]:
    """Yield the body as it arrives, so bytes before a cut connection are kept for resume."""
    import requests
    import urllib3

    raw = response.raw
    try:
        while chunk := raw.read1(size, decode_content=True):
            yield chunk
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise requests.ConnectionError(f"connection broken: {e!r}") from e


def _short_error(e: BaseException) -> str:
    text = str(e)
    for key in (
        "Read timed out",
        "timed out",
        "Connection refused",
        "IncompleteRead",
        "Connection broken",
        "RemoteDisconnected",
        "reset by peer",
    ):
        if key in text:
            return f"{type(e).__name__}: {key}"
    return f"{type(e).__name__}: {text[:160]}"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
