"""The crawler as NOAA publishes: following the listing, landed records, replaced files.

A real NOMADS-like server on loopback; the sample day's files are published into its folder
while the crawler runs (:func:`rtofs_lib.testing.nomads.publish`), as NOAA's appear on NOMADS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import CRAWL_STEPS, SAMPLE_DATE, run_cli, sample_day_files

from rtofs_lib.fetch import catalog, landed, names
from rtofs_lib.fetch.crawler import Crawler, crawl
from rtofs_lib.testing.nomads import publish, publish_file

pytestmark = pytest.mark.network

DAY = names.day_folder(SAMPLE_DATE)
SERVED = [names.compose_name("prog", s) for s in names.expand_steps(CRAWL_STEPS)]
N024 = names.compose_name("prog", "n024")
F000 = names.compose_name("prog", "f000")


def records_by_name(archive: Path) -> dict[str, list[landed.Landed]]:
    out: dict[str, list[landed.Landed]] = {}
    for r in landed.read_records(archive):
        out.setdefault(r.name, []).append(r)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_record_per_file(archive: Path, names_: list[str]) -> None:
    """Each file has exactly one record, whose sha256 and size are the file's."""
    records = records_by_name(archive)
    assert sorted(records) == sorted(names_)
    for name in names_:
        [rec] = records[name]
        path = rec.file(archive)
        assert path == catalog.day_dir(archive, SAMPLE_DATE) / name
        assert (rec.sha256, rec.size) == (sha256(path), path.stat().st_size)


@pytest.fixture(scope="session")
def replacement_n024(tmp_path_factory) -> Path:
    """New content for the sample day's n024 file (another seed), as NOAA might republish it."""
    from rtofs_lib.testing import sample

    folder = tmp_path_factory.mktemp("replacement") / DAY
    return sample.write_file(folder / N024, "prog", SAMPLE_DATE, "n024", grid="small", seed=1)


def replace_on_server(server, src: Path, *, later: bool = True) -> None:
    """Publish ``src`` over the served n024: two minutes later by its listed time, or at the
    same listed time (only its size tells)."""
    old = (server.root / DAY / N024).stat().st_mtime
    publish_file(src, server.root, SAMPLE_DATE, mtime=old + 120 if later else old)


# --- following the listing -------------------------------------------------------------------


def test_follow_fetches_files_published_in_waves_and_completes(
    nomads_unpublished, nomads_source, tmp_path, fast_crawl
):
    archive = tmp_path / "a"
    publisher = publish(
        sample_day_files(nomads_source), nomads_unpublished.root, SAMPLE_DATE,
        waves=[2, 2, 2], gap=1.0,
    )  # fmt: skip
    report = crawl(
        archive, SAMPLE_DATE, base_url=nomads_unpublished.url, steps=CRAWL_STEPS,
        options=fast_crawl, follow=True,
    )  # fmt: skip
    published = publisher.wait(timeout=30)
    assert (report.status, report.exit_status) == ("complete", 0)
    assert sorted(report.downloaded) == sorted(SERVED)
    for name in SERVED:
        assert (archive / DAY / name).read_bytes() == (nomads_source / DAY / name).read_bytes()
    # the first wave landed while the last one was not published yet: fetched as listed
    records = records_by_name(archive)
    first_landed = max(records[n][0].landed_time for n in SERVED[:2])
    assert first_landed < published[SERVED[-1]]


def test_follow_lists_again_while_a_download_runs(
    nomads_unpublished, nomads_source, tmp_path, fast_crawl
):
    files = sample_day_files(nomads_source)[:2]
    nomads_unpublished.stall(files[0].name, after=50_000, seconds=1.5)
    fast_crawl.read_timeout = 3.0
    publisher = publish(files, nomads_unpublished.root, SAMPLE_DATE, gap=0.3)
    report = crawl(
        tmp_path / "a", SAMPLE_DATE, base_url=nomads_unpublished.url,
        steps="n023,n024", options=fast_crawl, follow=True,
    )  # fmt: skip
    publisher.wait(timeout=30)
    assert report.status == "complete"
    log = nomads_unpublished.log
    first_get = next(r for r in log if r.name == files[0].name and r.method == "GET")
    second_get = next(r for r in log if r.name == files[1].name and r.method == "GET")
    # the second file was fetched while the first one's body was still stalled
    assert second_get.time < first_get.time + 1.5


def test_follow_stops_at_the_deadline_naming_the_missing_files(nomads, tmp_path, fast_crawl):
    fast_crawl.deadline = 1.0
    never = names.compose_name("prog", "f075")
    report = crawl(
        tmp_path / "a", SAMPLE_DATE, base_url=nomads.url, steps="n024,f075",
        options=fast_crawl, follow=True,
    )  # fmt: skip
    assert (report.status, report.exit_status) == ("partial", 3)
    assert (list(report.downloaded), report.not_listed) == ([N024], [never])
    assert "prog f075" in report.summary()
    assert "followed the listing until the deadline" in report.summary()
    listings = sum(r.path == DAY + "/" for r in nomads.log)
    assert listings >= 3  # it kept looking


