"""The reader opens every RTOFS product tidied up, and rejects bad files by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dask.array
import netCDF4
import numpy as np
import pytest
import xarray as xr
from conftest import PRODUCT_FIELD, SAMPLE_DATE

from rtofs_lib.errors import (
    MissingVariableError,
    NotNetCDFError,
    TruncatedFileError,
    UnexpectedGridError,
    ValidTimeMismatchError,
)
from rtofs_lib.fetch import names
from rtofs_lib.fields import netcdf, reader
from rtofs_lib.testing import sample

GLOBAL = ["prog", "diag", "ice", "3ztio", "3zsio", "3zuio", "3zvio", "legacy"]
REGIONAL = ["US_east", "US_west", "alaska"]
THREE_D = ["3ztio", "3zsio", "3zuio", "3zvio", *REGIONAL]


def _file_grid(path):
    with netCDF4.Dataset(path) as nc:
        return nc["Latitude"][:].filled(np.nan), nc["Longitude"][:].filled(np.nan)


# --- every product --------------------------------------------------------------------------------


@pytest.mark.parametrize("product", list(PRODUCT_FIELD), ids=list(PRODUCT_FIELD))
def test_every_product_opens_as_a_dataset_of_its_fields(product_files, product):
    ds = reader.open_file(product_files[product])
    assert isinstance(ds, xr.Dataset)
    assert PRODUCT_FIELD[product] in ds.data_vars
    assert {"lat", "lon", "time"} <= set(ds.coords)


@pytest.mark.parametrize("product", list(PRODUCT_FIELD), ids=list(PRODUCT_FIELD))
def test_field_has_the_contracted_dims_and_coords(product_files, product):
    da = reader.open_file(product_files[product], PRODUCT_FIELD[product])
    expected = ("time", "depth", "y", "x") if product in THREE_D else ("time", "y", "x")
    assert da.dims == expected
    assert da["lat"].dims == da["lon"].dims == ("y", "x")
    assert da["lat"].dtype == da["lon"].dtype == np.float32
    assert da.dtype == np.float32


def test_prog_layer_fields_lose_the_single_layer_axis(product_files):
    da = reader.open_file(product_files["prog"], "u_velocity")
    assert da.dims == ("time", "y", "x")


@pytest.mark.parametrize("product", ["prog", "3ztio", "US_east"], ids=str)
def test_cf_attributes_are_kept_and_long_name_stripped(product_files, product):
    da = reader.open_file(product_files[product], PRODUCT_FIELD[product])
    with netCDF4.Dataset(product_files[product]) as nc:
        var = nc[PRODUCT_FIELD[product]]
        assert da.attrs["standard_name"] == var.standard_name
        assert da.attrs["units"] == var.units
        assert da.attrs["long_name"] == var.long_name.strip()
    assert da["lat"].attrs["units"] == "degrees_north"
    assert da["lon"].attrs["units"] == "degrees_east"


def test_ice_parm_text_standard_names_become_cf_names(product_files):
    da = reader.open_file(product_files["ice"], "ice_coverage")
    assert da.attrs["standard_name"] == "sea_ice_area_fraction"
    assert "|" in da.attrs["rtofs_standard_name"]


def test_provenance_attrs_name_product_step_cycle_and_file(product_files):
    da = reader.open_file(product_files["diag"], "ssh")
    assert da.attrs["product"] == "diag"
    assert da.attrs["step"] == "f024"
    assert da.attrs["cycle_date"] == "2026-07-08"
    assert da.attrs["source"] == str(product_files["diag"])


# --- land, longitudes, fold -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def land_file(tmp_path_factory):
    """A prog file whose sst has NaN (land) at known cells and known values elsewhere."""
    ny, nx = sample.GRIDS["small"]
    sst = np.linspace(-2, 32, ny * nx, dtype=np.float32).reshape(ny, nx)
    sst[10:20, 30:60] = np.nan
    sst[200, 7] = np.nan
    folder = tmp_path_factory.mktemp("land") / names.day_folder(SAMPLE_DATE)
    path = sample.write_file(
        folder / "rtofs_glo_2ds_f024_prog.nc", "prog", SAMPLE_DATE, "f024", fields={"sst": sst}
    )
    return path, sst


def test_land_is_nan_and_ocean_values_are_exact(land_file):
    path, sst = land_file
    got = reader.open_file(path, "sst").values[0]
    np.testing.assert_array_equal(got, sst[:-1])  # NaN positions compare equal too


def test_read_field_gives_the_same_values_as_open_file(land_file):
    path, _ = land_file
    fast = netcdf.read_field(path, "sst")
    np.testing.assert_array_equal(fast.values, reader.open_file(path, "sst").values[0])
    assert fast.values.dtype == np.float32


@pytest.mark.parametrize("product", GLOBAL + REGIONAL, ids=str)
def test_longitudes_lie_in_minus_180_to_180(product_files, product):
    lon = reader.open_file(product_files[product], PRODUCT_FIELD[product])["lon"].values
    assert lon.min() >= -180.0
    assert lon.max() < 180.0


def test_normalised_longitudes_differ_from_the_file_by_whole_turns(product_files):
    lon = reader.open_file(product_files["prog"], "sst")["lon"].values.astype(np.float64)
    _, raw = _file_grid(product_files["prog"])
    turns = (raw[:-1] - lon) / 360.0
    np.testing.assert_array_equal(turns, np.round(turns))


def test_read_field_keeps_the_raw_longitudes(product_files):
    got = netcdf.read_field(product_files["prog"], "sst")
    _, raw = _file_grid(product_files["prog"])
    np.testing.assert_array_equal(got.lon, raw[:-1])
    assert got.lon.max() > 180.0  # the file's 74..434 range, untouched


@pytest.mark.parametrize("product", GLOBAL, ids=str)
def test_global_grid_drops_the_fold_row(product_files, product):
    da = reader.open_file(product_files[product], PRODUCT_FIELD[product])
    lat, _ = _file_grid(product_files[product])
    assert da.sizes["y"] == lat.shape[0] - 1
    np.testing.assert_array_equal(da["lat"].values, lat[:-1])


@pytest.mark.parametrize("product", REGIONAL, ids=str)
def test_regional_window_keeps_every_row(product_files, product):
    da = reader.open_file(product_files[product], PRODUCT_FIELD[product])
    lat, _ = _file_grid(product_files[product])
    assert da.sizes["y"] == lat.shape[0]


def test_read_grid_matches_read_field(product_files):
    lat, lon = netcdf.read_grid(product_files["prog"])
    got = netcdf.read_field(product_files["prog"], "sst")
    np.testing.assert_array_equal(lat, got.lat)
    np.testing.assert_array_equal(lon, got.lon)


# --- valid time -----------------------------------------------------------------------------------

TIME_CASES = [
    ("prog", "n000"),
    ("prog", "n024"),
    ("prog", "f001"),
    ("prog", "f075"),
    ("diag", "f192"),
    ("ice", "f003"),
    ("3ztio", "n024"),
    ("3zvio", "f168"),
    ("US_east", "f006"),
]


@pytest.mark.parametrize(("product", "step"), TIME_CASES, ids=[f"{p}-{s}" for p, s in TIME_CASES])
def test_valid_time_matches_the_name(tmp_path, product, step):
    folder = tmp_path / names.day_folder(SAMPLE_DATE)
    path = sample.write_file(folder / names.compose_name(product, step), product, SAMPLE_DATE, step)
    field = PRODUCT_FIELD[product]
    expected = np.datetime64(names.valid_time(SAMPLE_DATE, step), "ns")
    assert reader.open_file(path, field)["time"].values[0] == expected
    assert netcdf.read_field(path, field).valid_time == names.valid_time(SAMPLE_DATE, step)


def test_legacy_file_time_comes_from_mt(product_files):
    expected = np.datetime64(names.valid_time(SAMPLE_DATE, "f001"), "ns")
    assert reader.open_file(product_files["legacy"], "sst")["time"].values[0] == expected


def test_file_outside_a_day_folder_takes_its_time_from_mt(product_files, tmp_path):
    loose = tmp_path / "copy.nc"
    shutil.copy(product_files["prog"], loose)
    da = reader.open_file(loose, "sst")
    assert da["time"].values[0] == np.datetime64(names.valid_time(SAMPLE_DATE, "f024"), "ns")
    assert da.attrs["product"] == ""


def test_misnamed_file_raises_a_valid_time_mismatch(product_files, tmp_path):
    folder = tmp_path / names.day_folder(SAMPLE_DATE)
    folder.mkdir()
    wrong = folder / "rtofs_glo_2ds_f048_prog.nc"
    shutil.copy(product_files["prog"], wrong)
    with pytest.raises(ValidTimeMismatchError) as err:
        reader.open_file(wrong, "sst")
    msg = str(err.value)
    assert msg.startswith(str(wrong))
    assert "2026-07-09 00:00" in msg
    assert "2026-07-10 00:00" in msg


# --- depth ----------------------------------------------------------------------------------------


def _depths(path):
    with netCDF4.Dataset(path) as nc:
        return np.asarray(nc["Depth"][:], dtype=float)


def test_3d_field_carries_its_depth_axis(product_files):
    da = reader.open_file(product_files["3ztio"], "temperature")
    np.testing.assert_array_equal(da["depth"].values, _depths(product_files["3ztio"]))


@pytest.mark.parametrize(
    ("kwargs", "level"),
    [({"depth": 100}, 6), ({"depth": 12.0}, 1), ({"depth": 5600}, 32), ({"level": 3}, 3)],
    ids=["exact-100m", "nearest-to-12m", "below-bottom", "index-3"],
)
def test_depth_selection(product_files, kwargs, level):
    path = product_files["3ztio"]
    da = reader.open_file(path, "temperature", **kwargs)
    full = reader.open_file(path, "temperature")
    assert da.dims == ("time", "y", "x")
    assert float(da["depth"]) == _depths(path)[level]
    np.testing.assert_array_equal(da.values, full.values[:, level])


def test_read_field_selects_the_same_level_as_open_file(product_files):
    path = product_files["3ztio"]
    fast = netcdf.read_field(path, "temperature", depth=30)
    np.testing.assert_array_equal(fast.values, reader.open_file(path, "temperature", depth=30)[0])
    assert fast.depth == 30.0


def test_read_field_of_a_3d_file_defaults_to_the_top_level(product_files):
    path = product_files["3ztio"]
    fast = netcdf.read_field(path, "temperature")
    assert fast.depth == 0.0
    np.testing.assert_array_equal(fast.values, reader.open_file(path, "temperature", level=0)[0])


def test_depth_on_a_surface_field_is_refused(product_files):
    with pytest.raises(ValueError, match="sst has no depth axis"):
        reader.open_file(product_files["prog"], "sst", depth=10)


# --- open_day -------------------------------------------------------------------------------------


def test_open_day_is_lazy(small_day):
    da = reader.open_day(small_day, SAMPLE_DATE, "sst")
    assert isinstance(da.data, dask.array.Array)


def test_open_day_is_ordered_by_valid_time_without_the_f000_duplicate(small_day):
    da = reader.open_day(small_day, SAMPLE_DATE, "sst")
    assert list(da["step"].values) == ["n024", "f001", "f002", "f003"]
    times = da["time"].values
    assert (np.diff(times) > np.timedelta64(0)).all()
    assert times[0] == np.datetime64(names.valid_time(SAMPLE_DATE, "n024"), "ns")


def test_open_day_values_equal_the_single_files(small_day):
    da = reader.open_day(small_day, SAMPLE_DATE, "sst", steps="f002")
    path = small_day / names.day_folder(SAMPLE_DATE) / "rtofs_glo_2ds_f002_prog.nc"
    np.testing.assert_array_equal(da.values, reader.open_file(path, "sst").values)


def test_open_day_names_missing_steps(small_day):
    with pytest.raises(FileNotFoundError, match=r"no prog file for step\(s\) f010"):
        reader.open_day(small_day, SAMPLE_DATE, "sst", steps="f001,f010")


def test_open_day_of_a_missing_day_says_so(small_day):
    with pytest.raises(FileNotFoundError, match=r"rtofs\.20200101: no such day folder"):
        reader.open_day(small_day, "20200101", "sst")


# --- bad input ------------------------------------------------------------------------------------

HTML = b"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>
"""


