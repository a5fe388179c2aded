"""Open Global RTOFS netCDF files as xarray objects, or read one field fast.

Every product reads the same way: the 2-D ``prog``/``diag``/``ice`` files, the daily
3-D z-level files (``3z[tsuv]io``), the 6-hourly regional windows and the pre-2020
NETCDF3 files whose names carry a cadence tag. What you get back is tidied up:

* land (``_FillValue`` = 2**100) is NaN;
* longitudes lie in [-180, 180) (:func:`open_file`; :func:`read_field` keeps them raw);
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
>>> sst = open_file("archive/rtofs.20260708/rtofs_glo_2ds_f024_prog.nc", "sst")  # doctest: +SKIP
>>> sst.dims
('time', 'y', 'x')
>>> t = open_file("rtofs_glo_3dz_n024_daily_3ztio.nc", "temperature", depth=100)  # doctest: +SKIP
>>> day = open_day("archive", "20260708", "sst")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from rtofs_lib.errors import (
    MissingVariableError,
    NotRtofsNameError,
    TruncatedFileError,
    UnexpectedGridError,
    ValidTimeMismatchError,
)
from rtofs_lib.fetch import names
from rtofs_lib.fetch.check import REFETCH as _REFETCH
from rtofs_lib.fetch.check import check_file

# Read-only archive access on Lustre: HDF5's advisory locks fail or serialise there.
# HDF5 reads the variable at every file open, so setting it here is early enough.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

__all__ = [
    "FILL_VALUE",
    "FieldData",
    "ValidTimeMismatchError",
    "check_file",
    "list_fields",
    "open_day",
    "open_file",
    "read_field",
    "read_grid",
]

#: The writer's ``_FillValue`` (2**100) marking land and below-bottom cells.
FILL_VALUE = np.float32(2.0**100)

_GLOBAL_FAMILIES = ("2ds", "3dz_daily")

#: Where each field lives, for the hint of a MissingVariableError.
_FIELD_HOME = {
    "sst": "prog",
    "sss": "prog",
    "u_velocity": "prog",
    "v_velocity": "prog",
    "layer_density": "prog",
    "ssh": "diag",
    "u_barotropic_velocity": "diag",
    "v_barotropic_velocity": "diag",
    "surface_boundary_layer_thickness": "diag",
    "mixed_layer_thickness": "diag",
    "ice_coverage": "ice",
    "ice_temperature": "ice",
    "ice_thickness": "ice",
    "ice_uvelocity": "ice",
    "ice_vvelocity": "ice",
    "temperature": "3ztio (or a 6-hourly regional file)",
    "salinity": "3zsio (or a 6-hourly regional file)",
    "u": "3zuio (or a 6-hourly regional file)",
    "v": "3zvio (or a 6-hourly regional file)",
}

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


@contextmanager
def _dataset(path: Path) -> Iterator[netCDF4.Dataset]:
    """Open ``path`` with netCDF4 after :func:`check_file`, turning failures into our errors."""
    check_file(path)
    try:
        nc = netCDF4.Dataset(path, "r")
    except OSError as exc:
        raise TruncatedFileError(
            path, f"the netCDF library cannot open it ({exc}); it is damaged or cut short", _REFETCH
        ) from exc
    try:
        yield nc
    finally:
        nc.close()


# --- structure ------------------------------------------------------------------------------------


def _field_names(nc: netCDF4.Dataset) -> list[str]:
    """Data variables on the (Y, X) grid, in file order."""
    return [
        name
        for name, var in nc.variables.items()
        if var.dimensions[-2:] == ("Y", "X") and name not in ("Latitude", "Longitude")
    ]


def list_fields(path: str | Path) -> list[str]:
    """Return the names of the gridded fields in ``path`` (e.g. ``['u_velocity', ..., 'sst']``)."""
    path = Path(path)
    with _dataset(path) as nc:
        return _field_names(nc)


def _missing(path: Path, nc: netCDF4.Dataset, what: str, field: str) -> MissingVariableError:
    present = ", ".join(nc.variables) or "none"
    home = _FIELD_HOME.get(field)
    hint = f"{field} is in the {home} files" if home else "pick one of the variables present"
    return MissingVariableError(
        path, f"has no {what} {field!r}; variables present: {present}", hint
    )


def _check_grid(path: Path, nc: netCDF4.Dataset, fields: Iterable[str]) -> tuple[int, int]:
    """Check the (Y, X) grid of ``fields`` against Latitude/Longitude; return (ny, nx)."""
    dims = nc.dimensions
    if "Y" not in dims or "X" not in dims:
        raise UnexpectedGridError(
            path,
            f"has no Y/X dimensions (dimensions present: {', '.join(dims) or 'none'})",
            "this is not an RTOFS (HYCOM) file",
        )
    ny, nx = len(dims["Y"]), len(dims["X"])
    for coord in ("Latitude", "Longitude"):
        if coord not in nc.variables:
            raise _missing(path, nc, "grid coordinate", coord)
        var = nc.variables[coord]
        if var.dimensions != ("Y", "X"):
            raise UnexpectedGridError(
                path, f"{coord} has dimensions {var.dimensions}; expected ('Y', 'X')"
            )
    if ny < 3:
        raise UnexpectedGridError(path, f"Y has {ny} rows; an RTOFS grid has thousands")
    for name in fields:
        var = nc.variables[name]
        if var.dimensions[-2:] != ("Y", "X"):
            raise UnexpectedGridError(
                path,
                f"{name} has dimensions {var.dimensions}; expected (MT, [Depth|Layer,] Y, X)",
            )
    return ny, nx


def _parse(path: Path) -> names.RtofsName | None:
    try:
        return names.parse_name(str(path))
    except NotRtofsNameError:
        return None


def _is_global(name: names.RtofsName | None, nc: netCDF4.Dataset) -> bool:
    """The global tripolar grid (fold row present), as opposed to a regional window."""
    if name is not None:
        return name.family in _GLOBAL_FAMILIES
    return "modulo" in nc.variables["Longitude"].ncattrs()


def _round_minute(t: dt.datetime) -> dt.datetime:
    return (t + dt.timedelta(seconds=30)).replace(second=0, microsecond=0)


def _valid_time(
    path: Path, nc: netCDF4.Dataset, name: names.RtofsName | None
) -> dt.datetime | None:
    """Valid time from ``MT`` (rounded to the minute), cross-checked against the name.

    The ice writer leaves ``MT`` at 0, so an ``MT`` of 0 or less defers to the name.
    """
    from_mt = None
    if "MT" in nc.variables and nc.variables["MT"].size:
        mt = nc.variables["MT"]
        mt.set_auto_maskandscale(False)
        raw = float(np.asarray(mt[:]).ravel()[0])
        if math.isfinite(raw) and 0 < raw < 1e29:
            units = getattr(mt, "units", "days since 1900-12-31 00:00:00")
            calendar = getattr(mt, "calendar", "standard")
            try:
                t = netCDF4.num2date(
                    raw, units, calendar, only_use_cftime_datetimes=False,
                    only_use_python_datetimes=True,
                )  # fmt: skip
            except (ValueError, TypeError) as exc:
                raise UnexpectedGridError(
                    path, f"MT has units {units!r} that cannot be decoded ({exc})"
                ) from exc
            from_mt = _round_minute(dt.datetime(*t.timetuple()[:6], t.microsecond))
    from_name = name.valid_time if name is not None and name.date is not None else None
    if from_mt is not None and from_name is not None and from_mt != from_name:
        raise ValidTimeMismatchError(
            path,
            f"MT says the valid time is {from_mt:%Y-%m-%d %H:%M} but the name and day folder "
            f"say {from_name:%Y-%m-%d %H:%M}",
            "the file is misnamed or in the wrong rtofs.YYYYMMDD folder",
        )
    return from_mt or from_name


@dataclass(frozen=True)
class _Info:
    name: names.RtofsName | None
    fields: list[str]
    ny: int
    nx: int
    is_global: bool
    time: dt.datetime | None
    depths: np.ndarray | None

    @property
    def rows(self) -> int:
        return self.ny - 1 if self.is_global else self.ny


def _inspect(path: Path, nc: netCDF4.Dataset, field: str | None) -> _Info:
    all_fields = _field_names(nc)
    if field is not None and field not in nc.variables:
        raise _missing(path, nc, "variable", field)
    if field is not None and field not in all_fields:
        raise UnexpectedGridError(
            path,
            f"{field} has dimensions {nc.variables[field].dimensions}; expected (..., Y, X); "
            f"the gridded fields are {', '.join(all_fields) or 'none'}",
        )
    if field is None and not all_fields:
        raise UnexpectedGridError(
            path, f"holds no field on a (Y, X) grid; variables present: {', '.join(nc.variables)}"
        )
    chosen = [field] if field is not None else all_fields
    ny, nx = _check_grid(path, nc, chosen)
    name = _parse(path)
    depths = None
    if "Depth" in nc.variables:
        depths = np.asarray(nc.variables["Depth"][:], dtype=np.float64)
    return _Info(
        name=name,
        fields=chosen,
        ny=ny,
        nx=nx,
        is_global=_is_global(name, nc),
        time=_valid_time(path, nc, name),
        depths=depths,
    )


def _depth_index(path: Path, info: _Info, field: str, depth: float | None, level: int | None):
    """Index of the chosen depth level (None: the field has no depth axis and none was asked)."""
    if depth is not None and level is not None:
        raise ValueError("give depth= (metres) or level= (index), not both")
    if depth is None and level is None:
        return None
    if info.depths is None:
        raise ValueError(f"{path}: {field} has no depth axis; drop depth=/level=")
    if level is not None:
        n = len(info.depths)
        if not -n <= level < n:
            raise IndexError(f"{path}: level {level} is out of range; the file has {n} levels")
        return level % n
    return int(np.argmin(np.abs(info.depths - float(depth))))


# --- fast path ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FieldData:
    """One 2-D field read by :func:`read_field`, ready to render.

    Attributes
    ----------
    values
        float32 (ny-1, nx) on the global grid (fold row dropped), NaN on land.
    lat, lon
        float32 grid coordinates as in the file (longitudes not normalised), fold dropped;
        ``None`` when read with ``grid=False``.
    units, long_name
        From the variable (long_name stripped).
    valid_time
        Valid time (naive UTC), or None when neither ``MT`` nor the name gives one.
    step, product
        From the file name ("" when the name is not an RTOFS one).
    field
        The variable name.
    depth
        Depth in metres of the selected level, or None for a surface field.
    path
        The file read.
    """

    values: np.ndarray
    lat: np.ndarray | None
    lon: np.ndarray | None
    units: str
    long_name: str
    valid_time: dt.datetime | None
    step: str
    product: str
    field: str = ""
    depth: float | None = None
    path: Path | None = None


def _read(path: Path, var: netCDF4.Variable, index: tuple, what: str) -> np.ndarray:
    try:
        return np.asarray(var[index], dtype=np.float32)
    except (OSError, RuntimeError, IndexError) as exc:
        raise TruncatedFileError(
            path, f"reading {what} failed ({exc}); the file is damaged or cut short", _REFETCH
        ) from exc


def _grid(path: Path, nc: netCDF4.Dataset, rows: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for coord in ("Latitude", "Longitude"):
        var = nc.variables[coord]
        var.set_auto_maskandscale(False)
        out.append(_read(path, var, (slice(0, rows), slice(None)), coord))
    return out[0], out[1]


def read_field(
    path: str | Path,
    field: str,
    *,
    depth: float | None = None,
    level: int | None = None,
    grid: bool = True,
) -> FieldData:
    """Read one 2-D field with netCDF4 directly: the fast path used for rendering.

    Parameters
    ----------
    path
        An RTOFS netCDF file.
    field
        Variable name, e.g. ``"sst"``, ``"ssh"``, ``"temperature"``.
    depth
        For 3-D files: depth in metres; the nearest level is read. Default: the top level.
    level
        For 3-D files: level index instead of ``depth``.
    grid
        Also read ``Latitude``/``Longitude`` (two more full-size reads).

    Returns
    -------
    FieldData
        float32 values with NaN on land, fold row dropped on the global grid.

    Raises
    ------
    NotNetCDFError, TruncatedFileError, MissingVariableError, UnexpectedGridError
        For a file that is not a complete RTOFS file holding ``field``.
    """
    path = Path(path)
    with _dataset(path) as nc:
        info = _inspect(path, nc, field)
        var = nc.variables[field]
        var.set_auto_maskandscale(False)
        k = _depth_index(path, info, field, depth, level)
        index: list = []
        for dim in var.dimensions[:-2]:
            index.append(k if dim == "Depth" and k is not None else 0)
        index += [slice(0, info.rows), slice(None)]
        values = _read(path, var, tuple(index), field)
        fill = np.float32(getattr(var, "_FillValue", FILL_VALUE))
        np.putmask(values, values == fill, np.float32(np.nan))
        lat, lon = _grid(path, nc, info.rows) if grid else (None, None)
        level_depth = None
        if "Depth" in var.dimensions and info.depths is not None:
            level_depth = float(info.depths[0 if k is None else k])
        return FieldData(
            values=values,
            lat=lat,
            lon=lon,
            units=str(getattr(var, "units", "")),
            long_name=str(getattr(var, "long_name", "")).strip(),
            valid_time=info.time,
            step=info.name.step if info.name else "",
            product=info.name.product if info.name else "",
            field=field,
            depth=level_depth,
            path=path,
        )


def read_grid(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lat, lon)`` of ``path`` as stored (float32, raw longitudes), fold row dropped."""
    path = Path(path)
    with _dataset(path) as nc:
        info = _inspect(path, nc, None)
        return _grid(path, nc, info.rows)


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
    with _dataset(path) as nc:
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
        raise TruncatedFileError(path, f"xarray cannot open it ({exc})", _REFETCH) from exc
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
