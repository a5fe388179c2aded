"""Nearest-neighbour regridding from the tripolar grid to lon/lat rasters, with its caches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rtofs_lib.fields import cachefile, reader, regrid
from rtofs_lib.fields.grid import Grid, clear_memory
from rtofs_lib.fields.regrid import Raster, apply, grid_key


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory()
    yield
    clear_memory()


def get_index(lat, lon, raster, cache_dir=None):
    """The raster index of a grid, as every caller gets it: through :class:`Grid`."""
    return Grid(lat, lon, cache_dir=cache_dir).index(raster).index


def _wrap(lon):
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def _cell_deg(lat, lon):
    """Largest grid spacing in degrees along x in the Mercator band (a generous tolerance)."""
    return float(np.abs(np.diff(lon[0].astype(np.float64))).max())


# --- Raster ---------------------------------------------------------------------------------------


def test_global_raster_is_north_up_with_pixel_centres():
    r = Raster.global_(360)
    assert (r.width, r.height) == (360, 170)
    assert r.lats()[0] == pytest.approx(89.5)
    assert (np.diff(r.lats()) < 0).all()
    assert r.lons()[0] == pytest.approx(-179.5)
    assert (np.diff(r.lons()) > 0).all()


def test_dateline_box_runs_east_from_lon0_to_lon1():
    r = Raster.box((170, -170, -10, 10), 0.5)
    assert (r.width, r.height) == (40, 40)
    assert r.lons()[0] == pytest.approx(170.25)
    assert r.lons()[-1] == pytest.approx(-170.25)
    assert r.extent == (170.0, 190.0, -10.0, 10.0)


@pytest.mark.parametrize(
    "args", [(0, 10, 10, 5, 4, 4), (0, 10, -91, 5, 4, 4), (0, 10, 0, 5, 0, 4)], ids=str
)
def test_bad_raster_is_refused(args):
    with pytest.raises(ValueError, match="bad raster"):
        Raster(*args)


def test_raster_keys_differ_by_box_and_size():
    keys = {Raster.global_(360).key, Raster.global_(720).key, Raster.box((0, 10, 0, 10), 1).key}
    assert len(keys) == 3


# --- geolocation ----------------------------------------------------------------------------------


def test_a_known_point_lands_in_its_pixel(small_grid):
    lat, lon = small_grid
    j, i = np.unravel_index(
        np.argmin((lat - 20.0) ** 2 + (_wrap(lon) + 40.0) ** 2), lat.shape
    )  # a Mercator-band point near 20N 40W
    plat, plon = float(lat[j, i]), float(_wrap(lon[j, i]))
    values = np.zeros(lat.shape, np.float32)
    values[j, i] = 1.0
    raster = Raster.box((plon - 3, plon + 3, plat - 3, plat + 3), 0.1)
    image = apply(values, get_index(lat, lon, raster))
    row = int((raster.lat1 - plat) // 0.1)
    col = int((plon - raster.lon0) // 0.1)
    assert image[row, col] == 1.0
    rows, cols = np.nonzero(image == 1.0)
    assert abs(raster.lats()[rows].mean() - plat) < 0.5
    assert abs(raster.lons()[cols].mean() - plon) < 0.5


def test_regridded_latitude_follows_the_raster_rows_north_up(small_grid):
    lat, lon = small_grid
    raster = Raster.global_(360)
    image = apply(lat, get_index(lat, lon, raster))
    inside = ~np.isnan(image)
    expected = np.broadcast_to(raster.lats()[:, None], image.shape)
    assert np.abs(image[inside] - expected[inside]).max() < _cell_deg(lat, lon)


def test_regridded_longitude_follows_the_raster_columns(small_grid):
    lat, lon = small_grid
    raster = Raster.box((-180, 180, -60, 45), 1.0)  # the Mercator band
    image = apply(_wrap(lon), get_index(lat, lon, raster))
    expected = np.broadcast_to(raster.lons()[None, :], image.shape)
    assert np.abs(_wrap(image - expected)).max() < _cell_deg(lat, lon)


SEAM_BOXES = {
    "lon-0-360": (-5, 5, -40, 40),
    "grid-column-seam-74E": (70, 78, -40, 40),
    "dateline-170-to-minus170": (170, -170, -40, 40),
}


@pytest.mark.parametrize("box", SEAM_BOXES.values(), ids=SEAM_BOXES.keys())
def test_boxes_across_seams_have_no_holes(small_grid, box):
    lat, lon = small_grid
    raster = Raster.box(box, 0.1)
    index = get_index(lat, lon, raster)
    assert (index >= 0).all()
    image = apply(_wrap(lon), index)
    expected = np.broadcast_to(raster.lons()[None, :], image.shape)
    assert np.abs(_wrap(image - expected)).max() < _cell_deg(lat, lon)


def _unit(lat, lon):
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def test_arctic_patch_has_no_holes_up_to_the_pole(small_grid):
    lat, lon = small_grid
    assert lat[-1].max() > 89.9  # the tripolar top row crosses the pole
    raster = Raster.box((-180, 180, 47, 90), 0.1)
    index = get_index(lat, lon, raster)
    assert (index >= 0).all()


def test_arctic_patch_pixels_take_a_grid_point_within_one_cell(small_grid):
    lat, lon = small_grid
    raster = Raster.box((-180, 180, 47, 90), 0.1)
    index = get_index(lat, lon, raster)
    plat, plon = np.meshgrid(raster.lats(), raster.lons(), indexing="ij")
    cosang = (_unit(plat, plon) * _unit(lat.ravel()[index], lon.ravel()[index])).sum(axis=-1)
    angle = np.rad2deg(np.arccos(np.clip(cosang, -1.0, 1.0)))
    assert angle.max() < _cell_deg(lat, lon)


def test_south_of_the_grid_is_nan(small_grid):
    lat, lon = small_grid
    raster = Raster.box((-180, 180, -90, -60), 0.25)  # the grid stops near -78.6
    image = apply(np.ones(lat.shape, np.float32), get_index(lat, lon, raster))
    lats = raster.lats()
    assert np.isnan(image[lats < lat.min() - 0.5]).all()
    assert not np.isnan(image[lats > lat.min() + 0.5]).any()


def test_north_of_the_grid_top_is_nan():
    ny, nx = 40, 90
    lat = np.repeat(np.linspace(-60, 60, ny, dtype=np.float32)[:, None], nx, axis=1)
    lon = np.repeat((np.arange(nx, dtype=np.float32) * 4)[None, :], ny, axis=0)
    image = apply(np.ones(lat.shape, np.float32), get_index(lat, lon, Raster.global_(90)))
    lats = Raster.global_(90).lats()
    assert np.isnan(image[lats > 66]).all()
    assert not np.isnan(image[np.abs(lats) < 55]).any()


# --- apply ----------------------------------------------------------------------------------------


def test_apply_is_a_gather_with_nan_for_minus_one():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    index = np.array([[0, 5, -1], [11, -1, 3]], dtype=np.int32)
    out = apply(values, index)
    np.testing.assert_array_equal(out, [[0, 5, np.nan], [11, np.nan, 3]])


def test_apply_keeps_leading_axes():
    values = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    index = np.array([[1, -1]], dtype=np.int32)
    out = apply(values, index)
    assert out.shape == (2, 1, 2)
    np.testing.assert_array_equal(out[:, 0, 0], [1, 13])
    assert np.isnan(out[:, 0, 1]).all()


def test_apply_turns_integers_into_float32():
    out = apply(np.ones((2, 2), dtype=np.int16), np.array([[0, -1]], dtype=np.int32))
    assert out.dtype == np.float32


# --- keys and caches ------------------------------------------------------------------------------


def test_grid_key_changes_when_a_coordinate_changes(small_grid):
    lat, lon = small_grid
    moved = lat.copy()
    moved[100, 200] += 0.001
    assert grid_key(lat, lon) != grid_key(moved, lon)


def test_grid_key_is_the_same_for_raw_and_normalised_longitudes(small_grid):
    lat, lon = small_grid
    assert lon.max() > 180.0
    assert grid_key(lat, lon) == grid_key(lat, reader.normalise_lon(lon))


def test_first_call_builds_once_and_writes_both_caches(small_grid, tmp_path):
    lat, lon = small_grid
    raster = Raster.global_(180)
    before = regrid.STATS.copy()
    get_index(lat, lon, raster, cache_dir=tmp_path)
    assert regrid.STATS["tree_build"] - before["tree_build"] == 1
    key = grid_key(lat, lon)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"grid-{key}.tree",
        f"index-{key}-{raster.key}.index",
    ]  # and no temporary files left behind


def test_cache_files_are_readable_by_the_other_users_as_the_umask_allows(small_grid, tmp_path):
    lat, lon = small_grid
    old = os.umask(0o022)
    try:
        get_index(lat, lon, Raster.global_(90), cache_dir=tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert set(modes.values()) == {0o644}, modes  # the viewers of every researcher read them


def test_a_read_only_cache_still_gives_the_index(small_grid, tmp_path, caplog):
    """A researcher's viewer on the job's cache: nothing can be written there."""
    lat, lon = small_grid
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], check=True)
    try:
        raster = Raster.global_(60)
        index = get_index(lat, lon, raster, cache_dir=ro)
        assert index.shape == (raster.height, raster.width)
        assert (index >= 0).any()
        assert "not cached" in caplog.text and str(ro) in caplog.text
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_cache_hit_does_not_rebuild(small_grid, tmp_path):
    lat, lon = small_grid
    raster = Raster.global_(180)
    first = get_index(lat, lon, raster, cache_dir=tmp_path)
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    clear_memory()
    before = regrid.STATS.copy()
    again = get_index(lat, lon, raster, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, first)
    assert regrid.STATS["index_load"] - before["index_load"] == 1
    assert regrid.STATS["tree_build"] == before["tree_build"]
    assert regrid.STATS["index_build"] == before["index_build"]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes


def test_a_new_raster_loads_the_cached_tree(small_grid, tmp_path):
    lat, lon = small_grid
    get_index(lat, lon, Raster.global_(180), cache_dir=tmp_path)
    clear_memory()
    before = regrid.STATS.copy()
    from_cache = get_index(lat, lon, Raster.box((-20, 20, -20, 20), 0.5), cache_dir=tmp_path)
    assert regrid.STATS["tree_load"] - before["tree_load"] == 1
    assert regrid.STATS["tree_build"] == before["tree_build"]
    clear_memory()
    rebuilt = get_index(lat, lon, Raster.box((-20, 20, -20, 20), 0.5))
    np.testing.assert_array_equal(from_cache, rebuilt)


def test_second_call_in_a_process_is_served_from_memory(small_grid, tmp_path):
    lat, lon = small_grid
    raster = Raster.global_(180)
    first = get_index(lat, lon, raster, cache_dir=tmp_path)
    for p in tmp_path.iterdir():
        p.unlink()
    before = regrid.STATS.copy()
    assert get_index(lat, lon, raster, cache_dir=tmp_path) is first
    assert regrid.STATS["index_memo"] - before["index_memo"] == 1


def test_a_corrupt_index_cache_is_rebuilt(small_grid, tmp_path):
    lat, lon = small_grid
    raster = Raster.global_(180)
    good = get_index(lat, lon, raster, cache_dir=tmp_path)
    clear_memory()
    path = tmp_path / f"index-{grid_key(lat, lon)}-{raster.key}.index"
    path.write_bytes(b"half a file")
    np.testing.assert_array_equal(get_index(lat, lon, raster, cache_dir=tmp_path), good)
    np.testing.assert_array_equal(cachefile.read(path, path.stem)["index"], good)


def test_concurrent_processes_share_one_cache(small_grid, tmp_path):
    lat, lon = small_grid
    np.save(tmp_path / "lat.npy", lat)
    np.save(tmp_path / "lon.npy", lon)
    cache = tmp_path / "cache"
    code = textwrap.dedent(
        f"""
        import sys, numpy as np
        from rtofs_lib.fields.grid import Grid
        from rtofs_lib.fields.regrid import Raster
        lat = np.load({str(tmp_path / "lat.npy")!r}); lon = np.load({str(tmp_path / "lon.npy")!r})
        index = Grid(lat, lon, cache_dir={str(cache)!r}).index(Raster.global_(180))
        np.save(sys.argv[1], index.index)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"out{n}.npy")])
        for n in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    outs = [np.load(tmp_path / f"out{n}.npy") for n in range(3)]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    clear_memory()
    np.testing.assert_array_equal(get_index(lat, lon, Raster.global_(180), cache), outs[0])
