"""The cube as a Spark input: cells, box means and mean maps equal the cube's and the netCDF's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLE_DATE, SEA, day_file, same_bits

from rtofs_lib.cube import CubeError, box_series, open_cube, point_series, store
from rtofs_lib.fields.netcdf import read_field
from rtofs_lib.fields.regions import Region
from rtofs_lib.jobs import cubespark

BOX = (-40.0, -20.0, -10.0, 10.0)
STEPS = ("n024", "f000", "f001", "f002", "f003")
#: The best view of the sample day: n024 and f000 are both valid at 07-08 00Z; the nowcast wins.
BEST = ("n024", "f001", "f002", "f003")


@pytest.fixture(scope="module")
def spark(spark_sessions):
    return spark_sessions.get("local[2]")


def rows(df, *columns):
    return [tuple(r[c] for c in columns) for r in df.orderBy(*columns).collect()]


def test_cells_of_a_box_are_the_cubes_ocean_values(spark, full_cube, spark_cache):
    df = cubespark.cells(spark, box=BOX, cube=full_cube, cache_dir=spark_cache)
    ds = open_cube("sst", cube=full_cube)
    inside = Region("b", "b", *BOX).mask(ds["lat"].values, ds["lon"].values)
    assert sorted({r["step"] for r in df.select("step").collect()}) == sorted(BEST)
    for step in BEST:
        got = df.where(df.step == step).select("y", "x", "sst").toPandas()
        stored = ds["sst"].sel(step=step).values[0]
        expected = inside & np.isfinite(stored)
        assert len(got) == expected.sum(), step  # land left out
        assert same_bits(got["sst"].to_numpy(), stored[got["y"], got["x"]])


def test_cells_carry_the_cells_coordinates_and_weights(spark, full_cube, spark_cache):
    one = cubespark.cells(spark, box=BOX, cube=full_cube, cache_dir=spark_cache).first()
    ds = open_cube("sst", cube=full_cube)
    assert one["lat"] == pytest.approx(float(ds["lat"].values[one["y"], one["x"]]))
    assert one["lon"] == pytest.approx(float(ds["lon"].values[one["y"], one["x"]]))
    assert one["weight"] == pytest.approx(np.cos(np.deg2rad(one["lat"])))


def test_cells_at_a_point_are_its_best_series(spark, two_cycles, spark_cache):
    _, cube = two_cycles
    df = cubespark.cells(spark, points=[SEA], cube=cube, cache_dir=spark_cache)
    s = point_series(*SEA, cube=cube, cache_dir=spark_cache)
    assert rows(df, "valid_time", "step", "sst") == [
        (t.astype("datetime64[us]").item(), str(st), float(v))
        for t, st, v in zip(s["valid_time"].values, s["step"].values, s.values, strict=True)
    ]
    assert {str(r["cycle"]) for r in df.collect()} == {"2026-07-09"}  # the newer cycle


def test_cells_in_the_cycles_view_keep_every_forecast(spark, two_cycles, spark_cache):
    _, cube = two_cycles
    df = cubespark.cells(spark, points=[SEA], view="cycles", cube=cube, cache_dir=spark_cache)
    s = point_series(*SEA, view="cycles", cube=cube, cache_dir=spark_cache)
    assert df.count() == int(np.isfinite(s.values).sum()) == 6


def test_there_is_one_task_per_cycle_day(spark, two_cycles, spark_cache):
    _, cube = two_cycles
    df = cubespark.cells(spark, points=[SEA], view="cycles", cube=cube, cache_dir=spark_cache)
    assert df.rdd.getNumPartitions() == 2


def test_cells_need_a_box_or_points(spark, full_cube):
    with pytest.raises(CubeError, match=r"give either box=.* or points="):
        cubespark.cells(spark, cube=full_cube)


def test_a_frame_reads_the_cube_as_it_was_when_made(spark, tmp_path, small_day, spark_cache):
    cube = tmp_path / "cube"
    store.append(day_file(small_day, SAMPLE_DATE, "f000"), cube, ["sst"])
    df = cubespark.box_mean(spark, BOX, cube=cube, cache_dir=spark_cache)
    store.append(day_file(small_day, SAMPLE_DATE, "f001"), cube, ["sst"])
    assert [r["step"] for r in df.collect()] == ["f000"]


def test_box_mean_equals_box_series(spark, full_cube, spark_cache):
    df = cubespark.box_mean(spark, BOX, cube=full_cube, cache_dir=spark_cache)
    s = box_series(BOX, cube=full_cube, cache_dir=spark_cache)
    got = rows(df, "valid_time", "sst")
    assert [t for t, _ in got] == [
        t.astype("datetime64[us]").item() for t in s["valid_time"].values
    ]
    assert [v for _, v in got] == [float(v) for v in s.values]


def test_box_mean_takes_the_best_view(spark, two_cycles, spark_cache):
    _, cube = two_cycles
    df = cubespark.box_mean(spark, BOX, cube=cube, cache_dir=spark_cache)
    assert [(s, round(v, 4)) for _, s, v in rows(df, "valid_time", "step", "sst")] == [
        ("n000", 9.1),
        ("n024", 9.1),
    ]


def test_mean_map_is_each_ocean_cells_mean_over_the_files(spark, full_cube, small_day):
    df = cubespark.mean_map(spark, cube=full_cube)
    got = cubespark.to_map(df, cube=full_cube)
    stack = np.stack([read_field(day_file(small_day, SAMPLE_DATE, s), "sst").values for s in STEPS])
    best = np.stack([stack[0], *stack[2:]])  # BEST: n024, f001-f003
    wet = np.isfinite(best)
    with np.errstate(invalid="ignore"):  # land: 0 / 0
        expected = np.where(wet, best.astype(np.float64), 0.0).sum(axis=0) / wet.sum(axis=0)
    assert got.shape == expected.shape
    assert np.array_equal(np.isnan(got.values), np.isnan(expected))  # land is NaN
    np.testing.assert_allclose(got.values, expected, rtol=1e-12, equal_nan=True)
    assert set(df.select("count").distinct().toPandas()["count"]) == {4}


def test_mean_map_of_a_period_averages_only_its_valid_days(spark, two_cycles):
    _, cube = two_cycles
    df = cubespark.mean_map(spark, start="20260709", end="20260709", cube=cube)
    means = df.select("sst").distinct().toPandas()["sst"]
    assert list(means.round(4)) == [9.1]  # 07-09 00Z only, from the newer cycle's n024


def test_mean_map_of_a_box_holds_only_its_cells(spark, full_cube, spark_cache):
    df = cubespark.mean_map(spark, box=BOX, cube=full_cube, cache_dir=spark_cache)
    cells = cubespark.cells(spark, box=BOX, cube=full_cube, cache_dir=spark_cache)
    assert df.count() == cells.select("y", "x").distinct().count()


def test_mean_map_has_one_task_per_map_chunk(spark, full_cube):
    chunks = open_cube("sst", cube=full_cube)["sst"].encoding["chunks"]
    assert chunks[2:] == (825, 1125)  # one map chunk holds the small grid
    assert cubespark.mean_map(spark, cube=full_cube).rdd.getNumPartitions() == 1
