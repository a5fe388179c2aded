"""Turn hub settings (:mod:`rtofs_lib.hub.settings`) into JupyterHub's traitlets config.

``hub_config/jupyterhub_config.py`` calls :func:`configure`. What it sets up:

- PAM login of Unix users; members of ``groups.users`` may log in, ``groups.admins`` are admins.
- SlurmSpawner (or LocalProcessSpawner) whose resources come only from admin-defined profiles
  chosen by name at spawn time (:mod:`rtofs_lib.hub.spawners`).
- An external configurable-http-proxy (``should_start = False``) and ``cleanup_servers = False``
  so a hub restart leaves running servers alone; the database lives in the local state folder.
- The maps dashboard and the idle culler as hub-managed services.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rtofs_lib.errors import ConfigError
from rtofs_lib.hub import settings as hub_settings
from rtofs_lib.hub import spawners
from rtofs_lib.hub.secrets import hub_secrets

DASHBOARD_SERVICE = "maps"
CULLER_SERVICE = "idle-culler"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hub_connect_url(s: dict[str, Any]) -> str:
    """Return the URL the single-user servers use to reach the hub's API.

    Raises
    ------
    ConfigError
        With the Slurm spawner when ``hub.hub_connect_url`` is empty or a loopback address,
        which the compute nodes cannot reach.
    """
    url = s["hub"]["hub_connect_url"]
    if s["spawner"]["kind"] == "slurm":
        if not url or _is_loopback(url):
            raise ConfigError(
                f"hub.hub_connect_url = {url!r}: with spawner.kind = 'slurm' set it to an "
                "address the compute nodes can reach, e.g. 'http://hub.cluster.local:8081'"
            )
        return url
    if url:
        return url
    port = urlsplit(s["hub"]["hub_bind_url"]).port or 8081
    return f"http://127.0.0.1:{port}"


def configure(c: Any, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fill the traitlets config ``c`` from hub settings and return the settings used.

    Parameters
    ----------
    c
        The config object of ``jupyterhub_config.py`` (``get_config()``).
    settings
        Settings as :func:`rtofs_lib.hub.settings.load` returns them; loaded when omitted.
    """
    s = settings if settings is not None else hub_settings.load()
    _configure_hub(c, s)
    _configure_login(c, s)
    _configure_spawner(c, s)
    services, roles = _dashboard_service(s)
    culler, culler_roles = _culler_service(s)
    c.JupyterHub.services = services + culler
    c.JupyterHub.load_roles = culler_roles + roles
    return s


def _configure_hub(c: Any, s: dict[str, Any]) -> None:
    """The hub process, its database and secrets, and the external proxy."""
    hub = s["hub"]
    state = Path(hub["state_dir"])
    cookie_secret, proxy_token = hub_secrets(state)
    c.JupyterHub.bind_url = hub["bind_url"]
    c.JupyterHub.hub_bind_url = hub["hub_bind_url"]
    c.JupyterHub.hub_connect_url = hub_connect_url(s)
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cookie_secret = bytes.fromhex(cookie_secret)
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.log_level = hub["log_level"]
    c.JupyterHub.template_vars = {"announcement_login": hub["title"]}
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = hub["proxy_api_url"]
    c.ConfigurableHTTPProxy.auth_token = proxy_token
    if hub["ssl_cert"]:
        for key in ("ssl_cert", "ssl_key"):
            if not Path(hub[key]).is_file():
                raise ConfigError(f"hub.{key} = {hub[key]!r}: file not found")
        # The proxy terminates TLS (run_local passes these to it); the hub knows them too.
        c.JupyterHub.ssl_cert = hub["ssl_cert"]
        c.JupyterHub.ssl_key = hub["ssl_key"]


def _configure_login(c: Any, s: dict[str, Any]) -> None:
    """PAM login: members of ``groups.users`` may log in, ``groups.admins`` are admins."""
    c.JupyterHub.authenticator_class = "pam"
    c.Authenticator.allow_all = False
    c.PAMAuthenticator.allowed_groups = {s["groups"]["users"]}
    c.PAMAuthenticator.admin_groups = {s["groups"]["admins"]}
    c.PAMAuthenticator.open_sessions = False  # no pam_systemd sessions for batch jobs


def _configure_spawner(c: Any, s: dict[str, Any]) -> None:
    """The spawner (Slurm or local), its command, environment and profiles."""
    sp = s["spawner"]
    user_env = Path(sp["user_env"])
    c.Spawner.default_url = sp["default_url"]
    c.Spawner.notebook_dir = sp["notebook_dir"]
    c.Spawner.start_timeout = sp["start_timeout"]
    c.Spawner.http_timeout = sp["http_timeout"]
    # jupyterhub-singleuser minus ~1.2 s of import per start (see rtofs_lib.hub.singleuser)
    c.Spawner.cmd = [str(user_env / "bin" / "rtofs-singleuser")]
    # Only what the server needs reaches the job: JUPYTERHUB_* (added by JupyterHub), the
    # locale, PATH of the user environment and the admin's extra variables. Nothing else from
    # the hub's own environment (its secrets included) is passed on.
    c.Spawner.env_keep = ["LANG", "LC_ALL"]
    c.Spawner.environment = {
        "PATH": f"{user_env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        **sp["environment"],
    }
    spawners.configure_profiles(c, s)
    shared = s["shared"]["root"]
    if sp["kind"] == "slurm":
        c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
        c.SlurmSpawner.exec_prefix = sp["exec_prefix"] or spawners.default_exec_prefix()
        c.SlurmSpawner.batchspawner_singleuser_cmd = str(
            user_env / "bin" / "batchspawner-singleuser"
        )
        c.SlurmSpawner.req_partition = sp["partition"]
        c.SlurmSpawner.req_srun = sp["srun"]
        c.SlurmSpawner.req_keepvars_extra = ""
        c.SlurmSpawner.req_prologue = spawners.shared_link_prologue(shared)
    else:
        c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
        c.Spawner.pre_spawn_hook = spawners.shared_link_hook(shared)


def _dashboard_service(s: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The maps dashboard as a hub service, and the users' role that may open it."""
    dash = s["dashboard"]
    user_scopes = ["self"]
    services: list[dict[str, Any]] = []
    if dash["enabled"]:
        command = [sys.executable, "-m", "rtofs_lib.hub.dashboard_service",
                   "--root", dash["maps"], "--port", str(dash["port"])]  # fmt: skip
        for key in ("archive", "cube", "cache"):
            if dash[key]:
                command += [f"--{key}", dash[key]]
        services.append(
            {
                "name": DASHBOARD_SERVICE,
                "url": f"http://127.0.0.1:{dash['port']}",
                "command": command,
                "oauth_no_confirm": True,
                "display": True,
                "info": {"description": "RTOFS forecast maps"},
            }
        )
        user_scopes.append(f"access:services!service={DASHBOARD_SERVICE}")
    return services, [{"name": "user", "scopes": user_scopes}]


def _culler_service(s: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The idle culler as a hub service, and its role."""
    cull = s["culler"]
    if not cull["enabled"]:
        return [], []
    command = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={cull['timeout']}",
        f"--cull-every={cull['every']}",
    ]
    if cull["max_age"]:
        command.append(f"--max-age={cull['max_age']}")
    role = {
        "name": CULLER_SERVICE,
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": [CULLER_SERVICE],
    }
    return [{"name": CULLER_SERVICE, "command": command}], [role]