def test_follow_waits_for_a_day_folder_that_appears_later(
    nomads_unpublished, nomads_source, tmp_path, fast_crawl
):
    publisher = publish(
        sample_day_files(nomads_source)[:2], nomads_unpublished.root, SAMPLE_DATE,
        waves=[2], delay=1.0,
    )  # fmt: skip
    report = crawl(
        tmp_path / "a", SAMPLE_DATE, base_url=nomads_unpublished.url, steps="n023,n024",
        options=fast_crawl, follow=True,
    )  # fmt: skip
    publisher.wait(timeout=30)
    assert report.status == "complete"
    day_requests = [r.status for r in nomads_unpublished.log if r.path == DAY + "/"]
    assert day_requests[0] == 404 and day_requests[-1] == 200


def test_follow_of_a_day_that_never_appears_fails_at_the_deadline(
    nomads_unpublished, tmp_path, fast_crawl
):
    fast_crawl.deadline = 0.8
    report = crawl(
        tmp_path / "a", SAMPLE_DATE, base_url=nomads_unpublished.url, steps="n024",
        options=fast_crawl, follow=True,
    )  # fmt: skip
    assert (report.status, report.exit_status) == ("failed", 1)
    assert "did not appear on the server before the deadline" in report.summary()


def test_follow_does_not_wait_for_a_day_the_server_no_longer_has(nomads, tmp_path, fast_crawl):
    start = time.monotonic()
    report = crawl(
        tmp_path / "a", "20260701", base_url=nomads.url, steps="n024",
        options=fast_crawl, follow=True,
    )  # fmt: skip
    assert report.status == "failed"
    assert "no longer on the server" in report.summary()
    assert time.monotonic() - start < fast_crawl.deadline / 2


# --- landed records ----------------------------------------------------------------------------


def test_each_landed_file_has_one_record_with_its_sha256(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)  # records keep milliseconds
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    after = dt.datetime.now(dt.UTC)
    assert_one_record_per_file(archive, SERVED)
    manifest = catalog.read_manifest(archive, SAMPLE_DATE)["files"]
    for rec in landed.read_records(archive):
        assert rec.sha256 == manifest[rec.name]["sha256"]
        assert before <= rec.landed_time <= after


