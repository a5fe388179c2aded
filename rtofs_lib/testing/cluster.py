"""A real Spark standalone cluster on loopback, started from the pyspark wheel.

For tests, benchmarks and trying the platform on one machine: a master and N
workers (``bin/spark-class org.apache.spark.deploy.master.Master`` / ``...Worker``),
each worker with its own scratch folder, on free ports, optionally with
``spark.authenticate`` and a shared secret. Production clusters are set up by the
Ansible roles instead.

Examples
--------
>>> with LocalCluster(workers=2, base_dir="/tmp/c") as cluster:  # doctest: +SKIP
...     spark = rtofs_lib.jobs.spark.session(cluster.master_url)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from rtofs_lib.atomic import atomic_path
from rtofs_lib.errors import RtofsError
from rtofs_lib.jobs.personal import terminate
from rtofs_lib.jobs.spark import spark_home

_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_MASTER_CLASS = "org.apache.spark.deploy.master.Master"


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """A Spark standalone master and workers running as child JVMs on 127.0.0.1.

    Parameters
    ----------
    workers
        Number of workers.
    cores
        Cores each worker offers.
    memory
        Memory each worker offers to executors (``"1g"``).
    base_dir
        Folder for logs, properties and each worker's ``SPARK_LOCAL_DIRS``/work dir.
    secret
        If given, master and workers require ``spark.authenticate`` with this secret.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        cores: int = 1,
        memory: str = "1g",
        base_dir: str | Path,
        secret: str | None = None,
    ) -> None:
        self.n_workers = workers
        self.cores = cores
        self.memory = memory
        self.base_dir = Path(base_dir)
        self.secret = secret
        self.master_port = 0
        self.master: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen | None] = [None] * workers

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def master_url(self) -> str:
        """The ``spark://127.0.0.1:PORT`` URL clients connect to."""
        return f"spark://127.0.0.1:{self.master_port}"

    def _properties(self) -> Path:
        path = self.base_dir / "spark-daemon.conf"
        lines = ["spark.ui.enabled false", "spark.worker.cleanup.enabled false"]
        if self.secret is not None:
            lines += ["spark.authenticate true", f"spark.authenticate.secret {self.secret}"]
        with atomic_path(path) as tmp:  # private before the secret is in it
            tmp.touch(0o600)
            tmp.chmod(0o600)
            tmp.write_text("\n".join(lines) + "\n")
        return path

    def _env(self, local_dir: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_DIRS=str(local_dir),
            SPARK_LOG_DIR=str(self.base_dir / "logs"),
            PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
        )
        env.pop("PYSPARK_GATEWAY_PORT", None)
        return env

    def _launch(self, name: str, cls: str, args: list[str], local_dir: Path) -> subprocess.Popen:
        local_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.base_dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open by the child
        cmd = [str(spark_home() / "bin" / "spark-class"), cls, *args]
        cmd += ["--properties-file", str(self._properties())]
        # spark-class ends in exec, so the child's pid is the JVM's pid.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(local_dir), cwd=local_dir
        )
        log.close()
        return proc

    def start(self, timeout: float = 90.0) -> LocalCluster:
        """Start the master and every worker; wait until all workers have registered.

        Raises
        ------
        RtofsError
            If a JVM exits early or the workers do not register in ``timeout`` seconds;
            the message points at the log files.
        """
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.master_port = free_port()
        self.master = self._launch(
            "master",
            _MASTER_CLASS,
            ["--host", "127.0.0.1", "--port", str(self.master_port), "--webui-port", "0"],
            self.base_dir / "master",
        )
        self._wait_for_log("master", "I have been elected leader", timeout)
        for i in range(self.n_workers):
            self.start_worker(i, timeout=timeout)
        return self

    def start_worker(self, i: int, timeout: float = 90.0) -> None:
        """Start worker ``i`` (again) and wait until the master has registered it."""
        name = f"worker{i}"
        log = self.base_dir / f"{name}.log"
        seen = log.read_bytes().count(b"Successfully registered with master") if log.exists() else 0
        args = ["--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory]
        args += ["--webui-port", "0", "--work-dir", str(self.base_dir / name / "work")]
        self.workers[i] = self._launch(
            name, _WORKER_CLASS, [*args, self.master_url], self.base_dir / name / "local"
        )
        self._wait_for_log(name, "Successfully registered with master", timeout, after=seen)

    def _wait_for_log(self, name: str, text: str, timeout: float, after: int = 0) -> None:
        proc = self.master if name == "master" else self.workers[int(name[len("worker") :])]
        log = self.base_dir / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(text.encode()) > after:
                return
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RtofsError(
            f"Spark {name} did not start (waited for {text!r}); see {log} "
            "(is Java 17 installed and the port free?)"
        )

    def kill_worker(self, i: int) -> int:
        """SIGKILL worker ``i``'s JVM (its executors exit when they lose it); return its pid."""
        proc = self.workers[i]
        if proc is None:
            raise RtofsError(f"worker{i} is not running")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.workers[i] = None
        return proc.pid

    def executor_pids(self) -> list[int]:
        """Pids of executor JVMs launched by this cluster's workers (children of worker JVMs)."""
        pids = []
        for proc in self.workers:
            if proc is None:
                continue
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            if children.exists():
                pids += [int(p) for p in children.read_text().split()]
        return pids

    def stop(self) -> None:
        """Stop every worker, then the master (SIGTERM, then SIGKILL after 10 s)."""
        procs = [p for p in self.workers if p is not None]
        if self.master is not None:
            procs.append(self.master)
        terminate(procs)
        self.workers = [None] * self.n_workers
        self.master = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
