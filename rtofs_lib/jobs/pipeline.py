"""The rendering job: discover a day's files, skip finished ones, render the rest in parallel.

One task per file (``sc.parallelize(paths, len(paths))``): each task renders its maps
straight into ``maps/rtofs.YYYYMMDD/<stem>/<field>.<size>.png`` (atomically), computes the
region statistics of the file and returns only a small :class:`FileResult` to the
driver. The grid index is built once on the driver into the cache folder before the
job; each executor's Python worker loads it once and keeps it (workers are reused).
A file that fails is reported with its error while the others complete.

The same code runs without Spark (``master="serial"``) for baselines and small machines.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> tmp = tempfile.mkdtemp()
>>> _ = sample.write_sample(tmp + "/archive", "20260708", steps="f001,f002", grid="24x24")
>>> report = run("20260708", archive=tmp + "/archive", maps=tmp + "/maps", master="serial",
...              cache_dir=tmp + "/cache", sizes=["low"])
>>> str(report.status), [str(r.status) for r in report.results]
('complete', ['rendered', 'rendered'])
>>> run("20260708", archive=tmp + "/archive", maps=tmp + "/maps", master="serial",
...     cache_dir=tmp + "/cache", sizes=["low"]).exit_status  # a rerun repeats nothing
<ExitStatus.OK: 0>
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtofs_lib import config
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.jobs.work import (
    SIZES,
    FileResult,
    FileStatus,
    Task,
    day_maps,
    is_done,
    prepare_from_any,
    render_one,
    saved_stats,
)
from rtofs_lib.status import ExitStatus, RunStatus

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: ``master`` value that runs the job in this process, without Spark.
SERIAL = "serial"


@dataclass
class RunReport:
    """What a run did, per file, and its exit status."""

    dates: list[str]
    master: str
    maps: Path
    results: list[FileResult]
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    #: Task attempts Spark lost and ran again (a worker died, say).
    retried: int = 0

    def _with(self, status: FileStatus) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def rendered(self) -> list[FileResult]:
        """Files rendered by this run."""
        return self._with(FileStatus.RENDERED)

    @property
    def skipped(self) -> list[FileResult]:
        """Files whose maps were already up to date."""
        return self._with(FileStatus.SKIPPED)

    @property
    def failed(self) -> list[FileResult]:
        """Files that failed, each with its error."""
        return self._with(FileStatus.FAILED)

    @property
    def status(self) -> RunStatus:
        """``complete`` when every file is done, ``partial`` or ``failed`` (all failed)."""
        return RunStatus.of(done=len(self.results) - len(self.failed), failed=len(self.failed))

    @property
    def exit_status(self) -> ExitStatus:
        """0 when every file is done, 3 when some failed, 1 when all failed."""
        return self.status.exit_status

    def summary(self) -> str:
        """A short paragraph for the end of a run."""
        lines = [
            f"{len(self.results)} files on {self.master}: {len(self.rendered)} rendered, "
            f"{len(self.skipped)} up to date, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s; maps in {self.maps}"
        ]
        if self.retried:
            lines.append(f"  {self.retried} task attempts were lost and run again")
        lines += [f"  failed: {r.name}: {r.error}" for r in self.failed]
        return "\n".join(lines)


# --- running -------------------------------------------------------------------------------------

Progress = Callable[[FileResult, int, int], None]


def _run_serial(tasks: Sequence[Task], progress: Progress | None) -> list[FileResult]:
    out = []
    for i, t in enumerate(tasks, 1):
        r = render_one(t)
        out.append(r)
        if progress:
            progress(r, i, len(tasks))
    return out


#: Spark job group of the rendering job (for the status tracker and cancelling).
JOB_GROUP = "rtofs-render"


_HEAP_FROZEN = False


def _freeze_worker_heap() -> None:
    """Exclude a Spark Python worker's long-lived objects from garbage collection, once.

    PySpark's daemon runs a full ``gc.collect()`` after every task of a reused worker. After
    the first task the worker holds the imported libraries and the grid indices: hundreds
    of thousands of objects that every collection walks again (~60–90 ms a task, measured
    with py-spy). Collect once, then ``gc.freeze()`` them into the permanent generation so
    later collections see only what each task leaves behind.
    """
    global _HEAP_FROZEN
    if not _HEAP_FROZEN:
        gc.collect()
        gc.freeze()
        _HEAP_FROZEN = True


class _ProgressWatch:
    """Reports files as Spark tasks finish (from an accumulator polled on the driver).

    Each file is reported once, by path, even when a lost task ran again.
    """

    def __init__(self, done, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.progress = done, total, progress
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="rtofs-progress", daemon=True)

    def report(self, results: Iterable[FileResult]) -> None:
        for r in results:
            if r.path not in self.seen:
                self.seen.add(r.path)
                if self.progress:
                    self.progress(r, len(self.seen), self.total)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.report(list(self.done.value))

    def __enter__(self) -> _ProgressWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_spark(
    spark: SparkSession, tasks: Sequence[Task], progress: Progress | None
) -> tuple[list[FileResult], int]:
    from pyspark.accumulators import AccumulatorParam

    class _Results(AccumulatorParam):
        def zero(self, value):
            return []

        def addInPlace(self, a, b):
            a.extend(b)
            return a

    sc = spark.sparkContext
    done = sc.accumulator([], _Results())

    def task_fn(t: Task) -> FileResult:
        r = render_one(t)
        done.add([r])
        _freeze_worker_heap()
        return r

    sc.setJobGroup(JOB_GROUP, f"rtofs: render {len(tasks)} files")
    tracker = sc.statusTracker()
    before = set(tracker.getJobIdsForGroup(JOB_GROUP))
    with _ProgressWatch(done, len(tasks), progress) as watch:
        try:
            results = sc.parallelize(list(tasks), len(tasks)).map(task_fn).collect()
        except KeyboardInterrupt:
            sc.cancelJobGroup(JOB_GROUP)
            raise
    watch.report(results)  # those the poller had not seen yet
    jobs = set(tracker.getJobIdsForGroup(JOB_GROUP)) - before
    return results, _failed_attempts(tracker, jobs)


def _failed_attempts(tracker, job_ids: Iterable[int]) -> int:
    failed = 0
    for jid in job_ids:
        job = tracker.getJobInfo(jid)
        for sid in job.stageIds if job else ():
            stage = tracker.getStageInfo(sid)
            failed += stage.numFailedTasks if stage else 0
    return failed


def _dates_for(
    date: str | dt.date | None, dates: Iterable[str | dt.date] | None, archive: Path
) -> list[str]:
    from rtofs_lib.fetch import catalog

    if date is not None and dates is not None:
        raise RtofsError("give either date= or dates=, not both")
    if date is not None:
        return [names.parse_date(date).strftime("%Y%m%d")]
    if dates is not None:
        return [names.parse_date(d).strftime("%Y%m%d") for d in dates]
    days = catalog.list_days(archive)
    if not days:
        raise RtofsError(
            f"{archive}: no rtofs.YYYYMMDD folders; fetch data with `rtofs crawl` "
            "or make a sample with `rtofs sample`"
        )
    return [d.strftime("%Y%m%d") for d in days]


def run(  # noqa: PLR0913 - keyword options, one per `rtofs run` flag
    date: str | dt.date | None = None,
    *,
    dates: Iterable[str | dt.date] | None = None,
    archive: str | Path | None = None,
    maps: str | Path | None = None,
    fields: Sequence[str] | str | None = None,
    master: str | None = None,
    force: bool = False,
    spark: SparkSession | None = None,
    cache_dir: str | Path | None = None,
    sizes: Sequence[str] = SIZES,
    stats_field: str | None = "sst",
    progress: Progress | None = None,
    dashboard: bool = True,
    settings: config.Settings | None = None,
) -> RunReport:
    """Render the maps of one day, several days or every day in the archive.

    Parameters
    ----------
    date, dates
        One day (``"20260708"``) or several; neither means every day in the archive.
    archive, maps, cache_dir
        Folders (default from :mod:`rtofs_lib.config`).
    fields
        Fields to draw (``"sst,sss"`` or a list; default the configured ``fields``).
    master
        Spark master URL, or ``"serial"`` to run in this process without Spark;
        default the configured master. Ignored when ``spark`` is given.
    force
        Render files whose maps are already newer than the file.
    spark
        A running SparkSession to use (e.g. a notebook's); it is left running.
    sizes
        Map sizes to write.
    stats_field
        Field of the region statistics (None: no statistics).
    progress
        Called as ``progress(result, n_done, n_total)`` as files finish.
    dashboard
        Write ``index.json`` per day and ``maps/index.html`` afterwards.
    settings
        Platform settings (default :func:`rtofs_lib.config.load`).

    Returns
    -------
    RunReport
        Per-file results; ``exit_status`` is 0, 3 (partial) or 1 (all failed).

    Raises
    ------
    RtofsError
        When there is nothing to do: no day folder or no files of the day.
    """
    t0 = time.perf_counter()
    s = settings or config.load()
    archive = Path(archive or s.archive).expanduser()
    if isinstance(fields, str) or fields is None:
        fields = [f.strip() for f in (fields or s.fields).split(",") if f.strip()]
    job = _Job(
        maps=Path(maps or s.maps).expanduser(),
        cache=Path(cache_dir or s.cache).expanduser(),
        sizes=tuple(sizes),
        dashboard=dashboard,
        progress=progress,
    )
    job.plan(_dates_for(date, dates, archive), archive, tuple(fields), stats_field, force)
    use_spark = spark is not None or (master or s.spark_master) != SERIAL
    if use_spark and job.todo:
        report = _with_session(spark, master, s, job.execute)
    else:
        report = job.execute(None)
        if use_spark:
            report.master = master or (spark.sparkContext.master if spark else s.spark_master)
    report.seconds = time.perf_counter() - t0
    return report


@dataclass
class _Job:
    """One run's tasks, what is already done, and how to report progress."""

    maps: Path
    cache: Path
    sizes: tuple[str, ...]
    dashboard: bool
    progress: Progress | None
    days: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    todo: list[Task] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)

    def plan(
        self,
        days: list[str],
        archive: Path,
        fields: tuple[str, ...],
        stats_field: str | None,
        force: bool,
    ) -> None:
        """One task per prog file of ``days``; those whose maps are current are skipped."""
        from rtofs_lib.fetch import catalog

        self.days = days
        for day in days:
            files = catalog.day_files(archive, day)
            if not files and len(days) == 1:
                raise RtofsError(
                    f"{catalog.day_dir(archive, day)}: no prog files for {day}; fetch them with "
                    f"`rtofs crawl --date {day}` or make a sample with `rtofs sample --date {day}`"
                )
            out, cache = str(day_maps(self.maps, day)), str(self.cache)
            self.tasks += [Task(str(p), out, fields, self.sizes, cache, stats_field) for p in files]
        if not self.tasks:
            raise RtofsError(f"{archive}: no prog files for {', '.join(days)}")
        self.todo = self.tasks if force else [t for t in self.tasks if not is_done(t)]
        done = [t for t in self.tasks if t not in self.todo]
        self.skipped = [FileResult(t.path, FileStatus.SKIPPED, stats=saved_stats(t)) for t in done]
        for i, r in enumerate(self.skipped, 1):
            if self.progress:
                self.progress(r, i, len(self.tasks))

    def _shifted(self, r: FileResult, i: int, n: int) -> None:
        if self.progress:
            self.progress(r, len(self.skipped) + i, len(self.tasks))

    def execute(self, session: SparkSession | None) -> RunReport:
        """Render the files to do (on Spark when ``session`` is given), then finish the days."""
        results: list[FileResult] = []
        retried = 0
        if self.todo:
            self.cache.mkdir(parents=True, exist_ok=True)
            for d in {t.day_maps for t in self.todo}:
                Path(d).mkdir(parents=True, exist_ok=True)
            prepare_from_any(self.todo, sizes=self.sizes, cache_dir=self.cache)
            if session is not None:
                results, retried = _run_spark(session, self.todo, self._shifted)
            else:
                results = _run_serial(self.todo, self._shifted)
        report = RunReport(
            dates=self.days,
            master=session.sparkContext.master if session is not None else SERIAL,
            maps=self.maps,
            results=_in_order(self.tasks, self.skipped + results),
            retried=retried,
        )
        report.outputs = _finish_days(
            report, self.tasks, self.todo, spark=session, dashboard=self.dashboard
        )
        return report


