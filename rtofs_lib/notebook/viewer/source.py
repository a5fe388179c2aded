"""Where the viewer's data comes from: files, decoded fields, grids, depths, stored maps.

:class:`FieldSource` lists a day's files by step, keeps decoded fields in memory (bounded in
bytes, :class:`_FieldCache`) and reads the next steps ahead in a worker *process* that hands
each array back through shared memory (a ``.npy`` in ``/dev/shm``, mapped without a copy).
It also finds the grid of a file, the depth levels of a 3-D file, the value of one grid
point, and the pre-rendered PNG of ``rtofs run`` that matches a view.

The raw reads (the HDF5 lock, field and point reads, the shape-keyed grid) are grouped at the
end of this module, under "Raw reads".

Examples
--------
>>> import tempfile
>>> src = FieldSource(tempfile.mkdtemp(), tempfile.mkdtemp(), tempfile.mkdtemp(), cache_mb=64)
>>> src.files("20260708", "prog")
{}
>>> src.close()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtofs_lib.fetch import catalog, names
from rtofs_lib.fields import netcdf
from rtofs_lib.fields.grid import Grid
from rtofs_lib.maps import render
from rtofs_lib.maps.styles import FIELDS, FieldStyle

__all__ = ["FieldSource", "day_steps"]


def day_steps(archive: str | Path, date: str | dt.date, product: str = "prog") -> dict[str, Path]:
    """Step → file of ``product`` on ``date`` in the archive, in slider order, listed now
    (``f000`` left out when ``n024``, valid at the same time, is there)."""
    found: dict[str, Path] = {}
    for p in catalog.day_files(archive, date, product):
        found.setdefault(names.parse_name(p.name).step, p)
    if "n024" in found:
        found.pop("f000", None)
    return found


@dataclass(frozen=True)
class _Field:
    values: np.ndarray  # float32 (ny-1, nx), NaN on land; read-only
    valid_time: dt.datetime | None
    step: str
    depth: float | None

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


class _FieldCache:
    """Decoded fields by (path, mtime, field, depth), bounded in bytes, with read-ahead.

    Read-ahead runs in a worker *process*: netCDF-C/HDF5 is not thread-safe, and a
    background thread reading while notebook code reads a file in the main thread can
    crash the kernel. ``get`` waits for a read already under way instead of reading twice.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._done: OrderedDict[tuple, _Field] = OrderedDict()
        self._pending: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _executor(self) -> ProcessPoolExecutor:
        return _reader_process()

    def _store(self, key: tuple, value: _Field) -> None:
        if value.values.flags.writeable:
            value.values.setflags(write=False)
        with self._lock:
            self._done[key] = value
            self._done.move_to_end(key)
            total = sum(f.nbytes for f in self._done.values())
            while total > self.max_bytes and len(self._done) > 1:
                _, old = self._done.popitem(last=False)
                total -= old.nbytes

    def peek(self, key: tuple) -> _Field | None:
        with self._lock:
            return self._done.get(key)

    def get(self, key: tuple, load: Callable[[], _Field]) -> _Field:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.hits += 1
                return self._done[key]
            pending = self._pending.get(key)
        if pending is not None:
            with contextlib.suppress(Exception):  # a failed read-ahead is read again here
                pending.result()
            for _ in range(1000):  # the done-callback stores it right after
                with self._lock:
                    value = self._done.get(key)
                    if value is not None or key not in self._pending:
                        break
                time.sleep(0.001)
            if value is not None:
                self.hits += 1
                return value
        self.misses += 1
        value = load()
        self._store(key, value)
        return value

    def prefetch(self, key: tuple, args: tuple) -> None:
        """Read ``_read_values(*args)`` in the worker process, unless known."""
        with self._lock:
            if key in self._done or key in self._pending:
                return
            future = self._executor().submit(_read_to_shared_memory, *args)
            self._pending[key] = future

        def finished(f: Future) -> None:
            with self._lock:
                self._pending.pop(key, None)
            if not f.cancelled() and f.exception() is None:
                self._store(key, _from_shared_memory(*f.result()))

        future.add_done_callback(finished)

    def wait(self) -> None:
        """Block until every read-ahead has finished."""
        while True:
            with self._lock:
                pending = list(self._pending.values())
            if not pending:
                return
            for f in pending:
                with contextlib.suppress(Exception):
                    f.result()
            time.sleep(0.001)  # let the done-callbacks run

    def clear(self) -> None:
        self.wait()
        with self._lock:
            self._done.clear()

    def close(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for f in pending:
            f.cancel()


def _shared_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def _read_to_shared_memory(path: Path, field: str, depth: float | None) -> tuple:
    """In the worker: read a field into a ``.npy`` in shared memory (no 59 MB pickle)."""
    f = _read_values(path, field, depth)
    fd, name = tempfile.mkstemp(prefix="rtofs-viewer-", suffix=".npy", dir=_shared_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            np.save(out, f.values)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return name, f.valid_time, f.step, f.depth


def _from_shared_memory(name: str, valid_time, step: str, depth) -> _Field:
    """In the viewer: map the worker's array (read-only, no copy) and drop its name."""
    try:
        values = np.load(name, mmap_mode="r")
    finally:
        Path(name).unlink(missing_ok=True)  # the mapping keeps the pages until released
    return _Field(values, valid_time, step, depth)


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _reader_process() -> ProcessPoolExecutor:
    """The read-ahead worker process shared by the viewers of this kernel (started once)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or getattr(_POOL, "_broken", False):
            import multiprocessing

            # spawn: a fork of a kernel with running threads may inherit held locks
            _POOL = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


class FieldSource:
    """The data behind one viewer: a day's files, decoded fields, grids and stored maps.

    Parameters
    ----------
    archive
        Archive root holding ``rtofs.YYYYMMDD/``.
    maps
        Maps folder of ``rtofs run`` (pre-rendered maps).
    cache_dir
        Grid-index cache.
    cache_mb
        Memory for decoded fields (a full-size field is 59 MB).
    cube
        The cube: a surface field of a file it holds is read from it (quicker than the
        netCDF); None: always the files.

    Attributes
    ----------
    cache
        The decoded fields (``hits`` and ``misses`` count the lookups).
    """

    def __init__(
        self,
        archive: str | Path,
        maps: str | Path,
        cache_dir: str | Path,
        *,
        cache_mb: int,
        cube: str | Path | None = None,
    ) -> None:
        self.cube = Path(cube) if cube is not None else None
        self.archive = Path(archive)
        self.maps = Path(maps)
        self.cache_dir = Path(cache_dir)
        self.cache = _FieldCache(int(cache_mb) * 1024 * 1024)
        self._files: dict[tuple[str, str], dict[str, Path]] = {}

    def days(self) -> list[str]:
        """Cycle days of the archive, ``YYYYMMDD``, oldest first."""
        return [f"{d:%Y%m%d}" for d in catalog.list_days(self.archive)]

    def files(self, date: str, product: str) -> dict[str, Path]:
        """Step → file of ``product`` on ``date``, in slider order (listed once per day)."""
        key = (date, product)
        if key not in self._files:
            self._files[key] = day_steps(self.archive, date, product)
        return self._files[key]

    def key(self, path: Path, field: str, depth: float | None) -> tuple:
        """The cache key of a field: the file (and its mtime), the field and the depth."""
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        return (str(path), mtime, field, depth)

    def field(self, path: Path, field: str, depth: float | None) -> _Field:
        """The decoded field (from memory, a read-ahead under way, or read now)."""
        return self.cache.get(self.key(path, field, depth), lambda: self._read(path, field, depth))

    def _read(self, path: Path, field: str, depth: float | None) -> _Field:
        if self.cube is not None and depth is None:
            from rtofs_lib.cube.query import file_map

            values = file_map(path, field, self.cube)
            if values is not None:
                n = names.parse_name(str(path))
                return _Field(values, names.valid_time(n.date, n.step), n.step, None)
        return _read_values(path, field, depth)

    def prefetch(self, paths: Iterable[Path], field: str, depth: float | None) -> None:
        """Read these files' ``field`` in the background (those not in memory already)."""
        for path in paths:
            self.cache.prefetch(self.key(path, field, depth), (path, field, depth))

    def point(
        self, path: Path, field: str, depth: float | None, j: int, i: int
    ) -> tuple[float, float | None]:
        """The value at grid row ``j``, column ``i``, and the level's depth when known.

        From the decoded field when it is in memory, else read directly (depth None).
        """
        cached = self.cache.peek(self.key(path, field, depth))
        if cached is not None:
            return float(cached.values[j, i]), cached.depth
        return netcdf.read_point(path, field, j, i, depth=depth), None

    def depths(self, path: Path) -> list[float]:
        """Depth levels of a 3-D file, metres ([] for a surface file)."""
        return netcdf.depths(path)

    def grid(self, path: Path) -> Grid:
        """The grid of ``path``, its indices shared with the rendering job's cache."""
        return Grid.of_file(path, self.cache_dir)

    def prerendered(
        self,
        path: Path,
        style: FieldStyle,
        *,
        day: str,
        size: str,
        box: tuple[float, float, float, float] | None,
        depth: float | None,
    ) -> Path | None:
        """The stored PNG of ``rtofs run`` showing this view, if there is one."""
        base = FIELDS[style.name]
        if (style.cmap, style.vmin, style.vmax) != (base.cmap, base.vmin, base.vmax):
            return None
        if depth is not None:  # the file name carries the level's depth
            depth = self.field(path, style.name, depth).depth
        png = render.output_path(
            self.maps / names.day_folder(day), path, style.name, size, box, depth
        )
        return png if png.is_file() else None

    def clear(self) -> None:
        """Forget the decoded fields (after a read-ahead has finished)."""
        self.cache.clear()

    def wait(self) -> None:
        """Wait for the background reads."""
        self.cache.wait()

    def close(self) -> None:
        """Cancel the read-ahead not yet started."""
        self.cache.close()


def _read_values(path: Path, field: str, depth: float | None) -> _Field:
    """Read a field (derived ones included) as float32 with NaN on land."""
    f = netcdf.read_field(path, field, depth=depth, grid=False)
    return _Field(f.values, f.valid_time, f.step, f.depth)
