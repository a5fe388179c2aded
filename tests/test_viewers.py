"""The SST viewer, driven programmatically: every control changes what is shown, correctly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SAMPLE_DATE, VIEWER_DATE_B
from PIL import Image

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import netcdf
from rtofs_lib.fields.grid import Grid
from rtofs_lib.jobs import cubebuild
from rtofs_lib.maps import render
from rtofs_lib.maps.colors import LAND, quantise
from rtofs_lib.maps.decorations import map_box
from rtofs_lib.maps.styles import FieldStyle
from rtofs_lib.notebook import viewer as viewers


@pytest.fixture
def viewer(viewer_archive, viewer_cache, tmp_path):
    v = viewers.SSTViewer(
        viewer_archive, maps=tmp_path / "maps", date=SAMPLE_DATE, cache_dir=viewer_cache
    )
    yield v
    v.close()


def png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def map_pixels(v: viewers.SSTViewer) -> np.ndarray:
    """Palette indices of the map area of the image shown."""
    x, y, w, h = map_box(*v._view)
    return np.asarray(png(v.image.value))[y : y + h, x : x + w]


def nearest_grid_point(lat: np.ndarray, lon: np.ndarray, plat: float, plon: float):
    """(j, i) of the grid point closest to (plat, plon) on the sphere, by brute force."""
    la, lo = np.deg2rad(lat.astype(np.float64)), np.deg2rad(lon.astype(np.float64))
    p = np.deg2rad([plat, plon])
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    q = np.array([np.cos(p[0]) * np.cos(p[1]), np.cos(p[0]) * np.sin(p[1]), np.sin(p[0])])
    d = ((xyz - q[:, None, None]) ** 2).sum(axis=0)
    return np.unravel_index(np.argmin(d), d.shape)


def test_opens_the_day_with_its_steps_and_draws_a_global_map(viewer):
    assert viewer.steps == ["n024", "f001", "f002", "f003"]
    assert viewer.error == ""
    assert viewer.last["source"] == "rendered"
    raster = viewer.last["raster"]
    assert (raster.width, raster.height) == (1500, 708)
    assert png(viewer.image.value).mode == "P"
    assert "n024" in viewer.step_label.value


def test_opens_the_latest_day_by_default(viewer_archive, viewer_cache, tmp_path):
    v = viewers.viewer(viewer_archive, maps=tmp_path, cache_dir=viewer_cache)
    try:
        assert v.day.value == max(SAMPLE_DATE, VIEWER_DATE_B)
    finally:
        v.close()


def test_an_archive_without_days_says_what_to_do(tmp_path):
    with pytest.raises(RtofsError, match=r"no rtofs\.YYYYMMDD day folders.*rtofs sample"):
        viewers.SSTViewer(tmp_path, maps=tmp_path, cache_dir=tmp_path)


def test_moving_the_slider_shows_the_next_step(viewer):
    before = viewer.image.value
    viewer.slider.value = 2
    assert viewer.step == "f002"
    assert viewer.image.value != before
    assert "f002" in viewer.step_label.value
    assert "2026-07-08 02:00" in viewer.step_label.value
    # the map drawn is that step's field
    f = netcdf.read_field(viewer.files()["f002"], "sst")
    expected = render.map_indices(f.values, Grid(f.lat, f.lon), field="sst", raster=viewer.raster())
    np.testing.assert_array_equal(map_pixels(viewer), expected)


def test_changing_the_field_draws_it_from_its_product(viewer):
    viewer.slider.value = 1
    before = viewer.image.value
    viewer.field.value = "ssh"
    assert viewer.error == ""
    assert viewer.last["path"].name == "rtofs_glo_2ds_f001_diag.nc"
    assert viewer.image.value != before
    f = netcdf.read_field(viewer.last["path"], "ssh")
    expected = render.map_indices(f.values, Grid(f.lat, f.lon), field="ssh", raster=viewer.raster())
    np.testing.assert_array_equal(map_pixels(viewer), expected)


def test_temperature_at_depth_offers_the_3dz_steps_and_levels(viewer):
    viewer.field.value = "temperature"
    assert viewer.steps == ["n024", "f024"]
    assert viewer.depth.layout.display is None
    assert 100.0 in [d for _, d in viewer.depth.options]
    surface = viewer.image.value
    viewer.depth.value = 100.0
    assert viewer.image.value != surface
    f = netcdf.read_field(viewer.last["path"], "temperature", depth=100.0)
    expected = render.map_indices(
        f.values, Grid(f.lat, f.lon), field="temperature", raster=viewer.raster()
    )
    np.testing.assert_array_equal(map_pixels(viewer), expected)


def test_current_speed_is_the_magnitude_of_u_and_v(viewer):
    viewer.field.value = "speed"
    path = viewer.last["path"]
    u = netcdf.read_field(path, "u_velocity")
    v = netcdf.read_field(path, "v_velocity", grid=False)
    expected = render.map_indices(
        np.hypot(u.values, v.values), Grid(u.lat, u.lon), field="speed", raster=viewer.raster()
    )
    np.testing.assert_array_equal(map_pixels(viewer), expected)


def test_region_preset_zooms_to_its_box(viewer):
    before = viewer.image.value
    viewer.region.value = "Gulf Stream"
    raster = viewer.last["raster"]
    assert (raster.lon0, raster.lon1, raster.lat0, raster.lat1) == (-80, -50, 30, 45)
    assert viewer.image.value != before
    viewer.size.value = "high"
    assert viewer.last["raster"].width >= raster.width


def test_custom_box_is_drawn_and_a_bad_one_is_explained(viewer):
    viewer.region.value = viewers.CUSTOM
    assert not viewer.box.disabled
    viewer.box.value = "160,-150,-10,20"
    raster = viewer.last["raster"]
    assert (raster.lon0, raster.lon1) == (160, -150)
    shown = viewer.image.value
    viewer.box.value = "160,-150,20"
    assert "bad region" in viewer.error
    assert "bad region" in viewer.status.value
    assert viewer.image.value == shown


def test_colormap_and_range_change_the_colours(viewer):
    before = map_pixels(viewer)
    viewer.range.value = (10.0, 20.0)
    narrow = map_pixels(viewer)
    f = netcdf.read_field(viewer.last["path"], "sst")
    style = FieldStyle("sst", "SST", ("sst",), 10.0, 20.0, "thermal", "°C")
    expected = render.map_indices(f.values, Grid(f.lat, f.lon), field=style, raster=viewer.raster())
    np.testing.assert_array_equal(narrow, expected)
    assert not np.array_equal(before, narrow)
    indices = viewer.image.value
    viewer.cmap.value = "viridis"
    assert png(viewer.image.value).getpalette()[:3] != png(indices).getpalette()[:3]


def test_click_shows_the_series_of_the_grid_point_under_the_pixel(viewer, viewer_archive):
    x, y = viewer.pixel_of(-70.0, 38.0)
    series = viewer.click(x, y)
    assert series is viewer.series
    # independent answer: the pixel centre's nearest grid point, read step by step
    files = viewer.files()
    lat, lon = netcdf.read_grid(files["n024"])
    j, i = nearest_grid_point(lat, lon, series.lat, series.lon)
    assert (series.j, series.i) == (j, i)
    expected = [netcdf.read_field(files[s], "sst", grid=False).values[j, i] for s in files]
    np.testing.assert_array_equal(series.values, np.array(expected, np.float32))
    assert series.steps == ("n024", "f001", "f002", "f003")
    assert series.times[0] == names.valid_time(SAMPLE_DATE, "n024")
    assert png(viewer.series_image.value).size[0] > 300
    assert f"j={j}, i={i}" in viewer.status.value


@pytest.fixture(scope="module")
def viewer_cube(viewer_archive, tmp_path_factory):
    """The viewer archive's prog days (VIEWER_DATE_B, SAMPLE_DATE) in a cube holding sst."""
    cube = tmp_path_factory.mktemp("viewer-cube") / "cube"
    report = cubebuild.build(VIEWER_DATE_B, SAMPLE_DATE, archive=viewer_archive, cube=cube,
                             fields="sst", master="serial")  # fmt: skip
    assert not report.failed
    return cube


