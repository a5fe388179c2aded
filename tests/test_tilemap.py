"""The dashboard's tiles in a notebook: :func:`rtofs_lib.notebook.viewer.tile_map` (ipyleaflet).

The widget's layer points at the service and names the latest step, zooms as deep as the
service draws, adds no basemap from the internet, swaps its URL with the slider and shows a
click's series as ``api/series.json`` does; its URL, filled in, fetches a tile from a running
``rtofs dashboard serve``.
"""

from __future__ import annotations

import io

import ipyleaflet
import pytest
import requests
from conftest import LOADED_TILES, SAMPLE_DATE, jupyterlab_at, run_all_cells, write_notebook
from PIL import Image

from rtofs_lib import config
from rtofs_lib.errors import RtofsError
from rtofs_lib.notebook.viewer import TileMap, dashboard_url, tile_map

SERVICE = "http://127.0.0.1:8092/"


@pytest.fixture(scope="module")
def widget(tile_archive, tmp_path_factory):
    """A tile map of ``tile_archive`` (n024, f001-f003) whose tiles come from ``SERVICE``."""
    m = tile_map(url=SERVICE, archive=tile_archive, cube=tile_archive.parent / "cube",
                 cache_dir=tmp_path_factory.mktemp("tilemap-cache"))  # fmt: skip
    try:
        yield m
    finally:
        m.close()


def test_the_layer_points_at_the_service_and_names_the_latest_step(widget):
    assert isinstance(widget, ipyleaflet.Map) and isinstance(widget, TileMap)
    url = widget.layer.url
    assert url.startswith(f"{SERVICE}tiles/{SAMPLE_DATE}/f003/sst/{{z}}/{{x}}/{{y}}.png?v=")
    assert widget.slider.value == "f003"
    assert list(widget.slider.options) == [("n024", "n024"), ("f001", "f001"),
                                           ("f002", "f002"), ("f003", "f003")]  # fmt: skip
    assert (widget.play.min, widget.play.max, widget.play.value) == (0, 3, 3)


def test_it_zooms_as_deep_as_the_service_draws(widget):
    assert widget.layer.max_native_zoom == widget.service.layers()["max_zoom"] > 0
    assert widget.max_zoom == widget.layer.max_zoom > widget.layer.max_native_zoom


def test_no_layer_asks_anything_but_the_service(widget):
    """No OpenStreetMap basemap (the hosts have no internet): the one layer is the tiles'."""
    assert widget.layers == (widget.layer,)
    urls = [layer.url for layer in widget.layers if isinstance(layer, ipyleaflet.TileLayer)]
    assert urls == [widget.layer.url] and all(u.startswith(SERVICE) for u in urls)
    assert "openstreetmap" not in repr(widget.layers).lower()


def test_the_slider_swaps_the_layer_to_that_step(widget):
    before = widget.layer.url
    try:
        widget.slider.value = "f001"
        assert widget.layer.url == widget.url_for("f001") != before
        assert f"/{SAMPLE_DATE}/f001/sst/" in widget.layer.url
        version = widget.service.layers()["days"][0]["steps"][1]["version"]
        assert widget.layer.url.endswith(f"?v={version}")
        assert "f001" in widget.valid.value
    finally:
        widget.slider.value = "f003"
    assert widget.layer.url == before


def test_a_colormap_is_in_the_url(tile_archive, tmp_path):
    m = tile_map(cmap="balance", url=SERVICE, archive=tile_archive, cube=tmp_path / "no-cube",
                 cache_dir=tmp_path / "cache")  # fmt: skip
    try:
        assert "/f003/sst/{z}/{x}/{y}.png?cmap=balance&v=" in m.layer.url
    finally:
        m.close()


@pytest.mark.parametrize(
    ("options", "says"),
    [({"field": "mud"}, "no tiles of field 'mud'"), ({"cmap": "rainbowy"}, "unknown colormap"),
     ({"date": "20250101"}, "no files of 20250101"), ({"step": "f100"}, "no step f100")],
)  # fmt: skip
def test_what_does_not_exist_says_so(tile_archive, tmp_path, options, says):
    with pytest.raises(RtofsError, match=says):
        tile_map(url=SERVICE, archive=tile_archive, cache_dir=tmp_path, **options)


def test_an_empty_archive_says_so(tmp_path):
    with pytest.raises(RtofsError, match="no days in the archive"):
        tile_map(url=SERVICE, archive=tmp_path / "archive", cache_dir=tmp_path / "cache")


def test_a_click_on_land_says_where_the_ocean_is(widget):
    assert widget.click_lonlat(10.0, 20.0) is None and widget.series is None
    assert "nearest ocean cell" in widget.series_text.value
    assert widget.series_image.layout.display == "none"  # no plot, no broken image


