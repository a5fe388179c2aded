"""A small text engine: anti-aliased text drawn straight into a palette-index canvas.

Glyphs are rendered with Pillow (DejaVu Sans from matplotlib's fonts, else Pillow's
default font) as coverage masks, mapped onto the grey ink entries of the palette
(:data:`~rtofs_lib.maps.colors.BACKGROUND` + 1 … :data:`~rtofs_lib.maps.colors.INK`) and
copied where they have ink, so text can be drawn over any background.

Examples
--------
>>> import numpy as np
>>> canvas = np.full((40, 120), BACKGROUND, dtype=np.uint8)
>>> put_text(canvas, "RTOFS", font(16), 60, 20, "c", "m")[1] > 8
True
>>> int(canvas.max())  # INK: full coverage
255
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtofs_lib.maps.colors import BACKGROUND, INK_LEVELS

if TYPE_CHECKING:
    from PIL import ImageFont

__all__ = ["font", "put_text"]


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (``bold``: DejaVu Sans Bold) at ``size`` pixels, cached per size.

    Falls back to Pillow's default font where matplotlib's fonts are not installed.
    """
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
    level = (cov * INK_LEVELS + 127) // 255  # 0 = nothing, 14 = full
    return (BACKGROUND + level).astype(np.uint8), -top


def put_text(
    canvas: np.ndarray, text: str, font, x: int, y: int, anchor: str = "l", valign: str = "t"
) -> tuple[int, int]:
    """Draw ``text`` into the canvas; anchor l/c/r horizontally, t/m/b/s (baseline) vertically.

    Only pixels covered by ink change, so it can be drawn over a background of any index.
    Text reaching past the canvas edges is clipped. Returns the text's width and height.
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
