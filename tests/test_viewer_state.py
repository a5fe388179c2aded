"""The viewer's selection, without widgets: regions, pairing of day B, colours, read-ahead."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.notebook.viewer import state

DAY, DAY_B = "20260708", "20260707"


def test_every_region_in_the_menu_has_its_box():
    for name in state.region_names()[:-1]:
        assert state.Selection(day=DAY, region=name).region_box == state.REGION_PRESETS[name]
    custom = state.Selection(day=DAY, region=state.CUSTOM, box="160,-150,-10,20")
    assert custom.region_box == (160.0, -150.0, -10.0, 20.0)
    assert state.preset_boxes()[0] is None


def test_a_bad_custom_box_is_refused():
    with pytest.raises(ValueError, match="bad region"):
        _ = state.Selection(day=DAY, region=state.CUSTOM, box="160,-150,20").region_box


def test_day_b_pairs_by_valid_time_same_kind_first_or_by_step():
    sel = state.Selection(day=DAY, day_b=DAY_B, mode="side")
    steps_b = ["n024", "f024", "f025", "f026"]
    assert sel.paired_step("n024", steps_b) == "f024"
    assert sel.paired_step("f002", steps_b) == "f026"
    assert names.valid_time(DAY_B, "f026") == names.valid_time(DAY, "f002")
    assert sel.paired_step("f003", steps_b) == ""
    assert sel.paired_step("", steps_b) == ""
    by_step = replace(sel, pair="step")
    assert by_step.paired_step("f024", steps_b) == "f024"
    assert by_step.paired_step("f001", steps_b) == ""


def test_day_b_pairs_a_nowcast_with_a_nowcast_when_it_has_one():
    sel = state.Selection(day=DAY, day_b=DAY)
    assert sel.paired_step("n024", ["f000", "n024"]) == "n024"


def test_missing_day_b_file_says_what_is_missing():
    sel = state.Selection(day=DAY, day_b=DAY_B, field="ssh")
    assert "rtofs.20260707 has no diag file for 2026-07-08 00:00" in str(sel.missing_b("n024"))
    assert "for step n024" in str(replace(sel, pair="step").missing_b("n024"))


def test_style_takes_the_chosen_colours_and_never_an_empty_range():
    style = state.Selection(day=DAY, cmap="viridis", vrange=(10.0, 20.0)).style()
    assert (style.cmap, style.vmin, style.vmax) == ("viridis", 10.0, 20.0)
    flat = state.Selection(day=DAY, vrange=(5.0, 5.0)).style()
    assert flat.vmax > flat.vmin
    diff = state.Selection(day=DAY).diff_style()
    assert (diff.vmin, diff.vmax, diff.cmap) == (-2.0, 2.0, "balance")


def test_depth_counts_for_3d_fields_only():
    assert state.Selection(day=DAY, field="sst", depth=100.0).depth_value is None
    assert state.Selection(day=DAY, field="temperature", depth=100.0).depth_value == 100.0


def test_step_and_read_ahead_wrap_like_play():
    sel = state.Selection(day=DAY, index=7)
    assert sel.step(["n024", "f001"]) == "f001"
    assert sel.step([]) == ""
    assert state.ahead(["n024", "f001", "f002"], 2, 2) == ["n024", "f001"]
    assert state.ahead(["n024"], 0, 2) == []


def test_choosing_the_day(tmp_path):
    assert state.choose_day(tmp_path, [DAY_B, DAY], None) == DAY
    assert state.choose_day(tmp_path, [DAY_B, DAY], "20260707") == DAY_B
    with pytest.raises(RtofsError, match=r"no folder rtofs\.20260101; days present"):
        state.choose_day(tmp_path, [DAY], "20260101")
    with pytest.raises(RtofsError, match=r"no rtofs\.YYYYMMDD day folders"):
        state.choose_day(tmp_path, [], None)
    with pytest.raises(ValueError, match="unknown field 'sea'"):
        state.check_field("sea")
