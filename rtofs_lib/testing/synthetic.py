"""Synthetic Global RTOFS files with the exact structure of the real ones.

The files match NCEP's netCDF output (``shared/rtofs/cdl/*.cdl`` and ``format.md``):
dimension and variable names and order, dtypes, every attribute in order, netCDF-4 with
deflate level 1 and no shuffle, the chunk shapes netCDF-C 4.7.4 picks (the ones NCEP's
files have), ``_FillValue`` 2**100 on land and below the sea floor, ``valid_range`` equal
to the data range, the tripolar grid (Mercator band from 78.64°S to 47°N, a curvilinear
Arctic patch with two poles over Canada and Siberia, a duplicated fold row) and the
pre-2020 NETCDF3 variant. The data look like an ocean: warm tropics and cold poles,
the Gulf Stream, Kuroshio and Antarctic Circumpolar fronts, mesoscale eddies that drift
smoothly from hour to hour, river plumes, sea ice, a thermocline, a land mask drawn from
simplified continent outlines and a sea floor.

Examples
--------
>>> import tempfile
>>> from rtofs_lib import synthetic
>>> archive = tempfile.mkdtemp()
>>> [p.name for p in synthetic.write_sample(archive, "20260708", steps="n024,f001")]
['rtofs_glo_2ds_n024_prog.nc', 'rtofs_glo_2ds_f001_prog.nc']
>>> synthetic.grid_shape("small"), synthetic.grid_shape("66x90")
((330, 450), (66, 90))
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import re
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtofs_lib.errors import NotRtofsNameError, RtofsError
from rtofs_lib.fetch import names

#: Named grid sizes as (ny, nx): the real 1/12° grid and a 10x coarser one for tests.
GRIDS: dict[str, tuple[int, int]] = {"full": (3298, 4500), "small": (330, 450)}
#: ``_FillValue`` of every data variable (2**100, as HYCOM's ``horout`` writes it).
FILL_VALUE = np.float32(2.0**100)
#: Experiment number of v2.x files (2026) and of the pre-2020 NETCDF3 files (2015).
EXPERIMENT = "93.1"
LEGACY_EXPERIMENT = "90.9"
#: Depth levels (m) of the daily global z-level files (33) and the regional 6-hourly ones (40).
# fmt: off
DEPTHS_3Z = (0, 10, 20, 30, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 700, 800,
             900, 1000, 1100, 1200, 1300, 1400, 1500, 1750, 2000, 2500, 3000, 3500, 4000,
             4500, 5000, 5500)
DEPTHS_HVR = (0, 2, 4, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100,
              125, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 900, 1000, 1250, 1500,
              2000, 2500, 3000, 4000, 5000)
# fmt: on
#: Regional windows of the full grid: (i origin, j origin, nx, ny), origins 1-based.
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "US_east": (2324, 1505, 742, 1710),
    "US_west": (1600, 1631, 1047, 1666),
    "alaska": (1335, 2150, 712, 850),
}

_FULL = GRIDS["full"]
_MIN_NY, _MIN_NX = 12, 12
_LON0 = 74.16  # longitude of column 1
_LAT_SOUTH = -78.64  # latitude of row 1
_LAT_JOIN = 47.0  # Mercator band / Arctic patch boundary
_LAT_POLES = 62.0  # latitude of the two grid poles (over Canada and Siberia)
_EPOCH = dt.datetime(1900, 12, 31)  # MT origin
_CLOCK0 = dt.datetime(2000, 1, 1)  # origin of the synthetic ocean's clock


class SampleError(RtofsError, ValueError):
    """A bad request to the synthetic file generator (grid spec, product, field override)."""


# --- grid --------------------------------------------------------------------------------------


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


def _grid_coords(rows: np.ndarray, cols: np.ndarray, ny: int, nx: int) -> tuple:
    """Latitude/longitude (float64) at fractional row/column indices (rows <= ny - 2).

    Rows up to the join are a Mercator band; beyond it a bipolar cap: in the polar
    stereographic plane, confocal ellipses around two foci (the grid poles) blended into
    the 47°N circle, so row ``ny - 2`` is the fold line from one pole over the North Pole
    to the other and back.
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
        r_join = math.tan(math.radians(90 - _LAT_JOIN) / 2)
        a = math.tan(math.radians(90 - _LAT_POLES) / 2)
        mu = (math.acosh(r_join / a) * t)[:, None]
        g = (t**2)[:, None]
        theta_p = _LON0 + (nx - 1) * dx / 2  # pole meridian: column pairs i, nx-1-i meet
        nu = np.radians(lon_ref - theta_p)[None, :]
        zr = a * np.cosh(mu) * np.cos(nu)
        zi = a * (np.sinh(mu) + g * np.exp(-mu)) * np.sin(nu)
        lat[~band] = 90.0 - 2.0 * np.degrees(np.arctan(np.hypot(zr, zi)))
        cap_lon = theta_p + np.degrees(np.arctan2(zi, zr))
        lon[~band] = lon_ref + (cap_lon - lon_ref + 180.0) % 360.0 - 180.0
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
    lat, lon = _grid_coords(np.arange(ny - 1), np.arange(nx), ny, nx)
    lat = np.vstack([lat, lat[-1:]]).astype(np.float32)
    lon = np.vstack([lon, lon[-1:]]).astype(np.float32)
    lat.flags.writeable = False
    lon.flags.writeable = False
    return lat, lon


# --- land and sea floor ------------------------------------------------------------------------

_RASTER_RES = 0.05  # degrees per cell of the land raster


@functools.cache
def _land_raster() -> np.ndarray:
    """Rasterise the continent outlines onto a 0.05° lon/lat raster (True = land)."""
    from rtofs_lib.testing._continents import OUTLINES

    res = _RASTER_RES
    nrow, ncol = round(180 / res), round(360 / res)
    lat_c = -90.0 + (np.arange(nrow) + 0.5) * res
    wide = np.zeros((nrow, 2 * ncol), dtype=bool)  # longitudes -180..540
    for rings in OUTLINES.values():
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
        wide[r0:r1, c0:c1] |= inside
    return wide[:, :ncol] | wide[:, ncol:]