@pytest.mark.parametrize("read", [reader.open_file, netcdf.read_field], ids=["open", "read"])
def test_html_page_saved_as_nc_is_not_netcdf(tmp_path, read):
    path = tmp_path / "rtofs_glo_2ds_f024_prog.nc"
    path.write_bytes(HTML)
    with pytest.raises(NotNetCDFError) as err:
        read(path, "sst")
    assert str(err.value).startswith(f"{path}: it is an HTML/XML page")


def test_random_bytes_are_not_netcdf(tmp_path):
    path = tmp_path / "noise.nc"
    path.write_bytes(np.random.default_rng(1).bytes(5000).replace(b"\x89HDF", b"xxxx"))
    with pytest.raises(NotNetCDFError, match=r"noise\.nc: it starts with bytes"):
        reader.open_file(path)


@pytest.fixture(scope="module", params=["prog", "legacy"], ids=["netcdf4-hdf5", "netcdf3"])
def whole_file(request, product_files):
    return product_files[request.param]


#: Bytes kept (int), fraction kept (float) or bytes cut off the end (negative).
CUTS = [1, 7, 100, 1000, 0.05, 0.5, 0.9, 0.999, -1]


@pytest.mark.parametrize("cut", CUTS, ids=[f"cut-{c}" for c in CUTS])
def test_truncated_file_is_detected(whole_file, tmp_path, cut):
    data = whole_file.read_bytes()
    if isinstance(cut, float):
        keep = int(len(data) * cut)
    else:
        keep = cut if cut > 0 else len(data) + cut
    path = tmp_path / "rtofs_glo_2ds_f024_prog.nc"
    path.write_bytes(data[:keep])
    for read in (netcdf.read_field, reader.open_file):
        with pytest.raises(TruncatedFileError) as err:
            read(path, "sst")
        assert str(err.value).startswith(str(path))


