"""The decorations of a map, drawn once per field style and raster.

A decorated canvas holds everything but the map and the per-file text: the frame, the
lon/lat ticks and labels, the colorbar with its ticks and units, the land swatch and the
title. :func:`decorations` draws it once and keeps the 16 most recently used per process;
the renderer copies it and fills the map slot (:func:`map_box`) for each file.

Examples
--------
>>> from rtofs_lib.maps.rasters import raster_for
>>> map_box("sst", raster_for(None, "low"))
(68, 50, 1500, 708)
>>> info_text(dt.datetime(2026, 7, 8, 6), "f006")
'valid 2026-07-08 06:00 UTC  ·  forecast f006'
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rtofs_lib.maps.colors import BACKGROUND, INK, LAND, N_COLORS
from rtofs_lib.maps.rasters import LOW_WIDTH
from rtofs_lib.maps.styles import FieldStyle, field_style
from rtofs_lib.maps.text import font, put_text

if TYPE_CHECKING:
    from rtofs_lib.fields.regrid import Raster

__all__ = ["Layout", "decorations", "info_text", "map_box"]

#: Decorated canvases kept per process (by field style and raster).
MAX_DECORATIONS = 16


@dataclass
class Layout:
    """A decorated canvas with the map slot and the per-file text position."""

    canvas: np.ndarray  # uint8 (H, W) palette indices, map slot left as LAND; read-only
    map_x: int
    map_y: int
    map_w: int
    map_h: int
    info_x: int  # right edge of the per-file text
    info_y: int  # baseline of the per-file text
    font_px: int = 16


@dataclass(frozen=True)
class _Metrics:
    """Text size, line width and margins in pixels, scaled with the map's width."""

    fs: int  # font size
    line: int  # frame and tick line width
    pad: int
    tick: int  # tick length
    bar_h: int  # colorbar height
    left: int  # margins around the map
    right: int
    top: int
    bottom: int


def _metrics(map_width: int) -> _Metrics:
    s = max(0.8, map_width / LOW_WIDTH)  # scale of text and margins (1 for a global low map)
    fs = max(11, round(16 * s))
    pad = round(10 * s)
    bar_h = round(fs * 1.2)
    return _Metrics(
        fs=fs, line=max(1, round(s)), pad=pad, tick=round(6 * s), bar_h=bar_h,
        left=round(fs * 3.6) + pad, right=round(fs * 2.2), top=round(fs * 1.25) + 3 * pad,
        bottom=pad + fs + pad + pad + bar_h + round(fs * 0.5) + fs + pad + fs + 2 * pad,
    )  # fmt: skip


# --- tick values and labels ----------------------------------------------------------------------


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 45, 60, 90):
        if step >= raw:
            return step
    return 90.0


def _fmt_deg(value: float, axis: str) -> str:
    """``30°E``, ``45°S``, ``180°``: a lon (``axis="lon"``, wrapped) or lat label."""
    if axis == "lon":
        value = (value + 180.0) % 360.0 - 180.0
        if abs(value) < 1e-9 or abs(abs(value) - 180) < 1e-9:
            return f"{abs(value):g}°"
        return f"{abs(value):g}°{'E' if value > 0 else 'W'}"
    if abs(value) < 1e-9:
        return "0°"
    return f"{abs(value):g}°{'N' if value > 0 else 'S'}"


def _colorbar_ticks(vmin: float, vmax: float) -> list[float]:
    """Round tick values for the colorbar, inside ``vmin..vmax`` (matplotlib's locator)."""
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]).tick_values(vmin, vmax)
    eps = 1e-9 * (vmax - vmin)
    return [float(t) for t in ticks if vmin - eps <= t <= vmax + eps]


def _fmt_tick(t: float, ticks: list[float]) -> str:
    """A colorbar label with the decimals the tick step needs (``−`` for minus)."""
    step = min((b - a for a, b in itertools.pairwise(ticks)), default=1.0)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    s = f"{t:.{decimals}f}"
    return "0" if s.strip("-0.") == "" else s.replace("-", "−")


# --- drawing -------------------------------------------------------------------------------------


def _frame(c: np.ndarray, x: int, y: int, w: int, h: int, line: int) -> None:
    """Draw a ``line``-wide frame just outside the box ``(x, y, w, h)``."""
    c[y - line : y, x - line : x + w + line] = INK
    c[y + h : y + h + line, x - line : x + w + line] = INK
    c[y - line : y + h + line, x - line : x] = INK
    c[y - line : y + h + line, x + w : x + w + line] = INK


