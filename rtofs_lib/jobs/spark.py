"""The SparkSession helper: one call gives a session with the defaults this workload needs.

:func:`session` works the same from a notebook, the ``rtofs`` CLI and ``spark-submit``:

- master: the ``master`` argument, else ``spark_master`` from :mod:`rtofs_lib.config`
  (``RTOFS_SPARK_MASTER`` or the config file), else ``local[*]``; under ``spark-submit``
  or an already running session the master chosen there is kept;
- one BLAS/OpenMP thread per task (``OMP_NUM_THREADS=1`` and friends on executors),
  reused Python workers, a Python memory cap per task, ``HDF5_USE_FILE_LOCKING=FALSE``
  for read-only archive access, scratch (``spark.local.dir``) on local disk;
- an application name that says who started it (``rtofs-render (alice)``);
- ``spark.authenticate`` with the shared secret read from ``spark_secret_file`` when
  the cluster uses one (or the secret passed as ``spark.authenticate.secret``, for a
  personal cluster). Secret properties never reach a command line: PySpark puts a new
  session's properties on the driver JVM's, which every user of the host sees in ``ps``;
  they go to the JVM in a file only the user can read (``--properties-file``).

Examples
--------
>>> from rtofs_lib.jobs.spark import session
>>> spark = session("local[2]", app_name="rtofs-example")  # doctest: +SKIP
>>> spark.sparkContext.defaultParallelism  # doctest: +SKIP
2
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import logging
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtofs_lib import atomic, config
from rtofs_lib.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Environment every executor's Python workers get: one BLAS thread per task (Spark
#: runs one task per core already) and no HDF5 file locks on the read-only archive.
EXECUTOR_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HDF5_USE_FILE_LOCKING": "FALSE",
}

#: Driver logging: errors only, plus the scheduler's warnings about lost tasks and
#: executors (which say why a task was retried) and the client's about reaching the
#: master (which say why it was refused, e.g. a missing secret). Used unless your
#: ``spark.driver.extraJavaOptions`` names another ``-Dlog4j2.configurationFile``.
LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = warn
logger.sched.name = org.apache.spark.scheduler.TaskSchedulerImpl
logger.sched.level = warn
logger.client.name = org.apache.spark.deploy.client.StandaloneAppClient$ClientEndpoint
logger.client.level = warn
"""

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)

#: Properties whose values are secrets (Spark's own ``spark.redaction.regex``). PySpark puts
#: the properties of a new session on the driver JVM's command line, which every user of the
#: host can read with ``ps``; :func:`session` hands these to the JVM in a private file instead.
SECRET_RE = re.compile(r"(?i)secret|password|token|access[.]?key")


def user_name() -> str:
    """Return the name of the user running this process (``unknown`` if it cannot be told)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return os.environ.get("USER", "unknown")


def memory_mb(text: str) -> int:
    """Return a Spark memory size such as ``"1g"`` or ``"512m"`` in MiB.

    Raises
    ------
    ConfigError
        If ``text`` is not a number with an optional k/m/g/t unit.
    """
    m = _MEMORY_RE.match(str(text))
    if not m:
        raise ConfigError(
            f"spark_python_memory: {text!r} is not a memory size; write it like 1g or 512m"
        )
    number, unit = float(m.group(1)), m.group(2).lower() or "m"
    factor = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
    return max(1, int(number * factor))


def read_secret(path: str | Path) -> str:
    """Return the ``spark.authenticate`` secret stored in ``path`` (surrounding blanks removed).

    Raises
    ------
    ConfigError
        If the file cannot be read or is empty.
    """
    p = Path(path).expanduser()
    try:
        secret = p.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: Spark secret file not found; create it (same content on every host) "
            "or unset spark_secret_file / RTOFS_SPARK_SECRET_FILE"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{p}: cannot read the Spark secret file: that cluster belongs to the platform's "
            "service account. In a notebook, `spark` is your own Spark; elsewhere pass a "
            "master such as local[2] (or run inside your Slurm job)"
        ) from None
    if not secret:
        raise ConfigError(f"{p}: the Spark secret file is empty; put the cluster's secret in it")
    return secret


def spark_home() -> Path:
    """The Spark installation bundled in the pyspark wheel (or ``$SPARK_HOME``)."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).parent


