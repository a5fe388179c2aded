"""Fast maps of RTOFS fields: palette-index images written as palette-mode PNGs.

The fast path never makes a plot. A field is gathered onto a regular lon/lat raster with a
precomputed nearest-neighbour index (:mod:`rtofs_lib.fields.regrid`, built once per grid and
cached), turned into 8-bit palette indices with one scale-and-clip pass, and copied into a
canvas that already holds the decorations: frame, lon/lat ticks, colorbar, field name and
units. Those are drawn once per field style and raster and kept in this process. Per file,
only the valid time and step are written (a few ms with Pillow), and the canvas is encoded
as a palette ("P" mode) PNG at compress level 1.

The 256-entry palette:

=========  =====================================================================
0-239      the field's colormap (cmocean), ``vmin`` → 0, ``vmax`` → 239, clipped
240        land, and no data (outside the grid: south of ~78.6°S); one colour
           because the grid's southern edge lies on the Antarctic ice shelves
241        background (white)
242-255    text and lines, light grey → black (anti-aliased text)
=========  =====================================================================

Sizes: ``low`` fits the map in about 1500 × 1000 pixels (a global map is 1500 × 708,
0.24° per pixel); ``high`` is native 1/12° detail, 0.08° per pixel (4500 × 2125 global),
never coarser than ``low``.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> tmp = tempfile.mkdtemp()
>>> path = sample.write_file(tmp + "/rtofs_glo_2ds_f024_prog.nc", "prog", "20260708", "f024")
>>> [p.name for p in render_file(path, tmp + "/maps", sizes=["low"], cache_dir=tmp + "/cache")]
['sst.low.png']
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtofs_lib import atomic
from rtofs_lib.fields import netcdf
from rtofs_lib.fields.grid import Grid, RasterIndex

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from rtofs_lib.fields.netcdf import FieldData
    from rtofs_lib.fields.regrid import Raster

__all__ = [
    "FIELDS",
    "LAND",
    "N_COLORS",
    "SIZES",
    "FieldStyle",
    "map_indices",
    "output_path",
    "palette",
    "parse_region",
    "prepare",
    "quantise",
    "raster_for",
    "render_array",
    "render_file",
]

#: Palette entries given to the colormap (indices 0 … N_COLORS-1).
N_COLORS = 240
#: Palette index of land and of pixels with no grid point (outside the grid).
LAND = 240
#: Palette index of the background around the map.
BACKGROUND = 241
#: Palette index of black; 242 … 254 are lighter greys for anti-aliased text.
INK = 255
_INK_LEVELS = 14  # indices 242..255

LAND_RGB = (196, 192, 184)
BACKGROUND_RGB = (255, 255, 255)

#: Map sizes: ``low`` ≈ 1500 px wide, ``high`` native 1/12° (0.08° per pixel).
SIZES = ("low", "high")
LOW_WIDTH = 1500
LOW_MAX_HEIGHT = 1000
HIGH_RESOLUTION = 0.08
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class FieldStyle:
    """How one field is drawn.

    Attributes
    ----------
    name
        Field name used on the command line and in output file names.
    title
        Human name drawn above the map.
    variables
        netCDF variables read (two for a speed computed from u and v).
    vmin, vmax
        Fixed colour range; values outside are clipped to the end colours.
    cmap
        cmocean colormap name.
    units
        Units label under the colorbar.
    products
        Files the variables live in (for error hints).
    """

    name: str
    title: str
    variables: tuple[str, ...]
    vmin: float
    vmax: float
    cmap: str
    units: str
    products: str = ""

    def __post_init__(self) -> None:
        if not self.vmax > self.vmin:
            raise ValueError(f"{self.name}: need vmin < vmax, got {self.vmin}, {self.vmax}")


#: Default style of each renderable field.
FIELDS: dict[str, FieldStyle] = {
    s.name: s
    for s in (
        FieldStyle("sst", "Sea surface temperature", ("sst",), -2.0, 32.0, "thermal", "°C",
                   "prog"),
        FieldStyle("sss", "Sea surface salinity", ("sss",), 30.0, 38.0, "haline", "psu", "prog"),
        FieldStyle("ssh", "Sea surface height", ("ssh",), -1.5, 1.5, "balance", "m", "diag"),
        FieldStyle("speed", "Surface current speed", ("u_velocity", "v_velocity"), 0.0, 1.5,
                   "speed", "m/s", "prog"),
        FieldStyle("temperature", "Sea water potential temperature", ("temperature",), -2.0,
                   30.0, "thermal", "°C", "3ztio"),
        FieldStyle("salinity", "Sea water salinity", ("salinity",), 30.0, 38.0, "haline", "psu",
                   "3zsio"),
    )
}  # fmt: skip


def _style(field_or_style: str | FieldStyle) -> FieldStyle:
    if isinstance(field_or_style, FieldStyle):
        return field_or_style
    try:
        return FIELDS[field_or_style]
    except KeyError:
        raise ValueError(
            f"unknown field {field_or_style!r}; choose one of {', '.join(FIELDS)}"
        ) from None


# --- palette and quantisation --------------------------------------------------------------------


@cache
def _colormap_rgb(cmap: str) -> np.ndarray:
    """``(N_COLORS, 3)`` uint8 colours of a cmocean (or matplotlib) colormap."""
    try:
        import cmocean

        cm = cmocean.cm.cmap_d[cmap]
    except KeyError:
        import matplotlib

        cm = matplotlib.colormaps[cmap]
    rgba = cm(np.linspace(0.0, 1.0, N_COLORS))
    return np.round(rgba[:, :3] * 255).astype(np.uint8)


def _ink_rgb() -> np.ndarray:
    levels = np.arange(1, _INK_LEVELS + 1)
    grey = np.round(255 * (1 - levels / _INK_LEVELS)).astype(np.uint8)
    return np.repeat(grey[:, None], 3, axis=1)


@cache
def _palette_bytes(cmap: str) -> bytes:
    pal = np.empty((256, 3), dtype=np.uint8)
    pal[:N_COLORS] = _colormap_rgb(cmap)
    pal[LAND] = LAND_RGB
    pal[BACKGROUND] = BACKGROUND_RGB
    pal[BACKGROUND + 1 :] = _ink_rgb()
    return pal.tobytes()


def palette(field: str | FieldStyle = "sst") -> np.ndarray:
    """Return the ``(256, 3)`` uint8 RGB palette of a field's maps (see the module docs)."""
    return np.frombuffer(_palette_bytes(_style(field).cmap), dtype=np.uint8).reshape(256, 3)


