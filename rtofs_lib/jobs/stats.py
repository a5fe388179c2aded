"""Region statistics: mean, minimum and maximum of a field in named lon/lat boxes.

The rendering job computes these inside its per-file tasks (a few small rows per
file) and saves them as Parquet next to the maps
(``maps/rtofs.YYYYMMDD/region_stats.parquet``); :func:`load` reads a day or a range of
days back as a Spark DataFrame, :func:`compute` recomputes them from the archive on Spark.

Means are area weighted (cos latitude); land (NaN) is left out.

Examples
--------
>>> REGIONS["gulf_stream"].label
'Gulf Stream'
>>> import numpy as np
>>> lat = np.array([[35.0, 35.0]], np.float32); lon = np.array([[-70.0, 10.0]], np.float32)
>>> rows = region_rows(np.array([[20.0, 25.0]], np.float32), lat, lon, regions=["gulf_stream"])
>>> rows[0]["region"], rows[0]["mean"], rows[0]["count"]
('gulf_stream', 20.0, 1)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: File name of a day's statistics inside ``maps/rtofs.YYYYMMDD/``.
STATS_NAME = "region_stats.parquet"


@dataclass(frozen=True)
class Region:
    """A lon/lat box; ``lon0 > lon1`` means the box crosses the date line.

    Longitudes in [-180, 180), latitudes in [-90, 90].
    """

    name: str
    label: str
    lon0: float
    lon1: float
    lat0: float
    lat1: float

    def mask(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Return a boolean mask of the grid points inside the box (any longitude convention)."""
        lon = (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0
        inside_lat = (lat >= self.lat0) & (lat <= self.lat1)
        if self.lon0 <= self.lon1:
            inside_lon = (lon >= self.lon0) & (lon <= self.lon1)
        else:
            inside_lon = (lon >= self.lon0) | (lon <= self.lon1)
        return inside_lat & inside_lon

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(lon0, lon1, lat0, lat1)``."""
        return (self.lon0, self.lon1, self.lat0, self.lat1)


#: Named regions, in the order plots and tables list them.
REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("global", "Global", -180.0, 180.0, -90.0, 90.0),
        Region("gulf_stream", "Gulf Stream", -80.0, -50.0, 30.0, 45.0),
        Region("north_atlantic", "North Atlantic", -80.0, -5.0, 0.0, 65.0),
        Region("chilean_coast", "Chilean coast", -80.0, -70.0, -45.0, -18.0),
        Region("equatorial_pacific", "Equatorial Pacific", 160.0, -80.0, -10.0, 10.0),
        Region("nino34", "Niño 3.4", -170.0, -120.0, -5.0, 5.0),
        Region("southern_ocean", "Southern Ocean", -180.0, 180.0, -75.0, -50.0),
        Region("mediterranean", "Mediterranean", -6.0, 36.0, 30.0, 46.0),
        Region("arctic", "Arctic", -180.0, 180.0, 66.5, 90.0),
    )
}


def get_region(name: str) -> Region:
    """Return the region called ``name``.

    Raises
    ------
    RtofsError
        If there is no such region; the message lists the known ones.
    """
    try:
        return REGIONS[name]
    except KeyError:
        raise RtofsError(f"unknown region {name!r}; choose one of {', '.join(REGIONS)}") from None


# --- per-file rows (run inside the Spark tasks) --------------------------------------------------

#: Per-process cache: grid signature -> {region: (flat indices, cos-lat weights)}.
_SELECTIONS: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}


def _selections(
    lat: np.ndarray, lon: np.ndarray, regions: Sequence[str], key: str | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    cached = _SELECTIONS.get(key) if key else None
    if cached is not None and all(r in cached for r in regions):
        return cached
    out = dict(cached or {})
    weights = np.cos(np.deg2rad(lat.astype(np.float64))).ravel()
    for name in regions:
        if name not in out:
            idx = np.flatnonzero(get_region(name).mask(lat, lon)).astype(np.int64)
            out[name] = (idx, weights[idx])
    if key:
        _SELECTIONS[key] = out
    return out


def grid_signature(lat: np.ndarray, lon: np.ndarray) -> str:
    """Return a cheap key for a grid (shape and a sample of its coordinates)."""
    h = hashlib.sha1(str(lat.shape).encode())
    for a in (lat, lon):
        h.update(np.ascontiguousarray(a[:: max(1, a.shape[0] // 16), ::97]).tobytes())
    return h.hexdigest()[:16]


def region_rows(
    values: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    regions: Iterable[str] | None = None,
    grid_key: str | None = None,
) -> list[dict[str, Any]]:
    """Return one row per region: ``region``, ``mean``, ``min``, ``max``, ``count``.

    Parameters
    ----------
    values
        2-D field, NaN on land.
    lat, lon
        Grid coordinates of ``values`` (any longitude convention).
    regions
        Region names (default every region of :data:`REGIONS`).
    grid_key
        When given, the regions' grid selections are cached in memory under this key.

    Returns
    -------
    list of dict
        Statistics as Python floats (``None`` where a region holds no ocean point).
    """
    chosen = list(regions or REGIONS)
    sel = _selections(lat, lon, chosen, grid_key)
    flat = np.asarray(values).ravel()
    rows = []
    for name in chosen:
        idx, w = sel[name]
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
    path: str | Path, field: str = "sst", *, regions: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Return the region rows of one file, tagged with date, step, valid time and field.

    The grid's region selections are built once per process and reused.

    Raises
    ------
    RtofsFileError
        If the file cannot be read (see :func:`rtofs_lib.fields.reader.read_field`).
    """
    from rtofs_lib.fields import reader

    data = reader.read_field(path, field, grid=False)
    return values_rows(path, field, data.values, data.valid_time, regions=regions)


def values_rows(
    path: str | Path,
    field: str,
    values: np.ndarray,
    valid_time: dt.datetime | None = None,
    *,
    regions: Iterable[str] | None = None,
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
    """
    path = Path(path)
    values = np.asarray(values)
    lat, lon, key = _grid_for(path, values.shape)
    rows = region_rows(values, lat, lon, regions=regions, grid_key=key)
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


# The grid is read once per process (all global RTOFS files share one grid per shape).
_GRID: dict[str, Any] = {}


def _grid_for(path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, str]:
    from rtofs_lib.fields import reader

    if _GRID.get("shape") != shape:
        lat, lon = reader.read_grid(path)
        _GRID.update(shape=shape, lat=lat, lon=lon, key=grid_signature(lat, lon))
    return _GRID["lat"], _GRID["lon"], _GRID["key"]


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
    tmp = path.with_name(f".{path.name}.tmp")
    _remove_tree(tmp)
    tmp.mkdir(parents=True)
    pq.write_table(table, tmp / "part-00000.parquet")
    (tmp / "_SUCCESS").touch()
    _replace_tree(tmp, path)
    return path


def write_spark(df: DataFrame, path: str | Path) -> Path:
    """Write a region-statistics DataFrame as one Parquet folder (replacing an old one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    df.coalesce(1).write.mode("overwrite").parquet(f"file://{tmp.resolve()}")
    _replace_tree(tmp, path)
    return path


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _replace_tree(tmp: Path, path: Path) -> None:
    # Swap in the new folder: readers see the old or the new one, never half of one.
    old = path.with_name(f".{path.name}.old")
    _remove_tree(old)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    _remove_tree(old)


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
