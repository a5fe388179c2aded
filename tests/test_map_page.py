"""The zoomable map page in a browser: the real service, real files, Debian's chromium.

``rtofs dashboard serve`` runs over an archive of small-grid prog files whose sst is known
(:func:`conftest.map_sst`: a latitude gradient warming 1.5 °C a step, a 30 °C patch in the
Pacific, the sample land); the page (``rtofs_lib/data/dashboard/map.html``) is opened at
1280x800 and driven through its controls and its ``window.rtofsMap`` handle. Pixels are read
from screenshots, which are kept under ``test-artifacts/map-*.png``.
"""

from __future__ import annotations

import io
import json
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from conftest import (
    LAND,
    MAP_LATE_STEP,
    MAP_STEPS,
    REPO,
    SAMPLE_DATE,
    SEA,
    WARM_PATCH,
    DashboardServer,
    land,
    map_archive,
    map_sst,
)
from PIL import Image

from rtofs_lib.fetch import names
from rtofs_lib.fields.grid import Grid
from rtofs_lib.fields.netcdf import read_field, read_grid
from rtofs_lib.maps import colors, styles

pytestmark = [pytest.mark.slow, pytest.mark.network]

VIEWPORT = {"width": 1280, "height": 800}
NEXT_DATE = "20260709"
WAIT_MS = 30_000
#: What shows through the map where no tile has data (map.css ``.map``).
BACKGROUND = (0xDF, 0xE4, 0xE8)
#: Leaflet's zoom buttons and attribution hidden, so screenshots hold only tiles.
NO_CONTROLS = ".leaflet-control-container { display: none !important; }"


# --- helpers ---------------------------------------------------------------------------------


def open_page(chromium, url: str):
    """The map page at 1280x800, its first step's tiles loaded, Leaflet's controls hidden."""
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.tiles === 'loaded'", timeout=WAIT_MS)
    page.add_style_tag(content=NO_CONTROLS)
    return page


def settled(page, which: str = "") -> None:
    """Wait until every tile in view of the map (``which="2"``: the compared one) has loaded."""
    page.wait_for_function(
        f"() => document.body.dataset.tiles{which} === 'loaded'"
        f" && !rtofsMap.layer{which}().isLoading()"
        f" && [...document.querySelectorAll('#map{which} img.leaflet-tile')]"
        ".every(i => i.complete)",
        timeout=WAIT_MS,
    )


def view(page, lat: float, lon: float, zoom: int) -> None:
    page.evaluate("([c, z]) => rtofsMap.map.setView(c, z, {animate: false})", [[lat, lon], zoom])
    settled(page)


def map_pixels(page, element: str = "#map") -> np.ndarray:
    """``(h, w, 3)`` RGB of a screenshot of the map element."""
    png = page.locator(element).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def pixel_at(page, lat: float, lon: float) -> tuple[int, int, int]:
    """The colour drawn at ``lat``/``lon`` on the main map."""
    x, y = page.evaluate(
        "ll => { const p = rtofsMap.map.latLngToContainerPoint(ll); return [p.x, p.y]; }",
        [lat, lon],
    )
    rgb = map_pixels(page)[round(y), round(x)]
    return tuple(int(c) for c in rgb)


def click_map(page, lat: float, lon: float) -> None:
    """A mouse click on the main map at ``lat``/``lon``."""
    box = page.locator("#map").bounding_box()
    x, y = page.evaluate(
        "ll => { const p = rtofsMap.map.latLngToContainerPoint(ll); return [p.x, p.y]; }",
        [lat, lon],
    )
    page.mouse.click(box["x"] + x, box["y"] + y)


def expected_colour(value: float, field: str = "sst") -> tuple[int, int, int]:
    style = styles.field_style(field)
    index = int(colors.quantise(np.array([value], np.float32), style.vmin, style.vmax)[0])
    return tuple(int(c) for c in colors.palette(field)[index])


def max_zoom(service: DashboardServer) -> int:
    return int(requests.get(service.url + "api/layers.json", timeout=10).json()["max_zoom"])


def source_file(service: DashboardServer, step: str):
    return service.archive / names.day_folder(SAMPLE_DATE) / names.compose_name("prog", step)


# --- the page ------------------------------------------------------------------------------------


