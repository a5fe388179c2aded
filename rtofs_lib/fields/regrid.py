"""Nearest-neighbour regridding from the tripolar RTOFS grid to regular lon/lat rasters.

The grid (2-D ``lat``/``lon``, fold row dropped) goes into a :class:`scipy.spatial.cKDTree`
of unit-sphere xyz points, so the 0/360 seam, the dateline and the curvilinear Arctic
patch need no special cases. For each :class:`Raster` the tree gives one int32 index
per pixel into the flattened grid; :func:`apply` is then a plain gather, NaN where the
index is -1 (no grid point within ~1.5 grid cells: north of the grid's top, south of
its southern edge at about -78.6°).

Work is done once and kept:

* the tree (and each grid point's cell size) per grid, keyed by :func:`grid_key` (a hash
  of the coordinates), in ``cache_dir/grid-<key>.npz``;
* each index in ``cache_dir/index-<key>-<raster key>.npy``;
* both also in this process's memory, so a Spark executor loads them once.

Cache files are written to a temporary name and renamed, so concurrent tasks never
read a half-written file.

Examples
--------
>>> lat, lon = read_grid("rtofs_glo_2ds_f024_prog.nc")  # doctest: +SKIP
>>> raster = Raster.global_(1500)
>>> index = get_index(lat, lon, raster, cache_dir="cache")  # doctest: +SKIP
>>> image = apply(sst_values, index)  # (708, 1500), north up  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

__all__ = [
    "MAX_CELLS",
    "STATS",
    "Raster",
    "apply",
    "clear_memory_cache",
    "get_index",
    "grid_key",
    "raster_coords",
]

#: A pixel gets a value when the nearest grid point lies within this many of its cells.
MAX_CELLS = 1.5
#: Bump when the cache format or the index algorithm changes (invalidates caches).
_CACHE_VERSION = "1"
#: Pixels queried per block (bounds memory for native-resolution rasters).
_QUERY_BLOCK = 1 << 20

#: Counters of work done in this process: ``tree_build``, ``tree_load``, ``index_build``,
#: ``index_load``, ``index_memo``. Handy in tests and logs.
STATS: Counter[str] = Counter()

_LOCK = threading.Lock()
_GRIDS: OrderedDict[str, _Grid] = OrderedDict()
_INDICES: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_MAX_GRIDS = 2  # a full-size tree is ~600 MB
_MAX_INDICES = 32


@dataclass(frozen=True)
class Raster:
    """A regular lon/lat raster: north up, values at pixel centres.

    Parameters
    ----------
    lon0, lon1
        West and east edges in degrees. The raster runs eastward from ``lon0`` to
        ``lon1``; ``lon1 <= lon0`` crosses the dateline (``170, -170`` is 20° wide), and
        equal edges (``-180, 180``) mean all the way round.
    lat0, lat1
        South and north edges in degrees.
    width, height
        Pixels.

    Examples
    --------
    >>> Raster.global_(1500)
    Raster(lon0=-180.0, lon1=180.0, lat0=-80.0, lat1=90.0, width=1500, height=708)
    >>> Raster.box((170, -170, -10, 10), 0.5).width
    40
    """

    lon0: float
    lon1: float
    lat0: float
    lat1: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat0 < self.lat1 <= 90.0):
            raise ValueError(
                f"bad raster latitudes {self.lat0}..{self.lat1}; need -90 <= lat0 < lat1 <= 90"
            )
        if int(self.width) < 1 or int(self.height) < 1:
            raise ValueError(f"bad raster size {self.width}x{self.height}; need at least 1x1")
        for name in ("lon0", "lon1", "lat0", "lat1"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def global_(cls, width: int = 1500, lat0: float = -80.0, lat1: float = 90.0) -> Raster:
        """A global raster ``width`` pixels wide with square pixels (grid ends near -78.6°)."""
        height = max(1, round(width * (lat1 - lat0) / 360.0))
        return cls(-180.0, 180.0, lat0, lat1, width, height)

    @classmethod
    def box(cls, box: Sequence[float], resolution_deg: float) -> Raster:
        """A raster over ``box = (lon0, lon1, lat0, lat1)``, square pixels of ``resolution_deg``."""
        lon0, lon1, lat0, lat1 = (float(v) for v in box)
        if resolution_deg <= 0:
            raise ValueError(f"bad resolution {resolution_deg}; give degrees per pixel, > 0")
        span = _lon_span(lon0, lon1)
        width = max(1, math.ceil(span / resolution_deg - 1e-9))
        height = max(1, math.ceil((lat1 - lat0) / resolution_deg - 1e-9))
        return cls(lon0, lon1, lat0, lat1, width, height)

    @property
    def lon_span(self) -> float:
        """Width in degrees of longitude (360 for a global raster)."""
        return _lon_span(self.lon0, self.lon1)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(west, east, south, north)`` for ``imshow(extent=...)``; east may exceed 180."""
        return (self.lon0, self.lon0 + self.lon_span, self.lat0, self.lat1)

    @property
    def key(self) -> str:
        """A file-name-safe text that identifies the raster."""
        return f"{self.lon0:g}_{self.lon1:g}_{self.lat0:g}_{self.lat1:g}_{self.width}x{self.height}"

    def lons(self) -> np.ndarray:
        """Pixel-centre longitudes, west to east, in [-180, 180)."""
        dlon = self.lon_span / self.width
        return _wrap(self.lon0 + dlon * (np.arange(self.width) + 0.5))

    def lats(self) -> np.ndarray:
        """Pixel-centre latitudes, north to south (row 0 is the top)."""
        dlat = (self.lat1 - self.lat0) / self.height
        return self.lat1 - dlat * (np.arange(self.height) + 0.5)


