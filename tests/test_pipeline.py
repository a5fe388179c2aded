"""The rendering job on real Spark (local mode and a real standalone cluster) and serially."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_DATE
from PIL import Image

from rtofs_lib.fetch import names
from rtofs_lib.fields import grid as gridmod
from rtofs_lib.fields import netcdf, regrid
from rtofs_lib.fields.regions import REGIONS
from rtofs_lib.jobs import dashboard, pipeline, stats, work
from rtofs_lib.maps.rasters import raster_for
from rtofs_lib.status import ExitStatus

N_FILES = 12  # spark_day: n024, f000-f010


def run_job(archive: Path, maps: Path, cache: Path, **kw) -> pipeline.RunReport:
    return pipeline.run(SAMPLE_DATE, archive=archive, maps=maps, cache_dir=cache, **kw)


def day_pngs(maps: Path) -> dict[str, np.ndarray]:
    """Every map of the sample day, decoded, keyed by its path inside the day folder."""
    day = maps / names.day_folder(SAMPLE_DATE)
    out = {}
    for png in sorted(day.glob("*/*.png")):
        with Image.open(png) as im:
            im.load()
            out[str(png.relative_to(day))] = np.asarray(im)
    return out


def copy_day(archive: Path, dest: Path) -> Path:
    shutil.copytree(archive / names.day_folder(SAMPLE_DATE), dest / names.day_folder(SAMPLE_DATE))
    return dest


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def serial_maps(spark_day, spark_cache, tmp_path_factory) -> Path:
    """The sample day rendered serially: the reference the Spark runs must match."""
    maps = tmp_path_factory.mktemp("maps-serial")
    cube = tmp_path_factory.mktemp("cube-serial")
    report = run_job(spark_day, maps, spark_cache, master="serial", cube=cube)
    assert report.exit_status == 0
    return maps


# --- the job renders a day -----------------------------------------------------------------------


def test_job_renders_every_map_like_the_serial_run(
    spark_master, spark_sessions, spark_day, spark_cache, serial_maps, tmp_path
):
    spark = spark_sessions.get(spark_master)
    report = run_job(spark_day, tmp_path, spark_cache, spark=spark)

    assert report.exit_status == 0
    assert [r.status for r in report.results] == ["rendered"] * N_FILES
    got, want = day_pngs(tmp_path), day_pngs(serial_maps)
    assert sorted(got) == sorted(want)
    assert len(got) == N_FILES * 2  # sst low and high per file
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_standalone_job_runs_on_both_workers(
    spark_cluster, spark_sessions, spark_day, spark_cache, tmp_path
):
    spark = spark_sessions.get(spark_cluster.master_url)
    report = run_job(spark_day, tmp_path, spark_cache, spark=spark, sizes=("low",))

    assert report.exit_status == 0
    # Each worker's executor has its own Python workers.
    assert len({r.pid for r in report.results}) >= 2


def test_maps_have_the_render_sizes(spark_sessions, spark_day, spark_cache, tmp_path):
    report = run_job(spark_day, tmp_path, spark_cache, spark=spark_sessions.get("local[2]"))
    day = tmp_path / names.day_folder(SAMPLE_DATE)
    for size in ("low", "high"):
        raster = raster_for(None, size)
        with Image.open(day / report.results[0].stem / f"sst.{size}.png") as im:
            assert im.width >= raster.width and im.height >= raster.height


def test_serial_run_needs_no_spark(spark_day, spark_cache, tmp_path):
    report = run_job(spark_day, tmp_path, spark_cache, master="serial", sizes=("low",))
    assert report.master == "serial"
    assert len(report.rendered) == N_FILES


# --- skipping and failures -----------------------------------------------------------------------


def test_rerun_does_no_work(spark_master, spark_sessions, spark_day, spark_cache, tmp_path):
    spark = spark_sessions.get(spark_master)
    run_job(spark_day, tmp_path, spark_cache, spark=spark, sizes=("low",))
    day = tmp_path / names.day_folder(SAMPLE_DATE)
    before = {p: p.stat().st_mtime_ns for p in day.rglob("*") if p.is_file()}

    again = run_job(spark_day, tmp_path, spark_cache, spark=spark, sizes=("low",))

    assert [r.status for r in again.results] == ["skipped"] * N_FILES
    assert again.outputs == []
    assert {p: p.stat().st_mtime_ns for p in day.rglob("*") if p.is_file()} == before


def test_force_renders_again(spark_day, spark_cache, tmp_path):
    run_job(spark_day, tmp_path, spark_cache, master="serial", sizes=("low",))
    again = run_job(spark_day, tmp_path, spark_cache, master="serial", sizes=("low",), force=True)
    assert len(again.rendered) == N_FILES


def test_a_newer_file_is_rendered_again(spark_day, spark_cache, tmp_path):
    archive = copy_day(spark_day, tmp_path / "archive")
    maps = tmp_path / "maps"
    first = run_job(archive, maps, spark_cache, master="serial", sizes=("low",))
    newer = Path(first.results[3].path)
    low = maps / names.day_folder(SAMPLE_DATE) / first.results[3].stem / "sst.low.png"
    later = low.stat().st_mtime + 60
    os.utime(newer, (later, later))

    again = run_job(archive, maps, spark_cache, master="serial", sizes=("low",))

    assert [r.name for r in again.rendered] == [newer.name]


def test_corrupt_file_is_reported_and_the_rest_complete(
    spark_master, spark_sessions, spark_day, spark_cache, tmp_path
):
    archive = copy_day(spark_day, tmp_path / "archive")
    bad = archive / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f004_prog.nc"
    truncate(bad)
    spark = spark_sessions.get(spark_master)

    report = run_job(archive, tmp_path / "maps", spark_cache, spark=spark, sizes=("low",))

    assert report.exit_status == ExitStatus.PARTIAL
    (failed,) = report.failed
    assert failed.name == bad.name
    assert str(bad) in failed.error and "TruncatedFileError" in failed.error
    assert len(report.rendered) == N_FILES - 1
    assert len(day_pngs(tmp_path / "maps")) == N_FILES - 1
    listing = json.loads(
        (tmp_path / "maps" / names.day_folder(SAMPLE_DATE) / "index.json").read_text()
    )
    assert [f["file"] for f in listing["failed"]] == [bad.name]


def test_all_files_failing_is_exit_status_1(spark_day, spark_cache, tmp_path):
    archive = copy_day(spark_day, tmp_path / "archive")
    for p in (archive / names.day_folder(SAMPLE_DATE)).glob("*.nc"):
        truncate(p)
    report = run_job(archive, tmp_path / "maps", spark_cache, master="serial")
    assert report.exit_status == ExitStatus.FAILED
    assert len(report.failed) == N_FILES


def test_a_day_without_files_is_an_error_naming_the_folder(tmp_path):
    from rtofs_lib.errors import RtofsError

    with pytest.raises(RtofsError, match=r"rtofs\.20260708.*rtofs (crawl|sample)"):
        run_job(tmp_path / "archive", tmp_path / "maps", tmp_path / "cache", master="serial")


@pytest.mark.cluster
def test_worker_killed_mid_job_still_leaves_every_map(
    spark_cluster, spark_sessions, spark_cache, tmp_path
):
    from rtofs_lib.testing import sample

    archive = tmp_path / "archive"
    sample.write_sample(archive, SAMPLE_DATE, steps="f000-f023", grid="small")
    spark = spark_sessions.get(spark_cluster.master_url)
    work.prepare_grid(
        next((archive / names.day_folder(SAMPLE_DATE)).glob("*.nc")), cache_dir=spark_cache
    )
    killed: list[int] = []

    def kill_first_worker(result, done, total):
        if not killed:
            killed.append(done)
            spark_cluster.kill_worker(0)

    try:
        report = run_job(
            archive, tmp_path / "maps", spark_cache, spark=spark, progress=kill_first_worker
        )
    finally:
        spark_cluster.start_worker(0)

    assert killed and killed[0] < 24, "the worker must die while files are still pending"
    assert report.retried >= 1, "a task running on the killed worker is run again"
    assert report.exit_status == 0 and len(report.rendered) == 24
    pngs = day_pngs(tmp_path / "maps")
    assert len(pngs) == 48
    low = raster_for(None, "low")
    assert all(a.ndim == 2 and a.shape[1] >= low.width for a in pngs.values())


# --- region statistics ---------------------------------------------------------------------------


def test_region_statistics_match_numpy(spark_sessions, spark_day, spark_cache, tmp_path):
    spark = spark_sessions.get("local[2]")
    run_job(spark_day, tmp_path, spark_cache, spark=spark, sizes=("low",))

    df = stats.load(spark, tmp_path, SAMPLE_DATE)
    assert df.count() == N_FILES * len(REGIONS)
    row = df.filter("region = 'gulf_stream' AND step = 'f006'").collect()[0]

    path = spark_day / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f006_prog.nc"
    data = netcdf.read_field(path, "sst")
    inside = REGIONS["gulf_stream"].mask(data.lat, data.lon) & np.isfinite(data.values)
    v = data.values[inside].astype(np.float64)
    w = np.cos(np.deg2rad(data.lat[inside].astype(np.float64)))
    assert row["count"] == inside.sum() > 0
    assert row["min"] == pytest.approx(v.min()) and row["max"] == pytest.approx(v.max())
    assert row["mean"] == pytest.approx(np.dot(v, w) / w.sum(), rel=1e-9)
    assert str(row["valid_time"]) == "2026-07-08 06:00:00"


def test_statistics_field_is_read_once_per_file(spark_day, spark_cache, tmp_path, monkeypatch):
    reads: list[str] = []
    read_field = netcdf.read_field

    def counting(path, variable, *args, **kw):
        reads.append(variable)
        return read_field(path, variable, *args, **kw)

    monkeypatch.setattr(netcdf, "read_field", counting)
    report = run_job(
        spark_day, tmp_path, spark_cache, master="serial", sizes=("low",), cube=tmp_path / "cube"
    )

    assert report.exit_status == 0 and len(report.rendered) == N_FILES
    # one read for the map and the statistics together, one for the cube's append (on the
    # driver, after the file is published)
    assert reads.count("sst") == 2 * N_FILES, "the map and the statistics share one read"
    assert all(len(r.stats) == len(REGIONS) for r in report.rendered)


def test_statistics_of_a_field_not_drawn_are_still_computed(spark_day, spark_cache, tmp_path):
    report = run_job(
        spark_day, tmp_path, spark_cache, master="serial", sizes=("low",), fields="sss"
    )
    path = spark_day / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f006_prog.nc"
    rows = next(r.stats for r in report.rendered if r.path == str(path))
    assert rows == stats.file_rows(path, "sst")


# --- the grid index, prepared on the driver ------------------------------------------------------


def test_driver_reads_no_grid_when_the_cache_is_current(spark_day, tmp_path, monkeypatch):
    path = next((spark_day / names.day_folder(SAMPLE_DATE)).glob("*.nc"))
    cache = tmp_path / "cache"

    def fresh_process() -> None:  # nothing in memory, only the cache folder
        gridmod.clear_memory()

    fresh_process()
    work.prepare_grid(path, cache_dir=cache)  # fills the cache
    fresh_process()
    grid_reads: list[Path] = []
    read_grid = netcdf.read_grid
    monkeypatch.setattr(netcdf, "read_grid", lambda p: grid_reads.append(p) or read_grid(p))
    before = dict(regrid.STATS)

    work.prepare_grid(path, cache_dir=cache)

    assert grid_reads == []
    assert dict(regrid.STATS) == before, "no index or tree loaded or built"


def test_driver_builds_the_missing_indices(spark_day, tmp_path, monkeypatch):
    path = next((spark_day / names.day_folder(SAMPLE_DATE)).glob("*.nc"))
    cache = tmp_path / "cache"
    gridmod.clear_memory()

    work.prepare_grid(path, cache_dir=cache, sizes=("low", "high"))

    indices = sorted(p.name for p in cache.glob("index-*.index"))
    assert len(indices) == 2
    assert all(raster_for(None, s).key in " ".join(indices) for s in ("low", "high"))


def test_region_statistics_of_a_range_of_days(spark_sessions, spark_cache, tmp_path):
    from rtofs_lib.testing import sample

    archive = tmp_path / "archive"
    for day in ("20260707", "20260708"):
        sample.write_sample(archive, day, steps="f000-f001", grid="small")
    report = pipeline.run(
        dates=["20260707", "20260708"],
        archive=archive,
        maps=tmp_path / "maps",
        cache_dir=spark_cache,
        master="serial",
        sizes=("low",),
    )
    assert report.exit_status == 0
    spark = spark_sessions.get("local[2]")

    both = stats.load(spark, tmp_path / "maps", ["20260707", "20260708"])
    one = stats.load(spark, tmp_path / "maps", "20260707")

    assert both.select("date").distinct().count() == 2
    assert one.count() == 2 * len(REGIONS)


def test_statistics_computed_on_spark_equal_the_saved_ones(
    spark_sessions, spark_day, spark_cache, tmp_path
):
    spark = spark_sessions.get("local[2]")
    run_job(spark_day, tmp_path, spark_cache, master="serial", sizes=("low",))
    files = sorted((spark_day / names.day_folder(SAMPLE_DATE)).glob("*.nc"))[:3]

    computed = stats.compute(spark, files).orderBy("stem", "region").collect()
    saved = (
        stats.load(spark, tmp_path, SAMPLE_DATE)
        .filter(stats_in([f.stem for f in files]))
        .orderBy("stem", "region")
        .collect()
    )
    assert len(computed) == len(saved) == 3 * len(REGIONS)
    for c, s in zip(computed, saved, strict=True):
        c, s = c.asDict(), s.asDict()
        assert c.pop("mean") == pytest.approx(s.pop("mean"), rel=1e-12)  # summation order
        assert c == s


def stats_in(stems):
    from pyspark.sql import functions as F

    return F.col("stem").isin(stems)


# --- dashboard -----------------------------------------------------------------------------------


def test_dashboard_lists_latest_day_first_with_linked_thumbnails(spark_cache, tmp_path):
    from rtofs_lib.testing import sample

    archive = tmp_path / "archive"
    for day in ("20260707", "20260708"):
        sample.write_sample(archive, day, steps="f000-f002", grid="small")
    pipeline.run(
        dates=["20260707", "20260708"],
        archive=archive,
        maps=tmp_path / "maps",
        cache_dir=spark_cache,
        master="serial",
    )
    page = (tmp_path / "maps" / "index.html").read_text()

    assert page.index('id="d20260708"') < page.index('id="d20260707"')
    thumb = (
        '<a href="rtofs.20260708/rtofs_glo_2ds_f001_prog/sst.high.png">'
        '<img src="rtofs.20260708/rtofs_glo_2ds_f001_prog/sst.low.png"'
    )
    assert thumb in page
    assert page.count("<svg") == 2  # region statistics per day
    assert 'href="#d20260708-f002"' in page and 'href="#d20260707"' in page
    for src in __import__("re").findall(r'src="([^"]+)"', page):
        assert (tmp_path / "maps" / src).is_file(), src


def test_day_index_json_lists_steps_maps_and_statistics(spark_day, spark_cache, tmp_path):
    run_job(spark_day, tmp_path, spark_cache, master="serial")
    doc = json.loads((tmp_path / names.day_folder(SAMPLE_DATE) / dashboard.DAY_INDEX).read_text())

    assert doc["date"] == SAMPLE_DATE and doc["fields"] == ["sst"]
    assert [s["step"] for s in doc["steps"]] == ["n024", *[f"f{h:03d}" for h in range(11)]]
    first = doc["steps"][0]
    assert first["valid_time"] == "2026-07-08T00:00:00"
    assert first["maps"]["sst"] == {
        "low": "rtofs_glo_2ds_n024_prog/sst.low.png",
        "high": "rtofs_glo_2ds_n024_prog/sst.high.png",
    }
    assert len(doc["region_stats"]) == N_FILES * len(REGIONS)


# --- command line --------------------------------------------------------------------------------


def rtofs(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtofs_lib", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_cli_run_prints_a_line_per_file_and_exits_3_when_partial(spark_day, spark_cache, tmp_path):
    archive = copy_day(spark_day, tmp_path / "archive")
    truncate(archive / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f002_prog.nc")
    args = ["run", "--date", SAMPLE_DATE, "--archive", str(archive), "--maps", str(tmp_path / "m")]
    proc = rtofs(*args, "--cache", str(spark_cache), "--master", "local[2]")

    assert proc.returncode == 3, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert len(lines) == N_FILES
    assert sorted(int(ln[1:].split("/")[0]) for ln in lines) == list(range(1, N_FILES + 1))
    assert any("FAILED" in ln and "rtofs_glo_2ds_f002_prog.nc" in ln for ln in lines)
    assert "1 failed" in proc.stdout


def test_cli_run_with_nothing_to_do_exits_0(spark_day, spark_cache, tmp_path):
    args = [
        "run",
        "--archive",
        str(spark_day),
        "--maps",
        str(tmp_path),
        "--cache",
        str(spark_cache),
    ]
    first = rtofs(*args, "--master", "serial")
    again = rtofs(*args, "--master", "serial")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert f"0 rendered, {N_FILES} up to date" in again.stdout


def test_demo_publishes_a_day_live_and_ends_by_itself(tmp_path):
    proc = rtofs(
        "demo", "--out", str(tmp_path), "--steps", "n024,f000-f002", "--date", SAMPLE_DATE,
        "--master", "local[2]", "--wave", "2", "--gap", "1", "--port", "0",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    index = tmp_path / "maps" / "index.html"
    assert index.is_file() and index.as_uri() in proc.stdout
    day = tmp_path / "maps" / names.day_folder(SAMPLE_DATE)
    assert len(list(day.glob("*/sst.low.png"))) == 4
    assert list((day / stats.STATS_NAME).glob("part-*.parquet"))
    listed = json.loads((day / "index.json").read_text())["steps"]
    assert all(s["latency_s"] is not None for s in listed)
    assert re.search(r"landed → published: median [\d.]+ s, p95 [\d.]+ s", proc.stdout)
    assert len(list((tmp_path / "archive" / "landed").glob("*.json"))) == 4
    assert f"rtofs dashboard serve --port 8092 --maps {tmp_path / 'maps'}" in proc.stdout


# --- animation -----------------------------------------------------------------------------------


def test_gif_has_one_frame_per_step(spark_day, spark_cache, tmp_path):
    from rtofs_lib.maps import animation as animate

    out = animate.animate(
        SAMPLE_DATE, tmp_path / "day.gif", archive=spark_day, maps=tmp_path, cache_dir=spark_cache
    )
    with Image.open(out) as gif:
        assert gif.n_frames == N_FILES
        assert gif.width <= animate.MAX_WIDTH


def test_region_gif_is_drawn_from_the_files(spark_day, spark_cache, tmp_path):
    from rtofs_lib.maps import animation as animate

    out = animate.animate(
        SAMPLE_DATE,
        tmp_path / "gulf.gif",
        region="gulf_stream",
        archive=spark_day,
        maps=tmp_path,
        cache_dir=spark_cache,
    )
    glob = raster_for(None, "low")
    with Image.open(out) as gif:
        assert gif.n_frames == N_FILES
        assert gif.size != (glob.width, glob.height)


def test_unknown_region_lists_the_names(spark_day, tmp_path):
    from rtofs_lib.errors import RtofsError
    from rtofs_lib.maps import animation as animate

    with pytest.raises(RtofsError, match=r"unknown region 'atlantis'.*gulf_stream"):
        animate.animate(SAMPLE_DATE, tmp_path / "a.gif", region="atlantis", archive=spark_day)


def test_mp4_has_one_frame_per_step(spark_day, spark_cache, tmp_path):
    import imageio_ffmpeg  # the animation extra (in dev): a bundled ffmpeg

    from rtofs_lib.maps import animation as animate

    assert animate.find_ffmpeg(), "no ffmpeg: pip install 'rtofs-lib[animation]'"
    out = tmp_path / "day.mp4"
    animate.animate(SAMPLE_DATE, out, archive=spark_day, cache_dir=spark_cache)
    assert out.read_bytes()[4:8] == b"ftyp"
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames == N_FILES


def test_mp4_without_ffmpeg_says_to_write_a_gif(spark_day, spark_cache, tmp_path, monkeypatch):
    from rtofs_lib.errors import RtofsError
    from rtofs_lib.maps import animation as animate

    monkeypatch.setenv("PATH", str(tmp_path / "no-ffmpeg-here"))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "missing" / "ffmpeg"))
    out = tmp_path / "day.mp4"
    with pytest.raises(RtofsError, match=r"MP4 needs ffmpeg.*write a \.gif instead"):
        animate.animate(SAMPLE_DATE, out, archive=spark_day, cache_dir=spark_cache)
    assert not out.exists()


def test_cli_animate_writes_a_gif(spark_day, spark_cache, tmp_path):
    out = tmp_path / "sst.gif"
    proc = rtofs(
        "animate", "--date", SAMPLE_DATE, "--archive", str(spark_day), "--maps", str(tmp_path),
        "--cache", str(spark_cache), "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    with Image.open(out) as gif:
        assert gif.n_frames == N_FILES
