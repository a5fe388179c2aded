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
:mod:`rtofs_lib.maps.regions`.

Examples
--------
>>> from rtofs_lib.maps import render
>>> paths = render.render_file("rtofs_glo_2ds_f024_prog.nc", "maps")  # doctest: +SKIP
>>> image = render.render_array(values, lat, lon, field="sst", region=(-80, -40, 20, 50))
... # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtofs_lib.maps.colors import LAND, quantise
from rtofs_lib.maps.colors import palette_bytes as _palette_bytes
from rtofs_lib.maps.decorations import decorations as _decorations
from rtofs_lib.maps.decorations import info_text as _info_text
from rtofs_lib.maps.regions import SIZES, parse_region, raster_for
from rtofs_lib.maps.styles import FieldStyle
from rtofs_lib.maps.styles import field_style as _style
from rtofs_lib.maps.text import font as _font
from rtofs_lib.maps.text import put_text as _put_text

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from rtofs_lib.fields.reader import FieldData
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


@dataclass(frozen=True)
class _Plan:
    """A raster's gather index prepared for the fast path."""

    index: np.ndarray  # int32 (H, W) flat indices into the grid; -1: no grid point
    nodata: tuple[np.ndarray, np.ndarray]  # (rows, cols) of the -1 pixels


_PLAN_LOCK = threading.Lock()
_PLANS: OrderedDict[tuple[str, str], _Plan] = OrderedDict()
_MAX_PLANS = 16
#: Pixels gathered per block: keeps temporaries small (and in cache) on 10-Mpixel maps.
_BLOCK = 1 << 18
#: Grid keys by a cheap per-file signature (shape and a few coordinates).
_SIGNATURES: dict[tuple, str] = {}
#: Grid-signature notes known to exist (read or written by this process).
_NOTED: set[Path] = set()


def _load_cached_index(
    key: str, raster: Raster, cache_dir: str | Path | None, *, mmap: bool = False
):
    """The index regrid cached on disk for (key, raster), or None (then regrid builds it).

    Loading it here needs no grid coordinates, so a fresh worker process does not read
    Latitude/Longitude at all once the index exists. ``mmap=True`` only maps the file
    (reads its header): enough to check that a usable index is there.
    """
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"index-{key}-{raster.key}.npy"
    try:
        index = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError):
        return None
    if index.shape != (raster.height, raster.width) or index.dtype != np.int32:
        return None
    return index


def _plan(key: str, raster: Raster, grid, cache_dir: str | Path | None) -> _Plan:
    """Return the prepared index of grid ``key`` on ``raster``; ``grid()`` gives (lat, lon)."""
    from rtofs_lib.fields import regrid

    memo = (key, raster.key)
    with _PLAN_LOCK:
        plan = _PLANS.get(memo)
        if plan is not None:
            _PLANS.move_to_end(memo)
            return plan
    index = _load_cached_index(key, raster, cache_dir)
    if index is None:
        lat, lon = grid()
        index = regrid.get_index(lat, lon, raster, cache_dir, key=key)
    plan = _Plan(index=index, nodata=np.nonzero(index < 0))
    with _PLAN_LOCK:
        _PLANS[memo] = plan
        while len(_PLANS) > _MAX_PLANS:
            _PLANS.popitem(last=False)
    return plan