def in_notebook() -> bool:
    """Return True when running inside a Jupyter (IPython kernel) session."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()  # type: ignore[attr-defined]
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _launched_by_spark() -> bool:
    # spark-submit and the pyspark shell start the JVM first and hand Python its port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def default_conf(
    settings: config.Settings | None = None,
    *,
    app_name: str | None = None,
    progress: bool | None = None,
    executor_cores: int | None = None,
) -> dict[str, str]:
    """Return the Spark properties :func:`session` sets (without ``spark.master``).

    Parameters
    ----------
    settings
        Platform settings (default :func:`rtofs_lib.config.load`).
    app_name
        Application name; the user's name is appended, e.g. ``rtofs (alice)``.
    progress
        Show Spark's console progress bar (default: only inside notebooks).
    executor_cores
        Cores per executor when known; the Python memory cap is per task, so the
        executor-wide ``spark.executor.pyspark.memory`` is this many times
        ``spark_python_memory``.

    Raises
    ------
    ConfigError
        For an unreadable secret file or a bad memory size.
    """
    s = settings or config.load()
    name = app_name or "rtofs"
    cores = max(1, executor_cores or 1)
    conf = {
        "spark.app.name": f"{name} ({user_name()})",
        "spark.python.worker.reuse": "true",
        "spark.executor.pyspark.memory": f"{memory_mb(s.spark_python_memory) * cores}m",
        # Each user's own folder inside the shared scratch (many users, one worker host).
        "spark.local.dir": str(Path(s.spark_local_dir) / user_name()),
        "spark.pyspark.python": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "spark.ui.showConsoleProgress": str(
            in_notebook() if progress is None else progress
        ).lower(),
        # Tasks only return small records; a full-size array coming back is a bug.
        "spark.driver.maxResultSize": "256m",
    }
    for var, value in EXECUTOR_ENV.items():
        conf[f"spark.executorEnv.{var}"] = value
    if s.spark_secret_file:
        conf["spark.authenticate"] = "true"
        conf["spark.authenticate.secret"] = read_secret(s.spark_secret_file)
    return conf


def session(
    master: str | None = None,
    app_name: str | None = None,
    *,
    settings: config.Settings | None = None,
    progress: bool | None = None,
    **conf: Any,
) -> SparkSession:
    """Return a SparkSession for the configured cluster with this workload's defaults.

    Parameters
    ----------
    master
        Spark master URL (``spark://hub:7077``, ``local[2]``); default the configured
        ``spark_master`` (``local[*]`` when nothing is configured). Under ``spark-submit``
        the master given there wins unless this is set.
    app_name
        Application name shown in the Spark UI; the user's name is appended.
    settings
        Platform settings (default :func:`rtofs_lib.config.load`).
    progress
        Spark's console progress bar (default on in notebooks, off elsewhere).
    **conf
        Further Spark properties; write dots as in Spark (pass a dict with ``**``),
        e.g. ``**{"spark.executor.memory": "2g"}``. They override the defaults.

    Returns
    -------
    SparkSession
        A new session, or the running one (static properties of a running session
        cannot change; stop it first to apply new ones).

    Raises
    ------
    ImportError
        If pyspark is not installed.
    ConfigError
        For an unreadable secret file or a bad memory size.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:  # pragma: no cover - pyspark is in the spark extra
        raise ImportError(
            "rtofs_lib.jobs.spark needs pyspark; install it with: pip install 'rtofs-lib[spark]'"
        ) from e

    s = settings or config.load()
    extra = {str(k): str(v) for k, v in conf.items()}
    if "spark.authenticate.secret" in extra:  # the caller's own cluster, not the platform's
        s = dataclasses.replace(s, spark_secret_file="")
        extra.setdefault("spark.authenticate", "true")
    cores = extra.get("spark.executor.cores")
    props = default_conf(
        s, app_name=app_name, progress=progress, executor_cores=int(cores) if cores else None
    )
    resolved = master or (None if _launched_by_spark() else s.spark_master or "local[*]")
    if resolved and resolved.startswith("local"):
        # One machine, the user's own session: no per-task cap (and none of the
        # workers' messages about setting it), and no guessing of the host address.
        props.pop("spark.executor.pyspark.memory", None)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    props.update(extra)
    java = extra.get("spark.driver.extraJavaOptions", "")
    if "-Dlog4j2.configurationFile=" not in java:  # the caller's options come after ours
        log4j = Path(props["spark.local.dir"]) / "rtofs-log4j2.properties"
        java = f"-Dlog4j2.configurationFile={log4j.as_uri()} {java}".strip()
    props["spark.driver.extraJavaOptions"] = java
    for var in EXECUTOR_ENV:  # the driver runs tasks itself in local mode
        os.environ.setdefault(var, EXECUTOR_ENV[var])
    # PySpark takes the workers' Python from this variable (not from the property), and
    # ships it to the executors: the same interpreter (virtual environment) everywhere.
    os.environ.setdefault("PYSPARK_PYTHON", props["spark.pyspark.python"])
    local_dir = Path(props["spark.local.dir"])
    _make_scratch(local_dir)
    log4j = local_dir / "rtofs-log4j2.properties"
    if not log4j.exists() or log4j.read_text() != LOG4J2:
        atomic.write_text(log4j, LOG4J2, fsync=False)

    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines are noise in the CLI
    return _get_or_create(SparkSession.builder, resolved, props, local_dir)


def _get_or_create(builder: Any, master: str | None, props: dict[str, str], local_dir: Path):
    """Start (or get) the session; secret properties never reach a command line."""
    resolved = master
    secret = {k: v for k, v in props.items() if SECRET_RE.search(k)}
    if resolved:
        builder = builder.master(resolved)
    for key, value in props.items():
        if key not in secret:
            builder = builder.config(key, value)
    if not secret:
        return builder.getOrCreate()
    if not _jvm_launched():
        with _private_properties(local_dir, secret):
            return builder.getOrCreate()
    for key, value in secret.items():  # through py4j to the running JVM: no command line
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _jvm_launched() -> bool:
    """Whether this process already talks to a Spark JVM (then properties go through py4j)."""
    from pyspark import SparkContext

    return _launched_by_spark() or SparkContext._gateway is not None


@contextlib.contextmanager
def _private_properties(folder: Path, props: dict[str, str]) -> Iterator[Path]:
    """Hand ``props`` to the JVM PySpark launches next through a file only this user reads.

    ``spark-submit --properties-file F --load-spark-defaults`` reads them (and still the
    cluster's ``spark-defaults.conf``); the file is removed once the JVM has started.
    """
    path = folder / f"driver-{os.getpid()}.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{k}={_escape_property(v)}\n" for k, v in props.items())
    previous = os.environ.get("PYSPARK_SUBMIT_ARGS")
    args = previous or "pyspark-shell"
    os.environ["PYSPARK_SUBMIT_ARGS"] = (
        f"--properties-file {shlex.quote(str(path))} --load-spark-defaults {args}"
    )
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("PYSPARK_SUBMIT_ARGS", None)
        else:
            os.environ["PYSPARK_SUBMIT_ARGS"] = previous
        path.unlink(missing_ok=True)


def _escape_property(value: str) -> str:
    """A value as Java's ``Properties.load`` reads it back unchanged."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")


def _make_scratch(local_dir: Path) -> None:
    """Create the user's Spark scratch folder; its parent is shared (mode 1777, like /tmp)."""
    shared = local_dir.parent
    if not shared.exists():
        shared.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # made by someone else meanwhile
            shared.chmod(0o1777)
    try:
        local_dir.mkdir(mode=0o700, exist_ok=True)
        probe = local_dir / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except PermissionError:
        raise ConfigError(
            f"{local_dir}: cannot write Spark's scratch folder; make {shared} writable by "
            f"every user (chmod 1777 {shared}) or set spark_local_dir to a folder you own"
        ) from None


def stop_active() -> None:
    """Stop the running SparkSession of this process, if any (to start one with new settings)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover
        return
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
