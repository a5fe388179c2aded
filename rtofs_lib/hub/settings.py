"""Hub settings: built-in defaults → one TOML file → drop-ins in sorted order.

The settings file is ``$RTOFS_HUB_SETTINGS`` (default ``/etc/rtofs/hub.toml``); drop-ins are the
``*.toml`` files of ``<settings file without .toml>.d/`` (``/etc/rtofs/hub.d/``), applied in
sorted name order like The Littlest JupyterHub's ``config.d``. Tables merge key by key, so a
drop-in can add a profile or change one limit. Unknown keys and wrong types are errors that name
the file and the key. See ``hub_config/settings.example.toml`` for every key.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from rtofs_lib.errors import ConfigError

DEFAULT_SETTINGS_FILE = Path("/etc/rtofs/hub.toml")

#: Every key a settings file may set, with its default. ``profiles`` and the ``environment``
#: tables are open (any name); everything else is checked against this.
DEFAULTS: dict[str, Any] = {
    "hub": {
        # Where users point their browsers: the proxy's public address.
        "bind_url": "http://0.0.0.0:8000/",
        # Where the hub's own API listens, and the URL the workers use to reach it.
        "hub_bind_url": "http://0.0.0.0:8081",
        "hub_connect_url": "",  # e.g. "http://hub.cluster.local:8081"; required for Slurm
        "proxy_api_url": "http://127.0.0.1:8001",
        "state_dir": "/var/lib/rtofs-hub",  # local disk: database, cookie secret, proxy token
        "ssl_cert": "",
        "ssl_key": "",
        "log_level": "INFO",
        "title": "RTOFS ocean platform",
    },
    "groups": {"users": "researchers", "admins": "admins"},
    "spawner": {
        "kind": "slurm",  # "slurm" on the cluster, "local" on a single host
        # The kernel environment on the workers: has jupyterlab, jupyterhub, batchspawner.
        "user_env": "/opt/rtofs/venv",
        "default_url": "/lab",
        "notebook_dir": "~",
        "default_profile": "small",
        "start_timeout": 300,
        "http_timeout": 120,
        # Command prefix that runs sbatch/squeue/scancel as the user; "" picks
        # "runuser -u {username} --" when the hub runs as root, else "sudo -E -u {username}".
        "exec_prefix": "",
        "partition": "",
        # Runs the server as one task on the first node (a profile may ask for more nodes:
        # the researcher's own Spark workers use them).
        "srun": "srun --nodes=1 --ntasks=1",
        # Extra variables for the user's server (e.g. SLURM_CONF); nothing else from the hub's
        # own environment reaches the job.
        "environment": {},
    },
    "profiles": {
        "small": {"cpus": 1, "memory": "2G", "runtime": "08:00:00", "description": ""},
        "large": {"cpus": 4, "memory": "8G", "runtime": "08:00:00", "description": ""},
    },
    "culler": {"enabled": True, "timeout": 3600, "every": 300, "max_age": 0},
    # The dashboard (map, tiles, gallery); "" for archive, cube and cache: the rtofs settings
    # (/etc/rtofs/rtofs.toml) of the hub's host.
    "dashboard": {
        "enabled": True,
        "maps": "/srv/rtofs/maps",
        "port": 8091,
        "archive": "",
        "cube": "",
        "cache": "",
    },
    "shared": {
        "root": "/srv/rtofs/notebooks",  # examples/ (read-only) and collab/ (group-writable)
        "examples": "",  # where publish copies from; "" = the checkout's example_notebooks/
    },
}

PROFILE_KEYS = {
    "cpus": int,
    "memory": str,
    "runtime": str,
    "nodes": int,
    "description": str,
    "enabled": bool,
}
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MEMORY = re.compile(r"^[1-9][0-9]*[KMGT]?$")
RUNTIME = re.compile(r"^(?:\d+-)?\d{1,2}:\d{2}:\d{2}$|^\d+$")


def settings_file() -> Path:
    """Return the settings file to read: ``$RTOFS_HUB_SETTINGS`` or ``/etc/rtofs/hub.toml``."""
    return Path(os.environ.get("RTOFS_HUB_SETTINGS") or DEFAULT_SETTINGS_FILE)


def dropin_dir(path: Path) -> Path:
    """Return the drop-in folder of a settings file (``hub.toml`` → ``hub.d``)."""
    return path.with_name(path.stem + ".d")


def load(path: str | Path | None = None) -> dict[str, Any]:
    """Return the merged, checked settings.

    Parameters
    ----------
    path
        The settings file; default :func:`settings_file`. A missing file is fine (defaults
        plus drop-ins) unless it was named explicitly.

    Raises
    ------
    ConfigError
        A file is not TOML, sets an unknown key, a value of the wrong type, or a bad profile.
    """
    explicit = path is not None or bool(os.environ.get("RTOFS_HUB_SETTINGS"))
    path = Path(path) if path is not None else settings_file()
    merged = copy.deepcopy(DEFAULTS)
    files: list[Path] = []
    if path.exists():
        files.append(path)
    elif explicit:
        raise ConfigError(
            f"{path}: hub settings file not found (copy hub_config/settings.example.toml there)"
        )
    drop = dropin_dir(path)
    if drop.is_dir():
        files.extend(sorted(drop.glob("*.toml")))
    for f in files:
        try:
            data = tomllib.loads(f.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{f}: not valid TOML: {e}") from e
        _merge(merged, data, DEFAULTS, f, ())
    _check(merged, files[-1] if files else path)
    return merged


def _merge(into: dict, new: dict, schema: dict, source: Path, where: tuple) -> None:
    for key, value in new.items():
        dotted = ".".join((*where, key))
        if where == ("profiles",):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted} must be a table like [profiles.{key}]")
            _check_profile_keys(value, source, dotted)
            into.setdefault(key, {}).update(value)
            continue
        if where == ("spawner", "environment"):
            if isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted} must be a string, not a table")
            into[key] = str(value)
            continue
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{source}: unknown setting {dotted!r} (known here: {known})")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted} must be a table [{dotted}]")
            _merge(into[key], value, default, source, (*where, key))
            continue
        if type(value) is not type(default):
            raise ConfigError(
                f"{source}: {dotted} must be a {type(default).__name__}, got {value!r}"
            )
        into[key] = value


def _check_profile_keys(profile: dict, source: Path, dotted: str) -> None:
    for key, value in profile.items():
        kind = PROFILE_KEYS.get(key)
        if kind is None:
            raise ConfigError(
                f"{source}: unknown setting '{dotted}.{key}' (profiles take "
                f"{', '.join(PROFILE_KEYS)})"
            )
        if type(value) is not kind:
            raise ConfigError(f"{source}: {dotted}.{key} must be a {kind.__name__}, got {value!r}")


def _check_profile(name: str, p: dict, source: Path) -> None:
    where = f"{source}: profiles.{name}"
    if not PROFILE_NAME.match(name):
        raise ConfigError(f"{where}: name must be lower-case letters, digits, - or _")
    missing = {"cpus", "memory", "runtime"} - set(p)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    if p["cpus"] < 1:
        raise ConfigError(f"{where}.cpus must be at least 1, got {p['cpus']}")
    if p.get("nodes", 1) < 1:
        raise ConfigError(f"{where}.nodes must be at least 1, got {p['nodes']}")
    if not MEMORY.match(p["memory"]):
        raise ConfigError(f"{where}.memory must look like 2G or 512M, got {p['memory']!r}")
    if not RUNTIME.match(p["runtime"]):
        raise ConfigError(
            f"{where}.runtime must be Slurm time like 08:00:00 or 1-00:00:00, got {p['runtime']!r}"
        )


def _check(s: dict, source: Path) -> None:
    kind = s["spawner"]["kind"]
    if kind not in ("slurm", "local"):
        raise ConfigError(f"{source}: spawner.kind must be 'slurm' or 'local', got {kind!r}")
    if not profiles(s):
        raise ConfigError(f"{source}: no enabled [profiles.<name>]; define at least one")
    for name, p in s["profiles"].items():
        _check_profile(name, p, source)
    if s["spawner"]["default_profile"] not in profiles(s):
        raise ConfigError(
            f"{source}: spawner.default_profile {s['spawner']['default_profile']!r} is not an "
            f"enabled profile ({', '.join(profiles(s))})"
        )
    if bool(s["hub"]["ssl_cert"]) != bool(s["hub"]["ssl_key"]):
        raise ConfigError(f"{source}: set both hub.ssl_cert and hub.ssl_key, or neither")
    if s["culler"]["timeout"] < 1 or s["culler"]["every"] < 1:
        raise ConfigError(f"{source}: culler.timeout and culler.every must be positive seconds")


def profiles(s: dict) -> dict[str, dict]:
    """Return the enabled profiles of settings ``s``, name → profile, in file order."""
    return {n: p for n, p in s["profiles"].items() if p.get("enabled", True)}