def _tick_down(c: np.ndarray, x: int, y: int, m: _Metrics, x_min: int) -> None:
    """A tick mark hanging down from ``(x, y)``, centred on column ``x``, not left of x_min."""
    c[y : y + m.tick, max(x_min, x - m.line // 2) : x + (m.line + 1) // 2] = INK


def _lon_axis(c: np.ndarray, raster: Raster, m: _Metrics) -> None:
    """Longitude ticks and labels under the map."""
    x0, mw, below = m.left, raster.width, m.top + raster.height + m.line
    span = raster.lon_span
    dlon = span / mw
    step = _nice_step(span, 8 if mw >= 900 else 5)
    k = math.ceil(raster.lon0 / step) * step
    while k <= raster.lon0 + span + 1e-9:
        px = x0 + round((k - raster.lon0) / dlon)
        if x0 <= px <= x0 + mw:
            _tick_down(c, px, below, m, x0)
            put_text(c, _fmt_deg(k, "lon"), font(m.fs), px, below + m.tick + m.pad // 2, "c")
        k += step


def _lat_axis(c: np.ndarray, raster: Raster, m: _Metrics) -> None:
    """Latitude ticks and labels left of the map."""
    x0, y0, mh, line = m.left, m.top, raster.height, m.line
    dlat = (raster.lat1 - raster.lat0) / mh
    step = _nice_step(raster.lat1 - raster.lat0, 6 if mh >= 600 else 4)
    k = math.ceil(raster.lat0 / step) * step
    while k <= raster.lat1 + 1e-9:
        py = y0 + round((raster.lat1 - k) / dlat)
        if y0 <= py <= y0 + mh:
            c[max(y0, py - line // 2) : py + (line + 1) // 2, x0 - line - m.tick : x0 - line] = INK
            label_x = x0 - line - m.tick - m.pad // 2
            put_text(c, _fmt_deg(k, "lat"), font(m.fs), label_x, py, "r", "m")
        k += step


def _colorbar(c: np.ndarray, style: FieldStyle, raster: Raster, m: _Metrics) -> None:
    """The colorbar under the lon labels: the colormap's entries, ticks, title and units."""
    bar_w = round(raster.width * 0.6)
    bx = m.left + (raster.width - bar_w) // 2
    by = m.top + raster.height + m.line + m.tick + m.pad + m.fs + 2 * m.pad
    ramp = (np.arange(bar_w) * N_COLORS // bar_w).astype(np.uint8)
    c[by : by + m.bar_h, bx : bx + bar_w] = ramp[None, :]
    _frame(c, bx, by, bar_w, m.bar_h, m.line)
    below = by + m.bar_h + m.line
    ticks = _colorbar_ticks(style.vmin, style.vmax)
    for t in ticks:
        px = bx + round((t - style.vmin) / (style.vmax - style.vmin) * (bar_w - 1))
        _tick_down(c, px, below, m, bx)
        put_text(c, _fmt_tick(t, ticks), font(m.fs), px, below + m.tick + m.pad // 3, "c")
    label_y = below + m.tick + m.pad // 3 + m.fs + m.pad
    put_text(c, f"{style.title} [{style.units}]", font(m.fs), bx + bar_w // 2, label_y, "c")
    _land_swatch(c, bx + bar_w + round(m.fs * 1.5), by, m)


def _land_swatch(c: np.ndarray, x: int, y: int, m: _Metrics) -> None:
    """A framed square of the land colour labelled "land", where the canvas has room."""
    size = m.bar_h
    if x + size + 5 * m.fs < c.shape[1]:
        c[y : y + size, x : x + size] = LAND
        _frame(c, x, y, size, size, m.line)
        put_text(c, "land", font(m.fs), x + size + m.pad, y + size // 2, "l", "m")


def _layout(style: FieldStyle, raster: Raster) -> Layout:
    """Draw the static decorations of ``style`` on ``raster`` (see :func:`decorations`)."""
    m = _metrics(raster.width)
    x0, y0, mw, mh = m.left, m.top, raster.width, raster.height
    c = np.full((m.top + mh + m.bottom, m.left + mw + m.right), BACKGROUND, dtype=np.uint8)
    c[y0 : y0 + mh, x0 : x0 + mw] = LAND
    _frame(c, x0, y0, mw, mh, m.line)
    _lon_axis(c, raster, m)
    _lat_axis(c, raster, m)
    _colorbar(c, style, raster, m)
    # title: the field name, left; the per-file text goes right-aligned on the same line
    title_y = y0 - m.line - m.pad
    title_font = font(round(m.fs * 1.25), bold=True)
    put_text(c, f"RTOFS Global · {style.title}", title_font, x0 - m.line, title_y, "l", "s")
    c.setflags(write=False)
    return Layout(
        canvas=c, map_x=x0, map_y=y0, map_w=mw, map_h=mh,
        info_x=x0 + mw + m.line, info_y=title_y, font_px=m.fs,
    )  # fmt: skip


@lru_cache(maxsize=MAX_DECORATIONS)
def decorations(style: FieldStyle, raster: Raster) -> Layout:
    """The decorated canvas (read-only) of a style and raster, drawn once per process.

    Examples
    --------
    >>> from rtofs_lib.maps.rasters import raster_for
    >>> from rtofs_lib.maps.styles import FIELDS
    >>> layout = decorations(FIELDS["sst"], raster_for("-80,-40,20,50", "low"))
    >>> layout.canvas.shape, layout.canvas.flags.writeable
    ((1165, 1423), False)
    >>> decorations(FIELDS["sst"], raster_for("-80,-40,20,50", "low")) is layout
    True
    """
    return _layout(style, raster)


def map_box(field: str | FieldStyle, raster: Raster) -> tuple[int, int, int, int]:
    """Return ``(x, y, width, height)`` of the map inside a decorated image of ``raster``.

    The same layout :func:`rtofs_lib.maps.render.render_file` and
    :func:`rtofs_lib.maps.render.render_array` draw: a click at image pixel ``(px, py)``
    is map pixel ``(px - x, py - y)``.
    """
    layout = decorations(field_style(field), raster)
    return layout.map_x, layout.map_y, layout.map_w, layout.map_h


def info_text(valid_time: dt.datetime | None, step: str = "", depth: float | None = None) -> str:
    """The per-file text at the top right: depth, valid time and step."""
    parts = []
    if depth is not None:
        parts.append(f"depth {depth:g} m")
    if valid_time is not None:
        parts.append(f"valid {valid_time:%Y-%m-%d %H:%M} UTC")
    if step:
        kind = "nowcast" if step.startswith("n") else "forecast"
        parts.append(f"{kind} {step}")
    return "  ·  ".join(parts)
