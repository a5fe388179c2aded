"""The analysis-ready cube: what goes in equals the netCDF, the views, concurrency, the CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import (
    DAY2,
    FIELDS,
    LAND,
    SAMPLE_DATE,
    SEA,
    day_file,
    land,
    run_cli,
    same_bits,
)

from rtofs_lib import open_cube
from rtofs_lib.cube import CubeError, box_series, point_series, store
from rtofs_lib.fetch import names
from rtofs_lib.fields.netcdf import read_field
from rtofs_lib.fields.regions import Region
from rtofs_lib.jobs import cubebuild, pipeline
from rtofs_lib.testing import sample

# --- what goes in -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", FIELDS)
def test_every_stored_field_equals_the_netcdf_bit_for_bit(full_cube, small_day, field):
    ds = open_cube(field, cube=full_cube)
    for path in sorted((small_day / names.day_folder(SAMPLE_DATE)).glob("*.nc")):
        step = names.parse_name(path.name).step
        stored = ds[field].sel(cycle=np.datetime64("2026-07-08"), step=step).values
        assert stored.dtype == np.float32
        assert same_bits(stored, read_field(path, field).values), (field, step)


def test_a_file_the_cube_holds_is_read_from_it_and_another_version_is_not(
    full_cube, small_day, tmp_path
):
    from rtofs_lib.cube.query import file_map

    path = day_file(small_day, SAMPLE_DATE, "f002")
    assert same_bits(file_map(path, "sst", full_cube), read_field(path, "sst").values)
    copy = tmp_path / names.day_folder(SAMPLE_DATE) / path.name
    copy.parent.mkdir()
    shutil.copyfile(path, copy)  # same bytes, another identity (mtime): not this cube's file
    assert file_map(copy, "sst", full_cube) is None
    assert file_map(path, "ssh", full_cube) is None  # a field it does not store
    assert file_map(path, "sst", tmp_path / "no-cube") is None


def test_open_cube_marks_the_files_it_holds_and_gives_valid_times(full_cube):
    ds = open_cube("sst", cube=full_cube)
    held = ds["step"].values[ds["present"].values[0]]
    assert list(held) == ["n024", "f000", "f001", "f002", "f003"]
    assert ds["valid_time"].sel(step="f003").values[0] == np.datetime64("2026-07-08T03:00")
    assert ds["lat"].dims == ("y", "x") and ds["lon"].dims == ("y", "x")


def test_an_unknown_field_names_the_stored_ones(full_cube):
    with pytest.raises(CubeError, match=r"no field 'ssh'.*stored: speed, sss, sst"):
        open_cube("ssh", cube=full_cube)


def test_a_missing_cube_says_how_to_fill_it(tmp_path):
    with pytest.raises(CubeError, match="no cube here; fill it with `rtofs cube build"):
        open_cube("sst", cube=tmp_path / "nowhere")


def test_appending_a_file_again_writes_nothing(full_cube, small_day):
    path = day_file(small_day, SAMPLE_DATE, "f001")
    assert store.missing([path], full_cube) == []
    assert store.append(path, full_cube, FIELDS) is False


# --- views --------------------------------------------------------------------------------------


def test_best_view_takes_the_latest_cycle_and_a_nowcast_first(two_cycles):
    _, cube = two_cycles
    s = point_series(*SEA, cube=cube, cache_dir=cube.parent / "cache")
    got = {str(t)[:13]: (str(c)[:10], st, float(v)) for t, c, st, v in
           zip(s["valid_time"].values, s["cycle"].values, s["step"].values, s.values,
               strict=True)}  # fmt: skip
    assert got == {
        "2026-07-08T00": ("2026-07-09", "n000", np.float32(9.1)),  # newer cycle's nowcast
        "2026-07-09T00": ("2026-07-09", "n024", np.float32(9.1)),  # nowcast before f000
    }


def test_per_cycle_view_keeps_every_forecast_of_a_valid_time(two_cycles):
    _, cube = two_cycles
    s = point_series(*SEA, view="cycles", cube=cube, cache_dir=cube.parent / "cache")
    assert s.dims == ("cycle", "step")
    at = s.where(s["valid_time"] == np.datetime64("2026-07-09T00:00"))
    kept = {(str(c)[:10], str(st)): float(at.sel(cycle=c, step=st))
            for c in s["cycle"].values for st in s["step"].values
            if np.isfinite(at.sel(cycle=c, step=st))}  # fmt: skip
    assert kept == {("2026-07-08", "f024"): np.float32(8.0),
                    ("2026-07-09", "f000"): np.float32(9.0),
                    ("2026-07-09", "n024"): np.float32(9.1)}  # fmt: skip


def test_from_and_to_select_valid_days(two_cycles):
    _, cube = two_cycles
    s = point_series(*SEA, start=DAY2, end=DAY2, cube=cube, cache_dir=cube.parent / "cache")
    assert [str(t)[:10] for t in s["valid_time"].values] == ["2026-07-09"]


def test_box_mean_is_the_cos_latitude_weighted_mean_over_ocean(full_cube, small_day):
    box = (-40.0, -20.0, -10.0, 10.0)
    s = box_series(box, cube=full_cube)
    data = read_field(day_file(small_day, SAMPLE_DATE, "f002"), "sst")
    inside = Region("b", "b", *box).mask(data.lat, data.lon) & np.isfinite(data.values)
    w = np.cos(np.deg2rad(data.lat[inside].astype(np.float64)))
    expected = (data.values[inside] * w).sum() / w.sum()
    got = s.sel(valid_time=np.datetime64("2026-07-08T02:00")).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_complete_day_reads_its_series_copy_with_the_same_values(tmp_path, small_day):
    cube = tmp_path / "cube"
    for path in sorted((small_day / names.day_folder(SAMPLE_DATE)).glob("*.nc")):
        store.append(path, cube, ["sst"])
    before = point_series(*SEA, cube=cube, cache_dir=tmp_path / "cache")
    assert store.finish_day(cube, SAMPLE_DATE, ["n024", "f000", "f001", "f002", "f003"])
    assert not store.finish_day(cube, SAMPLE_DATE)  # already current
    after = point_series(*SEA, cube=cube, cache_dir=tmp_path / "cache")
    assert same_bits(before.values, after.values)
    assert (before["step"].values == after["step"].values).all()


def test_an_incomplete_day_gets_no_series_copy(tmp_path, small_day):
    cube = tmp_path / "cube"
    store.append(day_file(small_day, SAMPLE_DATE, "f001"), cube, ["sst"])
    assert not store.finish_day(cube, SAMPLE_DATE, ["f001", "f002"])


# --- points -------------------------------------------------------------------------------------


def test_a_point_on_land_names_the_nearest_ocean_cell(full_cube):
    says = (
        r"10°, 20° is on land \(grid cell j=\d+, i=\d+\); "
        r"the nearest ocean cell is j=\d+, i=\d+ at -?[\d.]+°, -?[\d.]+°: ask for that point"
    )
    with pytest.raises(CubeError, match=says):
        point_series(*LAND, cube=full_cube)


def test_the_named_ocean_cell_answers(full_cube):
    with pytest.raises(CubeError) as e:
        point_series(*LAND, cube=full_cube)
    lon, lat = (float(v.rstrip("°:,")) for v in str(e.value).split(" at ")[1].split()[:2])
    assert point_series(lon, lat, cube=full_cube).sizes["valid_time"] == 4


def test_longitude_is_wrapped(full_cube):
    a = point_series(*SEA, cube=full_cube)
    b = point_series(SEA[0] + 360.0, SEA[1], cube=full_cube)
    assert (a.attrs["j"], a.attrs["i"]) == (b.attrs["j"], b.attrs["i"])
    assert same_bits(a.values, b.values)


@pytest.mark.parametrize("lat", [-85.0, 91.0], ids=["south-of-grid", "beyond-pole"])
def test_latitude_outside_the_grid_is_refused(full_cube, lat):
    with pytest.raises(CubeError, match=rf"latitude {lat:g}° is outside the cube's grid"):
        point_series(0.0, lat, cube=full_cube)


def test_a_grid_cell_given_reads_that_cell(full_cube):
    a = point_series(*SEA, cube=full_cube)
    b = point_series(0.0, 0.0, cube=full_cube, cell=(a.attrs["j"], a.attrs["i"]))
    assert (b.attrs["j"], b.attrs["i"]) == (a.attrs["j"], a.attrs["i"])
    assert same_bits(a.values, b.values)


def test_a_land_grid_cell_given_is_refused(full_cube):
    ocean = open_cube("sst", cube=full_cube)["sst"].isel(cycle=0, step=0).notnull().values
    j, i = np.argwhere(~ocean)[0]
    with pytest.raises(CubeError, match=rf"grid cell j={j}, i={i} is land or outside"):
        point_series(0.0, 0.0, cube=full_cube, cell=(j, i))


def test_point_value_is_the_files_value_at_the_nearest_cell(full_cube, small_day):
    s = point_series(*SEA, cube=full_cube)
    path = day_file(small_day, SAMPLE_DATE, "f003")
    value = read_field(path, "sst").values[s.attrs["j"], s.attrs["i"]]
    assert s.sel(valid_time=np.datetime64("2026-07-08T03:00")).item() == value


# --- writers ------------------------------------------------------------------------------------

WRITER = """
import sys
from rtofs_lib.cube import store
for path in sys.argv[2:]:
    store.append(path, sys.argv[1], ["sst"])
