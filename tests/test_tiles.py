"""Map tiles from the native grid: the right cell's colour everywhere, caches, and the 404s.

The tile functions (:mod:`rtofs_lib.maps.tiles`), the service behind the dashboard's map
(:class:`rtofs_lib.hub.tileserver.TileService`), and ``rtofs dashboard serve`` as a real
process answering HTTP.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests
from conftest import SAMPLE_DATE, DashboardServer, day_file, land
from PIL import Image

from rtofs_lib.fields.grid import Grid
from rtofs_lib.fields.netcdf import HDF5_LOCK, read_field
from rtofs_lib.hub.tileserver import TileService
from rtofs_lib.maps import tiles
from rtofs_lib.maps.colors import LAND_RGB, palette, quantise
from rtofs_lib.testing import sample

pytestmark = pytest.mark.network


def pixel_lonlat(z: int, x: int, y: int, px: int, py: int) -> tuple[float, float]:
    """Longitude and latitude of the centre of pixel ``px, py`` of tile ``z/x/y``."""
    world = tiles.TILE << z
    lon = (x * tiles.TILE + px + 0.5) / world * 360.0 - 180.0
    lat = math.degrees(
        math.atan(math.sinh(math.pi * (1 - 2 * (y * tiles.TILE + py + 0.5) / world)))
    )
    return lon, lat


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int, int]:
    """``(x, y, px, py)``: the tile at ``z`` holding lon/lat, and the pixel in it."""
    col, row = tiles.lonlat_pixel(lon, lat, z)
    return col // tiles.TILE, row // tiles.TILE, col % tiles.TILE, row % tiles.TILE


def rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.fixture(scope="module")
def service(tile_archive, tmp_path_factory):
    root = tmp_path_factory.mktemp("tile-service")
    s = TileService(tile_archive, cache_dir=root / "cache", tile_cache=root / "tiles")
    yield s
    s.close()


@pytest.fixture(scope="module")
def f001(tile_archive):
    path = day_file(tile_archive, SAMPLE_DATE, "f001")
    return path, read_field(path, "sst", grid=False).values


# --- drawing ----------------------------------------------------------------------------------


def test_the_deepest_zoom_is_the_first_whose_pixels_are_finer_than_the_grid(service, f001):
    grid = Grid.of_file(f001[0], service.cache_dir)
    z = tiles.max_zoom(grid.shape)
    cell = 360.0 / grid.shape[1]
    assert 360.0 / (tiles.TILE << z) < cell <= 360.0 / (tiles.TILE << (z - 1))


@pytest.mark.parametrize(
    "where",
    [(179.9, 10.0), (-179.9, 10.0), (74.3, -20.0), (73.9, -20.0), (0.0, 80.0), (100.0, 84.0),
     (-30.0, 0.0), (-160.0, 70.0)],
    ids=["east-of-dateline", "west-of-dateline", "east-of-74E-seam", "west-of-74E-seam",
         "arctic", "arctic-far-north", "atlantic", "bering"],
)  # fmt: skip
def test_a_pixel_shows_the_colour_of_the_grid_cell_nearest_its_centre(service, f001, where):
    path, values = f001
    grid = Grid.of_file(path, service.cache_dir)
    z = tiles.max_zoom(grid.shape)
    x, y, px, py = tile_of(*where, z)
    png, _ = service.tile(SAMPLE_DATE, "f001", "sst", z, x, y)
    lon, lat = pixel_lonlat(z, x, y, px, py)
    ((j, i),) = grid.nearest(lon, lat)
    value = values[j, i]
    want = (
        LAND_RGB
        if np.isnan(value)
        else tuple(palette("sst")[quantise(np.float32([value]), -2, 32)[0]])
    )
    assert tuple(rgba(png)[py, px]) == (*want, 255), (where, (j, i), value)


def test_the_world_has_no_empty_strip_north_of_the_grids_southern_edge(service, f001):
    """Every tile of the deepest zoom, joined: across the dateline and over the Arctic fold,
    every pixel north of the grid's edge has a colour; only the south of the grid is clear."""
    path, _ = f001
    grid = Grid.of_file(path, service.cache_dir)
    z = tiles.max_zoom(grid.shape)
    n = 1 << z
    world = np.concatenate(
        [np.concatenate([rgba(service.tile(SAMPLE_DATE, "f001", "sst", z, x, y)[0])
                         for x in range(n)], axis=1) for y in range(n)], axis=0
    )  # fmt: skip
    alpha = world[..., 3]
    rows = np.array([pixel_lonlat(z, 0, 0, 0, r)[1] for r in range(alpha.shape[0])])
    south = float(np.nanmin(grid.lat))
    assert (alpha[rows > south + 1.0] == 255).all()
    assert (alpha[rows < south - 2.0] == 0).all()
    assert (world[0, :, :3] != 0).any() and (alpha[:, 0] == alpha[:, -1]).all()


