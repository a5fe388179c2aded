"""Nearest-neighbour regridding from the tripolar RTOFS grid to regular lon/lat rasters.

The grid (2-D ``lat``/``lon``, fold row dropped) goes into a :class:`scipy.spatial.cKDTree`
of unit-sphere xyz points (:func:`build_tree`), so the 0/360 seam, the dateline and the
curvilinear Arctic patch need no special cases. For each :class:`Raster` the tree gives
one int32 index per pixel into the flattened grid (:func:`query`); :func:`apply` is then a
plain gather, NaN where the index is -1 (no grid point within ~1.5 grid cells: north of
the grid's top, south of its southern edge at about -78.6°).

These are the algorithms; :class:`rtofs_lib.fields.grid.Grid` keeps their results once
(memory and the shared cache folder), by the grid's content key (:func:`grid_key`).

Examples
--------
>>> lat, lon = np.meshgrid(np.linspace(-60, 60, 13), np.arange(0, 360, 10.0), indexing="ij")
>>> index = query(build_tree(lat, lon), Raster.global_(36, lat0=-60, lat1=60))
>>> image = apply(lat, index)  # the grid's latitudes seen on the raster, north up
>>> image.shape, bool(image[0, 0] > image[-1, 0])
((12, 36), True)
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import scipy
from scipy.spatial import cKDTree

from rtofs_lib.errors import CacheFileError
from rtofs_lib.fields import cachefile

log = logging.getLogger(__name__)

__all__ = [
    "MAX_CELLS",
    "STATS",
    "Raster",
    "Tree",
    "apply",
    "build_tree",
    "check_grid",
    "grid_key",
    "load_tree",
    "query",
    "raster_coords",
]

#: North (and south) edge of the Web Mercator world, degrees: ``atan(sinh(pi))``.
MERCATOR_MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))

#: A pixel gets a value when the nearest grid point lies within this many of its cells.
MAX_CELLS = 1.5
#: Bump when the cache format or the index algorithm changes (invalidates caches).
_CACHE_VERSION = "1"
#: Pixels queried per block (bounds memory for native-resolution rasters).
_QUERY_BLOCK = 1 << 20

#: Counters of work done in this process: ``tree_build``, ``tree_load``, ``index_build``,
#: ``index_load``, ``index_memo``. Handy in tests and logs.
STATS: Counter[str] = Counter()


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
    mercator
        Rows evenly spaced in Web Mercator ``y`` rather than in latitude (the pixels of
        map tiles: :meth:`web_mercator`).

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
    mercator: bool = field(default=False, repr=False)

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

    @classmethod
    def web_mercator(cls, zoom: int, south: float = -80.0) -> Raster:
        """The pixels of the Web Mercator world at ``zoom`` (XYZ tiles of 256 px), north up,
        down to the row that holds latitude ``south``.

        Examples
        --------
        >>> r = Raster.web_mercator(1, south=-60.0)
        >>> r.width, r.height, round(float(r.lats()[0]), 2), r.key
        (512, 364, 85.02, '-180_180_-60.2398_85.0511_512x364_merc')
        """
        width = 256 << int(zoom)
        y = (1.0 - math.asinh(math.tan(math.radians(south))) / math.pi) / 2.0 * width
        height = min(width, max(1, math.ceil(y)))
        return cls(-180.0, 180.0, _mercator_lat(height, width), MERCATOR_MAX_LAT, width, height,
                   mercator=True)  # fmt: skip

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
        key = f"{self.lon0:g}_{self.lon1:g}_{self.lat0:g}_{self.lat1:g}_{self.width}x{self.height}"
        return key + ("_merc" if self.mercator else "")

    def lons(self) -> np.ndarray:
        """Pixel-centre longitudes, west to east, in [-180, 180)."""
        dlon = self.lon_span / self.width
        return _wrap(self.lon0 + dlon * (np.arange(self.width) + 0.5))

    def lats(self) -> np.ndarray:
        """Pixel-centre latitudes, north to south (row 0 is the top)."""
        if self.mercator:
            return _mercator_lat(np.arange(self.height) + 0.5, self.width)
        dlat = (self.lat1 - self.lat0) / self.height
        return self.lat1 - dlat * (np.arange(self.height) + 0.5)


def _mercator_lat(row, world: int):
    """Latitude (degrees) at Web Mercator pixel row ``row`` of a world ``world`` pixels tall."""
    return np.degrees(np.arctan(np.sinh(np.pi * (1.0 - 2.0 * np.asarray(row) / world))))


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


def check_grid(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lat`` and ``lon`` as arrays, checked to be 2-D and of one shape."""
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
    lat, lon = check_grid(lat, lon)
    lat32 = np.ascontiguousarray(lat, dtype=np.float32)
    lon32 = np.ascontiguousarray(_normalise32(lon))
    h = hashlib.blake2b(digest_size=10)
    h.update(f"rtofs-grid-v{_CACHE_VERSION}:{lat32.shape}".encode())
    h.update(memoryview(lat32).cast("B"))
    h.update(memoryview(lon32).cast("B"))
    return h.hexdigest()


