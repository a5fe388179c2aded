"""rtofs_lib: Global RTOFS ocean forecasts for a small research cluster.

The package is laid out as the data flows (see ``docs/architecture.md``): :mod:`rtofs_lib.fetch`
(names, the crawler, the archive), :mod:`rtofs_lib.fields` (reading files, the grid),
:mod:`rtofs_lib.maps`, :mod:`rtofs_lib.jobs` (Spark), :mod:`rtofs_lib.notebook` (the kernel and the
viewer), :mod:`rtofs_lib.hub`, :mod:`rtofs_lib.cli` and :mod:`rtofs_lib.testing`. The names most
used in notebooks are here: :func:`open_file`, :func:`open_day`, :func:`parse_name`,
:func:`compose_name`, :func:`valid_time`, :func:`open_cube` (the analysis-ready cube).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "open_file": "rtofs_lib.fields.reader",
    "open_day": "rtofs_lib.fields.reader",
    "open_cube": "rtofs_lib.cube.query",
    "parse_name": "rtofs_lib.fetch.names",
    "compose_name": "rtofs_lib.fetch.names",
    "valid_time": "rtofs_lib.fetch.names",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:  # lazy imports keep `rtofs --help` fast
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rtofs_lib' has no attribute {name!r}")