def test_a_lower_zoom_shows_the_warm_tropics_and_land(service, f001):
    png, _ = service.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0)
    image = rgba(png)
    _, _, px, py = tile_of(-30.0, 0.0, 0)  # equatorial Atlantic: warm
    warm = palette("sst")[quantise(np.float32([26.0]), -2, 32)[0]]
    assert np.abs(image[py, px, :3].astype(int) - warm.astype(int)).max() < 60
    _, _, px, py = tile_of(20.0, 10.0, 0)  # Sahel: land
    assert tuple(image[py, px]) == (*LAND_RGB, 255)


def test_another_colormap_draws_the_same_values_in_its_colours(service, f001):
    png, _ = service.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0, cmap="haline")
    own, _ = service.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0)
    index = np.asarray(Image.open(io.BytesIO(png)))
    assert np.array_equal(index, np.asarray(Image.open(io.BytesIO(own))))
    assert rgba(png)[..., :3].tolist() != rgba(own)[..., :3].tolist()


# --- caches -----------------------------------------------------------------------------------


def test_a_tile_drawn_once_is_served_from_memory(service):
    before = dict(service.stats)
    a, _ = service.tile(SAMPLE_DATE, "f002", "sst", 1, 1, 0)
    b, _ = service.tile(SAMPLE_DATE, "f002", "sst", 1, 1, 0)
    assert a == b
    assert service.stats["drawn"] == before["drawn"] + 1
    assert service.stats["memory"] == before["memory"] + 1


def test_a_new_service_serves_a_finished_steps_tiles_from_disk(service, tile_archive):
    png, version = service.tile(SAMPLE_DATE, "f003", "sst", 1, 0, 1)
    fresh = TileService(tile_archive, cache_dir=service.cache_dir, tile_cache=service.tile_cache)
    try:
        again, same = fresh.tile(SAMPLE_DATE, "f003", "sst", 1, 0, 1)
        assert (again, same) == (png, version)
        assert fresh.stats == {"drawn": 0, "memory": 0, "disk": 1}
    finally:
        fresh.close()


def test_a_file_noaa_replaced_gets_new_tiles(tile_archive, tmp_path):
    import netCDF4

    archive = tmp_path / "archive"
    shutil.copytree(tile_archive, archive)
    s = TileService(archive, cache_dir=tmp_path / "cache", tile_cache=tmp_path / "tiles")
    try:
        old, v1 = s.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0)
        warmer = tmp_path / "rtofs_glo_2ds_f001_prog.nc"
        shutil.copyfile(day_file(tile_archive, SAMPLE_DATE, "f001"), warmer)
        with HDF5_LOCK, netCDF4.Dataset(warmer, "a") as nc:  # the read-ahead thread reads too
            nc["sst"][:] = nc["sst"][:] + 3.0
        land(archive, warmer)
        new, v2 = s.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0)
        assert v1 != v2 and old != new
    finally:
        s.close()