@dataclass(eq=False)
class Tree:
    """The k-d tree of a grid's points (unit-sphere xyz) and each point's cell size."""

    tree: cKDTree
    cell: np.ndarray  # chord size of each point's cell (float32, flat)
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        """Approximate memory held (points, tree arrays and cell sizes)."""
        return int(self.tree.data.nbytes * 2 + self.tree.indices.nbytes + self.cell.nbytes)

    def save(self, f: IO[bytes], key: str) -> None:
        """Write the tree's state to the open binary file ``f``, stamped with ``key``.

        The file is a checked cache file (:mod:`rtofs_lib.fields.cachefile`);
        :func:`load_tree` with the same key reads it back.
        """
        (buf, data, n, m, leafsize, maxes, mins, indices, _box, _boxdata) = self.tree.__getstate__()
        arrays = {
            "tree_buffer": np.frombuffer(buf, dtype=np.uint8),
            "data": data,
            "nml": np.array([n, m, leafsize], dtype=np.int64),
            "maxes": maxes,
            "mins": mins,
            "indices": indices,
            "cell": self.cell,
            "shape": np.array(self.shape, dtype=np.int64),
            "scipy": np.array(scipy.__version__),
        }
        cachefile.write(f, key, arrays)


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


def _new_tree(points: np.ndarray) -> cKDTree:
    STATS["tree_build"] += 1
    return cKDTree(points, leafsize=16, balanced_tree=False, compact_nodes=False)


def build_tree(lat: np.ndarray, lon: np.ndarray) -> Tree:
    """Build the k-d tree of a grid (the one-off cost of a grid: seconds at full size)."""
    lat, lon = check_grid(lat, lon)
    xyz = _xyz(lat, lon)
    if not np.isfinite(xyz).all():
        raise ValueError("the grid's lat/lon hold NaN or inf; cannot build a grid index")
    cell = _cell_size(xyz)
    return Tree(tree=_new_tree(xyz.reshape(-1, 3)), cell=cell, shape=lat.shape)


def load_tree(path: str | Path, key: str) -> Tree:
    """Load a tree saved by :meth:`Tree.save` with ``key``, checked against it.

    A file written by another scipy is rebuilt from its points (the state format is
    scipy's own).

    Raises
    ------
    rtofs_lib.errors.CacheFileError
        The file is not an intact tree built for ``key`` (names the file and what did not
        match).
    OSError
        When the file cannot be read (``FileNotFoundError`` when there is none).
    """
    z = cachefile.read(path, key)
    try:
        shape = tuple(int(v) for v in z["shape"])
        cell, data = z["cell"], z["data"]
        if str(z["scipy"]) != scipy.__version__:
            return Tree(tree=_new_tree(data), cell=cell, shape=shape)  # type: ignore[arg-type]
        n, m, leafsize = (int(v) for v in z["nml"])
        state = (z["tree_buffer"].view("S1"), data, n, m, leafsize, z["maxes"],
                 z["mins"], z["indices"], None, None)  # fmt: skip
        tree = cKDTree.__new__(cKDTree)
        tree.__setstate__(state)
    except (KeyError, ValueError, TypeError) as e:
        raise CacheFileError(path, f"not a k-d tree ({e})") from None
    STATS["tree_load"] += 1
    return Tree(tree=tree, cell=cell, shape=shape)  # type: ignore[arg-type]


def query(tree: Tree, raster: Raster) -> np.ndarray:
    """The nearest grid point of each pixel of ``raster``.

    Returns int32 ``(raster.height, raster.width)`` flat indices into the grid, -1 where no
    grid point lies within :data:`MAX_CELLS` of its cells. Row 0 is the north edge.
    """
    lats, lons = raster.lats(), raster.lons()
    limit = MAX_CELLS * float(tree.cell.max())
    n = tree.tree.n
    index = np.empty(raster.height * raster.width, dtype=np.int32)
    rows_per_block = max(1, _QUERY_BLOCK // raster.width)
    for r0 in range(0, raster.height, rows_per_block):
        r1 = min(raster.height, r0 + rows_per_block)
        lat2, lon2 = np.meshgrid(lats[r0:r1], lons, indexing="ij")
        dist, idx = tree.tree.query(
            _xyz(lat2, lon2).reshape(-1, 3), k=1, distance_upper_bound=limit, workers=-1
        )
        found = idx < n
        ok = np.zeros_like(found)
        ok[found] = dist[found] <= MAX_CELLS * tree.cell[idx[found]]
        index[r0 * raster.width : r1 * raster.width] = np.where(ok, idx, -1)
    STATS["index_build"] += 1
    return index.reshape(raster.height, raster.width)


def nearest(tree: Tree, lat: float, lon: float, count: int = 1) -> np.ndarray:
    """Flat grid indices of the ``count`` grid points nearest ``lat``/``lon``, nearest first.

    Distances are along the unit sphere, so any longitude convention works.
    """
    count = min(count, tree.tree.n)
    _, idx = tree.tree.query(_xyz(np.float64(lat), np.float64(lon)), k=count)
    return np.atleast_1d(idx).astype(np.int64)


def apply(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Gather grid ``values`` onto the raster of ``index``: NaN where the index is -1.

    Parameters
    ----------
    values
        Array whose last two axes are the grid the index was built for (fold dropped);
        leading axes (time, depth) are kept.
    index
        Flat indices into the grid, -1 for no value (:meth:`rtofs_lib.fields.grid.Grid.index`).

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
