"""The per-file work of a rendering run: one task renders one file's maps and statistics.

A :class:`Task` is what an executor needs (plain strings, cheap to ship); :func:`render_one`
does the work and never raises for a bad file: its :class:`FileResult` says what happened.
Outputs are written atomically; a task whose outputs are all newer than its file is done
(:func:`is_done`), so a rerun repeats no finished work.
"""

from __future__ import annotations

import datetime as dt
import enum
import errno
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtofs_lib import atomic
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names

log = logging.getLogger(__name__)

#: Map sizes the job writes for each field.
SIZES = ("low", "high")
#: Per-file statistics kept beside the maps (so a rerun can rebuild the day's table).
STATS_FILE = "stats.json"


class FileStatus(enum.StrEnum):
    """What a run did with one file."""

    RENDERED = "rendered"
    #: Its maps were already newer than the file.
    SKIPPED = "skipped"
    FAILED = "failed"
    #: The maps disk was full: nothing of the file was kept; it is tried again later.
    NO_SPACE = "no-space"


#: ``errno`` values that mean the output's file system is full, not that the file is bad.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


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
    status: FileStatus
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
        if self.status in (FileStatus.FAILED, FileStatus.NO_SPACE):
            return f"{self.status.upper():<8} {self.name}: {self.error}"
        return f"{self.status:<8} {self.name} ({self.seconds:.1f} s)"


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


def saved_stats(task: Task) -> list[dict[str, Any]]:
    """The statistics rows a finished task saved beside its maps ([] when none)."""
    if not task.stats_field:
        return []
    p = Path(task.day_maps) / Path(task.path).stem / STATS_FILE
    try:
        return list(json.loads(p.read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return []


# --- the per-file task (runs on executors) -------------------------------------------------------


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
        path=task.path, status=FileStatus.RENDERED, host=socket.gethostname(), pid=os.getpid()
    )
    rows: list[list[dict[str, Any]]] = []

    def keep_stats(style: FieldStyle, data: Any, values: Any) -> None:
        # the statistics field drawn as a map: compute its rows from the array just read
        if task.stats_field and not rows and style.name == task.stats_field:
            rows.append(
                stats.values_rows(
                    task.path, task.stats_field, values, data.valid_time, cache_dir=task.cache_dir
                )
            )

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
            result.stats = (
                rows[0]
                if rows
                else stats.file_rows(task.path, task.stats_field, cache_dir=task.cache_dir)
            )
            folder = day / Path(task.path).stem
            atomic.write_json(folder / STATS_FILE, {"source": task.path, "rows": result.stats})
            result.outputs.append(str((folder / STATS_FILE).relative_to(day)))
    except (ImportError, MemoryError):
        raise  # the worker's environment, not the file: let Spark retry elsewhere
    except OSError as e:
        if e.errno not in NO_SPACE_ERRNOS:
            result.status, result.error = FileStatus.FAILED, f"{type(e).__name__}: {e}"
        else:  # the maps disk, not the file: atomic writes left nothing half-written
            result.status = FileStatus.NO_SPACE
            result.error = (
                f"{day}: no space left for the maps of {Path(task.path).name} ({e.strerror}); "
                "free space on the maps file system: the file is rendered again then"
            )
    except Exception as e:  # a bad file must not stop the others
        result.status = FileStatus.FAILED
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


def prepare_from_any(tasks: Sequence[Task], *, sizes: Sequence[str], cache_dir: Path) -> None:
    """Prepare the grid from the first readable file (bad files are the tasks' to report)."""
    for t in tasks:
        try:
            prepare_grid(t.path, sizes=sizes, cache_dir=cache_dir)
            return
        except (RtofsError, OSError, KeyError, IndexError, ValueError) as e:
            # unreadable, truncated or not an RTOFS file (netCDF4 errors, missing grid)
            log.info("cannot take the grid from %s: %s", t.path, e)
