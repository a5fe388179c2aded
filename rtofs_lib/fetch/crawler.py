"""Fetch one day of Global RTOFS files from NOMADS into the archive, safely and politely.

The crawl of one cycle day:

1. **Discover**: read the day's Apache index page (``rtofs.YYYYMMDD/``), or its plain
   ``ls-l`` file when the index fails (:mod:`rtofs_lib.fetch.listing`); ``latest`` picks the
   newest day of the root index.
2. **Select** by product and step through :mod:`rtofs_lib.fetch.names`, and report what the server
   does not have yet (nowcasts land ~03:30 UTC, forecast days 1–3 ~09:45, days 4–8 ~15:45)
   or no longer has (NOMADS keeps about two days).
3. **Download** each missing file to ``.NAME.part`` in the day folder, check the byte count
   against ``Content-Length``, open it as the expected product, then rename it into place
   (:mod:`rtofs_lib.fetch.transfer`), record it in the day's ``manifest.json``
   (:mod:`rtofs_lib.fetch.catalog`), then write its landed record for ``rtofs stream``
   (:mod:`rtofs_lib.fetch.landed`). A cut download resumes with ``Range``/``If-Range``; a
   file still being written (its size moved since the listing, or below the product's size
   floor, or it does not open) is retried later; a file NOAA replaced (the listing shows a
   newer time or another size than the manifest) is fetched again.
4. **Follow** (``follow=True``, ``rtofs crawl --follow``): list the day again every
   ``follow_interval`` seconds while the downloads go on, and fetch each file as soon as
   it is listed, until the selection is complete or the deadline passes
   (:mod:`rtofs_lib.fetch.dayrun`).
5. **Be polite** (:mod:`rtofs_lib.fetch.client`): a descriptive User-Agent, a token-bucket
   request-rate cap, at most ``parallel`` downloads, exponential backoff with jitter on
   connection errors and 5xx, a crawler-wide pause on 403/429/3xx honouring ``Retry-After``,
   and an overall deadline.

Only verified files ever carry a real name in the archive; hidden ``.NAME.part`` files are
resumable remnants of an interrupted run and disappear once the file completes. One crawler
at a time works on an archive (:func:`rtofs_lib.fetch.lock.archive_lock`). A crawl of a day
first writes the landed records its files lack (:func:`rtofs_lib.fetch.landed.ensure_records`:
a crawler stopped between a rename and its record).

Size floors
-----------
A real ``prog`` file is ~149 MiB; NOMADS lists files while they are still being written, so
a file far below that is not ready. Floors are given per product in bytes
(:data:`REAL_SIZE_FLOORS`, about 90% of the smallest real size). ``size_floors="auto"``
applies them only when the base URL is the real NOMADS host, because sample files on a test
or demo server are much smaller; tests pass explicit floors scaled to their sample files.

Examples
--------
>>> CrawlOptions().parallel, size_floor(CrawlOptions(), "https://nomads.ncep.noaa.gov/", "prog")
(2, 140000000)
>>> size_floor(CrawlOptions(), "http://127.0.0.1:8080/", "prog")
0
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from rtofs_lib.fetch import catalog, landed, names
from rtofs_lib.fetch.client import USER_AGENT, Client
from rtofs_lib.fetch.dayrun import DayRun
from rtofs_lib.fetch.listing import server_days
from rtofs_lib.fetch.lock import archive_lock
from rtofs_lib.fetch.report import CrawlReport

__all__ = ["NOMADS_HOST", "REAL_SIZE_FLOORS", "CrawlOptions", "Crawler", "crawl", "size_floor"]

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
    follow_interval
        Seconds between two listings of the day when following it (``rtofs crawl --follow``).
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
    follow_interval: float = 60.0
    size_floors: Literal["auto", "off"] | dict[str, int] = "auto"
    reserve_bytes: int = 256 * MiB
    fsync: bool = True
    user_agent: str = USER_AGENT
    chunk_size: int = 1 * MiB
    progress: Literal["auto", "bar", "log", "off"] = "auto"


def size_floor(options: CrawlOptions, base_url: str, product: str) -> int:
    """The size floor of ``product`` in bytes under ``options`` for a server at ``base_url``."""
    floors = options.size_floors
    if floors == "off":
        return 0
    if floors == "auto":
        host = urlsplit(base_url).hostname or ""
        return REAL_SIZE_FLOORS.get(product, 0) if host == NOMADS_HOST else 0
    return int(floors.get(product, 0))  # type: ignore[union-attr]


def crawl(
    archive: str | Path,
    date: str | dt.date = "latest",
    *,
    base_url: str,
    products: str | Iterable[str] | None = "prog",
    steps: str | Iterable[str] | None = "all",
    options: CrawlOptions | None = None,
    follow: bool = False,
) -> CrawlReport:
    """Crawl one day into ``archive`` and return the report (see :class:`Crawler`).

    ``follow`` lists the day again every ``options.follow_interval`` seconds and fetches
    each file as it appears, until the selection is complete or ``options.deadline``.

    Raises
    ------
    CrawlLockedError
        If another crawler holds the archive lock.
    """
    return Crawler(archive, base_url, options).crawl(date, products, steps, follow=follow)


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
        self.archive = Path(archive)
        self.options = options or CrawlOptions()
        self.client = Client(base_url, self.options)

    def crawl(
        self,
        date: str | dt.date = "latest",
        products: str | Iterable[str] | None = "prog",
        steps: str | Iterable[str] | None = "all",
        *,
        follow: bool = False,
    ) -> CrawlReport:
        """Fetch the selected files of ``date`` (``"latest"`` = newest on the server).

        ``follow`` keeps listing the day every ``options.follow_interval`` seconds until the
        selection is complete or the deadline passes; ``"latest"`` then means today's UTC
        cycle, waited for when the server has no folder for it yet.

        Raises
        ------
        CrawlLockedError
            If another crawler holds the archive lock.
        """
        with archive_lock(self.archive):
            report = self._crawl(date, products, steps, follow)
        report.seconds = time.monotonic() - self.client.start
        report.requests = self.client.requests
        return report

    def floor(self, product: str) -> int:
        """The size floor of ``product`` in bytes for this crawl's server."""
        return size_floor(self.options, self.client.base_url, product)

    def _crawl(self, date, products, steps, follow: bool) -> CrawlReport:
        if date == "latest":
            date = f"{dt.datetime.now(dt.UTC):%Y%m%d}" if follow else server_days(self.client)[-1]
        date = f"{names.parse_date(date):%Y%m%d}"
        report = CrawlReport(date, follow=follow)
        wanted = [
            (names.compose_name(product, step), product, step)
            for product in names.expand_products(products)
            for step in names.expand_steps(steps, product)
        ]
        report.wanted = [w[0] for w in wanted]
        folder = catalog.day_dir(self.archive, date)
        manifest = catalog.read_manifest(self.archive, date)
        self._clean_manifest(folder, manifest)
        if folder.is_dir():  # records of files landed by a crawler stopped before writing them
            for product in dict.fromkeys(p for _, p, _ in wanted):
                landed.ensure_records(self.archive, date, product)
        report.kept = [w[0] for w in wanted if w[0] in manifest["files"]]
        DayRun(self, folder, wanted, manifest, report, follow=follow).run()
        if manifest["files"] or folder.is_dir():
            catalog.write_manifest(self.archive, date, manifest)
        return report

    def _clean_manifest(self, folder: Path, manifest: dict) -> None:
        """Drop entries whose file is gone or changed size (they get fetched again)."""
        for name, entry in list(manifest["files"].items()):
            p = folder / name
            if not p.is_file() or p.stat().st_size != entry.get("size"):
                log.warning("%s: in the manifest but missing or resized; fetching it again", p)
                del manifest["files"][name]
