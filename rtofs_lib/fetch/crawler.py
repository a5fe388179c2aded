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
   (:mod:`rtofs_lib.fetch.transfer`) and record it in the day's ``manifest.json``
   (:mod:`rtofs_lib.fetch.catalog`). A cut download resumes with ``Range``/``If-Range``; a
   file still being written (its size moved since the listing, or below the product's size
   floor, or it does not open) is retried later.
4. **Be polite** (:mod:`rtofs_lib.fetch.client`): a descriptive User-Agent, a token-bucket
   request-rate cap, at most ``parallel`` downloads, exponential backoff with jitter on
   connection errors and 5xx, a crawler-wide pause on 403/429/3xx honouring ``Retry-After``,
   and an overall deadline.

Only verified files ever carry a real name in the archive; hidden ``.NAME.part`` files are
resumable remnants of an interrupted run and disappear once the file completes. One crawler
at a time works on an archive (:func:`rtofs_lib.fetch.lock.archive_lock`).

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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from rtofs_lib.errors import RtofsFileError
from rtofs_lib.fetch import catalog, names
from rtofs_lib.fetch.client import USER_AGENT, Client
from rtofs_lib.fetch.errors import DiskFullError
from rtofs_lib.fetch.listing import Listing, RemoteEntry, day_note, list_day, server_days
from rtofs_lib.fetch.lock import archive_lock
from rtofs_lib.fetch.report import CrawlReport, Progress
from rtofs_lib.fetch.transfer import Outcome, Result, Transfer
from rtofs_lib.fetch.verify import verify_file

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
) -> CrawlReport:
    """Crawl one day into ``archive`` and return the report (see :class:`Crawler`).

    Raises
    ------
    CrawlLockedError
        If another crawler holds the archive lock.
    """
    return Crawler(archive, base_url, options).crawl(date, products, steps)


@dataclass
class _Task:
    """One file to fetch, and how its attempts went so far."""

    name: str
    product: str
    step: str
    entry: RemoteEntry
    attempts: int = 0
    not_ready: int = 0
    not_before: float = 0.0
    last_error: str = ""
    relist: bool = False


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
    ) -> CrawlReport:
        """Fetch the selected files of ``date`` (``"latest"`` = newest on the server).

        Raises
        ------
        CrawlLockedError
            If another crawler holds the archive lock.
        """
        with archive_lock(self.archive):
            report = self._crawl(date, products, steps)
        report.seconds = time.monotonic() - self.client.start
        report.requests = self.client.requests
        return report

    def floor(self, product: str) -> int:
        """The size floor of ``product`` in bytes for this crawl's server."""
        return size_floor(self.options, self.client.base_url, product)

    def _crawl(self, date, products, steps) -> CrawlReport:
        if date == "latest":
            date = server_days(self.client)[-1]
        date = f"{names.parse_date(date):%Y%m%d}"
        report = CrawlReport(date)
        wanted = [
            (names.compose_name(product, step), product, step)
            for product in names.expand_products(products)
            for step in names.expand_steps(steps, product)
        ]
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

        listing = list_day(self.client, date)
        if listing is None:
            report.day_note = day_note(self.client, date)
            return report
        report.source = listing.source
        tasks = self._plan(todo, listing, folder, manifest, report)
        if tasks:
            folder.mkdir(parents=True, exist_ok=True)
            _DayRun(self, folder, tasks, manifest, report).run()
        catalog.write_manifest(self.archive, date, manifest)
        return report

    def _plan(
        self,
        todo: list[tuple[str, str, str]],
        listing: Listing,
        folder: Path,
        manifest: dict,
        report: CrawlReport,
    ) -> list[_Task]:
        """The downloads to make: listed files not already present and verified."""
        tasks = []
        for name, product, step in todo:
            entry = listing.entries.get(name)
            if entry is None:
                report.not_listed.append(name)
                continue
            if (folder / name).is_file() and self._adopt(
                folder / name, _Task(name, product, step, entry), listing.date, manifest
            ):
                report.kept.append(name)
                continue
            tasks.append(_Task(name, product, step, entry))
        log.info(
            "rtofs.%s: %d selected, %d already verified, %d to fetch, %d not listed yet (%s)",
            listing.date,
            len(report.wanted),
            len(report.kept),
            len(tasks),
            len(report.not_listed),
            listing.source,
        )
        return tasks

    def _clean_manifest(self, folder: Path, manifest: dict) -> None:
        """Drop entries whose file is gone or changed size (they get fetched again)."""
        for name, entry in list(manifest["files"].items()):
            p = folder / name
            if not p.is_file() or p.stat().st_size != entry.get("size"):
                log.warning("%s: in the manifest but missing or resized; fetching it again", p)
                del manifest["files"][name]

    def _adopt(self, path: Path, task: _Task, date: str, manifest: dict) -> bool:
        """Take a present file not in the manifest (say, a crash before the manifest write)."""
        rng = task.entry.size_range()
        size = path.stat().st_size
        try:
            if rng is not None and not rng[0] <= size <= rng[1]:
                raise RtofsFileError(
                    path, f"size {size} does not match the listed {task.entry.size_text}"
                )
            verify_file(path, task.product, task.step, date)
        except RtofsFileError as e:
            log.warning("%s; replacing it", e)
            path.unlink()
            return False
        manifest["files"][path.name] = catalog.file_entry(path)
        log.info("%s: already present and verified; recorded in the manifest", path)
        return True


