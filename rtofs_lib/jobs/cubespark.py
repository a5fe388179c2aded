"""The cube as a Spark input: cells over time as a DataFrame, a mean map, a box-mean series.

The driver reads only the cube's small index arrays (which files it holds, and the cells a
view picks: :meth:`rtofs_lib.cube.query.Cube.picks`, the same ``"best"`` and ``"cycles"``
views as :func:`rtofs_lib.cube.point_series`) and the grid's selection of a box or points.
The executors read the values: one task per cycle day (a day's series-chunked copy is one
chunk per 75 × 75 tile), or per map-chunk tile for a mean map. Every task opens
the snapshot the driver saw, so an append landing meanwhile changes nothing in one result;
no array is collected to the driver.

- :func:`cells`: one row per (valid time, ocean cell) of a box or of points: ``cycle``,
  ``step``, ``valid_time``, ``y``, ``x``, ``lat``, ``lon``, ``weight`` (cos latitude), the field;
  land (NaN) is left out;
- :func:`mean_map`: the per-cell mean over a period (a monthly mean map), one row per ocean
  cell; :func:`to_map` makes it a 2-D :class:`xarray.DataArray` for plotting;
- :func:`box_mean`: the area-weighted mean over ocean in a box per valid time, the values
  :func:`rtofs_lib.cube.box_series` gives.

Examples
--------
>>> from rtofs_lib.jobs.spark import session
>>> spark = session("local[2]", app_name="rtofs-cube")  # doctest: +SKIP
>>> df = box_mean(spark, (-40, -20, -10, 10), start="20260701", end="20260731")  # doctest: +SKIP
>>> df.orderBy("valid_time").show(3)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtofs_lib import config
from rtofs_lib.cube import query
from rtofs_lib.cube.query import Cube, CubeError, _Picks
from rtofs_lib.cube.store import STEPS

if TYPE_CHECKING:
    import xarray as xr
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["box_mean", "cells", "mean_map", "to_map"]

Box = tuple[float, float, float, float]


def _open(cube: str | Path | None, field: str) -> Cube:
    c = Cube(query._cube_dir(cube).resolve())
    c.check_field(field)
    return c


def _cache(cache_dir: str | Path | None) -> Any:
    return cache_dir if cache_dir is not None else config.load().cache


def _by_cycle(picks: _Picks) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The picks split per cycle: ``(cycle index, step indices, valid times [h])``."""
    out = []
    for ci in np.unique(picks.cycle):
        at = picks.cycle == ci
        out.append((int(ci), picks.step[at], picks.valid[at].astype("datetime64[h]")))
    return out


def _day_columns(c: Cube, ci: int, steps: np.ndarray, valid: np.ndarray, k: np.ndarray) -> dict:
    """``cycle``, ``step``, ``valid_time`` columns of rows that are picks ``k`` of ``steps``."""
    names = np.array(STEPS, dtype=object)
    return {"cycle": np.full(k.size, c.cycles[ci], "datetime64[D]"),
            "step": names[steps[k]], "valid_time": valid[k].astype("datetime64[us]")}  # fmt: skip


def _read(c: Cube, field: str, ci: int, steps: np.ndarray, rows: slice, cols: slice):
    picks = _Picks(np.full(steps.size, ci), steps, steps)
    return c.read(field, picks, rows, cols)


def _schema(field: str, columns: list[tuple[str, str]]):
    from pyspark.sql import types as T

    kinds = {"date": T.DateType(), "string": T.StringType(), "time": T.TimestampNTZType(),
             "int": T.IntegerType(), "float": T.FloatType(), "double": T.DoubleType(),
             "long": T.LongType()}  # fmt: skip
    return T.StructType([T.StructField(field if n == "<field>" else n, kinds[k], True)
                         for n, k in columns])  # fmt: skip


# --- cells ---------------------------------------------------------------------------------------

CELL_COLUMNS = [("cycle", "date"), ("step", "string"), ("valid_time", "time"), ("y", "int"),
                ("x", "int"), ("lat", "double"), ("lon", "double"), ("weight", "double"),
                ("<field>", "float")]  # fmt: skip


