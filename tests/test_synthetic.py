"""The synthetic generator writes files structurally identical to NOMADS' RTOFS files.

The reference is the CDL dumps in ``tests/data/cdl`` (``*.cdl`` for the header,
``*.hs.cdl`` for the storage: chunks, deflate, endianness), read by a small CDL parser.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from conftest import SAMPLE_DATE

from rtofs_lib.fetch import names
from rtofs_lib.testing import sample
from rtofs_lib.testing.sample.land import land_mask
from rtofs_lib.testing.sample.structure import chunk_defaults, region_window

FILL = np.float32(2.0**100)
CDL_TYPES = {"double": "f8", "float": "f4", "int": "i4"}
HIDDEN = ("_Storage", "_ChunkSizes", "_DeflateLevel", "_Endianness", "_NCProperties",
          "_SuperblockVersion", "_IsNetcdf4", "_Format", "_Shuffle")  # fmt: skip


# --- a small CDL parser ------------------------------------------------------------------------


def _cdl_value(text: str):
    """``"abc"`` -> str; ``1.f, 2.f`` -> ("f4", (1.0, 2.0)); ``512`` -> ("i4", (512,))."""
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1]
    items = [t.strip() for t in text.split(",")]
    if all(t.endswith("f") for t in items):
        return ("f4", tuple(float(t[:-1]) for t in items))
    if all(re.fullmatch(r"-?\d+", t) for t in items):
        return ("i4", tuple(int(t) for t in items))
    return ("f8", tuple(float(t) for t in items))


def parse_cdl(path: Path) -> dict:
    """Dimensions, variables (type, dims, attributes in order) and global attributes."""
    out = {"dims": [], "vars": {}, "globals": []}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.split("//")[0].strip() if not raw.strip().startswith("//") else raw.strip()
        if line in ("dimensions:", "variables:") or line.startswith("// global"):
            section = "globals" if line.startswith("//") else line[:-1]
            continue
        if not line or line.startswith(("netcdf", "}", "data:")):
            continue
        if section == "dimensions":
            name, size = (s.strip() for s in line.rstrip(" ;").split("="))
            out["dims"].append((name, None if size == "UNLIMITED" else int(size)))
        elif section in ("variables", "globals"):
            m = re.fullmatch(r"(\w*):(\w+) = (.*) ;", line)
            if m:
                owner, att, value = m.groups()
                target = out["globals"] if owner == "" else out["vars"][owner]["attrs"]
                target.append((att, _cdl_value(value)))
                continue
            m = re.fullmatch(r"(\w+) (\w+)\((.*)\) ;", line)
            assert m, f"{path.name}: cannot parse {raw!r}"
            dtype, name, dims = m.groups()
            out["vars"][name] = {
                "dtype": CDL_TYPES[dtype],
                "dims": tuple(d.strip() for d in dims.split(",")),
                "attrs": [],
            }
    return out


CDL_DIR = Path(__file__).parent / "data" / "cdl"
#: One real file of each product family; a dump missing from tests/data/cdl fails its cases.
CDL_STEMS = (
    "rtofs_glo_2ds_f024_diag",
    "rtofs_glo_2ds_f024_ice",
    "rtofs_glo_2ds_f024_prog",
    "rtofs_glo_3dz_f024_daily_3ztio",
)
CDLS = [CDL_DIR / f"{stem}.cdl" for stem in CDL_STEMS]
HS_CDLS = [CDL_DIR / f"{stem}.hs.cdl" for stem in CDL_STEMS]


def _product(cdl: Path) -> str:
    return names.parse_name(cdl.name.split(".")[0] + ".nc").product


def _file_attrs(obj) -> list:
    """Attributes of a netCDF4 variable or dataset in the CDL parser's form."""
    out = []
    for name in obj.ncattrs():
        value = obj.getncattr(name)
        if isinstance(value, str):
            out.append((name, value))
        else:
            a = np.atleast_1d(value)
            out.append((name, (a.dtype.str[1:], tuple(a.tolist()))))
    return out


