"""Shared fixtures: real-format sample files, servers and clusters started for real.

Each area keeps its fixtures in its own section below.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtofs_lib.fetch import names

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("RTOFS_TEST_ARTIFACTS", REPO / "test-artifacts"))

#: A day to build samples for (any date works; this one matches the saved NOMADS listing).
SAMPLE_DATE = "20260708"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep things for people to look at (screenshots, maps)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _isolated_rtofs_env(monkeypatch, tmp_path_factory):
    """Keep tests away from /etc/rtofs and the user's ~/rtofs."""
    home = tmp_path_factory.mktemp("rtofs-home")
    monkeypatch.setenv("RTOFS_HOME", str(home))
    monkeypatch.setenv("RTOFS_CONFIG", "")
    for var in list(os.environ):
        if var.startswith("RTOFS_") and var not in ("RTOFS_HOME", "RTOFS_CONFIG"):
            monkeypatch.delenv(var)


# --- sample data (synthetic) -------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_day(tmp_path_factory) -> Path:
    """An archive with one small-grid day of prog files (a few steps); returns the archive root."""
    from rtofs_lib.testing import sample

    archive = tmp_path_factory.mktemp("archive-small")
    sample.write_sample(archive, SAMPLE_DATE, steps="n024,f000-f003", grid="small")
    return archive


@pytest.fixture(scope="session")
def full_prog_file(tmp_path_factory) -> Path:
    """One full-size (4500x3298) real-format prog file."""
    from rtofs_lib.testing import sample

    archive = tmp_path_factory.mktemp("archive-full")
    (path,) = sample.write_sample(archive, SAMPLE_DATE, steps="f024", grid="full")
    return path


# --- reader and regrid ---------------------------------------------------------------------------

#: A field that every product's files hold (the reader tests open each product by it); the
#: regional 3-D products use other fields than the key variable to read more of them.
PRODUCT_FIELD = {**names.KEY_VARIABLE, "US_west": "salinity", "alaska": "u", "legacy": "sst"}


@pytest.fixture(scope="session")
def product_files(tmp_path_factory) -> dict[str, Path]:
    """Small-grid files of every product at f024 in one day folder, plus a legacy NETCDF3 prog.

    Keys are product codes and ``"legacy"`` (``rtofs_glo_2ds_f001_1hrly_prog.nc``).
    """
    from rtofs_lib.fetch import names
    from rtofs_lib.testing import sample

    folder = tmp_path_factory.mktemp("archive-products") / names.day_folder(SAMPLE_DATE)
    files = {}
    for product in names.PRODUCTS:
        step = names.steps_for(product)[-1] if product in names.PRODUCTS_3DZ_6HRLY else "f024"
        files[product] = sample.write_file(
            folder / names.compose_name(product, step), product, SAMPLE_DATE, step, grid="small"
        )
    legacy = names.compose_name("prog", "f001", cadence="1hrly")
    files["legacy"] = sample.write_file(
        folder / legacy, "prog", SAMPLE_DATE, "f001", grid="small", legacy=True
    )
    return files


@pytest.fixture(scope="session")
def small_grid() -> tuple:
    """``(lat, lon)`` of the small synthetic grid with the fold row dropped (raw longitudes)."""
    from rtofs_lib.testing import sample

    lat, lon = sample.make_grid(*sample.GRIDS["small"])
    return lat[:-1], lon[:-1]


# --- render ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory) -> Path:
    """One grid-index cache for all render tests (the small grid's index is built once)."""
    return tmp_path_factory.mktemp("render-cache")


@pytest.fixture(scope="session")
def render_grid():
    """``(lat, lon)`` of the small synthetic grid, fold row included (as written to files)."""
    from rtofs_lib.testing import sample

    return sample.make_grid(*sample.GRIDS["small"])


