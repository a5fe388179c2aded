"""The layout of each RTOFS product, as NCEP's files have it (``tests/data/cdl``).

Variables in file order with their attributes, the coordinate variables' attributes, the
global attributes, depth levels, regional windows and the chunk shapes netCDF-C picks.

Examples
--------
>>> variables("diag")[:2]
('ssh', 'u_barotropic_velocity')
>>> chunk_defaults((1, 3298, 4500), (True, False, False), 4)
(1, 825, 1125)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rtofs_lib.fetch import names
from rtofs_lib.testing.sample.grid import GRIDS

__all__ = [
    "DEPTHS_3Z",
    "DEPTHS_HVR",
    "EXPERIMENT",
    "FILL_VALUE",
    "LEGACY_EXPERIMENT",
    "REGIONS",
    "Var",
    "chunk_defaults",
    "region_window",
    "variables",
]

#: ``_FillValue`` of every data variable (2**100, as HYCOM's ``horout`` writes it).
FILL_VALUE = np.float32(2.0**100)
#: Experiment number of v2.x files (2026) and of the pre-2020 NETCDF3 files (2015).
EXPERIMENT = "93.1"
LEGACY_EXPERIMENT = "90.9"
#: Depth levels (m) of the daily global z-level files (33) and the regional 6-hourly ones (40).
# fmt: off
DEPTHS_3Z = (0, 10, 20, 30, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 700, 800,
             900, 1000, 1100, 1200, 1300, 1400, 1500, 1750, 2000, 2500, 3000, 3500, 4000,
             4500, 5000, 5500)
DEPTHS_HVR = (0, 2, 4, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100,
              125, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 900, 1000, 1250, 1500,
              2000, 2500, 3000, 4000, 5000)
# fmt: on
#: Depth levels of each product family (None: 2-D files).
DEPTHS = {"2ds": None, "3dz_daily": DEPTHS_3Z, "3dz_6hrly": DEPTHS_HVR}
#: Regional windows of the full grid: (i origin, j origin, nx, ny), origins 1-based.
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "US_east": (2324, 1505, 742, 1710),
    "US_west": (1600, 1631, 1047, 1666),
    "alaska": (1335, 2150, 712, 850),
}


@dataclass(frozen=True)
class Var:
    """A data variable: its name and attributes."""

    name: str
    standard_name: str | None
    units: str
    long_name: str  # "{e}" stands for the experiment number
    layered: bool = False  # dimensions (MT, Layer, Y, X)


_PROG = (
    Var("u_velocity", "eastward_sea_water_velocity", "m/s", " u-veloc. [{e}H]", True),
    Var("v_velocity", "northward_sea_water_velocity", "m/s", " v-veloc. [{e}H]", True),
    Var("sst", "sea_surface_temperature", "degC", " sea surf. temp.   [{e}H]"),
    Var("sss", "sea_surface_salinity", "psu", "sea surf. salnity  [{e}H]"),
    Var("layer_density", "sea_water_potential_density", "sigma", " density [{e}H]", True),
)
_DIAG = (
    Var("ssh", "sea_surface_elevation", "m", " sea surf. height  [{e}H]"),
    Var(
        "u_barotropic_velocity",
        "barotropic_eastward_sea_water_velocity",
        "m/s",
        "    baro. u-vel.   [{e}H]",
    ),
    Var(
        "v_barotropic_velocity",
        "barotropic_northward_sea_water_velocity",
        "m/s",
        "    baro. v-vel.   [{e}H]",
    ),
    Var("surface_boundary_layer_thickness", None, "m", "bnd.layr.thickness [{e}H]"),
    Var("mixed_layer_thickness", "ocean_mixed_layer_thickness", "m", "mix.layr.thickness [{e}H]"),
)
_ICE = tuple(
    Var(name, f"{name} [09.8H]|", units, f"layer=** {short:<9} [00.0H]")
    for name, units, short in (
        ("ice_coverage", "", "icecov"),
        ("ice_temperature", "degC", "icetemp"),
        ("ice_thickness", "m", "icethck"),
        ("ice_uvelocity", "m/s", "iceuvel"),
        ("ice_vvelocity", "m/s", "icevvel"),
    )
)
_T3 = Var("temperature", "sea_water_potential_temperature", "degC", "  temp [{e}H]")
_S3 = Var("salinity", "sea_water_salinity", "psu", " salinity [{e}H]")
_U3 = Var("u", "eastward_sea_water_velocity", "m/s", " u-veloc. [{e}H]")
_V3 = Var("v", "northward_sea_water_velocity", "m/s", " v-veloc. [{e}H]")
#: The data variables of each product, in file order.
VARS: dict[str, tuple[Var, ...]] = {
    "prog": _PROG,
    "diag": _DIAG,
    "ice": _ICE,
    "3ztio": (_T3,),
    "3zsio": (_S3,),
    "3zuio": (_U3,),
    "3zvio": (_V3,),
    "US_east": (_U3, _V3, _T3, _S3),
    "US_west": (_U3, _V3, _T3, _S3),
    "alaska": (_U3, _V3, _T3, _S3),
}

#: Global attributes (``experiment`` and ``history`` are set per file).
GLOBAL_ATTRS = {
    "Conventions": "CF-1.0",
    "title": "HYCOM ATLb2.00",
    "institution": "National Centers for Environmental Prediction",
    "source": "HYCOM archive file",
    "experiment": EXPERIMENT,
    "history": "archv2ncdf2d",
}
#: Attributes of the coordinate variables, in file order.
COORD_ATTRS: dict[str, list[tuple[str, str]]] = {
    "MT": [("long_name", "time"), ("units", "days since 1900-12-31 00:00:00"),
           ("calendar", "standard"), ("axis", "T")],
    "Date": [("long_name", "date"), ("units", "day as %Y%m%d.%f"), ("C_format", "%13.4f"),
             ("FORTRAN_format", "(f13.4)")],
    "Layer": [("units", "layer"), ("positive", "down"), ("axis", "Z")],
    "Depth": [("standard_name", "depth"), ("units", "m"), ("positive", "down"), ("axis", "Z")],
    "Y": [("point_spacing", "even"), ("axis", "Y")],
    "X": [("point_spacing", "even"), ("axis", "X")],
    "Latitude": [("standard_name", "latitude"), ("units", "degrees_north")],
    "Longitude": [("standard_name", "longitude"), ("units", "degrees_east"),
                  ("modulo", "360 degrees")],
}  # fmt: skip


def variables(product: str) -> tuple[str, ...]:
    """Names of the data variables of ``product``'s files, in file order."""
    names.family(product)
    return tuple(v.name for v in VARS[product])


