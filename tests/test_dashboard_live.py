"""The live dashboard: ``days.json``, the static page, and the page updating itself in a browser.

The browser tests serve a real maps folder (a sample day rendered by the serial pipeline)
with the dashboard service itself in its ``--local`` mode (``python -m
rtofs_lib.hub.dashboard_service --local``: on loopback without the hub login; tornado's
``StaticFileHandler`` with ``Cache-Control: no-cache`` and an ETag that follows the file, as
behind the login, which ``tests/test_hub.py`` covers). Debian's chromium opens the page;
the tests then write ``index.json`` (atomically, per the contract: ``landed``,
``published``, ``latency_s``, ``updated``, failures with ``landed`` and ``failed_at``) and
wait for the page to show it without a reload. The delays from the write to the page are kept in
``test-artifacts/dashboard-live.json`` with the screenshots; they are only reported here.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import SAMPLE_DATE, wait_for_http

from rtofs_lib import atomic
from rtofs_lib.fetch import names
from rtofs_lib.jobs import dashboard, pipeline
from rtofs_lib.jobs import page as dashboard_page
from rtofs_lib.testing.cluster import free_port

NEXT_DATE = "20260709"
#: A guard only ("it happened at all"): the page polls index.json every second.
APPEAR_MS = 20_000
#: days.json is polled every five seconds.
NEW_DAY_MS = 30_000

browser_test = [pytest.mark.slow, pytest.mark.network]


# --- helpers: index.json per the contract ---------------------------------------------------------


def iso(t: dt.datetime) -> str:
    """ISO UTC with milliseconds and ``Z``, as the landed records and index.json write it."""
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timed(step: dict, landed: dt.datetime | None, latency: float) -> dict:
    """A step entry with ``landed``, ``published`` and ``latency_s`` (no landed: null)."""
    published = (landed or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=latency)
    return {
        **step,
        "landed": iso(landed) if landed else None,
        "published": iso(published),
        "latency_s": latency if landed else None,
    }


def failure(file: str, step: str, error: str, at: dt.datetime) -> dict:
    return {
        "file": file,
        "step": step,
        "error": error,
        "landed": iso(at - dt.timedelta(seconds=1)),
        "failed_at": iso(at),
    }


def publish(maps: Path, date: str, steps: list[dict], failed: list[dict] | None = None) -> Path:
    """Write the day's index.json atomically, as the stream does after each file."""
    day = maps / names.day_folder(date)
    doc = json.loads((day / dashboard.DAY_INDEX).read_text())
    doc.update(
        date=date,
        steps=steps,
        failed=failed or [],
        fields=sorted({f for s in steps for f in s["maps"]}),
        updated=iso(dt.datetime.now(dt.UTC)),
    )
    return atomic.write_json(day / dashboard.DAY_INDEX, doc)


def record(artifacts_dir: Path, **figures: float) -> None:
    """Add measured figures to ``dashboard-live.json`` in the artefacts folder."""
    path = artifacts_dir / "dashboard-live.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(figures)
    atomic.write_json(path, data)
    print(f"dashboard-live: {figures}")


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, spark_cache) -> tuple[Path, list[dict]]:
    """A maps folder of the sample day (n024, f000-f003) rendered serially, and its steps."""
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("live-dashboard")
    sample.write_sample(root / "archive", SAMPLE_DATE, steps="n024,f000-f003", grid="small")
    report = pipeline.run(
        SAMPLE_DATE,
        archive=root / "archive",
        maps=root / "maps",
        cache_dir=spark_cache,
        master="serial",
        cube=root / "cube",  # (module fixtures run outside the per-test RTOFS_HOME)
    )
    assert report.exit_status == 0
    doc = json.loads((root / "maps" / names.day_folder(SAMPLE_DATE) / "index.json").read_text())
    return root / "maps", doc["steps"]


@pytest.fixture
def maps(rendered, tmp_path) -> Path:
    """A private copy of the rendered maps folder."""
    return Path(shutil.copytree(rendered[0], tmp_path / "maps"))


