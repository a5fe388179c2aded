"""One grid layer: a file's grid is known by one content key, its work is done once and kept."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLE_DATE

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import grid as gridmod
from rtofs_lib.fields import netcdf, regrid
from rtofs_lib.fields.grid import Grid
from rtofs_lib.fields.regions import REGIONS, get_region
from rtofs_lib.fields.regrid import Raster


@pytest.fixture(autouse=True)
def _fresh_process():
    gridmod.clear_memory()
    yield
    gridmod.clear_memory()


@pytest.fixture
def prog(small_day):
    return small_day / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f001_prog.nc"


def test_a_files_grid_has_the_key_of_its_coordinates(prog, tmp_path):
    grid = Grid.of_file(prog, tmp_path)
    lat, lon = netcdf.read_grid(prog)
    assert grid.key == regrid.grid_key(lat, lon)
    assert grid.shape == lat.shape
    np.testing.assert_array_equal(grid.lat, lat)


def test_every_file_of_a_day_has_the_same_grid(small_day, tmp_path):
    files = sorted((small_day / names.day_folder(SAMPLE_DATE)).glob("*.nc"))
    assert len({Grid.of_file(p, tmp_path).key for p in files}) == 1


def test_a_fresh_process_knows_the_grid_from_the_note_without_reading_it(
    prog, tmp_path, monkeypatch
):
    key = Grid.of_file(prog, tmp_path).key
    gridmod.clear_memory()
    reads = []
    monkeypatch.setattr(netcdf, "read_grid", lambda p: reads.append(p))
    grid = Grid.of_file(prog, tmp_path)
    assert grid.key == key and reads == []


def test_a_grid_index_is_built_once_then_served_from_memory(prog, tmp_path):
    grid = Grid.of_file(prog, tmp_path)
    raster = Raster.global_(120)
    before = regrid.STATS.copy()
    first = grid.index(raster)
    again = Grid.of_file(prog, tmp_path).index(raster)
    assert again is first
    assert regrid.STATS["index_build"] - before["index_build"] == 1
    assert regrid.STATS["index_memo"] - before["index_memo"] == 1


def test_an_index_of_the_wrong_shape_in_the_cache_is_rebuilt_not_used(prog, tmp_path):
    grid = Grid.of_file(prog, tmp_path)
    raster = Raster.global_(120)
    good = grid.index(raster).index.copy()
    path = tmp_path / f"index-{grid.key}-{raster.key}.npy"
    np.save(path, np.zeros((3, 3), np.int32))
    gridmod.clear_memory()
    np.testing.assert_array_equal(Grid.of_file(prog, tmp_path).index(raster).index, good)


def test_the_memory_is_bounded_by_bytes():
    memory = gridmod._LRU(max_bytes=100)
    memory.put("a", object(), 60)
    memory.put("b", object(), 60)
    assert memory.get("a") is None and memory.get("b") is not None


def test_the_pixel_of_a_click_maps_back_to_the_grid_cell_drawn_there(prog, tmp_path):
    grid = Grid.of_file(prog, tmp_path)
    raster = Raster.box((-80, -40, 20, 50), 0.5)
    index = grid.index(raster)
    j, i = grid.cell_at(index, x=10, y=10)
    assert int(index.index[10, 10]) == j * grid.shape[1] + i
    assert grid.cell_at(index, x=-1, y=0) is None


def test_a_region_selection_holds_the_cells_inside_its_box(prog, tmp_path):
    grid = Grid.of_file(prog, tmp_path)
    idx, weights = grid.selection(REGIONS["gulf_stream"])
    lat = grid.lat.ravel()[idx]
    lon = (grid.lon.ravel()[idx] + 180) % 360 - 180
    assert len(idx) > 0
    assert ((lat >= 30) & (lat <= 45) & (lon >= -80) & (lon <= -50)).all()
    np.testing.assert_allclose(weights, np.cos(np.deg2rad(lat)))
    assert grid.selection(REGIONS["gulf_stream"])[0] is idx


def test_derived_current_speed_is_the_magnitude_of_u_and_v(prog):
    speed = netcdf.read_field(prog, "speed", grid=False)
    u = netcdf.read_field(prog, "u_velocity", grid=False).values
    v = netcdf.read_field(prog, "v_velocity", grid=False).values
    np.testing.assert_array_equal(speed.values, np.hypot(u, v))
    assert (speed.field, speed.units) == ("speed", "m/s")


def test_a_point_read_equals_the_field_read(prog):
    values = netcdf.read_field(prog, "speed", grid=False).values
    j, i = np.argwhere(np.isfinite(values))[7]
    assert netcdf.read_point(prog, "speed", int(j), int(i)) == pytest.approx(values[j, i])


def test_a_point_outside_the_grid_is_refused_with_its_size(prog):
    with pytest.raises(IndexError, match="outside"):
        netcdf.read_point(prog, "sst", 10_000, 0)


def test_regions_are_found_by_name_or_label_and_an_unknown_one_lists_them():
    assert get_region("Niño 3.4") is REGIONS["nino34"]
    with pytest.raises(RtofsError, match="choose one of global, gulf_stream"):
        get_region("atlantis")
