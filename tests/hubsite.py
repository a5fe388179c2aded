"""A real one-machine site for the hub tests: munge, Slurm, Unix users, the proxy and the hub.

Used by the ``hub`` fixtures of ``conftest.py``. Everything is started the way a site would,
on loopback ports, and removed afterwards: test users and groups (``userdel -r``), Slurm
daemons, the proxy and the hub, and munged if this module started it.

The users' servers must run the project's Python as the test users. The project venv's
interpreter lives under ``/root/.pyenv`` (mode 0700), so :func:`make_user_env` builds a
world-readable environment from Debian's ``/usr/bin/python3`` (same 3.11 ABI) whose
``.pth`` file adds the project venv's site-packages, with ``share``/``etc`` linked so
JupyterLab finds its assets and server extensions.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from rtofs_lib.testing import sample

REPO = Path(__file__).resolve().parents[1]
RUN_LOCAL_HUB = REPO / "hub_config" / "run-local-hub"
SYSTEM_PYTHON = Path("/usr/bin/python3")

RESEARCHERS = "rtt-researchers"
ADMINS = "rtt-admins"
#: name -> groups; rttcarol is a valid Unix user outside the researchers' group.
USERS = {"rttalice": [RESEARCHERS], "rttbob": [RESEARCHERS, ADMINS], "rttcarol": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def outside_address() -> str:
    """Return a non-loopback IPv4 address of this machine (what compute nodes would use)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    for addr in out:
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", addr) and not addr.startswith("127."):
            return addr
    raise RuntimeError("no non-loopback IPv4 address: the hub's connect URL needs one")


def wait_for(check, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # a server that is not up yet
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def sh(*cmd: str, env: dict | None = None, check: bool = True) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=check).stdout


# --- munge and Slurm ------------------------------------------------------------------------


def munge_works() -> bool:
    p = subprocess.run("munge -n | unmunge", shell=True, capture_output=True)
    return p.returncode == 0


def start_munge() -> int | None:
    """Start munged unless one answers; return its pid when this call started it."""
    if munge_works():
        return None
    run = Path("/run/munge")
    run.mkdir(exist_ok=True)
    shutil.chown(run, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
    wait_for(munge_works, 10, "munged")
    return int((run / "munged.pid").read_text())


SLURM_CONF = """\
ClusterName=rtofs-hub-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Declare enough for the profiles even on a small test machine.
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
NodeName=localhost CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Slurm:
    base: Path
    conf: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def squeue(self, user: str, fmt: str = "%i %T %C %m %l") -> list[str]:
        out = sh("squeue", "-h", "-u", user, "-o", fmt, env=self.env)
        return [line.strip() for line in out.splitlines() if line.strip()]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def start_slurm(base: Path, cpus: int = 8, memory_mb: int = 16000) -> Slurm:
    """Start slurmctld and slurmd for one node declaring ``cpus`` and ``memory_mb``."""
    base.mkdir()
    for sub in ("state", "spool"):
        (base / sub).mkdir()
    conf = base / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            base=base,
            ctld_port=free_port(),
            slurmd_port=free_port(),
            cpus=cpus,
            memory_mb=memory_mb,
        )
    )
    conf.chmod(0o644)
    slurm = Slurm(base, conf)
    log = open(base / "daemons.out", "ab")  # noqa: SIM115 (kept open for the daemons' lifetime)
    for cmd in (["slurmctld", "-D", "-i"], ["slurmd", "-D", "-N", "localhost"]):
        slurm.procs.append(
            subprocess.Popen(cmd, env=slurm.env, stdout=log, stderr=log, start_new_session=True)
        )
    try:
        wait_for(
            lambda: "idle" in sh("sinfo", "-h", "-o", "%T", env=slurm.env),
            30,
            f"Slurm node idle (logs in {base})",
        )
    except TimeoutError as e:
        slurm.stop()  # no daemons left behind by a failed start
        tails = [f"{p.name}: {p.read_text()[-1500:]}" for p in sorted(base.glob("*.log"))]
        raise TimeoutError(f"{e}\n" + "\n".join(tails)) from None
    return slurm


# --- users and the user environment ---------------------------------------------------------


def create_users(users: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Create the test groups and ``users`` (default :data:`USERS`) with random passwords.

    Returns name -> password.
    """
    for g in (RESEARCHERS, ADMINS):
        subprocess.run(["groupadd", g], check=True)
    passwords = {}
    for name, groups in (users or USERS).items():
        # private homes, as the common role makes them on the cluster
        cmd = ["useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash", name]
        if groups:
            cmd[1:1] = ["-G", ",".join(groups)]
        subprocess.run(cmd, check=True)
        passwords[name] = secrets.token_urlsafe(12)
        subprocess.run(["chpasswd"], input=f"{name}:{passwords[name]}\n", text=True, check=True)
    return passwords


def remove_users(users: dict[str, list[str]] | None = None) -> None:
    for name in users or USERS:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    for g in (RESEARCHERS, ADMINS):
        subprocess.run(["groupdel", g], capture_output=True)


def make_user_env(target: Path, archive: Path, cube: Path) -> Path:
    """Build a world-readable Python environment that runs the project's code (see module doc);
    its kernel's settings name the site's ``archive`` and ``cube``, as rtofs_config's do."""
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(target)], check=True)
    site = REPO / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = site / "site-packages"
    (target / "lib" / site.parent.name / "site-packages" / "rtofs-project.pth").write_text(
        f"import site; site.addsitedir({str(site)!r})\n"
    )
    (target / "etc").symlink_to(REPO / ".venv" / "etc")
    jupyter = target / "share" / "jupyter"
    jupyter.mkdir(parents=True)
    for entry in (REPO / ".venv" / "share" / "jupyter").iterdir():
        if entry.name != "kernels":  # the lab assets; kernels of this environment below
            (jupyter / entry.name).symlink_to(entry)
    from rtofs_lib.notebook import kernel

    # the shared kernel with the site's settings, as the rtofs role installs it
    scratch = target.parent / "spark-scratch"
    scratch.mkdir(mode=0o1777)
    scratch.chmod(0o1777)
    settings = target / "rtofs.toml"
    settings.write_text(
        f'spark_master = "local[2]"\nspark_local_dir = "{scratch}"\n'
        f'archive = "{archive}"\ncube = "{cube}"\n'
    )
    settings.chmod(0o644)
    kernel.install(prefix=target, python=str(target / "bin" / "python"), config=settings)
    for script in ("rtofs-singleuser", "jupyterhub-singleuser", "batchspawner-singleuser"):
        text = (REPO / ".venv" / "bin" / script).read_text().splitlines()
        text[0] = f"#!{target / 'bin' / 'python'}"
        path = target / "bin" / script
        path.write_text("\n".join(text) + "\n")
        path.chmod(0o755)
    return target


