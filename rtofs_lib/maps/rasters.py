"""Map rasters: a region box parsed from text, and the raster of a map size.

Sizes: ``low`` fits the map in about 1500 × 1000 pixels (a global map is 1500 × 708,
0.24° per pixel); ``high`` is native 1/12° detail, 0.08° per pixel (4500 × 2125 global),
never coarser than ``low``.

Examples
--------
>>> raster_for(None, "low")
Raster(lon0=-180.0, lon1=180.0, lat0=-80.0, lat1=90.0, width=1500, height=708)
>>> raster_for(None, "high").width
4500
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtofs_lib.fields.regrid import Raster

__all__ = ["HIGH_RESOLUTION", "LOW_MAX_HEIGHT", "LOW_WIDTH", "SIZES", "parse_region", "raster_for"]

#: Map sizes: ``low`` ≈ 1500 px wide, ``high`` native 1/12° (0.08° per pixel).
SIZES = ("low", "high")
LOW_WIDTH = 1500
LOW_MAX_HEIGHT = 1000
HIGH_RESOLUTION = 0.08


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
    >>> parse_region("0,10,20")
    Traceback (most recent call last):
    ...
    ValueError: bad region '0,10,20'; give four numbers LON0,LON1,LAT0,LAT1 in degrees, ...
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

    Examples
    --------
    >>> raster_for((160, -150, -10, 20), "low").key
    '160_-150_-10_20_1500x900'
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