def _same_attr(want, got, *, ignore_values: bool) -> bool:
    if want[0] != got[0]:
        return False
    if isinstance(want[1], str) or isinstance(got[1], str):
        return want[1] == got[1]
    if want[1][0] != got[1][0] or len(want[1][1]) != len(got[1][1]):
        return False
    return ignore_values or np.allclose(want[1][1], got[1][1], rtol=1e-6)


def test_the_cdl_references_are_there():
    assert [_product(p) for p in CDLS] == ["diag", "ice", "prog", "3ztio"]
    missing = [p.name for p in [*CDLS, *HS_CDLS] if not p.is_file()]
    assert not missing, f"CDL references missing from {CDL_DIR}: {missing}"


# --- header: the CDLs --------------------------------------------------------------------------


@pytest.mark.parametrize("cdl", CDLS, ids=[p.stem for p in CDLS])
def test_dimensions_match_the_cdl(cdl, product_files):
    want = parse_cdl(cdl)["dims"]
    with netCDF4.Dataset(product_files[_product(cdl)]) as ds:
        got = [(d.name, None if d.isunlimited() else len(d)) for d in ds.dimensions.values()]
    assert [n for n, _ in got] == [n for n, _ in want]
    ny, nx = sample.GRIDS["small"]
    sizes = {"Y": ny, "X": nx}
    assert got == [(n, sizes.get(n, s)) for n, s in want]


@pytest.mark.parametrize("cdl", CDLS, ids=[p.stem for p in CDLS])
def test_variables_dtypes_and_dims_match_the_cdl_in_order(cdl, product_files):
    want = parse_cdl(cdl)["vars"]
    with netCDF4.Dataset(product_files[_product(cdl)]) as ds:
        got = {n: (v.dtype.str[1:], v.dimensions) for n, v in ds.variables.items()}
    assert list(got) == list(want)
    assert got == {n: (v["dtype"], v["dims"]) for n, v in want.items()}


@pytest.mark.parametrize("cdl", CDLS, ids=[p.stem for p in CDLS])
def test_variable_attributes_match_the_cdl_in_order(cdl, product_files):
    want = parse_cdl(cdl)["vars"]
    with netCDF4.Dataset(product_files[_product(cdl)]) as ds:
        for name, spec in want.items():
            got = _file_attrs(ds[name])
            assert [a for a, _ in got] == [a for a, _ in spec["attrs"]], name
            for w, g in zip(spec["attrs"], got, strict=True):
                assert _same_attr(w, g, ignore_values=w[0] == "valid_range"), (name, w, g)


@pytest.mark.parametrize("cdl", CDLS, ids=[p.stem for p in CDLS])
def test_global_attributes_match_the_cdl_in_order(cdl, product_files):
    want = parse_cdl(cdl)["globals"]
    with netCDF4.Dataset(product_files[_product(cdl)]) as ds:
        assert _file_attrs(ds) == want


def test_no_variable_has_a_missing_value_attribute(product_files):
    for path in product_files.values():
        with netCDF4.Dataset(path) as ds:
            assert not [n for n, v in ds.variables.items() if "missing_value" in v.ncattrs()]


# --- storage: the .hs.cdl files ----------------------------------------------------------------


def _hs_storage(cdl: Path) -> dict:
    spec = parse_cdl(cdl)
    return {
        name: {a: v for a, v in var["attrs"] if a in HIDDEN} for name, var in spec["vars"].items()
    }


@pytest.mark.parametrize("cdl", HS_CDLS, ids=[p.name.split(".")[0] for p in HS_CDLS])
def test_default_chunk_rule_gives_the_real_chunks_at_full_size(cdl):
    spec = parse_cdl(cdl)
    dims = dict(spec["dims"])
    for name, var in spec["vars"].items():
        shape = [1 if dims[d] is None else dims[d] for d in var["dims"]]
        unlimited = [dims[d] is None for d in var["dims"]]
        itemsize = np.dtype(var["dtype"]).itemsize
        want = dict(var["attrs"])["_ChunkSizes"][1]
        assert chunk_defaults(shape, unlimited, itemsize) == want, name


