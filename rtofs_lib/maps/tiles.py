"""XYZ map tiles (Web Mercator, 256 pixels) drawn from the native grid.

A grid has one tile index: every pixel of the Web Mercator world at the grid's
:func:`max_zoom` (the first zoom whose pixels are finer than the grid's cells) holds its
nearest grid cell, or -1 where no grid point is near (south of the grid's edge). It is a
:class:`~rtofs_lib.fields.grid.RasterIndex` of :meth:`Raster.web_mercator
<rtofs_lib.fields.regrid.Raster.web_mercator>`, so it is built once from the grid's k-d
tree, kept in the shared cache folder and checked on load like every raster index
(:func:`tile_index`): the nearest cell on the sphere, so the dateline, the 74°E seam of the
RTOFS longitudes, the tripolar Arctic and its fold row need no special case.

A tile at zoom ``z <= max_zoom`` takes every ``2**(max_zoom - z)``-th pixel of that index
(:func:`tile_cells`: a strided view, no search), then :func:`render_tile` gathers the
field's values, maps them to the platform's palette (:mod:`rtofs_lib.maps.colors`: land in
the land colour) and writes a palette PNG whose no-data pixels are transparent. Deeper zooms
are the client's to enlarge (Leaflet's ``maxNativeZoom``).

Examples
--------
>>> import numpy as np
>>> from rtofs_lib.fields.grid import Grid
>>> lat, lon = np.meshgrid(np.linspace(-75, 85, 161), np.arange(-180, 180, 1.0), indexing="ij")
>>> grid = Grid(lat.astype(np.float32), lon.astype(np.float32))
>>> max_zoom(grid.shape)
1
>>> index = tile_index(grid)
>>> cells = tile_cells(index, 1, 0, 0)  # the north-west quarter of the world
>>> cells.shape, bool((cells >= 0).all())
((256, 256), True)
>>> png = render_tile(lat.astype(np.float32), cells, "sst")
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

from rtofs_lib.errors import RtofsError
from rtofs_lib.fields.regrid import MERCATOR_MAX_LAT, Raster
from rtofs_lib.maps.colors import BACKGROUND, palette_bytes, quantise
from rtofs_lib.maps.styles import FieldStyle, field_style

if TYPE_CHECKING:
    from rtofs_lib.fields.grid import Grid, RasterIndex

__all__ = [
    "TILE",
    "TileError",
    "index_zoom",
    "lonlat_pixel",
    "max_zoom",
    "render_tile",
    "tile_bounds",
    "tile_cells",
    "tile_index",
    "tile_raster",
]

#: Tile width and height in pixels.
TILE = 256
#: How far south of the grid's southernmost point the tile index reaches, degrees.
_SOUTH_MARGIN = 1.0


class TileError(RtofsError):
    """A tile that does not exist (zoom deeper than the grid's, x or y outside the world)."""


def max_zoom(shape: tuple[int, int]) -> int:
    """The first zoom whose pixels (at the equator) are finer than the grid's columns.

    Examples
    --------
    >>> max_zoom((3297, 4500)), max_zoom((329, 450)), max_zoom((10, 200))
    (5, 1, 0)
    """
    nx = int(shape[1])
    return max(0, math.floor(math.log2(nx / TILE)) + 1) if nx >= TILE else 0


def tile_raster(grid: Grid) -> Raster:
    """The Web Mercator raster of ``grid``'s tile index (its :func:`max_zoom`)."""
    south = max(-MERCATOR_MAX_LAT, float(np.nanmin(grid.lat)) - _SOUTH_MARGIN)
    return Raster.web_mercator(max_zoom(grid.shape), south=south)


def tile_index(grid: Grid) -> RasterIndex:
    """The grid's tile index: built once from its k-d tree, then from the cache or memory.

    At full size (4500 x 3298) it is 8192 x 7102 pixels (230 MB); building it queries the
    tree once per pixel (minutes on two cores), so the dashboard service builds it when it
    starts, and every later process loads it.
    """
    return grid.index(tile_raster(grid))


def index_zoom(index: RasterIndex) -> int:
    """The zoom of a tile index (the deepest zoom its grid's tiles are drawn at)."""
    return round(math.log2(index.raster.width / TILE))


def tile_cells(index: RasterIndex, z: int, x: int, y: int) -> np.ndarray:
    """Flat grid index of each pixel of tile ``z/x/y`` (-1: no grid point), int32 256 x 256.

    Raises
    ------
    TileError
        ``z`` deeper than the index's zoom or negative, ``x``/``y`` outside ``0 … 2**z - 1``.
    """
    deepest = index_zoom(index)
    if not 0 <= z <= deepest:
        raise TileError(
            f"zoom {z} is not served: tiles go from zoom 0 to {deepest} (where a pixel is "
            "finer than the grid); enlarge deeper zooms on the client"
        )
    if not (0 <= x < 1 << z and 0 <= y < 1 << z):
        raise TileError(f"tile {z}/{x}/{y} is outside the world: x and y run 0 … {(1 << z) - 1}")
    s = 1 << (deepest - z)
    c0, r0 = x * TILE * s + s // 2, y * TILE * s + s // 2
    rows = index.index[r0 : r0 + TILE * s : s, c0 : c0 + TILE * s : s]  # a view: no copy
    if rows.shape[0] == TILE:
        return rows
    out = np.full((TILE, TILE), -1, dtype=np.int32)  # the tile reaches below the index
    out[: rows.shape[0]] = rows
    return out


def render_tile(
    values: np.ndarray,
    cells: np.ndarray,
    style: str | FieldStyle = "sst",
    cmap: str | None = None,
    *,
    compress_level: int = 1,
) -> bytes:
    """The PNG of one tile: ``values`` (the 2-D field on the grid) at ``cells``.

    Palette PNG in the field's colours (``cmap`` overrides the style's colormap; the range
    stays the style's), land in the land colour, no-data pixels (``cells`` -1) transparent.
    """
    style = field_style(style)
    flat = values.reshape(-1)
    q = quantise(np.take(flat, np.maximum(cells, 0)), style.vmin, style.vmax)
    q[cells < 0] = BACKGROUND
    from PIL import Image

    image = Image.frombuffer("L", (TILE, TILE), np.ascontiguousarray(q), "raw", "L", 0, 1)
    image.putpalette(palette_bytes(cmap or style.cmap))
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=compress_level, transparency=BACKGROUND)
    return buf.getvalue()


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """``(west, east, south, north)`` of tile ``z/x/y`` in degrees.

    Examples
    --------
    >>> tile_bounds(1, 1, 0)
    (0.0, 180.0, 0.0, 85.0511287798066)
    """
    n = 1 << z

    def lat(row: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return (x / n * 360.0 - 180.0, (x + 1) / n * 360.0 - 180.0, lat(y + 1), lat(y))


def lonlat_pixel(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """The pixel ``(column, row)`` of the Web Mercator world at ``zoom`` holding lon/lat.

    Longitudes wrap; latitudes beyond ±85.05° are clamped to the edge rows.

    Examples
    --------
    >>> lonlat_pixel(0.0, 0.0, 0), lonlat_pixel(-180.0, 85.06, 0), lonlat_pixel(360.0, 0.0, 1)
    ((128, 128), (0, 0), (256, 256))
    """
    world = TILE << zoom
    col = int(((lon + 180.0) % 360.0) / 360.0 * world)
    lat = max(-MERCATOR_MAX_LAT, min(MERCATOR_MAX_LAT, lat))
    y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * world
    return min(col, world - 1), min(max(int(y), 0), world - 1)
