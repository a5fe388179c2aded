"""The viewer's widgets, built: day and compare, field and region, step, colours, images.

Each function returns new, unconnected widgets; :class:`~.view.SSTViewer` lays them out and
observes them.

Examples
--------
>>> day, mode, day_b, pair = day_controls(["20260707", "20260708"], "20260708")
>>> day.value, day_b.value, mode.value
('20260708', '20260707', 'single')
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from rtofs_lib.fetch import names
from rtofs_lib.maps.styles import FIELDS

from . import state

__all__ = [
    "click_events",
    "colour_controls",
    "day_controls",
    "field_controls",
    "image_widgets",
    "step_controls",
]


def day_controls(
    days: list[str], day: str
) -> tuple[w.Dropdown, w.ToggleButtons, w.Dropdown, w.ToggleButtons]:
    """``(day, mode, day_b, pair)``: the day, the compare mode, day B and the pairing rule."""
    options = [(f"{names.parse_date(d):%Y-%m-%d}", d) for d in reversed(days)]
    other = next((d for d in reversed(days) if d != day), day)
    day_w = w.Dropdown(options=options, value=day, description="Day")
    mode = w.ToggleButtons(options=state.MODES, value="single", description="Compare")
    mode.style.button_width = "auto"
    day_b = w.Dropdown(options=options, value=other, description="Day B")
    pair = w.ToggleButtons(options=state.PAIRINGS, value="valid", description="Pair by")
    pair.style.button_width = "auto"
    return day_w, mode, day_b, pair


def field_controls(field: str) -> tuple[w.Dropdown, w.Dropdown, w.Dropdown, w.Text]:
    """``(field, depth, region, box)``; the box is for :data:`~.state.CUSTOM` regions."""
    field_w = w.Dropdown(
        options=[(FIELDS[f].title, f) for f in state.VIEW_FIELDS],
        value=field,
        description="Field",
    )
    depth = w.Dropdown(options=[("0 m", 0.0)], value=0.0, description="Depth")
    region = w.Dropdown(options=state.region_names(), value="Global", description="Region")
    box = w.Text(
        value="-80,-50,30,45",
        placeholder="LON0,LON1,LAT0,LAT1",
        description="Box",
        continuous_update=False,
        disabled=True,
    )
    return field_w, depth, region, box


def step_controls(play_interval: int) -> tuple[w.IntSlider, w.Play, w.HTML]:
    """``(slider, play, step_label)``: the step slider, linked to a play button."""
    slider = w.IntSlider(
        min=0, max=0, value=0, description="Step", readout=False, continuous_update=True
    )
    play = w.Play(min=0, max=0, value=0, interval=play_interval, repeat=True)
    w.jslink((play, "value"), (slider, "value"))
    w.jslink((play, "max"), (slider, "max"))
    return slider, play, w.HTML()


def colour_controls(
    field: str, size: str
) -> tuple[w.Dropdown, w.FloatRangeSlider, w.ToggleButtons]:
    """``(cmap, range, size)``: colormap, colour range (the field's own) and resolution."""
    style = FIELDS[field]
    lo, hi, step = state.range_bounds(field)
    cmap = w.Dropdown(options=state.COLORMAPS, value=style.cmap, description="Colours")
    vrange = w.FloatRangeSlider(
        value=(style.vmin, style.vmax),
        min=lo,
        max=hi,
        step=step,
        description="Range",
        continuous_update=False,
        readout_format=".2f",
    )
    size_w = w.ToggleButtons(options=[("low", "low"), ("high", "high")], value=size)
    size_w.style.button_width = "4em"
    return cmap, vrange, size_w


def image_widgets() -> tuple[w.Image, w.Image, w.Image, w.HTML]:
    """``(image, image_b, series_image, status)``: the maps, the series plot, the status."""
    image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
    image_b = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
    series_image = w.Image(format="png", layout=w.Layout(max_width="100%"))
    return image, image_b, series_image, w.HTML()


def click_events(images: dict[str, w.Image], handler: Callable[[dict, str], None]) -> list:
    """ipyevents click listeners on ``images`` (name → widget) calling ``handler(event, name)``.

    Raises ImportError when ipyevents is missing.
    """
    from ipyevents import Event

    events = []
    for which, img in images.items():
        ev = Event(source=img, watched_events=["click"], prevent_default_action=True)
        ev.on_dom_event(lambda event, which=which: handler(event, which))
        events.append(ev)
    return events