def _cells_task(task: tuple, blocks: list) -> dict[str, np.ndarray]:
    """One cycle day's columns: every picked step at every selected ocean cell of ``blocks``."""
    path, snapshot, field, ci, steps, valid = task
    c = Cube(Path(path), snapshot)
    parts = []
    for rs, cs, weights in blocks:
        values = _read(c, field, ci, steps, rs, cs)
        lat, lon = c.root["lat"][rs, cs], c.root["lon"][rs, cs]
        k, a, b = np.nonzero(np.isfinite(values) & (weights > 0)[None])
        parts.append({**_day_columns(c, ci, steps, valid, k),
                      "y": (a + rs.start).astype(np.int32), "x": (b + cs.start).astype(np.int32),
                      "lat": lat[a, b].astype(np.float64), "lon": lon[a, b].astype(np.float64),
                      "weight": weights[a, b], field: values[k, a, b]})  # fmt: skip
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def cells(  # noqa: PLR0913 - where, when and which view, like point_series
    spark: SparkSession,
    *,
    box: Box | None = None,
    points: list[tuple[float, float]] | None = None,
    field: str = "sst",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    view: str = "best",
    cube: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> DataFrame:
    """The cube's values in a box or at points as a DataFrame, one row per valid time and cell.

    Parameters
    ----------
    spark
        The session (:func:`rtofs_lib.jobs.spark.session`).
    box, points
        ``(west, east, south, north)`` degrees, or ``[(lon, lat), ...]`` (each goes to its
        nearest ocean cell, as :func:`rtofs_lib.cube.point_series`); give one of them.
    field, start, end, view, cube, cache_dir
        As :func:`rtofs_lib.cube.point_series`.

    Returns
    -------
    pyspark.sql.DataFrame
        ``cycle`` (date), ``step``, ``valid_time``, ``y``, ``x``, ``lat``, ``lon``, ``weight``
        (cos latitude) and ``field`` (float); land and missing files left out. One Spark task
        per cycle day.

    Raises
    ------
    CubeError
        No cube or field, neither or both of ``box`` and ``points``, a box with no cell, a
        point on land or outside the grid.
    """
    if (box is None) == (points is None):
        raise CubeError("give either box=(west, east, south, north) or points=[(lon, lat), ...]")
    c = _open(cube, field)
    if box is not None:
        blocks = [query.box_block(c, box, _cache(cache_dir))]
    else:
        cells_ = [query.ocean_cell(c, lon, lat, _cache(cache_dir)) for lon, lat in points]
        blocks = [(slice(j, j + 1), slice(i, i + 1), np.ones((1, 1))) for j, i in cells_]
    tasks = [(str(c.path), c.snapshot, field, ci, steps, valid)
             for ci, steps, valid in _by_cycle(c.picks(view, start, end))]  # fmt: skip
    return _frame(spark, tasks, _cells_task, _schema(field, CELL_COLUMNS), blocks)


def _frame(spark: SparkSession, tasks: list, task, schema, shared: Any = None) -> DataFrame:
    """One Spark task per entry of ``tasks``; ``task(entry, shared)`` returns numpy columns,
    handed to Spark as Arrow batches (no Python object per row). ``tasks`` and ``shared``
    (the selection) are broadcast once."""
    if not tasks:
        return spark.createDataFrame([], schema)
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow = to_arrow_schema(schema)
    sc = spark.sparkContext
    held = sc.broadcast((tasks, shared))
    index = spark.createDataFrame(sc.parallelize([(k,) for k in range(len(tasks))], len(tasks)),
                                  "task long")  # fmt: skip

    def run(batches):
        import pyarrow as pa

        entries, common = held.value
        for batch in batches:
            for k in batch.column("task").to_pylist():
                columns = task(entries[k], common)
                yield pa.RecordBatch.from_arrays(
                    [
                        pa.array(columns[f.name], type=f.type, from_pandas=True) for f in arrow
                    ],  # NaN: null
                    schema=arrow,
                )

    return index.mapInArrow(run, schema)


# --- box mean ------------------------------------------------------------------------------------

BOX_COLUMNS = [("cycle", "date"), ("step", "string"), ("valid_time", "time"), ("<field>", "double")]


def _box_task(task: tuple, block: tuple) -> dict[str, np.ndarray]:
    path, snapshot, field, ci, steps, valid = task
    rs, cs, weights = block
    c = Cube(Path(path), snapshot)
    means = query.weighted_mean(_read(c, field, ci, steps, rs, cs), weights)
    return {**_day_columns(c, ci, steps, valid, np.arange(steps.size)), field: means}


def box_mean(
    spark: SparkSession,
    box: Box,
    *,
    field: str = "sst",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    view: str = "best",
    cube: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> DataFrame:
    """The area-weighted (cos latitude) mean over ocean in ``box`` per picked valid time.

    The values of :func:`rtofs_lib.cube.box_series`, computed on the executors (one task per
    cycle day). Parameters as :func:`cells`.

    Returns
    -------
    pyspark.sql.DataFrame
        ``cycle``, ``step``, ``valid_time`` and ``field`` (double; null where the box holds
        no ocean value).
    """
    c = _open(cube, field)
    block = query.box_block(c, box, _cache(cache_dir))
    tasks = [(str(c.path), c.snapshot, field, ci, steps, valid)
             for ci, steps, valid in _by_cycle(c.picks(view, start, end))]  # fmt: skip
    return _frame(spark, tasks, _box_task, _schema(field, BOX_COLUMNS), block)


# --- mean map ------------------------------------------------------------------------------------

MAP_COLUMNS = [("y", "int"), ("x", "int"), ("lat", "double"), ("lon", "double"),
               ("<field>", "double"), ("count", "long")]  # fmt: skip


def _map_task(task: tuple, _: Any) -> dict[str, np.ndarray]:
    """Per-cell mean of one tile over every picked step (``inside``: the box's cells, None
    for all)."""
    path, snapshot, field, days, rs, cs, inside = task
    c = Cube(Path(path), snapshot)
    total = np.zeros((rs.stop - rs.start, cs.stop - cs.start))
    count = np.zeros(total.shape, np.int64)
    for ci, steps, _valid in days:
        values = _read(c, field, ci, steps, rs, cs)
        wet = np.isfinite(values)
        total += np.where(wet, values.astype(np.float64), 0.0).sum(axis=0)
        count += wet.sum(axis=0)
    lat, lon = c.root["lat"][rs, cs], c.root["lon"][rs, cs]
    a, b = np.nonzero((count > 0) if inside is None else (count > 0) & inside)
    return {"y": (a + rs.start).astype(np.int32), "x": (b + cs.start).astype(np.int32),
            "lat": lat[a, b].astype(np.float64), "lon": lon[a, b].astype(np.float64),
            field: total[a, b] / count[a, b], "count": count[a, b]}  # fmt: skip


def mean_map(
    spark: SparkSession,
    *,
    box: Box | None = None,
    field: str = "sst",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    view: str = "best",
    cube: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> DataFrame:
    """The mean of ``field`` per ocean cell over the valid times ``start``..``end``.

    One Spark task per tile of one map chunk (825 × 1125 cells at full size, 16 tiles; a whole
    number of series chunks, so either layout is read once), each reading every picked step of
    its tile; ``box`` (default: the whole grid) and the rest as :func:`cells`.

    Returns
    -------
    pyspark.sql.DataFrame
        ``y``, ``x``, ``lat``, ``lon``, ``field`` (the mean, double) and ``count`` (valid times
        averaged), one row per ocean cell that has a value; :func:`to_map` draws it.
    """
    c = _open(cube, field)
    if box is not None:
        rs, cs, weights = query.box_block(c, box, _cache(cache_dir))
    else:
        ny, nx = c.root["lat"].shape
        rs, cs, weights = slice(0, ny), slice(0, nx), None
    days = _by_cycle(c.picks(view, start, end))
    th, tw = c.root[field].chunks[2:]  # a map chunk: a whole number of series chunks
    tasks = []
    for r0 in range(rs.start - rs.start % th, rs.stop, th) if days else ():
        for c0 in range(cs.start - cs.start % tw, cs.stop, tw):
            r = slice(max(r0, rs.start), min(r0 + th, rs.stop))
            k = slice(max(c0, cs.start), min(c0 + tw, cs.stop))
            inside = None
            if weights is not None:
                inside = weights[r.start - rs.start : r.stop - rs.start,
                                 k.start - cs.start : k.stop - cs.start] > 0  # fmt: skip
                if not inside.any():
                    continue
            tasks.append((str(c.path), c.snapshot, field, days, r, k, inside))
    return _frame(spark, tasks, _map_task, _schema(field, MAP_COLUMNS))


def to_map(df: DataFrame, *, field: str = "sst", cube: str | Path | None = None) -> xr.DataArray:
    """A :func:`mean_map` DataFrame as a 2-D array on the cube's grid (NaN where no row).

    Collects the map (one value per cell) to the driver, with the grid's ``lat``/``lon``.
    """
    import xarray as xr

    c = _open(cube, field)
    lat, lon = c.root["lat"][:], c.root["lon"][:]
    table = df.select("y", "x", field).toPandas()
    out = np.full(lat.shape, np.nan, np.float64)
    out[table["y"].to_numpy(), table["x"].to_numpy()] = table[field].to_numpy()
    return xr.DataArray(out, dims=("y", "x"), name=field,
                        coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), lon)},
                        attrs=dict(c.root[field].attrs))  # fmt: skip