def quantise(
    values: np.ndarray,
    vmin: float,
    vmax: float,
    *,
    out: np.ndarray | None = None,
    work: np.ndarray | None = None,
) -> np.ndarray:
    """Map float values to palette indices: ``vmin..vmax`` → ``0..N_COLORS-1``, NaN → LAND.

    Parameters
    ----------
    values
        Any float array (float32 stays float32: no float64 temporaries).
    vmin, vmax
        The colour range; values outside are clipped to the end colours.
    out
        uint8 array of ``values.shape`` to fill (may be a view into a canvas).
    work
        float32 scratch of ``values.shape`` (saves an allocation).

    Examples
    --------
    >>> quantise(np.array([-5.0, -2.0, 15.0, 32.0, np.nan], np.float32), -2, 32)
    array([  0,   0, 120, 239, 240], dtype=uint8)
    """
    values = np.asarray(values)
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    scale = np.float32(N_COLORS / (vmax - vmin))
    if work is None:
        work = np.empty(values.shape, dtype=np.float32)
    np.multiply(values, scale, out=work)
    work -= np.float32(vmin) * scale
    np.clip(work, 0, N_COLORS - 1, out=work)  # NaN stays NaN
    np.putmask(work, np.isnan(work), np.float32(LAND))
    if out is None:
        out = np.empty(values.shape, dtype=np.uint8)
    np.copyto(out, work, casting="unsafe")  # truncation: floor for values >= 0
    return out


# --- rasters and regions -------------------------------------------------------------------------