def test_a_steps_tile_reads_the_next_steps_field_ahead(tile_archive, tmp_path):
    s = TileService(tile_archive, cache_dir=tmp_path / "cache")
    try:
        s.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0)
        s._ahead.submit(lambda: None).result()  # the read-ahead thread is done
        nxt = s.source.key(day_file(tile_archive, SAMPLE_DATE, "f002"), "sst", None)
        assert s.source.cache.peek(nxt) is not None
        hits = s.source.cache.hits
        s.tile(SAMPLE_DATE, "f002", "sst", 0, 0, 0)  # (and reads f003 ahead)
        assert s.source.cache.hits == hits + 1  # f002 was not read again
    finally:
        s.close()


def test_a_viewports_tiles_asked_at_once_read_their_field_once(tile_archive, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    s = TileService(tile_archive, cache_dir=tmp_path / "cache")
    try:
        s.tile(SAMPLE_DATE, "f001", "sst", 0, 0, 0)  # the grid and its index, once
        s._ahead.submit(lambda: None).result()
        misses = s.source.cache.misses
        wanted = [(z, x, y) for z in (0, 1) for x in range(1 << z) for y in range(1 << z)]
        with ThreadPoolExecutor(len(wanted)) as pool:  # f003: the last step, nothing ahead
            pngs = list(pool.map(lambda t: s.tile(SAMPLE_DATE, "f003", "sst", *t)[0], wanted))
        assert all(p.startswith(b"\x89PNG") for p in pngs)
        assert s.source.cache.misses == misses + 1
    finally:
        s.close()


def test_a_tile_cache_it_cannot_write_leaves_tiles_in_memory(tile_archive, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    s = TileService(tile_archive, cache_dir=tmp_path / "cache", tile_cache=blocker / "tiles")
    try:
        png, _ = s.tile(SAMPLE_DATE, "n024", "sst", 0, 0, 0)
        assert png.startswith(b"\x89PNG") and s.stats["drawn"] == 1
        assert "kept in memory only" in caplog.text and str(blocker) in caplog.text
        assert s.tile(SAMPLE_DATE, "n024", "sst", 0, 0, 0)[0] == png and s.stats["memory"] == 1
    finally:
        s.close()


# --- HTTP: rtofs dashboard serve --------------------------------------------------------------


def test_a_tile_is_a_256_pixel_png_that_the_browser_may_keep(dashboard):
    url = dashboard.url + f"tiles/{SAMPLE_DATE}/f001/sst/1/0/0.png"
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (256, 256)
    assert r.headers["Cache-Control"] == "public, max-age=60"
    assert (
        requests.get(url, headers={"If-None-Match": r.headers["Etag"]}, timeout=30).status_code
        == 304
    )
    version = r.headers["Etag"].strip('"').split("-")[0]
    pinned = requests.get(url, params={"v": version}, timeout=30)
    assert pinned.headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tiles/2026070/f001/sst/0/0/0.png", "bad date"),
        ("tiles/20250101/f001/sst/0/0/0.png", "no f001 file of 20250101"),
        (f"tiles/{SAMPLE_DATE}/f099/sst/0/0/0.png", "no f099 file"),
        (f"tiles/{SAMPLE_DATE}/x001/sst/0/0/0.png", "x001"),
        (f"tiles/{SAMPLE_DATE}/f001/mud/0/0/0.png", "no tiles of field 'mud'"),
        (f"tiles/{SAMPLE_DATE}/f001/sst/0/0/0.png?cmap=jet2", "unknown colormap 'jet2'"),
        (f"tiles/{SAMPLE_DATE}/f001/sst/9/0/0.png", "zoom 9 is not served"),
        (f"tiles/{SAMPLE_DATE}/f001/sst/1/2/0.png", "outside the world"),
        (f"tiles/{SAMPLE_DATE}/f001/sst/1/0/-1.png", "outside the world"),
        ("api/palette/mud.json", "no tiles of field 'mud'"),
        ("api/series.json?lon=0&lat=95", "latitude 95"),
        ("api/series.json?lon=0&lat=-85", "outside the grid"),
        ("api/series.json?lon=10&lat=20&date=20250101", "no files of 20250101"),
    ],
)
def test_what_does_not_exist_gets_a_404_that_says_what(dashboard, path, says):
    r = requests.get(dashboard.url + path, timeout=30)
    assert r.status_code == 404, r.text
    assert says in r.text


