"""The live pipeline: ``rtofs stream`` as a real process (Spark local mode) over files landing.

Files land as the crawler lands them (hidden copy, rename, landed record: ``conftest.land``)
or through the real crawler following the NOMADS-like server. A worker killed mid-batch
is tested on the standalone cluster in ``test_pipeline.py``
(``test_worker_killed_mid_job_still_leaves_every_map``): ``rtofs run`` is the stream's
run-once mode, the same query and batch handler.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLE_DATE, StreamProcess, land, run_cli
from PIL import Image

from rtofs_lib.fetch import names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def source(stream_sources: Path, step: str) -> Path:
    return stream_sources / names.compose_name("prog", step)


def rendered(output: str) -> list[str]:
    """Names of the files a stream's output says it rendered, in order."""
    return re.findall(r"\] rendered\s+(\S+\.nc)", output)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One stream running for the module's behaviours (each lands its own steps)."""
    s = StreamProcess(tmp_path_factory.mktemp("live")).start()
    try:
        yield s
    finally:
        s.stop()


# --- publishing ----------------------------------------------------------------------------------


def test_a_landed_file_is_published_with_its_maps_and_latency(live, stream_sources):
    land(live.archive, source(stream_sources, "f000"))
    live.wait_for(lambda: "f000" in live.listed(), what="f000 in index.json")

    [entry] = [s for s in live.index()["steps"] if s["step"] == "f000"]
    day = live.maps / names.day_folder(SAMPLE_DATE)
    assert {size for size in entry["maps"]["sst"]} == {"low", "high"}
    assert all((day / p).is_file() for p in entry["maps"]["sst"].values())
    assert entry["landed"] < entry["published"]
    assert entry["latency_s"] > 0


def test_the_dashboard_page_is_written_with_the_first_batch(live, stream_sources):
    land(live.archive, source(stream_sources, "f001"))
    live.wait_for(lambda: "f001" in live.listed(), what="f001 in index.json")
    live.wait_for(lambda: (live.maps / "index.html").exists(), timeout=30, what="index.html")
    assert "Cycle 2026-07-08" in (live.maps / "index.html").read_text()


def test_a_truncated_file_is_reported_and_the_next_file_is_published(
    live, stream_sources, tmp_path
):
    bad = tmp_path / names.compose_name("prog", "f002")
    data = source(stream_sources, "f002").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    land(live.archive, bad)
    land(live.archive, source(stream_sources, "f003"))

    live.wait_for(lambda: bad.name in live.failed(), what="the truncated f002 reported")
    live.wait_for(lambda: "f003" in live.listed(), what="f003 after the truncated f002")
    assert "f002" not in live.listed()
    assert "HDF5" in live.failed()[bad.name]
    assert f"FAILED   {bad.name}" in live.output()


def test_a_file_without_the_field_is_reported_by_name(live, stream_sources, tmp_path):
    import xarray as xr

    wrong = tmp_path / names.compose_name("prog", "f004")
    with xr.open_dataset(source(stream_sources, "f004")) as ds:
        ds.drop_vars("sst").to_netcdf(wrong)
    land(live.archive, wrong)
    live.wait_for(lambda: wrong.name in live.failed(), what="the file without sst reported")
    assert "sst" in live.failed()[wrong.name]


def test_a_replaced_file_is_rendered_again(live, stream_sources, tmp_path):
    import xarray as xr

    first = land(live.archive, source(stream_sources, "f005"))
    live.wait_for(lambda: "f005" in live.listed(), what="f005 published")
    published = next(s["published"] for s in live.index()["steps"] if s["step"] == "f005")

    warmer = tmp_path / first.name
    with xr.open_dataset(source(stream_sources, "f005")) as ds:
        ds.assign(sst=ds.sst + 1.0).to_netcdf(warmer)
    land(live.archive, warmer)  # same name, new content

    def republished() -> bool:
        entry = next(s for s in live.index()["steps"] if s["step"] == "f005")
        return entry["published"] != published

    live.wait_for(republished, what="the replaced f005 published again")
    assert rendered(live.output()).count(first.name) == 2


# --- restarts ------------------------------------------------------------------------------------


def test_driver_killed_mid_batch_loses_nothing_and_repeats_no_finished_file(
    streams, stream_sources, tmp_path
):
    s = streams(tmp_path, master="local[1]")
    steps = ["f000", "f001", "f002", "f003", "f004", "f005"]
    for step in steps:
        land(s.archive, source(stream_sources, step))
    s.start()
    s.wait_for(lambda: len(rendered(s.output())) >= 2, what="two files of the first batch")
    s.stop(signal.SIGKILL)
    first = rendered(s.output())
    assert len(first) < len(steps), "the driver must die mid-batch"

    s.start()
    s.wait_for(lambda: s.listed() >= set(steps), what="every file after the restart")
    land(s.archive, source(stream_sources, "f006"))
    s.wait_for(lambda: "f006" in s.listed(), what="a file landing after the restart")
    s.stop()

    second = rendered(s.output())
    # finished before the kill, its result not yet reported: skipped (maps newer than the file)
    kept = re.findall(r"\] skipped\s+(\S+\.nc)", s.output())
    every = {names.compose_name("prog", x) for x in [*steps, "f006"]}
    assert not set(first) & set(second), "a file finished before the kill was rendered again"
    assert len(second) == len(set(second)), "a file was rendered twice after the restart"
    assert set(first) | set(second) | set(kept) == every
    assert set(kept) <= {names.compose_name("prog", x) for x in steps}, "only the killed batch"


