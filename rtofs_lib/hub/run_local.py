"""Run the hub for real on one machine: configurable-http-proxy and JupyterHub.

The proxy and the hub are separate processes, so the hub can be restarted while users keep
working (the proxy keeps their routes; their servers keep running)::

    python -m rtofs_lib.hub.run_local --settings hub.toml proxy   # the proxy only (a service)
    python -m rtofs_lib.hub.run_local --settings hub.toml hub     # the hub only (a service)
    python -m rtofs_lib.hub.run_local --settings hub.toml all     # both, Ctrl-C stops both

``hub_config/run-local-hub`` is this command. The proxy comes from npm
(``npm install --prefix <repo>/.node configurable-http-proxy``); ``$RTOFS_CHP`` overrides it.
Run the hub as root: PAM needs to read ``/etc/shadow`` and servers run as the logged-in users.
The proxy needs no privilege: run it as its own user and hand it copies of the root-only
files it reads with ``proxy --token-file F --ssl-cert C --ssl-key K`` (the Ansible unit does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rtofs_lib.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILE = REPO / "hub_config" / "jupyterhub_config.py"


def find_proxy() -> str:
    """Return the configurable-http-proxy executable (``$RTOFS_CHP``, ``.node/``, ``PATH``)."""
    candidates = [
        os.environ.get("RTOFS_CHP", ""),
        str(REPO / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"),
        shutil.which("configurable-http-proxy") or "",
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise ConfigError(
        "configurable-http-proxy not found; install it with: "
        f"npm install --prefix {REPO / '.node'} configurable-http-proxy (or set RTOFS_CHP)"
    )


def proxy_command(
    s: dict[str, Any],
    token_file: Path | None = None,
    ssl_cert: Path | None = None,
    ssl_key: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Return the proxy's command line and environment (its auth token) for settings ``s``.

    Parameters
    ----------
    s
        Hub settings (:func:`rtofs_lib.hub.settings.load`).
    token_file
        Read the proxy's auth token from this private file (it must exist) instead of the
        hub's state folder, which only the hub's user can enter.
    ssl_cert, ssl_key
        Certificate and key files to serve instead of the settings' ``hub.ssl_cert`` and
        ``hub.ssl_key`` (copies the proxy's own user can read).

    Raises
    ------
    ConfigError
        ``token_file`` is missing or not a private hex secret.
    """
    from rtofs_lib.hub.config import hub_connect_url
    from rtofs_lib.hub.secrets import check_private, hub_secrets

    if token_file is None:
        _, token = hub_secrets(s["hub"]["state_dir"])
    else:
        if not token_file.is_file():
            raise ConfigError(
                f"{token_file}: proxy token file not found; the hub makes the token in its "
                f"state folder ({s['hub']['state_dir']}) on first start: copy it from there"
            )
        check_private(token_file)
        token = token_file.read_text().strip()
    public = urlsplit(s["hub"]["bind_url"])
    api = urlsplit(s["hub"]["proxy_api_url"])
    cmd = [find_proxy(), "--port", str(public.port or (443 if public.scheme == "https" else 80))]
    if public.hostname and public.hostname != "0.0.0.0":
        cmd += ["--ip", public.hostname]
    cmd += ["--api-ip", api.hostname or "127.0.0.1", "--api-port", str(api.port or 8001)]
    cmd += ["--error-target", hub_connect_url(s).rstrip("/") + "/hub/error"]
    if s["hub"]["ssl_cert"]:
        cert, key = ssl_cert or s["hub"]["ssl_cert"], ssl_key or s["hub"]["ssl_key"]
        cmd += ["--ssl-cert", str(cert), "--ssl-key", str(key)]
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": token}
    return cmd, env


def hub_command(settings_path: Path | None) -> tuple[list[str], dict[str, str]]:
    """Return JupyterHub's command line and environment for the settings file."""
    env = dict(os.environ)
    if settings_path is not None:
        env["RTOFS_HUB_SETTINGS"] = str(settings_path.resolve())
    return [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)], env


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the proxy, the hub, or both in the foreground."""
    from rtofs_lib.hub import settings as hub_settings

    parser = argparse.ArgumentParser(description="Run the RTOFS JupyterHub on this machine.")
    parser.add_argument("--settings", type=Path, help="hub settings file (RTOFS_HUB_SETTINGS)")
    parser.add_argument("what", nargs="?", choices=("all", "proxy", "hub"), default="all")
    parser.add_argument("--token-file", type=Path, help="proxy only: its auth token's file")
    parser.add_argument("--ssl-cert", type=Path, help="proxy only: TLS certificate to serve")
    parser.add_argument("--ssl-key", type=Path, help="proxy only: the certificate's key")
    args = parser.parse_args(argv)
    hub_cmd, hub_env = hub_command(args.settings)
    try:
        s = hub_settings.load(args.settings)
        state = Path(s["hub"]["state_dir"])
        if args.token_file is None:  # the proxy as its own user never enters the state folder
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
        if args.what == "hub":  # the hub checks its own secrets when it loads its config
            os.chdir(state)
            os.execve(hub_cmd[0], hub_cmd, hub_env)
        proxy_cmd, proxy_env = proxy_command(s, args.token_file, args.ssl_cert, args.ssl_key)
    except ConfigError as e:
        print(f"run-local-hub: error: {e}", file=sys.stderr)
        return 1
    if args.what == "proxy":
        os.execve(proxy_cmd[0], proxy_cmd, proxy_env)
    procs = [
        subprocess.Popen(proxy_cmd, env=proxy_env, start_new_session=True),
        subprocess.Popen(hub_cmd, env=hub_env, cwd=state, start_new_session=True),
    ]

    def stop(*_: object) -> None:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stop()
    for p in procs:
        p.wait(timeout=30)
    return procs[1].returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
