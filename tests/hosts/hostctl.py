#!/usr/bin/env python3
"""Three booted Debian hosts (systemd-nspawn) on a private bridge, for converging the Ansible.

Usage (as root)::

    python3 tests/hosts/hostctl.py up [--release bookworm]    # build/boot hub, worker1, worker2
    python3 tests/hosts/hostctl.py status
    python3 tests/hosts/hostctl.py ssh hub -- systemctl is-system-running
    python3 tests/hosts/hostctl.py down                        # always safe to run

What ``up`` does, each step reusing what an earlier run left:

1. a bridge ``rtofsbr0`` with 198.51.100.1/24 and no route out (the hosts get no gateway);
2. ``apt-cacher-ng`` bound to loopback and the bridge address: debootstrap and the hosts'
   apt fetch through it, so three hosts (and every later run) share one package cache;
3. a wheelhouse of the platform's Python packages built on this machine (the hosts have no
   internet), bind-mounted read-only at ``/srv/wheelhouse``;
4. one root filesystem per Debian release made by debootstrap, kept under
   ``/var/cache/rtofs-hosts/<release>/rootfs``; each host boots an overlay of it;
5. per host: hostname, ``/etc/hosts``, a static address (``10-rtofs.network``, sorting before
   the image's DHCP ``80-container-host0.network``), its own ssh host keys and machine id,
   root's ``authorized_keys`` from a key generated here; one host folder bind-mounted into
   all three at ``/lustre`` (standing in for the Lustre mount);
6. ``systemd-nspawn -b --register=no --keep-unit`` per host, then wait until sshd answers.

``down`` sends SIGTERM to each nspawn (a clean shutdown), SIGKILL after a grace period,
unmounts the overlays, removes the bridge and stops the cache. The package cache, the
wheelhouse and the base roots stay for the next run.

One run at a time: the hosts, the bridge and the state folder are shared by every run on
this machine, so ``up`` first takes an exclusive lock (``flock`` on ``STATE/harness.lock``)
and keeps it until ``down``. The lock is held by a small holder process, so it outlives a
``hostctl.py up`` command and ends with ``down`` (or when the holder is killed). A second
run fails at once with a message naming the process that holds the lock; set
``RTOFS_HOSTS_LOCK_WAIT`` (seconds) to wait that long for it first. ``down`` refuses to
stop hosts whose run is still alive (another pytest session): ``down --force`` overrides.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

#: Where the base roots, the apt cache and the wheelhouse are kept between runs.
CACHE = Path(os.environ.get("RTOFS_HOSTS_CACHE", "/var/cache/rtofs-hosts"))
#: Where running hosts live (overlay upper dirs, logs, pids, the ssh key).
STATE = Path(os.environ.get("RTOFS_HOSTS_STATE", "/var/lib/rtofs-hosts"))
REPO = Path(__file__).resolve().parents[2]

BRIDGE = "rtofsbr0"
NET = "198.51.100"
GATEWAY = f"{NET}.1"  # this machine on the bridge (apt cache); never a route out
HOSTS = {"hub": f"{NET}.11", "worker1": f"{NET}.12", "worker2": f"{NET}.13"}
#: Hosts booted only on demand (:func:`add`), e.g. a worker added to a running cluster;
#: ``down`` stops them with the others.
SPARE_HOSTS = {"worker3": f"{NET}.14"}
ACNG_PORT = 3142
MIRROR = os.environ.get("RTOFS_HOSTS_MIRROR", "deb.debian.org/debian")
RELEASES = ("bookworm", "bullseye", "trixie")
#: Version of the Python the platform venvs use on each release: the wheelhouse is resolved
#: for exactly this one (a package may need a newer 3.11.x than Debian's 3.11.2). Debian's
#: python3 on bookworm and trixie; on bullseye (3.9) the python_runtime role builds CPython
#: python_runtime_version (3.13.5, trixie's) and the venvs use that.
PYTHON = {"bullseye": "3.13.5", "bookworm": "3.11.2", "trixie": "3.13.5"}
#: Releases without Debian's node-configurable-http-proxy: the hub gets a bundle made here.
NO_PROXY_PACKAGE = ("bullseye",)
CHP_VERSION = "4.6.3"
#: Packages whose security update is listed in the release's index but missing from the
#: mirror this machine reaches (404 through the cache): the hosts prefer the main archive's
#: version of these (an apt pin the harness writes; the roles do not manage pins).
MIRROR_GAPS = {"bullseye": ("munge", "libmunge2")}
BASE_PACKAGES = "systemd,systemd-sysv,dbus,openssh-server,python3,iproute2"
LUSTRE_STANDIN = "/lustre"
WHEELHOUSE_MOUNT = "/srv/wheelhouse"


class HostError(RuntimeError):
    """A step of the harness failed; the message says which and what to look at."""


class HarnessBusy(HostError):
    """Another harness run holds the lock: its hosts must be left alone."""


@dataclass
class Host:
    name: str
    address: str

    @property
    def dir(self) -> Path:
        return STATE / "hosts" / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def pidfile(self) -> Path:
        return self.dir / "nspawn.pid"

    @property
    def log(self) -> Path:
        return self.dir / "console.log"


def hosts() -> list[Host]:
    """The three hosts in boot order."""
    return [Host(n, a) for n, a in HOSTS.items()]


def log(msg: str) -> None:
    print(f"[hostctl {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*cmd: str | Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure raise :class:`HostError` with its output."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise HostError(
            f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
        )
    return r


def ssh_key() -> Path:
    return STATE / "ssh" / "id_ed25519"


def ssh_args(address: str) -> list[str]:
    """ssh options for root on a test host (host keys change per run: not recorded)."""
    return [
        "ssh",
        "-i",
        str(ssh_key()),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=3",
        "-o",
        "BatchMode=yes",
        f"root@{address}",
    ]


# --- one run at a time ----------------------------------------------------------------------

#: Marker in the holder process's command line (``down`` checks it before killing the pid).
LOCK_HOLDER_TAG = "rtofs-hosts-lock-holder"
#: The holder this process started (waited for when it stops, so it leaves no zombie).
_holder: subprocess.Popen | None = None


def lock_path() -> Path:
    """The lock file every harness run on this machine contends for."""
    return STATE / "harness.lock"


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when it is gone.

    Stored with a pid so a recycled pid is not mistaken for the run that took the lock.
    """
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def lock_owner() -> dict | None:
    """Who holds the lock: ``{pid, start, holder, command, since}``, or None when it is free."""
    path = lock_path()
    if not path.exists():
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                return json.loads(f.read() or "{}")
            except ValueError:
                return {}
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def _describe(owner: dict) -> str:
    pid = owner.get("pid", "?")
    alive = isinstance(pid, int) and _start_time(pid) == owner.get("start")
    state = "still running" if alive else "has exited; its hosts are still up"
    return (
        f"pid {pid} ({owner.get('command', '?')!r}, since {owner.get('since', '?')}; {state}), "
        f"lock holder pid {owner.get('holder', '?')}"
    )


