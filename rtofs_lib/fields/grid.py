"""The model grid: coordinates, one content key, and the indices built from it, kept once.

A :class:`Grid` is a light handle on one grid (2-D ``lat``/``lon`` as stored, fold row
dropped): its **content key** (:func:`~rtofs_lib.fields.regrid.grid_key`, a hash of the
coordinates) names everything derived from it, in memory and in the shared cache folder:

* ``grid-<key>.tree``: the k-d tree of the grid points (built once, ~1 min at full size);
* ``index-<key>-<raster key>.index``: a :class:`RasterIndex` per lon/lat raster;
* ``gridsig-<digest>.txt``: the key of a file's grid by a cheap signature (4 coordinate
  chunks), so a fresh process knows its grid without reading the coordinates.

Everything heavy (coordinates, trees, indices, region selections) lives in ONE bounded LRU
per process (:data:`MEMORY`); :func:`clear_memory` forgets it (a fresh process in tests).
Cache files are written atomically and honour the umask; a cache the process cannot write
(a researcher on the job's cache, a full disk) is logged and the result kept in memory.

**Checked on load.** Trees and indices are checked cache files
(:mod:`rtofs_lib.fields.cachefile`): each carries the name it was built for (``grid-<key>``,
``index-<key>-<raster key>``) and a SHA-256 of that name and its arrays. :meth:`Grid.index`
and the tree load check both; a file that fails (another format or key, truncated, content
not matching its digest, arrays not of the expected shape) is logged as a warning naming the
file and what did not match, never used, rebuilt from the coordinates and rewritten
atomically (kept in memory when the cache is read-only). :meth:`Grid.has_index` checks only
the header (format, key, size, array shape: no read of the index), so a file whose content
was altered is reported present and caught by :meth:`Grid.index`. A ``gridsig`` note holds
the key and a check of signature + key: a damaged note, an older one, or one copied from
another file's note (which would point the file at another grid's key, whose indices would
pass their own checks and draw wrong maps) is ignored with a warning, the key computed from
the coordinates and the note rewritten (when the cache is writable).

What the checks do not protect against: the digests have no secret, so someone who may
write the cache folder and reads this code can forge consistent files (an index, or a note
naming another grid). They catch damage, stale formats, files under the wrong name and naive
tampering. The protection against a malicious writer is that only the service account may
write the cache folder and researchers only read it (issue 14; set by the Ansible roles).

Examples
--------
>>> import numpy as np
>>> from rtofs_lib.fields.regrid import Raster
>>> lat, lon = np.meshgrid(np.linspace(-60, 60, 25), np.linspace(0, 350, 36), indexing="ij")
>>> grid = Grid(lat.astype(np.float32), lon.astype(np.float32))
>>> index = grid.index(Raster.global_(72, lat0=-60, lat1=60))
>>> index.index.shape, grid.index(Raster.global_(72, lat0=-60, lat1=60)) is index
((24, 72), True)
>>> grid.cell_at(index, x=0, y=12)  # the pixel at 180°W on the equator
(11, 18)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtofs_lib import atomic
from rtofs_lib.errors import CacheFileError
from rtofs_lib.fields import cachefile, regrid
from rtofs_lib.fields.regrid import Raster

log = logging.getLogger(__name__)

__all__ = ["LRU", "MEMORY", "Grid", "RasterIndex", "clear_memory"]


class LRU:
    """A thread-safe least-recently-used store bounded by bytes and by entries."""

    def __init__(self, max_bytes: int, max_entries: int = 4096) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self.lock = threading.RLock()

    def get(self, key: Hashable) -> Any | None:
        with self.lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any, nbytes: int = 0) -> Any:
        with self.lock:
            old = self._items.pop(key, None)
            self._bytes -= old[1] if old else 0
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while len(self._items) > 1 and (
                self._bytes > self.max_bytes or len(self._items) > self.max_entries
            ):
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size
            return value

    def clear(self) -> None:
        with self.lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


#: The one per-process store of grid work: coordinates, trees, raster indices, selections.
#: 1.5 GB holds a full-size tree (~600 MB), its coordinates and dozens of indices.
MEMORY = LRU(max_bytes=1536 << 20)


_BUILD_LOCKS: dict[Hashable, threading.Lock] = {}


@contextlib.contextmanager
def _building(memo: Hashable) -> Iterator[None]:
    """Held while ``memo`` is looked up and, if missing, loaded or built: a second thread
    asking for it waits for the first; threads after other things do not."""
    with MEMORY.lock:
        lock = _BUILD_LOCKS.setdefault(memo, threading.Lock())
    with lock:
        yield


def clear_memory() -> None:
    """Forget every grid, tree and index kept in this process (cache files stay)."""
    MEMORY.clear()


@dataclass(frozen=True, eq=False)
class RasterIndex:
    """For each pixel of ``raster``, the flat index of its grid cell (-1: no grid point)."""

    raster: Raster
    index: np.ndarray  # int32 (height, width), read-only
    nodata: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.index.setflags(write=False)
        object.__setattr__(self, "nodata", np.nonzero(self.index < 0))

    @property
    def nbytes(self) -> int:
        return self.index.nbytes + sum(a.nbytes for a in self.nodata)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Gather grid ``values`` onto the raster: NaN where there is no grid point."""
        return regrid.apply(values, self.index)


