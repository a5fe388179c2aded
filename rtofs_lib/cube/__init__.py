"""The analysis-ready cube: every processed file's surface fields in one Zarr store.

- :mod:`~rtofs_lib.cube.store`: the layout (an Icechunk repository of Zarr v3 arrays on the
  native grid), :func:`~rtofs_lib.cube.store.append` one file as a transaction, and the
  series-chunked copy of a complete day (:func:`~rtofs_lib.cube.store.finish_day`);
- :mod:`~rtofs_lib.cube.query`: :func:`~rtofs_lib.cube.query.open_cube` (lazy xarray), point
  and box-mean series in the "best" or per-cycle view.

The backfill over archive days on Spark (``rtofs cube build``) is a job:
:mod:`rtofs_lib.jobs.cubebuild`; the pipeline appends each file it publishes
(:class:`rtofs_lib.jobs.pipeline.Job`); the cube as a Spark input (cells, mean maps, box means
read on the executors) is :mod:`rtofs_lib.jobs.cubespark`.
"""

from __future__ import annotations

from rtofs_lib.cube.query import box_series, open_cube, point_series
from rtofs_lib.cube.store import CubeError, append, finish_day, missing

__all__ = [
    "CubeError",
    "append",
    "box_series",
    "finish_day",
    "missing",
    "open_cube",
    "point_series",
]