@pytest.fixture
def cube_viewer(viewer_archive, viewer_cache, viewer_cube, tmp_path):
    v = viewers.SSTViewer(viewer_archive, maps=tmp_path / "maps", date=SAMPLE_DATE,
                          cache_dir=viewer_cache, cube=viewer_cube)  # fmt: skip
    yield v
    v.close()


def test_click_shows_the_points_whole_series_from_the_cube(cube_viewer, viewer_archive):
    series = cube_viewer.click_lonlat(-70.0, 38.0)
    assert series.origin == "cube"
    files = {(d, s): viewer_archive / names.day_folder(d) / names.compose_name("prog", s)
             for d in (VIEWER_DATE_B, SAMPLE_DATE)
             for s in ("n024", "f001", "f002", "f003", "f024", "f025", "f026", "f027")}  # fmt: skip
    files = {k: p for k, p in files.items() if p.exists()}
    lat, lon = netcdf.read_grid(files[(SAMPLE_DATE, "n024")])
    j, i = nearest_grid_point(lat, lon, series.lat, series.lon)
    assert (series.j, series.i) == (j, i)
    # every valid time of both days once, from the latest cycle (day B's f024-f027 give way)
    valid = sorted({names.valid_time(d, s) for d, s in files})
    assert list(series.times) == valid
    assert series.cycles == (VIEWER_DATE_B,) * 4 + (SAMPLE_DATE,) * 4
    expected = [netcdf.read_field(files[(c, s)], "sst", grid=False).values[j, i]
                for c, s in zip(series.cycles, series.steps, strict=True)]  # fmt: skip
    np.testing.assert_array_equal(series.values, np.array(expected, np.float32))
    assert "8 valid times from the cube" in cube_viewer.status.value
    assert png(cube_viewer.series_image.value).size[0] > 300


