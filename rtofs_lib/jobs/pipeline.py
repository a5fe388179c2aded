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
>>> report = run("20260708", archive="~/rtofs/archive", maps="~/rtofs/maps")  # doctest: +SKIP
>>> report.exit_status, len(report.rendered)  # doctest: +SKIP
(0, 26)
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtofs_lib import config
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: ``master`` value that runs the job in this process, without Spark.
SERIAL = "serial"
#: Map sizes the job writes for each field.
SIZES = ("low", "high")
#: Per-file statistics kept beside the maps (so a rerun can rebuild the day's table).
STATS_FILE = "stats.json"

EXIT_OK, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 3


@dataclass(frozen=True)
class Task:
    """What one task needs: the file and where its maps go."""

    path: str
    day_maps: str
    fields: tuple[str, ...]
    sizes: tuple[str, ...]
    cache_dir: str | None
    stats_field: str | None = "sst"


@dataclass
class FileResult:
    """The small record a task sends back to the driver.

    Attributes
    ----------
    path
        The source file.
    status
        ``rendered``, ``skipped`` (maps already newer than the file) or ``failed``.
    outputs
        Written maps, relative to the day's maps folder.
    stats
        Region-statistics rows of the file.
    error
        ``ErrorType: message`` of a failed file.
    seconds
        Time the task spent on the file.
    host, pid
        Where the task ran.
    """

    path: str
    status: str
    outputs: list[str] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    host: str = ""
    pid: int = 0

    @property
    def name(self) -> str:
        """The file's base name."""
        return Path(self.path).name

    @property
    def stem(self) -> str:
        """The file's name without ``.nc`` (the folder its maps go to)."""
        return Path(self.path).stem

    def line(self) -> str:
        """One line for progress output."""
        if self.status == "failed":
            return f"FAILED   {self.name}: {self.error}"
        return f"{self.status:<8} {self.name} ({self.seconds:.1f} s)"


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

    def _with(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def rendered(self) -> list[FileResult]:
        """Files rendered by this run."""
        return self._with("rendered")

    @property
    def skipped(self) -> list[FileResult]:
        """Files whose maps were already up to date."""
        return self._with("skipped")

    @property
    def failed(self) -> list[FileResult]:
        """Files that failed, each with its error."""
        return self._with("failed")

    @property
    def exit_status(self) -> int:
        """0 when every file is done, 3 when some failed, 1 when all failed."""
        if not self.failed:
            return EXIT_OK
        return EXIT_FAILED if len(self.failed) == len(self.results) else EXIT_PARTIAL

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


# --- discovery and skipping ----------------------------------------------------------------------


def day_maps(maps: str | Path, date: str | dt.date) -> Path:
    """Return the day's maps folder ``maps/rtofs.YYYYMMDD``."""
    return Path(maps) / names.day_folder(date)


def expected_outputs(task: Task) -> list[Path]:
    """Return the files a task writes (the maps, then the statistics file)."""
    folder = Path(task.day_maps) / Path(task.path).stem
    out = [folder / f"{f}.{s}.png" for f in task.fields for s in task.sizes]
    if task.stats_field:
        out.append(folder / STATS_FILE)
    return out


def is_done(task: Task) -> bool:
    """True when every output of the task exists and is newer than its source file."""
    try:
        source = Path(task.path).stat().st_mtime
    except FileNotFoundError:
        return False
    for p in expected_outputs(task):
        try:
            if p.stat().st_mtime < source:
                return False
        except FileNotFoundError:
            return False
    return True


def _read_stats(task: Task) -> list[dict[str, Any]]:
    if not task.stats_field:
        return []
    p = Path(task.day_maps) / Path(task.path).stem / STATS_FILE
    try:
        return list(json.loads(p.read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return []


# --- the per-file task (runs on executors) -------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def render_one(task: Task) -> FileResult:
    """Render one file's maps and compute its region statistics; never raises.

    Errors of the file (unreadable, truncated, missing field) come back in the
    result; everything else about the task (a lost worker) is Spark's to retry.
    """
    from rtofs_lib.jobs import stats
    from rtofs_lib.maps import render
    from rtofs_lib.maps.styles import FieldStyle

    t0 = time.perf_counter()
    day = Path(task.day_maps)
    result = FileResult(
        path=task.path, status="rendered", host=socket.gethostname(), pid=os.getpid()
    )
    rows: list[list[dict[str, Any]]] = []

    def keep_stats(style: FieldStyle, data: Any, values: Any) -> None:
        # the statistics field drawn as a map: compute its rows from the array just read
        if task.stats_field and not rows and style.variables == (task.stats_field,):
            rows.append(stats.values_rows(task.path, task.stats_field, values, data.valid_time))

    try:
        written = render.render_file(
            task.path,
            day,
            fields=task.fields,
            sizes=task.sizes,
            cache_dir=task.cache_dir,
            on_values=keep_stats,
        )
        result.outputs = [str(Path(p).relative_to(day)) for p in written]
        if task.stats_field:
            # a statistics field that is not drawn is read on its own
            result.stats = rows[0] if rows else stats.file_rows(task.path, task.stats_field)
            folder = day / Path(task.path).stem
            _write_json(folder / STATS_FILE, {"source": task.path, "rows": result.stats})
            result.outputs.append(str((folder / STATS_FILE).relative_to(day)))
    except (ImportError, MemoryError):
        raise  # the worker's environment, not the file: let Spark retry elsewhere
    except Exception as e:  # a bad file must not stop the others
        result.status = "failed"
        result.error = f"{type(e).__name__}: {e}"
        log.debug("failed on %s\n%s", task.path, traceback.format_exc())
    result.seconds = time.perf_counter() - t0
    return result


def prepare_grid(
    path: str | Path, *, sizes: Sequence[str] = SIZES, cache_dir: str | Path | None
) -> None:
    """Build the grid index of ``path``'s grid for the global ``sizes`` into ``cache_dir``.

    Run once on the driver before the job: the executors then only load the cached
    index (once per Python worker) instead of each building it. When the cache already
    holds the indices (known from the grid signature, see :func:`rtofs_lib.maps.render.prepare`)
    the driver reads neither the grid nor the indices.
    """
    from rtofs_lib.maps import render

    render.prepare(path, sizes=sizes, cache_dir=cache_dir, load=False)


def _prepare_any(tasks: Sequence[Task], *, sizes: Sequence[str], cache_dir: Path) -> None:
    """Prepare the grid from the first readable file (bad files are the tasks' to report)."""
    for t in tasks:
        try:
            prepare_grid(t.path, sizes=sizes, cache_dir=cache_dir)
            return
        except (RtofsError, OSError, KeyError, IndexError, ValueError) as e:
            # unreadable, truncated or not an RTOFS file (netCDF4 errors, missing grid)
            log.info("cannot take the grid from %s: %s", t.path, e)


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


def _run_spark(
    spark: SparkSession, tasks: Sequence[Task], progress: Progress | None
) -> tuple[list[FileResult], int]:
    from pyspark.accumulators import AccumulatorParam

    class _Names(AccumulatorParam):
        def zero(self, value):
            return []

        def addInPlace(self, a, b):
            a.extend(b)
            return a

    sc = spark.sparkContext
    done = sc.accumulator([], _Names())

    def task_fn(t: Task) -> FileResult:
        r = render_one(t)
        done.add([r])
        _freeze_worker_heap()
        return r

    stop = threading.Event()
    seen: set[str] = set()

    def report() -> None:
        for r in list(done.value):
            if r.path not in seen:
                seen.add(r.path)
                if progress:
                    progress(r, len(seen), len(tasks))

    def poll() -> None:
        while not stop.wait(0.5):
            report()

    watcher = threading.Thread(target=poll, name="rtofs-progress", daemon=True)
    watcher.start()
    sc.setJobGroup(JOB_GROUP, f"rtofs: render {len(tasks)} files")
    tracker = sc.statusTracker()
    before = set(tracker.getJobIdsForGroup(JOB_GROUP))
    try:
        results = sc.parallelize(list(tasks), len(tasks)).map(task_fn).collect()
    except KeyboardInterrupt:
        sc.cancelJobGroup(JOB_GROUP)
        raise
    finally:
        stop.set()
        watcher.join()
    # Results not yet reported by the poller (retried tasks report once, by path).
    for r in results:
        if r.path not in seen:
            seen.add(r.path)
            if progress:
                progress(r, len(seen), len(tasks))
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


def run(
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
    from rtofs_lib.fetch import catalog

    t0 = time.perf_counter()
    s = settings or config.load()
    archive = Path(archive or s.archive).expanduser()
    maps = Path(maps or s.maps).expanduser()
    cache = Path(cache_dir or s.cache).expanduser()
    if isinstance(fields, str) or fields is None:
        fields = [f.strip() for f in (fields or s.fields).split(",") if f.strip()]
    fields = tuple(fields)
    days = _dates_for(date, dates, archive)

    tasks: list[Task] = []
    for day in days:
        files = catalog.day_files(archive, day)
        if not files and len(days) == 1:
            raise RtofsError(
                f"{catalog.day_dir(archive, day)}: no prog files for {day}; fetch them with "
                f"`rtofs crawl --date {day}` or make a sample with `rtofs sample --date {day}`"
            )
        out = day_maps(maps, day)
        tasks += [
            Task(str(p), str(out), fields, tuple(sizes), str(cache), stats_field) for p in files
        ]
    if not tasks:
        raise RtofsError(f"{archive}: no prog files for {', '.join(days)}")

    todo = tasks if force else [t for t in tasks if not is_done(t)]
    skipped = [
        FileResult(path=t.path, status="skipped", stats=_read_stats(t))
        for t in tasks
        if t not in todo
    ]
    for i, r in enumerate(skipped, 1):
        if progress:
            progress(r, i, len(tasks))

    use_spark = spark is not None or (master or s.spark_master) != SERIAL

    def shifted(r: FileResult, i: int, n: int) -> None:
        if progress:
            progress(r, len(skipped) + i, len(tasks))

    def execute(session: SparkSession | None) -> RunReport:
        results: list[FileResult] = []
        retried = 0
        if todo:
            cache.mkdir(parents=True, exist_ok=True)
            for d in {t.day_maps for t in todo}:
                Path(d).mkdir(parents=True, exist_ok=True)
            _prepare_any(todo, sizes=sizes, cache_dir=cache)
            if session is not None:
                results, retried = _run_spark(session, todo, shifted)
            else:
                results = _run_serial(todo, shifted)
        label = session.sparkContext.master if session is not None else SERIAL
        report = RunReport(
            dates=days,
            master=label,
            maps=maps,
            results=_in_order(tasks, skipped + results),
            retried=retried,
        )
        report.outputs = _finish_days(report, tasks, todo, spark=session, dashboard=dashboard)
        return report

    if use_spark and todo:
        report = _with_session(spark, master, s, execute)
    else:
        report = execute(None)
        if use_spark:
            report.master = master or (spark.sparkContext.master if spark else s.spark_master)
    report.seconds = time.perf_counter() - t0
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
        rows = [row for r in results if r.status != "failed" for row in r.stats]
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