def test_empty_file_is_truncated(tmp_path):
    path = tmp_path / "empty.nc"
    path.touch()
    with pytest.raises(TruncatedFileError, match=r"empty\.nc: file is empty \(0 bytes\)"):
        netcdf.read_field(path, "sst")


def test_truncation_names_the_sizes(product_files, tmp_path):
    data = product_files["prog"].read_bytes()
    path = tmp_path / "cut.nc"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedFileError, match=rf"has {len(data) // 2} bytes but .* {len(data)}"):
        reader.open_file(path)


def test_missing_variable_lists_the_variables_present(product_files):
    path = product_files["prog"]
    with pytest.raises(MissingVariableError) as err:
        netcdf.read_field(path, "ssh")
    msg = str(err.value)
    assert msg.startswith(f"{path}: has no variable 'ssh'; variables present: MT, Date")
    assert "sst" in msg
    assert "ssh is in the diag files" in msg


def test_missing_variable_from_open_file_too(product_files):
    with pytest.raises(MissingVariableError, match=r"variables present: .*ssh"):
        reader.open_file(product_files["diag"], "sst")


def _tiny_nc(path, lat_dims=("Y", "X"), field_dims=("MT", "Y", "X")):
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in {"MT": None, "Y": 4, "X": 5, "Y2": 3, "lat": 4, "lon": 5}.items():
            nc.createDimension(name, size)
        nc.createVariable("MT", "f8", ("MT",))[:] = [45910.0]
        nc.createVariable("Latitude", "f4", lat_dims)[:] = 0.0
        nc.createVariable("Longitude", "f4", lat_dims)[:] = 0.0
        nc.createVariable("sst", "f4", field_dims)[:] = 1.0
    return path