# --- a browser's view ------------------------------------------------------------------------


def login(site: HubSite, user: str, password: str | None = None) -> requests.Session:
    """Log in through the login form as a browser does; return the session.

    The login response is kept as ``session.last``.
    """
    s = requests.Session()
    page = s.get(f"{site.url}/hub/login", timeout=60)
    page.raise_for_status()
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = s.post(
        f"{site.url}/hub/login",
        data={"username": user, "password": password or site.passwords[user], "_xsrf": token},
        timeout=60,
    )
    s.last = r  # type: ignore[attr-defined]
    return s


def browser_login(page, site: HubSite, user: str) -> None:
    """Log ``user`` in through the hub's login form on the Playwright ``page``."""
    page.goto(f"{site.url}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", site.passwords[user])
    with page.expect_navigation(timeout=60_000):
        page.click("[type=submit]")  # the hub's login cookie is set by this response


def xsrf(s: requests.Session) -> str:
    """The hub's xsrf token of a logged-in session (for POSTs and API calls)."""
    return s.cookies.get("_xsrf", path="/hub/")


def spawn(site: HubSite, user: str, profile: str = "small", timeout: float = 150.0):
    """Log in, pick ``profile`` on the spawn form, wait until JupyterLab answers.

    Waits as the spawn-pending page of a browser does: on the hub's progress event stream,
    then follows the redirect to JupyterLab (OAuth with the user's server included).
    Returns ``(session, seconds)``: the logged-in session and the time from the login
    request to JupyterLab's page through the proxy.
    """
    t0 = time.monotonic()
    s = login(site, user)
    if s.last.status_code != 200:
        raise RuntimeError(f"{user}: login answered {s.last.status_code}")
    r = s.post(f"{site.url}/hub/spawn", data={"profile": profile, "_xsrf": xsrf(s)}, timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"{user}: spawn answered {r.status_code}: {r.text[:300]}")
    progress = s.get(
        f"{site.url}/hub/api/users/{user}/server/progress",
        headers={"X-XSRFToken": xsrf(s)},
        stream=True,
        timeout=timeout,
    )
    events = []
    with progress:
        for line in progress.iter_lines():
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[5:])
            events.append(event.get("message", ""))
            if event.get("failed"):
                raise RuntimeError(f"{user}: spawn failed: {events}")
            if event.get("ready"):
                break
        else:
            raise RuntimeError(f"{user}: progress stream ended before ready: {events}")
    lab = f"{site.url}/user/{user}/lab"
    page = s.get(lab, timeout=60)
    if page.status_code != 200 or page.url != lab:
        raise RuntimeError(f"{user}: JupyterLab answered {page.status_code} at {page.url}")
    return s, time.monotonic() - t0


