"""Land and sea floor of the synthetic ocean, from simplified continent outlines.

The outlines (:mod:`rtofs_lib.testing._continents`) are rasterised once onto a 0.05°
longitude/latitude raster; grid cells look their land flag up in it, and the sea floor
deepens with the distance from the nearest coast.

Examples
--------
>>> land = land_mask(66, 90)
>>> land.shape, land.dtype.name, 0.2 < float(land.mean()) < 0.5
((66, 90), 'bool', True)
"""

from __future__ import annotations

import functools

import numpy as np

from rtofs_lib.testing.sample.grid import make_grid

__all__ = ["coast_distance", "land_mask", "lookup"]

_RASTER_RES = 0.05  # degrees per cell of the land raster


def _rasterise(rings: list, lat_c: np.ndarray, ncol: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Even-odd fill of one continent's rings: its window of the raster and the cells inside."""
    res, nrow = _RASTER_RES, lat_c.size
    pts = np.concatenate([np.asarray(r, dtype=np.float64) for r in rings])
    r0 = max(0, int((pts[:, 1].min() + 90) / res) - 1)
    r1 = min(nrow, int((pts[:, 1].max() + 90) / res) + 2)
    c0 = max(0, int((pts[:, 0].min() + 180) / res) - 1)
    c1 = min(2 * ncol, int((pts[:, 0].max() + 180) / res) + 2)
    toggles = np.zeros((r1 - r0, c1 - c0 + 1), dtype=np.uint8)
    for ring in rings:
        x0, y0 = np.asarray(ring, dtype=np.float64).T
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        yc = lat_c[r0:r1]
        cross = (y0[:, None] <= yc[None, :]) != (y1[:, None] <= yc[None, :])
        e, r = np.nonzero(cross)
        x = x0[e] + (yc[r] - y0[e]) * (x1[e] - x0[e]) / (y1[e] - y0[e])
        col = np.clip(np.ceil((x + 180.0) / res - 0.5).astype(np.int64) - c0, 0, c1 - c0)
        np.add.at(toggles, (r, col), 1)
    inside = (np.cumsum(toggles, axis=1, dtype=np.uint8) & 1).astype(bool)[:, :-1]
    return (slice(r0, r1), slice(c0, c1)), inside


@functools.cache
def _land_raster() -> np.ndarray:
    """Rasterise the continent outlines onto a 0.05° lon/lat raster (True = land)."""
    from rtofs_lib.testing._continents import OUTLINES

    res = _RASTER_RES
    nrow, ncol = round(180 / res), round(360 / res)
    lat_c = -90.0 + (np.arange(nrow) + 0.5) * res
    wide = np.zeros((nrow, 2 * ncol), dtype=bool)  # longitudes -180..540
    for rings in OUTLINES.values():
        window, inside = _rasterise(rings, lat_c, ncol)
        wide[window] |= inside
    return wide[:, :ncol] | wide[:, ncol:]


def lookup(raster: np.ndarray, res: float, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Values of a global lon/lat ``raster`` of ``res`` degrees at grid points ``lat, lon``."""
    rows = np.clip(((lat + 90.0) / res).astype(np.int32), 0, raster.shape[0] - 1)
    cols = ((lon + 180.0) / res).astype(np.int32) % raster.shape[1]
    return raster[rows, cols]


@functools.lru_cache(maxsize=4)
def land_mask(ny: int, nx: int) -> np.ndarray:
    """True where the cell of the ny x nx grid is land (read-only, cached per grid)."""
    lat, lon = make_grid(ny, nx)
    land = lookup(_land_raster(), _RASTER_RES, lat, lon)
    land.flags.writeable = False
    return land


@functools.cache
def coast_distance() -> tuple[np.ndarray, float]:
    """Distance (degrees) from each 0.25° ocean cell to the nearest land cell, and 0.25."""
    from scipy import ndimage

    f = 5
    land = _land_raster()
    coarse = land.reshape(land.shape[0] // f, f, land.shape[1] // f, f).mean(axis=(1, 3)) > 0.5
    pad = 60  # wrap in longitude
    padded = np.concatenate([coarse[:, -pad:], coarse, coarse[:, :pad]], axis=1)
    dist = ndimage.distance_transform_edt(~padded)[:, pad:-pad] * (_RASTER_RES * f)
    return dist.astype(np.float32), _RASTER_RES * f
