"""rtofs_lib: Global RTOFS ocean forecasts for a small research cluster.

Read real-format files (:func:`open_file`, :func:`open_day`), render fast SST maps
(:mod:`rtofs_lib.render`), crawl NOMADS (:mod:`rtofs_lib.crawler`) and run the
rendering job on Spark (:mod:`rtofs_lib.pipeline`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "open_file": "rtofs_lib.reader",
    "open_day": "rtofs_lib.reader",
    "parse_name": "rtofs_lib.names",
    "compose_name": "rtofs_lib.names",
    "valid_time": "rtofs_lib.names",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:  # lazy imports keep `rtofs --help` fast
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rtofs_lib' has no attribute {name!r}")