def test_click_on_a_field_the_cube_lacks_reads_the_days_files(cube_viewer):
    cube_viewer.field.value = "sss"
    series = cube_viewer.click_lonlat(-70.0, 38.0)
    assert series.origin == "files"
    assert series.steps == ("n024", "f001", "f002", "f003")


def test_click_on_land_with_a_cube_shows_land_from_the_days_files(cube_viewer):
    series = cube_viewer.click_lonlat(10.0, 20.0)  # Sahara
    assert series.origin == "files"
    assert cube_viewer.status.value.endswith("land")


def test_compare_with_a_cube_series_draws_one_series_spanning_both_days(cube_viewer):
    cube_viewer.mode.value = "side"
    series = cube_viewer.click_lonlat(-70.0, 38.0)
    assert series.origin == "cube" and cube_viewer.series_b is None
    assert set(series.cycles) == {VIEWER_DATE_B, SAMPLE_DATE}


def test_click_without_a_cube_reads_the_days_files(viewer):
    assert viewer.click_lonlat(-70.0, 38.0).origin == "files"


def test_click_series_at_depth_reads_that_level(viewer):
    viewer.field.value = "temperature"
    viewer.depth.value = 100.0
    series = viewer.click_lonlat(-30.0, 0.0)
    files = viewer.files()
    expected = [
        netcdf.read_field(files[s], "temperature", depth=100.0, grid=False).values[
            series.j, series.i
        ]
        for s in files
    ]
    np.testing.assert_array_equal(series.values, np.array(expected, np.float32))
    assert series.depth == 100.0


def test_click_off_the_map_changes_nothing(viewer):
    assert viewer.click(2.0, 2.0) is None
    assert viewer.series is None
    assert "off the map" in viewer.status.value


def test_ipyevents_click_event_is_handled_like_a_click(viewer):
    x, y = viewer.pixel_of(-30.0, -20.0)
    # what ipyevents does with the browser's message: call the registered handlers
    viewer._events[0]._handle_mouse_msg(None, {"type": "click", "dataX": x, "dataY": y}, [])
    assert viewer.series is not None
    assert abs(viewer.series.lat - -20.0) < 0.2


