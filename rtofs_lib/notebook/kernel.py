"""The shared "RTOFS (PySpark)" Jupyter kernel: its spec, its start-up and its installer.

The kernel is this environment's Python running ``ipykernel`` with a start-up file
(``startup.py`` beside ``kernel.json``, run through ``--IPKernelApp.exec_files``) that gives
every notebook:

- ``spark``: a :class:`LazySpark` handle, the researcher's own Spark, started on first use
  (so an idle kernel holds no executors; in a Slurm job its personal master and workers
  start with the kernel, see :meth:`LazySpark.prestart`). The setting ``notebook_spark``
  says which: ``slurm`` (the cluster): a personal Spark master and workers in the notebook
  server's Slurm allocation, as her own job step, on every node the profile gave her
  (:mod:`rtofs_lib.jobs.personal`); ``local`` (one host): ``local[N]`` on the kernel's
  cores. Never the platform's cluster. A Spark that cannot start does not break the
  kernel: ``spark`` raises an :class:`RtofsError` saying what is wrong; ``spark.stop()``
  ends the session and its Slurm step. In a Jupyter server its UI is at
  ``spark.ui_url`` on the user's own server (``/user/alice/spark-ui/<port>/``) and
  nowhere else (:mod:`.sparkui`);
- ``rtofs`` (the library), ``open_file``, ``open_day``, ``config`` (the settings), and
  the viewers (``viewer``, ``SSTViewer``).

The spec's environment sets ``HDF5_USE_FILE_LOCKING=FALSE`` (read-only archive on Lustre),
``OMP_NUM_THREADS``, ``PYSPARK_PYTHON`` and ``SPARK_HOME`` (this environment's Python and
Spark) and ``RTOFS_CONFIG`` (the platform settings). ``kernels/rtofs/`` in the repository
holds the spec as installed into the platform venv ``/opt/rtofs/venv``.

Examples
--------
>>> spec = kernel_json("/opt/rtofs/venv/bin/python", config=None, spark_home=None)
>>> spec["display_name"]
'RTOFS (PySpark)'
>>> install(prefix="/usr/local")  # doctest: +SKIP
PosixPath('/usr/local/share/jupyter/kernels/rtofs')
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import socket
import sys
import tempfile
import threading
from concurrent.futures import Future
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rtofs_lib import atomic
from rtofs_lib import config as rtofs_config
from rtofs_lib.errors import RtofsError
from rtofs_lib.notebook import sparkui

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Name of the kernel spec folder (``share/jupyter/kernels/rtofs``).
KERNEL_NAME = "rtofs"
#: Name shown in JupyterLab's launcher and kernel menu.
DISPLAY_NAME = "RTOFS (PySpark)"
#: Start-up file name inside the kernel spec folder.
STARTUP_NAME = "startup.py"
#: Threads for numpy/BLAS in a notebook (Spark executors get 1 per task regardless).
DEFAULT_OMP_THREADS = 2
#: Seconds to wait for a TCP connection to the Spark master before calling it unreachable.
MASTER_TIMEOUT = 5.0

#: The start-up file IPython runs in the notebook's namespace (package data
#: ``rtofs_lib/data/kernel/startup.py``; ``kernels/rtofs/startup.py`` links to it).
STARTUP_SOURCE = (resources.files("rtofs_lib") / "data" / "kernel" / "startup.py").read_text()


# --- the lazy Spark handle ---------------------------------------------------------------------


def _master_endpoints(master: str) -> list[tuple[str, int]]:
    """``(host, port)`` pairs of a ``spark://`` master URL (several for standby masters)."""
    rest = master[len("spark://") :]
    out = []
    for part in rest.split(","):
        url = urlsplit(f"spark://{part.strip()}")
        if not url.hostname:
            raise RtofsError(
                f"Spark master URL {master!r} names no host; write it like spark://hub:7077 "
                "(spark_master in the platform settings or RTOFS_SPARK_MASTER)"
            )
        out.append((url.hostname, url.port or 7077))
    return out


