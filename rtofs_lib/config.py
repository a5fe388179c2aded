"""Platform configuration: one TOML file plus ``RTOFS_*`` environment overrides.

Order (later wins): built-in local defaults → the file named by ``RTOFS_CONFIG``
(else ``/etc/rtofs/rtofs.toml`` when it exists) → ``RTOFS_<KEY>`` variables.
With neither file nor variables the defaults make ``rtofs demo`` work on a laptop.

Example ``/etc/rtofs/rtofs.toml``::

    archive = "/lustre/rtofs/archive"
    maps = "/lustre/rtofs/maps"
    cube = "/lustre/rtofs/cube"
    dashboard_url = ""   # the hub's /services/maps/ (or http://127.0.0.1:8092/ off the hub)
    spark_master = "spark://hub:7077"
    spark_secret_file = "/etc/rtofs/spark.secret"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from rtofs_lib.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/rtofs/rtofs.toml")
#: Values of the ``notebook_spark`` setting.
NOTEBOOK_SPARK = ("local", "slurm")
NOMADS_ROOT = "https://nomads.ncep.noaa.gov/pub/data/nccf/com/rtofs/prod/"


def _home() -> Path:
    return Path(os.environ.get("RTOFS_HOME", Path.home() / "rtofs"))


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build one with :func:`load`; override with ``dataclasses.replace``."""

    #: Shared archive root holding ``rtofs.YYYYMMDD/`` folders (Lustre on the cluster).
    archive: Path = field(default_factory=lambda: _home() / "archive")
    #: Where maps, ``index.html`` and region statistics go.
    maps: Path = field(default_factory=lambda: _home() / "maps")
    #: The analysis-ready cube (an Icechunk repository of Zarr arrays; beside the archive).
    cube: Path = field(default_factory=lambda: _home() / "cube")
    #: Grid-index cache (next to the archive on the cluster).
    cache: Path = field(default_factory=lambda: _home() / "cache")
    #: NOMADS production root that holds the day folders.
    base_url: str = NOMADS_ROOT
    #: Products the crawler fetches by default (SST lives in ``prog``).
    products: str = "prog"
    #: Steps the crawler fetches by default (``all`` = the 138 published 2-D steps).
    steps: str = "all"
    #: Spark master URL; ``local[*]`` when unset.
    spark_master: str = "local[*]"
    #: File holding the cluster's ``spark.authenticate`` secret ("" = no authentication).
    spark_secret_file: str = ""
    #: Local scratch for Spark (never on Lustre).
    spark_local_dir: str = "/tmp/rtofs-spark"
    #: Memory for each task's Python worker.
    spark_python_memory: str = "1g"
    #: Spark of the notebooks' ``spark``: ``local`` (``local[N]`` on the kernel's cores) or
    #: ``slurm`` (a personal cluster in the notebook server's Slurm allocation, running as
    #: the researcher: :mod:`rtofs_lib.jobs.personal`). Never the platform's cluster.
    notebook_spark: str = "local"
    #: Fields the rendering job draws.
    fields: str = "sst"
    #: Parallel downloads of the crawler.
    crawl_parallel: int = 2
    #: Request-rate cap of the crawler, per minute (NOMADS blocks above 120).
    crawl_rate_per_minute: int = 100
    #: How long one crawl may run before it stops (``600``, ``90m``, ``4h``).
    crawl_deadline: str = "4h"
    #: Size floors below which a listed file counts as still being written: ``auto`` (the
    #: real floors, on the NOMADS host only), ``off``, or e.g. ``prog=140M,diag=175M``.
    crawl_size_floor: str = "auto"
    #: Seconds between two listings of ``rtofs crawl --follow`` (``60``, ``30s``, ``2m``).
    crawl_follow_interval: str = "60s"
    #: Checkpoint folder of ``rtofs stream`` (local disk of the driver's host is fine).
    stream_checkpoint: Path = field(default_factory=lambda: _home() / "checkpoints" / "stream")
    #: Seconds between two micro-batches of ``rtofs stream`` (how often it looks for new files).
    stream_trigger: str = "1s"
    #: Days kept by ``rtofs prune``.
    keep_days: int = 10
    #: The dashboard service whose tiles the notebooks' :func:`~rtofs_lib.notebook.viewer.tile_map`
    #: shows (a URL, or a path on the page's origin, ending in ``/``). "" = on the hub
    #: (``JUPYTERHUB_SERVICE_PREFIX`` set) its ``maps`` service, ``/services/maps/`` under the
    #: hub's base URL; elsewhere ``http://127.0.0.1:8092/`` (``rtofs dashboard serve``'s port).
    dashboard_url: str = ""


_PATH_KEYS = {"archive", "maps", "cube", "cache", "stream_checkpoint"}


def _coerce(key: str, value: object, source: str) -> object:
    kinds = {f.name: f.type for f in fields(Settings)}
    if key not in kinds:
        raise ConfigError(
            f"{source}: unknown setting {key!r}; known settings: {', '.join(sorted(kinds))}"
        )
    if key in _PATH_KEYS:
        return Path(str(value)).expanduser()
    if kinds[key] == "int":
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be a whole number, not {value!r}") from None
    return str(value)


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Return the settings from defaults, a TOML file and ``RTOFS_*`` variables.

    Parameters
    ----------
    path
        Configuration file; default ``$RTOFS_CONFIG`` or ``/etc/rtofs/rtofs.toml`` if present.
    env
        Environment to read (default ``os.environ``).

    Raises
    ------
    ConfigError
        For an unreadable file, bad TOML, an unknown key or a badly typed value.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    cfg = Path(path) if path else Path(env["RTOFS_CONFIG"]) if env.get("RTOFS_CONFIG") else None
    if cfg is None and SYSTEM_CONFIG.exists():
        cfg = SYSTEM_CONFIG
    if cfg is not None:
        try:
            data = tomllib.loads(cfg.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{cfg}: configuration file not found; create it or unset RTOFS_CONFIG"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{cfg}: not valid TOML: {e}") from None
        for key, value in data.items():
            values[key] = _coerce(key, value, str(cfg))
    names = {f.name for f in fields(Settings)}
    for key in names:
        var = f"RTOFS_{key.upper()}"
        if var in env:
            values[key] = _coerce(key, env[var], var)
    if values.get("notebook_spark", "local") not in NOTEBOOK_SPARK:
        raise ConfigError(
            f"notebook_spark = {values['notebook_spark']!r}: write one of "
            f"{', '.join(NOTEBOOK_SPARK)}"
        )
    return replace(Settings(), **values)