def _with_session(
    spark: SparkSession | None,
    master: str | None,
    s: config.Settings,
    job: Callable[[SparkSession], RunReport],
) -> RunReport:
    if spark is not None:
        return job(spark)
    from pyspark import SparkContext

    from rtofs_lib.jobs import spark as sparkmod

    created = SparkContext._active_spark_context is None
    session = sparkmod.session(master, app_name="rtofs-render", settings=s)
    try:
        return job(session)
    finally:
        if created:
            session.stop()


def _in_order(tasks: Sequence[Task], results: Iterable[FileResult]) -> list[FileResult]:
    by_path = {r.path: r for r in results}
    return [by_path[t.path] for t in tasks if t.path in by_path]


def _finish_days(
    report: RunReport,
    tasks: Sequence[Task],
    todo: Sequence[Task],
    *,
    spark: SparkSession | None,
    dashboard: bool,
) -> list[Path]:
    """Write each touched day's statistics table and index.json, then maps/index.html."""
    from rtofs_lib.jobs import dashboard as dash
    from rtofs_lib.jobs import stats

    written: list[Path] = []
    changed = {t.day_maps for t in todo}
    by_day: dict[str, list[FileResult]] = {}
    for t, r in zip(tasks, report.results, strict=True):
        by_day.setdefault(t.day_maps, []).append(r)
    for day_dir, results in by_day.items():
        day = Path(day_dir)
        date = names.parse_day_folder(day.name)
        rows = [row for r in results if r.status != FileStatus.FAILED for row in r.stats]
        target = day / stats.STATS_NAME
        if rows and (day_dir in changed or not target.exists()):
            # a few small rows: written here with pyarrow (a Spark write costs a job)
            written.append(stats.write_parquet(rows, target))
        if dashboard and (day_dir in changed or not (day / dash.DAY_INDEX).exists()):
            written.append(dash.write_day_index(report.maps, date, results))
    if dashboard and (changed or not (report.maps / dash.INDEX_HTML).exists()):
        written.append(dash.write_index(report.maps))
    return written


def results_as_dicts(report: RunReport) -> list[dict[str, Any]]:
    """Return the report's per-file results as plain dicts (for JSON output)."""
    return [asdict(r) for r in report.results]