def _signature(path: Path) -> tuple[tuple, tuple[int, int]]:
    """A cheap identity of a file's grid (its shape and 4 coordinate chunks), and the shape
    of its grid as read (fold row dropped on the global grid)."""
    from rtofs_lib.fields.netcdf import _inspect, open_dataset

    with open_dataset(path) as nc:
        info = _inspect(path, nc, None)
        sig: list = [nc.variables["Latitude"].shape]
        for name in ("Latitude", "Longitude"):
            var = nc.variables[name]
            var.set_auto_maskandscale(False)
            sig.append(np.asarray(var[0, :4]).tobytes())
            sig.append(np.asarray(var[-2, -4:]).tobytes())
    return tuple(sig), (info.rows, info.nx)


def _cache_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write a cache file atomically; a cache we cannot write is logged, not fatal."""
    try:
        with atomic.atomic_open(path, "wb", fsync=False) as f:
            write(f)
    except OSError as e:
        log.warning("%s: not cached (%s); results stay in this process's memory", path, e)


class Grid:
    """One model grid: lazily loaded coordinates, its content key, its indices.

    Parameters
    ----------
    lat, lon
        2-D coordinates (fold row dropped), any longitude convention. Omit them with
        ``key``, ``shape`` and ``load`` to defer reading until first needed.
    key
        The grid's content key when known (skips hashing the coordinates).
    cache_dir
        Folder of the shared caches; None keeps everything in memory only.
    """

    def __init__(
        self,
        lat: np.ndarray | None = None,
        lon: np.ndarray | None = None,
        *,
        key: str | None = None,
        shape: tuple[int, int] | None = None,
        load: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if lat is not None and lon is not None:
            lat, lon = regrid.check_grid(lat, lon)
            key = key or regrid.grid_key(lat, lon)
            shape = lat.shape
            MEMORY.put(("coords", key), (lat, lon), lat.nbytes + lon.nbytes)
            load = lambda: (lat, lon)  # noqa: E731 - the arrays stay with this handle
        elif key is None or shape is None or load is None:
            raise ValueError("give lat and lon, or key, shape and load")
        self.key: str = key
        self.shape: tuple[int, int] = tuple(shape)  # type: ignore[assignment]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._load: Callable[[], tuple[np.ndarray, np.ndarray]] = load

    def __repr__(self) -> str:
        return f"Grid(key={self.key!r}, shape={self.shape}, cache_dir={self.cache_dir})"

    # --- coordinates ----------------------------------------------------------------------

    @classmethod
    def of_file(cls, path: str | Path, cache_dir: str | Path | None = None) -> Grid:
        """The grid of an RTOFS file, known by its signature without reading coordinates.

        The key is found by the file's grid signature (a few coordinate chunks): in memory,
        else in a ``gridsig-*.txt`` note in ``cache_dir`` (used only when its check of
        signature + key matches), else by hashing the coordinates once (and writing the note
        for later processes).
        """
        from rtofs_lib.fields import netcdf

        path = Path(path)
        st = path.stat()
        memo = ("file", str(path), st.st_mtime_ns, st.st_size)
        known = MEMORY.get(memo)
        if known is not None and known.cache_dir == (Path(cache_dir) if cache_dir else None):
            return known
        sig, shape = _signature(path)
        digest = hashlib.blake2b(repr(sig).encode(), digest_size=10).hexdigest()
        note = Path(cache_dir) / f"gridsig-{digest}.txt" if cache_dir is not None else None
        key = MEMORY.get(("signature", sig)) or _read_note(note, sig)
        if key is None:
            grid = cls(*netcdf.read_grid(path), cache_dir=cache_dir)
        else:
            grid = cls(
                key=key, shape=shape, load=lambda: netcdf.read_grid(path), cache_dir=cache_dir
            )
        MEMORY.put(("signature", sig), grid.key)
        if note is not None and MEMORY.get(("note", note)) is None:
            _write_note(note, sig, grid.key)
        return MEMORY.put(memo, grid)

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lat, lon)`` float32 as stored (read once per process and grid)."""
        with MEMORY.lock:
            coords = MEMORY.get(("coords", self.key))
            if coords is None:
                lat, lon = self._load()
                coords = MEMORY.put(("coords", self.key), (lat, lon), lat.nbytes + lon.nbytes)
            return coords

    @property
    def lat(self) -> np.ndarray:
        return self.coords()[0]

    @property
    def lon(self) -> np.ndarray:
        return self.coords()[1]

    # --- raster indices -------------------------------------------------------------------

    def _index_path(self, raster: Raster) -> Path | None:
        """``index-<key>-<raster key>.index`` in the cache; its stem is the key it carries."""
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"index-{self.key}-{raster.key}.index"

    def has_index(self, raster: Raster) -> bool:
        """Whether ``raster``'s index is in memory or in the cache.

        Reads only the cache file's header (format, key, size, shape); :meth:`index` also
        checks its content against the digest.
        """
        if MEMORY.get(("index", self.key, raster.key)) is not None:
            return True
        path = self._index_path(raster)
        if path is None:
            return False
        try:
            specs = cachefile.check_header(path, path.stem)
        except OSError:
            return False
        return _is_index(specs, raster)

    def index(self, raster: Raster) -> RasterIndex:
        """The index of ``raster`` on this grid: from memory, the cache, or built once.

        A cache file that fails its check is logged, not used, and rebuilt.
        """
        memo = ("index", self.key, raster.key)
        with _building(memo):  # one build per index; other work in MEMORY goes on meanwhile
            found = MEMORY.get(memo)
            if found is not None:
                regrid.STATS["index_memo"] += 1
                return found
            path = self._index_path(raster)
            index = _load_index(path, raster)
            if index is not None:
                regrid.STATS["index_load"] += 1
            else:
                index = regrid.query(self._tree(), raster)
                if path is not None:
                    _cache_write(path, lambda f: cachefile.write(f, path.stem, {"index": index}))
            ri = RasterIndex(raster, index)
            return MEMORY.put(memo, ri, ri.nbytes)

    def _tree(self) -> regrid.Tree:
        memo = ("tree", self.key)
        with _building(memo):
            tree = MEMORY.get(memo)
            if tree is not None:
                return tree
            path = self.cache_dir / f"grid-{self.key}.tree" if self.cache_dir else None
            tree = _load_tree(path, self.shape)
            if tree is None:
                tree = regrid.build_tree(*self.coords())
                if path is not None:
                    _cache_write(path, lambda f: tree.save(f, path.stem))
            return MEMORY.put(memo, tree, tree.nbytes)

    def cell_at(self, index: RasterIndex, x: float, y: float) -> tuple[int, int] | None:
        """Grid ``(row, column)`` drawn at pixel ``(x, y)`` of ``index``'s raster (None: none)."""
        h, w = index.index.shape
        if not (0 <= x < w and 0 <= y < h):
            return None
        flat = int(index.index[int(y), int(x)])
        return None if flat < 0 else divmod(flat, self.shape[1])

    def nearest(self, lon: float, lat: float, count: int = 1) -> list[tuple[int, int]]:
        """Grid ``(row, column)`` of the ``count`` cells nearest ``lon``/``lat``, nearest first.

        Uses the grid's one k-d tree (cached under its key like the raster indices).
        """
        flat = regrid.nearest(self._tree(), lat, lon, count)
        return [divmod(int(f), self.shape[1]) for f in flat]

    def nearest_wet(self, lon: float, lat: float, wet: np.ndarray) -> tuple[int, int] | None:
        """Grid ``(row, column)`` of the cell nearest ``lon``/``lat`` where ``wet`` is true
        (a 2-D bool mask of the grid, e.g. its ocean cells); None when none is.

        Looks among the nearest 256 cells, then 65,536, then all of them.
        """
        n = self.shape[0] * self.shape[1]
        for count in (256, 65536, n):
            found = [(a, b) for a, b in self.nearest(lon, lat, min(count, n)) if wet[a, b]]
            if found:
                return found[0]
            if count >= n:
                break
        return None

    # --- region selections ----------------------------------------------------------------

    def selection(self, region: Any) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the cells inside ``region`` (a :class:`~rtofs_lib.fields.regions.Region`)
        and their area weights (cos latitude), computed once per grid."""
        memo = ("selection", self.key, region)
        found = MEMORY.get(memo)
        if found is None:
            lat, lon = self.coords()
            idx = np.flatnonzero(region.mask(lat, lon)).astype(np.int64)
            weights = np.cos(np.deg2rad(lat.ravel()[idx].astype(np.float64)))
            found = MEMORY.put(memo, (idx, weights), idx.nbytes + weights.nbytes)
        return found


def _is_index(specs: list, raster: Raster) -> bool:
    """Whether a cache file's arrays are one int32 index of ``raster``'s shape."""
    return [(n, d, tuple(shape)) for n, d, shape in specs] == [
        ("index", np.dtype(np.int32), (raster.height, raster.width))
    ]


def _load_index(path: Path | None, raster: Raster) -> np.ndarray | None:
    """The cached index of ``raster`` at ``path``, checked; None when there is none or it
    fails its check (logged: it is rebuilt)."""
    if path is None:
        return None
    try:
        arrays = cachefile.read(path, path.stem)
        specs = [(name, a.dtype, a.shape) for name, a in arrays.items()]
        if not _is_index(specs, raster):
            raise CacheFileError(path, f"holds {specs}, not an int32 index of {raster.key}")
    except FileNotFoundError:
        return None
    except OSError as e:  # CacheFileError included
        log.warning("%s; not used, the index is rebuilt from the grid's coordinates", e)
        return None
    return arrays["index"]


def _load_tree(path: Path | None, shape: tuple[int, int]) -> regrid.Tree | None:
    """The cached tree at ``path``, checked; None when there is none or it fails its check
    (logged: it is rebuilt)."""
    if path is None:
        return None
    try:
        tree = regrid.load_tree(path, path.stem)
        if tree.shape != shape:
            raise CacheFileError(path, f"a tree of a {tree.shape} grid, not {shape}")
    except FileNotFoundError:
        return None
    except OSError as e:  # CacheFileError included
        log.warning("%s; not used, the tree is rebuilt from the grid's coordinates", e)
        return None
    return tree


def _note_check(sig: tuple, key: str) -> str:
    """The check a ``gridsig`` note carries: a digest of the grid signature and the key."""
    return hashlib.sha256(f"rtofs-gridsig-1:{sig!r}:{key}".encode()).hexdigest()[:32]


def _read_note(note: Path | None, sig: tuple) -> str | None:
    """The grid key in ``note`` when its check matches ``sig``; None otherwise (logged)."""
    if note is None:
        return None
    try:
        words = note.read_text().split()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        log.warning("%s: unreadable (%s); not used, the grid's key is computed", note, e)
        return None
    if len(words) == 2 and words[1] == _note_check(sig, words[0]):
        MEMORY.put(("note", note), True)
        return words[0]
    what = (
        "an older note without a check"
        if len(words) == 1
        else "its check does not match the file's grid signature and key (damaged, altered, "
        "or copied from another grid's note)"
    )
    log.warning("%s: %s; not used, the grid's key is computed and the note rewritten", note, what)
    return None


def _write_note(note: Path, sig: tuple, key: str) -> None:
    """Remember a grid key in the cache folder (a read-only cache is fine: only slower)."""
    try:
        atomic.write_text(note, f"{key} {_note_check(sig, key)}\n", fsync=False)
    except OSError:
        return
    MEMORY.put(("note", note), True)