"""


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    archive, cube = tmp_path / "archive", tmp_path / "cube"
    paths = sample.write_sample(archive, SAMPLE_DATE, steps="f000-f011", grid="66x90")
    paths += sample.write_sample(archive, DAY2, steps="f000-f003", grid="66x90")
    halves = [paths[0::2], paths[1::2]]  # both add the same new cycles and interleave steps
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(cube), *map(str, half)])
             for half in halves]  # fmt: skip
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert store.missing(paths, cube) == []
    ds = open_cube("sst", cube=cube)
    for path in paths:
        n = names.parse_name(str(path))
        stored = ds["sst"].sel(cycle=np.datetime64(n.date), step=n.step).values
        assert same_bits(stored, read_field(path, "sst").values)


KILLED_WRITER = """
import sys, time
from rtofs_lib.cube import store
cube, path, ready = sys.argv[1:]
date, step = store._where(__import__("pathlib").Path(path))
values, attrs = store._read(__import__("pathlib").Path(path), ["sst"])
def work(session):
    root = store._layout(session, store._grid_of(path, values["sst"]), attrs)
    c = store.cycle_index(root, date, add=True)
    root["sst"][c, store.STEPS.index(step)] = values["sst"]  # chunks written, not committed
    with store._commit_lock(__import__("pathlib").Path(cube)):
        open(ready, "w").close()
        time.sleep(600)