def server_pid(user: str) -> int:
    """PID of ``user``'s single-user server (``rtofs-singleuser``) on this machine."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            owner = proc.stat().st_uid
        except OSError:
            continue
        server = any(b"rtofs-singleuser" in part for part in cmd)
        if server and owner == pwd.getpwnam(user).pw_uid:
            return int(proc.name)
    raise AssertionError(f"no rtofs-singleuser process of {user}")


# --- the hub --------------------------------------------------------------------------------


@dataclass
class HubSite:
    base: Path
    settings: Path
    state: Path
    url: str
    passwords: dict[str, str]
    slurm: Slurm
    maps: Path
    shared: Path
    culler_timeout: int
    hub_env: dict[str, str]
    users: dict[str, list[str]] = field(default_factory=lambda: dict(USERS))
    proxy: subprocess.Popen | None = None
    hub: subprocess.Popen | None = None

    def start_proxy(self) -> None:
        log = open(self.base / "proxy.log", "ab")  # noqa: SIM115
        self.proxy = subprocess.Popen(
            [str(RUN_LOCAL_HUB), "--settings", str(self.settings), "proxy"],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def start_hub(self) -> None:
        log = open(self.base / "hub.log", "ab")  # noqa: SIM115
        self.hub = subprocess.Popen(
            [str(RUN_LOCAL_HUB), "--settings", str(self.settings), "hub"],
            stdout=log,
            stderr=log,
            env=self.hub_env,
            start_new_session=True,
        )
        wait_for(self._hub_up, 60, f"the hub (log {self.base / 'hub.log'})")

    def _hub_up(self) -> bool:
        if self.hub is not None and self.hub.poll() is not None:
            raise RuntimeError(f"hub exited with {self.hub.returncode}; see {self.base}/hub.log")
        return requests.get(f"{self.url}/hub/api/", timeout=5).status_code == 200

    def stop_hub(self) -> None:
        """Stop the hub (SIGTERM; SIGKILL after 30 s, which servers must survive too)."""
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            try:
                self.hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("hub: no exit 30 s after SIGTERM; killing it", file=sys.stderr)
                self.hub.kill()
                self.hub.wait(timeout=30)

    def restart_hub(self) -> None:
        self.stop_hub()
        self.start_hub()

    def stop(self) -> None:
        self.stop_hub()
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(timeout=15)


def write_settings(base: Path, **values: object) -> Path:
    lines = []
    for table, entries in values.items():
        lines.append(f"[{table}]")
        for key, value in entries.items():  # type: ignore[attr-defined]
            if isinstance(value, str):
                value = f'"{value}"'
            elif isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, dict):
                value = "{" + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + "}"
            lines.append(f"{key} = {value}")
        lines.append("")
    path = base / "hub.toml"
    path.write_text("\n".join(lines))
    return path


def start_site(
    base: Path,
    kind: str = "slurm",
    users: dict[str, list[str]] | None = None,
    culler_timeout: int = 1800,
    cull_every: int = 600,
) -> HubSite:
    """Start Slurm, create users, write settings, start the proxy and the hub.

    ``kind`` is the spawner (``slurm`` or ``local``); ``users`` default to :data:`USERS`;
    the idle culler stops servers idle for ``culler_timeout`` s, checking every ``cull_every``.
    Slurm runs either way (a site may switch spawners; the tests call ``squeue``).
    """
    users = users or dict(USERS)
    # room for every user's small profile (1 CPU, 2G) at once; slurmd trusts the declaration
    slurm = start_slurm(
        base / "slurm", cpus=max(8, len(users)), memory_mb=max(16000, 2100 * len(users))
    )
    passwords = create_users(users)
    maps = base / "maps"
    maps.mkdir()
    (maps / "index.html").write_text("<html><body><h1>RTOFS test maps</h1></body></html>")
    archive = base / "archive"  # one small file for the dashboard's tiles
    sample.write_sample(archive, "20260708", steps="f001", grid="small")
    user_env = make_user_env(base / "userenv", archive, base / "cube")
    state = base / "state"
    public, hub_port, api_port, dash_port = (free_port() for _ in range(4))
    settings = write_settings(
        base,
        hub={
            "bind_url": f"http://127.0.0.1:{public}/",
            "hub_bind_url": f"http://0.0.0.0:{hub_port}",
            "hub_connect_url": f"http://{outside_address()}:{hub_port}",
            "proxy_api_url": f"http://127.0.0.1:{api_port}",
            "state_dir": str(state),
            "log_level": "DEBUG",
        },
        groups={"users": RESEARCHERS, "admins": ADMINS},
        spawner={
            "kind": kind,
            "user_env": str(user_env),
            "start_timeout": 120,
            "http_timeout": 90,
            "environment": {"SLURM_CONF": str(slurm.conf)},
        },
        culler={"timeout": culler_timeout, "every": cull_every},
        dashboard={
            "maps": str(maps),
            "port": dash_port,
            "archive": str(archive),
            "cache": str(base / "cache"),
            "cube": str(base / "cube"),
        },
        shared={"root": str(base / "shared")},
    )
    # A careless site passes the proxy token to the hub's environment too: it must still
    # not reach the users' jobs.
    proxy_token_hint = "CONFIGPROXY_AUTH_TOKEN"
    site = HubSite(
        base=base,
        settings=settings,
        state=state,
        url=f"http://127.0.0.1:{public}",
        passwords=passwords,
        slurm=slurm,
        maps=maps,
        shared=base / "shared",
        culler_timeout=culler_timeout,
        hub_env={**slurm.env},
        users=users,
    )
    site.start_proxy()
    wait_for(lambda: port_open(api_port), 20, "the proxy")
    from rtofs_lib.hub.secrets import hub_secrets

    cookie, token = hub_secrets(state)
    site.hub_env[proxy_token_hint] = token
    site.hub_env["JPY_COOKIE_SECRET"] = cookie
    site.start_hub()
    return site


def make_base() -> Path:
    """A world-traversable scratch folder (pytest's tmp folders are private to root)."""
    base = Path(tempfile.mkdtemp(prefix="rtofs-hub-", dir="/tmp"))
    base.chmod(0o755)
    return base


def _kill_leftovers(base: Path) -> None:
    """SIGKILL any process still running from the site's folder (a hub service, a daemon)."""
    mark = str(base).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mark in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def teardown(
    site: HubSite | None,
    slurm_users: list[str],
    munge_pid: int | None,
    base: Path,
    users: dict[str, list[str]] | None = None,
):
    if site is not None:
        for user in slurm_users:
            subprocess.run(
                ["scancel", "--full", "--signal=KILL", "-u", user],
                env=site.slurm.env,
                capture_output=True,
            )
        try:  # let slurmd finish the job steps before it stops
            wait_for(lambda: not any(site.slurm.squeue(u) for u in slurm_users), 30, "scancel")
        finally:
            site.stop()
        site.slurm.stop()
    logs = Path(os.environ.get("RTOFS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "hub-logs"
    logs.mkdir(parents=True, exist_ok=True)
    for log in [*base.glob("*.log"), *base.glob("slurm/*.log"), *Path("/home").glob("rtt*/*.log")]:
        name = log.name if log.parent == base else f"{log.parent.name}-{log.name}"
        shutil.copy(log, logs / name)
    _kill_leftovers(base)
    remove_users(users)
    if munge_pid is not None:
        os.kill(munge_pid, signal.SIGTERM)
    shutil.rmtree(base, ignore_errors=True)


# --- a kernel on a user's server --------------------------------------------------------------


class NotebookKernel:
    """A kernel on a user's server, driven over its websocket as JupyterLab does.

    ``base`` is the hub's public URL; ``sslopt`` goes to websocket-client (e.g.
    ``{"ca_certs": cert}`` for a hub with its own certificate). ``run`` returns a cell's
    stdout and raises with the traceback on an error; ``close`` shuts the kernel down.
    """

    def __init__(self, s: requests.Session, base: str, user: str, kernel: str = "rtofs",
                 *, sslopt: dict | None = None, timeout: float = 300) -> None:  # fmt: skip
        import websocket

        self.s, self.user = s, user
        self.api = f"{base}/user/{user}/api"
        self.token = s.cookies.get("_xsrf", path=f"/user/{user}/")
        r = s.post(
            f"{self.api}/sessions",
            json={"path": "hub-test.ipynb", "type": "notebook", "kernel": {"name": kernel}},
            headers={"X-XSRFToken": self.token},
            timeout=120,
        )
        assert r.status_code == 201, r.text[:300]
        self.kernel_id = r.json()["kernel"]["id"]
        cookies = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        self.ws = websocket.create_connection(
            f"{self.api.replace('http', 'ws', 1)}/kernels/{self.kernel_id}/channels",
            header=[f"Cookie: {cookies}", f"X-XSRFToken: {self.token}"],
            origin=base,
            timeout=timeout,
            sslopt=sslopt or {},
        )

    def run(self, code: str) -> str:
        """Run ``code``; return its stdout."""
        import uuid

        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.user,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))  # fmt: skip
        out = []
        while True:
            m = json.loads(self.ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = m["msg_type"]
            if kind == "stream" and m["content"]["name"] == "stdout":
                out.append(m["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(m["content"]["traceback"]))
            elif kind == "status" and m["content"]["execution_state"] == "idle":
                return "".join(out)

    def close(self) -> None:
        """Close the websocket and shut the kernel down (if it still runs)."""
        self.ws.close()
        self.s.delete(f"{self.api}/kernels/{self.kernel_id}", headers={"X-XSRFToken": self.token})

    def __enter__(self) -> NotebookKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
