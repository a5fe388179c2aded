"""Spark's classes in a class-data-sharing archive, so that Spark's JVMs start faster.

A JVM spends most of its first seconds loading, verifying and linking classes; Spark's
driver loads about 10,000 of them. JDK 17's class-data sharing (``-XX:SharedArchiveFile``)
maps them from an archive made once instead: a researcher's personal cluster
(:mod:`rtofs_lib.jobs.personal`) starts four JVMs (master, worker, driver, executor) when she
first uses ``spark``, and each starts in about half the time with it.

The JVM uses an archive only where the class path is the one it was made with, jar for jar
(names, sizes, modification times), so:

- the archive is made on each host, after the install (``python -m rtofs_lib.jobs.classdata
  build``: setup and the ``rtofs_venv`` role run it), in the install's prefix
  (``share/rtofs/spark-cds``), owned by whoever owns the install;
- its key (the jars' names, sizes and times, and the JDK's) is kept beside it: a stale archive
  (new pyspark, new JDK) is not used until it is made again;
- the JVMs that use it take the archive's own, empty configuration folder (``conf``) as their
  ``SPARK_CONF_DIR``: a personal cluster's Spark settings all come from its properties files.

Where there is no usable archive, :func:`java_options` is empty and Spark starts as usual.

Examples
--------
>>> java_options() in ("", f"-XX:SharedArchiveFile={archive_path()}")
True
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from rtofs_lib.errors import RtofsError

#: Where the archive, its key and its empty configuration folder live.
FOLDER = Path(sys.prefix) / "share" / "rtofs" / "spark-cds"

#: What the JVM that writes the archive runs: a small job that loads what a session uses
#: (the scheduler, the block manager, Python workers, SQL, the UI).
WORKLOAD = textwrap.dedent(
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession
    s = (SparkSession.builder.master("local[1]").appName("rtofs-classdata")
         .config("spark.ui.port", "0").getOrCreate())
    s.sparkContext.parallelize(range(4), 2).map(lambda x: x * 2).collect()
    s.range(100).selectExpr("id % 3 AS k").groupBy("k").count().collect()
    jvm = SparkContext._gateway.proc
    s.stop()
    jvm.stdin.close()  # the gateway JVM exits at the end of its input, writing the archive
    jvm.wait()
    """
)


def conf_dir() -> Path:
    """The empty Spark configuration folder of the JVMs that use the archive."""
    return FOLDER / "conf"


def archive_path() -> Path:
    """Where the archive is (whether or not it has been made)."""
    return FOLDER / "spark.jsa"


def _java_modules() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    java = (home and shutil.which("java", path=str(Path(home) / "bin"))) or shutil.which("java")
    if java is None:
        return None
    modules = Path(java).resolve().parents[1] / "lib" / "modules"
    return modules if modules.exists() else None


def key() -> str:
    """Content key of the class path the archive is for: jars and JDK (names, sizes, times)."""
    from rtofs_lib.jobs.spark import spark_home

    h = hashlib.sha256(str(conf_dir()).encode())
    files = sorted((spark_home() / "jars").glob("*.jar"))
    modules = _java_modules()
    for f in [*files, *([modules] if modules else [])]:
        st = f.stat()
        h.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def ready() -> bool:
    """Whether this host has an archive for the Spark and JDK installed now."""
    try:
        stored = (FOLDER / "key").read_text().strip()
    except OSError:
        return False
    return conf_dir().is_dir() and archive_path().exists() and stored == key()


def java_options() -> str:
    """JVM options that use the archive, or ``""`` when there is no usable one here."""
    return f"-XX:SharedArchiveFile={archive_path()}" if ready() else ""


def build(force: bool = False, timeout: float = 600.0) -> bool:
    """Make the archive for this host's Spark and JDK; return whether it was (re)made.

    Parameters
    ----------
    force
        Make it even when the one there is up to date.
    timeout
        Seconds the workload may take.

    Raises
    ------
    RtofsError
        If the JVM could not write the archive (its output's end is in the message).
    """
    if ready() and not force:
        return False
    FOLDER.mkdir(parents=True, exist_ok=True)
    conf_dir().mkdir(mode=0o755, exist_ok=True)
    if any(conf_dir().iterdir()):
        raise RtofsError(
            f"{conf_dir()} must stay empty (the archive's class path has it); remove what is in it"
        )
    tmp = FOLDER / f".spark.jsa.{os.getpid()}"
    env = {**os.environ, "SPARK_CONF_DIR": str(conf_dir())}
    dump = f"-XX:ArchiveClassesAtExit={tmp}"
    env["PYSPARK_SUBMIT_ARGS"] = f"--driver-java-options {dump} pyspark-shell"
    for name in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_LOCAL_IP"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD],
        env=env, cwd=FOLDER, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise RtofsError(
            f"could not make Spark's class-data archive {archive_path()} (exit {done.returncode}); "
            f"is Java 17 installed (java -version)? Its output ends with:\n"
            f"{(done.stdout + done.stderr)[-2000:]}"
        )
    tmp.chmod(0o644)
    tmp.replace(archive_path())
    (FOLDER / "key").write_text(key() + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m rtofs_lib.jobs.classdata build [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m rtofs_lib.jobs.classdata")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="make the archive of Spark's classes for this host")
    b.add_argument("--force", action="store_true", help="make it even if it is up to date")
    sub.add_parser("check", help="exit 0 when this host's archive is up to date")
    ns = parser.parse_args(argv)
    if ns.command == "check":
        print(f"{archive_path()}: {'up to date' if ready() else 'missing or stale'}")
        return 0 if ready() else 1
    try:
        made = build(force=ns.force)
    except RtofsError as e:
        print(f"rtofs classdata: {e}", file=sys.stderr)
        return 1
    print(f"{'made' if made else 'up to date'}: {archive_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