def test_the_page_and_its_assets_come_from_loopback_only(chromium, map_service, artifacts_dir):
    page = chromium.new_page(viewport=VIEWPORT)
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(map_service.url)
    page.wait_for_function("() => document.body.dataset.tiles === 'loaded'", timeout=WAIT_MS)
    page.evaluate("() => rtofsMap.map.setZoom(3)")
    settled(page)
    page.screenshot(path=str(artifacts_dir / "map-page.png"))

    hosts = {urlsplit(u).netloc for u in requested if not u.startswith("data:")}
    assert hosts == {f"127.0.0.1:{map_service.port}"}, requested
    paths = {urlsplit(u).path for u in requested}
    assert {"/static/vendor/leaflet/leaflet.js", "/static/map.js", "/api/layers.json"} <= paths
    native = min(3, max_zoom(map_service))  # deeper zooms scale the deepest tiles
    assert any(p.startswith(f"/tiles/{SAMPLE_DATE}/{MAP_STEPS[-1]}/sst/{native}/") for p in paths)
    page.close()


def test_the_warm_patch_is_drawn_in_the_palette_colour_of_its_value(
    chromium, map_service, artifacts_dir
):
    w, e, s, n = WARM_PATCH
    lat, lon = (s + n) / 2, (w + e) / 2
    path = source_file(map_service, MAP_STEPS[-1])
    grid = Grid(*read_grid(path))
    ((j, i),) = grid.nearest(lon, lat)
    value = float(read_field(path, "sst").values[j, i])

    page = open_page(chromium, map_service.url)
    view(page, lat, lon, max_zoom(map_service) + 2)
    page.locator("#map").screenshot(path=str(artifacts_dir / "map-warm-patch.png"))
    got = pixel_at(page, lat, lon)
    page.close()

    assert value == pytest.approx(30.0)
    assert np.abs(np.subtract(got, expected_colour(value))).max() <= 2, (got, value)


@pytest.mark.parametrize(
    ("lat", "lon", "zoom", "pan", "seen"),
    [
        (10.0, 140.0, 3, (284, 0), 180.0),  # east across the dateline (worldCopyJump)
        (72.0, 150.0, 4, (400, 0), 180.0),  # the same in the Arctic, north of Siberia
        (70.0, 80.0, 4, (0, -300), 80.0),  # north over the tripolar fold near 80°E
        (70.0, -100.0, 4, (0, -300), -100.0),  # and over its other end, in Canada
        (30.0, 50.0, 4, (500, 0), 74.16),  # east across the seam of the RTOFS longitudes
    ],
    ids=["dateline", "arctic-dateline", "arctic-fold-80E", "arctic-fold-100W", "seam-74E"],
)
def test_panning_leaves_no_empty_strip(chromium, map_service, artifacts_dir, lat, lon, zoom,
                                       pan, seen):  # fmt: skip
    page = open_page(chromium, map_service.url)
    view(page, lat, lon, zoom)
    page.evaluate("p => rtofsMap.map.panBy(p, {animate: false})", list(pan))
    settled(page)
    rgb = map_pixels(page)
    name = f"map-pan-{lat:g}-{lon:g}.png"
    Image.fromarray(rgb).save(artifacts_dir / name)
    west, south, east, north = page.evaluate(
        "() => { const b = rtofsMap.map.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; }"
    )
    page.close()

    assert any(west < seen + k < east for k in (-360, 0, 360)), (west, east)
    assert south > -75.0 and north < 85.0  # the view lies on the grid and the tiles
    empty = np.all(np.abs(rgb.astype(int) - BACKGROUND) <= 1, axis=-1)
    columns, rows = np.flatnonzero(empty.any(axis=0)), np.flatnonzero(empty.any(axis=1))
    assert not empty.any(), f"{name}: no data in columns {columns[:10]}…, rows {rows[:10]}…"


