"""Reading the cube: a lazy Dataset, point and box-mean series in two views.

**Views.** ``"best"``: one value per valid time, from the most recent cycle that has it, a
nowcast before a forecast of the same cycle (``n024`` before ``f000``). ``"cycles"``: every
forecast of every valid time, dimensions ``(cycle, step)`` with a 2-D ``valid_time``, for
forecast-against-nowcast comparisons.

**Points.** A lon/lat goes to the nearest grid cell through the grid's one k-d tree
(:meth:`rtofs_lib.fields.grid.Grid.nearest`, cached under the grid's key beside the other
indices). Longitudes are wrapped; a latitude outside the grid is refused; a point on land is
refused with the nearest ocean cell named.

Series read the series-chunked copy of each complete day (one chunk per day) and the
map-chunked arrays for days still filling.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.cube import store
>>> from rtofs_lib.testing import sample
>>> tmp = tempfile.mkdtemp()
>>> for p in sample.write_sample(tmp + "/a", "20260708", steps="n024,f000,f001", grid="24x24"):
...     _ = store.append(p, tmp + "/cube", ["sst"])
>>> ds = open_cube("sst", cube=tmp + "/cube")
>>> dict(ds["sst"].sizes)
{'cycle': 1, 'step': 138, 'y': 23, 'x': 24}
>>> s = point_series(-30.0, 0.0, cube=tmp + "/cube", cache_dir=tmp + "/cache")
>>> s.sizes["valid_time"], [str(v) for v in s["step"].values]
(2, ['n024', 'f001'])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from rtofs_lib import config
from rtofs_lib.cube import store
from rtofs_lib.cube.store import SERIES, STEPS, CubeError
from rtofs_lib.fetch import names

__all__ = ["Cube", "box_series", "open_cube", "point_series"]

VIEWS = ("best", "cycles")
#: Hours of each step after the cycle day's 00Z (nowcasts are negative).
STEP_HOURS = np.array([names.parse_step(s)[1] - (24 if s[0] == "n" else 0) for s in STEPS])
IS_NOWCAST = np.array([s[0] == "n" for s in STEPS])


def _cube_dir(cube: str | Path | None) -> Path:
    return Path(cube).expanduser() if cube else config.load().cube


def open_cube(field: str = "sst", cube: str | Path | None = None) -> xr.Dataset:
    """The cube's ``field`` as a lazy xarray Dataset.

    Parameters
    ----------
    field
        A stored field (``sst`` first; the configured ``fields``).
    cube
        The cube folder (default: the ``cube`` setting).

    Returns
    -------
    xarray.Dataset
        ``field`` (cycle, step, y, x) float32, NaN on land and where a file is missing;
        coordinates ``cycle`` (sorted), ``step``, ``valid_time`` (cycle, step), ``present``
        (cycle, step: the cube holds that file), ``lat``/``lon`` (y, x).

    Raises
    ------
    CubeError
        No cube at ``cube``, or no such field in it (the message lists the stored ones).
    """
    c = Cube(_cube_dir(cube))
    c.check_field(field)
    ds = xr.open_zarr(c.session.store, consolidated=False, zarr_format=3, chunks={})
    ds = ds[[field, "source", "lat", "lon"]].set_coords(["lat", "lon"])
    ds = ds.assign_coords(
        step=("step", np.array(STEPS)),
        present=ds["source"] != 0,
    ).drop_vars("source")
    cycles = ds["cycle"].values.astype("datetime64[ns]")
    valid = cycles[:, None] + (STEP_HOURS * np.timedelta64(3600, "s"))[None, :]
    ds = ds.assign_coords(valid_time=(("cycle", "step"), valid.astype("datetime64[ns]")))
    ds = ds.sortby("cycle")
    ds.attrs = {"source": str(c.path), "field": field}
    return ds


@dataclass
class _Picks:
    """Cells (cycle index, step index) chosen by a view, in valid-time order."""

    cycle: np.ndarray
    step: np.ndarray
    valid: np.ndarray


class Cube:
    """A read-only snapshot of the cube: its arrays, grid and the cells it holds."""

    def __init__(self, path: Path, snapshot: str | None = None) -> None:
        import zarr

        self.path = path
        repo = store.repository(path)
        if snapshot is None:
            self.session = repo.readonly_session("main")
        else:  # a snapshot seen earlier (Spark tasks read the driver's)
            self.session = repo.readonly_session(snapshot_id=snapshot)
        #: The snapshot read: pass it to another ``Cube`` to see exactly the same data.
        self.snapshot: str = self.session.snapshot_id
        try:
            self.root = zarr.open_group(self.session.store, mode="r")
        except FileNotFoundError:
            raise CubeError(f"{path}: the cube is empty; append files first") from None

    def check_field(self, field: str) -> None:
        if field not in self.fields:
            raise CubeError(
                f"{self.path}: no field {field!r} in the cube; stored: {', '.join(self.fields)} "
                "(add fields to the `fields` setting and append or build again)"
            )

    @cached_property
    def fields(self) -> list[str]:
        return sorted(self.root[SERIES].array_keys())

    @cached_property
    def cycles(self) -> np.ndarray:
        """Cycle dates as datetime64[D], in storage order."""
        return self.root["cycle"][:].astype("datetime64[D]")

    @cached_property
    def source(self) -> np.ndarray:
        return self.root["source"][:]

    @cached_property
    def series_current(self) -> np.ndarray:
        """Per cycle: whether its series-chunked copy holds what the map arrays hold."""
        return np.all(self.root["series_source"][:] == self.source, axis=1) & (
            self.source != 0
        ).any(axis=1)

    def grid(self, cache_dir: str | Path | None):
        """The cube's :class:`~rtofs_lib.fields.grid.Grid`, known by the key stored at creation
        (its k-d tree is the renderer's, in the shared cache); coordinates read when needed."""
        from rtofs_lib.fields.grid import Grid

        key = self.root.attrs["grid_key"]
        return Grid(key=key, shape=self.root["lat"].shape, cache_dir=cache_dir,
                    load=lambda: (self.root["lat"][:], self.root["lon"][:]))  # fmt: skip

    def picks(self, view: str, start: Any = None, end: Any = None) -> _Picks:
        """The cells a view reads, between valid times ``start`` and ``end`` (dates inclusive)."""
        if view not in VIEWS:
            raise CubeError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        c, s = np.nonzero(self.source)
        valid = self.cycles[c].astype("datetime64[h]") + STEP_HOURS[s]
        keep = np.ones(c.size, bool)
        if start is not None:
            keep &= valid >= np.datetime64(names.parse_date(start), "h")
        if end is not None:
            keep &= valid < np.datetime64(names.parse_date(end) + dt.timedelta(days=1), "h")
        c, s, valid = c[keep], s[keep], valid[keep]
        if view == "best":
            # per valid time: the latest cycle, then a nowcast before a forecast
            order = np.lexsort((~IS_NOWCAST[s], -self.cycles[c].astype(np.int64), valid))
            c, s, valid = c[order], s[order], valid[order]
            first = np.ones(valid.size, bool)
            first[1:] = valid[1:] != valid[:-1]
            c, s, valid = c[first], s[first], valid[first]
        else:
            order = np.lexsort((s, self.cycles[c].astype(np.int64)))
            c, s, valid = c[order], s[order], valid[order]
        return _Picks(c, s, valid)

    def read(self, field: str, picks: _Picks, rows: slice, cols: slice) -> np.ndarray:
        """Values of the picked cells in a block of the grid: ``(len(picks), rows, cols)``."""
        out = np.full((picks.cycle.size, rows.stop - rows.start, cols.stop - cols.start),
                      np.nan, np.float32)  # fmt: skip
        maps, series = self.root[field], self.root[SERIES][field]
        for ci in np.unique(picks.cycle):
            at = np.flatnonzero(picks.cycle == ci)
            steps = picks.step[at]
            arr = series if self.series_current[ci] else maps
            out[at] = arr.get_orthogonal_selection((int(ci), steps, rows, cols))
        return out


def file_map(path: str | Path, field: str, cube: str | Path) -> np.ndarray | None:
    """The cube's map of ``field`` from file ``path`` when it holds this very file (same
    :func:`~rtofs_lib.cube.store.source_token`), else None: a quicker read than the
    netCDF's (one map: 0.12 s against 0.34 s at full size).
    """
    path = Path(path)
    try:
        c = Cube(Path(cube))
        date, step = store._where(path)
        ci = store.cycle_index(c.root, date)
        if ci is None or field not in c.root.array_keys():
            return None
        if int(c.source[ci, STEPS.index(step)]) != store.source_token(path):
            return None
        return c.root[field][ci, STEPS.index(step)]
    except (CubeError, FileNotFoundError, KeyError, ValueError, OSError):
        return None


def _series(values: np.ndarray, picks: _Picks, cube: Cube, view: str, attrs: dict):
    steps = np.array(STEPS)[picks.step]
    cycles = cube.cycles[picks.cycle].astype("datetime64[ns]")
    valid = picks.valid.astype("datetime64[ns]")
    if view == "best":
        return xr.DataArray(
            values, dims="valid_time",
            coords={"valid_time": valid, "cycle": ("valid_time", cycles),
                    "step": ("valid_time", steps)},
            attrs=attrs,
        )  # fmt: skip
    index = {"cycle": cycles, "step": steps}
    da = xr.DataArray(values, dims="entry", coords={**{k: ("entry", v) for k, v in index.items()},
                      "valid_time": ("entry", valid)}, attrs=attrs)  # fmt: skip
    return da.set_index(entry=["cycle", "step"]).unstack("entry")


def ocean_cell(cube: Cube, lon: float, lat: float, cache_dir: Any) -> tuple[int, int]:
    """Grid ``(row, col)`` of the ocean cell nearest ``lon``/``lat``.

    Raises
    ------
    CubeError
        A latitude outside the grid, or a point whose nearest cell is land (the nearest
        ocean cell is named).
    """
    grid = cube.grid(cache_dir)
    lat_min, lat_max = cube.root.attrs["lat_range"]
    if not (lat_min <= lat <= lat_max) or not np.isfinite(lat):
        raise CubeError(
            f"latitude {lat:g}° is outside the cube's grid ({lat_min:.2f}° to {lat_max:.2f}°); "
            "give a latitude inside it"
        )
    lon = float((lon + 180.0) % 360.0 - 180.0)
    ((j, i),) = grid.nearest(lon, lat)
    if cube.root["ocean"][j, i]:
        return j, i
    wet = grid.nearest_wet(lon, lat, cube.root["ocean"][:])
    if wet is None:
        raise CubeError(f"{cube.path}: the grid has no ocean cell")
    a, b = wet
    wlon = float((grid.lon[a, b] + 180.0) % 360.0 - 180.0)
    raise CubeError(
        f"{lon:g}°, {lat:g}° is on land (grid cell j={j}, i={i}); the nearest ocean cell "
        f"is j={a}, i={b} at {wlon:.3f}°, {float(grid.lat[a, b]):.3f}°: ask for that point"
    )


def point_series(  # noqa: PLR0913 - where, when, which view, and the stores
    lon: float,
    lat: float,
    *,
    field: str = "sst",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    view: str = "best",
    cube: str | Path | None = None,
    cache_dir: str | Path | None = None,
    cell: tuple[int, int] | None = None,
) -> xr.DataArray:
    """The series of ``field`` at the ocean cell nearest ``lon``/``lat``.

    Parameters
    ----------
    lon, lat
        Degrees; longitude in any convention.
    field, cube
        What to read and where (default: the ``cube`` setting).
    start, end
        Valid dates (``YYYYMMDD``), inclusive.
    view
        ``"best"`` (dimension ``valid_time``) or ``"cycles"`` (dimensions ``cycle``, ``step``).
    cache_dir
        Grid-index cache (default: the ``cache`` setting).
    cell
        Grid ``(row, col)`` to read instead of the cell nearest ``lon``/``lat``, for a caller
        that knows it (the viewer's click): no k-d tree is loaded.

    Raises
    ------
    CubeError
        No cube or field, a latitude outside the grid, a point or ``cell`` on land.
    """
    c = Cube(_cube_dir(cube))
    c.check_field(field)
    if cell is None:
        cache = cache_dir if cache_dir is not None else config.load().cache
        j, i = ocean_cell(c, lon, lat, cache)
    else:
        j, i = (int(v) for v in cell)
        ny, nx = c.root["ocean"].shape
        if not (0 <= j < ny and 0 <= i < nx) or not c.root["ocean"][j, i]:
            raise CubeError(
                f"{c.path}: grid cell j={j}, i={i} is land or outside the {ny} x {nx} grid; "
                "give an ocean cell (or a lon/lat without cell)"
            )
    picks = c.picks(view, start, end)
    values = c.read(field, picks, slice(j, j + 1), slice(i, i + 1))[:, 0, 0]
    attrs = {**c.root[field].attrs, "lon": float(c.root["lon"][j, i]),
             "lat": float(c.root["lat"][j, i]), "j": j, "i": i}  # fmt: skip
    return _series(values, picks, c, view, attrs).rename(field)


def box_series(
    box: tuple[float, float, float, float],
    *,
    field: str = "sst",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    view: str = "best",
    cube: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> xr.DataArray:
    """The area-weighted (cos latitude) mean of ``field`` over ocean in a lon/lat box.

    ``box`` is ``(west, east, south, north)``; west > east crosses the dateline. Other
    parameters as :func:`point_series`.
    """
    c = Cube(_cube_dir(cube))
    c.check_field(field)
    rs, cs, weights = box_block(c, box, cache_dir)
    picks = c.picks(view, start, end)
    mean = weighted_mean(c.read(field, picks, rs, cs), weights)
    attrs = {**c.root[field].attrs, "box": list(box)}
    return _series(mean, picks, c, view, attrs).rename(field)


def box_block(
    cube: Cube, box: tuple[float, float, float, float], cache_dir: Any = None
) -> tuple[slice, slice, np.ndarray]:
    """The block of grid rows and columns around a lon/lat box, and each cell's weight in it.

    Returns ``(rows, cols, weights)``: ``weights`` has the block's shape, cos latitude inside
    the box and 0 outside (land is left out by the values' NaN).

    Raises
    ------
    CubeError
        A box that holds no grid cell.
    """
    from rtofs_lib.fields.regions import Region

    grid = cube.grid(cache_dir if cache_dir is not None else config.load().cache)
    flat, cell_weights = grid.selection(Region("box", "box", *box))  # memoised per grid
    if not flat.size:
        raise CubeError(
            f"the box {box} holds no grid cell of the cube; check it is west,east,south,north"
        )
    rows, cols = np.divmod(flat, grid.shape[1])
    rs = slice(int(rows.min()), int(rows.max()) + 1)
    cs = slice(int(cols.min()), int(cols.max()) + 1)
    weights = np.zeros((rs.stop - rs.start, cs.stop - cs.start))
    weights[rows - rs.start, cols - cs.start] = cell_weights
    return rs, cs, weights


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per leading index, the ``weights``-weighted mean of ``values`` over finite cells.

    >>> weighted_mean(np.array([[[1.0, np.nan], [3.0, 5.0]]]), np.array([[1.0, 1.0], [1.0, 0.0]]))
    array([2.])
    """
    wet = np.isfinite(values)
    total = np.where(wet, weights, 0.0).sum(axis=(1, 2))
    sums = np.where(wet, values * weights, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums / total, np.nan)