def _gather_into(out: np.ndarray, values: np.ndarray, plan: _Plan, style: FieldStyle) -> None:
    """Fill ``out`` (uint8 view, raster shape) with palette indices of ``values`` on the raster.

    Gathers and quantises in row blocks: a float32 scratch of ~1 MB instead of a copy of
    the whole map. Index -1 picks the last element; those pixels are set to LAND after.
    """
    flat = values.reshape(-1)
    height, width = plan.index.shape
    rows = max(1, _BLOCK // width)
    work = np.empty((min(rows, height), width), dtype=np.float32)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        block = work[: r1 - r0]
        np.take(flat, plan.index[r0:r1], out=block)
        quantise(block, style.vmin, style.vmax, out=out[r0:r1], work=block)
    out[plan.nodata] = LAND


def _compose(
    values: np.ndarray, plan: _Plan, style: FieldStyle, raster: Raster, info: str
) -> np.ndarray:
    layout = _decorations(style, raster)
    canvas = layout.canvas.copy()
    slot = canvas[
        layout.map_y : layout.map_y + layout.map_h, layout.map_x : layout.map_x + layout.map_w
    ]
    _gather_into(slot, values, plan, style)
    if info:
        _put_text(canvas, info, _font(layout.font_px), layout.info_x, layout.info_y, "r", "s")
    return canvas


def _to_image(canvas: np.ndarray, style: FieldStyle) -> PILImage.Image:
    from PIL import Image

    image = Image.frombuffer("L", (canvas.shape[1], canvas.shape[0]), canvas, "raw", "L", 0, 1)
    image = image.copy() if not canvas.flags.writeable else image
    image.putpalette(_palette_bytes(style.cmap))  # "L" → "P"
    return image


#: Grid keys of coordinate arrays already hashed, by ``id`` (checked through weak references),
#: so a viewer or animation passing the same ``lat``/``lon`` objects hashes them once.
_KEYS_BY_ARRAY: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, str]] = {}


def _grid_of(lat: np.ndarray, lon: np.ndarray, values: np.ndarray) -> str:
    from rtofs_lib.fields import regrid

    lat, lon = np.asarray(lat), np.asarray(lon)
    if lat.shape != values.shape[-2:] or lon.shape != lat.shape:
        raise ValueError(
            f"values {values.shape} and lat/lon {lat.shape}/{lon.shape} differ in shape; "
            "pass the grid of the field (fold row dropped, as read_field returns it)"
        )
    ids = (id(lat), id(lon))
    known = _KEYS_BY_ARRAY.get(ids)
    if known is not None and known[0]() is lat and known[1]() is lon:
        return known[2]
    key = regrid.grid_key(lat, lon)
    for k in [k for k, (a, b, _) in _KEYS_BY_ARRAY.items() if a() is None or b() is None]:
        del _KEYS_BY_ARRAY[k]
    _KEYS_BY_ARRAY[ids] = (weakref.ref(lat), weakref.ref(lon), key)
    return key