def test_stepping_the_slider_changes_the_tiles(chromium, map_service, artifacts_dir):
    lat, lon = 40.0, -35.0  # open Atlantic: the gradient warms 1.5 °C a step
    page = open_page(chromium, map_service.url)
    view(page, lat, lon, 3)
    before_url = page.evaluate("() => rtofsMap.tileUrl()")
    before = pixel_at(page, lat, lon)

    page.focus("#step")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        f"() => document.body.dataset.step === '{MAP_STEPS[-2]}'", timeout=WAIT_MS
    )
    settled(page)
    page.locator("#map").screenshot(path=str(artifacts_dir / "map-step-back.png"))
    after_url = page.evaluate("() => rtofsMap.tileUrl()")
    srcs = page.eval_on_selector_all("#map img.leaflet-tile", "els => els.map(e => e.src)")
    after = pixel_at(page, lat, lon)
    label = page.inner_text("#valid")
    page.close()

    assert f"/{MAP_STEPS[-1]}/" in before_url and f"/{MAP_STEPS[-2]}/" in after_url
    assert srcs and all(f"/{MAP_STEPS[-2]}/" in s for s in srcs)
    assert before != after
    assert MAP_STEPS[-2] in label


def test_play_advances_about_one_step_a_second(chromium, map_service):
    page = open_page(chromium, map_service.url)
    page.evaluate("() => rtofsMap.setStep(0)")
    settled(page)
    page.evaluate("() => { performance.clearMarks(); performance.clearMeasures(); }")
    page.click("#play")
    page.wait_for_function(
        f"() => document.body.dataset.step === '{MAP_STEPS[3]}'", timeout=WAIT_MS
    )
    page.click("#play")  # pause
    paused = page.evaluate("() => [rtofsMap.state.playing, rtofsMap.state.step]")
    time.sleep(1.5)
    still = page.evaluate("() => rtofsMap.state.step")
    asked = page.evaluate("() => performance.getEntriesByName('rtofs:step').map(m => m.startTime)")
    loaded = page.evaluate(
        "() => performance.getEntriesByName('rtofs:viewport').map(m => m.startTime + m.duration)"
    )
    page.close()

    assert len(asked) == 3 and len(loaded) == 3  # steps 1, 2, 3
    gaps = np.diff(asked)
    assert ((gaps > 950) & (gaps < 5000)).all(), gaps  # about a step a second
    assert all(d <= a for d, a in zip(loaded[:-1], asked[1:], strict=True)), (loaded, asked)
    assert paused[0] is False and still == paused[1]


def test_the_colormap_select_recolours_tiles_and_legend(chromium, map_service):
    w, e, s, n = WARM_PATCH
    lat, lon = (s + n) / 2, (w + e) / 2
    palette = requests.get(
        map_service.url + "api/palette/sst.json", params={"cmap": "haline"}, timeout=30
    ).json()
    page = open_page(chromium, map_service.url)
    view(page, lat, lon, 3)
    page.select_option("#cmap", "haline")
    page.wait_for_function("() => document.body.dataset.legend === 'sst|haline'")
    page.wait_for_function("() => rtofsMap.tileUrl().includes('cmap=haline')")
    settled(page)
    got = pixel_at(page, lat, lon)
    bar = page.eval_on_selector("#legend-bar", "el => el.style.background")
    page.close()

    style = styles.field_style("sst")
    index = int(colors.quantise(np.array([30.0], np.float32), style.vmin, style.vmax)[0])
    want = np.frombuffer(colors.palette_bytes("haline"), np.uint8).reshape(256, 3)[index]
    assert np.abs(np.subtract(got, want)).max() <= 2, (got, want)
    first = tuple(int(palette["colors"][0][i : i + 2], 16) for i in (1, 3, 5))
    assert f"rgb{first}".replace(" ", "") in bar.replace(" ", "")


def test_a_field_the_files_lack_shows_the_services_message(chromium, map_service):
    page = open_page(chromium, map_service.url)  # prog files only: no ssh (a diag field)
    page.select_option("#field", "ssh")
    page.wait_for_selector("#tile-error:not([hidden])", timeout=WAIT_MS)
    shown = page.inner_text("#tile-error")
    src = page.eval_on_selector("#map img.leaflet-tile[src*='/ssh/']", "img => img.src")
    page.select_option("#field", "sst")
    page.wait_for_selector("#tile-error", state="hidden", timeout=WAIT_MS)
    page.close()

    reply = requests.get(src, timeout=30)
    assert reply.status_code == 404
    assert shown.strip() == reply.text.strip() and "ssh" in shown


