"""The image bytes the viewer shows: a field's map (stored or drawn), a difference map.

A map comes from the pre-rendered PNG of ``rtofs run`` when one matches the view, otherwise
from the fast renderer (:func:`rtofs_lib.maps.render.render_array`) over the decoded field.

Examples
--------
>>> from PIL import Image
>>> png_bytes(Image.new("P", (2, 2)))[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import io
from pathlib import Path

from rtofs_lib.errors import RtofsError
from rtofs_lib.fields import regrid
from rtofs_lib.maps import render
from rtofs_lib.maps.styles import FIELDS, FieldStyle

from .source import FieldSource
from .state import Selection

__all__ = ["difference_png", "field_map", "map_png", "png_bytes"]


def png_bytes(image) -> bytes:
    """Encode a Pillow image as PNG (the maps' compression level)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=render.PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def map_png(
    source: FieldSource,
    path: Path,
    style: FieldStyle,
    raster: regrid.Raster,
    *,
    depth: float | None,
) -> bytes:
    """Draw the field ``style.name`` of ``path`` (at ``depth``) on ``raster``."""
    f = source.field(path, style.name, depth)
    image = render.render_array(
        f.values, source.grid(path), field=style, raster=raster, valid_time=f.valid_time,
        step=f.step, depth=f.depth,
    )  # fmt: skip
    return png_bytes(image)


def field_map(source: FieldSource, sel: Selection, path: Path) -> tuple[bytes, str, FieldStyle]:
    """The map of ``path`` for the selection: ``(png, how, style shown)``.

    ``how`` is ``"pre-rendered"`` (a stored map, drawn in the field's own style) or
    ``"rendered"``.
    """
    style, raster = sel.style(), sel.raster()
    stored = source.prerendered(
        path, style, day=sel.day, size=sel.size, box=sel.region_box, depth=sel.depth_value
    )
    if stored is not None:
        return stored.read_bytes(), "pre-rendered", FIELDS[style.name]
    return map_png(source, path, style, raster, depth=sel.depth_value), "rendered", style


def difference_png(
    source: FieldSource, sel: Selection, paths: tuple[Path, Path], steps: tuple[str, str]
) -> bytes:
    """The map of day A's field minus day B's (``paths`` and ``steps`` of A and B)."""
    path_a, path_b = paths
    a = source.field(path_a, sel.field, sel.depth_value)
    b = source.field(path_b, sel.field, sel.depth_value)
    if a.values.shape != b.values.shape:
        raise RtofsError(
            f"{path_a.name} and {path_b.name} are on different grids "
            f"{a.values.shape} / {b.values.shape}; cannot subtract them"
        )
    title = f"{sel.day} {steps[0]} − {sel.day_b} {steps[1]}"
    image = render.render_array(
        a.values - b.values, source.grid(path_a), field=sel.diff_style(), raster=sel.raster(),
        title=title,
    )  # fmt: skip
    return png_bytes(image)