@pytest.fixture
def steps(rendered) -> dict[str, dict]:
    """The rendered step entries (without times) by step."""
    return {s["step"]: s for s in rendered[1]}


@pytest.fixture
def served(maps, tmp_path):
    """The maps folder served by ``dashboard_service --local`` on loopback; yields its URL."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "rtofs_lib.hub.dashboard_service",
            "--root", str(maps), "--port", str(port), "--local",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url + "days.json", proc, tmp_path / "server.log", "the dashboard", 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def day_started(maps, steps) -> dict[str, dict]:
    """The sample day with three steps published (n024, f000, f001) and the page written."""
    now = dt.datetime.now(dt.UTC)
    first = [timed(steps[s], now - dt.timedelta(seconds=30 - i), 2.0 + i) for i, s in
             enumerate(["n024", "f000", "f001"])]  # fmt: skip
    publish(maps, SAMPLE_DATE, first)
    dashboard.write_index(maps)
    return {s["step"]: s for s in first}


@pytest.fixture
def live_page(chromium, served, day_started):
    """The page open in chromium, its live script polling; marked to detect a reload."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(served + "index.html")  # the gallery (the map is the first view)
    page.wait_for_function("() => document.body.dataset.live === 'on'", timeout=APPEAR_MS)
    page.evaluate("() => { window.__opened = 'once'; }")
    yield page
    assert page.evaluate("() => window.__opened") == "once", "the page was reloaded"
    page.close()


def wait_timed(page, selector: str, timeout: float = APPEAR_MS) -> float:
    """Wait for ``selector`` on the page; return the seconds it took."""
    t0 = time.monotonic()
    page.wait_for_selector(selector, timeout=timeout)
    return time.monotonic() - t0


# --- days.json and the static page ---------------------------------------------------------------


def test_days_json_lists_every_day_latest_first_with_its_index(maps, steps):
    shutil.copytree(maps / names.day_folder(SAMPLE_DATE), maps / names.day_folder(NEXT_DATE))
    publish(maps, NEXT_DATE, [])
    before = set(maps.iterdir())
    dashboard.write_index(maps)
    doc = json.loads((maps / dashboard.DAYS_JSON).read_text())

    assert doc["days"] == [
        {"date": NEXT_DATE, "index": f"rtofs.{NEXT_DATE}/index.json"},
        {"date": SAMPLE_DATE, "index": f"rtofs.{SAMPLE_DATE}/index.json"},
    ]
    assert dt.datetime.fromisoformat(doc["updated"]).tzinfo is not None
    for entry in doc["days"]:
        assert (maps / entry["index"]).is_file()
    assert {p.name for p in set(maps.iterdir()) - before} <= {"days.json"}  # no temporaries


def test_days_json_is_rewritten_with_a_new_updated_time(maps):
    first = json.loads(dashboard.write_days(maps).read_text())["updated"]
    time.sleep(0.01)
    dashboard.write_index(maps)
    assert json.loads((maps / dashboard.DAYS_JSON).read_text())["updated"] > first


def test_static_page_shows_latest_view_latencies_and_failures(maps, steps):
    now = dt.datetime.now(dt.UTC)
    ago = now - dt.timedelta(seconds=10)
    entries = [timed(steps["n024"], ago, 5.0), timed(steps["f000"], ago, 1.0)]
    entries.append(timed(steps["f001"], None, 0.5))  # a step without a landed record
    error = "rtofs_glo_2ds_f002_prog.nc: truncated (1024 of 2048 bytes); it is fetched again"
    publish(maps, SAMPLE_DATE, entries, [failure("rtofs_glo_2ds_f002_prog.nc", "f002", error, now)])
    page = dashboard.write_index(maps).read_text()

    latest = page[page.index('<section id="latest"') : page.index('<main id="days">')]
    assert 'data-step="f001"' in latest  # published last
    assert 'href="rtofs.20260708/rtofs_glo_2ds_f001_prog/sst.high.png"' in latest
    assert "latency —" in latest  # null latency shown as unknown
    assert "median 3.0 s · p95 4.8 s · max 5.0 s over 2 of 3 files" in page
    assert '<td class="num">5.0 s</td>' in page and "<td>f001</td>" in page
    assert html.escape(error) in page and f"<td>{now:%H:%M:%S}Z</td>" in page
    assert "<script>" in page and "index.json" in dashboard_page.live_script()