def region_window(product: str, ny: int, nx: int) -> tuple[slice, slice]:
    """Rows and columns of a regional product's window, scaled from the full grid."""
    full_ny, full_nx = GRIDS["full"]
    i0, j0, wx, wy = REGIONS[product]
    sy, sx = ny / full_ny, nx / full_nx
    r0 = min(round((j0 - 1) * sy), ny - 3)
    c0 = round((i0 - 1) * sx)
    hy = max(2, min(round(wy * sy), ny - 1 - r0))
    hx = max(2, min(round(wx * sx), nx - c0))
    return slice(r0, r0 + hy), slice(c0, c0 + hx)


def chunk_defaults(shape: Sequence[int], unlimited: Sequence[bool], type_size: int) -> tuple:
    """The chunk shape netCDF-C 4.7.4 picks by default (``nc4_find_default_chunksizes2``).

    NCEP's writer never sets chunking, so this reproduces the real files' chunks:
    (1, 825, 1125) for a 2-D field of the full grid, (1, 3, 413, 563) for the 33-level
    z files.
    """
    default_chunk, default_1d_unlim = 4194304, 4096
    ndims = len(shape)
    chunks = [0] * ndims
    num_values = np.float32(1.0)
    num_unlim = 0
    for d in range(ndims):
        if unlimited[d]:
            num_unlim += 1
            chunks[d] = 1
        else:
            num_values = np.float32(num_values * np.float32(shape[d]))
    if ndims == 1 and num_unlim == 1:
        return (min(default_chunk // type_size, default_1d_unlim) // type_size,)
    for d in range(ndims):
        if not chunks[d]:
            ratio = default_chunk / float(np.float32(num_values * np.float32(type_size)))
            size = ratio ** (1.0 / (ndims - num_unlim)) * shape[d] - 0.5
            size = max(0, int(size))
            chunks[d] = max(1, min(size, shape[d]))
    for d in range(ndims):
        n = (shape[d] + chunks[d] - 1) // chunks[d] if shape[d] else 0
        if n:
            chunks[d] -= (n * chunks[d] - shape[d]) // n
    return tuple(chunks)
