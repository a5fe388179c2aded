"""The live pipeline: a Spark Structured Streaming query over the archive's landed records.

The crawler writes one small JSON record per file it lands (:mod:`rtofs_lib.fetch.landed`).
The stream reads them with Spark's file source (``ARCHIVE/landed/``, each record once) and
hands each micro-batch to the rendering job's batch handler (:class:`rtofs_lib.jobs.pipeline.Job`):
one Spark task per file renders its maps and statistics; each file is published into its
day's ``index.json`` as soon as its task ends; the batch ends with the day's statistics
table and ``maps/index.html``. All writes are atomic.

The query is checkpointed (``--checkpoint``): Spark commits a batch only after the handler
returns, so a driver killed mid-batch runs that batch again on restart (its files that
were already rendered are skipped, being newer than their maps) and no record is missed
or taken twice. A file NOAA replaces lands with a new record and is rendered again. A
full maps disk holds the batch until space is back (nothing half-written stays behind).

``rtofs run`` is the run-once mode (``Trigger.AvailableNow``, :func:`run_available`):
batch and live share the handler and the query.

Examples
--------
>>> from rtofs_lib.jobs.stream import parse_trigger
>>> parse_trigger("2s"), parse_trigger("0.5")
(2.0, 0.5)
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtofs_lib import config
from rtofs_lib.errors import ConfigError, RtofsError
from rtofs_lib.fetch import landed
from rtofs_lib.jobs.pipeline import SERIAL, Job, Progress, RunReport, cube_options
from rtofs_lib.status import ExitStatus

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

#: Schema of a landed record (:class:`rtofs_lib.fetch.landed.Landed`) for Spark's reader.
RECORD_SCHEMA = (
    "name STRING, date STRING, path STRING, size LONG, sha256 STRING, landed STRING, mtime_ns LONG"
)
#: Name of the query in the Spark UI.
QUERY_NAME = "rtofs-stream"


def parse_trigger(text: str | float, source: str = "--trigger") -> float:
    """Return the trigger interval in seconds from ``2``, ``2s``, ``0.5`` or ``1m``.

    Raises
    ------
    ConfigError
        For anything else, or an interval of zero or less; names ``source``.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m)?\s*", str(text))
    seconds = float(m.group(1)) * (60 if m.group(2) == "m" else 1) if m else 0.0
    if seconds <= 0:
        raise ConfigError(f"{source}: bad interval {text!r}; write seconds, e.g. 1, 2s or 0.5")
    return seconds


def _records(df: DataFrame) -> list[landed.Landed]:
    """The batch's records, on the driver (a few hundred small rows at most)."""
    out = []
    for row in df.collect():
        d = row.asDict()
        if d.get("path") and d.get("name") and d.get("landed"):
            out.append(landed.Landed(**d))
        else:
            log.warning("ignoring a landed record without path/name/landed: %s", d)
    return out


def start_query(
    session: SparkSession,
    source: str,
    checkpoint: str | Path,
    handle: Callable[[list[landed.Landed], int], None],
    *,
    trigger: float | None = None,
) -> StreamingQuery:
    """Start the query: landed records under ``source`` → ``handle(records, batch_id)``.

    ``trigger`` seconds between micro-batches; None means ``Trigger.AvailableNow`` (what
    is there now, then stop).
    """
    reader = session.readStream.schema(RECORD_SCHEMA).option("mode", "DROPMALFORMED")
    writer = (
        reader.json(source)
        .writeStream.queryName(QUERY_NAME)
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(lambda df, batch_id: handle(_records(df), batch_id))
    )
    if trigger is None:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger} seconds")
    return writer.start()


def run_available(
    session: SparkSession, job: Job, source: str, checkpoint: str | Path | None = None
) -> RunReport:
    """Process every record under ``source`` not yet in ``checkpoint``, then return.

    With no ``checkpoint`` a temporary one is used: every record is offered again and the
    handler skips files whose maps are current (``rtofs run``'s behaviour).
    """
    reports: list[RunReport] = []
    scratch = None
    if checkpoint is None:
        scratch = tempfile.mkdtemp(prefix="rtofs-run-checkpoint-")
        checkpoint = scratch
    try:
        query = start_query(
            session, source, checkpoint, lambda recs, _: reports.append(job.handle(recs, session))
        )
        query.awaitTermination()
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return _merge(reports, session.sparkContext.master, job)


def _merge(reports: list[RunReport], master: str, job: Job) -> RunReport:
    out = RunReport(dates=[], master=master, maps=job.maps, results=[])
    seen: dict[str, int] = {}
    for r in reports:
        out.retried += r.retried
        out.outputs += [p for p in r.outputs if p not in out.outputs]
        for res in r.results:  # a file in two batches (replaced meanwhile): the last word
            if res.path in seen:
                out.results[seen[res.path]] = res
            else:
                seen[res.path] = len(out.results)
                out.results.append(res)
        out.dates = sorted({*out.dates, *r.dates})
    return out


@dataclass
class StreamReport:
    """What a stream did until it stopped: every batch's report."""

    batches: list[RunReport] = field(default_factory=list)
    error: str | None = None

    @property
    def exit_status(self) -> ExitStatus:
        """0 unless the query failed (1)."""
        return ExitStatus.FAILED if self.error else ExitStatus.OK