@pytest.mark.network
def test_the_maps_handler_gives_a_rewritten_index_a_new_etag(served, maps, steps):
    url = served + f"rtofs.{SAMPLE_DATE}/index.json"
    first = requests.get(url, timeout=10)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=10).status_code == 304

    publish(maps, SAMPLE_DATE, [timed(steps["n024"], dt.datetime.now(dt.UTC), 1.0)])
    again = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert again.json()["steps"][0]["latency_s"] == 1.0


# --- the page in a browser -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.network
def test_a_new_step_appears_without_reload_and_becomes_the_latest(
    live_page, maps, steps, day_started, artifacts_dir
):
    page = live_page
    assert page.get_attribute("#latest", "data-step") == "f001"
    assert page.locator('figure[data-step="f002"]').count() == 0
    page.screenshot(path=str(artifacts_dir / "dashboard-live-before.png"), full_page=True)

    t0 = time.monotonic()
    publish(
        maps,
        SAMPLE_DATE,
        [*day_started.values(), timed(steps["f002"], dt.datetime.now(dt.UTC), 1.5)],
    )
    figure = '.field[data-field="sst"] figure[data-step="f002"]'
    page.wait_for_selector(figure, state="attached", timeout=APPEAR_MS)
    in_page = time.monotonic() - t0
    page.wait_for_selector('#latest[data-step="f002"]', state="attached", timeout=APPEAR_MS)
    latest = time.monotonic() - t0
    page.wait_for_function(
        "() => document.querySelector('#latest img').complete"
        " && document.querySelector('#latest img').naturalWidth > 0",
        timeout=APPEAR_MS,
    )
    latest_map = time.monotonic() - t0

    img = page.locator(f"{figure} img")
    img.scroll_into_view_if_needed()
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    assert "f002" in page.inner_text("#latest h2")
    assert "latency 1.5 s" in page.inner_text("#latest .meta")
    assert (
        page.locator("#latest img")
        .get_attribute("src")
        .startswith("rtofs.20260708/rtofs_glo_2ds_f002_prog/sst.low.png")
    )
    record(
        artifacts_dir,
        new_step_to_page_s=round(in_page, 3),
        new_step_to_latest_s=round(latest, 3),
        new_step_to_latest_map_loaded_s=round(latest_map, 3),
    )
    page.locator("#latest").screenshot(path=str(artifacts_dir / "dashboard-live-latest.png"))
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts_dir / "dashboard-live-after.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.network
def test_new_steps_keep_step_order_and_their_latency_shows(live_page, maps, steps, day_started):
    page = live_page
    now = dt.datetime.now(dt.UTC)
    entries = [
        *day_started.values(),
        timed(steps["f002"], now, 7.25),
        timed(steps["f003"], now, 3.0),
    ]
    publish(maps, SAMPLE_DATE, entries)
    page.wait_for_selector('figure[data-step="f003"]', timeout=APPEAR_MS)

    order = page.eval_on_selector_all(
        '.field[data-field="sst"] figure', "els => els.map(e => e.dataset.step)"
    )
    assert order == ["n024", "f000", "f001", "f002", "f003"]
    # 7.25 s is a tie: shown as 7.3 s, as the page written by Python shows it
    assert page.inner_text('figure[data-step="f002"] .lat').strip() == "· 7.3 s"
    rows = page.eval_on_selector_all(
        "details.latency tbody tr", "rows => rows.map(r => r.cells[4].textContent)"
    )
    assert rows == ["2.0 s", "3.0 s", "4.0 s", "7.3 s", "3.0 s"]
    # the step navigation links the new steps too
    assert page.locator('nav.steps a[href="#d20260708-f003"]').count() == 1


