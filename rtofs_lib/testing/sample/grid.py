"""The tripolar grid of Global RTOFS: named sizes, coordinates and the grid spec parser.

A Mercator band from 78.64°S to 47°N, then a curvilinear Arctic patch whose two poles sit
over Canada and Siberia, and a last row that repeats the one before (the fold).

Examples
--------
>>> grid_shape("small"), grid_shape("66x90")
((330, 450), (66, 90))
>>> lat, lon = make_grid(*grid_shape("66x90"))
>>> lat.shape, lat.dtype.name, bool((lat[-1] == lat[-2]).all())
((66, 90), 'float32', True)
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import numpy as np

from rtofs_lib.errors import RtofsError

__all__ = ["GRIDS", "SampleError", "grid_coords", "grid_shape", "make_grid"]

#: Named grid sizes as (ny, nx): the real 1/12° grid and a 10x coarser one for tests.
GRIDS: dict[str, tuple[int, int]] = {"full": (3298, 4500), "small": (330, 450)}

_FULL = GRIDS["full"]
_MIN_NY, _MIN_NX = 12, 12
_LON0 = 74.16  # longitude of column 1
_LAT_SOUTH = -78.64  # latitude of row 1
_LAT_JOIN = 47.0  # Mercator band / Arctic patch boundary
_LAT_POLES = 62.0  # latitude of the two grid poles (over Canada and Siberia)


class SampleError(RtofsError, ValueError):
    """A bad request to the synthetic file generator (grid spec, product, field override)."""


def grid_shape(spec: str | Sequence[int]) -> tuple[int, int]:
    """Return ``(ny, nx)`` for ``"full"``, ``"small"``, ``"NYxNX"`` (e.g. ``"660x900"``) or a pair.

    Raises
    ------
    SampleError
        If the spec is not one of those forms, or the grid is smaller than 12x12.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in GRIDS:
            return GRIDS[text]
        m = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text)
        if not m:
            raise SampleError(
                f"bad grid {spec!r}; use 'full' (3298x4500), 'small' (330x450) "
                "or NYxNX rows by columns, e.g. 660x900"
            )
        ny, nx = int(m.group(1)), int(m.group(2))
    else:
        try:
            ny, nx = (int(v) for v in spec)
        except (TypeError, ValueError):
            raise SampleError(f"bad grid {spec!r}; give a name, 'NYxNX' or (ny, nx)") from None
    if ny < _MIN_NY or nx < _MIN_NX:
        raise SampleError(
            f"grid {ny}x{nx} is too small; a tripolar grid needs at least {_MIN_NY}x{_MIN_NX}"
        )
    return ny, nx


def _merc(lat: float | np.ndarray) -> np.ndarray:
    return np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))


def _inv_merc(y: np.ndarray) -> np.ndarray:
    return np.degrees(2 * np.arctan(np.exp(y)) - np.pi / 2)


#: Rows of the Mercator band of the full grid (0.08° spacing from 78.64°S to 47°N).
_FULL_MERC_ROWS = round(float(_merc(_LAT_JOIN) - _merc(_LAT_SOUTH)) / math.radians(0.08)) + 1


def _merc_rows(ny: int) -> int:
    """Rows of the Mercator band (the last one at 47°N) for a grid of ``ny`` rows."""
    return int(min(max(3, round(ny * _FULL_MERC_ROWS / _FULL[0])), ny - 3))


def _arctic_cap(t: np.ndarray, lon_ref: np.ndarray, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude of cap rows at ``t`` (1 at the 47°N join, 0 at the fold line).

    In the polar stereographic plane: confocal ellipses around two foci (the grid poles)
    blended into the 47°N circle.
    """
    dx = 360.0 / nx
    r_join = math.tan(math.radians(90 - _LAT_JOIN) / 2)
    a = math.tan(math.radians(90 - _LAT_POLES) / 2)
    mu = (math.acosh(r_join / a) * t)[:, None]
    g = (t**2)[:, None]
    theta_p = _LON0 + (nx - 1) * dx / 2  # pole meridian: column pairs i, nx-1-i meet
    nu = np.radians(lon_ref - theta_p)[None, :]
    zr = a * np.cosh(mu) * np.cos(nu)
    zi = a * (np.sinh(mu) + g * np.exp(-mu)) * np.sin(nu)
    lat = 90.0 - 2.0 * np.degrees(np.arctan(np.hypot(zr, zi)))
    cap_lon = theta_p + np.degrees(np.arctan2(zi, zr))
    return lat, lon_ref + (cap_lon - lon_ref + 180.0) % 360.0 - 180.0


def grid_coords(rows: np.ndarray, cols: np.ndarray, ny: int, nx: int) -> tuple:
    """Latitude/longitude (float64) at fractional row/column indices (rows <= ny - 2).

    Rows up to the join are a Mercator band; beyond it a bipolar cap, so row ``ny - 2`` is
    the fold line from one pole over the North Pole to the other and back.
    """
    rows = np.asarray(rows, dtype=np.float64)
    dx = 360.0 / nx
    lon_ref = _LON0 + dx * np.asarray(cols, dtype=np.float64)
    n_merc = _merc_rows(ny)
    cap_rows = ny - 1 - n_merc  # cap rows after the join row, the fold line included
    lat = np.empty((rows.size, lon_ref.size))
    lon = np.empty_like(lat)
    band = rows <= n_merc - 1
    y0, y1 = _merc(_LAT_SOUTH), _merc(_LAT_JOIN)
    lat[band] = _inv_merc(y0 + rows[band] * (y1 - y0) / (n_merc - 1))[:, None]
    lon[band] = lon_ref[None, :]
    if (~band).any():
        t = 1.0 - (rows[~band] - (n_merc - 1)) / cap_rows  # 1 at the join, 0 at the fold
        lat[~band], lon[~band] = _arctic_cap(t, lon_ref, nx)
    return lat, lon


@functools.lru_cache(maxsize=4)
def make_grid(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the 2-D float32 ``(Latitude, Longitude)`` of a tripolar grid of ny x nx.

    Longitudes start at 74.16 and rise past 360 by ``360/nx`` per column; rows are
    constant-latitude Mercator rows from -78.64 to 47°N, then a curvilinear Arctic patch;
    the last row repeats the one before (the fold). The arrays are cached and read-only.

    Examples
    --------
    >>> lat, lon = make_grid(330, 450)
    >>> round(float(lon[0, 0]), 2), round(float(lat[0, 0]), 2), bool((lat[-1] == lat[-2]).all())
    (74.16, -78.64, True)
    """
    ny, nx = grid_shape((ny, nx))
    lat, lon = grid_coords(np.arange(ny - 1), np.arange(nx), ny, nx)
    lat = np.vstack([lat, lat[-1:]]).astype(np.float32)
    lon = np.vstack([lon, lon[-1:]]).astype(np.float32)
    lat.flags.writeable = False
    lon.flags.writeable = False
    return lat, lon