def stream(  # noqa: PLR0913 - keyword options, one per `rtofs stream` flag
    *,
    archive: str | Path | None = None,
    maps: str | Path | None = None,
    master: str | None = None,
    checkpoint: str | Path | None = None,
    trigger: float | str | None = None,
    once: bool = False,
    fields: str | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    on_batch: Callable[[int, RunReport], None] | None = None,
    on_start: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    settings: config.Settings | None = None,
    spark_conf: dict[str, Any] | None = None,
) -> StreamReport:
    """Run the live pipeline until ``stop`` is set (or, with ``once``, until caught up).

    Parameters
    ----------
    archive, maps, cache_dir, checkpoint
        Folders (defaults from :mod:`rtofs_lib.config`; ``checkpoint`` is
        ``stream_checkpoint``).
    master
        Spark master URL or ``local[N]`` (default the configured master).
    trigger
        Seconds between micro-batches (default ``stream_trigger``).
    once
        Process every record not yet processed, then return (``Trigger.AvailableNow``).
    fields
        Fields to draw (default the configured ``fields``).
    progress
        Called as ``progress(result, n_done, n_batch)`` as files finish.
    on_batch
        Called as ``on_batch(batch_id, report)`` after each batch.
    on_start
        Called once the query runs (files landing from then on are taken live).
    stop
        Set it (e.g. from a signal handler) to stop the stream after the current batch.
    settings
        Platform settings (default :func:`rtofs_lib.config.load`).
    spark_conf
        Further Spark properties.

    Returns
    -------
    StreamReport
        Every batch's report; ``error`` when the query failed.
    """
    from rtofs_lib.jobs import spark as sparkmod

    s = settings or config.load()
    if (master or s.spark_master) == SERIAL:
        raise ConfigError("rtofs stream runs on Spark: give --master local[N] or spark://HOST:PORT")
    archive = Path(archive or s.archive).expanduser()
    stop = stop or threading.Event()
    job = Job(
        archive=archive,
        maps=Path(maps or s.maps).expanduser(),
        cache=Path(cache_dir or s.cache).expanduser(),
        fields=tuple(f.strip() for f in (fields or s.fields).split(",") if f.strip()),
        progress=progress,
        on_no_space="raise" if once else "wait",
        stop=stop,
        **cube_options(s),
    )
    seconds = parse_trigger(trigger if trigger is not None else s.stream_trigger)
    checkpoint = Path(checkpoint or s.stream_checkpoint).expanduser()
    checkpoint.mkdir(parents=True, exist_ok=True)
    if not _records_folder(archive, stop):
        return StreamReport()
    report = StreamReport()

    busy = threading.Event()

    def handle(records: list[landed.Landed], batch_id: int) -> None:
        if stop.is_set():  # not committed: the next start takes this batch again
            raise RtofsError(f"batch {batch_id} not started: the stream is stopping")
        busy.set()
        try:
            _handle(records, batch_id)
        finally:
            busy.clear()

    def _handle(records: list[landed.Landed], batch_id: int) -> None:
        t0 = time.perf_counter()
        log.info(
            "batch %d: %d landed records: %s",
            batch_id,
            len(records),
            " ".join(r.name for r in records),
        )
        r = job.handle(records, session)
        report.batches.append(r)
        log.info("batch %d done in %.1f s: %s", batch_id, time.perf_counter() - t0, r.summary())
        if on_batch:
            on_batch(batch_id, r)

    session = sparkmod.session(master, app_name="rtofs-stream", settings=s, **(spark_conf or {}))
    query = start_query(
        session,
        str(landed.landed_dir(archive).resolve()),
        checkpoint,
        handle,
        trigger=None if once else seconds,
    )
    log.info("watching %s (checkpoint %s)", landed.landed_dir(archive), checkpoint)
    if on_start:
        on_start()
    try:
        while query.isActive and not stop.is_set():
            query.awaitTermination(0.5)
    finally:
        _finish_batch(busy, stop)
        if query.isActive:
            query.stop()
        exc = None if stop.is_set() else query.exception()
        if exc is not None:
            report.error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.error("the stream stopped: %s", exc)
        session.stop()
    return report


def _records_folder(archive: Path, stop: threading.Event) -> bool:
    """Make sure ``ARCHIVE/landed`` exists (Spark's file source needs it); False if stopped.

    The stream's account may not own the archive: then it waits for the crawler to make it.
    """
    folder = landed.landed_dir(archive)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except PermissionError:
        log.warning("%s: cannot create it; waiting for the crawler's first file", folder)
    while not stop.wait(5.0):
        if folder.is_dir():
            return True
    return False


def _finish_batch(busy: threading.Event, stop: threading.Event, timeout: float = 300.0) -> None:
    """On a stop, let the batch in progress finish (so its files are not rendered twice)."""
    if not stop.is_set():
        return
    deadline = time.monotonic() + timeout
    while busy.is_set() and time.monotonic() < deadline:
        time.sleep(0.1)


__all__ = ["QUERY_NAME", "RECORD_SCHEMA", "StreamReport", "parse_trigger", "run_available",
           "start_query", "stream"]  # fmt: skip