@pytest.mark.parametrize(
    ("product", "shape", "chunks"),
    [
        ("US_east", (1, 40, 1710, 742), (1, 10, 428, 186)),
        ("US_west", (1, 40, 1666, 1047), (1, 8, 334, 210)),
        ("alaska", (1, 40, 850, 712), (1, 10, 284, 238)),
    ],
    ids=["US_east", "US_west", "alaska"],
)
def test_regional_windows_have_the_real_shapes_and_chunks_at_full_size(product, shape, chunks):
    rows, cols = region_window(product, *sample.GRIDS["full"])
    assert (rows.stop - rows.start, cols.stop - cols.start) == shape[2:]
    assert chunk_defaults(shape, (True, False, False, False), 4) == chunks


@pytest.mark.parametrize("product", names.PRODUCTS)
def test_every_variable_is_deflate_1_no_shuffle_little_endian(product, product_files):
    with netCDF4.Dataset(product_files[product]) as ds:
        assert ds.data_model == "NETCDF4"
        assert ds.disk_format == "HDF5"
        for name, var in ds.variables.items():
            f = var.filters()
            assert (f["zlib"], f["complevel"], f["shuffle"]) == (True, 1, False), name
            assert var.endian() == "little", name
            unlimited = [ds.dimensions[d].isunlimited() for d in var.dimensions]
            want = chunk_defaults(var.shape, unlimited, var.dtype.itemsize)
            assert var.chunking() == list(want), name


@pytest.mark.full
@pytest.mark.slow
def test_full_size_prog_file_has_the_real_storage(full_prog_file):
    (hs,) = [p for p in HS_CDLS if p.name.startswith("rtofs_glo_2ds_f024_prog")]
    storage = _hs_storage(hs)
    with netCDF4.Dataset(full_prog_file) as ds:
        assert (len(ds.dimensions["Y"]), len(ds.dimensions["X"])) == (3298, 4500)
        assert ds.data_model == "NETCDF4"
        for name, want in storage.items():
            var = ds[name]
            assert tuple(var.chunking()) == want["_ChunkSizes"][1], name
            assert var.filters()["complevel"] == want["_DeflateLevel"][1][0], name
            assert not var.filters()["shuffle"]
            assert var.endian() == want["_Endianness"]


@pytest.mark.full
@pytest.mark.slow
def test_full_size_prog_file_has_the_real_grid(full_prog_file):
    with netCDF4.Dataset(full_prog_file) as ds:
        lon = ds["Longitude"][:]
        lat = ds["Latitude"][:]
    np.testing.assert_allclose(lon[0, :3], [74.16, 74.24, 74.32], atol=1e-4)
    assert 433.9 < lon[0, -1] < 434.1
    assert lat[0, 0] == pytest.approx(-78.64)


# --- values ------------------------------------------------------------------------------------


def _data(ds, name):
    var = ds[name]
    var.set_auto_maskandscale(False)
    return var[:]


@pytest.mark.parametrize("product", names.PRODUCTS)
def test_valid_range_is_the_first_level_data_range(product, product_files):
    with netCDF4.Dataset(product_files[product]) as ds:
        for name in sample.variables(product):
            a = _data(ds, name)[0]
            first = a[0] if a.ndim == 3 else a
            ocean = first[first != FILL]
            vr = ds[name].valid_range
            assert vr.dtype == np.float32
            assert (vr[0], vr[1]) == (ocean.min(), ocean.max()), name


@pytest.mark.parametrize("product", names.PRODUCTS)
def test_land_holds_the_fill_value_in_every_variable(product, product_files):
    with netCDF4.Dataset(product_files[product]) as ds:
        lands = [_data(ds, n)[0] == FILL for n in sample.variables(product)]
    surface = [land[0] if land.ndim == 3 else land for land in lands]
    assert all((s == surface[0]).all() for s in surface)
    if product in names.PRODUCTS_2DS:
        assert 0.25 < surface[0].mean() < 0.5  # continents, Antarctica, oversampled poles
    else:
        assert 0.0 < surface[0].mean() < 0.9


