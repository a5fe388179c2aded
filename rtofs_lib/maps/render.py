"""Fast maps of RTOFS fields: palette-index images written as palette-mode PNGs.

The fast path never makes a plot. A field is gathered onto a regular lon/lat raster with a
precomputed nearest-neighbour index (:mod:`rtofs_lib.fields.regrid`, built once per grid and
cached), turned into 8-bit palette indices with one scale-and-clip pass
(:func:`~rtofs_lib.maps.colors.quantise`; the palette is laid out in
:mod:`rtofs_lib.maps.colors`), and copied into a canvas that already holds the decorations:
frame, lon/lat ticks, colorbar, field name and units (:mod:`rtofs_lib.maps.decorations`).
Those are drawn once per field style and raster and kept in this process. Per file, only
the valid time and step are written (a few ms with Pillow), and the canvas is encoded as a
palette ("P" mode) PNG at compress level 1.

Field styles live in :mod:`rtofs_lib.maps.styles`; map sizes and regions in
:mod:`rtofs_lib.maps.rasters`.

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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtofs_lib import atomic
from rtofs_lib.fields import netcdf
from rtofs_lib.fields.grid import Grid, RasterIndex
from rtofs_lib.maps.colors import LAND, palette_bytes, quantise
from rtofs_lib.maps.decorations import decorations, info_text
from rtofs_lib.maps.rasters import SIZES, parse_region, raster_for
from rtofs_lib.maps.styles import FieldStyle, field_style
from rtofs_lib.maps.text import font, put_text

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from rtofs_lib.fields.netcdf import FieldData
    from rtofs_lib.fields.regrid import Raster

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "map_indices",
    "output_path",
    "prepare",
    "render_array",
    "render_file",
]

PNG_COMPRESS_LEVEL = 1


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
    layout = decorations(style, raster)
    canvas = layout.canvas.copy()
    slot = canvas[
        layout.map_y : layout.map_y + layout.map_h, layout.map_x : layout.map_x + layout.map_w
    ]
    _gather_into(slot, values, index, style)
    if info:
        put_text(canvas, info, font(layout.font_px), layout.info_x, layout.info_y, "r", "s")
    return canvas


def _to_image(canvas: np.ndarray, style: FieldStyle) -> PILImage.Image:
    from PIL import Image

    image = Image.frombuffer("L", (canvas.shape[1], canvas.shape[0]), canvas, "raw", "L", 0, 1)
    image = image.copy() if not canvas.flags.writeable else image
    image.putpalette(palette_bytes(style.cmap))  # "L" → "P"
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
    style = field_style(field)
    values = _checked(values, grid)
    raster = raster or raster_for(region, size)
    out = np.empty((raster.height, raster.width), dtype=np.uint8)
    _gather_into(out, values, grid.index(raster), style)
    return out


def render_array(  # noqa: PLR0913 - keyword drawing options
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
    style = field_style(field)
    values = _checked(values, grid)
    raster = raster or raster_for(region, size)
    info = title if title is not None else info_text(valid_time, step, depth)
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
    styles = [field_style(f) for f in fields]
    rasters = {s: raster_for(region, s) for s in sizes}
    cache_dir = _cache_dir(cache_dir)
    written: list[Path] = []
    grid = None
    for style in styles:
        data = netcdf.read_field(path, style.name, depth=depth, grid=False)
        grid = grid or Grid.of_file(path, cache_dir)
        info = info_text(data.valid_time, data.step, data.depth)
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
