"""The downloads of one crawled day, once or following the listing as NOAA publishes.

A :class:`DayRun` lists the day, queues each selected file the listing shows and the archive
lacks, and works the queue with ``parallel`` workers until every file is settled (a
crawl run once), or, following (``rtofs crawl --follow``), also lists the day again every
``follow_interval`` seconds while the downloads go on, queueing each file as soon as it is
listed, until the selection is complete or the deadline passes. A day folder the server
does not have yet is waited for when following.

Each verified file lands in one step: renamed into place (:mod:`rtofs_lib.fetch.transfer`),
its manifest entry written, then its landed record (:func:`rtofs_lib.fetch.landed.write_record`,
with the transfer's SHA-256 and the time right after the rename). A file the listing shows
with a newer modification time or another size than the manifest recorded was replaced by
NOAA (:func:`replaced`): it is fetched again and lands with a new record.

Every listing goes through the crawl's :class:`~rtofs_lib.fetch.client.Client` (rate cap,
pauses, deadline), as the downloads do.

>>> from rtofs_lib.fetch.listing import RemoteEntry
>>> recorded = {"size": 1000, "listed": "2026-07-08T09:11:00"}
>>> same = RemoteEntry("f.nc", dt.datetime(2026, 7, 8, 9, 11), 1000, "1000", True)
>>> later = RemoteEntry("f.nc", dt.datetime(2026, 7, 8, 9, 40), 1000, "1000", True)
>>> replaced(recorded, same), replaced(recorded, later), replaced({"size": 1000}, same)
(False, True, False)
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rtofs_lib.errors import RtofsFileError
from rtofs_lib.fetch import catalog, landed
from rtofs_lib.fetch.errors import CrawlError, DiskFullError
from rtofs_lib.fetch.listing import Listing, RemoteEntry, day_note, list_day, server_days
from rtofs_lib.fetch.report import CrawlReport, Progress
from rtofs_lib.fetch.transfer import Outcome, Result, Transfer
from rtofs_lib.fetch.verify import verify_file

if TYPE_CHECKING:
    from rtofs_lib.fetch.crawler import Crawler

__all__ = ["DayRun", "replaced"]

log = logging.getLogger("rtofs_lib.fetch.crawler")


def replaced(recorded: dict, entry: RemoteEntry) -> bool:
    """Whether the listing ``entry`` shows other content than the manifest entry ``recorded``.

    True when the listed size cannot be the recorded size, or the listed modification time
    is later than the one recorded at the fetch (manifests without ``listed`` compare sizes
    only).
    """
    rng = entry.size_range()
    if rng is not None and not rng[0] <= recorded.get("size", -1) <= rng[1]:
        return True
    listed = recorded.get("listed")
    if not listed or entry.modified is None:
        return False
    try:
        return entry.modified > dt.datetime.fromisoformat(listed)
    except (TypeError, ValueError):
        return False


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


class DayRun:
    """The downloads of one day: a queue of tasks, ``parallel`` workers, each outcome settled.

    Verified files go into the manifest and get their landed record as they land; transient
    errors are retried with backoff, throttling pauses every request, files still being
    written wait for a fresh listing; a full disk stops the run. ``follow`` lists the day
    again every ``options.follow_interval`` seconds until the selection is complete or the
    deadline passes.

    Parameters
    ----------
    crawler
        The :class:`~rtofs_lib.fetch.crawler.Crawler` (archive, client, options).
    folder
        The archive's day folder.
    wanted
        ``(name, product, step)`` of every selected file.
    manifest
        The day's manifest, updated as files land.
    report
        The report to fill.
    follow
        Follow the listing until complete or the deadline.
    """

    def __init__(
        self,
        crawler: Crawler,
        folder: Path,
        wanted: list[tuple[str, str, str]],
        manifest: dict,
        report: CrawlReport,
        *,
        follow: bool = False,
    ) -> None:
        self.crawler, self.client, self.options = crawler, crawler.client, crawler.options
        self.archive = crawler.archive
        self.date, self.folder = report.date, folder
        self.wanted = wanted
        self.manifest, self.report = manifest, report
        self.follow = follow
        self.listing: Listing | None = None
        self.next_poll = 0.0
        self.pending: list[_Task] = []
        self.running: dict[Future, tuple[_Task, float]] = {}
        self.fatal: DiskFullError | None = None
        self.progress = Progress(self.options.progress)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        """Work until every task is settled (and, following, the selection is complete),
        the deadline comes or the disk is full."""
        if not self._first_listing():
            return
        with ThreadPoolExecutor(self.options.parallel, thread_name_prefix="rtofs-crawl") as pool:
            try:
                while self._busy():
                    self._step(pool)
            finally:
                self.client.stop.set()
                self.progress.close()
        if self.fatal is not None:
            self._give_up_on_full_disk()
        self._note_missing()

    def _first_listing(self) -> bool:
        """List the day and queue what it shows; False when there is nothing to run."""
        try:
            listing = list_day(self.client, self.date)
        except CrawlError as e:
            if not (self.follow or self._outstanding()):
                log.warning("%s; every selected file is already verified", e)
                return False
            if not self.follow:
                raise
            log.warning("%s; trying again in %.0f s", e, self.options.follow_interval)
            listing = None
        if listing is not None:
            self._take(listing)
        elif not self.follow:
            if self._outstanding():
                self.report.day_note = day_note(self.client, self.date)
            return False
        elif self._day_gone():
            self.report.day_note = day_note(self.client, self.date)
            return False
        else:
            log.info(
                "rtofs.%s is not on the server yet; looking again every %.0f s until the deadline",
                self.date,
                self.options.follow_interval,
            )
        self.next_poll = time.monotonic() + self.options.follow_interval
        return True

    def _day_gone(self) -> bool:
        """Whether the server's oldest day is later than this one (it will never come)."""
        try:
            return self.date < server_days(self.client)[0]
        except CrawlError:
            return False

    def _outstanding(self) -> list[str]:
        """Selected files neither in the archive (verified) nor failed."""
        r = self.report
        settled = {*r.downloaded, *r.kept, *r.failed}
        return [name for name, _, _ in self.wanted if name not in settled]

    def _busy(self) -> bool:
        """Whether the run goes on: tasks left, or following with files still to come."""
        if self.pending or self.running:
            return True
        return self.follow and not self.client.stop.is_set() and bool(self._outstanding())

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
        poll = self.follow and now >= self.next_poll and not self.client.stop.is_set()
        if poll or any(t.relist for t in ready):
            self._relist()
            ready = [t for t in self.pending if t.not_before <= now]
        while ready and len(self.running) < self.options.parallel:
            t = ready.pop(0)
            self.pending.remove(t)
            self.running[pool.submit(self._fetch, t)] = (t, time.monotonic())
        if not self.running:
            nxt = min((t.not_before for t in self.pending), default=now)
            if self.follow:
                nxt = min(nxt, self.next_poll) if self.pending else self.next_poll
            left = max(0.0, self.client.deadline - now)
            self.client.stop.wait(min(max(0.0, nxt - now), left, 1.0))
            return
        timeout = min(0.5, max(0.01, self.next_poll - now)) if self.follow else 0.5
        done, _ = wait(self.running, timeout=timeout, return_when=FIRST_COMPLETED)
        for fut in done:
            t, started = self.running.pop(fut)
            try:
                out = fut.result()
            except DiskFullError as e:
                self.fatal = e
                self.client.stop.set()
                continue
            self._settle(t, out, started)

    # -- listings --------------------------------------------------------------------------

    def _relist(self) -> None:
        """List the day again: fresh entries for the files waiting for one, and (following)
        the newly listed or replaced files queued."""
        try:
            fresh = list_day(self.client, self.date)
        except CrawlError as e:
            if not self.follow:
                raise
            log.warning("%s; trying again in %.0f s", e, self.options.follow_interval)
            fresh = None
        for t in self.pending:
            if t.relist and fresh and t.name in fresh.entries:
                t.entry = fresh.entries[t.name]
            t.relist = False
        if self.follow:
            self.next_poll = time.monotonic() + self.options.follow_interval
            if fresh is not None:
                self._take(fresh)

    def _take(self, listing: Listing) -> None:
        """Queue the selected files ``listing`` shows that are missing here or were replaced.

        A present file missing from the manifest (a crash before the manifest write) is
        verified and adopted instead of fetched.
        """
        first = self.listing is None
        self.listing = listing
        self.report.source = listing.source
        busy = {t.name for t in self.pending} | {t.name for t, _ in self.running.values()}
        tasks, adopted = [], set()
        for name, product, step in self.wanted:
            entry = listing.entries.get(name)
            if entry is None or name in busy or name in self.report.failed:
                continue
            recorded = self.manifest["files"].get(name)
            if recorded is not None:
                if not replaced(recorded, entry):
                    continue
                log.info(
                    "%s: replaced on the server (listed %s, %s; fetched at %s bytes, listed %s); "
                    "fetching it again",
                    name,
                    entry.size_text,
                    entry.modified,
                    recorded.get("size"),
                    recorded.get("listed", "?"),
                )
                if name in self.report.kept:
                    self.report.kept.remove(name)
            elif (self.folder / name).is_file() and self._adopt(_Task(name, product, step, entry)):
                self.report.kept.append(name)
                adopted.add(product)
                continue
            self.report.not_ready.pop(name, None)
            tasks.append(_Task(name, product, step, entry))
        if adopted:
            catalog.write_manifest(self.archive, self.date, self.manifest)
            for product in sorted(adopted):
                landed.ensure_records(self.archive, self.date, product)
        if tasks:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.pending.extend(tasks)
            self.progress.add(len(tasks), sum(t.entry.size or 0 for t in tasks))
        if first:
            log.info(
                "rtofs.%s: %d selected, %d already verified, %d to fetch, %d not listed yet (%s)",
                self.date,
                len(self.wanted),
                len(self.report.kept),
                len(tasks),
                sum(name not in listing.entries for name, _, _ in self.wanted),
                listing.source,
            )
        elif tasks:
            log.info("rtofs.%s: %d more files listed; fetching them", self.date, len(tasks))

    def _adopt(self, task: _Task) -> bool:
        """Take a present file not in the manifest (say, a crash before the manifest write)."""
        path = self.folder / task.name
        rng = task.entry.size_range()
        size = path.stat().st_size
        try:
            if rng is not None and not rng[0] <= size <= rng[1]:
                raise RtofsFileError(
                    path, f"size {size} does not match the listed {task.entry.size_text}"
                )
            verify_file(path, task.product, task.step, self.date)
        except RtofsFileError as e:
            log.warning("%s; replacing it", e)
            path.unlink()
            return False
        self.manifest["files"][path.name] = catalog.file_entry(path, listed=task.entry.modified)
        log.info("%s: already present and verified; recorded in the manifest", path)
        return True

    # -- outcomes --------------------------------------------------------------------------

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
            self._land(t, out)
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

    def _land(self, t: _Task, out: Outcome) -> None:
        """Finish the landing of a file renamed into place: its manifest entry, then its record.

        A record is named by the content's hash: identical content fetched again (a listed
        time that moved without new content) rewrites the same record, a new one for
        ``rtofs stream`` only when the content is new.
        """
        path = self.folder / t.name
        self.manifest["files"][t.name] = catalog.file_entry(
            path, sha256=out.sha256, fetched=out.landed, listed=t.entry.modified
        )
        catalog.write_manifest(self.archive, self.date, self.manifest)
        landed.write_record(self.archive, path, sha256=out.sha256, landed=out.landed)

    def _not_ready_delay(self, t: _Task, out: Outcome) -> float | None:
        """Seconds until a file still being written is tried again (None: give up).

        Following, a file given up on is queued again by the next listing that shows it.
        """
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

    # -- the end ---------------------------------------------------------------------------

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

    def _note_missing(self) -> None:
        """Name what the server never listed (or the day folder that never came)."""
        r = self.report
        if self.listing is None:
            r.day_note = f"rtofs.{self.date} did not appear on the server before the deadline"
            return
        settled = {*r.downloaded, *r.kept, *r.failed, *r.not_ready, *r.unfinished}
        r.not_listed = [name for name, _, _ in self.wanted if name not in settled]