def acquire_lock(wait: float | None = None) -> int:
    """Take the harness lock for this run; return the pid of the process that keeps it.

    The lock stays taken (by a small holder process) after this process exits, until
    :func:`release_lock`. ``wait`` seconds (default ``$RTOFS_HOSTS_LOCK_WAIT``, else 0) are
    spent retrying before giving up.

    Raises
    ------
    HarnessBusy
        Another run holds the lock; the message names its pid and what to do.
    """
    global _holder
    if wait is None:
        wait = float(os.environ.get("RTOFS_HOSTS_LOCK_WAIT", "0"))
    STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # at least a second: lock_owner() in another process takes the lock for an instant
        deadline = time.monotonic() + max(wait, 1.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = lock_owner() or {}
                    raise HarnessBusy(
                        f"another harness run holds {lock_path()}: {_describe(owner)}. "
                        "Wait for it to finish (RTOFS_HOSTS_LOCK_WAIT=<seconds> waits), or, if "
                        "that run is over, free its hosts with: python3 tests/hosts/hostctl.py "
                        "down"
                    ) from None
                time.sleep(0.2)
        # the holder inherits the locked file description: the lock lives as long as it does
        _holder = holder = subprocess.Popen(
            [sys.executable, "-c", "import signal; signal.pause()", LOCK_HOLDER_TAG],
            pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        info = {
            "pid": os.getpid(),
            "start": _start_time(os.getpid()),
            "holder": holder.pid,
            "command": " ".join(sys.argv) or sys.executable,
            "since": time.strftime("%F %T"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return holder.pid
    finally:
        os.close(fd)


def _refuse_if_busy(owner: dict) -> None:
    """Raise :class:`HarnessBusy` when ``owner`` is another run that is still alive."""
    pid = owner.get("pid")
    alive = isinstance(pid, int) and _start_time(pid) == owner.get("start")
    if pid != os.getpid() and alive:
        raise HarnessBusy(
            f"the hosts belong to a harness run that is still going: {_describe(owner)}. "
            "Let it finish (it tears its hosts down), or stop it first; "
            "hostctl.py down --force takes them anyway"
        )


def release_lock(force: bool = False) -> None:
    """Free the harness lock (stop its holder). Idempotent.

    Raises
    ------
    HarnessBusy
        The lock belongs to another run that is still alive (pass ``force`` to take it).
    """
    owner = lock_owner()
    if owner is None:
        return
    if not force:
        _refuse_if_busy(owner)
    global _holder
    holder = owner.get("holder")
    cmdline = Path(f"/proc/{holder}/cmdline")
    with contextlib.suppress(OSError):
        if LOCK_HOLDER_TAG in cmdline.read_text():
            os.kill(holder, signal.SIGTERM)  # type: ignore[arg-type]
    if _holder is not None and _holder.pid == holder:
        _holder.wait(timeout=10)
        _holder = None
    deadline = time.monotonic() + 10
    while lock_owner() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if lock_owner() is not None:
        raise HostError(f"{lock_path()} is still locked after stopping holder pid {holder}")


# --- preconditions -------------------------------------------------------------------------


def check_tools() -> None:
    """Fail early, naming the Debian packages to install, when a tool is missing."""
    if os.geteuid() != 0:
        raise HostError("hostctl needs root (it creates a bridge and boots containers)")
    need = {
        "systemd-nspawn": "systemd-container",
        "debootstrap": "debootstrap",
        "apt-cacher-ng": "apt-cacher-ng",
        "ssh": "openssh-client",
        "ip": "iproute2",
    }
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    if missing:
        raise HostError(f"missing tools; run: apt-get install {' '.join(missing)}")


# --- network and package cache -------------------------------------------------------------


def bridge_up() -> None:
    """Create the bridge with this machine's address on it (idempotent)."""
    if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = sh("ip", "-br", "addr", "show", BRIDGE).stdout
    if f"{GATEWAY}/24" not in addrs:
        sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")


def bridge_down() -> None:
    if sh("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        sh("ip", "link", "del", BRIDGE, check=False)


def _acng_pid() -> int | None:
    pidfile = STATE / "acng" / "pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def cache_up() -> None:
    """Start apt-cacher-ng on loopback and the bridge address, caching under CACHE."""
    if _acng_pid():
        return
    run = STATE / "acng"
    run.mkdir(parents=True, exist_ok=True)
    cache = CACHE / "apt-cacher-ng"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.chown(cache, "apt-cacher-ng", "apt-cacher-ng")
    shutil.chown(run, "apt-cacher-ng", "apt-cacher-ng")
    # Our own configuration: no "Remap" rules, so a request for
    # http://deb.debian.org/debian/... is fetched from exactly that mirror (the packaged
    # configuration sends Debian requests to a backend list this machine may not reach).
    conf = run / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "acng.conf").write_text(
        "SupportDir: /usr/lib/apt-cacher-ng\nExThreshold: 30\nPassThroughPattern: ^$\n"
        "NetworkTimeout: 30\n"
    )
    sh(
        "apt-cacher-ng",
        "-c",
        conf,
        f"CacheDir={cache}",
        f"LogDir={run}",
        f"PidFile={run}/pid",
        f"SocketPath={run}/socket",
        f"Port={ACNG_PORT}",
        f"BindAddress=127.0.0.1 {GATEWAY}",
        "ForeGround=0",
        "ExThreshold=30",
    )
    for _ in range(50):
        if sh("bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{ACNG_PORT}", check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise HostError(f"apt-cacher-ng did not listen on port {ACNG_PORT}; see {run}/apt-cacher.err")


def cache_down() -> None:
    pid = _acng_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)


# --- wheelhouse ----------------------------------------------------------------------------


def wheelhouse(release: str) -> Path:
    """Wheels for the hosts' Python: the platform's dependencies (kept) and rtofs_lib (rebuilt).

    Built with this machine's pip (PyPI is reachable here, not from the hosts). The
    dependencies are fetched once per Python version; the project wheel is rebuilt every run
    so the hosts get the code under test.
    """
    pyver = PYTHON[release]
    tag = "cp" + "".join(pyver.split(".")[:2])
    out = CACHE / "wheels" / tag
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    for old in out.glob("rtofs_lib-*.whl"):
        old.unlink()
    had_build = (REPO / "build").exists()
    sh(*pip, "wheel", "-q", "--no-deps", "-w", out, REPO, cwd=STATE)
    if not had_build:  # setuptools builds in the source tree; leave it as it was
        shutil.rmtree(REPO / "build", ignore_errors=True)
    # keyed on pyproject.toml too: a new dependency must reach the wheelhouse
    deps = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    stamp = out / f".deps-{pyver}-{deps}"
    if not stamp.exists():
        log(f"building the {tag} wheelhouse for Python {pyver} (once) in {out}")
        # pyspark may be published as an sdist only: make its (pure Python) wheel here
        sh(*pip, "wheel", "-q", "--no-deps", "-w", out, "--find-links", out, "pyspark>=4.0,<5",
           cwd=STATE)  # fmt: skip
        platforms = ["manylinux2014_x86_64", "manylinux_2_28_x86_64", "linux_x86_64"]
        sh(
            *pip,
            "download",
            "-q",
            "-d",
            out,
            "--find-links",
            out,
            "--only-binary=:all:",
            "--python-version",
            pyver,
            *[a for plat in platforms for a in ("--platform", plat)],
            "rtofs-lib[spark,hub]",
            "pip",
            "setuptools",
            "wheel",
            cwd=STATE,
        )
        stamp.write_text(time.strftime("%F %T\n"))
    return out


def proxy_bundle() -> Path:
    """configurable-http-proxy and its dependencies for Node.js 12, a tar.gz of ``node_modules``.

    For releases without Debian's package (the jupyterhub role's ``jupyterhub_proxy_bundle``;
    the test inventory points there). Made once with this machine's npm (the hosts have no
    internet).
    """
    out = CACHE / "proxy" / f"configurable-http-proxy-{CHP_VERSION}-node12.tar.gz"
    if out.exists():
        return out
    if shutil.which("npm") is None:
        raise HostError("npm is missing (the proxy bundle needs it once); apt-get install npm")
    build = out.with_name("build")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    log(f"making the configurable-http-proxy {CHP_VERSION} bundle (once) in {out}")
    # bullseye's Node.js is 12: a recent @dabh/diagnostics (winston's) pulls in code that
    # needs Node 15; its 2.0.3 runs on 12
    (build / "package.json").write_text(json.dumps({
        "private": True,
        "dependencies": {"configurable-http-proxy": CHP_VERSION},
        "overrides": {"@dabh/diagnostics": "2.0.3"},
    }))  # fmt: skip
    sh("npm", "install", "--silent", "--no-audit", "--no-fund", cwd=build)
    tmp = out.with_suffix(".tmp")
    sh("tar", "-C", build, "--owner=0", "--group=0", "-czf", tmp, "node_modules")
    tmp.rename(out)
    shutil.rmtree(build, ignore_errors=True)
    return out


# --- root filesystems ----------------------------------------------------------------------


def base_root(release: str) -> Path:
    """The release's debootstrap root, made once (about a minute) and reused."""
    base = CACHE / release / "rootfs"
    if (base / "etc" / "rtofs-base-ready").exists():
        return base
    tmp = base.with_name("rootfs.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {release} into {tmp} (once)")
    t0 = time.monotonic()
    sh(
        "debootstrap",
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        release,
        tmp,
        f"http://127.0.0.1:{ACNG_PORT}/{MIRROR}",
    )
    (tmp / "etc/apt/sources.list").write_text(f"deb http://{MIRROR} {release} main\n")
    (tmp / "etc/apt/apt.conf.d/01proxy").write_text(
        f'Acquire::http::Proxy "http://{GATEWAY}:{ACNG_PORT}";\n'
    )
    (tmp / "etc/machine-id").write_text("")
    for key in (tmp / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # sshd and networkd on at boot; no getty on a console nobody watches
    wants = tmp / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("systemd-networkd.service", "ssh.service"):
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"/lib/systemd/system/{unit}")
    (tmp / "etc/rtofs-base-ready").write_text(f"{release} {time.strftime('%F %T')}\n")
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    log(f"base root ready in {time.monotonic() - t0:.0f} s")
    return base


def _mount_overlay(base: Path, host: Host) -> None:
    upper, work = host.dir / "upper", host.dir / "work"
    for d in (upper, work, host.root):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={base},upperdir={upper},workdir={work}"
    if sh("mount", "-t", "overlay", "overlay", "-o", opts, host.root, check=False).returncode:
        log(f"overlayfs unavailable; copying the base root for {host.name}")
        shutil.rmtree(host.root, ignore_errors=True)
        sh("cp", "-a", "--reflink=auto", base, host.root)


def prepare_host(base: Path, host: Host, release: str) -> None:
    """Give one host its own root: name, address, host keys, machine id, root's key."""
    _mount_overlay(base, host)
    root = host.root
    (root / "etc/hostname").write_text(f"{host.name}\n")
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{a} {n}" for n, a in {**HOSTS, host.name: host.address}.items()]
    (root / "etc/hosts").write_text("\n".join(lines) + "\n")
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    net = root / "etc/systemd/network"
    net.mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/apt.conf.d/02rtofs-timeouts").write_text(
        "# a stalled download through the cache fails and is retried instead of hanging\n"
        'Acquire::http::Timeout "30";\nAcquire::Retries "3";\n'
    )
    if release in MIRROR_GAPS:
        pins = root / "etc/apt/preferences.d/rtofs-harness"
        pins.parent.mkdir(parents=True, exist_ok=True)
        pins.write_text(
            "# tests/hosts/hostctl.py: the mirror lacks these security updates' files\n"
            f"Package: {' '.join(MIRROR_GAPS[release])}\n"
            f"Pin: release n={release}\nPin-Priority: 1001\n"
        )
    (net / "10-rtofs.network").write_text(
        "# Static address on the test bridge; no gateway: the hosts have no route out.\n"
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={host.address}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    sh("ssh-keygen", "-q", "-A", "-f", root)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(ssh_key().with_suffix(".pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    (root / LUSTRE_STANDIN.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / WHEELHOUSE_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)


def boot(host: Host, wheels: Path) -> None:
    """Start ``systemd-nspawn -b`` for a host in its own session; its pid goes to a file."""
    lustre = STATE / "lustre"
    lustre.mkdir(parents=True, exist_ok=True)
    cmd = [
        "systemd-nspawn",
        "-b",
        "--register=no",
        "--keep-unit",
        "-q",
        "-D",
        str(host.root),
        "-M",
        host.name,
        f"--network-bridge={BRIDGE}",
        f"--bind={lustre}:{LUSTRE_STANDIN}",
        f"--bind-ro={wheels}:{WHEELHOUSE_MOUNT}",
        "--console=passive",
    ]
    with open(host.log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    host.pidfile.write_text(f"{proc.pid}\n")


def wait_ssh(host: Host, deadline: float) -> float:
    """Wait until root can run a command over ssh; return the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        if not _alive(host):
            tail = host.log.read_text(errors="replace")[-2000:] if host.log.exists() else ""
            raise HostError(f"{host.name}: systemd-nspawn exited; its console said:\n{tail}")
        r = subprocess.run(
            [*ssh_args(host.address), "true"], capture_output=True, timeout=20, check=False
        )
        if r.returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise HostError(f"{host.name}: sshd on {host.address} did not answer; see {host.log}")


def _pid(host: Host) -> int | None:
    try:
        return int(host.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(host: Host) -> bool:
    pid = _pid(host)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie child of ours counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


# --- commands ------------------------------------------------------------------------------


def up(release: str = "bookworm", timeout: float = 300.0) -> dict:
    """Bring the three hosts up (tearing down any left from an earlier run); return timings."""
    if release not in RELEASES:
        raise HostError(f"unknown release {release!r}; choose one of {', '.join(RELEASES)}")
    check_tools()
    acquire_lock()
    _teardown()  # whatever an earlier run of ours left (its lock is gone, its hosts may not be)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "ssh").mkdir(mode=0o700, exist_ok=True)
    if not ssh_key().exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rtofs-hosts", "-f", ssh_key())
    bridge_up()
    cache_up()
    base = base_root(release)
    timings["base_root_s"] = time.monotonic() - t0
    t1 = time.monotonic()
    wheels = wheelhouse(release)
    if release in NO_PROXY_PACKAGE:
        proxy_bundle()
    timings["wheelhouse_s"] = time.monotonic() - t1
    t2 = time.monotonic()
    for host in hosts():
        prepare_host(base, host, release)
        boot(host, wheels)
    deadline = time.monotonic() + timeout
    for host in hosts():
        wait_ssh(host, deadline)
    timings["boot_to_ssh_s"] = time.monotonic() - t2
    info = {
        "release": release,
        "hosts": HOSTS,
        "ssh_key": str(ssh_key()),
        "lustre_standin": str(STATE / "lustre"),
        "wheelhouse": str(wheels),
        "apt_proxy": f"http://{GATEWAY}:{ACNG_PORT}",
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    (STATE / "cluster.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"up: {json.dumps(info['timings'])}")
    return info


def _container_pids(host: Host) -> list[int]:
    """Processes whose root directory is the host's root: everything inside the container."""
    root = str(host.root)
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str((entry / "root").readlink()) == root:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return sorted(pids)


def _kill_container(host: Host) -> None:
    """SIGKILL whatever is left inside the host (its init first: that ends its namespace)."""
    for _ in range(50):
        pids = _container_pids(host)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    log(f"{host.name}: processes {_container_pids(host)} survive SIGKILL")


def _stop(hs: list[Host], grace: float) -> None:
    """Shut hosts down together (SIGTERM), kill what hangs, remove their folders."""
    for h in hs:
        if _alive(h):
            os.kill(_pid(h), signal.SIGTERM)  # type: ignore[arg-type]
    deadline = time.monotonic() + grace
    for h in hs:
        while (_alive(h) or _container_pids(h)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(h) or _container_pids(h):
            log(f"{h.name}: no clean shutdown within {grace:.0f} s; killing")
            _kill_container(h)
            if _alive(h):
                os.killpg(_pid(h), signal.SIGKILL)  # type: ignore[arg-type]
            time.sleep(0.5)
        # leftovers of a killed nspawn would stop the next boot
        if sh("ip", "link", "show", f"vb-{h.name}", check=False).returncode == 0:
            sh("ip", "link", "del", f"vb-{h.name}", check=False)
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{h.name}", ignore_errors=True)
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for h in hs:
        if h.log.exists():  # kept for a post-mortem: the host folder goes
            shutil.copy(h.log, logs / f"{h.name}.console.log")
        if os.path.ismount(h.root):
            sh("umount", "-l", h.root, check=False)
        shutil.rmtree(h.dir, ignore_errors=True)


def down(grace: float = 45.0, force: bool = False) -> None:
    """Shut every host down (SIGTERM, then SIGKILL), unmount, remove the bridge. Idempotent.

    A host whose shutdown hangs (a service that ignores SIGTERM) is killed after ``grace``
    seconds, processes inside it included, so its network interface and mounts go too.
    Ends by freeing the harness lock. Refuses (:class:`HarnessBusy`) when the hosts belong
    to another run that is still alive, unless ``force``.
    """
    owner = lock_owner()
    if owner is not None and not force:
        _refuse_if_busy(owner)
    _teardown(grace)
    release_lock(force=True)


def _teardown(grace: float = 45.0) -> None:
    """Stop the hosts, the bridge and the apt cache (the caller holds the lock)."""
    spares = [Host(n, a) for n, a in SPARE_HOSTS.items()]
    _stop([h for h in [*hosts(), *spares] if h.dir.exists()], grace)
    shutil.rmtree(STATE / "lustre", ignore_errors=True)
    (STATE / "cluster.json").unlink(missing_ok=True)
    bridge_down()
    cache_down()


def reset(name: str, timeout: float = 300.0) -> float:
    """Replace one running host by a fresh one (a new root from the base); return boot seconds.

    The others keep running: this is a host lost and rebuilt (the restore test uses it).
    """
    info = json.loads((STATE / "cluster.json").read_text())
    host = Host(name, HOSTS[name])
    _stop([host], 45.0)
    t0 = time.monotonic()
    prepare_host(base_root(info["release"]), host, info["release"])
    boot(host, Path(info["wheelhouse"]))
    wait_ssh(host, time.monotonic() + timeout)
    return time.monotonic() - t0


def add(name: str, timeout: float = 300.0) -> float:
    """Boot spare host ``name`` (a fresh root from the base) beside the running three.

    Returns the seconds to ssh. The new host is bare Debian, like the others before their
    first converge: the test inventory does not list it; the caller adds it.
    """
    if name not in SPARE_HOSTS:
        raise HostError(f"{name}: not a spare host; choose one of {', '.join(SPARE_HOSTS)}")
    info = json.loads((STATE / "cluster.json").read_text())
    host = Host(name, SPARE_HOSTS[name])
    t0 = time.monotonic()
    prepare_host(base_root(info["release"]), host, info["release"])
    boot(host, Path(info["wheelhouse"]))
    wait_ssh(host, time.monotonic() + timeout)
    return time.monotonic() - t0


def status() -> dict:
    """Which hosts run, whether sshd answers, and which run holds the harness lock."""
    out = {}
    for h in hosts():
        alive = _alive(h)
        ok = alive and subprocess.run(
            [*ssh_args(h.address), "true"], capture_output=True, check=False
        ).returncode == 0  # fmt: skip
        out[h.name] = {"address": h.address, "running": alive, "ssh": ok}
    out["lock"] = lock_owner()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="build and boot the three hosts")
    u.add_argument("--release", default=os.environ.get("RTOFS_HOSTS_RELEASE", "bookworm"))
    d = sub.add_parser("down", help="shut the hosts down and remove the bridge")
    d.add_argument(
        "--force", action="store_true", help="even when the run that started them is still alive"
    )
    sub.add_parser("status", help="show which hosts run")
    s = sub.add_parser("ssh", help="run a command on a host as root")
    s.add_argument("host", choices=sorted(HOSTS))
    s.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    try:
        if a.cmd == "up":
            print(json.dumps(up(a.release), indent=2))
        elif a.cmd == "down":
            down(force=a.force)
        elif a.cmd == "status":
            print(json.dumps(status(), indent=2))
        else:
            cmd = [c for c in a.command if c != "--"]
            return subprocess.run([*ssh_args(HOSTS[a.host]), *cmd], check=False).returncode
    except HostError as e:
        print(f"hostctl: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
