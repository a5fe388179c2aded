"""Named ocean regions: the one table used by statistics, animations and the viewers.

Each region is a lon/lat box with where its bounds come from. Longitudes in [-180, 180)
(``lon0 > lon1``: the box crosses the dateline), latitudes in [-90, 90].

Examples
--------
>>> REGIONS["nino34"].box
(-170.0, -120.0, -5.0, 5.0)
>>> get_region("Chilean coast").name  # by name or by label
'chilean_coast'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtofs_lib.errors import RtofsError

__all__ = ["REGIONS", "Region", "get_region"]


@dataclass(frozen=True)
class Region:
    """A named lon/lat box; ``lon0 > lon1`` means the box crosses the dateline."""

    name: str
    label: str
    lon0: float
    lon1: float
    lat0: float
    lat1: float
    #: Where the bounds come from.
    source: str = ""

    def mask(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """A boolean mask of the grid points inside the box (any longitude convention)."""
        lon = (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0
        inside_lat = (lat >= self.lat0) & (lat <= self.lat1)
        if self.lon0 <= self.lon1:
            inside_lon = (lon >= self.lon0) & (lon <= self.lon1)
        else:
            inside_lon = (lon >= self.lon0) | (lon <= self.lon1)
        return inside_lat & inside_lon

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(lon0, lon1, lat0, lat1)``."""
        return (self.lon0, self.lon1, self.lat0, self.lat1)


#: Named regions, in the order plots, tables and menus list them.
REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("global", "Global", -180.0, 180.0, -90.0, 90.0, "the whole grid"),
        Region("gulf_stream", "Gulf Stream", -80.0, -50.0, 30.0, 45.0,
               "Cape Hatteras to the Grand Banks, the separated jet and its rings"),
        Region("north_atlantic", "North Atlantic", -80.0, -5.0, 0.0, 65.0,
               "equator to the Nordic Seas' southern edge"),
        Region("chilean_coast", "Chilean coast", -80.0, -70.0, -45.0, -18.0,
               "Humboldt upwelling system, Arica (18°S) to Chiloé (45°S), coast to ~80°W"),
        Region("equatorial_pacific", "Equatorial Pacific", 160.0, -80.0, -10.0, 10.0,
               "the cold tongue and warm pool, 160°E to the American coast"),
        Region("nino34", "Niño 3.4", -170.0, -120.0, -5.0, 5.0,
               "NOAA CPC's Niño 3.4 index box (5°N-5°S, 170°W-120°W)"),
        Region("kuroshio", "Kuroshio", 120.0, 160.0, 20.0, 45.0,
               "Taiwan to the Kuroshio Extension"),
        Region("agulhas", "Agulhas", 10.0, 40.0, -45.0, -25.0,
               "the Agulhas Current, retroflection and leakage"),
        Region("southern_ocean", "Southern Ocean", -180.0, 180.0, -75.0, -50.0,
               "the Antarctic Circumpolar Current band"),
        Region("mediterranean", "Mediterranean", -6.0, 36.0, 30.0, 46.0,
               "Gibraltar to the Levant"),
        Region("arctic", "Arctic", -180.0, 180.0, 66.5, 90.0, "north of the Arctic Circle"),
    )
}  # fmt: skip


def get_region(name: str) -> Region:
    """The region called ``name`` (a key of :data:`REGIONS` or a region's label).

    Raises
    ------
    RtofsError
        If there is no such region; the message lists the known ones.
    """
    if name in REGIONS:
        return REGIONS[name]
    for region in REGIONS.values():
        if region.label == name:
            return region
    raise RtofsError(f"unknown region {name!r}; choose one of {', '.join(REGIONS)}")