def check_master(master: str, timeout: float = MASTER_TIMEOUT) -> None:
    """Check that a ``spark://`` master accepts connections (other URLs are not checked).

    Raises
    ------
    RtofsError
        Naming the URL, why it failed, and what to check.
    """
    if not master.startswith("spark://"):
        return
    problems = []
    for host, port in _master_endpoints(master):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except socket.gaierror as e:
            problems.append(f"{host}: unknown host ({e.strerror or e})")
        except TimeoutError:
            problems.append(f"{host}:{port}: no answer within {timeout:g} s")
        except OSError as e:
            problems.append(f"{host}:{port}: {e.strerror or e}")
    raise RtofsError(
        f"Spark master {master} is unreachable ({'; '.join(problems)}). Check that the master "
        "runs on that host (systemctl status spark-master), that spark_master in the platform "
        "settings (RTOFS_CONFIG or /etc/rtofs/rtofs.toml) or RTOFS_SPARK_MASTER is right, and "
        "that this host can reach the port. The kernel works without Spark meanwhile; "
        "`spark` tries again on next use."
    )


def _first_line(e: Exception) -> str:
    """The first line of an error; for a Java exception raised through py4j, Java's own."""
    java = getattr(e, "java_exception", None)
    text = str(java.toString()) if java is not None else str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def local_master() -> str:
    """``local[N]`` on the cores this process may use (a Slurm job's or a cgroup's share)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return f"local[{max(1, cores)}]"


class LazySpark:
    """A stand-in for a SparkSession that starts the session on first use.

    Attribute access (``spark.read``, ``spark.sparkContext``, ...) starts the session
    with :func:`rtofs_lib.jobs.spark.session` and forwards to it; ``repr`` and tab completion
    do not start anything. When Spark cannot start, the access raises :class:`RtofsError`
    saying why, and the next access tries again (after fixing the settings, no kernel
    restart is needed). A stopped session is replaced by a new one on next use.

    Parameters
    ----------
    master, app_name, conf
        Passed to :func:`rtofs_lib.jobs.spark.session` (default: the configured master).

    Examples
    --------
    >>> spark = LazySpark(master="local[1]")
    >>> spark.started
    False
    >>> spark.range(3).count()  # doctest: +SKIP
    3
    """

    def __init__(
        self, master: str | None = None, app_name: str = "rtofs-notebook", **conf: Any
    ) -> None:
        self._master = master
        self._app_name = app_name
        self._conf = conf
        self._session: SparkSession | None = None
        self._cluster: Any = None
        self._starting: Future | None = None  # a personal cluster started by prestart()
        self._ui_proxied = False  # the UI is behind this user's Jupyter server

    def _resolved_master(self) -> str:
        if self._master:
            return self._master
        try:
            settings = rtofs_config.load()
        except RtofsError as e:
            return f"<settings unreadable: {e}>"
        if settings.notebook_spark == "slurm":
            return "your own cluster in this Slurm job"
        return local_master()

    @property
    def started(self) -> bool:
        """Whether the session is running (a stopped session counts as not started)."""
        if self._session is None:
            return False
        try:
            from pyspark import SparkContext
        except ImportError:  # pragma: no cover
            return False
        return SparkContext._active_spark_context is self._session.sparkContext

    def get(self) -> SparkSession:
        """Return the running SparkSession, starting it now if needed.

        Raises
        ------
        RtofsError
            If the settings are bad, the master is unreachable or Spark fails to start.
        """
        if self.started:
            return self._session  # type: ignore[return-value]
        from rtofs_lib.jobs import spark as sparkmod

        settings = rtofs_config.load()  # ConfigError (an RtofsError) names the bad setting
        if self._cluster is not None:  # the last session's: a new session gets a new cluster
            self._stop_cluster()
        # In a Jupyter server: the UI behind this user's server (rtofs_lib.notebook.sparkui);
        # session() hands the secret ones (the UI key) to the JVM in a private file.
        ui_public, ui_secret = sparkui.driver_ui_conf()
        self._ui_proxied = bool(ui_public)
        conf = {**ui_public, **ui_secret, **self._conf}
        if self._master:
            master = self._master
        elif settings.notebook_spark == "slurm":
            master = self._start_cluster(settings, conf)
        else:
            master = local_master()
        check_master(master)
        try:
            self._session = sparkmod.session(
                master, app_name=self._app_name, settings=settings, **conf
            )
            if self._cluster is not None:  # its workers started while the driver did
                self._cluster.wait_for_workers()
        except RtofsError:
            self._stop_session()
            raise
        except ImportError as e:
            raise RtofsError(
                f"cannot start Spark: {e}. Install it into the kernel's environment "
                f"({sys.prefix}): pip install 'rtofs-lib[spark]'"
            ) from e
        except Exception as e:
            text = _first_line(e)
            hint = "check the master URL and that the cluster is up"
            if "JAVA_HOME" in text or "java: not found" in text.lower():
                hint = "is Java 17 installed on this host (java -version) and JAVA_HOME right?"
            self._stop_session()
            raise RtofsError(
                f"Spark did not start with master {master}: {type(e).__name__}: {text} ({hint}; "
                "`spark` tries again on next use)"
            ) from e
        return self._session

    def prestart(self) -> bool:
        """Start the personal cluster's master and workers now, in the background.

        With ``notebook_spark = "slurm"`` in a Slurm job, the kernel's start-up calls this: the
        daemons (no executors, a few hundred MB) start while the researcher reads her
        notebook, and the first use of ``spark`` then waits only for the driver and its
        executors. Anything that goes wrong is reported by that first use. Returns whether
        a start began.
        """
        from rtofs_lib.jobs.personal import Allocation, PersonalCluster

        if self._master or self._starting is not None or self.started:
            return False
        try:
            settings = rtofs_config.load()
        except RtofsError:
            return False  # the first use says what is wrong with them
        if settings.notebook_spark != "slurm" or Allocation.from_env() is None:
            return False
        try:
            cluster = PersonalCluster(settings=settings)
        except RtofsError:
            return False
        started: Future = Future()

        def start() -> None:
            try:
                started.set_result(cluster.start())
            except BaseException as e:  # handed to the first use
                started.set_exception(e)

        # a daemon thread: a kernel that exits meanwhile does not wait for it
        threading.Thread(target=start, name="rtofs-spark-prestart", daemon=True).start()
        self._starting = started
        atexit.register(cluster.stop)
        return True

    def wait_prestarted(self, timeout: float = 120.0) -> bool:
        """Wait until the master and every worker :meth:`prestart` began are up.

        Returns False when none was begun or it failed (the first use then says why).
        """
        if self._starting is None:
            return False
        try:
            self._starting.result(timeout).wait_for_workers(timeout)
        except Exception:  # reported by the first use
            return False
        return True

    def _start_cluster(self, settings: rtofs_config.Settings, conf: dict[str, Any]) -> str:
        """Start the personal cluster in this Slurm allocation (or take the one prestart()
        began); add its driver properties."""
        from rtofs_lib.jobs.personal import Allocation, PersonalCluster

        if Allocation.from_env() is None:
            raise RtofsError(
                "notebook_spark is 'slurm' but this kernel runs outside a Slurm job; start "
                "your server from the hub, or use LazySpark(master='local[2]') here"
            )
        starting, self._starting = self._starting, None
        cluster = None
        if starting is not None:
            with contextlib.suppress(Exception):  # a failed early start: try once more now
                cluster = starting.result()
            if cluster is not None and not cluster.alive():
                cluster.stop()
                cluster = None
        cluster = cluster or PersonalCluster(settings=settings).start()
        # the driver's RPC and UI on the address the executors reach it at; no platform settings
        os.environ.update(cluster.driver_env())
        self._cluster = cluster
        atexit.register(cluster.stop)
        conf.update({k: v for k, v in cluster.spark_conf().items() if k not in conf})
        return cluster.master_url

    def _stop_session(self) -> None:
        """After a failed start: no half-started session or cluster is left."""
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._session.stop()
            self._session = None
        self._stop_cluster()

    def _stop_cluster(self) -> None:
        starting, self._starting = getattr(self, "_starting", None), None
        if starting is not None:
            with contextlib.suppress(Exception):
                starting.result().stop()
        cluster, self._cluster = getattr(self, "_cluster", None), None
        if cluster is not None:
            cluster.stop()
            atexit.unregister(cluster.stop)

    @property
    def cluster(self) -> Any:
        """The personal Spark cluster of this kernel (None: local mode or not started)."""
        return getattr(self, "_cluster", None)

    def stop(self) -> None:
        """Stop the session if it runs (frees the executors, ends a personal cluster's Slurm
        step); the next use starts a new one."""
        if self.started:
            self._session.stop()  # type: ignore[union-attr]
        self._session = None
        self._stop_cluster()

    def __getattr__(self, name: str) -> Any:
        # Private and dunder names never start Spark: IPython's display machinery probes
        # objects for _repr_*_ and _ipython_*_ methods.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        try:
            from pyspark.sql import SparkSession

            names.update(n for n in dir(SparkSession) if not n.startswith("_"))
        except ImportError:  # pragma: no cover
            pass
        return sorted(names)

    @property
    def ui_url(self) -> str | None:
        """The Spark UI's address, None when not started (or started without a UI).

        In a Jupyter server: the route on this user's server (``/user/alice/spark-ui/4050/``,
        the only way in, see :mod:`rtofs_lib.notebook.sparkui`); elsewhere Spark's own.
        """
        if not self.started:
            return None
        web_url = self._session.sparkContext.uiWebUrl  # type: ignore[union-attr]
        if self._ui_proxied:
            return sparkui.ui_url(web_url)
        return web_url

    def __repr__(self) -> str:
        if self.started:
            sc = self._session.sparkContext  # type: ignore[union-attr]
            return f"<spark: running on {sc.master}, app {sc.appName!r}, UI {self.ui_url}>"
        return f"<spark: not started; starts on first use with master {self._resolved_master()}>"


# --- start-up ----------------------------------------------------------------------------------


def start(namespace: dict[str, Any]) -> None:
    """Fill a notebook's namespace: ``spark``, ``rtofs``, readers, settings and viewers.

    Called by the kernel's start-up file. Nothing here starts Spark or reads data.
    """
    import rtofs_lib
    from rtofs_lib.fields import reader

    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    namespace["spark"] = LazySpark()
    namespace["spark"].prestart()  # a personal cluster's daemons start while she reads
    namespace["rtofs"] = rtofs_lib
    namespace["open_file"] = reader.open_file
    namespace["open_day"] = reader.open_day
    try:
        namespace["config"] = rtofs_config.load()
    except RtofsError as e:  # a bad settings file must not stop the kernel
        print(f"RTOFS kernel: {e}", file=sys.stderr)
    try:
        from rtofs_lib.notebook import viewer
    except ImportError as e:
        print(f"RTOFS kernel: viewers unavailable ({e}); pip install 'rtofs-lib[viewers]'")
    else:
        namespace["viewer"] = viewer.viewer
        namespace["SSTViewer"] = viewer.SSTViewer


# --- the spec and its installer ----------------------------------------------------------------


def _spark_home() -> str | None:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))))


def kernel_json(
    python: str | None = None,
    *,
    config: str | Path | None = None,
    spark_home: str | bool | None = True,
    omp_threads: int = DEFAULT_OMP_THREADS,
    display_name: str = DISPLAY_NAME,
) -> dict[str, Any]:
    """Return the ``kernel.json`` content of the RTOFS kernel.

    Parameters
    ----------
    python
        Interpreter of the kernel (default: this one, ``sys.executable``).
    config
        Platform settings file for ``RTOFS_CONFIG``; None leaves it unset (the library then
        reads ``/etc/rtofs/rtofs.toml`` if present).
    spark_home
        ``SPARK_HOME``; True: the Spark inside this environment's pyspark, if installed;
        None/False: unset.
    omp_threads
        ``OMP_NUM_THREADS`` of the notebook process.
    display_name
        Name shown by JupyterLab.
    """
    python = python or sys.executable
    if omp_threads < 1:
        raise ValueError(f"omp_threads must be at least 1, not {omp_threads}")
    env = {
        "HDF5_USE_FILE_LOCKING": "FALSE",
        "OMP_NUM_THREADS": str(omp_threads),
        "PYSPARK_PYTHON": python,
        # the environment's commands (rtofs, spark-submit) first on the PATH of `!` commands
        "PATH": f"{Path(python).parent}:${{PATH}}",
    }
    home = _spark_home() if spark_home is True else spark_home or None
    if home:
        env["SPARK_HOME"] = home
    if config:
        env["RTOFS_CONFIG"] = str(config)
    return {
        "argv": [
            python,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            f"--IPKernelApp.exec_files={{resource_dir}}/{STARTUP_NAME}",
        ],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "env": env,
        "metadata": {"debugger": True},
    }


def _chmod_tree(root: Path) -> None:
    """Make an installed spec readable by everybody (the copy keeps the temp dir's 0700)."""
    root.chmod(0o755)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def install(
    *,
    user: bool = False,
    sys_prefix: bool = False,
    prefix: str | Path | None = None,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
    config: str | Path | None = None,
    omp_threads: int = DEFAULT_OMP_THREADS,
    python: str | None = None,
) -> Path:
    """Install the kernel spec (``kernel.json`` + ``startup.py``); return its folder.

    Parameters
    ----------
    user
        Into the user's Jupyter data dir (``~/.local/share/jupyter/kernels``).
    sys_prefix
        Into this environment (``sys.prefix/share/jupyter/kernels``).
    prefix
        Into ``PREFIX/share/jupyter/kernels`` (``/usr/local`` for every user of a host).
    name, display_name
        Spec folder name and the name JupyterLab shows.
    config
        Settings file for ``RTOFS_CONFIG``; default ``$RTOFS_CONFIG`` when set, else
        ``/etc/rtofs/rtofs.toml`` when it exists, else unset.
    omp_threads
        ``OMP_NUM_THREADS`` of notebooks.
    python
        Kernel interpreter (default this one).

    With none of ``user``, ``sys_prefix``, ``prefix``: the system-wide location
    (``/usr/local/share/jupyter/kernels``), like ``jupyter kernelspec install``.

    Raises
    ------
    RtofsError
        If more than one location is chosen, or the folder cannot be written (says which).
    """
    prefix = _install_prefix(user=user, sys_prefix=sys_prefix, prefix=prefix)
    config = _default_config(config)
    spec = kernel_json(python, config=config, omp_threads=omp_threads, display_name=display_name)
    with tempfile.TemporaryDirectory(prefix="rtofs-kernel-") as tmp:
        src = _write_spec(Path(tmp) / name, spec)
        dest = _install_spec(src, name, user=user, prefix=prefix)
    _chmod_tree(dest)
    return dest


def _install_prefix(
    *, user: bool, sys_prefix: bool, prefix: str | Path | None
) -> str | Path | None:
    """The ``prefix`` to install into (None: the user's or the system-wide folder)."""
    if sum((bool(user), bool(sys_prefix), prefix is not None)) > 1:
        raise RtofsError("choose one of --user, --sys-prefix and --prefix")
    return sys.prefix if sys_prefix else prefix


def _default_config(config: str | Path | None) -> str | Path | None:
    """``config``, else ``$RTOFS_CONFIG``, else the system settings file if it exists."""
    if config is not None:
        return config
    env_config = os.environ.get("RTOFS_CONFIG")
    if env_config:
        return env_config
    if rtofs_config.SYSTEM_CONFIG.exists():
        return rtofs_config.SYSTEM_CONFIG
    return None


def _write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    """Write ``kernel.json`` and the start-up file into a new ``folder``; return it."""
    folder.mkdir()
    atomic.write_json(folder / "kernel.json", spec, indent=1)
    atomic.write_text(folder / STARTUP_NAME, STARTUP_SOURCE)
    return folder


def _install_spec(src: Path, name: str, *, user: bool, prefix: str | Path | None) -> Path:
    """Copy the spec folder ``src`` into Jupyter's kernels folder; return where it went."""
    from jupyter_client.kernelspec import KernelSpecManager

    try:
        dest = KernelSpecManager().install_kernel_spec(
            str(src), name, user=user, prefix=str(prefix) if prefix is not None else None
        )
    except PermissionError as e:
        raise RtofsError(
            f"cannot write the kernel into {e.filename or 'the system-wide Jupyter folder'}: "
            "permission denied; run as root, or use --user / --sys-prefix / --prefix DIR"
        ) from None
    return Path(dest)