def test_latitude_not_on_the_field_grid_is_unexpected(tmp_path):
    path = _tiny_nc(tmp_path / "odd.nc", lat_dims=("Y2", "X"))
    with pytest.raises(
        UnexpectedGridError, match=r"odd\.nc: Latitude has dimensions \('Y2', 'X'\)"
    ):
        netcdf.read_field(path, "sst")


def test_field_without_y_x_dims_is_unexpected(tmp_path):
    path = _tiny_nc(
        tmp_path / "latlon.nc", lat_dims=("lat", "lon"), field_dims=("MT", "lat", "lon")
    )
    with pytest.raises(UnexpectedGridError, match=r"latlon\.nc: sst has dimensions"):
        reader.open_file(path, "sst")


def test_file_without_y_x_dims_is_unexpected(tmp_path):
    path = tmp_path / "nogrid.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("lat", 4)
        nc.createVariable("sst", "f4", ("lat",))[:] = 1.0
    with pytest.raises(UnexpectedGridError, match="holds no field on a"):
        reader.open_file(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such RTOFS file"):
        netcdf.read_field(tmp_path / "gone.nc", "sst")


# --- environment ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"), [(None, "FALSE"), ("TRUE", "TRUE")], ids=["unset", "set"]
)
def test_importing_the_reader_turns_hdf5_file_locking_off_unless_set(before, after):
    env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
    if before is not None:
        env["HDF5_USE_FILE_LOCKING"] = before
    code = "import os, rtofs_lib.fields.reader; print(os.environ['HDF5_USE_FILE_LOCKING'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == after
