"""A researcher's own Spark cluster, inside her Slurm allocation, running as her.

The notebook server of a researcher is a Slurm job (batchspawner); her kernel runs in it.
When the kernel's ``spark`` is first used there, :class:`PersonalCluster` starts a Spark
standalone master and one worker on every node of that allocation as **one job step of
hers** (``srun --overlap``), the way LLNL's Magpie runs Spark on Slurm. So:

- executors run under her uid: she cannot touch what the platform or other people own;
- the cluster has a secret made for this session only (never on a command line: it travels
  in the environment, which only she and root can read, and a 0600 file);
- it has the allocation's cores and memory on each node, no more, and spans every node
  the profile asked for;
- it ends with the kernel (the task on the kernel's node watches the kernel's pid, the
  others watch the master) and at the latest with the allocation, when Slurm ends the step.

``python -m rtofs_lib.jobs.personal node ...`` is the step's program (one task per node).

Examples
--------
>>> alloc = Allocation.from_env({"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "worker1",
...     "SLURM_JOB_CPUS_PER_NODE": "2", "SLURM_MEM_PER_NODE": "2048",
...     "SLURMD_NODENAME": "worker1"})
>>> alloc.job_id, alloc.nodes, alloc.cores_per_node, alloc.memory_mb
('7', 1, 2, 2048)
>>> Allocation.from_env({}) is None
True
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rtofs_lib import config
from rtofs_lib.errors import RtofsError
from rtofs_lib.jobs import classdata

#: Spark's classes for the standalone daemons.
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: Name of the job step in ``squeue -s``.
STEP_NAME = "spark"
#: Environment variable the Spark daemons and their executors read the secret from.
SECRET_ENV = "_SPARK_AUTH_SECRET"
#: Share of the allocation's memory on a node that the node's executor may use (the rest is
#: the notebook server's, the kernel's and the Python workers').
EXECUTOR_MEMORY_SHARE = 0.5
#: Heap and JVM options of the personal master and workers (a scheduler, no data: small,
#: and compiled for start-up rather than peak speed).
DAEMON_MEMORY = "256m"
DAEMON_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
#: Seconds between checks that the kernel (or the master) is still there.
WATCH_INTERVAL = 1.0


@dataclass(frozen=True)
class Allocation:
    """The Slurm allocation this process runs in (from its ``SLURM_*`` environment)."""

    job_id: str
    nodes: int
    cores_per_node: int
    memory_mb: int
    node_name: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Allocation | None:
        """The allocation described by ``env`` (default ``os.environ``); None outside Slurm."""
        env = dict(os.environ if env is None else env)
        job = env.get("SLURM_JOB_ID")
        if not job:
            return None
        nodes = int(env.get("SLURM_JOB_NUM_NODES") or _count_nodes(env["SLURM_JOB_NODELIST"]))
        cores = _first_count(env.get("SLURM_JOB_CPUS_PER_NODE", "1"))
        memory = int(env.get("SLURM_MEM_PER_NODE") or 0)
        if not memory and env.get("SLURM_MEM_PER_CPU"):
            memory = int(env["SLURM_MEM_PER_CPU"]) * cores
        node = env.get("SLURMD_NODENAME") or socket.gethostname()
        return cls(job, nodes, cores, memory or 1024, node)

    @property
    def executor_memory_mb(self) -> int:
        """Memory of the executor on each node (the worker offers exactly this)."""
        return max(512, int(self.memory_mb * EXECUTOR_MEMORY_SHARE))


def _first_count(text: str) -> int:
    """CPUs on the first node from ``SLURM_JOB_CPUS_PER_NODE`` (``4(x2)``, ``4,2``)."""
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else 1


def _count_nodes(nodelist: str) -> int:
    """Number of hosts in a Slurm node list, e.g. ``worker[1-2],hub`` (3)."""
    count = 0
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", nodelist):
        ranges = re.search(r"\[([^\]]*)\]", part)
        if not ranges:
            count += 1
            continue
        for item in ranges.group(1).split(","):
            lo, _, hi = item.partition("-")
            count += int(hi) - int(lo) + 1 if hi else 1
    return count


def node_address(name: str) -> str:
    """The address Slurm reaches node ``name`` at (its ``NodeAddr``), as an IP address."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "node", name], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"\bNodeAddr=(\S+)", out)
    host = m.group(1) if m else name
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


# --- the kernel's side ----------------------------------------------------------------------