def _lookup(raster: np.ndarray, res: float, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    rows = np.clip(((lat + 90.0) / res).astype(np.int32), 0, raster.shape[0] - 1)
    cols = ((lon + 180.0) / res).astype(np.int32) % raster.shape[1]
    return raster[rows, cols]


@functools.lru_cache(maxsize=4)
def _land_mask(ny: int, nx: int) -> np.ndarray:
    """True where the grid cell is land (read-only, cached per grid)."""
    lat, lon = make_grid(ny, nx)
    land = _lookup(_land_raster(), _RASTER_RES, lat, lon)
    land.flags.writeable = False
    return land


@functools.cache
def _coast_distance() -> tuple[np.ndarray, float]:
    """Distance (degrees) from each 0.25° ocean cell to the nearest land cell."""
    from scipy import ndimage

    f = 5
    land = _land_raster()
    coarse = land.reshape(land.shape[0] // f, f, land.shape[1] // f, f).mean(axis=(1, 3)) > 0.5
    pad = 60  # wrap in longitude
    padded = np.concatenate([coarse[:, -pad:], coarse, coarse[:, :pad]], axis=1)
    dist = ndimage.distance_transform_edt(~padded)[:, pad:-pad] * (_RASTER_RES * f)
    return dist.astype(np.float32), _RASTER_RES * f


# --- the synthetic ocean -----------------------------------------------------------------------


def _chunk_defaults(shape: Sequence[int], unlimited: Sequence[bool], type_size: int) -> tuple:
    """The chunk shape netCDF-C 4.7.4 picks by default (``nc4_find_default_chunksizes2``).

    NCEP's writer never sets chunking, so this reproduces the real files' chunks:
    (1, 825, 1125) for a 2-D field of the full grid, (1, 3, 413, 563) for the 33-level
    z files.
    """
    default_chunk, default_1d_unlim = 4194304, 4096
    ndims = len(shape)
    chunks = [0] * ndims
    num_values = np.float32(1.0)
    num_unlim = 0
    for d in range(ndims):
        if unlimited[d]:
            num_unlim += 1
            chunks[d] = 1
        else:
            num_values = np.float32(num_values * np.float32(shape[d]))
    if ndims == 1 and num_unlim == 1:
        return (min(default_chunk // type_size, default_1d_unlim) // type_size,)
    for d in range(ndims):
        if not chunks[d]:
            ratio = default_chunk / float(np.float32(num_values * np.float32(type_size)))
            size = ratio ** (1.0 / (ndims - num_unlim)) * shape[d] - 0.5
            size = max(0, int(size))
            chunks[d] = max(1, min(size, shape[d]))
    for d in range(ndims):
        n = (shape[d] + chunks[d] - 1) // chunks[d] if shape[d] else 0
        if n:
            chunks[d] -= (n * chunks[d] - shape[d]) // n
    return tuple(chunks)


def _gauss(lonw: np.ndarray, lat: np.ndarray, lon0, lat0, dlon, dlat) -> np.ndarray:
    dl = (lonw - lon0 + 180.0) % 360.0 - 180.0
    return np.exp(-((dl / dlon) ** 2) - ((lat - lat0) / dlat) ** 2)


def _window(x: np.ndarray, lo: float, hi: float, edge: float) -> np.ndarray:
    return 0.25 * (1 + np.tanh((x - lo) / edge)) * (1 + np.tanh((hi - x) / edge))


# (lon, lat, half-width lon, half-width lat, amplitude °C): upwelling and warm pools
# fmt: off
_SST_BLOBS = (
    (-110, -1, 35, 4, -3.0), (-80, -15, 6, 10, -3.5), (12, -24, 5, 9, -4.0),
    (-124, 33, 5, 8, -3.0), (-18, 24, 5, 8, -2.0), (150, 2, 30, 10, 1.3),
    (75, 0, 25, 12, 0.8), (-80, 20, 12, 6, 1.0), (45, 20, 12, 8, 2.0), (18, 37, 15, 5, 3.0),
    (-52, 55, 10, 6, -3.0), (5, 67, 12, 6, 4.0), (150, 45, 10, 4, -3.0),
)
# fmt: on
# (lon, lat, half-width lon, half-width lat, amplitude psu): river plumes, marginal seas
# fmt: off
_SSS_BLOBS = (
    (-48, 1, 4, 4, -6.0), (11, -6, 2, 2, -4.0), (-89, 28.5, 1.5, 1, -5.0),
    (89, 20, 4, 3, -3.0), (18, 36, 14, 5, 2.3), (38, 22, 5, 8, 3.0), (20, 60, 8, 6, -27.0),
)
# fmt: on
# (lon, lat, half-width lon, half-width lat, weight): where eddies are strongest
# fmt: off
_EKE_BLOBS = (
    (-60, 38, 18, 5, 1.3), (150, 36, 15, 4, 1.1), (25, -40, 12, 4, 1.0),
    (-52, -42, 6, 5, 0.8), (155, -34, 6, 6, 0.6), (52, 10, 8, 6, 0.6),
)
# fmt: on


def _sigma0(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Potential density anomaly (kg/m3 - 1000) from a compact fit of UNESCO EOS-80."""
    return 28.1 - 0.0735 * t - 0.00469 * t * t + (0.802 - 0.002 * t) * (s - 35.0)


@dataclass(frozen=True)
class _Noise:
    """Band-limited random fields on the low-resolution index grid, drifting in time."""

    amp: np.ndarray  # spectral amplitude (my, mx//2+1)
    kx: np.ndarray
    ky: np.ndarray
    phase0: np.ndarray  # (channels, my, mx//2+1)
    omega: np.ndarray  # rad per hour


@functools.lru_cache(maxsize=4)
def _noise_bank(my: int, mx: int, cells_per_wave: float, seed: int) -> _Noise:
    ky = np.fft.fftfreq(my)[:, None]
    kx = np.fft.rfftfreq(mx)[None, :]
    k = np.hypot(kx, ky) * cells_per_wave
    amp = (k**2 * np.exp(-(k**2))).astype(np.float64)
    amp /= math.sqrt(float((amp**2).sum()) * 2.0 / (my * mx) ** 2)  # unit std in real space
    rng = np.random.default_rng([seed, my, mx, 7])
    phase0 = rng.uniform(0, 2 * np.pi, (4, *amp.shape))
    # decorrelation over ~2-3 weeks, plus a slow westward drift
    omega = rng.normal(0.0, 2 * np.pi / 1500.0, (4, *amp.shape)) + kx * 2 * np.pi / 24.0 * 0.1
    return _Noise(amp, kx, ky, phase0, omega)


class _Ocean:
    """The synthetic ocean at one valid time on one grid: low-resolution state + upsampling."""

    def __init__(
        self, ny: int, nx: int, when: dt.datetime, lead_hours: int, cycle: dt.date, seed: int
    ) -> None:
        self.ny, self.nx = ny, nx
        dx = 360.0 / nx
        self.f = max(1, round(0.3 / dx))
        self.my = math.ceil((ny - 2) / self.f) + 1
        self.mx = math.ceil(nx / self.f)
        self.when, self.lead, self.cycle, self.seed = when, lead_hours, cycle, seed
        self.hours = (when - _CLOCK0).total_seconds() / 3600.0
        lat, lon = _low_grid(ny, nx, self.my, self.mx)
        self.lat, self.lon = lat, lon
        self.state = self._surface()

    # -- low-resolution fields ------------------------------------------------------------------
    def _noise(self) -> dict[str, np.ndarray]:
        # eddies of ~350 km wavelength, at least 6 cells of a coarse grid
        cells = max(6.0, 350.0 / (360.0 / self.nx * 111.0 * self.f))
        bank = _noise_bank(self.my, self.mx, cells, self.seed)
        rng = np.random.default_rng([self.seed, self.cycle.toordinal(), 11])
        drift = rng.normal(0.0, 2 * np.pi / 2000.0, bank.phase0.shape) * self.lead
        spec = bank.amp * np.exp(1j * (bank.phase0 + bank.omega * self.hours + drift))
        s = (self.my, self.mx)
        psi, tn, sn, hn = (np.fft.irfft2(spec[c], s=s) for c in range(4))
        gx = np.fft.irfft2(spec[0] * (2j * np.pi * bank.kx), s=s)
        gy = np.fft.irfft2(spec[0] * (2j * np.pi * bank.ky), s=s)
        gnorm = max(float(np.hypot(gx, gy).std()), 1e-12)
        out = {"psi": psi, "t": tn, "s": sn, "h": hn, "psi_x": gx / gnorm, "psi_y": gy / gnorm}
        return {k: v.astype(np.float32) for k, v in out.items()}

    def _surface(self) -> dict[str, np.ndarray]:
        lat, lon = self.lat, self.lon
        lonw = (lon + 180.0) % 360.0 - 180.0
        n = self._noise()
        t_days = self.hours / 24.0
        doy = self.when.timetuple().tm_yday + self.when.hour / 24.0
        season = math.sin(2 * math.pi * (doy - 80.0) / 365.25)  # +1 in northern summer
        winter = np.where(lat >= 0, max(0.0, -season), max(0.0, season)).astype(np.float32)
        alat = np.abs(lat)

        # temperature: latitude profile, seasonal shift, polar cooling, regional blobs
        phi = lat - np.float32(6.0 * season)
        sst = -1.8 + 31.0 * np.cos(np.radians(phi)) ** 2
        sst -= 8.0 / (1.0 + np.exp(-(np.abs(phi) - 65.0) / 4.0))
        for b in _SST_BLOBS:
            sst += b[4] * _gauss(lonw, lat, *b[:4])
        sss = 34.0 + 2.0 * np.exp(-(((alat - 25.0) / 11.0) ** 2))
        sss -= 0.6 * np.exp(-(((lat - 6.0) / 6.0) ** 2))
        sss += 0.6 * _window(lonw, -80, 20, 4) * _window(lat, -40, 60, 4)
        sss -= 3.0 / (1.0 + np.exp(-(lat - 72.0) / 3.0))
        for b in _SSS_BLOBS:
            sss += b[4] * _gauss(lonw, lat, *b[:4])
        ssh = 0.45 * np.exp(-(((alat - 28.0) / 14.0) ** 2)) + 0.15 * np.exp(-((lat / 8.0) ** 2))
        u = -0.5 * np.exp(-(((lat - 1.5) / 3.0) ** 2)) + 0.35 * np.exp(-(((lat - 7.0) / 1.5) ** 2))
        u *= 1.0 - 0.9 * _gauss(lonw, lat, 20, 0, 12, 30)  # not across Africa's longitudes
        v = np.zeros_like(u)
        eke = 0.35 + np.zeros_like(lat)
        for b in _EKE_BLOBS:
            eke += b[4] * _gauss(lonw, lat, *b[:4])

        # fronts: a meandering path, a tanh step across it and a jet along it
        def front(path_lat, slope, width, w, d_sst, d_ssh, jet, reach=None):
            nonlocal sst, ssh, u, v, eke
            d = (lat - path_lat) / width
            step = np.tanh(d)
            if reach is not None:  # a step felt only within `reach` degrees of the path
                step *= np.exp(-(((lat - path_lat) / reach) ** 2))
            sst += w * d_sst * step
            ssh += w * d_ssh * step
            speed = w * jet * np.exp(-(d**2))
            ang = np.arctan2(slope, np.cos(np.radians(lat)))
            u += speed * np.cos(ang)
            v += speed * np.sin(ang)
            eke += 1.2 * w * np.exp(-((d / 3.0) ** 2))

        def meander(amps, waves, speeds, phase):
            lat_off = np.zeros_like(lonw)
            slope = np.zeros_like(lonw)
            for a, k, c, p in zip(amps, waves, speeds, phase, strict=True):
                arg = np.radians(lonw) * k + c * t_days + p
                lat_off += a * np.sin(arg)
                slope += a * k * np.pi / 180.0 * np.cos(arg)
            return lat_off, slope

        m, dm = meander((0.9, 0.5), (45, 80), (0.11, -0.07), (0.3, 1.9))
        gs_lat = 35.0 + (lonw + 76.0) * 0.22 + m * _window(lonw, -68, 0, 3)
        front(
            gs_lat,
            0.22 + dm,
            0.7,
            _window(lonw, -80, -42, 3),
            -2.5,
            -0.55,
            1.6,
            reach=6.0,
        )
        m, dm = meander((0.8, 0.4), (40, 70), (0.09, -0.05), (2.1, 0.4))
        ku_lat = 35.0 + (lonw - 140.0) * 0.06 + m * _window(lonw, 143, 200, 3)
        front(
            ku_lat,
            0.06 + dm,
            0.8,
            _window(lonw, 133, 172, 3),
            -2.2,
            -0.5,
            1.3,
            reach=6.0,
        )
        for base, amp, shift, ph in ((-46.0, 3.5, 30.0, 0.7), (-53.0, 3.0, 10.0, 2.6)):
            m, dm = meander((0.8, 0.5, 0.3), (12, 25, 41), (0.05, -0.08, 0.06), (ph, 1.0, 4.0))
            path = base + amp * np.sin(np.radians(lonw - shift)) + m
            slope = amp * np.cos(np.radians(lonw - shift)) * np.pi / 180.0 + dm
            front(path, slope, 1.2, _window(lat, -70, -30, 3), 1.3, 0.45, 0.6)
            sst -= 1.3 * _window(lat, -70, -30, 3)  # keep the warm side unchanged
            ssh -= 0.45 * _window(lat, -70, -30, 3)

        # mesoscale eddies (warm core = high SSH), geostrophic velocities, diurnal warming
        hemi = np.tanh(lat / 4.0)
        ssh += 0.16 * eke * n["psi"]
        sst += 0.8 * eke * n["psi"] + 0.25 * n["t"]
        sss += 0.08 * eke * n["psi"] + 0.06 * n["s"]
        u += -0.25 * eke * hemi * n["psi_y"]
        v += 0.25 * eke * hemi * n["psi_x"]
        local_hour = self.when.hour + self.when.minute / 60.0 + lonw / 15.0
        sst += 0.25 * np.cos(2 * np.pi * (local_hour - 15.0) / 24.0) * np.exp(-((lat / 30.0) ** 2))

        speed = np.hypot(u, v) + 1e-6  # soft limit: no current faster than ~2.6 m/s
        u, v = (c * (2.6 * np.tanh(speed / 2.6) / speed) for c in (u, v))

        # sea ice where the raw temperature is below freezing; soft floor at -1.8 °C
        ice = np.clip((-1.2 - sst) / 2.0, 0.0, 1.0)
        sst = -1.8 + 0.3 * np.logaddexp(0.0, (sst + 1.8) / 0.3)
        mld = 15.0 + 60.0 * (alat / 60.0) ** 2 * (1.0 + 1.5 * winter) + 6.0 * n["h"]
        mld += 500.0 * winter * (_gauss(lonw, lat, -52, 58, 6, 3) + _gauss(lonw, lat, 0, 72, 8, 3))
        mld = np.clip(mld, 5.0, 1000.0)
        thick = ice * (0.5 + 2.5 * np.clip((alat - 70.0) / 15.0, 0, 1)) * np.where(lat > 0, 1, 0.5)
        out = {
            "sst": sst,
            "sss": np.clip(sss, 0.5, 40.5),
            "ssh": ssh,
            "u": u,
            "v": v,
            "mld": mld,
            "sbl": mld * 1.25 + 3.0,
            "ice": ice,
            "ice_thk": thick,
            "ice_t": np.where(ice > 0, -1.8 - ice * (6.0 + 10.0 * winter), 0.0),
            "ice_u": ice * (0.3 * u + 0.04),
            "ice_v": ice * 0.3 * v,
            "thermo": 120.0 + 380.0 * np.clip(alat / 60.0, 0, 1),
            "euc": np.exp(-((lat / 1.5) ** 2)) * (1.0 - _gauss(lonw, lat, 20, 0, 12, 30)),
        }
        out["rho"] = _sigma0(out["sst"], out["sss"])
        out["depth"] = self._sea_floor(lonw)
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def _sea_floor(self, lonw: np.ndarray) -> np.ndarray:
        dist, res = _coast_distance()
        d = _lookup(dist, res, self.lat, self.lon)
        floor = 40.0 + 5400.0 * (1.0 - np.exp(-((d / 2.2) ** 1.5)))
        ridge = (lonw + 30.0 - 0.25 * self.lat) / 5.0  # a Mid-Atlantic ridge
        floor -= 2500.0 * np.exp(-(ridge**2)) * _window(self.lat, -55, 65, 3)
        return floor

    # -- full-resolution fields -----------------------------------------------------------------
    def field(self, key: str, rows: slice, cols: slice) -> np.ndarray:
        """Bilinear upsampling of one low-resolution field to grid rows/cols (float32).

        Rows index the ``ny - 1`` distinct rows (the fold duplicate is added by the caller).
        """
        low = self.state[key]
        j = np.arange(self.ny - 1)[rows]
        i = np.arange(self.nx)[cols]
        p = j * ((self.my - 1) / (self.ny - 2))
        p0 = np.clip(np.floor(p).astype(np.int64), 0, self.my - 2)
        wp = (p - p0).astype(np.float32)[:, None]
        q = i * (self.mx / self.nx)
        q0 = np.floor(q).astype(np.int64)
        wq = (q - q0).astype(np.float32)[None, :]
        lo, hi = int(p0.min()), int(p0.max()) + 2
        band = low[lo:hi]
        tmp = band[:, q0 % self.mx] * (1 - wq) + band[:, (q0 + 1) % self.mx] * wq
        return tmp[p0 - lo] * (1 - wp) + tmp[p0 + 1 - lo] * wp


@functools.lru_cache(maxsize=4)
def _low_grid(ny: int, nx: int, my: int, mx: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.linspace(0.0, ny - 2.0, my)
    cols = np.arange(mx) * (nx / mx)
    lat, lon = _grid_coords(rows, cols, ny, nx)
    return lat.astype(np.float32), lon.astype(np.float32)


# --- file layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    name: str
    standard_name: str | None
    units: str
    long_name: str  # "{e}" stands for the experiment number
    layered: bool = False  # dimensions (MT, Layer, Y, X)


_PROG = (
    _Var("u_velocity", "eastward_sea_water_velocity", "m/s", " u-veloc. [{e}H]", True),
    _Var("v_velocity", "northward_sea_water_velocity", "m/s", " v-veloc. [{e}H]", True),
    _Var("sst", "sea_surface_temperature", "degC", " sea surf. temp.   [{e}H]"),
    _Var("sss", "sea_surface_salinity", "psu", "sea surf. salnity  [{e}H]"),
    _Var("layer_density", "sea_water_potential_density", "sigma", " density [{e}H]", True),
)
_DIAG = (
    _Var("ssh", "sea_surface_elevation", "m", " sea surf. height  [{e}H]"),
    _Var(
        "u_barotropic_velocity",
        "barotropic_eastward_sea_water_velocity",
        "m/s",
        "    baro. u-vel.   [{e}H]",
    ),
    _Var(
        "v_barotropic_velocity",
        "barotropic_northward_sea_water_velocity",
        "m/s",
        "    baro. v-vel.   [{e}H]",
    ),
    _Var("surface_boundary_layer_thickness", None, "m", "bnd.layr.thickness [{e}H]"),
    _Var("mixed_layer_thickness", "ocean_mixed_layer_thickness", "m", "mix.layr.thickness [{e}H]"),
)
_ICE = tuple(
    _Var(name, f"{name} [09.8H]|", units, f"layer=** {short:<9} [00.0H]")
    for name, units, short in (
        ("ice_coverage", "", "icecov"),
        ("ice_temperature", "degC", "icetemp"),
        ("ice_thickness", "m", "icethck"),
        ("ice_uvelocity", "m/s", "iceuvel"),
        ("ice_vvelocity", "m/s", "icevvel"),
    )
)
_T3 = _Var("temperature", "sea_water_potential_temperature", "degC", "  temp [{e}H]")
_S3 = _Var("salinity", "sea_water_salinity", "psu", " salinity [{e}H]")
_U3 = _Var("u", "eastward_sea_water_velocity", "m/s", " u-veloc. [{e}H]")
_V3 = _Var("v", "northward_sea_water_velocity", "m/s", " v-veloc. [{e}H]")
_VARS: dict[str, tuple[_Var, ...]] = {
    "prog": _PROG,
    "diag": _DIAG,
    "ice": _ICE,
    "3ztio": (_T3,),
    "3zsio": (_S3,),
    "3zuio": (_U3,),
    "3zvio": (_V3,),
    "US_east": (_U3, _V3, _T3, _S3),
    "US_west": (_U3, _V3, _T3, _S3),
    "alaska": (_U3, _V3, _T3, _S3),
}
# surface state keys behind each 2-D variable
_SOURCE = {
    "u_velocity": "u",
    "v_velocity": "v",
    "sst": "sst",
    "sss": "sss",
    "layer_density": "rho",
    "ssh": "ssh",
    "u_barotropic_velocity": "u",
    "v_barotropic_velocity": "v",
    "surface_boundary_layer_thickness": "sbl",
    "mixed_layer_thickness": "mld",
    "ice_coverage": "ice",
    "ice_temperature": "ice_t",
    "ice_thickness": "ice_thk",
    "ice_uvelocity": "ice_u",
    "ice_vvelocity": "ice_v",
}
_SCALE = {"u_barotropic_velocity": 0.3, "v_barotropic_velocity": 0.3}


def variables(product: str) -> tuple[str, ...]:
    """Names of the data variables of ``product``'s files, in file order."""
    names.family(product)
    return tuple(v.name for v in _VARS[product])


def _region_window(product: str, ny: int, nx: int) -> tuple[slice, slice]:
    """Rows and columns of a regional window, scaled from the full grid."""
    i0, j0, wx, wy = REGIONS[product]
    sy, sx = ny / _FULL[0], nx / _FULL[1]
    r0 = min(round((j0 - 1) * sy), ny - 3)
    c0 = round((i0 - 1) * sx)
    hy = max(2, min(round(wy * sy), ny - 1 - r0))
    hx = max(2, min(round(wx * sx), nx - c0))
    return slice(r0, r0 + hy), slice(c0, c0 + hx)


def _date_number(when: dt.datetime) -> float:
    day = dt.datetime(when.year, when.month, when.day)
    return float(f"{when:%Y%m%d}") + (when - day).total_seconds() / 86400.0


def _finite_range(a: np.ndarray) -> np.ndarray:
    finite = a[~np.isnan(a)]
    if finite.size == 0:
        return np.zeros(2, dtype=np.float32)
    return np.array([finite.min(), finite.max()], dtype=np.float32)


class _Writer:
    """Writes one file: the layout of the real product and data from :class:`_Ocean`."""

    def __init__(
        self,
        product: str,
        date: str | dt.date,
        step: str,
        ny: int,
        nx: int,
        legacy: bool,
        seed: int,
        fields: Mapping[str, np.ndarray] | None,
    ) -> None:
        self.product, self.step, self.legacy, self.seed = product, step, legacy, seed
        self.family = names.family(product)
        self.cycle = names.parse_date(date)
        self.when = names.valid_time(self.cycle, step)
        kind, hours = names.parse_step(step)
        self.lead = hours if kind == "f" else 0
        self.gny, self.gnx = ny, nx
        self.vars = _VARS[product]
        if self.family == "3dz_6hrly":
            self.rows, self.cols = _region_window(product, ny, nx)
        else:
            self.rows, self.cols = slice(0, ny), slice(0, nx)
        self.ny = self.rows.stop - self.rows.start
        self.nx = self.cols.stop - self.cols.start
        self.depths = {"2ds": None, "3dz_daily": DEPTHS_3Z, "3dz_6hrly": DEPTHS_HVR}[self.family]
        self.fields = self._check_fields(fields or {})
        self._ocean: _Ocean | None = None
        self._memo: dict[str, np.ndarray] = {}

    # -- inputs ---------------------------------------------------------------------------------
    def _check_fields(self, fields: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        known = {v.name: v for v in self.vars}
        out = {}
        for name, value in fields.items():
            if name not in known:
                raise SampleError(
                    f"field {name!r} is not a variable of {self.product} files; "
                    f"choose from {', '.join(known)}"
                )
            a = np.asarray(value, dtype=np.float32)
            want = [(self.ny, self.nx)]
            if self.depths:
                want.append((len(self.depths), self.ny, self.nx))
            elif known[name].layered:
                want.append((1, self.ny, self.nx))
            if a.shape not in want:
                raise SampleError(
                    f"field {name!r} has shape {a.shape}; {self.product} on this grid "
                    f"needs {' or '.join(str(w) for w in want)} (NaN marks land)"
                )
            out[name] = a
        return out

    @property
    def ocean(self) -> _Ocean:
        if self._ocean is None:
            self._ocean = _Ocean(self.gny, self.gnx, self.when, self.lead, self.cycle, self.seed)
        return self._ocean

    def _rows_distinct(self) -> tuple[slice, bool]:
        """Rows to compute among the ny-1 distinct rows, and whether to add the fold copy."""
        if self.rows.stop == self.gny:
            return slice(self.rows.start, self.gny - 1), True
        return self.rows, False

    def _surface(self, var: _Var) -> np.ndarray:
        """The 2-D surface data of ``var`` with NaN on land (float32, ny x nx)."""
        if var.name in self.fields and self.fields[var.name].ndim == 2:
            return self.fields[var.name]
        if var.name in self.fields:
            return self.fields[var.name][0]
        key = {"temperature": "sst", "salinity": "sss", "u": "u", "v": "v"}.get(var.name)
        return self._compute(key or _SOURCE[var.name], _SCALE.get(var.name, 1.0))

    def _compute(self, key: str, scale: float = 1.0) -> np.ndarray:
        rows, fold = self._rows_distinct()
        a = self.ocean.field(key, rows, self.cols)
        if scale != 1.0:
            a *= np.float32(scale)
        if fold:
            a[-1] = 0.5 * (a[-1] + a[-1, ::-1])  # the fold row meets itself mirrored
            a = np.vstack([a, a[-1:]])
        a[self._land()] = np.nan
        return a

    def _land(self) -> np.ndarray:
        return _land_mask(self.gny, self.gnx)[self.rows, self.cols]

    def _full(self, key: str) -> np.ndarray:
        """A full-resolution field of the window, NaN on land, computed once per file."""
        if key not in self._memo:
            if key == "lat":
                self._memo[key] = make_grid(self.gny, self.gnx)[0][self.rows, self.cols]
            else:
                self._memo[key] = self._compute(key)
        return self._memo[key]

    def _level_slab(self, var: _Var, k0: int, k1: int, surface: np.ndarray) -> np.ndarray:
        """Data of depth levels k0..k1 (NaN on land and below the sea floor)."""
        if var.name in self.fields:
            a = self.fields[var.name]
            return np.broadcast_to(a, (k1 - k0, *a.shape[-2:])) if a.ndim == 2 else a[k0:k1]
        mld, floor = self._full("mld"), self._full("depth")
        out = np.empty((k1 - k0, self.ny, self.nx), dtype=np.float32)
        for k in range(k0, k1):
            z = float(self.depths[k])
            below = np.maximum(z - mld, np.float32(0.0))
            if var.name == "temperature":
                deep = 0.8 + 3.5 * math.exp(-z / 900.0)
                deep = deep - 1.5 * np.exp(-(((self._full("lat") + 75.0) / 8.0) ** 2))
                level = deep + (surface - deep) * np.exp(-below / self._full("thermo"))
            elif var.name == "salinity":
                deep = 34.7 - 0.35 * math.exp(-(((z - 900.0) / 350.0) ** 2))
                level = deep + (surface - deep) * np.exp(-below / np.float32(300.0))
            else:
                level = surface * np.float32(math.exp(-z / 500.0))
                if var.name == "u":
                    euc = np.float32(0.9 * math.exp(-(((z - 110.0) / 50.0) ** 2)))
                    level = level + euc * self._full("euc")
            level[z > floor] = np.nan
            out[k - k0] = level
        return out

    # -- writing --------------------------------------------------------------------------------
    def _job(self, var: _Var, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Data of one slab ready to write (fill on land) and, for the first, its range."""
        key = f"surface:{var.name}"
        if key not in self._memo:
            self._memo[key] = self._surface(var)
        if self.depths:
            slab = self._level_slab(var, k0, k1, self._memo[key])
        else:
            slab = self._memo.pop(key)[None]
        rng = _finite_range(slab[0]) if k0 == 0 else None
        return np.where(np.isnan(slab), FILL_VALUE, slab), rng

    def write(self, path: Path) -> None:
        """Write the file at ``path`` (netCDF-4, or NETCDF3_CLASSIC when legacy)."""
        import netCDF4

        exp = LEGACY_EXPERIMENT if self.legacy else EXPERIMENT
        nd = len(self.depths) if self.depths else 0
        zdim = "Depth" if nd else ("Layer" if any(v.layered for v in self.vars) else None)
        sizes = {"MT": 1, "Y": self.ny, "X": self.nx, "Layer": 1, "Depth": nd}
        kc = 1
        if nd:  # depth levels per chunk: write whole chunks
            kc = _chunk_defaults((1, nd, self.ny, self.nx), (True, False, False, False), 4)[1]
        jobs = [(v, k0, min(k0 + kc, nd or 1)) for v in self.vars for k0 in range(0, nd or 1, kc)]
        make_grid(self.gny, self.gnx)  # warm the caches before a second thread uses them
        _land_mask(self.gny, self.gnx)

        ds = netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC" if self.legacy else "NETCDF4")
        try:
            history = "archv2ncdf2d" if self.family == "2ds" else "archv2ncdf3z"
            ds.setncatts(dict(_GLOBAL_ATTRS, experiment="00.0" if self.product == "ice" else exp,
                              history=history))  # fmt: skip
            ds.createDimension("MT", None)
            ds.createDimension("Y", self.ny)
            ds.createDimension("X", self.nx)
            if zdim:
                ds.createDimension(zdim, sizes[zdim])

            def create(name, dtype, dims, attrs, fill=None):
                kw = {}
                if not self.legacy:
                    shape = [sizes[d] for d in dims]
                    unlim = [d == "MT" for d in dims]
                    chunks = _chunk_defaults(shape, unlim, np.dtype(dtype).itemsize)
                    kw = dict(zlib=True, complevel=1, shuffle=False, endian="little")
                    kw["chunksizes"] = chunks
                var = ds.createVariable(name, dtype, dims, fill_value=fill, **kw)
                var.set_auto_maskandscale(False)
                if not self.legacy and len(dims) > 2:  # compress chunk by chunk while writing
                    var.set_var_chunk_cache(size=2 * 4 * math.prod(var.chunking()))
                for key, value in attrs:
                    var.setncattr(key, value)
                return var

            coords = [
                ("MT", "f8", ("MT",), _MT_ATTRS),
                ("Date", "f8", ("MT",), _DATE_ATTRS),
                *([("Layer", "i4", ("Layer",), _LAYER_ATTRS)] if zdim == "Layer" else []),
                *([("Depth", "f4", ("Depth",), _DEPTH_ATTRS)] if zdim == "Depth" else []),
                ("Y", "i4", ("Y",), _Y_ATTRS),
                ("X", "i4", ("X",), _X_ATTRS),
                ("Latitude", "f4", ("Y", "X"), _LAT_ATTRS),
                ("Longitude", "f4", ("Y", "X"),
                 _LON_ATTRS[:2] if self.family == "3dz_6hrly" else _LON_ATTRS),
            ]  # fmt: skip
            cvars = {c[0]: create(*c) for c in coords}

            def define(v: _Var, rng: np.ndarray):
                dims = ("MT", zdim, "Y", "X") if (v.layered or nd) else ("MT", "Y", "X")
                attrs = [("coordinates", "Longitude Latitude Date")]
                if v.standard_name is not None:
                    attrs.append(("standard_name", v.standard_name))
                attrs += [("units", v.units), ("valid_range", rng),
                          ("long_name", v.long_name.format(e=exp))]  # fmt: skip
                return create(v.name, "f4", dims, attrs, fill=FILL_VALUE)

            def put_coords():
                lat, lon = make_grid(self.gny, self.gnx)
                cvars["MT"][0] = (self.when - _EPOCH).total_seconds() / 86400.0
                cvars["Date"][0] = _date_number(self.when)
                if zdim == "Layer":
                    cvars["Layer"][:] = np.array([1], dtype=np.int32)
                elif zdim == "Depth":
                    cvars["Depth"][:] = np.asarray(self.depths, dtype=np.float32)
                cvars["Y"][:] = np.arange(1, self.ny + 1, dtype=np.int32)
                cvars["X"][:] = np.arange(1, self.nx + 1, dtype=np.int32)
                cvars["Latitude"][:] = lat[self.rows, self.cols]
                cvars["Longitude"][:] = lon[self.rows, self.cols]

            if self.legacy:  # classic format: define everything, then write
                results = [self._job(*job) for job in jobs]
                dvars = [define(v, rng) for (v, _, _), (_, rng) in zip(jobs, results, strict=True)]
                put_coords()
                for var, (slab, _) in zip(dvars, results, strict=True):
                    var[0] = slab
                return
            # netCDF-4: compute the next slab in a second thread while this one compresses
            put_coords()
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = deque(pool.submit(self._job, *job) for job in jobs[:2])
                var = None
                for n, (v, k0, k1) in enumerate(jobs):
                    slab, rng = pending.popleft().result()
                    if n + 2 < len(jobs):
                        pending.append(pool.submit(self._job, *jobs[n + 2]))
                    if k0 == 0:
                        var = define(v, rng)
                    if nd:
                        var[0, k0:k1] = slab
                    else:
                        var[0] = slab if v.layered else slab[0]
        finally:
            ds.close()


_GLOBAL_ATTRS = {
    "Conventions": "CF-1.0",
    "title": "HYCOM ATLb2.00",
    "institution": "National Centers for Environmental Prediction",
    "source": "HYCOM archive file",
    "experiment": EXPERIMENT,
    "history": "archv2ncdf2d",
}
_MT_ATTRS = [("long_name", "time"), ("units", "days since 1900-12-31 00:00:00"),
             ("calendar", "standard"), ("axis", "T")]  # fmt: skip
_DATE_ATTRS = [("long_name", "date"), ("units", "day as %Y%m%d.%f"), ("C_format", "%13.4f"),
               ("FORTRAN_format", "(f13.4)")]  # fmt: skip
_LAYER_ATTRS = [("units", "layer"), ("positive", "down"), ("axis", "Z")]
_DEPTH_ATTRS = [("standard_name", "depth"), ("units", "m"), ("positive", "down"), ("axis", "Z")]
_Y_ATTRS = [("point_spacing", "even"), ("axis", "Y")]
_X_ATTRS = [("point_spacing", "even"), ("axis", "X")]
_LAT_ATTRS = [("standard_name", "latitude"), ("units", "degrees_north")]
_LON_ATTRS = [("standard_name", "longitude"), ("units", "degrees_east"),
              ("modulo", "360 degrees")]  # fmt: skip


# --- public API --------------------------------------------------------------------------------


def write_file(
    path: str | os.PathLike,
    product: str,
    date: str | dt.date,
    step: str,
    *,
    grid: str | Sequence[int] = "small",
    legacy: bool = False,
    seed: int = 0,
    fields: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write one real-format RTOFS file (atomically: a temporary name, then a rename).

    Parameters
    ----------
    path
        Where to write; the name is not checked, so tests can write anything anywhere.
    product, date, step
        What the file holds: e.g. ``"prog"``, ``"20260708"``, ``"f024"`` (the valid time
        follows NOMADS' rule, see :func:`rtofs_lib.fetch.names.valid_time`).
    grid
        ``"full"`` (3298x4500), ``"small"`` (330x450) or ``"NYxNX"``. Regional products
        get their window of it.
    legacy
        Write the pre-2020 form: NETCDF3_CLASSIC, uncompressed, experiment 90.9 (2-D
        products only).
    seed
        Changes the eddies and meanders; the same arguments always give the same data.
    fields
        Data for named variables instead of the synthetic ocean: a (ny, nx) array (or
        (depth, ny, nx) for z-level products, (1, ny, nx) for layer variables); NaN marks
        land.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    SampleError
        For a bad grid, a legacy request for a 3-D product or a bad field override.
    NotRtofsNameError
        For an unknown product or a step NOMADS does not publish for it.
    """
    path = Path(path)
    names.family(product)
    if step not in names.steps_for(product):
        names.expand_steps(step, product)  # raises with the valid range
    ny, nx = grid_shape(grid)
    if legacy and names.family(product) != "2ds":
        raise SampleError(
            f"{product}: the pre-2020 NETCDF3 form exists only for 2-D products (prog, diag, "
            "ice); drop legacy=True for 3-D files"
        )
    writer = _Writer(product, date, step, ny, nx, legacy, seed, fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        writer.write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def legacy_cadence(step: str) -> str:
    """The cadence tag of a pre-2020 2-D name: ``1hrly`` up to 72 h, then ``3hrly``."""
    return "1hrly" if names.parse_step(step)[1] <= 72 else "3hrly"


def steps_by_product(
    spec: str | Iterable[str] | None, products: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Expand a step spec such as ``"n024,f000-f003"`` for each product.

    A range keeps the steps each product publishes inside it; a single step goes to the
    products that publish it (it must be published by at least one).

    Raises
    ------
    NotRtofsNameError
        For a malformed spec or a step no requested product publishes.
    """
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "all")):
        return {p: names.steps_for(p) for p in products}
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    for item in items:
        if "-" not in item and not any(item in names.steps_for(p) for p in products):
            names.expand_steps(item, products[0])  # raises, naming the valid steps
    out = {}
    for p in products:
        published = names.steps_for(p)
        chosen = [s for item in items if "-" in item for s in names.expand_steps(item, p)]
        chosen += [item for item in items if "-" not in item and item in published]
        out[p] = tuple(s for s in published if s in set(chosen))
    return out


def write_sample(
    archive: str | os.PathLike,
    date: str | dt.date,
    *,
    steps: str | Iterable[str] | None = None,
    products: str | Iterable[str] = ("prog",),
    grid: str | Sequence[int] = "small",
    legacy: bool = False,
) -> list[Path]:
    """Write a day of files into ``archive/rtofs.YYYYMMDD/`` under their NOMADS names.

    Parameters
    ----------
    archive
        Archive root (created if missing).
    date
        Cycle date, ``YYYYMMDD`` or a date.
    steps
        A spec such as ``"n024,f000-f072"`` expanded per product (:func:`names.expand_steps`);
        ``None`` or ``"all"`` for every published step. A single step is written for the
        products that publish it.
    products
        Product codes or a spec such as ``"prog,diag"`` (``"all"`` for every product).
    grid, legacy
        As in :func:`write_file`; legacy names carry a cadence tag
        (``rtofs_glo_2ds_f001_1hrly_prog.nc``).

    Returns
    -------
    list of Path
        The files written, product by product in publication order of the steps.
    """
    prods = names.expand_products(products)
    grid_shape(grid)
    folder = Path(archive) / names.day_folder(date)
    written = []
    for product, product_steps in steps_by_product(steps, prods).items():
        for step in product_steps:
            cadence = legacy_cadence(step) if legacy and names.family(product) == "2ds" else None
            name = names.compose_name(product, step, cadence=cadence)
            written.append(write_file(folder / name, product, date, step, grid=grid, legacy=legacy))
    return written


__all__ = [
    "DEPTHS_3Z",
    "DEPTHS_HVR",
    "EXPERIMENT",
    "FILL_VALUE",
    "GRIDS",
    "LEGACY_EXPERIMENT",
    "REGIONS",
    "NotRtofsNameError",
    "SampleError",
    "grid_shape",
    "legacy_cadence",
    "make_grid",
    "steps_by_product",
    "variables",
    "write_file",
    "write_sample",
]