@pytest.mark.slow
@pytest.mark.network
def test_the_latency_summary_follows_the_published_steps(live_page, maps, steps, day_started):
    page = live_page
    latencies = [2.0, 3.0, 4.0, 0.5, 9.0]  # n024, f000, f001 as published, then f002, f003
    now = dt.datetime.now(dt.UTC)
    entries = [
        *day_started.values(),
        timed(steps["f002"], now, 0.5),
        timed(steps["f003"], now, 9.0),
    ]
    publish(maps, SAMPLE_DATE, entries)
    page.wait_for_selector('figure[data-step="f003"]', timeout=APPEAR_MS)

    median, p95 = np.percentile(latencies, [50, 95])
    expected = f"median {median:.1f} s · p95 {p95:.1f} s · max 9.0 s over 5 of 5 files"
    assert expected in page.inner_text("section.day p.latency-summary")


@pytest.mark.slow
@pytest.mark.network
def test_a_failed_file_appears_with_its_error(live_page, maps, day_started, artifacts_dir):
    page = live_page
    assert page.locator(".failures tr").count() == 0
    error = (
        "rtofs_glo_2ds_f002_prog.nc: variable 'sst' missing (found: ssh); NOAA may be "
        "replacing the file: it is processed again when it lands anew"
    )
    t0 = time.monotonic()
    publish(
        maps,
        SAMPLE_DATE,
        list(day_started.values()),
        [failure("rtofs_glo_2ds_f002_prog.nc", "f002", error, dt.datetime.now(dt.UTC))],
    )
    row = page.locator('.failures tr[data-file="rtofs_glo_2ds_f002_prog.nc"]')
    row.wait_for(timeout=APPEAR_MS)
    record(artifacts_dir, failure_to_page_s=round(time.monotonic() - t0, 3))

    cells = row.locator("td").all_inner_texts()
    assert cells[:3] == ["rtofs_glo_2ds_f002_prog.nc", "f002", error]
    assert all(c.endswith("Z") for c in cells[3:])
    assert "Failed files (1)" in page.inner_text(".failures h3")
    page.locator(".failures").screenshot(path=str(artifacts_dir / "dashboard-live-failed.png"))


@pytest.mark.slow
@pytest.mark.network
def test_a_new_day_appears_without_reload(live_page, maps, steps, artifacts_dir):
    page = live_page
    day = maps / names.day_folder(NEXT_DATE)
    shutil.copytree(maps / names.day_folder(SAMPLE_DATE), day)
    first = {**steps["n024"], "valid_time": "2026-07-09T00:00:00"}
    t0 = time.monotonic()
    publish(maps, NEXT_DATE, [timed(first, dt.datetime.now(dt.UTC), 1.0)])
    dashboard.write_days(maps)  # as write_index does when the stream's batch ends
    page.wait_for_selector(f'#d{NEXT_DATE} figure[data-step="n024"]', timeout=NEW_DAY_MS)
    record(artifacts_dir, new_day_to_page_s=round(time.monotonic() - t0, 3))

    days = page.eval_on_selector_all(
        "main#days > section.day", "els => els.map(e => e.dataset.date)"
    )
    assert days == [NEXT_DATE, SAMPLE_DATE]
    assert page.get_attribute("#latest", "data-date") == NEXT_DATE
    assert page.locator(f'nav.days a[href="#d{NEXT_DATE}"]').count() == 1
    page.screenshot(path=str(artifacts_dir / "dashboard-live-new-day.png"), full_page=True)