def test_a_rerun_writes_no_second_record(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    first = sorted(p.name for p in landed.landed_dir(archive).iterdir())
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert sorted(p.name for p in landed.landed_dir(archive).iterdir()) == first


def test_a_crawl_stopped_before_the_record_gets_it_from_the_next_crawl(
    nomads, tmp_path, fast_crawl
):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    # the state a crawler killed right after the rename and the manifest write leaves
    [lost] = records_by_name(archive)[N024]
    (landed.landed_dir(archive) / landed.record_name(SAMPLE_DATE, Path(N024).stem, lost.token)
     ).unlink()  # fmt: skip
    fetched = len(nomads.fetched())
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert nomads.fetched()[fetched:] == []
    assert_one_record_per_file(archive, SERVED)
    [again] = records_by_name(archive)[N024]
    assert again.mtime_ns == (archive / DAY / N024).stat().st_mtime_ns


def test_a_crawl_stopped_before_the_manifest_write_gets_its_record(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    # killed right after the rename: neither the manifest entry nor the record
    manifest = catalog.read_manifest(archive, SAMPLE_DATE)
    [lost] = records_by_name(archive)[N024]
    del manifest["files"][N024]
    catalog.write_manifest(archive, SAMPLE_DATE, manifest)
    (landed.landed_dir(archive) / landed.record_name(SAMPLE_DATE, Path(N024).stem, lost.token)
     ).unlink()  # fmt: skip
    fetched = len(nomads.fetched())
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert N024 in report.kept
    assert nomads.fetched()[fetched:] == []
    assert_one_record_per_file(archive, SERVED)


def day_with_a_record(archive: Path, date: str) -> None:
    path = archive / names.day_folder(date) / N024
    path.parent.mkdir(parents=True)
    path.write_bytes(b"a file")
    landed.write_record(archive, path, sha256=date * 8)


def test_prune_drops_the_records_of_pruned_days(tmp_path):
    for date in ("20260701", "20260707", "20260708"):
        day_with_a_record(tmp_path, date)
    catalog.prune(tmp_path, 2, today=dt.date(2026, 7, 8))
    assert sorted(r.date for r in landed.read_records(tmp_path)) == ["20260707", "20260708"]


def test_cli_prune_drops_the_records_of_pruned_days(tmp_path):
    today = f"{dt.datetime.now(dt.UTC):%Y%m%d}"
    for date in ("20000101", today):
        day_with_a_record(tmp_path, date)
    proc = run_cli("prune", "--archive", str(tmp_path), "--keep-days", "1")
    assert proc.returncode == 0, proc.stderr
    assert [r.date for r in landed.read_records(tmp_path)] == [today]


# --- replaced files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("later", "listing"), [(True, "index"), (False, "ls-l")], ids=["later-time", "other-size-ls-l"]
)
def test_a_replaced_file_is_fetched_again_with_a_second_record(
    nomads, tmp_path, fast_crawl, replacement_n024, later, listing
):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n023,n024", options=fast_crawl)
    old_sha = sha256(archive / DAY / N024)
    assert replacement_n024.stat().st_size != (archive / DAY / N024).stat().st_size
    replace_on_server(nomads, replacement_n024, later=later)
    if listing == "ls-l":
        nomads.fail(DAY + "/", 500, times=fast_crawl.retries)
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n023,n024", options=fast_crawl)
    assert (report.status, list(report.downloaded), report.source) == ("complete", [N024], listing)
    assert (archive / DAY / N024).read_bytes() == replacement_n024.read_bytes()
    new_sha = sha256(archive / DAY / N024)
    assert catalog.read_manifest(archive, SAMPLE_DATE)["files"][N024]["sha256"] == new_sha
    assert [r.sha256 for r in records_by_name(archive)[N024]] == [old_sha, new_sha]
    rerun = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n023,n024", options=fast_crawl)
    assert rerun.downloaded == {}


def test_an_old_manifest_without_listed_times_is_read_and_kept(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    manifest = catalog.read_manifest(archive, SAMPLE_DATE)
    for entry in manifest["files"].values():
        del entry["listed"]
    catalog.write_manifest(archive, SAMPLE_DATE, manifest)
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    assert (report.status, report.kept, report.downloaded) == ("complete", [N024], {})


def test_follow_fetches_a_file_replaced_while_it_runs(
    nomads_unpublished, nomads_source, tmp_path, fast_crawl, replacement_n024
):
    archive = tmp_path / "a"
    server = nomads_unpublished
    n024, f000 = nomads_source / DAY / N024, nomads_source / DAY / F000
    publish_file(n024, server.root, SAMPLE_DATE)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            Crawler(archive, server.url, fast_crawl).crawl,
            SAMPLE_DATE, "prog", "n024,f000", follow=True,
        )  # fmt: skip
        until = time.monotonic() + 30
        while N024 not in records_by_name(archive) and time.monotonic() < until:
            time.sleep(0.05)
        replace_on_server(server, replacement_n024)
        publish_file(f000, server.root, SAMPLE_DATE)
        report = running.result(timeout=60)
    assert report.status == "complete"
    assert (archive / DAY / N024).read_bytes() == replacement_n024.read_bytes()
    shas = [r.sha256 for r in records_by_name(archive)[N024]]
    assert shas == [sha256(n024), sha256(replacement_n024)]
    assert server.count(N024) == 2


# --- command line ----------------------------------------------------------------------------


def test_cli_follow_latest_waits_for_todays_cycle(nomads_unpublished, tmp_path):
    from rtofs_lib.testing import sample

    today = f"{dt.datetime.now(dt.UTC):%Y%m%d}"
    [src] = sample.write_sample(tmp_path / "src", today, steps="n024", grid="small")
    publisher = publish([src], nomads_unpublished.root, today, delay=1.5)
    proc = run_cli(
        "crawl", "--follow", "--interval", "0.2", "--deadline", "90", "--date", "latest",
        "--archive", str(tmp_path / "a"), "--base-url", nomads_unpublished.url,
        "--steps", "n024", "--progress", "log",
    )  # fmt: skip
    publisher.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert f"rtofs crawl {today}: complete" in proc.stdout
    assert "not on the server yet" in proc.stderr


@pytest.mark.parametrize(
    ("args", "config", "named"),
    [
        (["--follow", "--interval", "soon"], "", "--interval: bad duration 'soon'"),
        (["--follow", "--interval", "0"], "", "--interval: must be more than 0"),
        (["--interval", "30s"], "", "--interval: only applies with --follow"),
        (["--follow"], 'crawl_follow_interval = "often"\n', "setting crawl_follow_interval"),
    ],
    ids=["not-a-duration", "zero", "without-follow", "bad-setting"],
)
def test_cli_names_a_bad_interval(tmp_path, args, config, named):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text(config)
    proc = run_cli("crawl", "--archive", str(tmp_path / "a"), *args, config=cfg)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr


def test_cli_follow_interval_comes_from_the_configuration(nomads, tmp_path):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text('crawl_follow_interval = "0.3s"\ncrawl_deadline = "2s"\n')
    proc = run_cli(
        "crawl", "--follow", "--archive", str(tmp_path / "a"), "--base-url", nomads.url,
        "--date", SAMPLE_DATE, "--steps", "n024,f075", "--progress", "log", config=cfg,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    listings = sum(r.path == DAY + "/" for r in nomads.log)
    assert 3 <= listings <= 2 / 0.3 + 2
    assert (tmp_path / "a" / DAY / N024).is_file()