def test_a_click_shows_the_point_series(chromium, map_service, artifacts_dir):
    lon, lat = SEA
    page = open_page(chromium, map_service.url)
    click_map(page, lat, lon)
    page.wait_for_function("() => document.body.dataset.series === 'drawn'", timeout=WAIT_MS)
    page.locator("#panel").screenshot(path=str(artifacts_dir / "map-series.png"))
    points = page.locator("#series-chart svg circle.pt").count()
    declared = page.get_attribute("#series-chart svg", "data-points")
    measured = page.evaluate("() => performance.getEntriesByName('rtofs:series').length")
    page.close()

    assert points == len(MAP_STEPS) and declared == str(len(MAP_STEPS))
    assert measured == 1


def test_a_click_on_land_shows_the_services_message(chromium, map_service):
    lon, lat = LAND
    page = open_page(chromium, map_service.url)
    with page.expect_response(lambda r: "/api/series.json" in r.url) as answer:
        click_map(page, lat, lon)
    page.wait_for_function("() => document.body.dataset.series === 'error'", timeout=WAIT_MS)
    shown = page.inner_text("#series-error")
    status, body = answer.value.status, answer.value.json()
    page.close()

    assert status == 404
    assert shown == body["error"]
    assert "nearest ocean cell" in shown


def test_compare_shows_two_different_steps_side_by_side(chromium, map_service, artifacts_dir):
    lat, lon = 40.0, -35.0
    page = open_page(chromium, map_service.url)
    view(page, lat, lon, 3)
    page.check("#compare")
    page.wait_for_function("() => document.body.dataset.tiles2 === 'loaded'", timeout=WAIT_MS)
    settled(page, "2")
    page.screenshot(path=str(artifacts_dir / "map-compare.png"))
    urls = page.evaluate("() => [rtofsMap.tileUrl(), rtofsMap.tileUrl2()]")
    centers = page.evaluate(
        "() => [rtofsMap.map, rtofsMap.map2()].map(m => [m.getCenter().lat, m.getCenter().lng,"
        " m.getZoom()])"
    )
    x, y = page.evaluate(
        "ll => { const p = rtofsMap.map.latLngToContainerPoint(ll); return [p.x, p.y]; }",
        [lat, lon],
    )
    left, right = map_pixels(page, "#map"), map_pixels(page, "#map2")
    page.close()

    assert f"/{MAP_STEPS[-1]}/" in urls[0] and f"/{MAP_STEPS[-2]}/" in urls[1]
    assert centers[0] == pytest.approx(centers[1], abs=1e-6)
    assert tuple(left[round(y), round(x)]) != tuple(right[round(y), round(x)])


def test_panning_one_compared_map_moves_the_other(chromium, map_service):
    page = open_page(chromium, map_service.url)
    page.evaluate("() => rtofsMap.setCompare(true)")
    page.evaluate("() => rtofsMap.map2().setView([-20, 100], 4, {animate: false})")
    center = page.evaluate("() => [rtofsMap.map.getCenter().lat, rtofsMap.map.getCenter().lng]")
    zoom = page.evaluate("() => rtofsMap.map.getZoom()")
    page.close()

    assert center == pytest.approx([-20, 100], abs=1e-6) and zoom == 4


def test_a_link_to_the_page_opens_the_same_view(chromium, map_service):
    page = open_page(chromium, map_service.url)
    page.evaluate("() => { rtofsMap.setField('sss'); rtofsMap.setStep(1); }")
    view(page, -20.0, -80.0, 3)
    link = page.url
    page.close()

    again = open_page(chromium, link)
    shown = again.evaluate(
        "() => [rtofsMap.state.step, rtofsMap.state.field, rtofsMap.state.cmap,"
        " rtofsMap.map.getZoom(), rtofsMap.map.getCenter().lat, rtofsMap.map.getCenter().lng]"
    )
    url = again.evaluate("() => rtofsMap.tileUrl()")
    again.close()

    assert "#" in link
    assert shown[:4] == [MAP_STEPS[1], "sss", "haline", 3]
    assert shown[4:] == pytest.approx([-20.0, -80.0], abs=0.01)
    assert f"/{MAP_STEPS[1]}/sss/" in url


