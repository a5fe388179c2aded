"""Test and demo doubles, public: the exact-format sample writer, a NOMADS-like server and a local
Spark standalone cluster. The product never imports them.

- :mod:`rtofs_lib.testing.sample`: real-format synthetic RTOFS files; its main entry points
  are re-exported here (imported on first use, so ``import rtofs_lib.testing`` stays light);
- :mod:`rtofs_lib.testing.nomads`: a loopback NOMADS-like HTTP server with fault injection;
- :mod:`rtofs_lib.testing.cluster`: a local Spark standalone cluster.

>>> from rtofs_lib.testing import grid_shape, write_file
>>> grid_shape("small")
(330, 450)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_SAMPLE = ("GRIDS", "SampleError", "grid_shape", "make_grid", "write_file", "write_sample")

__all__ = list(_SAMPLE)


def __getattr__(name: str) -> Any:  # lazy: numpy and netCDF4 only when a sample is wanted
    if name in _SAMPLE:
        return getattr(import_module("rtofs_lib.testing.sample"), name)
    raise AttributeError(f"module 'rtofs_lib.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SAMPLE])
