"""The crawler against a real HTTP server on loopback, with real faults on the socket.

After every fault scenario: only verified files carry a real name in the archive, the
manifest matches them byte for byte, a rerun completes what the server has, and the
server's request log shows no verified file fetched twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CRAWL_OLD_DATE, CRAWL_STEPS, REPO, SAMPLE_DATE, run_cli

from rtofs_lib.errors import NotNetCDFError, TruncatedFileError
from rtofs_lib.fetch import catalog, names
from rtofs_lib.fetch.crawler import Crawler, CrawlOptions, crawl
from rtofs_lib.fetch.errors import CrawlLockedError
from rtofs_lib.fetch.listing import parse_index, parse_ls_l, parse_size
from rtofs_lib.fetch.lock import archive_lock
from rtofs_lib.fetch.verify import verify_file
from rtofs_lib.testing.nomads import index_page, strfsize

pytestmark = pytest.mark.network

LISTING = Path(__file__).parent / "data" / "nomads_listing_rtofs.20260708.html"
DAY = names.day_folder(SAMPLE_DATE)
SERVED = [names.compose_name("prog", s) for s in names.expand_steps(CRAWL_STEPS)]


def served_path(server, name: str, day: str = DAY) -> Path:
    return server.root / day / name


def assert_archive_consistent(archive: Path, date: str = SAMPLE_DATE, *, parts_ok: bool = False):
    """Visible files == manifest entries (size and sha256); no partial file unless allowed."""
    folder = catalog.day_dir(archive, date)
    manifest = catalog.read_manifest(archive, date)["files"]
    visible = (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if folder.is_dir()
        else []
    )
    assert visible == sorted([*manifest, "manifest.json"]) or (not manifest and visible == [])
    for name, entry in manifest.items():
        data = (folder / name).read_bytes()
        assert len(data) == entry["size"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["valid_time"] == names.parse_name(name, date=date).valid_time.isoformat()
    if not parts_ok and folder.is_dir():
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def assert_same_as_server(archive: Path, server, names_: list[str]) -> None:
    for name in names_:
        assert (catalog.day_dir(archive, SAMPLE_DATE) / name).read_bytes() == served_path(
            server, name
        ).read_bytes()


def body_bytes(server, name: str) -> int:
    return sum(
        r.sent
        for r in server.log
        if r.method == "GET" and r.name == name and r.status in (200, 206)
    )


def rerun_fetches_nothing(server, archive: Path, options: CrawlOptions, steps: str = CRAWL_STEPS):
    before = len(server.fetched())
    report = crawl(archive, SAMPLE_DATE, base_url=server.url, steps=steps, options=options)
    assert report.status == "complete"
    assert server.fetched()[before:] == []
    return report


# --- listings --------------------------------------------------------------------------------


def test_real_listing_parses_all_1181_entries_once():
    entries = parse_index(LISTING.read_text())
    assert len(entries) == 1181
    assert len({e.name for e in entries}) == 1181
    assert "Parent Directory" not in {e.name for e in entries}


def test_real_listing_holds_the_138_prog_steps():
    entries = parse_index(LISTING.read_text())
    prog = [names.parse_name(e.name) for e in entries if e.name.endswith("_prog.nc")]
    assert sorted(n.step for n in prog) == sorted(names.STEPS_2DS)
    assert len(prog) == 138


def test_real_listing_sizes_and_dates_are_read():
    entries = {e.name: e for e in parse_index(LISTING.read_text())}
    e = entries["rtofs_glo_2ds_f000_prog.nc"]
    assert (e.size_text, e.size) == ("149M", 149 * 2**20)
    assert e.modified == dt.datetime(2026, 7, 8, 9, 11)
    assert entries["ls-l"].size == 60 * 1024


def test_server_index_page_reproduces_the_real_listing_layout():
    real = LISTING.read_text()
    entries = parse_index(real)
    rows = [
        (e.name, e.modified.replace(tzinfo=dt.UTC).timestamp(), parse_size(e.size_text))
        for e in entries
    ]
    ours = index_page(
        "/pub/data/nccf/com/rtofs/prod/rtofs.20260708", "/pub/data/nccf/com/rtofs/prod/", rows
    )
    pre = re.compile(r"<h1>.*</html>\n?", re.S)
    assert pre.search(ours).group(0) == pre.search(real).group(0)


@pytest.mark.parametrize(
    ("size", "text"), [(0, "  0 "), (972, "972 "), (61440, " 60K"), (156237824, "149M")]
)
def test_strfsize_prints_like_apache(size, text):
    assert strfsize(size) == text


def test_ls_l_fallback_lists_exact_sizes(nomads):
    import requests

    text = requests.get(nomads.url + DAY + "/ls-l", timeout=5).text
    got = {e.name: e.size for e in parse_ls_l(text)}
    assert got == {n: served_path(nomads, n).stat().st_size for n in SERVED}


# --- crawl basics ----------------------------------------------------------------------------


def test_crawl_fetches_the_selection_into_the_archive(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "archive"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert (report.status, report.exit_status) == ("complete", 0)
    assert sorted(report.downloaded) == sorted(SERVED)
    assert_archive_consistent(archive)
    assert_same_as_server(archive, nomads, SERVED)


def test_rerun_downloads_nothing_already_verified(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "archive"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    report = rerun_fetches_nothing(nomads, archive, fast_crawl)
    assert sorted(report.kept) == sorted(SERVED)


def test_requests_carry_a_descriptive_user_agent(nomads, tmp_path, fast_crawl):
    crawl(tmp_path / "a", SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    agents = {r.user_agent for r in nomads.log}
    assert len(agents) == 1
    assert agents.pop().startswith("rtofs-lib/")


def test_latest_is_the_newest_day_on_the_server(nomads, tmp_path, fast_crawl):
    report = crawl(tmp_path / "a", "latest", base_url=nomads.url, steps="n024", options=fast_crawl)
    assert report.date == SAMPLE_DATE


def test_partial_day_reports_what_is_not_published_yet(nomads, tmp_path, fast_crawl):
    report = crawl(
        tmp_path / "a", SAMPLE_DATE, base_url=nomads.url, steps="n024,f075-f192", options=fast_crawl
    )
    assert (report.status, report.exit_status) == ("partial", 3)
    assert len(report.not_listed) == 40
    assert "40 files of forecast days 4-8" in report.summary()
    assert "prog f075-f192" in report.summary()


def test_a_day_the_server_no_longer_has_fails_clearly(nomads, tmp_path, fast_crawl):
    report = crawl(
        tmp_path / "a", "20260701", base_url=nomads.url, steps="n024", options=fast_crawl
    )
    assert (report.status, report.exit_status) == ("failed", 1)
    assert "no longer on the server" in report.summary()
    assert "rtofs.20260707" in report.summary()


def test_index_failure_falls_back_to_ls_l(nomads, tmp_path, fast_crawl):
    nomads.fail(DAY + "/", 500, times=fast_crawl.retries)
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert (report.status, report.source) == ("complete", "ls-l")
    assert_archive_consistent(archive)


def test_present_file_missing_from_manifest_is_adopted_not_refetched(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    name = SERVED[0]
    (archive / DAY).mkdir(parents=True)
    shutil.copy(served_path(nomads, name), archive / DAY / name)
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    assert name in report.kept
    assert name not in nomads.fetched()
    assert_archive_consistent(archive)


def test_file_changed_behind_the_manifest_is_fetched_again(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    path = archive / DAY / "rtofs_glo_2ds_n024_prog.nc"
    path.write_bytes(path.read_bytes()[:1000])
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    assert list(report.downloaded) == ["rtofs_glo_2ds_n024_prog.nc"]
    assert_archive_consistent(archive)


# --- faults ----------------------------------------------------------------------------------


def test_connection_cut_mid_body_resumes_with_range(nomads, tmp_path, fast_crawl):
    name = SERVED[2]
    nomads.cut(name, after=100_000)
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    ranges = [r.range for r in nomads.log if r.name == name and r.method == "GET"]
    assert ranges == [None, "bytes=100000-"]
    assert body_bytes(nomads, name) == served_path(nomads, name).stat().st_size
    assert_archive_consistent(archive)
    assert_same_as_server(archive, nomads, SERVED)
    rerun_fetches_nothing(nomads, archive, fast_crawl)


def test_503_burst_is_retried_with_backoff(nomads, tmp_path, fast_crawl):
    nomads.fail("*.nc", 503, times=4)
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    assert nomads.count(status=503) == 4
    assert_archive_consistent(archive)
    rerun_fetches_nothing(nomads, archive, fast_crawl)


def test_403_with_retry_after_pauses_every_request(nomads, tmp_path, fast_crawl):
    nomads.fail(SERVED[0], 403, headers={"Retry-After": "1"})
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    blocked = next(r for r in nomads.log if r.status == 403)
    later = [r for r in nomads.log if r.time > blocked.time]
    in_flight = [r for r in later if r.time - blocked.time < 0.9]
    assert len(in_flight) <= fast_crawl.parallel - 1  # at most the download already started
    assert_archive_consistent(archive)
    rerun_fetches_nothing(nomads, archive, fast_crawl)


def test_too_many_403s_fail_the_file_not_the_run(nomads, tmp_path, fast_crawl):
    nomads.fail(SERVED[0], 403, times=100, headers={"Retry-After": "0"})
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert (report.status, list(report.failed)) == ("partial", [SERVED[0]])
    assert nomads.count(SERVED[0], status=403) == fast_crawl.retries
    assert_archive_consistent(archive)


@pytest.mark.parametrize("delta", [-1000, 50], ids=["declared-short", "declared-long"])
def test_wrong_content_length_never_lands_in_the_archive(nomads, tmp_path, fast_crawl, delta):
    name = SERVED[1]
    nomads.wrong_length(name, delta)
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    assert nomads.count(name) >= 2
    assert_archive_consistent(archive)
    assert_same_as_server(archive, nomads, SERVED)
    rerun_fetches_nothing(nomads, archive, fast_crawl)


def test_file_growing_between_listing_and_download_is_retried_later(nomads, tmp_path, fast_crawl):
    name = SERVED[3]
    full = served_path(nomads, name).read_bytes()
    nomads.grow(DAY, name, (0.5, 0.8))
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    assert nomads.count(name) == 3
    assert sum(r.path == DAY + "/" for r in nomads.log) == 3  # listed again before each retry
    assert (archive / DAY / name).read_bytes() == full
    assert_archive_consistent(archive)
    rerun_fetches_nothing(nomads, archive, fast_crawl)


def test_file_below_the_size_floor_is_left_for_later(nomads, tmp_path, fast_crawl):
    name = SERVED[0]
    size = served_path(nomads, name).stat().st_size
    fast_crawl.size_floors = {"prog": size + 2 * 2**20}
    fast_crawl.not_ready_retries = 1
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    assert report.status == "partial"
    assert "below the" in report.not_ready["rtofs_glo_2ds_n024_prog.nc"]
    assert nomads.fetched() == []
    assert_archive_consistent(archive)


def test_stalled_server_times_out_and_resumes(nomads, tmp_path, fast_crawl):
    name = SERVED[0]
    nomads.stall(name, after=50_000, seconds=5)
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    assert [r.range for r in nomads.log if r.name == name] == [None, "bytes=50000-"]
    assert_archive_consistent(archive)
    rerun_fetches_nothing(nomads, archive, fast_crawl)


def test_deadline_ends_the_run_and_the_next_run_resumes(nomads, tmp_path, fast_crawl):
    name = SERVED[0]
    nomads.stall(name, after=50_000, seconds=5)
    fast_crawl.read_timeout = 3.0
    fast_crawl.deadline = 0.5
    fast_crawl.parallel = 1
    archive = tmp_path / "a"
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status in ("partial", "failed")
    assert len(report.unfinished) == len(SERVED) - report.present
    assert_archive_consistent(archive, parts_ok=True)
    fast_crawl.deadline = 60
    report = crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    assert report.status == "complete"
    assert [r.range for r in nomads.log if r.name == name][-1] == "bytes=50000-"
    assert_archive_consistent(archive)


@pytest.mark.parametrize("files_fit", [2.5, 1.5], ids=["free-space-check", "enospc-while-writing"])
def test_full_disk_stops_with_a_clear_error_and_leaves_no_partial_file(
    nomads, tmp_path, fast_crawl, files_fit
):
    """A small tmpfs as the archive: 2.5 files trip the check before the third download;
    1.5 files pass the check for two parallel downloads, which then hit ENOSPC."""
    one = served_path(nomads, SERVED[0]).stat().st_size
    archive = tmp_path / "tmpfs"
    archive.mkdir()
    size_kb = int(one * files_fit) // 1024
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(archive)],
            capture_output=True,
        ).returncode
        == 0
    )
    if (
        not mounted
    ):  # no mount permission: the free-space check alone, with a reserve that cannot fit
        fast_crawl.reserve_bytes = shutil.disk_usage(archive).free
    try:
        report = crawl(
            archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl
        )
        assert (report.status, report.exit_status) == ("failed", 1)
        assert "free space or run `rtofs prune --keep-days N`" in report.fatal
        assert_archive_consistent(archive)
        if mounted:
            subprocess.run(
                ["mount", "-o", f"remount,size={one * 10 // 1024}k", str(archive)], check=True
            )
        else:
            fast_crawl.reserve_bytes = 0
        fetched = set(catalog.read_manifest(archive, SAMPLE_DATE)["files"])
        before = len(nomads.fetched())
        report = crawl(
            archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl
        )
        assert report.status == "complete"
        assert not fetched & set(nomads.fetched()[before:])
        assert_archive_consistent(archive)
    finally:
        if mounted:
            subprocess.run(["umount", str(archive)], check=True)


def test_second_crawler_on_the_same_archive_is_refused(nomads, tmp_path):
    archive = tmp_path / "a"
    with archive_lock(archive):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rtofs_lib",
                "crawl",
                "--archive",
                str(archive),
                "--base-url",
                nomads.url,
                "--date",
                SAMPLE_DATE,
                "--steps",
                "n024",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert proc.returncode == 1
    assert "another crawler holds the archive lock" in proc.stderr
    assert nomads.log == []


def test_lock_is_free_again_after_a_crawl(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps="n024", options=fast_crawl)
    with archive_lock(archive), pytest.raises(CrawlLockedError, match="another crawler"):
        Crawler(archive, nomads.url, fast_crawl).crawl(SAMPLE_DATE, "prog", "n024")


def test_rate_cap_spaces_requests(nomads, tmp_path, fast_crawl):
    fast_crawl.rate_per_minute = 600  # one request per 0.1 s after the burst
    fast_crawl.burst = 1
    crawl(tmp_path / "a", SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    times = sorted(r.time for r in nomads.log)
    assert len(times) == 1 + len(SERVED)
    assert times[-1] - times[0] >= 0.1 * (len(times) - 1) * 0.9


# --- verification ----------------------------------------------------------------------------


def test_verify_rejects_an_html_error_page(tmp_path):
    bad = tmp_path / DAY / "rtofs_glo_2ds_f000_prog.nc"
    bad.parent.mkdir()
    bad.write_text("<html><body>503 Service Unavailable</body></html>")
    with pytest.raises(NotNetCDFError, match=str(bad.name)):
        verify_file(bad, "prog", "f000", SAMPLE_DATE)


def test_verify_rejects_a_truncated_file(nomads, tmp_path):
    src = served_path(nomads, SERVED[0])
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(TruncatedFileError):
        verify_file(cut, "prog", names.parse_name(src.name).step, SAMPLE_DATE)


def test_verify_rejects_a_file_from_another_step(nomads):
    src = served_path(nomads, "rtofs_glo_2ds_f001_prog.nc")
    with pytest.raises(Exception, match="valid at"):
        verify_file(src, "prog", "f002", SAMPLE_DATE)


# --- catalog and prune -----------------------------------------------------------------------


def test_day_files_follow_the_manifest(nomads, tmp_path, fast_crawl):
    archive = tmp_path / "a"
    crawl(archive, SAMPLE_DATE, base_url=nomads.url, steps=CRAWL_STEPS, options=fast_crawl)
    (archive / DAY / "rtofs_glo_2ds_f010_prog.nc").write_bytes(b"stray")
    got = [p.name for p in catalog.day_files(archive, SAMPLE_DATE)]
    assert got == SERVED


def test_manifest_is_written_atomically_as_json(tmp_path):
    catalog.write_manifest(tmp_path, SAMPLE_DATE, {"files": {"b": {"size": 1}, "a": {"size": 2}}})
    data = json.loads(catalog.manifest_path(tmp_path, SAMPLE_DATE).read_text())
    assert list(data["files"]) == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / DAY).iterdir()) == ["manifest.json"]


def test_prune_keeps_the_last_n_days(tmp_path):
    for d in ("20260701", "20260706", "20260707", "20260708"):
        (tmp_path / names.day_folder(d)).mkdir()
    (tmp_path / "notes").mkdir()
    gone = catalog.prune(tmp_path, 2, today=dt.date(2026, 7, 8))
    assert [p.name for p in gone] == ["rtofs.20260701", "rtofs.20260706"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes",
        "rtofs.20260707",
        "rtofs.20260708",
    ]


# --- command line and scheduling -------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "steps", "code", "word"),
    [
        (SAMPLE_DATE, "n024", 0, "complete"),
        (SAMPLE_DATE, "n024,f192", 3, "partial"),
        ("20260701", "n024", 1, "failed"),
    ],
    ids=["complete", "partial", "gone"],
)
def test_cli_exit_status_says_complete_partial_failed(nomads, tmp_path, date, steps, code, word):
    proc = run_cli(
        "crawl",
        "--archive",
        str(tmp_path / "a"),
        "--base-url",
        nomads.url,
        "--date",
        date,
        "--steps",
        steps,
        "--progress",
        "log",
    )
    assert proc.returncode == code, proc.stderr
    assert f"rtofs crawl {date}: {word}" in proc.stdout


def test_cli_takes_deadline_and_floors_from_the_configuration(nomads, tmp_path):
    cfg = tmp_path / "rtofs.toml"
    floor = served_path(nomads, names.compose_name("prog", "n024")).stat().st_size + 2**20
    cfg.write_text(f'crawl_deadline = "3s"\ncrawl_size_floor = "prog={floor}"\n')
    proc = run_cli(
        "crawl", "--archive", str(tmp_path / "a"), "--base-url", nomads.url,
        "--date", SAMPLE_DATE, "--steps", "n024", "--progress", "log", config=cfg,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "below the" in proc.stderr
    assert "deadline" in proc.stdout


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('crawl_deadline = "soon"', "crawl_deadline"),
        ('crawl_size_floor = "prog=big"', "crawl_size_floor"),
    ],
    ids=["deadline", "floor"],
)
def test_cli_names_a_bad_crawl_setting(tmp_path, line, named):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text(line + "\n")
    proc = run_cli("crawl", "--archive", str(tmp_path / "a"), config=cfg)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr


def test_cli_prune_deletes_old_days(tmp_path):
    old = tmp_path / "rtofs.20000101"
    old.mkdir()
    proc = run_cli("prune", "--archive", str(tmp_path), "--keep-days", "3")
    assert proc.returncode == 0, proc.stderr
    assert not old.exists()
    assert "deleted 1 day folders" in proc.stdout


def test_crawl_old_day_listed_on_root_index(nomads, tmp_path, fast_crawl):
    report = crawl(
        tmp_path / "a", CRAWL_OLD_DATE, base_url=nomads.url, steps="n024", options=fast_crawl
    )
    assert report.status == "complete"
