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
...              cache_dir=tmp + "/cache", sizes=["low"], cube=tmp + "/cube")
>>> str(report.status), [str(r.status) for r in report.results]
('complete', ['rendered', 'rendered'])
>>> run("20260708", archive=tmp + "/archive", maps=tmp + "/maps", master="serial",
...     cache_dir=tmp + "/cache", sizes=["low"], cube=tmp + "/cube").exit_status  # nothing again
<ExitStatus.OK: 0>
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtofs_lib import config
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.jobs.work import (
    NO_SPACE_ERRNOS,
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
        """Files that failed (or found the maps disk full), each with its error."""
        return self._with(FileStatus.FAILED) + self._with(FileStatus.NO_SPACE)

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


def _run_serial(tasks: Sequence[Task], sink: Sink) -> list[FileResult]:
    out = []
    for t in tasks:
        r = render_one(t)
        out.append(r)
        sink([r])
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


Sink = Callable[[list[FileResult]], None]


class _ProgressWatch:
    """Hands files to ``sink`` as Spark tasks finish (an accumulator polled on the driver).

    Each file is handed over once, by path, even when a lost task ran again.
    """

    #: Seconds between two looks at the accumulator (it is updated as each task ends).
    POLL = 0.2

    def __init__(self, done, sink: Sink) -> None:
        self.done, self.sink = done, sink
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="rtofs-progress", daemon=True)

    def report(self, results: Iterable[FileResult]) -> None:
        new = [r for r in results if r.path not in self.seen]
        self.seen.update(r.path for r in new)
        if new:
            self.sink(new)

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL):
            self.report(list(self.done.value))

    def __enter__(self) -> _ProgressWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_spark(
    spark: SparkSession, tasks: Sequence[Task], sink: Sink
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
    with _ProgressWatch(done, sink) as watch:
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
    cube: str | Path | None = None,
) -> RunReport:
    """Render the maps of one day, several days or every day in the archive.

    This is the stream's run-once mode (:mod:`rtofs_lib.jobs.stream`): the days' landed
    records (written for files that have none) go through one Structured Streaming query
    with ``Trigger.AvailableNow`` and the stream's batch handler; ``master="serial"`` hands
    the same records to the same handler in this process, without Spark.

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
    cube
        The cube each file is appended to (default: the ``cube`` setting).
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
    from rtofs_lib.fetch import landed

    t0 = time.perf_counter()
    s = settings or config.load()
    archive = Path(archive or s.archive).expanduser()
    days = _dates_for(date, dates, archive)
    job = Job(
        archive=archive,
        maps=Path(maps or s.maps).expanduser(),
        cache=Path(cache_dir or s.cache).expanduser(),
        fields=_field_list(fields, s),
        sizes=tuple(sizes),
        stats_field=stats_field,
        dashboard=dashboard,
        progress=progress,
        force=force,
        **cube_options(s, cube),
    )
    records = job.register(days)
    use_spark = spark is not None or (master or s.spark_master) != SERIAL
    if use_spark and job.has_work(records):
        from rtofs_lib.jobs import stream

        report = _with_session(
            spark,
            master,
            s,
            lambda session: stream.run_available(session, job, landed.day_glob(archive, days)),
        )
    else:
        report = job.handle(records, None)
        if use_spark:
            report.master = master or (spark.sparkContext.master if spark else s.spark_master)
    report.dates = days
    report.seconds = time.perf_counter() - t0
    return report


def cube_options(s: config.Settings, cube: str | Path | None = None) -> dict[str, Any]:
    """The cube a job appends to and the steps that complete a day, from the settings."""
    return {
        "cube": Path(cube or s.cube).expanduser(),
        "cube_steps": names.expand_steps(s.steps, "prog"),
    }


def _field_list(fields: Sequence[str] | str | None, s: config.Settings) -> tuple[str, ...]:
    if isinstance(fields, str) or fields is None:
        fields = [f.strip() for f in (fields or s.fields).split(",") if f.strip()]
    return tuple(fields)


@dataclass
class Job:
    """The batch handler of the stream and of ``rtofs run``: landed records in, maps out.

    :meth:`handle` takes one batch of landed records: one task per file (the newest record
    of a path wins; files whose maps are newer than the file are skipped unless
    ``force``), renders them on Spark or serially, publishes each file into its day's
    ``index.json`` as soon as its task ends, then writes the touched days' statistics
    and ``maps/index.html``.
    """

    archive: Path
    maps: Path
    cache: Path
    fields: tuple[str, ...]
    sizes: tuple[str, ...] = SIZES
    stats_field: str | None = "sst"
    dashboard: bool = True
    progress: Progress | None = None
    force: bool = False
    #: What a batch does with files the full maps disk refused: ``report`` them as
    #: failed (``rtofs run``), ``raise`` (a checkpointed run-once: the batch is not
    #: committed) or ``wait`` for space and render them again (the live stream).
    on_no_space: str = "report"
    #: Set to stop waiting for space (the stream is shutting down).
    stop: threading.Event = field(default_factory=threading.Event)
    #: The analysis-ready cube each processed file is appended to (None: no cube).
    cube: Path | None = None
    #: Steps that make a day complete (its series-chunked copy is then written).
    cube_steps: tuple[str, ...] = ()
    #: The ``index.json`` files the batch in progress has written.
    _published: set[Path] = field(default_factory=set, init=False, repr=False)
    #: Files whose append to the cube failed: tried again with the next batch.
    _cube_pending: set[str] = field(default_factory=set, init=False, repr=False)
    #: Day maps folders whose finished files this process has checked against the cube.
    _cube_checked: set[str] = field(default_factory=set, init=False, repr=False)

    def register(self, days: Sequence[str]) -> list:
        """Write the missing landed records of ``days`` and return the days' records."""
        from rtofs_lib.fetch import catalog, landed

        for day in days:
            if not catalog.day_files(self.archive, day) and len(days) == 1:
                raise RtofsError(
                    f"{catalog.day_dir(self.archive, day)}: no prog files for {day}; fetch "
                    f"them with `rtofs crawl --date {day}` or make a sample with "
                    f"`rtofs sample --date {day}`"
                )
            landed.ensure_records(self.archive, day)
        records = landed.read_records(self.archive, list(days))
        if not records:
            raise RtofsError(f"{self.archive}: no prog files for {', '.join(days)}")
        return records

    def tasks_for(self, records: Iterable) -> tuple[list[Task], dict[str, str]]:
        """One task per present prog file of ``records``, and each file's landed time."""
        latest: dict[str, Any] = {}
        for r in sorted(records, key=lambda r: r.landed):
            latest[r.path] = r
        tasks, when = [], {}
        for r in latest.values():
            path = self.archive / r.path
            try:
                if names.parse_name(r.name).product != "prog" or not path.is_file():
                    continue
            except names.NotRtofsNameError:
                continue
            tasks.append(
                Task(str(path), str(day_maps(self.maps, r.date)), self.fields, self.sizes,
                     str(self.cache), self.stats_field)
            )  # fmt: skip
            when[r.name] = r.landed
        order = {s: i for i, s in enumerate(names.steps_for("prog"))}
        tasks.sort(
            key=lambda t: (t.day_maps, order.get(names.parse_name(Path(t.path).name).step, 0))
        )
        return tasks, when

    def has_work(self, records: Iterable) -> bool:
        """True when some file of ``records`` needs rendering or its day needs a listing."""
        tasks, _ = self.tasks_for(records)
        if self.force or any(not is_done(t) for t in tasks):
            return True
        if not self.dashboard:
            return False
        listed = all((Path(t.day_maps) / "index.json").exists() for t in tasks)
        return not listed or not (self.maps / "index.html").exists()

    def handle(self, records: Iterable, session: SparkSession | None) -> RunReport:
        """Process one batch of landed records (on Spark when ``session`` is given)."""
        t0 = time.perf_counter()
        tasks, when = self.tasks_for(records)
        todo = tasks if self.force else [t for t in tasks if not is_done(t)]
        done = [t for t in tasks if t not in todo]
        skipped = [FileResult(t.path, FileStatus.SKIPPED, stats=saved_stats(t)) for t in done]
        counter = _Counter(len(tasks), self.progress)
        self._published = set()
        self._publish(_unlisted(skipped, self.maps), when)
        counter(skipped)
        self._to_cube(self._not_in_cube(tasks, skipped))
        results, retried = self._render(todo, session, when, counter)
        self._finish_cube_days(tasks)
        report = RunReport(
            dates=sorted({Path(t.day_maps).name[len(names.DAY_PREFIX) :] for t in tasks}),
            master=session.sparkContext.master if session is not None else SERIAL,
            maps=self.maps,
            results=_in_order(tasks, skipped + results),
            retried=retried,
        )
        report.outputs = self._until_written(lambda: self._finish_days(tasks, todo))
        report.seconds = time.perf_counter() - t0
        return report

    def _render(
        self,
        todo: list[Task],
        session: SparkSession | None,
        when: dict[str, str],
        counter: Callable[[list[FileResult]], None],
    ) -> tuple[list[FileResult], int]:
        """Render ``todo``; files refused by a full disk are handled per ``on_no_space``."""

        def sink(rs: list[FileResult]) -> None:
            self._publish(rs, when)
            counter(rs)
            self._to_cube([r.path for r in rs if r.status == FileStatus.RENDERED])

        results: list[FileResult] = []
        retried, wait = 0, 1.0
        while todo:
            self.cache.mkdir(parents=True, exist_ok=True)
            for d in {t.day_maps for t in todo}:
                Path(d).mkdir(parents=True, exist_ok=True)
            prepare_from_any(todo, sizes=self.sizes, cache_dir=self.cache)
            if session is not None:
                got, lost = _run_spark(session, todo, sink)
                retried += lost
            else:
                got = _run_serial(todo, sink)
            full = [r for r in got if r.status == FileStatus.NO_SPACE]
            results += [r for r in got if r.status != FileStatus.NO_SPACE]
            if not full or self.on_no_space == "report":
                return results + full, retried
            wait = self._wait_for_space(f"{full[0].error} ({len(full)} files)", wait)
            failed_paths = {r.path for r in full}
            todo = [t for t in todo if t.path in failed_paths]
        return results, retried

    def _wait_for_space(self, error: str, wait: float) -> float:
        """Wait ``wait`` seconds for a full maps disk (or raise, per ``on_no_space``)."""
        if self.on_no_space != "wait" or self.stop.is_set():
            raise RtofsError(error)
        log.error("%s; waiting %.0f s for space", error, wait)
        if self.stop.wait(wait):
            raise RtofsError(error)
        return min(wait * 2, 30.0)

    def _until_written(self, write: Callable[[], Any]) -> Any:
        """Run ``write``; while the maps disk is full, wait for space and run it again."""
        wait = 1.0
        while True:
            try:
                return write()
            except OSError as e:
                if e.errno not in NO_SPACE_ERRNOS:
                    raise
                msg = f"{self.maps}: no space left for the dashboard ({e.strerror}); free space"
                wait = self._wait_for_space(msg, wait)

    def _not_in_cube(self, tasks: Sequence[Task], skipped: list[FileResult]) -> list[str]:
        """The finished files the cube lacks (an append that failed before): those skipped,
        and, the first time this process sees a day, every finished file of the day (a stream
        restarted after failed appends never sees their records again)."""
        if self.cube is None or not tasks:
            return []
        from rtofs_lib.cube import store
        from rtofs_lib.fetch import catalog

        paths = {r.path for r in skipped}
        for t in tasks:
            if t.day_maps in self._cube_checked:
                continue
            self._cube_checked.add(t.day_maps)
            date = names.parse_day_folder(Path(t.day_maps).name)
            day = [replace(t, path=str(p)) for p in catalog.day_files(self.archive, date)]
            paths.update(d.path for d in day if is_done(d))
        return [str(p) for p in store.missing(sorted(paths), self.cube)] if paths else []

    def _to_cube(self, paths: list[str]) -> None:
        """Append ``paths`` (and those that failed before) to the cube, after publication.

        A failed append is logged and tried again with the next batch (and by the next run,
        which finds the file finished but missing from the cube): the maps stay published.
        """
        if self.cube is None:
            return
        from rtofs_lib.cube import store

        for path in dict.fromkeys([*sorted(self._cube_pending), *paths]):
            try:
                store.append(path, self.cube, self.fields)
                self._cube_pending.discard(path)
            except Exception as e:  # the maps are out; the cube catches up on the next batch
                log.error("%s: not appended to the cube %s (%s); tried again next batch or run",
                          path, self.cube, e)  # fmt: skip
                self._cube_pending.add(path)

    def _finish_cube_days(self, tasks: Sequence[Task]) -> None:
        """Write the series-chunked copy of each touched day that is now complete."""
        if self.cube is None or not tasks or not self.cube_steps:
            return
        from rtofs_lib.cube import store

        for day in sorted({Path(t.day_maps).name for t in tasks}):
            try:
                store.finish_day(self.cube, names.parse_day_folder(day), self.cube_steps)
            except Exception as e:  # the map-chunked arrays still answer; retried next batch
                log.error("%s: series copy of %s not written (%s)", self.cube, day, e)

    def _publish(self, results: list[FileResult], when: dict[str, str]) -> None:
        """Write each day's ``index.json`` with ``results`` in it."""
        if not self.dashboard or not results:
            return
        from rtofs_lib.jobs import dashboard as dash

        by_day: dict[str, list[FileResult]] = {}
        for r in results:
            by_day.setdefault(Path(r.path).parent.name, []).append(r)
        for folder, rs in by_day.items():
            date = names.parse_day_folder(folder)
            new_day = not (self.maps / folder / dash.DAY_INDEX).exists()
            self._published.add(
                self._until_written(
                    lambda date=date, rs=rs: dash.write_day_index(self.maps, date, rs, landed=when)
                )
            )
            if new_day:  # the live page learns of a new day from days.json
                self._until_written(lambda: dash.write_days(self.maps))

    def _finish_days(self, tasks: Sequence[Task], todo: Sequence[Task]) -> list[Path]:
        """Write each touched day's statistics table (all its files), then ``index.html``."""
        from rtofs_lib.fetch import catalog
        from rtofs_lib.jobs import dashboard as dash
        from rtofs_lib.jobs import stats

        written: list[Path] = []
        changed = {t.day_maps for t in todo}
        for day_dir in sorted({t.day_maps for t in tasks}):
            day = Path(day_dir)
            target = day / stats.STATS_NAME
            if not self.stats_field or (day_dir not in changed and target.exists()):
                continue
            date = names.parse_day_folder(day.name)
            rows = [
                row
                for f in catalog.day_files(self.archive, date)
                for row in saved_stats(
                    Task(str(f), day_dir, self.fields, self.sizes, None, self.stats_field)
                )
            ]
            if rows:
                # a few small rows: written here with pyarrow (a Spark write costs a job)
                written.append(stats.write_parquet(rows, target))
        if self.dashboard and tasks:
            written += sorted(self._published)
            if self._published or not (self.maps / dash.INDEX_HTML).exists():
                written.append(dash.write_index(self.maps))
        return written


def _unlisted(results: list[FileResult], maps: Path) -> list[FileResult]:
    """The results whose step is not yet in its day's ``index.json``."""
    from rtofs_lib.jobs import dashboard as dash

    listed: dict[str, set[str]] = {}
    out = []
    for r in results:
        folder = Path(r.path).parent.name
        if folder not in listed:
            listed[folder] = dash.listed_stems(maps / folder / dash.DAY_INDEX)
        if Path(r.path).stem not in listed[folder]:
            out.append(r)
    return out


class _Counter:
    """Numbers results for ``progress(result, n_done, n_total)``."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress, self.n = total, progress, 0

    def __call__(self, results: list[FileResult]) -> None:
        for r in results:
            self.n += 1
            if self.progress:
                self.progress(r, self.n, self.total)


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


def results_as_dicts(report: RunReport) -> list[dict[str, Any]]:
    """Return the report's per-file results as plain dicts (for JSON output)."""
    return [asdict(r) for r in report.results]