def map_indices(
    values: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    field: str | FieldStyle = "sst",
    size: str = "low",
    region: Sequence[float] | str | None = None,
    raster: Raster | None = None,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """Return the bare map as uint8 palette indices (no decorations), north up.

    For viewers that update an image quickly: pair it with :func:`palette`. Arguments as
    :func:`render_array`; ``raster`` overrides ``size``/``region``.
    """
    style = _style(field)
    values = np.asarray(values)
    raster = raster or raster_for(region, size)
    key = _grid_of(lat, lon, values)
    plan = _plan(key, raster, lambda: (lat, lon), cache_dir)
    out = np.empty((raster.height, raster.width), dtype=np.uint8)
    _gather_into(out, values, plan, style)
    return out


def render_array(
    values: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    field: str | FieldStyle = "sst",
    size: str = "low",
    region: Sequence[float] | str | None = None,
    valid_time: dt.datetime | None = None,
    step: str = "",
    depth: float | None = None,
    title: str | None = None,
    raster: Raster | None = None,
    cache_dir: str | Path | None = None,
) -> PILImage.Image:
    """Render a field on its native grid as a decorated palette-mode image, without files.

    Parameters
    ----------
    values
        2-D field on the grid of ``lat``/``lon`` (fold row dropped), NaN on land.
    lat, lon
        2-D grid coordinates (any longitude convention).
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
    cache_dir
        Grid-index cache folder (None: memory only).

    Returns
    -------
    PIL.Image.Image
        Mode ``"P"``; ``.convert("RGB")`` for other uses.
    """
    style = _style(field)
    values = np.asarray(values)
    raster = raster or raster_for(region, size)
    key = _grid_of(lat, lon, values)
    plan = _plan(key, raster, lambda: (lat, lon), cache_dir)
    info = title if title is not None else _info_text(valid_time, step, depth)
    return _to_image(_compose(values, plan, style, raster, info), style)


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
    """Write ``image`` to ``dest`` atomically (temporary file beside it, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # os.open with 0o666 honours the umask (mkstemp would make maps readable by owner only)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        Path(tmp).replace(dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _grid_signature(path: Path) -> tuple:
    """A cheap identity of a file's grid: shape and the first and last coordinates (4 chunks)."""
    import netCDF4

    with netCDF4.Dataset(path, "r") as nc:
        sig: list = [nc.variables["Latitude"].shape]
        for name in ("Latitude", "Longitude"):
            var = nc.variables[name]
            var.set_auto_maskandscale(False)
            sig.append(np.asarray(var[0, :4]).tobytes())
            sig.append(np.asarray(var[-2, -4:]).tobytes())
    return tuple(sig)


def _grid_key_for(path: Path, cache_dir: str | Path | None) -> tuple[str, object]:
    """Return the grid key of ``path`` and a loader of its (lat, lon).

    The key (a hash of the full coordinates) is computed once per grid and remembered by
    the file's grid signature, in memory and in ``cache_dir``: later files, and fresh
    processes, read only a few coordinate chunks to know their grid.
    """
    import hashlib

    from rtofs_lib.fields import reader, regrid

    loaded: list = []

    def grid():
        if not loaded:
            loaded.append(reader.read_grid(path))
        return loaded[0]

    sig = _grid_signature(path)
    digest = hashlib.blake2b(repr(sig).encode(), digest_size=10).hexdigest()
    note = Path(cache_dir) / f"gridsig-{digest}.txt" if cache_dir is not None else None
    key = _SIGNATURES.get(sig)
    if key is not None:
        if note is not None and note not in _NOTED:  # known grid, new cache folder
            _write_note(note, key)
        return key, grid
    if note is not None:
        try:
            key = note.read_text().strip() or None
        except OSError:
            key = None
        else:
            _NOTED.add(note)
    if key is None:
        lat, lon = grid()
        key = regrid.grid_key(lat, lon)
        if note is not None:
            _write_note(note, key)
    _SIGNATURES[sig] = key
    return key, grid


def _write_note(note: Path, key: str) -> None:
    """Remember a grid key in the cache folder, atomically (a read-only cache is fine)."""
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        tmp = note.with_name(f".{note.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(key + "\n")
        tmp.replace(note)
    except OSError:
        return  # still works, only slower in a fresh process
    _NOTED.add(note)


def _read_values(path: Path, style: FieldStyle, depth: float | None):
    """Read the style's variable(s); speed is sqrt(u² + v²). Returns FieldData-like values."""
    from rtofs_lib.fields import reader

    first = reader.read_field(path, style.variables[0], depth=depth, grid=False)
    if len(style.variables) == 1:
        return first, first.values
    second = reader.read_field(path, style.variables[1], depth=depth, grid=False)
    speed = np.hypot(first.values, second.values, out=first.values)
    return first, speed


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
        with the field as read (``data``: its :class:`~rtofs_lib.fields.reader.FieldData`,
        ``values``: the 2-D array drawn, speed for ``speed``), so a caller can use the
        values without reading the file again. The arrays are freed afterwards; keep
        only what the callback computes from them.

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
    sizes = list(sizes)
    rasters = [raster_for(region, s) for s in sizes]
    if cache_dir is None:
        from rtofs_lib import config

        cache_dir = config.load().cache
    written: list[Path] = []
    key_grid = None
    for style in styles:
        data, values = _read_values(path, style, depth)
        if key_grid is None:
            key_grid = _grid_key_for(path, cache_dir)
        key, grid = key_grid
        info = _info_text(data.valid_time, data.step, data.depth)
        for size, raster in zip(sizes, rasters, strict=True):
            plan = _plan(key, raster, grid, cache_dir)
            canvas = _compose(values, plan, style, raster, info)
            dest = output_path(out_dir, path, style.name, size, region, data.depth)
            _save_png(_to_image(canvas, style), dest)
            written.append(dest)
        if on_values is not None:
            on_values(style, data, values)
        del data, values
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
    path = Path(path)
    if cache_dir is None:
        from rtofs_lib import config

        cache_dir = config.load().cache
    key, grid = _grid_key_for(path, cache_dir)
    for size in sizes:
        raster = raster_for(region, size)
        if load or _load_cached_index(key, raster, cache_dir, mmap=True) is None:
            _plan(key, raster, grid, cache_dir)
