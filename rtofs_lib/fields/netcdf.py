"""Read Global RTOFS netCDF files fast, with netCDF4 directly: one field, its grid, one point.

The fast path behind rendering, statistics and the viewers (:mod:`rtofs_lib.fields.reader`
gives the same data as xarray objects). Every open goes through :func:`open_dataset`: a
byte-level completeness check first, then netCDF4 under the one :data:`HDF5_LOCK` (netCDF-C and
HDF5 are not thread-safe; xarray takes the same lock). Values come back as float32 with NaN
on land (``_FillValue`` = 2**100) and the tripolar fold row dropped on the global grid.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> path = sample.write_file(tempfile.mkdtemp() + "/rtofs_glo_2ds_f006_prog.nc",
...                             "prog", "20260708", "f006", grid="12x12")
>>> sst = read_field(path, "sst")
>>> sst.values.shape, sst.step, str(sst.valid_time)
((11, 12), 'f006', '2026-07-08 06:00:00')
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
from xarray.backends.locks import HDF5_LOCK

from rtofs_lib.errors import (
    MissingVariableError,
    NotRtofsNameError,
    TruncatedFileError,
    UnexpectedGridError,
    ValidTimeMismatchError,
)
from rtofs_lib.fetch import names
from rtofs_lib.fetch.check import REFETCH, check_file

__all__ = [
    "DERIVED",
    "FILL_VALUE",
    "HDF5_LOCK",
    "FieldData",
    "list_fields",
    "open_dataset",
    "read_field",
    "read_grid",
    "read_point",
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


@contextmanager
def open_dataset(path: str | Path) -> Iterator[netCDF4.Dataset]:
    """Open ``path`` with netCDF4 under :data:`HDF5_LOCK`, after :func:`check_file`.

    The one way the package opens a netCDF file itself: failures become our errors, naming
    the file, and no other thread is inside netCDF-C/HDF5 meanwhile.
    """
    path = Path(path)
    check_file(path)
    with HDF5_LOCK:
        try:
            nc = netCDF4.Dataset(path, "r")
        except OSError as exc:
            raise TruncatedFileError(
                path,
                f"the netCDF library cannot open it ({exc}); it is damaged or cut short",
                REFETCH,
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
    with open_dataset(path) as nc:
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
            path, f"reading {what} failed ({exc}); the file is damaged or cut short", REFETCH
        ) from exc


def _grid(path: Path, nc: netCDF4.Dataset, rows: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for coord in ("Latitude", "Longitude"):
        var = nc.variables[coord]
        var.set_auto_maskandscale(False)
        out.append(_read(path, var, (slice(0, rows), slice(None)), coord))
    return out[0], out[1]


#: Derived fields: name -> (the variables they are computed from, long name, units).
#: Current speed is the magnitude of the surface current, sqrt(u² + v²).
DERIVED: dict[str, tuple[tuple[str, ...], str, str]] = {
    "speed": (("u_velocity", "v_velocity"), "current speed", "m/s"),
}


def _variable_index(var: netCDF4.Variable, k: int | None, rows: slice | int, col) -> tuple:
    """Index into ``var`` for depth level ``k`` (other leading axes: their first entry)."""
    lead = [k if dim == "Depth" and k is not None else 0 for dim in var.dimensions[:-2]]
    return (*lead, rows, col)


def _read_variable(path: Path, nc: netCDF4.Dataset, field: str, index: tuple) -> np.ndarray:
    """``var[index]`` as float32 with NaN where the value is the ``_FillValue``."""
    var = nc.variables[field]
    var.set_auto_maskandscale(False)
    values = np.atleast_1d(_read(path, var, index, field))
    fill = np.float32(getattr(var, "_FillValue", FILL_VALUE))
    np.putmask(values, values == fill, np.float32(np.nan))
    return values


def _sources(field: str) -> tuple[str, ...]:
    return DERIVED[field][0] if field in DERIVED else (field,)


def _combine(field: str, parts: list[np.ndarray]) -> np.ndarray:
    if field in DERIVED:  # speed: the magnitude of (u, v), in place
        return np.hypot(parts[0], parts[1], out=parts[0])
    return parts[0]


def read_field(
    path: str | Path,
    field: str,
    *,
    depth: float | None = None,
    level: int | None = None,
    grid: bool = True,
) -> FieldData:
    """Read one 2-D field (or a derived one) with netCDF4 directly: the fast path.

    Parameters
    ----------
    path
        An RTOFS netCDF file.
    field
        Variable name, e.g. ``"sst"``, ``"ssh"``, ``"temperature"``, or a key of
        :data:`DERIVED` (``"speed"``: current speed from ``u_velocity`` and ``v_velocity``).
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
    with open_dataset(path) as nc:
        sources = _sources(field)
        infos = [_inspect(path, nc, name) for name in sources]
        info = infos[0]
        k = _depth_index(path, info, sources[0], depth, level)
        rows = slice(0, info.rows)
        parts = [
            _read_variable(
                path, nc, name, _variable_index(nc.variables[name], k, rows, slice(None))
            )
            for name in sources
        ]
        lat, lon = _grid(path, nc, info.rows) if grid else (None, None)
        var = nc.variables[sources[0]]
        level_depth = None
        if "Depth" in var.dimensions and info.depths is not None:
            level_depth = float(info.depths[0 if k is None else k])
        long_name, units = (
            DERIVED[field][1:]
            if field in DERIVED
            else (
                str(getattr(var, "long_name", "")).strip(),
                str(getattr(var, "units", "")),
            )
        )
        return FieldData(
            values=_combine(field, parts),
            lat=lat,
            lon=lon,
            units=units,
            long_name=long_name,
            valid_time=info.time,
            step=info.name.step if info.name else "",
            product=info.name.product if info.name else "",
            field=field,
            depth=level_depth,
            path=path,
        )


def read_point(
    path: str | Path, field: str, j: int, i: int, *, depth: float | None = None
) -> float:
    """The value of ``field`` (or a derived one) at grid row ``j``, column ``i``; NaN on land.

    Reads one chunk per variable, not the whole field: a point series over many files
    costs one small read each.

    Examples
    --------
    >>> import tempfile
    >>> from rtofs_lib.testing import sample
    >>> path = sample.write_file(tempfile.mkdtemp() + "/rtofs_glo_2ds_f006_prog.nc",
    ...                             "prog", "20260708", "f006", grid="12x12")
    >>> read_point(path, "sst", 5, 5) == float(read_field(path, "sst").values[5, 5])
    True
    """
    path = Path(path)
    with open_dataset(path) as nc:
        sources = _sources(field)
        info = _inspect(path, nc, sources[0])
        if not (-info.rows <= j < info.rows and -info.nx <= i < info.nx):
            raise IndexError(f"{path}: grid cell ({j}, {i}) is outside its {info.rows}x{info.nx}")
        k = _depth_index(path, info, sources[0], depth, None)
        parts = [
            _read_variable(path, nc, name, _variable_index(nc.variables[name], k, j, i))
            for name in sources
        ]
    return float(_combine(field, parts)[0])


def depths(path: str | Path) -> list[float]:
    """Depth levels of a 3-D file in metres, top first ([] for a surface file)."""
    with open_dataset(path) as nc:
        if "Depth" not in nc.variables:
            return []
        return [float(d) for d in np.asarray(nc.variables["Depth"][:])]


def read_grid(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lat, lon)`` of ``path`` as stored (float32, raw longitudes), fold row dropped."""
    path = Path(path)
    with open_dataset(path) as nc:
        info = _inspect(path, nc, None)
        return _grid(path, nc, info.rows)
