"""Notebook viewer (ipywidgets 8, JupyterLab 4) over the RTOFS archive and its maps.

:class:`SSTViewer` shows one cycle day: a day picker, a step slider with play
(``n000`` … ``f192``), the field (SST, SSS, SSH, surface current speed, temperature or
salinity at depth), region presets and a custom box, colormap and colour range, low or
high resolution. A click on the map plots that grid point's values across the day's steps.
A compare mode shows two days side by side, or their difference, pairing day B's map by the
same valid time (default) or the same step.

Maps come from the pre-rendered PNGs of ``rtofs run`` (``maps/rtofs.YYYYMMDD/<stem>/``)
when they match the view (default colours, global or a rendered region); otherwise the
fast renderer (:func:`rtofs_lib.maps.render.render_array`) draws them on demand. Decoded fields
are kept in memory (``cache_mb``), and the next steps are read ahead in a background
process, so moving the slider mostly costs a gather, a palette pass and a PNG encode.

Modules, by job: :mod:`.state` (what is selected, plain Python), :mod:`.source` (files,
decoded fields, read-ahead, grids, stored maps), :mod:`.images` (the PNG bytes shown),
:mod:`.series` (a click → the point's time series) and :mod:`.view` (the widgets).

:func:`tile_map` (:mod:`.tilemap`) is the dashboard's zoomable map in a notebook: an
ipyleaflet ``Map`` of the dashboard service's native-resolution tiles (``/services/maps/`` on
the hub, the ``dashboard_url`` setting), with a step slider and a click for a point's series.

Examples
--------
>>> from rtofs_lib.notebook.viewer import viewer
>>> v = viewer("~/rtofs/archive", date="20260708")  # doctest: +SKIP
>>> v  # doctest: +SKIP
>>> v.slider.value += 1; v.click_lonlat(-70.0, 38.0); v.series.values  # doctest: +SKIP
>>> from rtofs_lib.notebook.viewer import tile_map
>>> m = tile_map(field="sst", center=(-33.0, -75.0), zoom=5)  # doctest: +SKIP
>>> m  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .series import PointSeries
from .state import COLORMAPS, CUSTOM, DIFF_SPAN, REGION_PRESETS
from .view import SSTViewer

__all__ = [
    "COLORMAPS",
    "CUSTOM",
    "DIFF_SPAN",
    "REGION_PRESETS",
    "PointSeries",
    "SSTViewer",
    "TileMap",
    "dashboard_url",
    "tile_map",
    "viewer",
]

#: Exported from :mod:`.tilemap`, imported on first use (ipyleaflet loads its basemap list).
_TILEMAP = ("TileMap", "dashboard_url", "tile_map")


def __getattr__(name: str) -> Any:
    if name in _TILEMAP:
        from . import tilemap

        return getattr(tilemap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def viewer(
    archive: str | Path | None = None,
    date: str | dt.date | None = None,
    **options,
) -> SSTViewer:
    """Return an :class:`SSTViewer` of ``date`` (default: the latest day) in ``archive``.

    Display it by leaving it as the last expression of a cell. Options as
    :class:`SSTViewer` (``maps``, ``field``, ``region``, ``size``, ``cache_dir``, ...).
    """
    return SSTViewer(archive, date=date, **options)