@pytest.fixture(scope="session")
def write_prog(tmp_path_factory, render_grid):
    """Write a small prog file whose ``sst`` is ``f(lat, lon)`` (NaN = land); returns its path.

    ``f`` gets the 2-D grid coordinates with longitudes wrapped into [-180, 180).
    """
    from rtofs_lib.fetch import names
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("render-files")
    lat, lon = render_grid
    wrapped = (lon.astype("float64") + 180.0) % 360.0 - 180.0
    counter = iter(range(10**6))

    def write(f, step: str = "f024", **extra) -> Path:
        folder = root / f"{next(counter)}" / names.day_folder(SAMPLE_DATE)
        fields = {"sst": f(lat.astype("float64"), wrapped).astype("float32"), **extra}
        return sample.write_file(
            folder / names.compose_name("prog", step), "prog", SAMPLE_DATE, step, fields=fields
        )

    return write


# --- crawler -----------------------------------------------------------------------------------

#: Steps of the served sample day (small grid); f075 and later are "not published yet".
CRAWL_STEPS = "n023,n024,f000-f003"
#: An older day the served root index also lists.
CRAWL_OLD_DATE = "20260707"


@pytest.fixture(scope="session")
def nomads_source(tmp_path_factory) -> Path:
    """A NOMADS-like tree written once: two days of small-grid prog files (real format)."""
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("nomads-src")
    sample.write_sample(root, SAMPLE_DATE, steps=CRAWL_STEPS, grid="small")
    sample.write_sample(root, CRAWL_OLD_DATE, steps="n024", grid="small")
    return root


@pytest.fixture
def nomads(nomads_source, tmp_path):
    """A real HTTP server on loopback serving a private copy of :func:`nomads_source`."""
    import shutil

    from rtofs_lib.testing.nomads import NomadsServer

    root = tmp_path / "nomads"
    shutil.copytree(nomads_source, root)
    with NomadsServer(root) as server:
        yield server


@pytest.fixture
def nomads_unpublished(nomads_source, tmp_path):
    """The NOMADS-like server before NOAA publishes the sample day: only the older day is there.

    Publish the day's files (:func:`sample_day_files`) with
    :func:`rtofs_lib.testing.nomads.publish` into ``server.root``.
    """
    import shutil

    from rtofs_lib.testing.nomads import NomadsServer

    root = tmp_path / "nomads"
    old = names.day_folder(CRAWL_OLD_DATE)
    shutil.copytree(nomads_source / old, root / old)
    with NomadsServer(root) as server:
        yield server


def sample_day_files(nomads_source: Path) -> list[Path]:
    """The served sample day's files in publication order (step order)."""
    folder = nomads_source / names.day_folder(SAMPLE_DATE)
    return [folder / names.compose_name("prog", s) for s in names.expand_steps(CRAWL_STEPS)]


@pytest.fixture
def fast_crawl():
    """Crawl options with tiny delays and timeouts so fault tests do not really sleep."""
    from rtofs_lib.fetch.crawler import CrawlOptions

    return CrawlOptions(
        rate_per_minute=60_000,
        burst=20,
        connect_timeout=2.0,
        read_timeout=0.5,
        backoff_base=0.01,
        backoff_max=0.05,
        recheck_delay=0.05,
        max_pause=2.0,
        deadline=60.0,
        follow_interval=0.1,
        size_floors="off",
        reserve_bytes=0,
        fsync=False,
        progress="log",
    )