class PersonalCluster:
    """Start and stop a researcher's Spark master and workers as one job step of hers.

    Parameters
    ----------
    allocation
        The Slurm allocation to run in (default: this process's).
    settings
        Platform settings (``spark_local_dir`` is the node-local scratch).
    python
        Interpreter that runs the step's program on every node (default: this one).
    """

    def __init__(
        self,
        allocation: Allocation | None = None,
        *,
        settings: config.Settings | None = None,
        python: str | None = None,
    ) -> None:
        alloc = allocation or Allocation.from_env()
        if alloc is None:
            raise RtofsError(
                "no Slurm allocation here (SLURM_JOB_ID is unset): a personal Spark cluster "
                "runs inside the notebook server's Slurm job; use local[N] outside one"
            )
        self.allocation = alloc
        self.settings = settings or config.load()
        self.python = python or sys.executable
        self.secret = secrets.token_hex(32)
        self.session_id = f"{alloc.job_id}-{os.getpid()}-{secrets.token_hex(3)}"
        self.folder = private_folder(self.settings, self.session_id)
        self.log = self.folder / "cluster.log"
        self.host = ""
        self.port = 0
        self.step: subprocess.Popen | None = None

    @property
    def master_url(self) -> str:
        """``spark://ADDRESS:PORT`` of this session's master."""
        return f"spark://{self.host}:{self.port}"

    def driver_env(self) -> dict[str, str]:
        """Environment of the driver's JVM: its address, and none of the platform's settings
        (``spark-defaults.conf`` names the platform's master, its event log and encryption)."""
        return {"SPARK_LOCAL_IP": self.host, "SPARK_CONF_DIR": str(_conf_dir(self.folder))}

    def spark_conf(self) -> dict[str, str]:
        """Properties of the driver for this cluster (the secret included: keep it private)."""
        a = self.allocation
        return {
            "spark.authenticate": "true",
            "spark.authenticate.secret": self.secret,
            "spark.network.crypto.enabled": "true",
            "spark.eventLog.enabled": "false",
            "spark.driver.host": self.host,
            "spark.executor.cores": str(a.cores_per_node),
            "spark.executor.memory": f"{a.executor_memory_mb}m",
            "spark.local.dir": str(self.folder / "driver"),
            "spark.ui.killEnabled": "false",
            # Spark's classes from this host's archive (rtofs_lib.jobs.classdata), if made
            "spark.driver.extraJavaOptions": classdata.java_options(),
            "spark.executor.extraJavaOptions": classdata.java_options(),
        }

    def start(self, timeout: float = 120.0) -> PersonalCluster:
        """Start the step; return once its master accepts connections.

        The workers start meanwhile: start the driver now (its JVM boots while they do),
        then :meth:`wait_for_workers`.

        Raises
        ------
        RtofsError
            If the step ends early or the master does not answer within ``timeout``
            seconds; the message quotes the end of the step's log.
        """
        a = self.allocation
        self.host = node_address(a.node_name)
        self.port = _free_port(self.host)
        cmd = [
            # --export=ALL: the job may restrict what its steps get (batchspawner's
            # --export=<its variables> reaches srun as SLURM_EXPORT_ENV); the step needs
            # this environment, the session's secret included
            "srun", "--overlap", "--export=ALL", f"--jobid={a.job_id}", f"--job-name={STEP_NAME}",
            f"--nodes={a.nodes}", f"--ntasks={a.nodes}", "--ntasks-per-node=1",
            "--cpus-per-task=1", "--mem=0", "--kill-on-bad-exit=1", "--quiet",
            self.python, "-m", "rtofs_lib.jobs.personal", "node",
            "--master-node", a.node_name, "--master-host", self.host,
            "--port", str(self.port), "--kernel-pid", str(os.getpid()),
            "--cores", str(a.cores_per_node), "--memory", f"{a.executor_memory_mb}m",
            "--session", self.session_id,
        ]  # fmt: skip
        env = {**os.environ, SECRET_ENV: self.secret}
        env.pop("PYSPARK_GATEWAY_PORT", None)
        with open(self.log, "ab") as log:
            self.step = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_for("its master", lambda _: _listening(self.host, self.port), timeout)
        return self

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        """Wait until a worker on every node of the allocation has registered.

        Raises
        ------
        RtofsError
            As :meth:`start`.
        """
        want = self.allocation.nodes
        self._wait_for(
            f"{want} worker(s)",
            lambda text: text.count("Successfully registered with master") >= want,
            timeout,
        )

    def _wait_for(self, what: str, done: Callable[[str], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if done(text):
                return
            if self.step is None or self.step.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        self.stop()
        raise RtofsError(
            f"your Spark cluster did not start in Slurm job {self.allocation.job_id} "
            f"(waited for {what}); its log {self.log} ends with:\n{tail}"
        )

    def alive(self) -> bool:
        """Whether the step runs and its master answers."""
        running = self.step is not None and self.step.poll() is None
        return running and _listening(self.host, self.port)

    def stop(self, timeout: float = 30.0) -> None:
        """End the step (Slurm stops its tasks on every node); wait for it to go."""
        step, self.step = self.step, None
        if step is None or step.poll() is not None:
            return
        step.send_signal(signal.SIGTERM)  # srun passes it to the tasks on every node
        try:
            step.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            step.kill()
            step.wait()

    def __repr__(self) -> str:
        a = self.allocation
        return (
            f"<personal Spark cluster {self.master_url}: Slurm job {a.job_id}, {a.nodes} "
            f"node(s) x {a.cores_per_node} core(s), {a.executor_memory_mb} MiB per executor>"
        )


def private_folder(settings: config.Settings, session: str) -> Path:
    """This user's folder for ``session`` in the node-local Spark scratch (mode 0700)."""
    from rtofs_lib.jobs.spark import _make_scratch, user_name

    mine = Path(settings.spark_local_dir) / user_name()
    _make_scratch(mine)
    folder = mine / session
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- the step's program (one task per node) -------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _daemon(cls: str, args: list[str], folder: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a Spark daemon JVM (``spark-class`` ends in exec: the child is the JVM)."""
    from rtofs_lib.jobs.spark import spark_home

    cmd = [str(spark_home() / "bin" / "spark-class"), cls, *args]
    cmd += ["--properties-file", str(folder / "daemon.properties")]
    return subprocess.Popen(cmd, env=env, cwd=folder)


def _node_folder(session: str) -> Path:
    """This node's private folder of the session, with the daemons' properties file."""
    from rtofs_lib.notebook.sparkui import FILTER_PARAM, JWS_FILTER, b64url

    folder = private_folder(config.load(), session) / f"node-{socket.gethostname()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(folder / "daemon.properties", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # The master's and workers' web UIs (which list her applications and serve her executors'
    # logs) answer nobody: a token filter with a key that never leaves this process.
    with os.fdopen(fd, "w") as f:
        f.write("spark.authenticate=true\nspark.network.crypto.enabled=true\n")
        # no unauthenticated REST submission server (it would run anyone's job as her)
        f.write("spark.ui.killEnabled=false\nspark.master.rest.enabled=false\n")
        f.write(f"spark.ui.filters={JWS_FILTER}\n")
        f.write(f"{FILTER_PARAM}.secretKey={b64url(secrets.token_bytes(32))}\n")
    return folder


def _node_env(folder: Path, address: str) -> dict[str, str]:
    """The daemons' environment: the secret (inherited), none of the platform's settings."""
    return {
        **os.environ,
        "SPARK_CONF_DIR": str(_conf_dir(folder)),
        "SPARK_LOCAL_IP": address,
        "SPARK_LOCAL_DIRS": str(folder / "local"),
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_NO_DAEMONIZE": "1",
        # small control-plane JVMs that start fast (executors are not affected)
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        "SPARK_DAEMON_JAVA_OPTS": f"{DAEMON_JAVA_OPTS} {classdata.java_options()}".strip(),
    }


def _conf_dir(folder: Path) -> Path:
    """An empty ``SPARK_CONF_DIR``: the platform's settings are not this cluster's. The
    class-data archive's own when it is usable (it is part of the class path it was made
    for), else a private one in ``folder``."""
    if classdata.ready():
        return classdata.conf_dir()
    conf = folder / "spark-conf"
    conf.mkdir(mode=0o700, exist_ok=True)
    return conf


def run_node(ns: argparse.Namespace) -> int:
    """The step's task on one node: the master (on the kernel's node) and a worker."""
    if SECRET_ENV not in os.environ:
        print(f"rtofs personal spark: {SECRET_ENV} is not set", file=sys.stderr)
        return 2
    folder = _node_folder(ns.session)
    here = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    is_master = here == ns.master_node
    address = ns.master_host if is_master else node_address(here)
    env = _node_env(folder, address)
    procs: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        terminate(procs)
        shutil.rmtree(folder, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    signal.signal(signal.SIGINT, lambda *_: (stop(), sys.exit(0)))
    master = f"spark://{ns.master_host}:{ns.port}"
    if is_master:
        master_args = ["--host", address, "--port", str(ns.port), "--webui-port", "0"]
        procs.append(_daemon(MASTER_CLASS, master_args, folder, env))
    deadline = time.monotonic() + 120
    while not _listening(ns.master_host, ns.port):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            print(f"rtofs personal spark: no master at {master}", file=sys.stderr)
            stop()
            return 1
        time.sleep(0.1)
    worker_args = ["--host", address, "--cores", str(ns.cores), "--memory", ns.memory]
    worker_args += ["--webui-port", "0", "--work-dir", str(folder / "work"), master]
    procs.append(_daemon(WORKER_CLASS, worker_args, folder, env))
    try:
        while all(p.poll() is None for p in procs):
            gone = not _alive(ns.kernel_pid) if is_master else not _listening(*_hp(master))
            if gone:
                what = "kernel" if is_master else "master"
                print(f"rtofs personal spark: the {what} is gone; stopping on {here}")
                break
            time.sleep(WATCH_INTERVAL)
    finally:
        stop()
    return 0


def terminate(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """Stop JVMs: SIGTERM to all, then SIGKILL to those still there after ``timeout`` s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _hp(master: str) -> tuple[str, int]:
    host, _, port = master[len("spark://") :].rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rtofs_lib.jobs.personal node`` (run by ``srun``)."""
    parser = argparse.ArgumentParser(prog="python -m rtofs_lib.jobs.personal")
    sub = parser.add_subparsers(dest="command", required=True)
    node = sub.add_parser("node", help="run this node's part of a personal Spark cluster")
    node.add_argument("--master-node", required=True)
    node.add_argument("--master-host", required=True)
    node.add_argument("--port", type=int, required=True)
    node.add_argument("--kernel-pid", type=int, required=True)
    node.add_argument("--cores", type=int, required=True)
    node.add_argument("--memory", required=True)
    node.add_argument("--session", required=True)
    ns = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return run_node(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
