"""Region statistics: mean, minimum and maximum of a field in named lon/lat boxes.

The rendering job computes these inside its per-file tasks (a few small rows per
file) and saves them as Parquet next to the maps
(``maps/rtofs.YYYYMMDD/region_stats.parquet``); :func:`load` reads a day or a range of
days back as a Spark DataFrame, :func:`compute` recomputes them from the archive on Spark.
The regions are :data:`rtofs_lib.fields.regions.REGIONS`.

Means are area weighted (cos latitude); land (NaN) is left out.

Examples
--------
>>> import numpy as np
>>> from rtofs_lib.fields.grid import Grid
>>> grid = Grid(np.array([[35.0, 35.0]], np.float32), np.array([[-70.0, 10.0]], np.float32))
>>> rows = region_rows(np.array([[20.0, 25.0]], np.float32), grid, regions=["gulf_stream"])
>>> rows[0]["region"], rows[0]["mean"], rows[0]["count"]
('gulf_stream', 20.0, 1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtofs_lib import atomic
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import netcdf
from rtofs_lib.fields.grid import Grid
from rtofs_lib.fields.regions import REGIONS, get_region

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: File name of a day's statistics inside ``maps/rtofs.YYYYMMDD/``.
STATS_NAME = "region_stats.parquet"


# --- per-file rows (run inside the Spark tasks) --------------------------------------------------


def region_rows(
    values: np.ndarray, grid: Grid, *, regions: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Return one row per region: ``region``, ``mean``, ``min``, ``max``, ``count``.

    Parameters
    ----------
    values
        2-D field on ``grid``, NaN on land.
    grid
        The field's grid; its region selections are computed once per process.
    regions
        Region names (default every region of :data:`~rtofs_lib.fields.regions.REGIONS`).

    Returns
    -------
    list of dict
        Statistics as Python floats (``None`` where a region holds no ocean point).
    """
    flat = np.asarray(values).ravel()
    rows = []
    for name in list(regions or REGIONS):
        idx, w = grid.selection(get_region(name))
        v = flat[idx]
        ok = np.isfinite(v)
        n = int(ok.sum())
        if n:
            vv, ww = v[ok].astype(np.float64), w[ok]
            mean, lo, hi = float(np.dot(vv, ww) / ww.sum()), float(vv.min()), float(vv.max())
        else:
            mean = lo = hi = None
        rows.append({"region": name, "mean": mean, "min": lo, "max": hi, "count": n})
    return rows