def test_side_by_side_shows_day_b_next_to_day_a(viewer):
    viewer.day_b.value = VIEWER_DATE_B
    viewer.mode.value = "side"
    assert list(viewer._images.children) == [viewer.image, viewer.image_b]
    assert viewer.image_b.value and viewer.image_b.value != viewer.image.value
    series = viewer.click_lonlat(-70.0, 38.0)
    assert viewer.series_b.date == VIEWER_DATE_B
    assert viewer.series_b.j == series.j


def test_difference_of_a_day_with_itself_is_zero_everywhere(viewer):
    viewer.day_b.value = SAMPLE_DATE
    viewer.mode.value = "diff"
    pixels = map_pixels(viewer)
    zero = quantise(np.float32([0.0]), -viewers.DIFF_SPAN["sst"], viewers.DIFF_SPAN["sst"])
    assert set(np.unique(pixels)) <= {int(zero[0]), LAND}
    viewer.day_b.value = VIEWER_DATE_B
    assert len(set(np.unique(map_pixels(viewer)))) > 2


def test_compare_pairs_day_b_by_valid_time_by_default(viewer):
    viewer.day_b.value = VIEWER_DATE_B
    viewer.mode.value = "side"
    for k, want in enumerate(["f024", "f025", "f026", "f027"]):
        viewer.slider.value = k
        assert viewer.step_b == want
        assert names.valid_time(VIEWER_DATE_B, want) == names.valid_time(SAMPLE_DATE, viewer.step)
    assert viewer.image_b.value == viewer._render(
        viewer.files(VIEWER_DATE_B)["f027"], viewer.style(), viewer.raster()
    )


def test_compare_can_pair_day_b_by_step(viewer):
    viewer.day_b.value = VIEWER_DATE_B
    viewer.mode.value = "side"
    viewer.pair.value = "step"
    viewer.slider.value = 2
    assert viewer.step_b == viewer.step == "f002"


def test_difference_title_names_both_steps(viewer):
    viewer.day_b.value = VIEWER_DATE_B
    viewer.mode.value = "diff"
    assert viewer.error == ""
    assert viewer.step_b == "f024"


def test_compare_with_a_day_lacking_the_valid_time_says_so(viewer):
    viewer.field.value = "ssh"  # VIEWER_DATE_B has no diag files
    viewer.day_b.value = VIEWER_DATE_B
    viewer.mode.value = "side"
    assert "rtofs.20260707 has no diag file for 2026-07-08 00:00" in viewer.error
    assert "pair by the other rule" in viewer.error


def test_compare_by_step_with_a_day_lacking_the_step_says_so(viewer):
    viewer.field.value = "ssh"
    viewer.day_b.value = VIEWER_DATE_B
    viewer.pair.value = "step"
    viewer.mode.value = "side"
    assert "rtofs.20260707 has no diag file for step n024" in viewer.error


def test_pre_rendered_maps_are_shown_when_present(viewer):
    path = viewer.files()["f001"]
    (png_path,) = render.render_file(
        path, viewer.maps / names.day_folder(SAMPLE_DATE), sizes=("low",),
        cache_dir=viewer.cache_dir,
    )  # fmt: skip
    viewer.slider.value = 1
    assert viewer.last["source"] == "pre-rendered"
    assert viewer.image.value == png_path.read_bytes()
    series = viewer.click_lonlat(-70.0, 38.0)  # pixel mapping of the stored map
    assert series is not None
    viewer.cmap.value = "viridis"  # not what the stored map shows: draw it
    assert viewer.last["source"] == "rendered"


def test_next_steps_are_read_ahead(viewer):
    viewer.wait_prefetch()
    misses = viewer.source.cache.misses
    viewer.slider.value = 1
    viewer.wait_prefetch()
    viewer.slider.value = 2
    assert viewer.source.cache.misses == misses


def test_day_change_keeps_the_step(viewer):
    viewer.slider.value = 2
    viewer.day.value = VIEWER_DATE_B
    assert viewer.step == "f002"
    assert viewer.last["path"].parent.name == names.day_folder(VIEWER_DATE_B)