def test_land_is_where_the_continents_are(product_files):
    with netCDF4.Dataset(product_files["prog"]) as ds:
        land = _data(ds, "sst")[0] == FILL
        lat, lon = ds["Latitude"][:], ds["Longitude"][:] % 360
    points = {  # (lat, lon east): land?
        "Sahara": (22, 15, True), "Amazonia": (-5, 298, True), "Siberia": (62, 100, True),
        "Australia": (-25, 135, True), "Antarctica": (-80, 0, True), "N Pacific": (30, 200, False),
        "S Atlantic": (-30, 345, False), "Indian Ocean": (-20, 80, False),
        "Mediterranean": (35, 18, False), "Hudson Bay": (60, 275, False),
    }  # fmt: skip
    for where, (la, lo, want) in points.items():
        j, i = np.unravel_index(np.argmin((lat - la) ** 2 + (lon - lo) ** 2), lat.shape)
        assert land[j, i] == want, where


def test_depth_files_are_fill_below_the_sea_floor(product_files):
    with netCDF4.Dataset(product_files["3ztio"]) as ds:
        temp = _data(ds, "temperature")[0]
        depth = ds["Depth"][:]
    assert depth.tolist() == list(sample.DEPTHS_3Z)
    filled = (temp == FILL).reshape(len(depth), -1).mean(axis=1)
    assert (np.diff(filled) >= 0).all()  # once below the floor, below it deeper too
    assert filled[-1] > filled[0] + 0.2


def test_temperature_falls_with_depth(product_files):
    with netCDF4.Dataset(product_files["3ztio"]) as ds:
        temp = _data(ds, "temperature")[0]
    wet = (temp != FILL).all(axis=0)  # columns deeper than 5500 m... or the deepest there are
    wet = wet if wet.any() else (temp[:20] != FILL).all(axis=0)
    means = [float(level[wet].mean()) for level in temp[:20]]
    assert means[0] > means[8] > means[12] > means[19]


def test_sst_looks_like_the_ocean(product_files):
    with netCDF4.Dataset(product_files["prog"]) as ds:
        sst = _data(ds, "sst")[0]
        lat = ds["Latitude"][:]
    ocean = sst != FILL
    tropics = ocean & (np.abs(lat) < 10)
    polar = ocean & (lat > 80)
    assert 27.0 < sst[tropics].mean() < 30.5
    assert 28.5 < sst[ocean].max() < 34.0
    assert sst[polar].mean() < 0.0
    assert sst[ocean].min() >= -1.81


def test_fields_look_like_the_ocean(product_files):
    with netCDF4.Dataset(product_files["prog"]) as ds:
        sss = _data(ds, "sss")[0]
        u = _data(ds, "u_velocity")[0, 0]
    with netCDF4.Dataset(product_files["diag"]) as ds:
        ssh = _data(ds, "ssh")[0]
    with netCDF4.Dataset(product_files["ice"]) as ds:
        ice = _data(ds, "ice_coverage")[0]
    ocean = sss != FILL
    assert 34.0 < np.median(sss[ocean]) < 35.5
    assert 1.0 < np.abs(u[ocean]).max() < 3.0  # the Gulf Stream jet
    assert -2.5 < ssh[ocean].min() < -1.0 and 0.5 < ssh[ocean].max() < 2.0
    assert ice[ocean].min() >= 0.0 and ice[ocean].max() == 1.0


# --- grid --------------------------------------------------------------------------------------


GRID_SPECS = [("small", (330, 450)), ("full", (3298, 4500)), ("660x900", (660, 900))]


@pytest.mark.parametrize(("spec", "shape"), GRID_SPECS, ids=[s for s, _ in GRID_SPECS])
def test_grid_shape_reads_names_and_sizes(spec, shape):
    assert sample.grid_shape(spec) == shape


BAD_GRIDS = [("huge", "bad grid 'huge'"), ("5x5", "too small"), ("12by12", "NYxNX")]


@pytest.mark.parametrize(("spec", "message"), BAD_GRIDS, ids=[s for s, _ in BAD_GRIDS])
def test_bad_grid_spec_says_what_is_allowed(spec, message):
    with pytest.raises(sample.SampleError, match=message):
        sample.grid_shape(spec)