def file_rows(
    path: str | Path,
    field: str = "sst",
    *,
    regions: Iterable[str] | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Return the region rows of one file, tagged with date, step, valid time and field.

    The grid's region selections are built once per process and reused.

    Raises
    ------
    RtofsFileError
        If the file cannot be read (see :func:`rtofs_lib.fields.reader.read_field`).
    """
    data = netcdf.read_field(path, field, grid=False)
    return values_rows(
        path, field, data.values, data.valid_time, regions=regions, cache_dir=cache_dir
    )


def values_rows(
    path: str | Path,
    field: str,
    values: np.ndarray,
    valid_time: dt.datetime | None = None,
    *,
    regions: Iterable[str] | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Return the rows of :func:`file_rows` from a field already read from ``path``.

    For callers that hold the values (the rendering job gets them from
    :func:`rtofs_lib.maps.render.render_file`), so the file's field is not read twice.

    Parameters
    ----------
    path
        The file the values come from (its name gives date and step; its grid is read
        once per process).
    field
        Name of the field the values are.
    values
        The 2-D field as :func:`rtofs_lib.fields.reader.read_field` returns it (NaN on land).
    valid_time
        The field's valid time (default: from the file name).
    regions
        Region names (default every region).
    cache_dir
        Grid cache folder (lets a fresh process know the file's grid without hashing it).
    """
    path = Path(path)
    rows = region_rows(values, Grid.of_file(path, cache_dir), regions=regions)
    name = names.parse_name(path)
    date = name.date.strftime("%Y%m%d") if name.date else ""
    vt = valid_time or (name.valid_time if name.date else None)
    for r in rows:
        r.update(
            date=date,
            step=name.step,
            valid_time=vt.isoformat() if vt else None,
            field=field,
            stem=name.stem,
        )
    return rows


# --- DataFrames ----------------------------------------------------------------------------------

COLUMNS = (
    ("date", "string"),
    ("step", "string"),
    ("valid_time", "timestamp"),
    ("field", "string"),
    ("region", "string"),
    ("mean", "double"),
    ("min", "double"),
    ("max", "double"),
    ("count", "long"),
    ("stem", "string"),
)


def schema():
    """Return the Spark schema of region statistics."""
    from pyspark.sql import types as T

    kinds = {
        "string": T.StringType(),
        "timestamp": T.TimestampNTZType(),
        "double": T.DoubleType(),
        "long": T.LongType(),
    }
    return T.StructType([T.StructField(n, kinds[k], True) for n, k in COLUMNS])


def _typed(row: dict[str, Any]) -> tuple:
    vt = row.get("valid_time")
    if isinstance(vt, str):
        vt = dt.datetime.fromisoformat(vt)
    return tuple(vt if n == "valid_time" else row.get(n) for n, _ in COLUMNS)


def to_dataframe(spark: SparkSession, rows: Iterable[dict[str, Any]]) -> DataFrame:
    """Return region rows (as made by :func:`file_rows`) as a Spark DataFrame."""
    return spark.createDataFrame([_typed(r) for r in rows], schema())


def stats_path(maps: str | Path, date: str | dt.date) -> Path:
    """Return ``maps/rtofs.YYYYMMDD/region_stats.parquet``."""
    return Path(maps) / names.day_folder(date) / STATS_NAME


def write_parquet(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write region rows as a Parquet folder with one part file, without Spark.

    The layout matches Spark's writer, so ``spark.read.parquet`` and
    ``pandas.read_parquet`` read either.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    arrow = {
        "string": pa.string(),
        "timestamp": pa.timestamp("us"),
        "double": pa.float64(),
        "long": pa.int64(),
    }
    table = pa.Table.from_pylist(
        [dict(zip([n for n, _ in COLUMNS], _typed(r), strict=True)) for r in rows],
        schema=pa.schema([(n, arrow[k]) for n, k in COLUMNS]),
    )
    tmp = atomic.temporary_path(path)
    tmp.mkdir(parents=True)
    pq.write_table(table, tmp / "part-00000.parquet")
    (tmp / "_SUCCESS").touch()
    return atomic.replace_tree(tmp, path)


def write_spark(df: DataFrame, path: str | Path) -> Path:
    """Write a region-statistics DataFrame as one Parquet folder (replacing an old one)."""
    path = Path(path)
    tmp = atomic.temporary_path(path)
    df.coalesce(1).write.mode("overwrite").parquet(f"file://{tmp.resolve()}")
    return atomic.replace_tree(tmp, path)


def load(
    spark: SparkSession,
    maps: str | Path,
    dates: str | dt.date | Iterable[str | dt.date] | None = None,
) -> DataFrame:
    """Return the saved region statistics of a day, a list of days or every day as a DataFrame.

    Parameters
    ----------
    spark
        The session to read with.
    maps
        The maps folder the rendering job writes to.
    dates
        ``"20260708"``, a list of dates, or None for every day found.

    Raises
    ------
    RtofsError
        If none of the requested days has statistics; run ``rtofs run`` first.
    """
    maps = Path(maps)
    if dates is None:
        paths = sorted(maps.glob(f"{names.DAY_PREFIX}*/{STATS_NAME}"))
    else:
        wanted = [dates] if isinstance(dates, str | dt.date) else list(dates)
        paths = [stats_path(maps, d) for d in wanted]
    missing = [p for p in paths if not p.exists()]
    present = [p for p in paths if p.exists()]
    if not present:
        raise RtofsError(
            f"{maps}: no region statistics for {'any day' if dates is None else dates}; "
            "run `rtofs run --date YYYYMMDD` first"
        )
    if missing:
        import logging

        logging.getLogger(__name__).warning(
            "no region statistics in %s", ", ".join(map(str, missing))
        )
    return spark.read.schema(schema()).parquet(*[f"file://{p.resolve()}" for p in present])


def compute(
    spark: SparkSession,
    files: Sequence[str | Path],
    field: str = "sst",
    *,
    regions: Iterable[str] | None = None,
) -> DataFrame:
    """Compute region statistics of ``files`` on Spark (one task per file) as a DataFrame.

    Only the small rows travel back; unreadable files raise on the driver with the
    file's error.
    """
    paths = [str(p) for p in files]
    if not paths:
        raise RtofsError("no files given to compute region statistics from")
    chosen = list(regions) if regions is not None else None
    rdd = spark.sparkContext.parallelize(paths, len(paths)).flatMap(
        lambda p: [_typed(r) for r in file_rows(p, field, regions=chosen)]
    )
    return spark.createDataFrame(rdd, schema())
