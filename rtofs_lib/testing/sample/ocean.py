"""The synthetic ocean: physical-looking surface fields on a coarse grid, upsampled.

Warm tropics and cold poles, the Gulf Stream, Kuroshio and Antarctic Circumpolar fronts,
mesoscale eddies that drift smoothly from hour to hour, river plumes, sea ice, a mixed
layer and thermocline depth, and a sea floor. The same grid, time and seed always give
the same numbers.

Examples
--------
>>> import datetime as dt
>>> ocean = Ocean(66, 90, dt.datetime(2026, 7, 8), 0, dt.date(2026, 7, 8), seed=0)
>>> sst = ocean.field("sst", slice(0, 65), slice(0, 90))
>>> sst.shape, sst.dtype.name, -2.0 < float(sst.min()) < float(sst.max()) < 36.0
((65, 90), 'float32', True)
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass

import numpy as np

from rtofs_lib.testing.sample.grid import grid_coords
from rtofs_lib.testing.sample.land import coast_distance, lookup

__all__ = ["Ocean"]

_CLOCK0 = dt.datetime(2000, 1, 1)  # origin of the synthetic ocean's clock

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


def _gauss(lonw: np.ndarray, lat: np.ndarray, lon0, lat0, dlon, dlat) -> np.ndarray:
    dl = (lonw - lon0 + 180.0) % 360.0 - 180.0
    return np.exp(-((dl / dlon) ** 2) - ((lat - lat0) / dlat) ** 2)


def _window(x: np.ndarray, lo: float, hi: float, edge: float) -> np.ndarray:
    return 0.25 * (1 + np.tanh((x - lo) / edge)) * (1 + np.tanh((hi - x) / edge))


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


@functools.lru_cache(maxsize=4)
def _low_grid(ny: int, nx: int, my: int, mx: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.linspace(0.0, ny - 2.0, my)
    cols = np.arange(mx) * (nx / mx)
    lat, lon = grid_coords(rows, cols, ny, nx)
    return lat.astype(np.float32), lon.astype(np.float32)


# --- the surface, step by step (each step updates the dict of fields in place) -----------------


def _climatology(lat: np.ndarray, lonw: np.ndarray, season: float) -> dict[str, np.ndarray]:
    """Temperature, salinity, height, equatorial currents and eddy energy by latitude."""
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
    return {"sst": sst, "sss": sss, "ssh": ssh, "u": u, "v": v, "eke": eke}


@dataclass(frozen=True)
class _Front:
    """A front's shape: width (°), steps of SST (°C) and SSH (m) across it, jet speed (m/s)."""

    width: float
    d_sst: float
    d_ssh: float
    jet: float
    reach: float | None = None  # a step felt only within `reach` degrees of the path


_GULF_STREAM = _Front(width=0.7, d_sst=-2.5, d_ssh=-0.55, jet=1.6, reach=6.0)
_KUROSHIO = _Front(width=0.8, d_sst=-2.2, d_ssh=-0.5, jet=1.3, reach=6.0)
_CIRCUMPOLAR = _Front(width=1.2, d_sst=1.3, d_ssh=0.45, jet=0.6)


def _add_front(
    s: dict[str, np.ndarray],
    lat: np.ndarray,
    path_lat: np.ndarray,
    slope: np.ndarray,
    weight: np.ndarray,
    front: _Front,
) -> None:
    """Add a front along ``path_lat``: a tanh step across it and a jet along it."""
    d = (lat - path_lat) / front.width
    step = np.tanh(d)
    if front.reach is not None:
        step *= np.exp(-(((lat - path_lat) / front.reach) ** 2))
    s["sst"] += weight * front.d_sst * step
    s["ssh"] += weight * front.d_ssh * step
    speed = weight * front.jet * np.exp(-(d**2))
    ang = np.arctan2(slope, np.cos(np.radians(lat)))
    s["u"] += speed * np.cos(ang)
    s["v"] += speed * np.sin(ang)
    s["eke"] += 1.2 * weight * np.exp(-((d / 3.0) ** 2))


def _meander(lonw: np.ndarray, t_days: float, amps, waves, speeds, phase) -> tuple:
    """Latitude offset and slope of a path meandering with waves drifting in time."""
    lat_off = np.zeros_like(lonw)
    slope = np.zeros_like(lonw)
    for a, k, c, p in zip(amps, waves, speeds, phase, strict=True):
        arg = np.radians(lonw) * k + c * t_days + p
        lat_off += a * np.sin(arg)
        slope += a * k * np.pi / 180.0 * np.cos(arg)
    return lat_off, slope