def parse_region(text: str | Sequence[float]) -> tuple[float, float, float, float]:
    """Parse ``"LON0,LON1,LAT0,LAT1"`` (degrees); ``LON1 < LON0`` crosses the dateline.

    Raises
    ------
    ValueError
        Naming the bad box and the expected form.

    Examples
    --------
    >>> parse_region("160,-150,-10,20")
    (160.0, -150.0, -10.0, 20.0)
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        box = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(
            f"bad region {text!r}; give four numbers LON0,LON1,LAT0,LAT1 in degrees, "
            "e.g. -80,-40,20,50 (LON1 < LON0 crosses the dateline: 160,-150,-10,20)"
        )
    lon0, lon1, lat0, lat1 = box
    if not -90 <= lat0 < lat1 <= 90:
        raise ValueError(f"bad region {text!r}: need -90 <= LAT0 < LAT1 <= 90")
    if not (-180 <= lon0 <= 360 and -180 <= lon1 <= 360):
        raise ValueError(f"bad region {text!r}: longitudes must lie in -180..360")
    return lon0, lon1, lat0, lat1


def raster_for(region: Sequence[float] | str | None = None, size: str = "low") -> Raster:
    """Return the raster of a map: global or ``region``, at ``size`` ``"low"`` or ``"high"``.

    ``low`` fits the box in about 1500 × 1000 pixels; ``high`` is 0.08° per pixel (native
    1/12°) but never coarser than ``low``. Pixels are square in degrees.
    """
    from rtofs_lib.fields.regrid import Raster

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if region is None:
        return Raster.global_(LOW_WIDTH if size == "low" else round(360 / HIGH_RESOLUTION))
    lon0, lon1, lat0, lat1 = parse_region(region)
    span = (lon1 - lon0) % 360.0 or 360.0
    low_res = max(span / LOW_WIDTH, (lat1 - lat0) / LOW_MAX_HEIGHT)
    res = low_res if size == "low" else min(HIGH_RESOLUTION, low_res)
    width = max(1, round(span / res))
    height = max(1, round((lat1 - lat0) / res))
    return Raster(lon0, lon1, lat0, lat1, width, height)


# --- decorations ---------------------------------------------------------------------------------


@cache
def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    try:
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf" / name), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def _text_mask(text: str, font) -> tuple[np.ndarray, int]:
    """Anti-aliased text as ink palette indices (BACKGROUND where empty), tightly cropped.

    Also returns the baseline's row in the mask.
    """
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text, anchor="ls")
    w, h = max(1, right - left), max(1, bottom - top)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255, anchor="ls")
    cov = np.asarray(mask, dtype=np.uint16)
    level = (cov * _INK_LEVELS + 127) // 255  # 0 = nothing, 14 = full
    return (BACKGROUND + level).astype(np.uint8), -top


def _put_text(
    canvas: np.ndarray, text: str, font, x: int, y: int, anchor: str = "l", valign: str = "t"
) -> tuple[int, int]:
    """Draw ``text`` into the canvas; anchor l/c/r horizontally, t/m/b/s (baseline) vertically.

    Only pixels covered by ink change, so it can be drawn over a background of any index.
    Returns the text's width and height.
    """
    m, baseline = _text_mask(text, font)
    h, w = m.shape
    x0 = x - (w // 2 if anchor == "c" else w if anchor == "r" else 0)
    y0 = y - {"t": 0, "m": h // 2, "b": h, "s": baseline}[valign]
    ys, xs = max(0, -y0), max(0, -x0)
    y1, x1 = min(canvas.shape[0], y0 + h), min(canvas.shape[1], x0 + w)
    if y1 <= y0 + ys or x1 <= x0 + xs:
        return w, h
    sub = m[ys : y1 - y0, xs : x1 - x0]
    region = canvas[y0 + ys : y1, x0 + xs : x1]
    np.copyto(region, sub, where=sub > BACKGROUND)
    return w, h


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 45, 60, 90):
        if step >= raw:
            return step
    return 90.0


def _fmt_deg(value: float, axis: str) -> str:
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


def _fmt_tick(t: float, ticks: Sequence[float]) -> str:
    step = min((b - a for a, b in itertools.pairwise(ticks)), default=1.0)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    s = f"{t:.{decimals}f}"
    return "0" if s.strip("-0.") == "" else s.replace("-", "−")


@dataclass
class _Layout:
    """A decorated canvas with the map slot and the per-file text position."""

    canvas: np.ndarray  # uint8 (H, W) palette indices, map slot left as LAND
    map_x: int
    map_y: int
    map_w: int
    map_h: int
    info_x: int  # right edge of the per-file text
    info_y: int  # top of the per-file text
    info_box: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))
    font_px: int = 16


def _layout(style: FieldStyle, raster: Raster) -> _Layout:
    """Draw the static decorations of ``style`` on ``raster`` (once; see :func:`_decorations`)."""
    mw, mh = raster.width, raster.height
    s = max(0.8, mw / LOW_WIDTH)  # scale of text and margins (1 for a global low map)
    fs = max(11, round(16 * s))
    line = max(1, round(s))
    font, bold = _font(fs), _font(round(fs * 1.25), bold=True)
    pad = round(10 * s)
    left = round(fs * 3.6) + pad
    right = round(fs * 2.2)
    top = round(fs * 1.25) + 3 * pad
    bar_h = round(fs * 1.2)
    bottom = pad + fs + pad + pad + bar_h + round(fs * 0.5) + fs + pad + fs + 2 * pad
    H, W = top + mh + bottom, left + mw + right
    c = np.full((H, W), BACKGROUND, dtype=np.uint8)
    x0, y0 = left, top
    c[y0 : y0 + mh, x0 : x0 + mw] = LAND

    # frame just outside the map
    c[y0 - line : y0, x0 - line : x0 + mw + line] = INK
    c[y0 + mh : y0 + mh + line, x0 - line : x0 + mw + line] = INK
    c[y0 - line : y0 + mh + line, x0 - line : x0] = INK
    c[y0 - line : y0 + mh + line, x0 + mw : x0 + mw + line] = INK

    # lon/lat ticks and labels
    tick = round(6 * s)
    span = raster.lon_span
    dlon = span / mw
    step = _nice_step(span, 8 if mw >= 900 else 5)
    first = math.ceil(raster.lon0 / step) * step
    k = first
    while k <= raster.lon0 + span + 1e-9:
        px = x0 + round((k - raster.lon0) / dlon)
        if x0 <= px <= x0 + mw:
            c[
                y0 + mh + line : y0 + mh + line + tick,
                max(x0, px - line // 2) : px + (line + 1) // 2,
            ] = INK
            _put_text(c, _fmt_deg(k, "lon"), font, px, y0 + mh + line + tick + pad // 2, "c")
        k += step
    dlat = (raster.lat1 - raster.lat0) / mh
    step = _nice_step(raster.lat1 - raster.lat0, 6 if mh >= 600 else 4)
    k = math.ceil(raster.lat0 / step) * step
    while k <= raster.lat1 + 1e-9:
        py = y0 + round((raster.lat1 - k) / dlat)
        if y0 <= py <= y0 + mh:
            c[max(y0, py - line // 2) : py + (line + 1) // 2, x0 - line - tick : x0 - line] = INK
            _put_text(c, _fmt_deg(k, "lat"), font, x0 - line - tick - pad // 2, py, "r", "m")
        k += step

    # colorbar: a gradient of the palette's colormap entries, framed, with ticks
    bar_w = round(mw * 0.6)
    bx = x0 + (mw - bar_w) // 2
    by = y0 + mh + line + tick + pad + fs + 2 * pad
    ramp = (np.arange(bar_w) * N_COLORS // bar_w).astype(np.uint8)
    c[by : by + bar_h, bx : bx + bar_w] = ramp[None, :]
    c[by - line : by, bx - line : bx + bar_w + line] = INK
    c[by + bar_h : by + bar_h + line, bx - line : bx + bar_w + line] = INK
    c[by - line : by + bar_h + line, bx - line : bx] = INK
    c[by - line : by + bar_h + line, bx + bar_w : bx + bar_w + line] = INK
    ticks = _colorbar_ticks(style.vmin, style.vmax)
    for t in ticks:
        px = bx + round((t - style.vmin) / (style.vmax - style.vmin) * (bar_w - 1))
        c[
            by + bar_h + line : by + bar_h + line + tick,
            max(bx, px - line // 2) : px + (line + 1) // 2,
        ] = INK
        _put_text(c, _fmt_tick(t, ticks), font, px, by + bar_h + line + tick + pad // 3, "c")
    _put_text(
        c, f"{style.title} [{style.units}]", font, bx + bar_w // 2,
        by + bar_h + line + tick + pad // 3 + fs + pad, "c",
    )  # fmt: skip
    # land swatch, beside the colorbar
    sw = bar_h
    lx = bx + bar_w + round(fs * 1.5)
    if lx + sw + 5 * fs < W:
        c[by : by + bar_h, lx : lx + sw] = LAND
        c[by - line : by, lx - line : lx + sw + line] = INK
        c[by + bar_h : by + bar_h + line, lx - line : lx + sw + line] = INK
        c[by - line : by + bar_h + line, lx - line : lx] = INK
        c[by - line : by + bar_h + line, lx + sw : lx + sw + line] = INK
        _put_text(c, "land", font, lx + sw + pad, by + bar_h // 2, "l", "m")

    # title: the field name, left; the per-file text goes right-aligned on the same line
    _put_text(c, f"RTOFS Global · {style.title}", bold, x0 - line, y0 - line - pad, "l", "s")
    return _Layout(
        canvas=c, map_x=x0, map_y=y0, map_w=mw, map_h=mh,
        info_x=x0 + mw + line, info_y=y0 - line - pad, font_px=fs,
    )  # fmt: skip


_DECOR_LOCK = threading.Lock()
_DECORATIONS: OrderedDict[tuple, _Layout] = OrderedDict()
_MAX_DECORATIONS = 16


def _decorations(style: FieldStyle, raster: Raster) -> _Layout:
    """The decorated canvas of a style and raster, drawn once per process."""
    key = (style, raster.key)
    with _DECOR_LOCK:
        layout = _DECORATIONS.get(key)
        if layout is None:
            layout = _layout(style, raster)
            layout.canvas.setflags(write=False)
            _DECORATIONS[key] = layout
            while len(_DECORATIONS) > _MAX_DECORATIONS:
                _DECORATIONS.popitem(last=False)
        else:
            _DECORATIONS.move_to_end(key)
        return layout


def map_box(field: str | FieldStyle, raster: Raster) -> tuple[int, int, int, int]:
    """Return ``(x, y, width, height)`` of the map inside a decorated image of ``raster``.

    The same layout :func:`render_file` and :func:`render_array` draw: a click at image
    pixel ``(px, py)`` is map pixel ``(px - x, py - y)``.
    """
    layout = _decorations(_style(field), raster)
    return layout.map_x, layout.map_y, layout.map_w, layout.map_h


def _info_text(valid_time: dt.datetime | None, step: str = "", depth: float | None = None) -> str:
    parts = []
    if depth is not None:
        parts.append(f"depth {depth:g} m")
    if valid_time is not None:
        parts.append(f"valid {valid_time:%Y-%m-%d %H:%M} UTC")
    if step:
        kind = "nowcast" if step.startswith("n") else "forecast"
        parts.append(f"{kind} {step}")
    return "  ·  ".join(parts)


# --- the map itself ------------------------------------------------------------------------------


#: Pixels gathered per block: keeps temporaries small (and in cache) on 10-Mpixel maps.
_BLOCK = 1 << 18


def _gather_into(
    out: np.ndarray, values: np.ndarray, index: RasterIndex, style: FieldStyle
) -> None:
    """Fill ``out`` (uint8 view, raster shape) with palette indices of ``values`` on the raster.

    Gathers and quantises in row blocks: a float32 scratch of ~1 MB instead of a copy of
    the whole map. Index -1 picks the last element; those pixels are set to LAND after.
    """
    flat = values.reshape(-1)
    height, width = index.index.shape
    rows = max(1, _BLOCK // width)
    work = np.empty((min(rows, height), width), dtype=np.float32)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        block = work[: r1 - r0]
        np.take(flat, index.index[r0:r1], out=block)
        quantise(block, style.vmin, style.vmax, out=out[r0:r1], work=block)
    out[index.nodata] = LAND


def _compose(
    values: np.ndarray, index: RasterIndex, style: FieldStyle, raster: Raster, info: str
) -> np.ndarray:
    layout = _decorations(style, raster)
    canvas = layout.canvas.copy()
    slot = canvas[
        layout.map_y : layout.map_y + layout.map_h, layout.map_x : layout.map_x + layout.map_w
    ]
    _gather_into(slot, values, index, style)
    if info:
        _put_text(canvas, info, _font(layout.font_px), layout.info_x, layout.info_y, "r", "s")
    return canvas


def _to_image(canvas: np.ndarray, style: FieldStyle) -> PILImage.Image:
    from PIL import Image

    image = Image.frombuffer("L", (canvas.shape[1], canvas.shape[0]), canvas, "raw", "L", 0, 1)
    image = image.copy() if not canvas.flags.writeable else image
    image.putpalette(_palette_bytes(style.cmap))  # "L" → "P"
    return image


def _checked(values: np.ndarray, grid: Grid) -> np.ndarray:
    values = np.asarray(values)
    if values.shape[-2:] != grid.shape:
        raise ValueError(
            f"values {values.shape} and the grid {grid.shape} differ in shape; "
            "pass the grid of the field (fold row dropped, as read_field returns it)"
        )
    return values


def map_indices(
    values: np.ndarray,
    grid: Grid,
    *,
    field: str | FieldStyle = "sst",
    size: str = "low",
    region: Sequence[float] | str | None = None,
    raster: Raster | None = None,
) -> np.ndarray:
    """Return the bare map as uint8 palette indices (no decorations), north up.

    For viewers that update an image quickly: pair it with :func:`palette`. Arguments as
    :func:`render_array`; ``raster`` overrides ``size``/``region``.
    """
    style = _style(field)
    values = _checked(values, grid)
    raster = raster or raster_for(region, size)
    out = np.empty((raster.height, raster.width), dtype=np.uint8)
    _gather_into(out, values, grid.index(raster), style)
    return out


def render_array(
    values: np.ndarray,
    grid: Grid,
    *,
    field: str | FieldStyle = "sst",
    size: str = "low",
    region: Sequence[float] | str | None = None,
    valid_time: dt.datetime | None = None,
    step: str = "",
    depth: float | None = None,
    title: str | None = None,
    raster: Raster | None = None,
) -> PILImage.Image:
    """Render a field on its native grid as a decorated palette-mode image, without files.

    Parameters
    ----------
    values
        2-D field on ``grid`` (fold row dropped), NaN on land.
    grid
        The field's :class:`~rtofs_lib.fields.grid.Grid` (``Grid(lat, lon)``, or
        ``Grid.of_file(path, cache_dir)`` to use the shared index cache).
    field
        A key of :data:`FIELDS` or a :class:`FieldStyle` (own range or colormap).
    size
        ``"low"`` or ``"high"`` (see the module docs).
    region
        ``(lon0, lon1, lat0, lat1)`` or ``"LON0,LON1,LAT0,LAT1"``; None for the globe.
    valid_time, step, depth
        Written at the top right.
    title
        Replaces that top-right text.
    raster
        An explicit :class:`~rtofs_lib.fields.regrid.Raster` instead of ``size``/``region``.

    Returns
    -------
    PIL.Image.Image
        Mode ``"P"``; ``.convert("RGB")`` for other uses.
    """
    style = _style(field)
    values = _checked(values, grid)
    raster = raster or raster_for(region, size)
    info = title if title is not None else _info_text(valid_time, step, depth)
    return _to_image(_compose(values, grid.index(raster), style, raster, info), style)


# --- files ---------------------------------------------------------------------------------------


def _region_tag(region: Sequence[float] | str) -> str:
    return "_".join(f"{v:g}" for v in parse_region(region))


def output_path(
    out_dir: str | Path,
    path: str | Path,
    field: str,
    size: str,
    region: Sequence[float] | str | None = None,
    depth: float | None = None,
) -> Path:
    """Where :func:`render_file` writes a map.

    ``out_dir/<file stem>/<field>.<size>.png`` for a global map; a depth adds
    ``-<depth>m`` to the field and a region adds ``.<lon0>_<lon1>_<lat0>_<lat1>`` before
    the size.

    Examples
    --------
    >>> output_path("maps", "rtofs_glo_2ds_f024_prog.nc", "sst", "low").as_posix()
    'maps/rtofs_glo_2ds_f024_prog/sst.low.png'
    >>> output_path("m", "a.nc", "sst", "high", region="-80,-40,20,50").name
    'sst.-80_-40_20_50.high.png'
    """
    name = field if depth is None else f"{field}-{depth:g}m"
    if region is not None:
        name += f".{_region_tag(region)}"
    return Path(out_dir) / Path(path).name.removesuffix(".nc") / f"{name}.{size}.png"


def _save_png(image: PILImage.Image, dest: Path) -> None:
    """Write ``image`` to ``dest`` atomically (see :mod:`rtofs_lib.atomic`)."""
    with atomic.atomic_open(dest, "wb") as f:
        image.save(f, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from rtofs_lib import config

    return config.load().cache


def render_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    fields: Iterable[str] = ("sst",),
    region: Sequence[float] | str | None = None,
    sizes: Iterable[str] = SIZES,
    depth: float | None = None,
    cache_dir: str | Path | None = None,
    on_values: Callable[[FieldStyle, FieldData, np.ndarray], None] | None = None,
) -> list[Path]:
    """Render maps of one RTOFS file to ``out_dir/<stem>/<field>.<size>.png``.

    Parameters
    ----------
    path
        A Global RTOFS netCDF file.
    out_dir
        Output root; one folder per input file is made inside.
    fields
        Keys of :data:`FIELDS` (``sst``, ``sss``, ``speed`` from prog files; ``ssh`` from
        diag; ``temperature``/``salinity`` from 3-D files).
    region
        ``(lon0, lon1, lat0, lat1)`` or ``"LON0,LON1,LAT0,LAT1"``; None for global maps.
    sizes
        Any of ``"low"`` and ``"high"``.
    depth
        For 3-D fields: metres (nearest level); default the top level.
    cache_dir
        Grid-index cache; default ``rtofs_lib.config.load().cache``.
    on_values
        Called as ``on_values(style, data, values)`` after each field's maps are written,
        with the field as read (``data``: its :class:`~rtofs_lib.fields.netcdf.FieldData`,
        ``values``: the 2-D array drawn), so a caller can use the values without reading
        the file again. The arrays are freed afterwards; keep only what the callback
        computes from them.

    Returns
    -------
    list[pathlib.Path]
        The PNGs written (each atomically: temporary name, then rename).

    Raises
    ------
    RtofsFileError
        For a file that is not a complete RTOFS file holding the field (names the file).
    ValueError
        For an unknown field, size or a bad region.
    """
    path = Path(path)
    styles = [_style(f) for f in fields]
    rasters = {s: raster_for(region, s) for s in sizes}
    cache_dir = _cache_dir(cache_dir)
    written: list[Path] = []
    grid = None
    for style in styles:
        data = netcdf.read_field(path, style.name, depth=depth, grid=False)
        grid = grid or Grid.of_file(path, cache_dir)
        info = _info_text(data.valid_time, data.step, data.depth)
        for size, raster in rasters.items():
            canvas = _compose(data.values, grid.index(raster), style, raster, info)
            dest = output_path(out_dir, path, style.name, size, region, data.depth)
            _save_png(_to_image(canvas, style), dest)
            written.append(dest)
        if on_values is not None:
            on_values(style, data, data.values)
        del data
    return written


def prepare(
    path: str | Path,
    *,
    sizes: Iterable[str] = SIZES,
    region: Sequence[float] | str | None = None,
    cache_dir: str | Path | None = None,
    load: bool = True,
) -> None:
    """Build (or load) the grid index of ``path``'s grid for the maps of ``sizes``.

    The one-off cost of a grid (a k-d tree and one query per raster); later
    :func:`render_file` calls on files of the same grid only gather.

    With ``load=False`` it only makes sure the indices are in ``cache_dir`` (for other
    processes to use): when they already are, it reads just the grid signature (a few
    coordinate chunks), neither Latitude/Longitude nor the indices themselves.
    """
    grid = Grid.of_file(path, _cache_dir(cache_dir))
    for size in sizes:
        raster = raster_for(region, size)
        if load or not grid.has_index(raster):
            grid.index(raster)
