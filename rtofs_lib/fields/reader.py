"""Open Global RTOFS netCDF files as xarray objects: one file, or a day stacked on time.

Every product reads the same way: the 2-D ``prog``/``diag``/``ice`` files, the daily
3-D z-level files (``3z[tsuv]io``), the 6-hourly regional windows and the pre-2020
NETCDF3 files whose names carry a cadence tag. What you get back is tidied up:

* land (``_FillValue`` = 2**100) is NaN;
* longitudes lie in [-180, 180) (:mod:`rtofs_lib.fields.netcdf`'s fast path keeps them raw);
* the tripolar fold row (the last ``Y`` row, a duplicate) is dropped on the global grid;
* ``time`` is the valid time decoded from ``MT`` and rounded to the minute, checked
  against the file name when the file sits in an ``rtofs.YYYYMMDD`` folder;
* 3-D files select a depth by metres (nearest level) or by level index.

Bad files raise a :class:`~rtofs_lib.errors.RtofsFileError` subclass that names the
file and says what is wrong: :class:`~rtofs_lib.errors.NotNetCDFError`,
:class:`~rtofs_lib.errors.TruncatedFileError`,
:class:`~rtofs_lib.errors.MissingVariableError`,
:class:`~rtofs_lib.errors.UnexpectedGridError`.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> archive = tempfile.mkdtemp()
>>> _ = sample.write_sample(archive, "20260708", steps=["f006", "f012"], grid="12x12")
>>> sst = open_file(archive + "/rtofs.20260708/rtofs_glo_2ds_f006_prog.nc", "sst")
>>> sst.dims, sst.attrs["step"]
(('time', 'y', 'x'), 'f006')
>>> open_day(archive, "20260708", "sst").sizes["time"]
2
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr

from rtofs_lib.errors import (
    TruncatedFileError,
)
from rtofs_lib.fetch import names
from rtofs_lib.fetch.check import REFETCH
from rtofs_lib.fields.netcdf import _depth_index, _inspect, _parse, open_dataset

__all__ = ["normalise_lon", "open_day", "open_file"]

#: The ice writer puts parm text such as "ice_coverage [09.8H]|" into standard_name;
#: these are the CF names of those fields (velocities are rotated to east/north).
_ICE_STANDARD_NAMES = {
    "ice_coverage": "sea_ice_area_fraction",
    "ice_temperature": "sea_ice_surface_temperature",
    "ice_thickness": "sea_ice_thickness",
    "ice_uvelocity": "eastward_sea_ice_velocity",
    "ice_vvelocity": "northward_sea_ice_velocity",
}
_CF_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# --- xarray ---------------------------------------------------------------------------------------


def normalise_lon(lon):
    """Wrap longitudes into [-180, 180), exactly: only whole turns of 360° are subtracted.

    Works on float32 numpy arrays and xarray objects (lazily on dask).
    """
    lon = lon.astype(np.float32)
    turns = np.floor((lon + np.float32(180.0)) / np.float32(360.0))
    out = lon - np.float32(360.0) * turns
    # float32 rounding can leave a value one turn off at the seam
    out = out - np.float32(360.0) * (out >= 180.0) + np.float32(360.0) * (out < -180.0)
    return out.astype(np.float32)


def _tidy_attrs(name: str, attrs: dict) -> dict:
    out = {k: v for k, v in attrs.items() if k not in ("coordinates",)}
    if "long_name" in out:
        out["long_name"] = str(out["long_name"]).strip()
    std = out.get("standard_name")
    if std is not None and not _CF_NAME_RE.match(str(std)):
        out["rtofs_standard_name"] = std
        if name in _ICE_STANDARD_NAMES:
            out["standard_name"] = _ICE_STANDARD_NAMES[name]
        else:
            del out["standard_name"]
    if out.get("units") == "" and name == "ice_coverage":
        out["units"] = "1"
    return out


def open_file(
    path: str | Path,
    field: str | None = None,
    *,
    depth: float | None = None,
    level: int | None = None,
    chunks: dict | str | None = None,
) -> xr.Dataset | xr.DataArray:
    """Open an RTOFS file as an xarray Dataset, or one field as a DataArray.

    Parameters
    ----------
    path
        An RTOFS netCDF file (any product, NETCDF4 or the pre-2020 NETCDF3).
    field
        Return only this variable as a DataArray; None returns every gridded field.
    depth
        For 3-D files, select the level nearest this depth in metres.
    level
        For 3-D files, select this level index instead.
    chunks
        Passed to :func:`xarray.open_dataset`; ``{}`` gives lazy dask arrays in the
        file's own chunks. None reads lazily without dask.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Dimensions ``time`` (length 1), ``depth`` (3-D files, unless selected), ``y``,
        ``x``; 2-D coordinates ``lat``/``lon`` (lon in [-180, 180)); ``time`` is the
        valid time; attrs ``product``, ``step``, ``cycle_date``, ``source`` (the path).

    Raises
    ------
    NotNetCDFError, TruncatedFileError, MissingVariableError, UnexpectedGridError
        For a file that is not a complete RTOFS file (holding ``field``).
    ValidTimeMismatchError
        When ``MT`` and the name inside ``rtofs.YYYYMMDD`` disagree.
    """
    path = Path(path)
    with open_dataset(path) as nc:
        info = _inspect(path, nc, field)
        k = None
        if depth is not None or level is not None:
            has_depth = [f for f in info.fields if "Depth" in nc.variables[f].dimensions]
            if not has_depth:
                target = field or "this file"
                raise ValueError(f"{path}: {target} has no depth axis; drop depth=/level=")
            k = _depth_index(path, info, field or has_depth[0], depth, level)
    keep = [*info.fields, "Latitude", "Longitude"]
    try:
        ds = xr.open_dataset(
            path, engine="netcdf4", decode_times=False, decode_coords=False, chunks=chunks
        )
    except (OSError, ValueError) as exc:
        raise TruncatedFileError(path, f"xarray cannot open it ({exc})", REFETCH) from exc
    ds = ds.drop_vars([v for v in ("MT", "Date", "X", "Y", "Layer") if v in ds.variables])
    ds = ds[keep]
    if "Layer" in ds.dims and ds.sizes["Layer"] == 1:
        ds = ds.isel(Layer=0)
    rename = {
        "MT": "time", "Y": "y", "X": "x", "Layer": "layer", "Depth": "depth",
        "Latitude": "lat", "Longitude": "lon",
    }  # fmt: skip
    ds = ds.rename({k_: v for k_, v in rename.items() if k_ in ds.dims or k_ in ds.variables})
    ds = ds.set_coords([c for c in ("lat", "lon") if c in ds.variables])
    if info.is_global:
        ds = ds.isel(y=slice(0, info.rows))
    time = np.datetime64(info.time, "ns") if info.time else np.datetime64("NaT", "ns")
    if "time" in ds.dims:
        ds = ds.assign_coords(time=("time", [time], {"long_name": "valid time", "axis": "T"}))
    lon_attrs = dict(ds["lon"].attrs)
    ds = ds.assign_coords(lon=normalise_lon(ds["lon"]).assign_attrs(lon_attrs))
    if k is not None:
        ds = ds.isel(depth=k)
    for name in ds.data_vars:
        ds[name].attrs = _tidy_attrs(str(name), ds[name].attrs)
    meta = {
        "product": info.name.product if info.name else "",
        "step": info.name.step if info.name else "",
        "cycle_date": f"{info.name.date:%Y-%m-%d}" if info.name and info.name.date else "",
        "source": str(path),
    }
    ds.attrs = {**{k_: v for k_, v in ds.attrs.items() if k_ != "source"}, **meta}
    if field is None:
        return ds
    da = ds[field]
    da.attrs = {**da.attrs, **meta}
    return da


def _day_files(folder: Path, product: str) -> dict[str, Path]:
    """Step → file of ``product`` in a day folder (new-style name wins over legacy)."""
    found: dict[str, Path] = {}
    for p in sorted(folder.glob("*.nc")):
        name = _parse(p)
        if name is None or name.product != product:
            continue
        if name.step not in found or not name.legacy:
            found[name.step] = p
    return found


def open_day(
    archive: str | Path,
    date: str | dt.date,
    field: str,
    product: str = "prog",
    steps: str | Iterable[str] | None = None,
    *,
    depth: float | None = None,
    level: int | None = None,
) -> xr.DataArray:
    """Stack one cycle day of ``field`` along ``time``, lazily (dask-backed).

    Parameters
    ----------
    archive
        Archive root holding ``rtofs.YYYYMMDD/`` folders.
    date
        Cycle date (``YYYYMMDD`` or a date).
    field
        Variable name, e.g. ``"sst"``.
    product
        Product code whose files hold ``field`` (``prog``, ``diag``, ``3ztio``, ...).
    steps
        Step selection such as ``"n024,f000-f072"``; None takes every step present.
    depth, level
        Depth selection for 3-D products (see :func:`open_file`).

    Returns
    -------
    xarray.DataArray
        Dimensions ``time``, (``depth``), ``y``, ``x``, ordered by valid time, with a
        ``step`` coordinate along ``time``. ``f000`` repeats ``n024``'s valid time and
        is left out when both are there.

    Raises
    ------
    FileNotFoundError
        If the day folder is missing, holds no ``product`` files, or lacks asked-for steps.
    """
    folder = Path(archive) / names.day_folder(date)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: no such day folder; fetch the day first (rtofs crawl) or check the archive"
        )
    found = _day_files(folder, product)
    order = {s: i for i, s in enumerate(names.steps_for(product))}
    if steps is None:
        wanted = sorted(found, key=lambda s: order.get(s, len(order)))
    else:
        wanted = list(names.expand_steps(steps, product))
        missing = [s for s in wanted if s not in found]
        if missing:
            raise FileNotFoundError(
                f"{folder}: no {product} file for step(s) {', '.join(missing)}; "
                f"present: {', '.join(sorted(found, key=order.get)) or 'none'}"
            )
    if not wanted:
        raise FileNotFoundError(f"{folder}: holds no {product} files")
    arrays = []
    seen: set = set()
    for step in wanted:
        da = open_file(found[step], field, depth=depth, level=level, chunks={})
        t = da["time"].values[0]
        if t in seen:
            continue
        seen.add(t)
        arrays.append(da.assign_coords(step=("time", [step])))
    arrays.sort(key=lambda a: a["time"].values[0])
    out = xr.concat(
        arrays,
        dim="time",
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="drop_conflicts",
    )
    out.attrs["source"] = str(folder)
    out.attrs.pop("step", None)
    return out
