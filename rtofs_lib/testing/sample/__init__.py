"""Synthetic Global RTOFS files with the exact structure of the real ones.

The files match NCEP's netCDF output (``tests/data/cdl``, ``shared/rtofs/format.md``):
dimension and variable names and order, dtypes, every attribute in order, netCDF-4 with
deflate level 1 and no shuffle, the chunk shapes netCDF-C 4.7.4 picks (the ones NCEP's
files have), ``_FillValue`` 2**100 on land and below the sea floor, ``valid_range`` equal
to the data range, the tripolar grid (Mercator band from 78.64°S to 47°N, a curvilinear
Arctic patch with two poles over Canada and Siberia, a duplicated fold row) and the
pre-2020 NETCDF3 variant. The data look like an ocean: warm tropics and cold poles,
the Gulf Stream, Kuroshio and Antarctic Circumpolar fronts, mesoscale eddies that drift
smoothly from hour to hour, river plumes, sea ice, a thermocline, a land mask drawn from
simplified continent outlines and a sea floor.

The modules, in the order the data flow:

- :mod:`~rtofs_lib.testing.sample.grid`: the tripolar grid (:func:`make_grid`, :data:`GRIDS`);
- :mod:`~rtofs_lib.testing.sample.land`: land mask and distance to the coast;
- :mod:`~rtofs_lib.testing.sample.ocean`: the physical-looking fields;
- :mod:`~rtofs_lib.testing.sample.structure`: each product's variables, attributes, chunks;
- :mod:`~rtofs_lib.testing.sample.slabs`: one file's data, slab by slab;
- :mod:`~rtofs_lib.testing.sample.writer`: the netCDF writers, :func:`write_file`,
  :func:`write_sample`.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> archive = tempfile.mkdtemp()
>>> [p.name for p in sample.write_sample(archive, "20260708", steps="n024,f001")]
['rtofs_glo_2ds_n024_prog.nc', 'rtofs_glo_2ds_f001_prog.nc']
>>> sample.grid_shape("small"), sample.grid_shape("66x90")
((330, 450), (66, 90))
"""

from __future__ import annotations

from rtofs_lib.testing.sample.grid import GRIDS, SampleError, grid_shape, make_grid
from rtofs_lib.testing.sample.structure import (
    DEPTHS_3Z,
    DEPTHS_HVR,
    EXPERIMENT,
    FILL_VALUE,
    LEGACY_EXPERIMENT,
    REGIONS,
    variables,
)
from rtofs_lib.testing.sample.writer import (
    legacy_cadence,
    steps_by_product,
    write_file,
    write_sample,
)

__all__ = [
    "DEPTHS_3Z",
    "DEPTHS_HVR",
    "EXPERIMENT",
    "FILL_VALUE",
    "GRIDS",
    "LEGACY_EXPERIMENT",
    "REGIONS",
    "SampleError",
    "grid_shape",
    "legacy_cadence",
    "make_grid",
    "steps_by_product",
    "variables",
    "write_file",
    "write_sample",
]