store.transact(cube, "killed", work)
"""


def test_a_writer_killed_mid_append_leaves_the_cube_readable_and_the_next_append_completes(
    tmp_path, small_day
):
    cube = tmp_path / "cube"
    first, second = (day_file(small_day, SAMPLE_DATE, s) for s in ("f000", "f001"))
    store.append(first, cube, ["sst"])
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(cube), str(second),
                             str(ready)])  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # holding the commit lock, chunks half written
    proc.wait()
    assert store.missing([first, second], cube) == [second]
    assert store.append(second, cube, ["sst"])  # the lock died with it
    ds = open_cube("sst", cube=cube)
    for path, step in ((first, "f000"), (second, "f001")):
        assert same_bits(ds["sst"].sel(step=step).values[0], read_field(path, "sst").values)


def test_a_writer_killed_at_any_point_of_its_appends_loses_only_what_it_had_not_committed(
    tmp_path,
):
    archive, cube = tmp_path / "archive", tmp_path / "cube"
    paths = sample.write_sample(archive, SAMPLE_DATE, steps="f000-f023", grid="66x90")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(cube), *map(str, paths)])
    deadline = time.monotonic() + 120
    while len(store.missing(paths, cube)) > len(paths) - 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # wherever it is: reading, writing chunks, committing
    proc.wait()
    left = store.missing(paths, cube)
    ds = open_cube("sst", cube=cube)
    for path in sorted(set(paths) - set(left)):
        step = names.parse_name(path.name).step
        assert same_bits(ds["sst"].sel(step=step).values[0], read_field(path, "sst").values)
    for path in left:
        assert store.append(path, cube, ["sst"])
    assert store.missing(paths, cube) == []


def test_a_file_noaa_replaced_is_written_again(tmp_path, small_day):
    archive, cube = tmp_path / "archive", tmp_path / "cube"
    (path,) = sample.write_sample(archive, SAMPLE_DATE, steps="f001", grid="small")
    store.append(path, cube, ["sst"])
    sample.write_file(path, "prog", SAMPLE_DATE, "f001", grid="small", seed=7)  # new content
    assert store.missing([path], cube) == [path]
    assert store.append(path, cube, ["sst"])
    stored = open_cube("sst", cube=cube)["sst"].sel(step="f001").values[0]
    assert same_bits(stored, read_field(path, "sst").values)


# --- the pipeline and the backfill --------------------------------------------------------------


def test_run_appends_each_file_and_a_failed_append_is_done_by_the_next_run(tmp_path, small_day):
    cube = tmp_path / "cube"
    cube.write_text("not a folder: every append fails")
    kw = {"archive": small_day, "maps": tmp_path / "maps", "cache_dir": tmp_path / "cache",
          "master": "serial", "sizes": ["low"], "cube": cube}  # fmt: skip
    first = pipeline.run(SAMPLE_DATE, **kw)
    assert first.exit_status == 0 and len(first.rendered) == 5  # the maps are out
    cube.unlink()
    second = pipeline.run(SAMPLE_DATE, **kw)
    assert len(second.skipped) == 5  # no map drawn again
    files = sorted((small_day / names.day_folder(SAMPLE_DATE)).glob("*.nc"))
    assert store.missing(files, cube) == []


def test_the_stream_appends_each_file_it_publishes(streams, stream_sources, tmp_path, monkeypatch):
    cube = tmp_path / "cube"
    monkeypatch.setenv("RTOFS_CUBE", str(cube))
    s = streams(tmp_path)
    landed = [land(s.archive, stream_sources / names.compose_name("prog", step))
              for step in ("n024", "f000")]  # fmt: skip
    done = subprocess.run(s.command("--once"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert s.listed() == {"n024", "f000"}
    assert store.missing(landed, cube) == []


def test_a_stream_restarted_after_failed_appends_appends_the_days_files(
    streams, stream_sources, tmp_path, monkeypatch
):
    cube = tmp_path / "cube"
    cube.write_text("not a folder: every append fails")
    monkeypatch.setenv("RTOFS_CUBE", str(cube))
    s = streams(tmp_path)
    first = land(s.archive, stream_sources / names.compose_name("prog", "n024"))
    done = subprocess.run(s.command("--once"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and s.listed() == {"n024"}, done.stdout + done.stderr
    cube.unlink()
    second = land(s.archive, stream_sources / names.compose_name("prog", "f000"))
    again = subprocess.run(s.command("--once"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert store.missing([first, second], cube) == []  # n024's record was taken before


def test_cube_build_appends_the_days_and_a_rerun_repeats_nothing(tmp_path):
    archive, cube = tmp_path / "archive", tmp_path / "cube"
    sample.write_sample(archive, SAMPLE_DATE, steps="n024,f000-f002", grid="66x90")
    sample.write_sample(archive, DAY2, steps="n024,f000", grid="66x90")
    report = cubebuild.build(SAMPLE_DATE, DAY2, archive=archive, cube=cube, master="local[2]")
    assert (len(report.appended), report.failed, report.exit_status) == (6, [], 0)
    again = cubebuild.build(SAMPLE_DATE, DAY2, archive=archive, cube=cube, master="serial")
    assert (again.appended, again.up_to_date) == ([], 6)
    assert (open_cube("sst", cube=cube)["present"].sum(axis=1).values == [4, 2]).all()


# --- command line -------------------------------------------------------------------------------


def test_series_cli_prints_csv_of_valid_time_and_field(full_cube, tmp_path):
    out = run_cli("series", "--lon", "-30", "--lat", "0", "--cube", str(full_cube),
                  "--plot", str(tmp_path / "s.png"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "valid_time,sst"
    times = [f"2026-07-08 0{h}:00Z" for h in range(4)]
    assert [line.split(",")[0] for line in lines[1:]] == times
    expected = point_series(*SEA, cube=full_cube).values
    assert same_bits([np.float32(line.split(",")[1]) for line in lines[1:]], expected)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_series_cli_refuses_a_land_point_naming_the_ocean_cell(full_cube):
    out = run_cli("series", "--lon", "10", "--lat", "20", "--cube", str(full_cube))
    assert out.returncode == 1
    assert "is on land" in out.stderr and "the nearest ocean cell is" in out.stderr


def test_series_cli_box_prints_one_mean_per_valid_time(full_cube):
    out = run_cli("series", "--box=-40,-20,-10,10", "--cube", str(full_cube))
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 5
