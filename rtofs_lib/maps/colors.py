"""The 256-entry map palette and the quantisation of values to palette indices.

=========  =====================================================================
0-239      the field's colormap (cmocean), ``vmin`` → 0, ``vmax`` → 239, clipped
240        land, and no data (outside the grid: south of ~78.6°S); one colour
           because the grid's southern edge lies on the Antarctic ice shelves
241        background (white)
242-255    text and lines, light grey → black (anti-aliased text)
=========  =====================================================================

Examples
--------
>>> pal = palette("sst")
>>> pal.shape, pal[LAND].tolist(), pal[BACKGROUND].tolist(), pal[INK].tolist()
((256, 3), [196, 192, 184], [255, 255, 255], [0, 0, 0])
"""

from __future__ import annotations

from functools import cache

import numpy as np

from rtofs_lib.maps.styles import FieldStyle, field_style

__all__ = [
    "BACKGROUND",
    "BACKGROUND_RGB",
    "INK",
    "INK_LEVELS",
    "LAND",
    "LAND_RGB",
    "N_COLORS",
    "palette",
    "palette_bytes",
    "quantise",
]

#: Palette entries given to the colormap (indices 0 … N_COLORS-1).
N_COLORS = 240
#: Palette index of land and of pixels with no grid point (outside the grid).
LAND = 240
#: Palette index of the background around the map.
BACKGROUND = 241
#: Palette index of black; 242 … 254 are lighter greys for anti-aliased text.
INK = 255
#: Grey levels of anti-aliased text: indices ``BACKGROUND + 1`` … ``INK``.
INK_LEVELS = 14

LAND_RGB = (196, 192, 184)
BACKGROUND_RGB = (255, 255, 255)


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
    levels = np.arange(1, INK_LEVELS + 1)
    grey = np.round(255 * (1 - levels / INK_LEVELS)).astype(np.uint8)
    return np.repeat(grey[:, None], 3, axis=1)


@cache
def palette_bytes(cmap: str) -> bytes:
    """The 768-byte RGB palette of colormap ``cmap`` (for ``Image.putpalette``), cached."""
    pal = np.empty((256, 3), dtype=np.uint8)
    pal[:N_COLORS] = _colormap_rgb(cmap)
    pal[LAND] = LAND_RGB
    pal[BACKGROUND] = BACKGROUND_RGB
    pal[BACKGROUND + 1 :] = _ink_rgb()
    return pal.tobytes()


def palette(field: str | FieldStyle = "sst") -> np.ndarray:
    """Return the ``(256, 3)`` uint8 RGB palette of a field's maps (see the module docs)."""
    return np.frombuffer(palette_bytes(field_style(field).cmap), dtype=np.uint8).reshape(256, 3)


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