@pytest.mark.slow
@pytest.mark.network
def test_the_live_page_shows_what_a_freshly_written_page_shows(
    chromium, live_page, served, maps, steps, day_started
):
    page = live_page
    now = dt.datetime.now(dt.UTC)
    entries = [
        *day_started.values(),
        timed(steps["f002"], now, 1.25),
        timed(steps["f003"], None, 3),
    ]
    failed = [failure("rtofs_glo_2ds_f004_prog.nc", "f004", "truncated: fetched again", now)]
    publish(maps, SAMPLE_DATE, entries, failed)
    page.wait_for_selector(
        '.failures tr[data-file="rtofs_glo_2ds_f004_prog.nc"]', timeout=APPEAR_MS
    )
    page.wait_for_selector('#latest[data-step="f003"]', timeout=APPEAR_MS)

    dashboard.write_index(maps)
    fresh = chromium.new_page(viewport={"width": 1400, "height": 1000}, java_script_enabled=False)
    fresh.goto(served + "index.html")
    parts = [
        "#latest h2", "#latest .meta", "#latest .high", "section.day p.counts",
        "section.day p.latency-summary", "section.day .failures", "section.day nav.steps",
        'section.day .field[data-field="sst"]',
    ]  # fmt: skip
    for sel in parts:
        assert page.inner_text(sel) == fresh.inner_text(sel), sel
    live_rows = page.eval_on_selector_all("details.latency tr", "r => r.map(e => e.textContent)")
    fresh_rows = fresh.eval_on_selector_all("details.latency tr", "r => r.map(e => e.textContent)")
    assert live_rows == fresh_rows
    fresh.close()


@pytest.mark.slow
@pytest.mark.network
def test_region_statistics_plot_follows_a_rewritten_page(live_page, maps, steps, day_started):
    page = live_page
    before = page.inner_html("section.day svg.stats")
    day = maps / names.day_folder(SAMPLE_DATE)
    doc = json.loads((day / dashboard.DAY_INDEX).read_text())
    rows = [{**r, "mean": r["mean"] + 5.0} for r in doc["region_stats"] if r["step"] == "f001"]
    f002 = {"step": "f002", "valid_time": steps["f002"]["valid_time"]}
    doc["region_stats"] = doc["region_stats"] + [{**r, **f002} for r in rows]
    atomic.write_json(day / dashboard.DAY_INDEX, doc)
    dashboard.write_index(maps)  # the stream's batch end: index.html and days.json rewritten
    page.wait_for_function(
        "old => document.querySelector('section.day svg.stats').innerHTML !== old",
        arg=before,
        timeout=NEW_DAY_MS,
    )
    top = max(r["mean"] for r in doc["region_stats"] if r.get("mean") is not None)
    assert page.text_content("section.day svg.stats text") == f"{top:.1f}"  # the new y range


@pytest.mark.slow
@pytest.mark.network
def test_a_page_written_before_any_day_fills_in(chromium, served, maps, steps, tmp_path):
    day = maps / names.day_folder(SAMPLE_DATE)
    day.rename(tmp_path / "aside")
    dashboard.write_index(maps)
    page = chromium.new_page()
    page.goto(served + "index.html")  # the gallery (the map is the first view)
    assert "No maps published yet" in page.inner_text("#latest")
    page.wait_for_function("() => document.body.dataset.live === 'on'", timeout=APPEAR_MS)

    (tmp_path / "aside").rename(day)
    publish(maps, SAMPLE_DATE, [timed(steps["n024"], dt.datetime.now(dt.UTC), 1.0)])
    dashboard.write_days(maps)
    page.wait_for_selector('figure[data-step="n024"]', timeout=NEW_DAY_MS)
    assert page.get_attribute("#latest", "data-step") == "n024"
    assert page.locator("p.nodays").count() == 0
    page.close()


def test_the_local_dashboard_refuses_an_address_other_than_loopback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable, "-m", "rtofs_lib.hub.dashboard_service",
            "--root", str(tmp_path), "--local", "--ip", "0.0.0.0",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--ip 0.0.0.0 is not a loopback address" in proc.stderr
