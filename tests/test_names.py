"""RTOFS file names, steps, valid times and day folders (rtofs_lib.fetch.names)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtofs_lib.errors import NotRtofsNameError
from rtofs_lib.fetch import names

LISTING = (
    Path(__file__).resolve().parents[2] / "shared" / "rtofs" / "nomads_listing_rtofs.20260708.html"
)


def _listed_netcdf_names() -> list[str]:
    html = LISTING.read_text()
    hrefs = re.findall(r'<a href="([^"/]+\.nc)">', html)
    return sorted(set(hrefs))


def test_published_step_counts_match_nomads():
    assert (len(names.STEPS_2DS), len(names.STEPS_3DZ_DAILY), len(names.STEPS_3DZ_6HRLY)) == (
        138,
        9,
        36,
    )


def test_2ds_cadence_is_hourly_then_three_hourly():
    f = [int(s[1:]) for s in names.STEPS_2DS if s[0] == "f"]
    assert f[:73] == list(range(0, 73))
    assert f[73:] == list(range(75, 193, 3))


def test_every_netcdf_name_in_the_real_listing_parses():
    listed = _listed_netcdf_names()
    assert len(listed) == 138 * 3 + 9 * 4 + 36 * 3
    parsed = [names.parse_name(n) for n in listed]
    assert all(p.filename == n for p, n in zip(parsed, listed, strict=True))


def test_real_listing_holds_exactly_the_published_steps():
    listed = set(_listed_netcdf_names())
    expected = {names.compose_name(p, s) for p in names.PRODUCTS for s in names.steps_for(p)}
    assert listed == expected


@pytest.mark.parametrize(
    ("name", "product", "step", "family"),
    [
        ("rtofs_glo_2ds_f024_prog.nc", "prog", "f024", "2ds"),
        ("rtofs_glo_2ds_n000_diag.nc", "diag", "n000", "2ds"),
        ("rtofs_glo_2ds_f192_ice.nc", "ice", "f192", "2ds"),
        ("rtofs_glo_3dz_n024_daily_3ztio.nc", "3ztio", "n024", "3dz_daily"),
        ("rtofs_glo_3dz_f168_daily_3zvio.nc", "3zvio", "f168", "3dz_daily"),
        ("rtofs_glo_3dz_f006_6hrly_hvr_US_east.nc", "US_east", "f006", "3dz_6hrly"),
        ("rtofs_glo_3dz_n018_6hrly_hvr_alaska.nc", "alaska", "n018", "3dz_6hrly"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.endswith(".nc") else None,
)
def test_parse_current_names(name, product, step, family):
    n = names.parse_name(name)
    assert (n.product, n.step, n.family, n.legacy) == (product, step, family, False)


@pytest.mark.parametrize(
    ("name", "cadence"),
    [
        ("rtofs_glo_2ds_f001_1hrly_prog.nc", "1hrly"),
        ("rtofs_glo_2ds_f075_3hrly_diag.nc", "3hrly"),
        ("rtofs_glo_2ds_n024_daily_prog.nc", "daily"),
    ],
    ids=["1hrly", "3hrly", "daily"],
)
def test_parse_legacy_names_keeps_the_cadence_tag(name, cadence):
    n = names.parse_name(name)
    assert n.legacy and n.cadence == cadence and n.filename == name


@pytest.mark.parametrize(
    "bad",
    [
        "rtofs_glo_2ds_f024_prog.grb2",
        "rtofs_glo_2ds_f073_prog.nc",  # not published: 3-hourly after f072 is f075
        "rtofs_glo_3dz_f012_daily_3ztio.nc",  # daily 3dz only every 24 h
        "rtofs_glo_2ds_x024_prog.nc",
        "rtofs_glo.t00z.f024_alaska_std.grb2",
        "gfs.t00z.pgrb2.0p25.f000",
        "rtofs_glo_2ds_f024_prog.nc.part",
        "",
    ],
    ids=["grib-ext", "f073", "3dz-f012", "x-step", "grib2", "gfs", "temp-suffix", "empty"],
)
def test_non_rtofs_names_raise_a_clear_error(bad):
    with pytest.raises(NotRtofsNameError, match=r"RTOFS|step"):
        names.parse_name(bad)


def test_error_for_a_foreign_name_shows_an_example():
    with pytest.raises(NotRtofsNameError, match=r"expected e\.g\. rtofs_glo_2ds_f024_prog\.nc"):
        names.parse_name("sst.nc")


@pytest.mark.parametrize(
    ("date", "step", "expected"),
    [
        ("20260708", "n000", dt.datetime(2026, 7, 7, 0)),
        ("20260708", "n024", dt.datetime(2026, 7, 8, 0)),
        ("20211118", "n014", dt.datetime(2021, 11, 17, 14)),
        ("20260708", "f000", dt.datetime(2026, 7, 8, 0)),
        ("20260708", "f192", dt.datetime(2026, 7, 16, 0)),
        ("20261231", "f075", dt.datetime(2027, 1, 3, 3)),
    ],
    ids=["n000", "n024", "n014-2021", "f000", "f192", "year-end"],
)
def test_valid_time_rule(date, step, expected):
    assert names.valid_time(date, step) == expected


def test_n024_and_f000_are_the_same_instant():
    assert names.valid_time("20260708", "n024") == names.valid_time("20260708", "f000")


def test_cycle_date_comes_from_the_day_folder():
    n = names.parse_name("/lustre/archive/rtofs.20260708/rtofs_glo_2ds_f024_prog.nc")
    assert n.date == dt.date(2026, 7, 8)
    assert n.valid_time == dt.datetime(2026, 7, 9)


def test_valid_time_without_a_date_says_how_to_give_one():
    with pytest.raises(NotRtofsNameError, match="date="):
        _ = names.parse_name("rtofs_glo_2ds_f024_prog.nc").valid_time


def test_day_folder_round_trip():
    assert names.day_folder("20260708") == "rtofs.20260708"
    assert names.parse_day_folder("rtofs.20260708/") == dt.date(2026, 7, 8)


@pytest.mark.parametrize("bad", ["rtofs.2026078", "rtofs.20261340", "gfs.20260708"])
def test_bad_day_folder_raises(bad):
    with pytest.raises(NotRtofsNameError):
        names.parse_day_folder(bad)


@pytest.mark.parametrize(
    ("spec", "product", "count"),
    [
        (None, "prog", 138),
        ("all", "diag", 138),
        ("n024", "prog", 1),
        ("f000-f072", "prog", 73),
        ("f000-f192", "prog", 113),
        ("n000-n024,f000-f192", "prog", 138),
        ("f000-f192", "3ztio", 8),
        ("n024,f024-f192", "US_east", 1 + 29),
    ],
    ids=["default", "all", "one", "days1-3", "forecast", "everything", "3dz", "6hrly"],
)
def test_expand_steps_follows_the_real_cadence(spec, product, count):
    assert len(names.expand_steps(spec, product)) == count


def test_expand_steps_orders_and_deduplicates():
    assert names.expand_steps("f001,n024,f000-f001", "prog") == ("n024", "f000", "f001")


@pytest.mark.parametrize(
    "spec",
    ["f074", "f010-f003", "n000-f010", "24"],
    ids=["unpublished", "reversed", "mixed", "bare"],
)
def test_expand_steps_rejects_bad_specs(spec):
    with pytest.raises(NotRtofsNameError):
        names.expand_steps(spec, "prog")


def test_expand_products_rejects_unknown_product_listing_the_choices():
    with pytest.raises(NotRtofsNameError, match="prog, diag, ice"):
        names.expand_products("prog,sst")


_any_name = st.sampled_from(names.PRODUCTS).flatmap(
    lambda p: st.tuples(st.just(p), st.sampled_from(names.steps_for(p)))
)


@given(_any_name)
def test_compose_then_parse_round_trips(product_step):
    product, step = product_step
    parsed = names.parse_name(names.compose_name(product, step))
    assert (parsed.product, parsed.step) == (product, step)


@given(
    st.sampled_from(names.PRODUCTS_2DS),
    st.sampled_from(names.STEPS_2DS),
    st.sampled_from(names.LEGACY_CADENCES),
)
def test_legacy_names_round_trip_when_cadence_fits(product, step, cadence):
    hours = int(step[1:])
    fits = cadence == "1hrly" or (cadence == "3hrly" and hours % 3 == 0) or hours % 24 == 0
    if not fits:
        with pytest.raises(NotRtofsNameError):
            names.parse_name(f"rtofs_glo_2ds_{step}_{cadence}_{product}.nc")
        return
    name = names.compose_name(product, step, cadence=cadence)
    assert names.parse_name(name).filename == name


@given(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), st.sampled_from(names.STEPS_2DS))
def test_valid_time_is_cycle_offset(date, step):
    hours = int(step[1:]) - (24 if step[0] == "n" else 0)
    assert names.valid_time(date, step) == dt.datetime.combine(date, dt.time()) + dt.timedelta(
        hours=hours
    )


@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes_the_parser(text):
    with contextlib.suppress(NotRtofsNameError):
        names.parse_name(text)