def run_cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m rtofs_lib ARGS`` from the repository (``config``: an rtofs.toml)."""
    env = {**os.environ, "RTOFS_CONFIG": str(config) if config else ""}
    return subprocess.run(
        [sys.executable, "-m", "rtofs_lib", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


# --- cube --------------------------------------------------------------------------------------

#: Every kind of field the cube stores: file variables and a derived one.
FIELDS = ("sst", "sss", "u_velocity", "v_velocity", "speed")
#: An ocean point and a land point of the small sample grid (Atlantic; Sahara).
SEA, LAND = (-30.0, 0.0), (10.0, 20.0)
DAY2 = "20260709"


def day_file(archive: Path, date: str, step: str) -> Path:
    return archive / names.day_folder(date) / names.compose_name("prog", step)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal float32 bit for bit, NaN where the other is NaN."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))


@pytest.fixture(scope="module")
def full_cube(small_day, tmp_path_factory) -> Path:
    """The small sample day (n024, f000-f003) with every kind of field, appended file by file."""
    from rtofs_lib.cube import store

    cube = tmp_path_factory.mktemp("cube-fields") / "cube"
    for path in sorted((small_day / names.day_folder(SAMPLE_DATE)).glob("*.nc")):
        assert store.append(path, cube, FIELDS)
    return cube


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory) -> tuple[Path, Path]:
    """Two cycles whose valid times overlap; each file's sst is one number, ``cycle.hours``.

    20260708: n024, f000 (valid 07-08 00Z) and f024 (07-09 00Z); 20260709: n000 (07-08 00Z),
    n024 and f000 (07-09 00Z). Returns ``(archive, cube)``.
    """
    from rtofs_lib.cube import store
    from rtofs_lib.fields.netcdf import read_field
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("cube-views")
    archive, cube = root / "archive", root / "cube"
    lat, _ = sample.make_grid(*sample.GRIDS["small"])
    land = np.isnan(read_field(sample.write_file(root / "x.nc", "prog", SAMPLE_DATE, "f000"),
                               "sst").values)  # fmt: skip
    for date, day, steps in ((SAMPLE_DATE, 8, ("n024", "f000", "f024")),
                             (DAY2, 9, ("n000", "n024", "f000"))):  # fmt: skip
        for step in steps:
            code = day + (names.valid_time(date, step).hour + 100 * (step[0] == "n")) / 1000
            sst = np.full(lat.shape, code, np.float32)
            sst[:-1][land] = np.nan
            path = sample.write_file(day_file(archive, date, step), "prog", date, step,
                                     fields={"sst": sst})  # fmt: skip
            store.append(path, cube, ["sst"])
    return archive, cube


# --- spark -------------------------------------------------------------------------------------

#: Executors of the test clusters stay small (two 1-core workers share a 2-core machine).
SPARK_TEST_CONF = {"spark.executor.memory": "512m", "spark.driver.memory": "1g"}
#: Secret of the authenticated test cluster.
SPARK_TEST_SECRET = "rtofs-test-secret-4f1c"


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A real Spark standalone master and two 1-core workers on loopback (stopped afterwards)."""
    from rtofs_lib.testing.cluster import LocalCluster

    cluster = LocalCluster(2, cores=1, memory="1g", base_dir=tmp_path_factory.mktemp("spark"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def spark_auth_cluster(tmp_path_factory):
    """A second small standalone cluster that requires ``spark.authenticate`` (one worker)."""
    from rtofs_lib.testing.cluster import LocalCluster

    cluster = LocalCluster(
        1,
        cores=1,
        memory="1g",
        base_dir=tmp_path_factory.mktemp("spark-auth"),
        secret=SPARK_TEST_SECRET,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


class SparkSessions:
    """Hands out one SparkSession at a time (PySpark allows one per process).

    ``get(master)`` reuses the running session when its master matches, else stops it
    and starts one for ``master`` with the platform defaults (:func:`rtofs_lib.jobs.spark.session`).
    """

    def __init__(self, local_dir: Path) -> None:
        self.local_dir = local_dir
        self.current = None
        self.master: str | None = None

    def get(self, master: str):
        from rtofs_lib import config
        from rtofs_lib.jobs import spark as sparkmod

        if self.current is not None and self.master == master:
            return self.current
        self.stop()
        settings = config.Settings(spark_local_dir=str(self.local_dir), spark_python_memory="2g")
        self.current = sparkmod.session(
            master, app_name="rtofs-tests", settings=settings, **SPARK_TEST_CONF
        )
        self.master = master
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
        self.current = None
        self.master = None


@pytest.fixture(scope="session")
def spark_sessions(tmp_path_factory):
    """The session-wide :class:`SparkSessions` (stops the last session at the end)."""
    sessions = SparkSessions(tmp_path_factory.mktemp("spark-local"))
    try:
        yield sessions
    finally:
        sessions.stop()


@pytest.fixture(scope="session", params=["local", "standalone"])
def spark_master(request) -> str:
    """A master URL: ``local[2]``, or the standalone test cluster's ``spark://`` URL.

    Session scope makes pytest run all tests of one master together (one SparkContext each).
    """
    if request.param == "local":
        return "local[2]"
    return request.getfixturevalue("spark_cluster").master_url


@pytest.fixture(scope="session")
def spark_day(tmp_path_factory) -> Path:
    """An archive with one small-grid day of 12 prog files (n024, f000-f010); returns the root."""
    from rtofs_lib.testing import sample

    archive = tmp_path_factory.mktemp("archive-spark")
    sample.write_sample(archive, SAMPLE_DATE, steps="n024,f000-f010", grid="small")
    return archive


@pytest.fixture(scope="session")
def spark_cache(tmp_path_factory) -> Path:
    """A grid-index cache shared by the Spark tests (built once, by the first job)."""
    return tmp_path_factory.mktemp("spark-cache")


# --- hub -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_site():
    """A real one-machine hub site: munge, Slurm, Unix users (PAM), the proxy and the hub.

    Needs root (it creates users and starts daemons). See ``tests/hubsite.py``.
    """
    import hubsite

    if os.geteuid() != 0:
        pytest.fail("the hub tests create Unix users and start Slurm: run them as root")
    base = hubsite.make_base()
    munge_pid = hubsite.start_munge()
    site = None
    try:
        site = hubsite.start_site(base)
        yield site
    finally:
        hubsite.teardown(site, list(hubsite.USERS), munge_pid, base)


@pytest.fixture(scope="module")
def local_hub_site():
    """The same site with the local spawner (the single-host install): servers are processes.

    Its idle culler stops servers idle for 45 s.
    """
    import hubsite

    if os.geteuid() != 0:
        pytest.fail("the hub tests create Unix users and start Slurm: run them as root")
    users = {"rttdave": [hubsite.RESEARCHERS], "rtterin": [hubsite.RESEARCHERS]}
    base = hubsite.make_base()
    munge_pid = hubsite.start_munge()
    site = None
    try:
        # a short idle timeout: test_hub_local's last test waits for the culler
        site = hubsite.start_site(base, "local", users, culler_timeout=45, cull_every=10)
        (base / "shared").mkdir(mode=0o755)
        yield site
    finally:
        hubsite.teardown(site, list(users), munge_pid, base, users)


# --- ansible converge --------------------------------------------------------------------------

#: The Ansible tree and the test inventory (three systemd-nspawn hosts, tests/hosts/hostctl.py).
ANSIBLE_DIR = REPO / "ansible"
TEST_INVENTORY = ANSIBLE_DIR / "inventories" / "test"


def _hostctl():
    """Import tests/hosts/hostctl.py (a script, not a package)."""
    import importlib.util
    import sys

    if "hostctl" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hostctl", REPO / "tests/hosts/hostctl.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["hostctl"] = module
        spec.loader.exec_module(module)
    return sys.modules["hostctl"]


@pytest.fixture(scope="session")
def hostctl():
    """The host harness module (``up``, ``down``, ``ssh_args``, ``HOSTS``)."""
    return _hostctl()


@pytest.fixture(scope="session")
def test_hosts(hostctl) -> dict:
    """Three booted Debian hosts (hub, worker1, worker2) on the bridge, ssh reachable as root.

    Release from ``RTOFS_HOSTS_RELEASE`` (bookworm by default). Torn down at the end of the
    session even when tests fail; ``up`` first removes anything an earlier run left.
    """
    if os.geteuid() != 0:
        pytest.fail("the converge tests boot containers and need root: run pytest as root")
    release = os.environ.get("RTOFS_HOSTS_RELEASE", "bookworm")
    try:
        info = hostctl.up(release)
    except hostctl.HarnessBusy as e:  # another run's hosts: leave them alone
        pytest.fail(f"the test hosts are in use by another run: {e}")
    except hostctl.HostError as e:
        hostctl.down()
        pytest.fail(f"the test hosts did not come up: {e}")
    try:
        yield info
    finally:
        hostctl.down()


@pytest.fixture
def harness_lock(hostctl, monkeypatch, tmp_path):
    """The harness module with its state folder (and so its lock file) in ``tmp_path``.

    Any lock still held at the end (a test's contender left it) is freed.
    """
    monkeypatch.setattr(hostctl, "STATE", tmp_path)
    yield hostctl
    hostctl.release_lock(force=True)


@pytest.fixture
def other_run(hostctl, tmp_path):
    """Start a second process that takes the harness lock (as ``hostctl up`` does) and waits.

    Returns a function giving the running :class:`subprocess.Popen`; closing its stdin ends
    it (its lock stays with the holder process, like a finished ``hostctl.py up``).
    """
    import subprocess
    import sys

    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('hostctl', {hostctl.__file__!r})\n"
        "m = sys.modules['hostctl'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "m.acquire_lock(wait=0)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    procs = []

    def start():
        env = {**os.environ, "RTOFS_HOSTS_STATE": str(tmp_path)}
        proc = subprocess.Popen(
            [sys.executable, "-c", script], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


class PlaybookRun:
    """One ``ansible-playbook`` run: exit status, seconds, output and the per-host recap."""

    RECAP = r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"

    def __init__(self, args: list[str], rc: int, seconds: float, output: str) -> None:
        import re

        self.args, self.rc, self.seconds, self.output = args, rc, seconds, output
        self.recap = {
            m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]),
                   "failed": int(m[5])}
            for m in re.finditer(self.RECAP, output, re.MULTILINE)
        }  # fmt: skip

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (for a readable failure)."""
        out, task = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:"):
                out.append(f"{task}: {line}")
        return out

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-n:])


def run_playbook(
    *extra: str, playbook: str = "site.yml", inventory: str = "test", timeout: int = 1800
) -> PlaybookRun:
    """Run a playbook of ``ansible/`` against an inventory (the test one by default).

    ``inventory`` names a folder of ``ansible/inventories`` or is a host list (``"localhost,"``).
    """
    import shutil
    import subprocess
    import sys
    import time

    venv_exe = Path(sys.executable).with_name("ansible-playbook")
    exe = str(venv_exe) if venv_exe.exists() else shutil.which("ansible-playbook") or "missing"
    # an inventory folder of ansible/inventories, or a host list ("localhost,")
    hosts = inventory if inventory.endswith(",") else str(ANSIBLE_DIR / "inventories" / inventory)
    args = [exe, "-i", hosts, playbook, *extra]
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    t0 = time.monotonic()
    r = subprocess.run(
        args, cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    return PlaybookRun(args, r.returncode, time.monotonic() - t0, r.stdout + r.stderr)


def _record_time(artifacts: Path, name: str, seconds: float) -> None:
    import json

    path = artifacts / "converge-times.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = round(seconds, 1)
    path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture(scope="session")
def converged(test_hosts, artifacts_dir) -> PlaybookRun:
    """``site.yml`` converged once on the fresh hosts (fails the session's tests if it fails)."""
    run = run_playbook()
    (artifacts_dir / "converge-1.log").write_text(run.output)
    _record_time(artifacts_dir, "boot_to_ssh_s", test_hosts["timings"]["boot_to_ssh_s"])
    _record_time(artifacts_dir, "converge_1_s", run.seconds)
    if run.rc != 0:
        pytest.fail(f"the first converge failed (rc {run.rc}):\n{run.tail()}")
    return run


@pytest.fixture(scope="session")
def reconverged(converged, artifacts_dir) -> PlaybookRun:
    """A second ``site.yml`` run straight after the first."""
    run = run_playbook()
    (artifacts_dir / "converge-2.log").write_text(run.output)
    _record_time(artifacts_dir, "converge_2_s", run.seconds)
    return run


@pytest.fixture(scope="session")
def cluster(reconverged, hostctl):
    """Run commands on the converged hosts: ``cluster.run("hub", "sinfo", user="alice")``."""
    return ClusterShell(hostctl)


class ClusterShell:
    """ssh into the test hosts as root, optionally running the command as another user."""

    def __init__(self, hostctl) -> None:
        self.hostctl = hostctl

    def address(self, host: str) -> str:
        return self.hostctl.HOSTS[host]

    def run(self, host: str, command: str, *, user: str | None = None, timeout: float = 300,
            check: bool = True):  # fmt: skip
        """Run ``command`` (bash) on ``host``; as ``user`` through a login shell if given."""
        import shlex
        import subprocess

        if user:
            command = f"cd /tmp && runuser -u {user} -- bash -lc {shlex.quote(command)}"
        r = subprocess.run(
            [*self.hostctl.ssh_args(self.address(host)), command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and r.returncode != 0:
            raise AssertionError(
                f"on {host}{' as ' + user if user else ''}: {command!r} failed "
                f"({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
        return r


# --- kernel and viewers --------------------------------------------------------------------------

#: The second day of the viewer archive (compare mode).
VIEWER_DATE_B = "20260707"


@pytest.fixture(scope="session")
def viewer_archive(tmp_path_factory) -> Path:
    """Two small-grid days: SAMPLE_DATE (prog, diag, 3ztio) and VIEWER_DATE_B (prog only).

    Day B's f024–f027 are valid at the same times as SAMPLE_DATE's n024, f001–f003.
    """
    from rtofs_lib.testing import sample

    archive = tmp_path_factory.mktemp("archive-viewer")
    sample.write_sample(archive, SAMPLE_DATE, steps="n024,f001-f003", products="prog,diag")
    sample.write_sample(archive, SAMPLE_DATE, steps="n024,f024", products="3ztio")
    sample.write_sample(archive, VIEWER_DATE_B, steps="n024,f001-f003,f024-f027")
    return archive


@pytest.fixture(scope="session")
def viewer_cache(tmp_path_factory) -> Path:
    """Grid-index cache shared by the viewer tests."""
    return tmp_path_factory.mktemp("viewer-cache")


@pytest.fixture(scope="session")
def installed_kernel(tmp_path_factory) -> Path:
    """The RTOFS kernel installed by the real CLI into a temporary prefix.

    Returns the Jupyter data dir to put on ``JUPYTER_PATH`` (``PREFIX/share/jupyter``).
    """
    import subprocess
    import sys

    prefix = tmp_path_factory.mktemp("kernel-prefix")
    rtofs = Path(sys.executable).parent / "rtofs"
    r = subprocess.run(
        [str(rtofs), "kernel", "install", "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return prefix / "share" / "jupyter"


@pytest.fixture
def kernel_env(monkeypatch, installed_kernel, tmp_path) -> dict[str, str]:
    """Environment for kernels started by the tests: the installed spec, Spark in local mode.

    Set on this process too (nbclient and jupyter_client start kernels with it).
    """
    env = {
        "JUPYTER_PATH": str(installed_kernel),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),  # the Spark UI key of kernels in a server
        "RTOFS_SPARK_MASTER": "local[2]",
        "RTOFS_SPARK_LOCAL_DIR": str(tmp_path / "spark-local"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


# --- browser -------------------------------------------------------------------------------------

#: Debian's chromium, driven by Playwright (never ``playwright install``).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium():
    """A headless Debian chromium under Playwright (one per test module); closed afterwards."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (scripts/setup.sh)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a notebook of code ``cells`` for the RTOFS kernel to ``path``; return ``path``."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "rtofs", "display_name": "RTOFS (PySpark)",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, path)
    return path


def run_all_cells(page, notebook_url: str, kernel: str = "RTOFS (PySpark)") -> None:
    """Open ``notebook_url`` in JupyterLab on the Playwright ``page``, wait until its kernel
    (``kernel``, the display name) is up, then Run > Run All Cells, as a researcher does."""
    page.goto(notebook_url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_selector(f".jp-NotebookPanel-toolbar >> text={kernel}", timeout=120_000)
    # the kernel connected and idle (cells run before that may be dropped)
    page.wait_for_selector(
        ".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status=idle]",
        timeout=120_000,
    )
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")


#: JavaScript counting the loaded 256-px Leaflet tiles of ``step`` whose URLs start with
#: ``base`` (``page.wait_for_function(LOADED_TILES + " > 0", arg=[base, step])``).
LOADED_TILES = """([base, step]) => [...document.querySelectorAll('img.leaflet-tile-loaded')]
    .filter(el => el.src.startsWith(base) && el.src.includes('/' + step + '/')
                  && el.naturalWidth === 256).length"""


def wait_for_http(
    url: str, proc: subprocess.Popen, log_path: Path, what: str, timeout: float = 120, **params: str
) -> None:
    """Wait until ``url`` answers 200 (``params``: its query); fail with the log if ``proc``
    exits first or ``timeout`` s pass."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, params=params, timeout=5).ok:
                return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log_path.read_text()}")
        time.sleep(0.1)


@contextlib.contextmanager
def jupyterlab_at(root: Path, log_path: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab on 127.0.0.1 serving ``root`` with token auth; yields (base URL, token).

    Its output goes to ``log_path``; stopped afterwards. The kernels are the installed ones
    (the ``kernel_env`` fixture installs the RTOFS kernel).
    """
    import secrets

    from rtofs_lib.testing.cluster import free_port

    port, token = free_port(), secrets.token_hex(16)
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status", proc, log_path, "JupyterLab", token=token)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- the live pipeline ---------------------------------------------------------------------------


def land(archive: Path, source: Path, date: str = SAMPLE_DATE, name: str | None = None) -> Path:
    """Land ``source`` (as ``name``) like the crawler: hidden copy, rename, landed record."""
    from rtofs_lib.fetch import catalog, landed

    day = catalog.day_dir(archive, date)
    day.mkdir(parents=True, exist_ok=True)
    name = name or source.name
    tmp = day / f".{name}.part"
    shutil.copyfile(source, tmp)
    dest = day / name
    tmp.replace(dest)
    landed.write_record(archive, dest)
    return dest


class StreamProcess:
    """``rtofs stream`` as a real process over one archive, with its output kept."""

    def __init__(self, root: Path, master: str = "local[2]", trigger: str = "0.5") -> None:
        self.root = root
        self.archive, self.maps = root / "archive", root / "maps"
        self.checkpoint, self.cache = root / "checkpoint", root / "cache"
        self.master, self.trigger = master, trigger
        self.logs: list[Path] = []
        self.proc: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        rtofs = Path(sys.executable).with_name("rtofs")
        return [
            str(rtofs), "stream", "--archive", str(self.archive), "--maps", str(self.maps),
            "--checkpoint", str(self.checkpoint), "--cache", str(self.cache),
            "--master", self.master, "--trigger", self.trigger, *extra,
        ]  # fmt: skip

    def start(self, *extra: str) -> StreamProcess:
        log = self.root / f"stream-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**os.environ, "RTOFS_SPARK_LOCAL_DIR": str(self.root / "scratch")}
        # a module fixture's stream runs outside the per-test RTOFS_HOME: never the real ~/rtofs
        env.setdefault("RTOFS_HOME", str(self.root / "home"))
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                self.command(*extra), stdout=out, stderr=subprocess.STDOUT, env=env
            )
        return self

    def output(self, i: int = -1) -> str:
        return self.logs[i].read_text() if self.logs else ""

    def wait_for(self, predicate, timeout: float = 180, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"stream exited ({self.proc.returncode}):\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-4000:]}")

    def index(self, date: str = SAMPLE_DATE) -> dict:
        p = self.maps / f"rtofs.{date}" / "index.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return {}

    def listed(self, date: str = SAMPLE_DATE) -> set[str]:
        return {s["step"] for s in self.index(date).get("steps", [])}

    def failed(self, date: str = SAMPLE_DATE) -> dict[str, str]:
        return {f["file"]: f["error"] for f in self.index(date).get("failed", [])}

    def started(self) -> bool:
        return "batch 0" in self.output() or "Streaming query made progress" in self.output()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def streams():
    """Make :class:`StreamProcess` objects; every one still running is stopped afterwards."""
    made: list[StreamProcess] = []

    def make(root: Path, **kw) -> StreamProcess:
        made.append(StreamProcess(root, **kw))
        return made[-1]

    yield make
    for s in made:
        s.stop(signal.SIGKILL, timeout=30)


@pytest.fixture(scope="session")
def stream_sources(tmp_path_factory) -> Path:
    """Small-grid prog files to land (n024, f000-f011) in a folder outside any archive."""
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("stream-sources")
    sample.write_sample(root, SAMPLE_DATE, steps="n024,f000-f011", grid="small")
    return root / f"rtofs.{SAMPLE_DATE}"


# --- the dashboard's map and tiles ------------------------------------------------------------


class DashboardServer:
    """``rtofs dashboard serve`` as a real process on loopback (``url`` ends with ``/``)."""

    def __init__(self, root: Path, archive: Path, cube: Path | None = None) -> None:
        from rtofs_lib.testing.cluster import free_port

        self.root, self.archive, self.cube = root, archive, cube
        self.maps, self.cache, self.tiles = root / "maps", root / "cache", root / "tiles"
        self.maps.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = root / "dashboard.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> DashboardServer:
        cmd = [sys.executable, "-m", "rtofs_lib", "dashboard", "serve", "--port", str(self.port),
               "--maps", str(self.maps), "--archive", str(self.archive),
               "--cache", str(self.cache), "--tile-cache", str(self.tiles),
               "--cube", str(self.cube or self.root / "no-cube")]  # fmt: skip
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_for_http(self.url + "api/layers.json", self.proc, self.log, "the dashboard",
                          timeout)  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def tile_archive(tmp_path_factory) -> Path:
    """A small-grid day (n024, f001-f003) in an archive of its own, with a cube of it."""
    from rtofs_lib.cube import store
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("tiles")
    archive = root / "archive"
    files = sample.write_sample(archive, SAMPLE_DATE, steps="n024,f001-f003", grid="small")
    for path in files:
        store.append(path, root / "cube", ["sst"])
    return archive


@pytest.fixture(scope="module")
def dashboard(tile_archive, tmp_path_factory):
    """``rtofs dashboard serve`` over ``tile_archive`` and its cube; yields the server."""
    server = DashboardServer(
        tmp_path_factory.mktemp("dashboard"), tile_archive, tile_archive.parent / "cube"
    )
    try:
        yield server.start()
    finally:
        server.stop()


# --- the map page -------------------------------------------------------------------------------

#: Steps of the map page's sample day, in forecast order; each step warms the ocean 1.5 °C.
MAP_STEPS = ("n024", "f001", "f002", "f003")
#: The step that lands while the page is open.
MAP_LATE_STEP = "f004"
#: A warm patch (30 °C at every step) in the open Pacific: lon, lat box.
WARM_PATCH = (-150.0, -140.0, -10.0, 0.0)
WARM_SST = 30.0


def map_sst(lat: np.ndarray, lon: np.ndarray, k: int) -> np.ndarray:
    """The map page's sst at step number ``k``: a latitude gradient, the warm patch, land NaN.

    ``lat``/``lon``: the grid as written (fold row included), longitudes in any convention.
    """
    from rtofs_lib.testing.sample.land import land_mask

    wrapped = (lon.astype("float64") + 180.0) % 360.0 - 180.0
    sst = 24.0 * np.cos(np.deg2rad(lat.astype("float64"))) - 4.0 + 1.5 * k
    w, e, s, n = WARM_PATCH
    sst[(wrapped >= w) & (wrapped <= e) & (lat >= s) & (lat <= n)] = WARM_SST
    sst[land_mask(*lat.shape)] = np.nan
    return sst.astype("float32")


@pytest.fixture(scope="session")
def map_sources(tmp_path_factory) -> Path:
    """Small-grid prog files of :data:`MAP_STEPS` and :data:`MAP_LATE_STEP` (sst: :func:`map_sst`),
    in a folder outside any archive: land them with :func:`land`."""
    from rtofs_lib.testing import sample

    root = tmp_path_factory.mktemp("map-sources")
    lat, lon = sample.make_grid(*sample.GRIDS["small"])
    for k, step in enumerate((*MAP_STEPS, MAP_LATE_STEP)):
        sample.write_file(root / names.compose_name("prog", step), "prog", SAMPLE_DATE, step,
                          fields={"sst": map_sst(lat, lon, k)})  # fmt: skip
    return root


def map_archive(root: Path, sources: Path, steps: tuple[str, ...] = MAP_STEPS) -> Path:
    """An archive under ``root`` with ``steps`` of :func:`map_sources` landed (as the crawler)."""
    archive = root / "archive"
    for step in steps:
        land(archive, sources / names.compose_name("prog", step))
    return archive


@pytest.fixture(scope="module")
def map_service(map_sources, tmp_path_factory):
    """``rtofs dashboard serve`` over an archive of the map page's sample day (no cube)."""
    root = tmp_path_factory.mktemp("map-service")
    server = DashboardServer(root, map_archive(root, map_sources))
    try:
        yield server.start()
    finally:
        server.stop()