class _DayRun:
    """The downloads of one day: a queue of tasks, ``parallel`` workers, each outcome settled.

    Verified files go into the manifest as they land; transient errors are retried with
    backoff, throttling pauses every request, files still being written wait for a fresh
    listing; a full disk stops the run.
    """

    def __init__(
        self,
        crawler: Crawler,
        folder: Path,
        tasks: list[_Task],
        manifest: dict,
        report: CrawlReport,
    ) -> None:
        self.crawler, self.client, self.options = crawler, crawler.client, crawler.options
        self.date, self.folder = report.date, folder
        self.manifest, self.report = manifest, report
        self.pending = list(tasks)
        self.running: dict[Future, tuple[_Task, float]] = {}
        self.fatal: DiskFullError | None = None
        total = sum((t.entry.size or 0) for t in tasks)
        self.progress = Progress(self.options.progress, len(tasks), total)

    def run(self) -> None:
        """Work until every task is settled, the deadline comes or the disk is full."""
        with ThreadPoolExecutor(self.options.parallel, thread_name_prefix="rtofs-crawl") as pool:
            try:
                while self.pending or self.running:
                    self._step(pool)
            finally:
                self.client.stop.set()
                self.progress.close()
        if self.fatal is not None:
            self._give_up_on_full_disk()

    def _step(self, pool: ThreadPoolExecutor) -> None:
        """Start what may start, then wait a little for a download to end."""
        now = time.monotonic()
        if now >= self.client.deadline and not self.client.stop.is_set():
            log.warning("deadline reached; stopping (partial files kept for resume)")
            self.client.stop.set()
        if self.client.stop.is_set():
            self.report.unfinished.extend(t.name for t in self.pending)
            self.pending = []
        ready = [t for t in self.pending if t.not_before <= now]
        if any(t.relist for t in ready):
            self._relist()
        while ready and len(self.running) < self.options.parallel:
            t = ready.pop(0)
            self.pending.remove(t)
            self.running[pool.submit(self._fetch, t)] = (t, time.monotonic())
        if not self.running:
            nxt = min((t.not_before for t in self.pending), default=now)
            left = max(0.0, self.client.deadline - now)
            self.client.stop.wait(min(max(0.0, nxt - now), left, 1.0))
            return
        done, _ = wait(self.running, timeout=0.5, return_when=FIRST_COMPLETED)
        for fut in done:
            t, started = self.running.pop(fut)
            try:
                out = fut.result()
            except DiskFullError as e:
                self.fatal = e
                self.client.stop.set()
                continue
            self._settle(t, out, started)

    def _relist(self) -> None:
        """List the day again and take the fresh entries of the files waiting for one."""
        fresh = list_day(self.client, self.date)
        for t in self.pending:
            if t.relist and fresh and t.name in fresh.entries:
                t.entry = fresh.entries[t.name]
            t.relist = False

    def _fetch(self, t: _Task) -> Outcome:
        """One attempt at ``t`` (in a worker thread)."""
        return Transfer(
            self.client,
            self.folder,
            t,
            date=self.date,
            floor=self.crawler.floor(t.product),
            advance=self.progress.advance,
        ).run()

    def _settle(self, t: _Task, out: Outcome, started: float) -> None:
        """Record a finished attempt, or queue the task again after a delay."""
        now = time.monotonic()
        if out.kind == Result.DONE:
            self.manifest["files"][t.name] = catalog.file_entry(
                self.folder / t.name, sha256=out.sha256
            )
            catalog.write_manifest(self.crawler.archive, self.date, self.manifest)
            self.report.downloaded[t.name] = out.size
            self.report.not_ready.pop(t.name, None)
            self.progress.done(t.name, out.size, now - started)
            return
        if out.kind == Result.ABORTED:
            self.report.unfinished.append(t.name)
            return
        if out.kind == Result.FAILED:
            self.report.failed[t.name] = out.reason
            log.error("%s: %s", t.name, out.reason)
            return
        if out.kind == Result.NOT_READY:
            delay = self._not_ready_delay(t, out)
        else:
            delay = self._retry_delay(t, out)
        if delay is None:
            return
        t.not_before = now + delay
        t.last_error = out.reason
        self.pending.append(t)

    def _not_ready_delay(self, t: _Task, out: Outcome) -> float | None:
        """Seconds until a file still being written is tried again (None: give up)."""
        t.not_ready += 1
        if t.not_ready > self.options.not_ready_retries:
            self.report.not_ready[t.name] = out.reason
            log.warning("%s: %s; giving up for this run", t.name, out.reason)
            return None
        t.relist = True
        delay = self.options.recheck_delay
        log.info("%s: %s; retrying in %.1f s", t.name, out.reason, delay)
        return delay

    def _retry_delay(self, t: _Task, out: Outcome) -> float | None:
        """Seconds until a transient error or throttling is retried (None: give up)."""
        t.attempts += 1
        if t.attempts >= self.options.retries:
            self.report.failed[t.name] = f"{out.reason} (after {t.attempts} attempts)"
            log.error("%s: %s; giving up after %d attempts", t.name, out.reason, t.attempts)
            return None
        if out.kind == Result.THROTTLE:
            delay = out.wait if out.wait is not None else self.client.backoff(t.attempts)
            self.client.limiter.pause(delay)
            log.warning("%s: %s; pausing all requests %.1f s", t.name, out.reason, delay)
        else:
            delay = self.client.backoff(t.attempts - 1)
            log.warning("%s: %s; retrying in %.1f s", t.name, out.reason, delay)
        return delay

    def _give_up_on_full_disk(self) -> None:
        """Report the full disk, and drop the partial downloads it left.

        They only hold space the archive needs; the lock guarantees no other crawler owns them.
        """
        for leftover in [*self.folder.glob(".*.part"), *self.folder.glob(".*.part.json")]:
            leftover.unlink(missing_ok=True)
        self.report.fatal = str(self.fatal)
        self.report.unfinished.extend(
            t.name for t in self.pending if t.name not in self.report.unfinished
        )