def test_once_processes_the_backlog_then_a_rerun_finds_nothing(streams, stream_sources, tmp_path):
    s = streams(tmp_path)
    for step in ["n024", "f000"]:
        land(s.archive, source(stream_sources, step))

    first = subprocess.run(s.command("--once"), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert s.listed() == {"n024", "f000"}
    again = subprocess.run(s.command("--once"), capture_output=True, text=True, timeout=300)

    assert again.returncode == 0, again.stdout + again.stderr
    assert rendered(first.stdout) and not rendered(again.stdout)
    assert "batch " not in again.stdout


def test_stream_started_on_a_day_already_rendered_by_run_skips_the_done_files(
    streams, stream_sources, tmp_path
):
    s = streams(tmp_path)
    for step in ["f000", "f001"]:
        land(s.archive, source(stream_sources, step))
    ran = run_cli(
        "run", "--archive", str(s.archive), "--maps", str(s.maps), "--cache", str(s.cache),
        "--master", "serial", "--date", SAMPLE_DATE,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr

    s.start()
    land(s.archive, source(stream_sources, "f002"))
    s.wait_for(lambda: "f002" in s.listed(), what="the new file")
    s.stop()
    assert rendered(s.output()) == [names.compose_name("prog", "f002")]
    assert s.listed() == {"f000", "f001", "f002"}


# --- with the crawler ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False], ids=["stream-first", "crawl-first"])
def test_files_published_on_the_server_reach_the_dashboard(
    streams, stream_first, nomads_unpublished, stream_sources, tmp_path
):
    from rtofs_lib.testing.nomads import publish

    s = streams(tmp_path)
    files = [source(stream_sources, x) for x in ["f000", "f001", "f002", "f003"]]
    publisher = publish(files, nomads_unpublished.root, SAMPLE_DATE, waves=[2, 2], gap=1.0)
    crawl = [
        "crawl", "--follow", "--interval", "0.2", "--date", SAMPLE_DATE, "--steps", "f000-f003",
        "--archive", str(s.archive), "--base-url", nomads_unpublished.url, "--deadline", "60",
        "--progress", "log",
    ]  # fmt: skip
    if stream_first:
        s.start()
    crawled = run_cli(*crawl)
    publisher.wait(30)
    assert crawled.returncode == 0, crawled.stdout + crawled.stderr
    if not stream_first:
        s.start()
    s.wait_for(lambda: s.listed() == {"f000", "f001", "f002", "f003"}, what="the day")
    s.stop()
    assert sorted(rendered(s.output())) == sorted(f.name for f in files)


# --- a full maps disk ----------------------------------------------------------------------------


@pytest.fixture
def small_maps_disk(tmp_path):
    """A 1.2 MB tmpfs as the maps folder: room for the maps of one small file (~0.75 MB)."""
    maps = tmp_path / "maps"
    maps.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(maps)])
    if done.returncode != 0:
        pytest.fail("mounting a tmpfs needs root (the suite runs as root in CI)")
    try:
        yield maps
    finally:
        subprocess.run(["umount", "-l", str(maps)])


def test_full_maps_disk_is_a_clear_error_then_the_stream_catches_up(
    small_maps_disk, streams, stream_sources, tmp_path
):
    s = streams(tmp_path)
    steps = ["f000", "f001", "f002", "f003"]
    for step in steps:
        land(s.archive, source(stream_sources, step))
    s.start()
    s.wait_for(lambda: "no space left for the maps" in s.output(), what="the full-disk error")

    def hidden() -> set[Path]:
        return {p for p in small_maps_disk.rglob(".*") if p.is_file()}

    before, tries = hidden(), s.output().count("for space")
    s.wait_for(lambda: s.output().count("for space") > tries, what="the next try for space")
    assert not before & hidden(), "a temporary file outlived its attempt"
    for png in small_maps_disk.rglob("*.png"):
        with Image.open(png) as im:
            im.load()  # every map in place is whole
    assert s.listed() < set(steps)
    json.loads((small_maps_disk / names.day_folder(SAMPLE_DATE) / "index.json").read_text())

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_maps_disk)], check=True)
    s.wait_for(lambda: s.listed() == set(steps), what="catching up once space is back")
    s.stop()
    assert sorted(set(rendered(s.output()))) == sorted(names.compose_name("prog", x) for x in steps)
    assert shutil.disk_usage(small_maps_disk).used > 0


# --- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--trigger", "0"], "--trigger: bad interval '0'"),
        (["--master", "serial"], "rtofs stream runs on Spark"),
    ],
)
def test_usage_errors_exit_2_naming_the_flag(args, says, tmp_path):
    done = run_cli("stream", "--archive", str(tmp_path), *args)
    assert done.returncode == 2
    assert says in done.stderr
