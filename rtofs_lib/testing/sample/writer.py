"""Write sample files: the netCDF-4 and legacy NETCDF3 writers and the public entry points.

The header follows :mod:`~rtofs_lib.testing.sample.structure` (netCDF-4 with deflate
level 1, no shuffle, little-endian, netCDF-C's default chunks; or NETCDF3_CLASSIC for the
pre-2020 form), the data come from :class:`~rtofs_lib.testing.sample.slabs.FileData`.
Files are written atomically (:func:`rtofs_lib.atomic.atomic_path`).

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rtofs_glo_2ds_n024_prog.nc"
>>> write_file(path, "prog", "20260708", "n024", grid="66x90").name
'rtofs_glo_2ds_n024_prog.nc'
>>> steps_by_product("n024,f001-f002", ["prog", "3ztio"])
{'prog': ('n024', 'f001', 'f002'), '3ztio': ('n024',)}
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rtofs_lib.atomic import atomic_path
from rtofs_lib.fetch import names
from rtofs_lib.testing.sample.grid import SampleError, grid_shape, make_grid
from rtofs_lib.testing.sample.slabs import FileData
from rtofs_lib.testing.sample.structure import (
    COORD_ATTRS,
    EXPERIMENT,
    FILL_VALUE,
    GLOBAL_ATTRS,
    LEGACY_EXPERIMENT,
    Var,
    chunk_defaults,
)

__all__ = ["legacy_cadence", "steps_by_product", "write_file", "write_sample"]

_EPOCH = dt.datetime(1900, 12, 31)  # MT origin


def _date_number(when: dt.datetime) -> float:
    day = dt.datetime(when.year, when.month, when.day)
    return float(f"{when:%Y%m%d}") + (when - day).total_seconds() / 86400.0


class _NetcdfFile:
    """Writes one file's :class:`FileData` in the product's layout."""

    def __init__(self, data: FileData, legacy: bool) -> None:
        self.data, self.legacy = data, legacy
        self.exp = LEGACY_EXPERIMENT if legacy else EXPERIMENT
        self.nd = len(data.depths) if data.depths else 0
        layered = any(v.layered for v in data.vars)
        self.zdim = "Depth" if self.nd else ("Layer" if layered else None)
        self.sizes = {"MT": 1, "Y": data.ny, "X": data.nx, "Layer": 1, "Depth": self.nd}
        self.ds: Any = None

    def _jobs(self) -> list[tuple[Var, int, int]]:
        """(variable, first level, end level) of each slab, whole chunks of depth levels."""
        nd, kc = self.nd, 1
        if nd:
            shape = (1, nd, self.data.ny, self.data.nx)
            kc = chunk_defaults(shape, (True, False, False, False), 4)[1]
        return [
            (v, k0, min(k0 + kc, nd or 1)) for v in self.data.vars for k0 in range(0, nd or 1, kc)
        ]

    def write(self, path: Path) -> None:
        """Write the file at ``path`` (netCDF-4, or NETCDF3_CLASSIC when legacy)."""
        import netCDF4

        jobs = self._jobs()
        self.data.warm()
        fmt = "NETCDF3_CLASSIC" if self.legacy else "NETCDF4"
        self.ds = netCDF4.Dataset(path, "w", format=fmt)
        try:
            cvars = self._define_coords()
            if self.legacy:
                self._write_legacy(cvars, jobs)
            else:
                self._write_netcdf4(cvars, jobs)
        finally:
            self.ds.close()
            self.ds = None

    def _create(self, name: str, dtype: str, dims: tuple, attrs: list, fill=None) -> Any:
        kw: dict[str, Any] = {}
        if not self.legacy:
            shape = [self.sizes[d] for d in dims]
            unlim = [d == "MT" for d in dims]
            chunks = chunk_defaults(shape, unlim, np.dtype(dtype).itemsize)
            kw = dict(zlib=True, complevel=1, shuffle=False, endian="little")
            kw["chunksizes"] = chunks
        var = self.ds.createVariable(name, dtype, dims, fill_value=fill, **kw)
        var.set_auto_maskandscale(False)
        if not self.legacy and len(dims) > 2:  # compress chunk by chunk while writing
            var.set_var_chunk_cache(size=2 * 4 * math.prod(var.chunking()))
        for key, value in attrs:
            var.setncattr(key, value)
        return var

    def _define_coords(self) -> dict[str, Any]:
        """Global attributes, dimensions and coordinate variables."""
        ds, data, zdim = self.ds, self.data, self.zdim
        history = "archv2ncdf2d" if data.family == "2ds" else "archv2ncdf3z"
        experiment = "00.0" if data.product == "ice" else self.exp
        ds.setncatts(dict(GLOBAL_ATTRS, experiment=experiment, history=history))
        ds.createDimension("MT", None)
        ds.createDimension("Y", data.ny)
        ds.createDimension("X", data.nx)
        if zdim:
            ds.createDimension(zdim, self.sizes[zdim])
        lon_attrs = COORD_ATTRS["Longitude"]
        if data.family == "3dz_6hrly":
            lon_attrs = lon_attrs[:2]  # the regional files have no "modulo"
        coords = [
            ("MT", "f8", ("MT",), COORD_ATTRS["MT"]),
            ("Date", "f8", ("MT",), COORD_ATTRS["Date"]),
            *([("Layer", "i4", ("Layer",), COORD_ATTRS["Layer"])] if zdim == "Layer" else []),
            *([("Depth", "f4", ("Depth",), COORD_ATTRS["Depth"])] if zdim == "Depth" else []),
            ("Y", "i4", ("Y",), COORD_ATTRS["Y"]),
            ("X", "i4", ("X",), COORD_ATTRS["X"]),
            ("Latitude", "f4", ("Y", "X"), COORD_ATTRS["Latitude"]),
            ("Longitude", "f4", ("Y", "X"), lon_attrs),
        ]  # fmt: skip
        return {c[0]: self._create(*c) for c in coords}

    def _define(self, v: Var, rng: np.ndarray) -> Any:
        """Create data variable ``v`` with its attributes (``valid_range`` = ``rng``)."""
        dims = ("MT", self.zdim, "Y", "X") if (v.layered or self.nd) else ("MT", "Y", "X")
        attrs = [("coordinates", "Longitude Latitude Date")]
        if v.standard_name is not None:
            attrs.append(("standard_name", v.standard_name))
        attrs += [("units", v.units), ("valid_range", rng),
                  ("long_name", v.long_name.format(e=self.exp))]  # fmt: skip
        return self._create(v.name, "f4", dims, attrs, fill=FILL_VALUE)

    def _put_coords(self, cvars: dict[str, Any]) -> None:
        data = self.data
        lat, lon = make_grid(data.gny, data.gnx)
        cvars["MT"][0] = (data.when - _EPOCH).total_seconds() / 86400.0
        cvars["Date"][0] = _date_number(data.when)
        if self.zdim == "Layer":
            cvars["Layer"][:] = np.array([1], dtype=np.int32)
        elif self.zdim == "Depth":
            cvars["Depth"][:] = np.asarray(data.depths, dtype=np.float32)
        cvars["Y"][:] = np.arange(1, data.ny + 1, dtype=np.int32)
        cvars["X"][:] = np.arange(1, data.nx + 1, dtype=np.int32)
        cvars["Latitude"][:] = lat[data.rows, data.cols]
        cvars["Longitude"][:] = lon[data.rows, data.cols]

    def _write_legacy(self, cvars: dict[str, Any], jobs: list) -> None:
        """Classic format: define everything, then write."""
        results = [self.data.slab(*job) for job in jobs]
        dvars = [self._define(v, rng) for (v, _, _), (_, rng) in zip(jobs, results, strict=True)]
        self._put_coords(cvars)
        for var, (slab, _) in zip(dvars, results, strict=True):
            var[0] = slab

    def _write_netcdf4(self, cvars: dict[str, Any], jobs: list) -> None:
        """netCDF-4: compute the next slab in a second thread while this one compresses."""
        self._put_coords(cvars)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = deque(pool.submit(self.data.slab, *job) for job in jobs[:2])
            var = None
            for n, (v, k0, k1) in enumerate(jobs):
                slab, rng = pending.popleft().result()
                if n + 2 < len(jobs):
                    pending.append(pool.submit(self.data.slab, *jobs[n + 2]))
                if k0 == 0:
                    var = self._define(v, rng)
                if self.nd:
                    var[0, k0:k1] = slab
                else:
                    var[0] = slab if v.layered else slab[0]


def _check_request(
    product: str, step: str, grid: str | Sequence[int], legacy: bool
) -> tuple[int, int]:
    """The grid's ``(ny, nx)``, once the request is known to be one a file can answer."""
    names.family(product)
    if step not in names.steps_for(product):
        names.expand_steps(step, product)  # raises with the valid range
    ny, nx = grid_shape(grid)
    if legacy and names.family(product) != "2ds":
        raise SampleError(
            f"{product}: the pre-2020 NETCDF3 form exists only for 2-D products (prog, diag, "
            "ice); drop legacy=True for 3-D files"
        )
    return ny, nx


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
    """Write one real-format RTOFS file, atomically.

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
    ny, nx = _check_request(product, step, grid, legacy)
    data = FileData(product, date, step, grid=(ny, nx), seed=seed, fields=fields)
    with atomic_path(path) as tmp:
        _NetcdfFile(data, legacy).write(tmp)
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