def _lon_span(lon0: float, lon1: float) -> float:
    span = (lon1 - lon0) % 360.0
    return 360.0 if span == 0 else span


def _wrap(lon):
    out = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return np.where(out < 180.0, out, out - 360.0)


def _normalise32(lon: np.ndarray) -> np.ndarray:
    """float32 longitudes in [-180, 180), exactly (whole turns subtracted), as the reader does."""
    lon = np.asarray(lon, dtype=np.float32)
    out = lon - np.float32(360.0) * np.floor((lon + np.float32(180.0)) / np.float32(360.0))
    out -= np.float32(360.0) * (out >= 180.0)
    out += np.float32(360.0) * (out < -180.0)
    return out


def raster_coords(raster: Raster) -> tuple[np.ndarray, np.ndarray]:
    """Return 1-D pixel-centre ``(lat, lon)`` of ``raster`` (lat north to south)."""
    return raster.lats(), raster.lons()


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit-sphere xyz (float64, shape ``lat.shape + (3,)``)."""
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    cos_phi = np.cos(phi)
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=-1)


def _check_grid(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(lat)
    lon = np.asarray(lon)
    if lat.ndim != 2 or lat.shape != lon.shape:
        raise ValueError(
            f"lat and lon must be 2-D arrays of one shape; got {lat.shape} and {lon.shape}"
        )
    return lat, lon


def grid_key(lat: np.ndarray, lon: np.ndarray) -> str:
    """Return a short hash identifying a grid by its coordinates.

    Longitudes are wrapped into [-180, 180) first (exactly: whole turns only), so the raw
    file longitudes (74…434) and :func:`rtofs_lib.fields.reader.open_file`'s normalised ones
    give the same key.

    Examples
    --------
    >>> lat = np.zeros((2, 3), np.float32); lon = np.array([[0, 1, 2]] * 2, np.float32)
    >>> grid_key(lat, lon) == grid_key(lat, lon + 360)
    True
    """
    lat, lon = _check_grid(lat, lon)
    lat32 = np.ascontiguousarray(lat, dtype=np.float32)
    lon32 = np.ascontiguousarray(_normalise32(lon))
    h = hashlib.blake2b(digest_size=10)
    h.update(f"rtofs-grid-v{_CACHE_VERSION}:{lat32.shape}".encode())
    h.update(memoryview(lat32).cast("B"))
    h.update(memoryview(lon32).cast("B"))
    return h.hexdigest()


@dataclass
class _Grid:
    tree: cKDTree
    cell: np.ndarray  # chord size of each point's cell (float32, flat)
    shape: tuple[int, int]


def _cell_size(xyz: np.ndarray) -> np.ndarray:
    """Per point, the largest chord to its neighbours along x and y (flat float32)."""
    ny, nx, _ = xyz.shape
    cell = np.zeros((ny, nx), dtype=np.float32)
    for axis in (0, 1):
        d = np.linalg.norm(np.diff(xyz, axis=axis), axis=-1).astype(np.float32)
        if axis == 0:
            np.maximum(cell[1:], d, out=cell[1:])
            np.maximum(cell[:-1], d, out=cell[:-1])
        else:
            np.maximum(cell[:, 1:], d, out=cell[:, 1:])
            np.maximum(cell[:, :-1], d, out=cell[:, :-1])
        del d
    return cell.ravel()


def _build(lat: np.ndarray, lon: np.ndarray) -> _Grid:
    xyz = _xyz(lat, lon)
    if not np.isfinite(xyz).all():
        raise ValueError("the grid's lat/lon hold NaN or inf; cannot build a grid index")
    cell = _cell_size(xyz)
    tree = cKDTree(xyz.reshape(-1, 3), leafsize=16, balanced_tree=False, compact_nodes=False)
    STATS["tree_build"] += 1
    return _Grid(tree=tree, cell=cell, shape=lat.shape)


def _atomic_save(path: Path, write) -> None:
    """Write via ``write(fileobj)`` to a temporary file beside ``path``, then rename.

    The file gets the mode the umask allows (not mkstemp's 0600): the cache is shared by
    the rendering job and every researcher's viewer on the cluster. A cache the caller
    cannot write (a researcher's viewer on the job's cache, a full or read-only file
    system) is only logged: the result is still returned, from memory.
    """
    try:
        _write_atomically(path, write)
    except OSError as e:
        log.warning("%s: not cached (%s); results stay in this process's memory", path, e)


def _write_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_grid(path: Path, grid: _Grid) -> None:
    (buf, data, n, m, leafsize, maxes, mins, indices, _box, _boxdata) = grid.tree.__getstate__()
    arrays = {
        "tree_buffer": np.frombuffer(buf, dtype=np.uint8),
        "data": data,
        "nml": np.array([n, m, leafsize], dtype=np.int64),
        "maxes": maxes,
        "mins": mins,
        "indices": indices,
        "cell": grid.cell,
        "shape": np.array(grid.shape, dtype=np.int64),
        "scipy": np.array(scipy.__version__),
    }
    _atomic_save(path, lambda f: np.savez(f, **arrays))


def _load_grid(path: Path) -> _Grid | None:
    """Load a cached grid; None when unreadable or written by another scipy."""
    try:
        with np.load(path, allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
            cell = z["cell"]
            data = z["data"]
            if str(z["scipy"]) == scipy.__version__:
                n, m, leafsize = (int(v) for v in z["nml"])
                state = (
                    z["tree_buffer"].view("S1"),
                    data,
                    n,
                    m,
                    leafsize,
                    z["maxes"],
                    z["mins"],
                    z["indices"],
                    None,
                    None,
                )
                tree = cKDTree.__new__(cKDTree)
                tree.__setstate__(state)
            else:
                tree = cKDTree(data, leafsize=16, balanced_tree=False, compact_nodes=False)
                STATS["tree_build"] += 1
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    STATS["tree_load"] += 1
    return _Grid(tree=tree, cell=cell, shape=shape)  # type: ignore[arg-type]


def _remember(cache: OrderedDict, key, value, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _grid(key: str, lat: np.ndarray, lon: np.ndarray, cache_dir: Path | None) -> _Grid:
    if key in _GRIDS:
        _GRIDS.move_to_end(key)
        return _GRIDS[key]
    grid = None
    path = cache_dir / f"grid-{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        grid = _load_grid(path)
        if grid is not None and grid.shape != lat.shape:
            grid = None
    if grid is None:
        grid = _build(lat, lon)
        if path is not None:
            _save_grid(path, grid)
    _remember(_GRIDS, key, grid, _MAX_GRIDS)
    return grid


def _query(grid: _Grid, raster: Raster) -> np.ndarray:
    lats, lons = raster.lats(), raster.lons()
    limit = MAX_CELLS * float(grid.cell.max())
    n = grid.tree.n
    index = np.empty(raster.height * raster.width, dtype=np.int32)
    rows_per_block = max(1, _QUERY_BLOCK // raster.width)
    for r0 in range(0, raster.height, rows_per_block):
        r1 = min(raster.height, r0 + rows_per_block)
        lat2, lon2 = np.meshgrid(lats[r0:r1], lons, indexing="ij")
        dist, idx = grid.tree.query(
            _xyz(lat2, lon2).reshape(-1, 3), k=1, distance_upper_bound=limit, workers=-1
        )
        found = idx < n
        ok = np.zeros_like(found)
        ok[found] = dist[found] <= MAX_CELLS * grid.cell[idx[found]]
        block = np.where(ok, idx, -1).astype(np.int32)
        index[r0 * raster.width : r1 * raster.width] = block
    STATS["index_build"] += 1
    return index.reshape(raster.height, raster.width)


def get_index(
    lat: np.ndarray,
    lon: np.ndarray,
    raster: Raster,
    cache_dir: str | Path | None = None,
    *,
    key: str | None = None,
) -> np.ndarray:
    """Return the nearest-neighbour index from a grid to ``raster``.

    Parameters
    ----------
    lat, lon
        2-D grid coordinates in degrees (fold row already dropped); any longitude range.
    raster
        The target raster.
    cache_dir
        Folder for the on-disk caches (created if needed); None keeps them in memory only.
    key
        :func:`grid_key` of ``lat``/``lon`` when the caller already has it (skips hashing).

    Returns
    -------
    numpy.ndarray
        int32 ``(raster.height, raster.width)`` of flat indices into ``lat.ravel()``,
        -1 where no grid point lies within ~1.5 grid cells. Row 0 is the north edge.
    """
    lat, lon = _check_grid(lat, lon)
    key = key or grid_key(lat, lon)
    memo_key = (key, raster.key)
    cache = Path(cache_dir) if cache_dir is not None else None
    with _LOCK:
        if memo_key in _INDICES:
            STATS["index_memo"] += 1
            _INDICES.move_to_end(memo_key)
            return _INDICES[memo_key]
        path = cache / f"index-{key}-{raster.key}.npy" if cache is not None else None
        index = None
        if path is not None and path.exists():
            try:
                index = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                index = None
            if index is not None and index.shape == (raster.height, raster.width):
                STATS["index_load"] += 1
            else:
                index = None
        if index is None:
            index = _query(_grid(key, lat, lon, cache), raster)
            if path is not None:
                _atomic_save(path, lambda f: np.save(f, index))
        index.setflags(write=False)
        _remember(_INDICES, memo_key, index, _MAX_INDICES)
        return index


def apply(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Gather grid ``values`` onto the raster of ``index``: NaN where the index is -1.

    Parameters
    ----------
    values
        Array whose last two axes are the grid the index was built for (fold dropped);
        leading axes (time, depth) are kept.
    index
        From :func:`get_index`.

    Returns
    -------
    numpy.ndarray
        ``values.shape[:-2] + index.shape``, floating point (integers become float32).
    """
    values = np.asarray(values)
    if values.ndim < 2:
        raise ValueError(f"values must be at least 2-D (..., y, x); got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float32)
    flat = values.reshape(*values.shape[:-2], -1)
    out = np.take(flat, index, axis=-1)
    out[..., index < 0] = np.nan
    return out


def clear_memory_cache() -> None:
    """Forget the grids and indices kept in this process (disk caches stay)."""
    with _LOCK:
        _GRIDS.clear()
        _INDICES.clear()
