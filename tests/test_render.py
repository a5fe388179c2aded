"""The fast map renderer: maps put each value at the right place, in the right colour.

Maps are decoded from the PNGs written to disk; the map area is found from its black
frame, and pixels are looked up by latitude/longitude through the raster the map
claims (:func:`rtofs_lib.maps.raster_for`).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from rtofs_lib.errors import MissingVariableError
from rtofs_lib.fetch import names
from rtofs_lib.fields import netcdf, regrid
from rtofs_lib.fields.grid import Grid
from rtofs_lib.maps import colors, render
from rtofs_lib.maps.rasters import parse_region, raster_for
from rtofs_lib.maps.styles import FIELDS

STYLE = FIELDS["sst"]
SAMPLE_DATE = "20260708"  # as in conftest


# --- helpers -------------------------------------------------------------------------------------


def decode(image_or_path):
    """Return (palette indices (H, W), palette (256, 3)) of a palette PNG or image."""
    image = image_or_path if isinstance(image_or_path, Image.Image) else Image.open(image_or_path)
    assert image.mode == "P", f"expected a palette image, got mode {image.mode}"
    pal = np.array(image.getpalette(), dtype=np.uint8)
    pal = np.pad(pal, (0, 768 - pal.size)).reshape(256, 3)
    return np.asarray(image), pal


def map_area(indices, palette):
    """The map's pixels inside its black frame (rows north to south)."""
    black = (palette[indices] == 0).all(axis=-1)
    rows = np.flatnonzero(black.sum(axis=1) > 0.8 * black.shape[1])
    assert rows.size >= 2, "no frame found"
    top, bottom = rows[0], rows[-1]
    cols = np.flatnonzero(black[top : bottom + 1].all(axis=0))
    left, right = cols[0], cols[-1]
    # the frame may be several pixels thick: step inside it
    while black[top + 1, (left + right) // 2]:
        top += 1
    while black[bottom - 1, (left + right) // 2]:
        bottom -= 1
    while black[(top + bottom) // 2, left + 1]:
        left += 1
    while black[(top + bottom) // 2, right - 1]:
        right -= 1
    return indices[top + 1 : bottom, left + 1 : right]


def pixel(raster, lat, lon):
    """Row and column of the pixel holding (lat, lon) in ``raster``."""
    row = int((raster.lat1 - lat) / (raster.lat1 - raster.lat0) * raster.height)
    col = int(((lon - raster.lon0) % 360) / raster.lon_span * raster.width)
    return row, col


def index_of(value, style=STYLE):
    return int(colors.quantise(np.array([value], np.float32), style.vmin, style.vmax)[0])


def expected_indices(raster, f, style=STYLE):
    """Palette indices of ``f(lat, lon)`` at the raster's pixel centres."""
    lat, lon = np.meshgrid(raster.lats(), raster.lons(), indexing="ij")
    return colors.quantise(f(lat, lon).astype(np.float32), style.vmin, style.vmax).astype(int)


def render_one(path, out, cache, **kw):
    written = render.render_file(path, out, cache_dir=cache, **kw)
    return {p.name: p for p in written}


def smooth(lat, lon):
    """A field smooth on the sphere (no seam, no pole singularity), 3…27 °C."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return 15 + 8 * np.cos(la) * np.cos(lo) + 4 * np.cos(la) * np.sin(lo) + 2 * np.sin(la)


def warm_patch(lat0, lon0, radius=4.0, warm=30.0, cold=10.0):
    def f(lat, lon):
        d = np.hypot(lat - lat0, ((lon - lon0 + 180) % 360 - 180) * np.cos(np.deg2rad(lat0)))
        return np.where(d < radius, warm, cold)

    return f


# --- placement -----------------------------------------------------------------------------------


def test_warm_patch_lands_at_its_pixel_on_the_low_map(write_prog, render_cache, tmp_path):
    path = write_prog(warm_patch(30, -40))
    png = render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"]
    area = map_area(*decode(png))
    raster = raster_for(None, "low")
    assert area.shape == (raster.height, raster.width)
    assert area[pixel(raster, 30, -40)] == index_of(30)
    for lat, lon in [(30, -70), (30, -10), (0, -40), (60, -40), (30, 140)]:
        assert area[pixel(raster, lat, lon)] == index_of(10), (lat, lon)


def test_north_is_up(write_prog, render_cache, tmp_path):
    path = write_prog(lambda lat, lon: np.where(lat > 0, 30.0, 0.0))
    area = map_area(
        *decode(render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"])
    )
    raster = raster_for(None, "low")
    assert area[pixel(raster, 45, -150)] == index_of(30)
    assert area[pixel(raster, -45, -150)] == index_of(0)


def test_land_pixels_have_the_land_colour(write_prog, render_cache, tmp_path):
    path = write_prog(
        lambda lat, lon: np.where((lon > 10) & (lon < 40) & (lat > 0) & (lat < 40), np.nan, 20.0)
    )
    indices, pal = decode(render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"])
    area = map_area(indices, pal)
    raster = raster_for(None, "low")
    assert tuple(pal[area[pixel(raster, 20, 25)]]) == colors.LAND_RGB
    assert tuple(pal[area[pixel(raster, 20, 60)]]) != colors.LAND_RGB
    # land is not a colour of the colormap
    cmap = pal[: colors.N_COLORS].astype(int)
    assert np.abs(cmap - np.array(colors.LAND_RGB)).sum(axis=1).min() > 30


def test_no_holes_or_smears_at_the_seam_the_dateline_or_in_the_arctic(
    write_prog, render_cache, tmp_path
):
    path = write_prog(smooth)
    area = map_area(
        *decode(render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"])
    )
    raster = raster_for(None, "low")
    lats = raster.lats()
    covered = lats > -78  # the grid ends at 78.64°S; north of it all is ocean here
    got = area[covered].astype(int)
    assert not (got == colors.LAND).any(), "land-coloured holes over an all-ocean field"
    want = expected_indices(raster, smooth)[covered]
    # nearest neighbour on the 0.8° small grid: a few palette steps at most
    assert np.abs(got - want).max() <= 4
    seam = pixel(raster, 0, 74.16)[1]  # where the grid's first column meets its last
    assert np.abs(got[:, seam - 2 : seam + 3] - want[:, seam - 2 : seam + 3]).max() <= 4
    arctic = lats[covered] > 60
    assert np.abs(got[arctic] - want[arctic]).max() <= 4


def test_no_data_south_of_the_grid_is_drawn_as_land(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    indices, pal = decode(render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"])
    area = map_area(indices, pal)
    raster = raster_for(None, "low")
    assert (area[raster.lats() < -79.5] == colors.LAND).all()


# --- regions -------------------------------------------------------------------------------------


def test_region_crop_covers_the_box(write_prog, render_cache, tmp_path):
    box = (-60.0, -20.0, 10.0, 50.0)
    path = write_prog(smooth)
    pngs = render_one(path, tmp_path, render_cache, sizes=("low",), region=box)
    area = map_area(*decode(pngs["sst.-60_-20_10_50.low.png"]))
    raster = raster_for(box, "low")
    assert area.shape == (raster.height, raster.width)
    assert raster.lats()[0] < 50 < raster.lats()[0] + 0.1
    assert np.abs(area.astype(int) - expected_indices(raster, smooth)).max() <= 4


def test_dateline_crossing_box(write_prog, render_cache, tmp_path):
    box = (160.0, -160.0, -20.0, 20.0)
    path = write_prog(warm_patch(0, 175, radius=3))
    area = map_area(*decode(render_one(path, tmp_path, render_cache, region=box, sizes=("low",))[
        "sst.160_-160_-20_20.low.png"
    ]))  # fmt: skip
    raster = raster_for(box, "low")
    assert raster.lon_span == 40
    assert area[pixel(raster, 0, 175)] == index_of(30)
    assert area[pixel(raster, 0, -170)] == index_of(10)
    assert area[pixel(raster, 0, 165)] == index_of(10)
    assert not (area == colors.LAND).any()


def test_high_map_is_native_resolution(write_prog, render_cache, tmp_path):
    box = (-100.0, 60.0, 0.0, 60.0)
    path = write_prog(warm_patch(30, -40))
    pngs = render_one(path, tmp_path, render_cache, region=box)
    low = map_area(*decode(pngs["sst.-100_60_0_60.low.png"]))
    high = map_area(*decode(pngs["sst.-100_60_0_60.high.png"]))
    assert low.shape == (562, 1500)  # 160° in 1500 px
    assert high.shape == (750, 2000)  # 160° x 60° at 0.08°
    assert high[pixel(raster_for(box, "high"), 30, -40)] == index_of(30)


def test_high_map_is_never_coarser_than_the_low_one():
    box = (-60.0, -20.0, 10.0, 50.0)  # small: the low map is already finer than 0.08°
    assert raster_for(box, "high") == raster_for(box, "low")


@pytest.mark.slow
def test_global_high_map_is_4500_pixels_wide(write_prog, render_cache, tmp_path):
    path = write_prog(warm_patch(30, -40))
    area = map_area(
        *decode(render_one(path, tmp_path, render_cache, sizes=("high",))["sst.high.png"])
    )
    assert area.shape == (2125, 4500)
    assert area[pixel(raster_for(None, "high"), 30, -40)] == index_of(30)


# --- the image -----------------------------------------------------------------------------------


def test_png_is_palette_mode_with_the_field_palette(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    png = render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"]
    assert png == tmp_path / "rtofs_glo_2ds_f024_prog" / "sst.low.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.mode == "P"
        np.testing.assert_array_equal(decode(im)[1], colors.palette("sst"))


def test_decorations_colorbar_gradient_and_title(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    indices, pal = decode(render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"])
    area = map_area(indices, pal)
    h = area.shape[0]
    map_top = next(r for r in range(indices.shape[0]) if (indices[r] == colors.INK).sum() > 1000)
    below = indices[map_top + h + 2 :]
    # a row of the colorbar: the whole colormap, left to right, in one increasing run
    bar_rows = [r for r in below if np.unique(r[r < colors.N_COLORS]).size >= 200]
    assert bar_rows, "no colorbar gradient below the map"
    run = bar_rows[0][bar_rows[0] < colors.N_COLORS]
    assert (np.diff(run.astype(int)) >= 0).all() and run[0] == 0 and run[-1] == 239
    # text above the map (title, valid time) and below it (ticks, units)
    above = indices[:map_top]
    assert ((above > colors.BACKGROUND) & (above < colors.INK + 1)).sum() > 500
    assert (below > colors.BACKGROUND).sum() > 500


def test_the_valid_time_text_changes_with_the_file(write_prog, render_cache, tmp_path):
    a = write_prog(smooth, step="f024")
    b = write_prog(smooth, step="f048")
    ia, _ = decode(render_one(a, tmp_path / "a", render_cache, sizes=("low",))["sst.low.png"])
    ib, _ = decode(render_one(b, tmp_path / "b", render_cache, sizes=("low",))["sst.low.png"])
    diff = np.argwhere(ia != ib)
    assert diff.size, "the per-file text is missing"
    assert diff[:, 0].max() < 60, "only the header line should differ between the two maps"


def test_speed_is_computed_from_u_and_v(write_prog, render_cache, render_grid, tmp_path):
    shape = render_grid[0].shape
    u = np.full(shape, 0.3, np.float32)
    v = np.full(shape, 0.4, np.float32)
    path = write_prog(smooth, u_velocity=u, v_velocity=v)
    png = render_one(path, tmp_path, render_cache, fields=("speed",), sizes=("low",))
    indices, pal = decode(png["speed.low.png"])
    area = map_area(indices, pal)
    raster = raster_for(None, "low")
    assert area[pixel(raster, 0, -150)] == index_of(0.5, FIELDS["speed"])
    np.testing.assert_array_equal(pal, colors.palette("speed"))


def test_render_array_matches_map_indices(write_prog, render_cache):
    path = write_prog(warm_patch(-20, 100))
    data = netcdf.read_field(path, "sst")
    box = (80, 120, -40, 0)
    grid = Grid(data.lat, data.lon, cache_dir=render_cache)
    image = render.render_array(data.values, grid, field="sst", region=box)
    bare = render.map_indices(data.values, grid, field="sst", region=box)
    np.testing.assert_array_equal(map_area(*decode(image)), bare)
    assert bare[pixel(raster_for(box, "low"), -20, 100)] == index_of(30)


def test_quantise_clips_and_marks_nan_as_land():
    got = colors.quantise(np.array([-50, -2, 14.9, 32, 99, np.nan], np.float32), -2, 32)
    assert got.tolist() == [0, 0, 119, 239, 239, colors.LAND]


@pytest.mark.parametrize(
    "bad", ["1,2,3", "a,b,c,d", "0,10,50,40", "0,10,-95,0", "0,400,0,10"],
    ids=["three", "words", "lat-order", "lat-range", "lon-range"],
)  # fmt: skip
def test_bad_region_is_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match=r"LON0,LON1,LAT0,LAT1|LAT0|longitudes"):
        parse_region(bad)


def test_missing_field_names_the_file(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    with pytest.raises(MissingVariableError, match=path.name):
        render.render_file(path, tmp_path, fields=("ssh",), cache_dir=render_cache)


# --- files ---------------------------------------------------------------------------------------


def test_atomic_write_leaves_no_temporary_file(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    render_one(path, tmp_path, render_cache, sizes=("low",))
    folder = tmp_path / path.stem
    assert sorted(p.name for p in folder.iterdir()) == ["sst.low.png"]


def test_maps_are_readable_by_others_as_the_umask_allows(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    old = os.umask(0o022)
    try:
        png = render_one(path, tmp_path, render_cache, sizes=("low",))["sst.low.png"]
    finally:
        os.umask(old)
    assert stat.S_IMODE(png.stat().st_mode) == 0o644


def test_failed_write_leaves_no_temporary_file(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    blocker = tmp_path / path.stem / "sst.low.png"
    blocker.mkdir(parents=True)  # a folder where the PNG should go: the rename fails
    (blocker / "keep").touch()
    with pytest.raises(OSError):
        render_one(path, tmp_path, render_cache, sizes=("low",))
    assert sorted(p.name for p in blocker.parent.iterdir()) == ["sst.low.png"]


def _cli(*args, env_cache):
    env = {**os.environ, "RTOFS_CACHE": str(env_cache)}
    return subprocess.run(
        [sys.executable, "-m", "rtofs_lib", "render", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def test_cli_renders_good_files_and_names_the_bad_one(write_prog, render_cache, tmp_path):
    good1 = write_prog(smooth, step="f001")
    good2 = write_prog(smooth, step="f002")
    bad = tmp_path / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f003_prog.nc"
    bad.parent.mkdir()
    bad.write_text("<html><body>404 Not Found</body></html>")
    out = tmp_path / "maps"
    proc = _cli(good1, bad, good2, "--out", out, "--size", "low", env_cache=render_cache)
    assert proc.returncode == 3, proc.stderr
    assert str(bad) in proc.stderr
    for good in (good1, good2):
        assert (out / good.stem / "sst.low.png").exists()
    assert not (out / bad.stem).exists()


def test_cli_fails_when_every_file_is_bad(tmp_path, render_cache):
    bad = tmp_path / "rtofs_glo_2ds_f003_prog.nc"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    proc = _cli(bad, "--out", tmp_path / "maps", env_cache=render_cache)
    assert proc.returncode == 1
    assert bad.name in proc.stderr


def test_cli_refuses_a_bad_region_as_usage_error(tmp_path, render_cache):
    proc = _cli(tmp_path / "x.nc", "--out", tmp_path, "--region", "1,2", env_cache=render_cache)
    assert proc.returncode == 2
    assert "LON0,LON1,LAT0,LAT1" in proc.stderr


# --- for people ----------------------------------------------------------------------------------


def test_sample_maps_for_people_to_look_at(small_day, render_cache, artifacts_dir):
    """Writes maps of the sample day under test-artifacts/render/ (checked by eye)."""
    path = sorted((small_day / names.day_folder(SAMPLE_DATE)).glob("*f001*"))[0]
    out = artifacts_dir / "render"
    written = render.render_file(path, out, fields=("sst", "sss", "speed"), cache_dir=render_cache)
    written += render.render_file(
        path, out, region="-100,-30,10,55", sizes=("low",), cache_dir=render_cache
    )
    assert all(p.stat().st_size > 10_000 for p in written)


def test_a_new_cache_folder_learns_a_grid_known_in_memory(write_prog, render_cache, tmp_path):
    path = write_prog(smooth)
    render.render_file(path, tmp_path / "m1", sizes=("low",), cache_dir=render_cache)
    fresh = tmp_path / "fresh-cache"
    render.render_file(path, tmp_path / "m2", sizes=("low",), cache_dir=fresh)
    (note,) = fresh.glob("gridsig-*.txt")  # a fresh process there need not read the grid
    assert note.read_text().split()[0] == regrid.grid_key(*netcdf.read_grid(path))
