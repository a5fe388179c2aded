"""A click on the map → the grid point under it → its values: the cube's whole series, or
the day's steps.

:func:`cell_at` and :func:`pixel_of` map between image pixels and longitude/latitude of the
map shown, :func:`grid_point` finds the grid point drawn at a pixel, :func:`cube_series`
reads everything the cube holds for it (best view: one value per valid time) when the cube
has the field, :func:`point_series` reads it step by step from the day's files otherwise
(3-D fields, a field or point the cube lacks), both into a :class:`PointSeries`, and
:func:`series_text` and :func:`plot_series` show it.

Examples
--------
>>> import datetime as dt, numpy as np
>>> s = PointSeries(lon=-70.0, lat=38.0, grid_lon=-70.04, grid_lat=38.02, j=5, i=7,
...                 date="20260708", steps=("n024", "f001"),
...                 times=(dt.datetime(2026, 7, 8), dt.datetime(2026, 7, 8, 1)),
...                 values=np.float32([21.5, 21.75]), field="sst", units="°C")
>>> series_text(s)
'point 38.02°, -70.04° (grid j=5, i=7): 2 steps, 21.50 … 21.75 °C'
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import regrid
from rtofs_lib.maps.decorations import map_box
from rtofs_lib.maps.styles import FIELDS, FieldStyle

from .source import FieldSource

__all__ = ["PointSeries", "cell_at", "cube_series", "grid_point", "pixel_of", "plot_series",
           "point_series", "series_text"]  # fmt: skip


@dataclass(frozen=True)
class PointSeries:
    """The values of one grid point across a day's steps (what a click on the map shows).

    Attributes
    ----------
    lon, lat
        Where the click fell (pixel centre), degrees.
    grid_lon, grid_lat
        The grid point shown at that pixel (longitude in [-180, 180)).
    j, i
        Its row and column in the grid (fold row dropped).
    date
        Cycle day, ``YYYYMMDD``.
    steps, times
        Step names and valid times, in time order.
    values
        float32, NaN on land.
    field, units, depth
        What was read.
    origin
        ``"files"`` (the day's files) or ``"cube"`` (the cube's best series; ``date`` is then
        the first valid day and ``cycles`` each value's cycle day).
    cycles
        Cycle day ``YYYYMMDD`` of each value (a cube series spans many cycles).
    """

    lon: float
    lat: float
    grid_lon: float
    grid_lat: float
    j: int
    i: int
    date: str
    steps: tuple[str, ...]
    times: tuple[dt.datetime, ...]
    values: np.ndarray
    field: str
    units: str
    depth: float | None = None
    origin: str = "files"
    cycles: tuple[str, ...] = ()


def pixel_of(
    style: FieldStyle, raster: regrid.Raster, lon: float, lat: float
) -> tuple[float, float]:
    """Image pixel ``(x, y)`` of a lon/lat in the map drawn with ``style`` on ``raster``."""
    x0, y0, mw, mh = map_box(style, raster)
    col = ((lon - raster.lon0) % 360.0) / raster.lon_span * raster.width
    row = (raster.lat1 - lat) / (raster.lat1 - raster.lat0) * raster.height
    if not (0 <= col < mw and 0 <= row < mh):
        raise RtofsError(f"{lon:g}°, {lat:g}° lies outside the map shown")
    return x0 + col, y0 + row


def cell_at(
    style: FieldStyle, raster: regrid.Raster, x: float, y: float
) -> tuple[int, int, float, float] | None:
    """``(col, row, lon, lat)`` of the raster cell at image pixel ``(x, y)``; None off the map."""
    x0, y0, mw, mh = map_box(style, raster)
    col, row = int(np.floor(x - x0)), int(np.floor(y - y0))
    if not (0 <= col < mw and 0 <= row < mh):
        return None
    return col, row, float(raster.lons()[col]), float(raster.lats()[row])


def grid_point(
    source: FieldSource,
    path: Path,
    field: tuple[str, float | None],
    raster: regrid.Raster,
    cell: tuple[int, int],
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """``(j, i, lat, lon)``: the grid point drawn at raster ``cell`` (col, row) and the grid.

    ``field`` is ``(name, depth)`` of the field shown from ``path``. None where the cell shows
    no grid point.
    """
    col, row = cell
    grid = source.grid(path)
    found = grid.cell_at(grid.index(raster), x=col, y=row)
    if found is None:
        return None
    j, i = found
    return j, i, grid.lat, grid.lon


def point_series(
    source: FieldSource,
    files: dict[str, Path],
    *,
    date: str,
    field: tuple[str, float | None],
    point: tuple[int, int, np.ndarray, np.ndarray],
    where: tuple[float, float],
) -> PointSeries:
    """Read grid point ``point`` (``j, i, lat, lon`` as from :func:`grid_point`) in ``files``.

    ``field`` is ``(name, depth)``; ``where`` the clicked ``(lon, lat)``.
    """
    name, depth = field
    j, i, glat, glon = point
    steps, times, values = [], [], []
    level_depth = None
    for step, path in files.items():
        value, known = source.point(path, name, depth, j, i)
        if known is not None:
            level_depth = known
        steps.append(step)
        times.append(names.valid_time(date, step))
        values.append(value)
    order = np.argsort(np.array(times, dtype="datetime64[s]"), kind="stable")
    return PointSeries(
        lon=where[0],
        lat=where[1],
        grid_lon=float((float(glon[j, i]) + 180.0) % 360.0 - 180.0),
        grid_lat=float(glat[j, i]),
        j=j,
        i=i,
        date=date,
        steps=tuple(steps[k] for k in order),
        times=tuple(times[k] for k in order),
        values=np.array([values[k] for k in order], dtype=np.float32),
        field=name,
        units=FIELDS[name].units,
        depth=level_depth if level_depth is not None else depth,
    )


def cube_series(
    cube: str | Path,
    field: tuple[str, float | None],
    point: tuple[int, int, np.ndarray, np.ndarray],
    where: tuple[float, float],
    cache_dir: str | Path | None = None,
) -> PointSeries | None:
    """The cube's whole best series at grid point ``point`` (as from :func:`grid_point`).

    Read with :func:`rtofs_lib.cube.point_series` at that grid cell when the cube's grid has
    the file's shape (no k-d tree to load), else at its longitude and latitude. None when it
    cannot answer: a 3-D field (``depth`` given), no cube at ``cube``, a field it does not
    store, a point it holds as land or holds no value of.
    """
    from rtofs_lib.cube import CubeError
    from rtofs_lib.cube import point_series as cube_point
    from rtofs_lib.cube.query import Cube

    name, depth = field
    j, i, glat, glon = point
    if depth is not None:
        return None
    try:
        same = Cube(Path(cube)).root["lat"].shape == glat.shape
        s = cube_point(float(glon[j, i]), float(glat[j, i]), field=name, cube=cube,
                       cache_dir=cache_dir, cell=(j, i) if same else None)  # fmt: skip
    except CubeError:  # no cube, field or ocean cell there: the day's files answer
        return None
    if s.sizes["valid_time"] == 0:
        return None
    times = tuple(t.astype("datetime64[s]").item() for t in s["valid_time"].values)
    cycles = tuple(str(c)[:10].replace("-", "") for c in s["cycle"].values)
    return PointSeries(
        lon=where[0],
        lat=where[1],
        grid_lon=float((float(glon[j, i]) + 180.0) % 360.0 - 180.0),
        grid_lat=float(glat[j, i]),
        j=int(s.attrs["j"]),
        i=int(s.attrs["i"]),
        date=f"{times[0]:%Y%m%d}",
        steps=tuple(str(st) for st in s["step"].values),
        times=times,
        values=s.values.astype(np.float32),
        field=name,
        units=FIELDS[name].units,
        origin="cube",
        cycles=cycles,
    )


def series_text(s: PointSeries | None) -> str:
    """One line about a series: the grid point, the number of steps, the value range."""
    if s is None:
        return ""
    finite = s.values[np.isfinite(s.values)]
    what = "land" if finite.size == 0 else f"{finite.min():.2f} … {finite.max():.2f} {s.units}"
    count = f"{len(s.values)} steps"
    if s.origin == "cube":
        count = (f"{len(s.values)} valid times from the cube, {s.times[0]:%Y-%m-%d %HZ} … "
                 f"{s.times[-1]:%Y-%m-%d %HZ}")  # fmt: skip
    return f"point {s.grid_lat:.2f}°, {s.grid_lon:.2f}° (grid j={s.j}, i={s.i}): {count}, {what}"


def plot_series(s: PointSeries, s_b: PointSeries | None, current: dt.datetime | None) -> bytes:
    """PNG of the series (and day B's, when given), with a line at the time shown."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 2.6), dpi=96, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(s.times, s.values, marker=".", label="cube (best)" if s.origin == "cube" else s.date)
    if s_b is not None:
        ax.plot(s_b.times, s_b.values, marker=".", label=s_b.date)
        ax.legend(loc="best", fontsize="small")
    if current is not None:
        ax.axvline(current, color="0.6", lw=1, ls="--")
    depth = f" at {s.depth:g} m" if s.depth is not None else ""
    ax.set_title(
        f"{FIELDS[s.field].title}{depth} at {s.grid_lat:.2f}°, {s.grid_lon:.2f}°",
        fontsize="medium",
    )
    ax.set_ylabel(s.units)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
