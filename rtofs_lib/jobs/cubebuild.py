"""``rtofs cube build``: fill the cube from archive days, one Spark task per day.

The driver lists the days' prog files (:func:`rtofs_lib.fetch.catalog.day_files`), keeps those
the cube lacks or holds an older version of (:func:`rtofs_lib.cube.store.missing`: a rerun
repeats nothing, a file NOAA replaced is written again), makes the layout and every new cycle
in one commit, then each task appends its day's files in order
(:func:`rtofs_lib.cube.store.append`, one commit per file; the commits of different days
serialise on the cube's lock and rebase onto each other without conflict: a day's files
share its ``source`` chunk, so one writer per day) and writes the day's series-chunked copy
(:func:`rtofs_lib.cube.store.finish_day`).

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> tmp = tempfile.mkdtemp()
>>> _ = sample.write_sample(tmp + "/archive", "20260708", steps="n024,f001", grid="12x12")
>>> r = build("20260708", "20260708", archive=tmp + "/archive", cube=tmp + "/cube",
...           master="serial")
>>> len(r.appended), r.failed, r.days
(2, [], ['20260708'])
>>> len(build("20260708", "20260708", archive=tmp + "/archive", cube=tmp + "/cube",
...           master="serial").appended)  # a rerun repeats nothing
0
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from rtofs_lib import config
from rtofs_lib.cube import store
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import catalog, names
from rtofs_lib.status import ExitStatus, RunStatus

__all__ = ["BuildReport", "build"]

SERIAL = "serial"


@dataclass
class BuildReport:
    """What a backfill did."""

    days: list[str]
    appended: list[str] = field(default_factory=list)
    #: ``(file, error)`` of the files that could not be appended.
    failed: list[tuple[str, str]] = field(default_factory=list)
    up_to_date: int = 0
    seconds: float = 0.0

    @property
    def exit_status(self) -> ExitStatus:
        """0 when every file is in the cube, 3 when some failed, 1 when all failed."""
        done = len(self.appended) + self.up_to_date
        return RunStatus.of(done=done, failed=len(self.failed)).exit_status

    def summary(self) -> str:
        """A short paragraph for the end of a build."""
        lines = [
            f"{len(self.days)} days: {len(self.appended)} files appended, {self.up_to_date} "
            f"already in the cube, {len(self.failed)} failed in {self.seconds:.1f} s"
        ]
        lines += [f"  failed: {p}: {e}" for p, e in self.failed]
        return "\n".join(lines)


def _days(start: str | dt.date, end: str | dt.date, archive: Path) -> list[dt.date]:
    lo, hi = names.parse_date(start), names.parse_date(end)
    if hi < lo:
        raise RtofsError(f"--from {lo:%Y%m%d} is after --to {hi:%Y%m%d}; swap them")
    days = [d for d in catalog.list_days(archive) if lo <= d <= hi]
    if not days:
        raise RtofsError(
            f"{archive}: no rtofs.YYYYMMDD folders from {lo:%Y%m%d} to {hi:%Y%m%d}; fetch "
            "them with `rtofs crawl` first"
        )
    return days


def _append_one(path: str, cube: str, fields: tuple[str, ...]) -> tuple[str, str | None]:
    try:
        store.append(path, cube, fields)
    except Exception as e:  # a bad file must not stop the others
        return path, f"{type(e).__name__}: {e}"
    return path, None


def _day_task(args: tuple[str, list[str], str, tuple[str, ...]]) -> list[tuple[str, str | None]]:
    """Append one day's files in order, then write its series copy."""
    day, paths, cube, fields = args
    out = [_append_one(p, cube, fields) for p in paths]
    try:
        store.finish_day(cube, day)
    except Exception as e:  # the map-chunked arrays still answer for the day
        out.append((f"{cube} series {day}", f"{type(e).__name__}: {e}"))
    return out


def _add_cycles(cube: Path, days: list[dt.date]) -> None:
    import zarr

    def work(session) -> bool | None:
        root = zarr.open_group(session.store, mode="r+")
        new = [d for d in days if store.cycle_index(root, d) is None]
        for d in new:
            store.cycle_index(root, d, add=True)
        return True if new else None

    store.transact(cube, "add cycles", work)


def build(
    start: str | dt.date,
    end: str | dt.date,
    *,
    archive: str | Path | None = None,
    cube: str | Path | None = None,
    fields: str | None = None,
    master: str | None = None,
    settings: config.Settings | None = None,
) -> BuildReport:
    """Append every archive file of the cycle days ``start``..``end`` the cube lacks.

    ``master`` is a Spark master URL or ``"serial"`` (this process); default the
    configured one.

    Raises
    ------
    RtofsError
        When the archive holds no day in the range.
    """
    t0 = time.perf_counter()
    s = settings or config.load()
    archive = Path(archive or s.archive).expanduser()
    cube = Path(cube or s.cube).expanduser()
    chosen = tuple(f.strip() for f in (fields or s.fields).split(",") if f.strip())
    days = _days(start, end, archive)
    files = [p for d in days for p in catalog.day_files(archive, d)]
    todo = [str(p) for p in store.missing(files, cube)]
    report = BuildReport(days=[f"{d:%Y%m%d}" for d in days], up_to_date=len(files) - len(todo))
    results = []
    if todo:
        results.append(_append_one(todo[0], str(cube), chosen))  # makes the layout
        if results[0][1] is None:
            _add_cycles(cube, days)  # one resize, so the tasks' commits never conflict
    by_day: dict[str, list[str]] = {f"{d:%Y%m%d}": [] for d in days}
    for p in todo[1:]:
        by_day[Path(p).parent.name[len(names.DAY_PREFIX) :]].append(p)
    tasks = [(day, paths, str(cube), chosen) for day, paths in by_day.items()]
    # nothing to append: the days' series copies are checked here (no Spark for that)
    results += _run(tasks, (master or s.spark_master) if todo[1:] else SERIAL, s)
    report.appended = [p for p, e in results if e is None and p in todo]
    report.failed = [(p, e) for p, e in results if e is not None]
    report.seconds = time.perf_counter() - t0
    return report


def _run(tasks: list, master: str, s: config.Settings) -> list[tuple[str, str | None]]:
    if master == SERIAL:
        return [r for t in tasks for r in _day_task(t)]
    from pyspark import SparkContext

    from rtofs_lib.jobs import spark as sparkmod

    created = SparkContext._active_spark_context is None
    session = sparkmod.session(master, app_name="rtofs-cube-build", settings=s)
    try:
        sc = session.sparkContext
        return sc.parallelize(tasks, len(tasks)).flatMap(_day_task).collect()
    finally:
        if created:
            session.stop()
