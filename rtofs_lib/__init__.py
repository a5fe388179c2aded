"""rtofs_lib: Global RTOFS ocean forecasts for a small research cluster.

Read real-format files (:func:`open_file`, :func:`open_day`), render fast SST maps
(:mod:`rtofs_lib.maps.render`), crawl NOMADS (:mod:`rtofs_lib.fetch.crawler`) and run the
rendering job on Spark (:mod:`rtofs_lib.jobs.pipeline`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "open_file": "rtofs_lib.fields.reader",
    "open_day": "rtofs_lib.fields.reader",
    "parse_name": "rtofs_lib.fetch.names",
    "compose_name": "rtofs_lib.fetch.names",
    "valid_time": "rtofs_lib.fetch.names",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:  # lazy imports keep `rtofs --help` fast
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rtofs_lib' has no attribute {name!r}")