def test_a_landed_file_appears_in_the_slider_without_reload(
    chromium, map_sources, tmp_path, artifacts_dir
):
    service = DashboardServer(tmp_path, map_archive(tmp_path, map_sources)).start()
    try:
        page = open_page(chromium, service.url)
        page.evaluate("() => { window.__opened = 'once'; }")
        assert page.evaluate("() => rtofsMap.steps().map(s => s.step)") == list(MAP_STEPS)

        t0 = time.monotonic()
        land(service.archive, map_sources / names.compose_name("prog", MAP_LATE_STEP))
        page.wait_for_function(
            f"() => document.body.dataset.step === '{MAP_LATE_STEP}'"
            " && document.body.dataset.tiles === 'loaded'",
            timeout=WAIT_MS,
        )
        took = time.monotonic() - t0
        page.screenshot(path=str(artifacts_dir / "map-live-new-step.png"))
        slider = page.evaluate("() => [document.getElementById('step').max, "
                               "document.getElementById('step').value]")  # fmt: skip
        steps = page.evaluate("() => rtofsMap.steps().map(s => s.step)")
        opened = page.evaluate("() => window.__opened")
        page.close()
    finally:
        service.stop()
    (artifacts_dir / "map-live.json").write_text(json.dumps({"landed_to_map_s": round(took, 3)}))

    assert steps == [*MAP_STEPS, MAP_LATE_STEP]
    assert slider == [str(len(MAP_STEPS)), str(len(MAP_STEPS))]  # followed: on the new last step
    assert opened == "once"


def test_a_landed_file_does_not_move_a_page_showing_an_older_step(chromium, map_sources, tmp_path):
    service = DashboardServer(tmp_path, map_archive(tmp_path, map_sources)).start()
    try:
        page = open_page(chromium, service.url)
        page.evaluate("() => rtofsMap.setStep(1)")
        land(service.archive, map_sources / names.compose_name("prog", MAP_LATE_STEP))
        page.wait_for_function(
            f"() => rtofsMap.steps().length === {len(MAP_STEPS) + 1}", timeout=WAIT_MS
        )
        shown = page.evaluate("() => [rtofsMap.state.step, document.getElementById('step').value]")
        page.close()
    finally:
        service.stop()

    assert shown == [MAP_STEPS[1], "1"]


def test_a_new_cycle_appears_in_the_cycle_select_and_is_followed(
    chromium, map_sources, tmp_path, artifacts_dir
):
    from rtofs_lib.testing import sample

    lat, lon = sample.make_grid(*sample.GRIDS["small"])
    source = tmp_path / "src" / names.compose_name("prog", "n024")
    next_day = sample.write_file(
        source, "prog", NEXT_DATE, "n024", fields={"sst": map_sst(lat, lon, 9)}
    )
    service = DashboardServer(tmp_path, map_archive(tmp_path, map_sources)).start()
    try:
        page = open_page(chromium, service.url)
        land(service.archive, next_day, date=NEXT_DATE)
        page.wait_for_function(
            f"() => document.body.dataset.date === '{NEXT_DATE}'"
            " && document.body.dataset.tiles === 'loaded'",
            timeout=WAIT_MS,
        )
        page.screenshot(path=str(artifacts_dir / "map-live-new-cycle.png"))
        options = page.eval_on_selector_all("#day option", "os => os.map(o => o.value)")
        shown = page.evaluate("() => [rtofsMap.state.step, rtofsMap.tileUrl()]")
        page.close()
    finally:
        service.stop()

    assert options == [NEXT_DATE, SAMPLE_DATE]  # latest first
    assert shown[0] == "n024" and f"tiles/{NEXT_DATE}/n024/sst/" in shown[1]


def test_the_page_and_vendored_leaflet_are_package_data():
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["rtofs_lib"]
    package = REPO / "rtofs_lib"
    shipped = [p.relative_to(package).as_posix()
               for p in (package / "data" / "dashboard").rglob("*") if p.is_file()]  # fmt: skip
    unpackaged = [f for f in shipped if not any(fnmatch.fnmatch(f, g) for g in globs)]

    assert {"data/dashboard/map.html", "data/dashboard/vendor/leaflet/leaflet.js",
            "data/dashboard/vendor/leaflet/images/layers.png"} <= set(shipped)  # fmt: skip
    assert unpackaged == []
    assert (
        "Leaflet 1.9.4" in (package / "data/dashboard/vendor/leaflet/leaflet.js").read_text()[:200]
    )
