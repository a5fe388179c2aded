"""One grid layer: a file's grid is known by one content key, its work is done once and kept."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from conftest import SAMPLE_DATE
from PIL import Image

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import cachefile, netcdf, regrid
from rtofs_lib.fields import grid as gridmod
from rtofs_lib.fields.grid import Grid
from rtofs_lib.fields.regions import REGIONS, get_region
from rtofs_lib.fields.regrid import Raster
from rtofs_lib.maps import render
from rtofs_lib.maps.rasters import raster_for
from rtofs_lib.testing import sample


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
    path = tmp_path / f"index-{grid.key}-{raster.key}.index"
    with open(path, "wb") as f:  # the right key, a wrong array
        cachefile.write(f, path.stem, {"index": np.zeros((3, 3), np.int32)})
    gridmod.clear_memory()
    np.testing.assert_array_equal(Grid.of_file(prog, tmp_path).index(raster).index, good)


def test_the_memory_is_bounded_by_bytes():
    memory = gridmod.LRU(max_bytes=100)
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


# --- cache files are checked against their content key ------------------------------------------

RASTER = Raster.global_(120)


def index_file(cache, grid, raster=RASTER):
    return cache / f"index-{grid.key}-{raster.key}.index"


def tree_file(cache, grid):
    return cache / f"grid-{grid.key}.tree"


def tamper(path, payload: bytes) -> None:
    """Overwrite the end of ``path`` with ``payload``: the values change, header and size stay."""
    with open(path, "r+b") as f:
        f.seek(-len(payload), 2)
        f.write(payload)


def other_grid(cache):
    """A grid with other coordinates, its cache files written in ``cache``."""
    lat, lon = sample.make_grid(66, 90)
    grid = Grid(lat[:-1], lon[:-1], cache_dir=cache)
    grid.index(RASTER)
    return grid


def shifted_index(path):
    """The index at ``path`` moved 7 pixels east: a plausible index, drawing wrong maps."""
    return np.roll(cachefile.read(path, path.stem)["index"], 7, axis=1).tobytes()


def save_old_format(path, **arrays):
    """A plain .npy (one array) or .npz, as the cache held before its files were checked."""
    with open(path, "wb") as f:
        if len(arrays) == 1:
            np.save(f, *arrays.values())
        else:
            np.savez(f, **arrays)


INDEX_DAMAGE = {
    "tampered": (lambda path: tamper(path, shifted_index(path)), "does not match its digest"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:5000]), "truncated"),
    "another-keys-file": (
        lambda path: shutil.copy(index_file(path.parent, other_grid(path.parent)), path),
        "built for key",
    ),
    "old-format": (
        lambda path: save_old_format(path, index=cachefile.read(path, path.stem)["index"]),
        "older format",
    ),
}


@pytest.mark.parametrize("damage", INDEX_DAMAGE.values(), ids=INDEX_DAMAGE.keys())
def test_a_bad_index_file_is_not_used_but_rebuilt_and_rewritten(prog, tmp_path, caplog, damage):
    spoil, reason = damage
    grid = Grid.of_file(prog, tmp_path)
    good = grid.index(RASTER).index.copy()
    path = index_file(tmp_path, grid)
    spoil(path)
    gridmod.clear_memory()
    before = regrid.STATS.copy()

    index = Grid.of_file(prog, tmp_path).index(RASTER).index

    np.testing.assert_array_equal(index, good)
    assert regrid.STATS["index_build"] - before["index_build"] == 1
    assert f"{path}: " in caplog.text and reason in caplog.text
    np.testing.assert_array_equal(cachefile.read(path, path.stem)["index"], good)


def test_the_maps_drawn_over_a_tampered_index_equal_those_of_a_clean_cache(prog, tmp_path, caplog):
    cache = tmp_path / "cache"
    (clean,) = render.render_file(prog, tmp_path / "clean", sizes=("low",), cache_dir=cache)
    grid = Grid.of_file(prog, cache)
    path = index_file(cache, grid, raster_for(None, "low"))
    tamper(path, shifted_index(path))
    gridmod.clear_memory()

    (drawn,) = render.render_file(prog, tmp_path / "again", sizes=("low",), cache_dir=cache)

    np.testing.assert_array_equal(np.asarray(Image.open(drawn)), np.asarray(Image.open(clean)))
    assert f"{path}: content does not match its digest" in caplog.text


@pytest.mark.parametrize("damage", ["tampered", "truncated", "another-keys-file", "old-format"])
def test_has_index_does_not_report_a_file_failing_its_header_check(prog, tmp_path, damage):
    """Format, key, size and shape are checked there; altered content only by index()."""
    grid = Grid.of_file(prog, tmp_path)
    grid.index(RASTER)
    INDEX_DAMAGE[damage][0](index_file(tmp_path, grid))
    gridmod.clear_memory()
    assert Grid.of_file(prog, tmp_path).has_index(RASTER) is (damage == "tampered")


TREE_DAMAGE = {
    "tampered": (lambda path: tamper(path, b"\xff" * 1000), "does not match its digest"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:5000]), "truncated"),
    "another-keys-file": (
        lambda path: shutil.copy(tree_file(path.parent, other_grid(path.parent)), path),
        "built for key",
    ),
    "old-format": (
        lambda path: save_old_format(path, **cachefile.read(path, path.stem)),
        "older format",
    ),
}


@pytest.mark.parametrize("damage", TREE_DAMAGE.values(), ids=TREE_DAMAGE.keys())
def test_a_bad_tree_file_is_not_used_but_rebuilt_and_rewritten(prog, tmp_path, caplog, damage):
    spoil, reason = damage
    grid = Grid.of_file(prog, tmp_path)
    grid.index(RASTER)
    path = tree_file(tmp_path, grid)
    spoil(path)
    gridmod.clear_memory()
    before = regrid.STATS.copy()
    box = Raster.box((-80, -40, 20, 50), 0.5)  # a new raster needs the tree

    index = Grid.of_file(prog, tmp_path).index(box).index

    assert regrid.STATS["tree_build"] - before["tree_build"] == 1
    assert regrid.STATS["tree_load"] == before["tree_load"]
    assert f"{path}: " in caplog.text and reason in caplog.text
    assert regrid.load_tree(path, path.stem).shape == grid.shape
    np.testing.assert_array_equal(index, Grid(*netcdf.read_grid(prog)).index(box).index)


def gridsig_notes(cache):
    return set(cache.glob("gridsig-*.txt"))


def test_a_note_copied_from_another_grids_note_is_not_used_and_the_maps_stay_right(
    prog, tmp_path, caplog
):
    """Without its check, the note would give the file the other grid's key, whose index is
    in the cache and passes its own check: wrong maps."""
    cache = tmp_path / "cache"
    (clean,) = render.render_file(prog, tmp_path / "clean", sizes=("low",), cache_dir=cache)
    (note,) = gridsig_notes(cache)
    other = sample.write_file(
        tmp_path / "other" / prog.name, "prog", SAMPLE_DATE, "f001", grid="66x90"
    )
    render.render_file(other, tmp_path / "other-maps", sizes=("low",), cache_dir=cache)
    (other_note,) = gridsig_notes(cache) - {note}
    shutil.copy(other_note, note)
    gridmod.clear_memory()

    grid = Grid.of_file(prog, cache)
    (drawn,) = render.render_file(prog, tmp_path / "again", sizes=("low",), cache_dir=cache)

    np.testing.assert_array_equal(np.asarray(Image.open(drawn)), np.asarray(Image.open(clean)))
    assert grid.key == regrid.grid_key(*netcdf.read_grid(prog))
    assert f"{note}: its check does not match" in caplog.text
    assert note.read_text().split()[0] == grid.key  # rewritten


def test_an_old_note_without_a_check_is_not_used_and_rewritten(prog, tmp_path, caplog):
    key = Grid.of_file(prog, tmp_path).key
    (note,) = gridsig_notes(tmp_path)
    note.write_text(key + "\n")  # as written before notes carried a check
    gridmod.clear_memory()

    assert Grid.of_file(prog, tmp_path).key == key
    assert f"{note}: an older note without a check" in caplog.text
    gridmod.clear_memory()
    caplog.clear()
    assert Grid.of_file(prog, tmp_path).key == key
    assert caplog.text == ""


@pytest.fixture
def own_cache(tmp_path):
    """A cache folder on its own small tmpfs, so a test can make it read-only."""
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(cache)], check=True)
    yield cache
    subprocess.run(["umount", str(cache)], check=True)


def make_read_only(cache):
    subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)


def test_a_read_only_cache_with_a_tampered_index_gives_the_right_index_from_memory(
    prog, own_cache, caplog
):
    grid = Grid.of_file(prog, own_cache)
    good = grid.index(RASTER).index.copy()
    path = index_file(own_cache, grid)
    tamper(path, shifted_index(path))
    tampered = path.read_bytes()
    make_read_only(own_cache)
    gridmod.clear_memory()

    fresh = Grid.of_file(prog, own_cache)
    np.testing.assert_array_equal(fresh.index(RASTER).index, good)
    assert fresh.index(RASTER) is fresh.index(RASTER)  # kept in memory
    assert f"{path}: content does not match its digest" in caplog.text
    assert f"{path}: not cached" in caplog.text
    assert path.read_bytes() == tampered


def test_a_read_only_cache_with_a_tampered_tree_gives_the_right_index(prog, own_cache, caplog):
    grid = Grid.of_file(prog, own_cache)
    grid.index(RASTER)
    path = tree_file(own_cache, grid)
    tamper(path, b"\xff" * 1000)
    make_read_only(own_cache)
    gridmod.clear_memory()
    box = Raster.box((-80, -40, 20, 50), 0.5)

    index = Grid.of_file(prog, own_cache).index(box).index

    assert f"{path}: content does not match its digest" in caplog.text
    assert f"{path}: not cached" in caplog.text
    np.testing.assert_array_equal(index, Grid(*netcdf.read_grid(prog)).index(box).index)


def test_a_read_only_cache_with_a_bad_note_gives_the_files_own_key(prog, own_cache, caplog):
    key = Grid.of_file(prog, own_cache).key
    (note,) = gridsig_notes(own_cache)
    note.write_text("0123456789abcdef0123 0123456789abcdef0123456789abcdef\n")
    make_read_only(own_cache)
    gridmod.clear_memory()

    assert Grid.of_file(prog, own_cache).key == key
    assert f"{note}: its check does not match" in caplog.text