def _fronts(s: dict[str, np.ndarray], lat: np.ndarray, lonw: np.ndarray, t_days: float) -> None:
    """The Gulf Stream, the Kuroshio and two Antarctic Circumpolar fronts."""
    m, dm = _meander(lonw, t_days, (0.9, 0.5), (45, 80), (0.11, -0.07), (0.3, 1.9))
    gs_lat = 35.0 + (lonw + 76.0) * 0.22 + m * _window(lonw, -68, 0, 3)
    _add_front(s, lat, gs_lat, 0.22 + dm, _window(lonw, -80, -42, 3), _GULF_STREAM)
    m, dm = _meander(lonw, t_days, (0.8, 0.4), (40, 70), (0.09, -0.05), (2.1, 0.4))
    ku_lat = 35.0 + (lonw - 140.0) * 0.06 + m * _window(lonw, 143, 200, 3)
    _add_front(s, lat, ku_lat, 0.06 + dm, _window(lonw, 133, 172, 3), _KUROSHIO)
    for base, amp, shift, ph in ((-46.0, 3.5, 30.0, 0.7), (-53.0, 3.0, 10.0, 2.6)):
        waves = ((0.8, 0.5, 0.3), (12, 25, 41), (0.05, -0.08, 0.06), (ph, 1.0, 4.0))
        m, dm = _meander(lonw, t_days, *waves)
        path = base + amp * np.sin(np.radians(lonw - shift)) + m
        slope = amp * np.cos(np.radians(lonw - shift)) * np.pi / 180.0 + dm
        _add_front(s, lat, path, slope, _window(lat, -70, -30, 3), _CIRCUMPOLAR)
        s["sst"] -= 1.3 * _window(lat, -70, -30, 3)  # keep the warm side unchanged
        s["ssh"] -= 0.45 * _window(lat, -70, -30, 3)


def _eddies(
    s: dict[str, np.ndarray],
    n: dict[str, np.ndarray],
    lat: np.ndarray,
    lonw: np.ndarray,
    when: dt.datetime,
) -> None:
    """Mesoscale eddies (warm core = high SSH), geostrophic velocities, diurnal warming."""
    eke = s["eke"]
    hemi = np.tanh(lat / 4.0)
    s["ssh"] += 0.16 * eke * n["psi"]
    s["sst"] += 0.8 * eke * n["psi"] + 0.25 * n["t"]
    s["sss"] += 0.08 * eke * n["psi"] + 0.06 * n["s"]
    s["u"] += -0.25 * eke * hemi * n["psi_y"]
    s["v"] += 0.25 * eke * hemi * n["psi_x"]
    local_hour = when.hour + when.minute / 60.0 + lonw / 15.0
    s["sst"] += 0.25 * np.cos(2 * np.pi * (local_hour - 15.0) / 24.0) * np.exp(-((lat / 30.0) ** 2))
    speed = np.hypot(s["u"], s["v"]) + 1e-6  # soft limit: no current faster than ~2.6 m/s
    s["u"], s["v"] = (c * (2.6 * np.tanh(speed / 2.6) / speed) for c in (s["u"], s["v"]))


def _ice_and_mixing(
    s: dict[str, np.ndarray],
    n: dict[str, np.ndarray],
    lat: np.ndarray,
    lonw: np.ndarray,
    winter: np.ndarray,
) -> dict[str, np.ndarray]:
    """Sea ice, the freezing floor, mixed layer and thermocline: the finished fields."""
    alat = np.abs(lat)
    sst, u, v = s["sst"], s["u"], s["v"]
    # sea ice where the raw temperature is below freezing; soft floor at -1.8 °C
    ice = np.clip((-1.2 - sst) / 2.0, 0.0, 1.0)
    sst = -1.8 + 0.3 * np.logaddexp(0.0, (sst + 1.8) / 0.3)
    mld = 15.0 + 60.0 * (alat / 60.0) ** 2 * (1.0 + 1.5 * winter) + 6.0 * n["h"]
    mld += 500.0 * winter * (_gauss(lonw, lat, -52, 58, 6, 3) + _gauss(lonw, lat, 0, 72, 8, 3))
    mld = np.clip(mld, 5.0, 1000.0)
    thick = ice * (0.5 + 2.5 * np.clip((alat - 70.0) / 15.0, 0, 1)) * np.where(lat > 0, 1, 0.5)
    out = {
        "sst": sst,
        "sss": np.clip(s["sss"], 0.5, 40.5),
        "ssh": s["ssh"],
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
    return out


class Ocean:
    """The synthetic ocean at one valid time on one grid: low-resolution state + upsampling.

    ``state`` maps a field key (``sst``, ``sss``, ``ssh``, ``u``, ``v``, ``mld``, ``sbl``,
    ``ice``, ``ice_thk``, ``ice_t``, ``ice_u``, ``ice_v``, ``thermo``, ``euc``, ``rho``,
    ``depth``) to its float32 array on the coarse grid.
    """

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
        lat = self.lat
        lonw = (self.lon + 180.0) % 360.0 - 180.0
        n = self._noise()
        doy = self.when.timetuple().tm_yday + self.when.hour / 24.0
        season = math.sin(2 * math.pi * (doy - 80.0) / 365.25)  # +1 in northern summer
        winter = np.where(lat >= 0, max(0.0, -season), max(0.0, season)).astype(np.float32)
        s = _climatology(lat, lonw, season)
        _fronts(s, lat, lonw, self.hours / 24.0)
        _eddies(s, n, lat, lonw, self.when)
        out = _ice_and_mixing(s, n, lat, lonw, winter)
        out["depth"] = self._sea_floor(lonw)
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def _sea_floor(self, lonw: np.ndarray) -> np.ndarray:
        dist, res = coast_distance()
        d = lookup(dist, res, self.lat, self.lon)
        floor = 40.0 + 5400.0 * (1.0 - np.exp(-((d / 2.2) ** 1.5)))
        ridge = (lonw + 30.0 - 0.25 * self.lat) / 5.0  # a Mid-Atlantic ridge
        floor -= 2500.0 * np.exp(-(ridge**2)) * _window(self.lat, -55, 65, 3)
        return floor

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