def test_a_series_request_without_a_point_gets_a_400_that_says_how(dashboard):
    r = requests.get(dashboard.url + "api/series.json?lon=west", timeout=30)
    assert r.status_code == 400 and "give lon and lat" in r.json()["error"]


def test_a_click_on_land_names_the_nearest_ocean_cell(dashboard):
    r = requests.get(dashboard.url + "api/series.json", params={"lon": 10, "lat": 20}, timeout=60)
    assert r.status_code == 404
    assert "is on land; the nearest ocean cell is" in r.json()["error"]


def test_a_points_series_comes_from_the_cube_when_it_holds_the_point(dashboard, f001):
    r = requests.get(dashboard.url + "api/series.json", params={"lon": -30, "lat": 0}, timeout=60)
    doc = r.json()
    assert r.status_code == 200 and doc["source"] == "cube"
    assert [p["valid_time"][11:13] for p in doc["points"]] == ["00", "01", "02", "03"]
    j, i = doc["cell"]["j"], doc["cell"]["i"]
    assert doc["points"][1]["value"] == round(float(f001[1][j, i]), 4)


def test_a_field_the_cube_lacks_comes_from_the_days_files(dashboard, tile_archive):
    r = requests.get(dashboard.url + "api/series.json",
                     params={"lon": -30, "lat": 0, "field": "sss"}, timeout=60)  # fmt: skip
    doc = r.json()
    assert r.status_code == 200 and doc["source"] == "files" and len(doc["points"]) == 4
    sss = read_field(day_file(tile_archive, SAMPLE_DATE, "f002"), "sss", grid=False).values
    assert doc["points"][2]["value"] == round(float(sss[doc["cell"]["j"], doc["cell"]["i"]]), 4)


def test_the_layers_list_the_day_its_steps_fields_and_deepest_zoom(dashboard):
    doc = requests.get(dashboard.url + "api/layers.json", timeout=30).json()
    (day,) = doc["days"]
    assert day["date"] == SAMPLE_DATE
    assert [s["step"] for s in day["steps"]] == ["n024", "f001", "f002", "f003"]
    assert doc["max_zoom"] == 1 and doc["fields"]["sst"]["range"] == [-2.0, 32.0]
    pal = requests.get(dashboard.url + "api/palette/sst.json?cmap=haline", timeout=30).json()
    assert len(pal["colors"]) == 240 and pal["cmap"] == "haline"


def test_a_file_landing_becomes_a_step_of_the_layers_and_a_bad_one_a_404(tile_archive, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(tile_archive, archive)
    server = DashboardServer(tmp_path, archive).start()
    try:
        (f004,) = sample.write_sample(tmp_path / "new", SAMPLE_DATE, steps="f004", grid="small")
        land(archive, f004)
        cut = day_file(tile_archive, SAMPLE_DATE, "f002").read_bytes()[:100_000]
        (tmp_path / "cut.nc").write_bytes(cut)
        land(archive, tmp_path / "cut.nc", name="rtofs_glo_2ds_f005_prog.nc")
        doc = requests.get(server.url + "api/layers.json", timeout=30).json()
        assert [s["step"] for s in doc["days"][0]["steps"]][-2:] == ["f004", "f005"]
        ok = requests.get(server.url + f"tiles/{SAMPLE_DATE}/f004/sst/0/0/0.png", timeout=30)
        assert ok.status_code == 200
        bad = requests.get(server.url + f"tiles/{SAMPLE_DATE}/f005/sst/0/0/0.png", timeout=30)
        assert bad.status_code == 404 and "rtofs_glo_2ds_f005_prog.nc" in bad.text
        assert requests.get(server.url + f"tiles/{SAMPLE_DATE}/f004/sst/1/1/1.png", timeout=30).ok
    finally:
        server.stop()


def test_the_dashboard_command_refuses_an_address_other_than_loopback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "rtofs_lib", "dashboard", "serve", "--ip", "0.0.0.0",
         "--archive", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0 and "not a loopback address" in r.stderr