@pytest.fixture(scope="module")
def grid():
    return sample.make_grid(*sample.GRIDS["small"])


def test_x_and_y_count_from_one(product_files):
    with netCDF4.Dataset(product_files["prog"]) as ds:
        assert ds["X"][:].tolist() == list(range(1, 451))
        assert ds["Y"][:].tolist() == list(range(1, 331))


def test_longitudes_start_at_74_16_and_rise_past_360(grid):
    lat, lon = grid
    assert lon.dtype == lat.dtype == np.float32
    np.testing.assert_allclose(lon[0], 74.16 + 0.8 * np.arange(450), atol=1e-4)
    assert lon[0, -1] > 360


def test_mercator_band_has_constant_latitude_rows_up_to_47n(grid):
    lat, lon = grid
    band = lat.max(axis=1) <= 47.0 + 1e-4
    assert lat[0, 0] == pytest.approx(-78.64)
    assert (lat[band] == lat[band][:, :1]).all() and (lon[band] == lon[0]).all()
    assert lat[band].max() == pytest.approx(47.0, abs=1e-4)
    dlat = np.diff(lat[band][:, 0])
    assert (dlat > 0).all() and dlat[-1] < dlat[len(dlat) // 2]  # Mercator: finer poleward


def test_arctic_patch_is_curvilinear_with_two_poles_over_land(grid):
    lat, lon = grid
    cap = lat.min(axis=1) > 47.0 + 1e-3
    assert cap.sum() > 50
    assert (np.ptp(lat[cap], axis=1) > 0).all()  # rows are not latitude circles
    assert not np.allclose(lon[cap][-5], lon[0])  # columns are not meridians
    fold = lat[-2]
    assert fold.max() > 89.5  # the fold line crosses the North Pole
    q = fold.size // 4  # the fold runs pole - North Pole - pole and back
    ends = [int(np.argmin(fold[:q])), q + int(np.argmin(fold[q : 3 * q]))]
    assert (fold[ends] < 70).all()
    land = land_mask(*sample.GRIDS["small"])
    assert land[-2, ends].all()
    assert np.abs((lon[-2, ends[0]] - lon[-2, ends[1]]) % 360 - 180) < 5  # opposite meridians


def test_last_row_duplicates_the_fold_row(grid, product_files):
    lat, lon = grid
    np.testing.assert_array_equal(lat[-1], lat[-2])
    np.testing.assert_array_equal(lon[-1], lon[-2])
    np.testing.assert_array_equal(lat[-2], lat[-2, ::-1])  # the fold meets itself mirrored
    with netCDF4.Dataset(product_files["prog"]) as ds:
        sst = _data(ds, "sst")[0]
    np.testing.assert_array_equal(sst[-1], sst[-2])


# --- time --------------------------------------------------------------------------------------


TIMES = [
    ("20260910", "f024", 45910.0, 20260911.0),
    ("20260911", "n024", 45910.0, 20260911.0),
    ("20260911", "n012", 45909.5, 20260910.5),
    ("20150701", "f001", 41820 + 1 / 24, 20150701 + 1 / 24),
]


@pytest.mark.parametrize(("date", "step", "mt", "datenum"), TIMES, ids=[t[1] for t in TIMES])
def test_mt_and_date_follow_the_valid_time(tmp_path, date, step, mt, datenum):
    path = sample.write_file(tmp_path / "f.nc", "prog", date, step, grid="24x30")
    with netCDF4.Dataset(path) as ds:
        assert ds["MT"][:].tolist() == pytest.approx([mt], abs=1e-9)
        assert ds["Date"][:].tolist() == pytest.approx([datenum], abs=1e-6)


# --- evolution, determinism, overrides ---------------------------------------------------------


def _sst(path):
    with netCDF4.Dataset(path) as ds:
        return _data(ds, "sst")[0]


def test_consecutive_steps_differ_a_little(small_day):
    folder = small_day / names.day_folder(SAMPLE_DATE)
    a, b = (_sst(folder / names.compose_name("prog", s)) for s in ("f001", "f002"))
    ocean = a != FILL
    assert ((b != FILL) == ocean).all()
    diff = np.abs(a[ocean] - b[ocean])
    assert diff.max() > 0.001
    assert diff.mean() < 0.1


def test_nowcast_n024_and_forecast_f000_are_the_same_time(small_day):
    folder = small_day / names.day_folder(SAMPLE_DATE)
    a, b = (_sst(folder / names.compose_name("prog", s)) for s in ("n024", "f000"))
    np.testing.assert_array_equal(a, b)


def test_same_arguments_give_the_same_data(tmp_path):
    a = sample.write_file(tmp_path / "a.nc", "prog", SAMPLE_DATE, "f003")
    b = sample.write_file(tmp_path / "b.nc", "prog", SAMPLE_DATE, "f003")
    c = sample.write_file(tmp_path / "c.nc", "prog", SAMPLE_DATE, "f003", seed=1)
    np.testing.assert_array_equal(_sst(a), _sst(b))
    assert not np.array_equal(_sst(a), _sst(c))


def test_field_overrides_are_written_exactly_with_nan_as_fill(tmp_path):
    ny, nx = 40, 60
    sst = np.full((ny, nx), 12.5, dtype=np.float32)
    sst[5:9, 10:20] = np.nan
    sst[20, 30] = 31.0
    path = sample.write_file(
        tmp_path / "f.nc", "prog", SAMPLE_DATE, "f024", grid=f"{ny}x{nx}", fields={"sst": sst}
    )
    with netCDF4.Dataset(path) as ds:
        got = _data(ds, "sst")[0]
        assert ds["sst"].valid_range.tolist() == [12.5, 31.0]
    np.testing.assert_array_equal(got, np.where(np.isnan(sst), FILL, sst))


BAD_FIELDS = [
    ({"temp": np.zeros((40, 60))}, "not a variable of prog files; choose from u_velocity"),
    ({"sst": np.zeros((41, 60))}, r"shape \(41, 60\); prog on this grid needs \(40, 60\)"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS, ids=["name", "shape"])
def test_bad_field_override_names_the_problem(tmp_path, fields, message):
    with pytest.raises(sample.SampleError, match=message):
        sample.write_file(tmp_path / "f.nc", "prog", SAMPLE_DATE, "f024", grid="40x60",
                             fields=fields)  # fmt: skip


# --- legacy NETCDF3 ----------------------------------------------------------------------------


def test_legacy_file_is_netcdf3_uncompressed_with_a_cadence_name(tmp_path, product_files):
    (path,) = sample.write_sample(tmp_path, "20150701", steps="f001", legacy=True)
    assert path.name == "rtofs_glo_2ds_f001_1hrly_prog.nc"
    with netCDF4.Dataset(path) as ds, netCDF4.Dataset(product_files["prog"]) as nc4:
        assert ds.data_model == "NETCDF3_CLASSIC"
        assert ds.experiment == "90.9"
        assert ds["sst"].long_name == " sea surf. temp.   [90.9H]"
        assert all(v.filters() is None for v in ds.variables.values())
        assert list(ds.variables) == list(nc4.variables)
        assert [v.ncattrs() for v in ds.variables.values()] == [
            v.ncattrs() for v in nc4.variables.values()
        ]


def test_legacy_prog_at_full_size_is_the_real_byte_size(tmp_path):
    """Header (from a small file) + full-size data = the 415,581,844 bytes of real files."""
    ny, nx = 60, 80
    path = sample.write_file(tmp_path / "l.nc", "prog", "20150701", "f001",
                                grid=f"{ny}x{nx}", legacy=True)  # fmt: skip

    def data_bytes(ny, nx):  # Y, X, Layer, Latitude, Longitude; MT, Date + 5 fields per record
        return 4 * ny + 4 * nx + 4 + 2 * 4 * ny * nx + 16 + 5 * 4 * ny * nx

    header = path.stat().st_size - data_bytes(ny, nx)
    assert header + data_bytes(3298, 4500) == 415_581_844


def test_legacy_3d_files_are_refused(tmp_path):
    with pytest.raises(sample.SampleError, match="only for 2-D products"):
        sample.write_file(tmp_path / "f.nc", "3ztio", SAMPLE_DATE, "f024", legacy=True)


# --- write_sample ------------------------------------------------------------------------------


def test_write_sample_expands_steps_per_product(tmp_path):
    paths = sample.write_sample(
        tmp_path, SAMPLE_DATE, steps="n024,f000-f006", products="prog,3ztio,US_east", grid="24x30"
    )
    assert [p.name for p in paths] == [
        *(names.compose_name("prog", s) for s in ("n024", "f000", "f001", "f002", "f003",
                                                  "f004", "f005", "f006")),
        "rtofs_glo_3dz_n024_daily_3ztio.nc",
        "rtofs_glo_3dz_n024_6hrly_hvr_US_east.nc",
        "rtofs_glo_3dz_f006_6hrly_hvr_US_east.nc",
    ]  # fmt: skip
    assert all(p.parent == tmp_path / "rtofs.20260708" for p in paths)


def test_write_sample_leaves_no_temporary_files(small_day):
    folder = small_day / names.day_folder(SAMPLE_DATE)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        names.compose_name("prog", s) for s in ("n024", "f000", "f001", "f002", "f003")
    )


def test_a_step_no_product_publishes_is_an_error(tmp_path):
    with pytest.raises(names.NotRtofsNameError, match="f001"):
        sample.write_sample(tmp_path, SAMPLE_DATE, steps="f001", products="3ztio")


def test_regional_file_has_40_levels_four_variables_and_no_modulo(product_files):
    with netCDF4.Dataset(product_files["US_east"]) as ds:
        assert ds["Depth"][:].tolist() == list(sample.DEPTHS_HVR)
        assert list(ds.variables)[-4:] == ["u", "v", "temperature", "salinity"]
        assert "modulo" not in ds["Longitude"].ncattrs()
        assert ds.history == "archv2ncdf3z"
        lon = ds["Longitude"][:] % 360
        assert 255 < lon[0, 0] < 265  # starts near 100°W like the real window


# --- command line ------------------------------------------------------------------------------


def _rtofs(*args):
    return subprocess.run(
        [sys.executable, "-m", "rtofs_lib", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_writes_the_files_and_prints_their_paths(tmp_path):
    done = _rtofs("sample", str(tmp_path), "--date", SAMPLE_DATE, "--steps", "n024,f001",
                  "--products", "prog,diag", "--grid", "30x40")  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = [Path(line) for line in done.stdout.split()]
    assert [p.name for p in printed] == [
        "rtofs_glo_2ds_n024_prog.nc", "rtofs_glo_2ds_f001_prog.nc",
        "rtofs_glo_2ds_n024_diag.nc", "rtofs_glo_2ds_f001_diag.nc",
    ]  # fmt: skip
    for p in printed:
        with netCDF4.Dataset(p) as ds:
            assert (len(ds.dimensions["Y"]), len(ds.dimensions["X"])) == (30, 40)


def test_cli_legacy_writes_cadence_names(tmp_path):
    done = _rtofs("sample", str(tmp_path), "--date", SAMPLE_DATE, "--steps", "f075",
                  "--grid", "30x40", "--legacy")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).name == "rtofs_glo_2ds_f075_3hrly_prog.nc"


CLI_ERRORS = [
    (("--grid", "huge"), "argument --grid: bad grid 'huge'"),
    (("--steps", "f999"), "step 'f999' is not published"),
    (("--products", "sst"), "unknown RTOFS product 'sst'"),
    (("--date", "2026-07-08"), "argument --date: bad date"),
]


@pytest.mark.parametrize(("args", "message"), CLI_ERRORS, ids=["grid", "step", "product", "date"])
def test_cli_usage_errors_exit_2_with_a_clear_message(tmp_path, args, message):
    base = ["sample", str(tmp_path), "--date", SAMPLE_DATE]
    if args[0] == "--date":
        base = base[:2]
    done = _rtofs(*base, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert not any(tmp_path.iterdir())