def test_the_default_url_follows_the_setting_and_the_hub():
    assert dashboard_url(config.load(env={}).dashboard_url, env={}) == SERVICE
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/", "JUPYTERHUB_BASE_URL": "/"}
    assert dashboard_url("", env=hub) == "/services/maps/"
    setting = config.load(env={"RTOFS_DASHBOARD_URL": "https://maps.example/x"}).dashboard_url
    assert dashboard_url(setting, env=hub) == "https://maps.example/x/"


@pytest.mark.network
def test_a_click_shows_the_series_the_service_answers(widget, dashboard):
    widget.click_lonlat(-30.0 + 360.0, 0.0)  # a world copy east of the dateline: wrapped
    r = requests.get(dashboard.url + "api/series.json", params={"lon": -30, "lat": 0},
                     timeout=60)  # fmt: skip
    assert r.status_code == 200
    doc = r.json()
    assert widget.series["points"] == doc["points"] and widget.series["cell"] == doc["cell"]
    assert widget.series["source"] == doc["source"] == "cube"
    assert f"grid j={doc['cell']['j']}, i={doc['cell']['i']}" in widget.series_text.value
    assert (
        widget.series_image.value[:4] == b"\x89PNG" and widget.series_image.layout.display is None
    )


@pytest.mark.network
def test_the_layers_url_fetches_a_tile_from_the_service(dashboard, tile_archive, tmp_path):
    m = tile_map(url=dashboard.url, archive=tile_archive, cube=tmp_path / "no-cube",
                 cache_dir=tmp_path / "cache")  # fmt: skip
    try:
        for step in ("f003", "n024"):
            m.slider.value = step
            r = requests.get(m.layer.url.format(z=0, x=0, y=0), timeout=60)
            assert r.status_code == 200, r.text
            assert r.headers["Content-Type"] == "image/png"
            assert "immutable" in r.headers["Cache-Control"]  # the URL names the file's version
            assert Image.open(io.BytesIO(r.content)).size == (256, 256)
    finally:
        m.close()


# --- in JupyterLab, in a real browser ------------------------------------------------------------


@pytest.fixture
def lab_with_tile_map(kernel_env, tmp_path, dashboard, tile_archive):
    """JupyterLab on loopback (token auth) with a notebook whose map's tiles come from
    ``dashboard``; yields (notebook URL, dashboard)."""
    root = tmp_path / "root"
    root.mkdir()
    cells = [
        "from rtofs_lib.notebook.viewer import tile_map\n\n"
        f"m = tile_map(url={dashboard.url!r}, archive={str(tile_archive)!r},\n"
        f"             cube={str(tile_archive.parent / 'cube')!r}, cache_dir={str(tmp_path)!r},\n"
        "             center=(0.0, -30.0), zoom=2)\nm",
        "import time\n\ntime.sleep(5)  # the browser draws f003's tiles first\n"
        'm.slider.value = "n024"',
    ]
    write_notebook(root / "tiles.ipynb", cells)
    with jupyterlab_at(root, tmp_path / "jupyterlab.log") as (url, token):
        yield f"{url}/lab/tree/tiles.ipynb?token={token}", dashboard


@pytest.mark.slow
@pytest.mark.network
def test_the_map_in_jupyterlab_draws_the_services_tiles_steps_and_clicks(
    lab_with_tile_map, artifacts_dir
):
    from conftest import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (scripts/setup.sh)")
    notebook, dashboard = lab_with_tile_map
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda r: requested.append(r.url))
            run_all_cells(page, notebook)
            page.wait_for_selector(".leaflet-container", timeout=240_000)
            page.wait_for_function(LOADED_TILES + " > 0", arg=[dashboard.url, "f003"],
                                   timeout=120_000)  # fmt: skip
            page.wait_for_timeout(500)  # Leaflet fades tiles in
            page.locator(".leaflet-container").screenshot(
                path=str(artifacts_dir / "tilemap-f003.png"))  # fmt: skip
            # the second cell moves the slider from the kernel: the layer follows
            page.wait_for_function(LOADED_TILES + " > 0", arg=[dashboard.url, "n024"],
                                   timeout=120_000)  # fmt: skip
            page.wait_for_timeout(500)
            page.locator(".leaflet-container").screenshot(
                path=str(artifacts_dir / "tilemap-n024.png"))  # fmt: skip
            # a click on the map's centre (0°, -30°: ocean) shows that point's series
            box = page.locator(".leaflet-container").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function(
                "() => document.querySelector('.leaflet-container').innerText.includes('grid j=')",
                timeout=120_000,
            )
            page.wait_for_function(
                "() => document.querySelector('.rtofs-tilemap-series').naturalWidth > 0",
                timeout=60_000,
            )  # and its plot
            page.locator(".leaflet-container").screenshot(
                path=str(artifacts_dir / "tilemap-click.png"))  # fmt: skip
        finally:
            browser.close()
    lab = notebook.split("/lab/")[0]
    foreign = [u for u in requested if not u.startswith((lab, dashboard.url, "data:", "blob:"))]
    assert not foreign, f"the page asked other places: {foreign[:5]}"
