"""The SparkSession helper and the standalone clusters it talks to (real JVMs, no mocks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SPARK_TEST_SECRET

from rtofs_lib import config
from rtofs_lib.errors import ConfigError
from rtofs_lib.jobs import spark as sparkmod


def executor_view():
    """Return a task that reports what it sees on its executor.

    A nested function travels by value (workers cannot import this test module).
    """
    names = tuple(sparkmod.EXECUTOR_ENV)

    def view(_):
        import os
        import resource
        import sys

        env = {k: os.environ.get(k) for k in names}
        return env, resource.getrlimit(resource.RLIMIT_AS)[0], sys.executable, os.getpid()

    return view


# --- defaults ------------------------------------------------------------------------------------


def test_scratch_is_per_user_inside_a_shared_sticky_folder(tmp_path):
    mine = tmp_path / "scratch" / "alice"
    sparkmod._make_scratch(mine)
    assert (tmp_path / "scratch").stat().st_mode & 0o7777 == 0o1777  # every user, like /tmp
    assert mine.stat().st_mode & 0o777 == 0o700


def test_defaults_name_the_user_and_keep_scratch_local(tmp_path):
    s = config.Settings(spark_local_dir=str(tmp_path / "scratch"))
    conf = sparkmod.default_conf(s, app_name="rtofs-render")

    assert conf["spark.app.name"] == f"rtofs-render ({sparkmod.user_name()})"
    assert conf["spark.local.dir"] == str(tmp_path / "scratch" / sparkmod.user_name())
    assert conf["spark.python.worker.reuse"] == "true"
    assert conf["spark.executorEnv.HDF5_USE_FILE_LOCKING"] == "FALSE"
    assert conf["spark.executorEnv.OMP_NUM_THREADS"] == "1"
    assert "spark.authenticate" not in conf


def test_python_memory_is_per_task(tmp_path):
    s = config.Settings(spark_python_memory="1500m")
    assert sparkmod.default_conf(s)["spark.executor.pyspark.memory"] == "1500m"
    four = sparkmod.default_conf(s, executor_cores=4)
    assert four["spark.executor.pyspark.memory"] == "6000m"


@pytest.mark.parametrize(
    ("text", "mb"), [("1g", 1024), ("512m", 512), ("2G", 2048), ("1.5g", 1536), ("700", 700)]
)
def test_memory_sizes(text, mb):
    assert sparkmod.memory_mb(text) == mb


def test_bad_memory_size_says_how_to_write_it():
    with pytest.raises(ConfigError, match=r"'lots' is not a memory size; write it like 1g"):
        sparkmod.memory_mb("lots")


def test_secret_file_turns_on_authentication(tmp_path):
    secret = tmp_path / "spark.secret"
    secret.write_text("s3cret\n")
    conf = sparkmod.default_conf(config.Settings(spark_secret_file=str(secret)))
    assert conf["spark.authenticate"] == "true"
    assert conf["spark.authenticate.secret"] == "s3cret"


def test_missing_secret_file_is_named_in_the_error(tmp_path):
    missing = tmp_path / "nope.secret"
    with pytest.raises(ConfigError, match=rf"{missing}: Spark secret file not found"):
        sparkmod.default_conf(config.Settings(spark_secret_file=str(missing)))


def test_empty_secret_file_is_an_error(tmp_path):
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="secret file is empty"):
        sparkmod.read_secret(empty)


# --- sessions on real masters --------------------------------------------------------------------


def test_session_without_configuration_is_local_star(spark_sessions, tmp_path):
    spark_sessions.stop()
    spark = sparkmod.session(settings=config.Settings(spark_local_dir=str(tmp_path)))
    try:
        assert spark.sparkContext.master == "local[*]"
    finally:
        spark.stop()


def test_session_takes_the_master_from_the_environment(monkeypatch, spark_sessions, tmp_path):
    spark_sessions.stop()
    monkeypatch.setenv("RTOFS_SPARK_MASTER", "local[1]")
    monkeypatch.setenv("RTOFS_SPARK_LOCAL_DIR", str(tmp_path))
    spark = sparkmod.session()
    try:
        assert spark.sparkContext.master == "local[1]"
        assert spark.sparkContext.appName.endswith(f"({sparkmod.user_name()})")
    finally:
        spark.stop()


def test_python_workers_are_reused(spark_sessions):
    spark = spark_sessions.get("local[2]")
    sc = spark.sparkContext
    first = {v[3] for v in sc.parallelize(range(4), 4).map(executor_view()).collect()}
    second = {v[3] for v in sc.parallelize(range(4), 4).map(executor_view()).collect()}
    assert second <= first


def test_executors_get_the_workload_environment(spark_master, spark_sessions):
    spark = spark_sessions.get(spark_master)
    views = spark.sparkContext.parallelize(range(4), 4).map(executor_view()).collect()
    for env, _limit, python, _pid in views:
        assert env == sparkmod.EXECUTOR_ENV
        assert python == sys.executable  # the driver's virtual environment


def test_cluster_caps_python_memory_per_task(spark_cluster, spark_sessions):
    spark = spark_sessions.get(spark_cluster.master_url)  # spark_python_memory="2g"
    views = spark.sparkContext.parallelize(range(2), 2).map(executor_view()).collect()
    assert {limit for _env, limit, _python, _pid in views} == {2 * 1024**3}


def test_standalone_tasks_run_on_both_workers(spark_cluster, spark_sessions):
    spark = spark_sessions.get(spark_cluster.master_url)
    pids = spark.sparkContext.parallelize(range(8), 8).map(lambda _: os.getppid()).collect()
    assert len(set(pids)) == 2  # two executors (JVMs), one per worker


# --- authentication ------------------------------------------------------------------------------

CLIENT = """
import os, subprocess, sys
from rtofs_lib.jobs import spark
s = spark.session(sys.argv[1], **{"spark.executor.memory": "512m"})
if os.environ.get("RTOFS_SPARK_SECRET_FILE"):
    secret = open(os.environ["RTOFS_SPARK_SECRET_FILE"]).read().strip()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    print("SECRET ON A COMMAND LINE:", secret in ps, flush=True)
print("RESULT", sum(s.sparkContext.parallelize(range(10), 2).collect()), flush=True)
s.stop()
"""
REJECTED = ("Expected SaslMessage", "All masters are unresponsive")


def client(master: str, tmp_path: Path, secret_file: str = "") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTOFS_", "PYSPARK"))}
    env.update(RTOFS_SPARK_LOCAL_DIR=str(tmp_path), RTOFS_SPARK_SECRET_FILE=secret_file)
    env["RTOFS_CONFIG"] = ""
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, master],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def read_until(proc: subprocess.Popen, markers: tuple[str, ...], timeout: float) -> str:
    """Read the client's output until a marker shows (then stop it), it exits or time runs out."""
    seen = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if any(m in line for m in markers) or time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
    return "".join(seen)


@pytest.mark.cluster
def test_client_with_the_secret_runs_jobs(spark_auth_cluster, tmp_path):
    secret = tmp_path / "spark.secret"
    secret.write_text(SPARK_TEST_SECRET + "\n")
    out = read_until(
        client(spark_auth_cluster.master_url, tmp_path, str(secret)), ("RESULT", *REJECTED), 180
    )
    assert "RESULT 45" in out


@pytest.mark.cluster
def test_client_keeps_the_secret_off_every_command_line(spark_auth_cluster, tmp_path):
    secret = tmp_path / "spark.secret"
    secret.write_text(SPARK_TEST_SECRET + "\n")
    out = read_until(
        client(spark_auth_cluster.master_url, tmp_path, str(secret)), ("RESULT", *REJECTED), 180
    )
    assert "SECRET ON A COMMAND LINE: False" in out and "RESULT 45" in out
    assert not list(tmp_path.rglob("driver-*.properties"))  # the JVM read it; it is gone


@pytest.mark.cluster
def test_client_without_the_secret_is_rejected(spark_auth_cluster, tmp_path):
    out = read_until(client(spark_auth_cluster.master_url, tmp_path), ("RESULT", *REJECTED), 180)
    assert "RESULT" not in out
    assert "Expected SaslMessage" in out  # the master refused the unauthenticated client


@pytest.mark.cluster
def test_client_with_a_wrong_secret_is_rejected(spark_auth_cluster, tmp_path):
    secret = tmp_path / "wrong.secret"
    secret.write_text("not-the-secret\n")
    out = read_until(
        client(spark_auth_cluster.master_url, tmp_path, str(secret)),
        ("RESULT", "Failed to connect to master", *REJECTED),
        180,
    )
    assert "RESULT" not in out
    master_log = (spark_auth_cluster.base_dir / "master.log").read_text()
    assert "Mismatched response" in master_log  # the master refused the wrong secret


# --- the class-data archive of Spark's classes (rtofs_lib.jobs.classdata) ------------------------


def test_class_archive_is_made_once_per_install():
    from rtofs_lib.jobs import classdata

    assert classdata.ready()  # made by the test setup (scripts/setup.sh)
    assert classdata.build() is False  # up to date: nothing is made again
    assert classdata.java_options() == f"-XX:SharedArchiveFile={classdata.archive_path()}"


def test_a_stale_class_archive_is_not_used(monkeypatch, tmp_path):
    from rtofs_lib.jobs import classdata

    monkeypatch.setattr(classdata, "FOLDER", tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "spark.jsa").write_bytes(b"made for other jars")
    (tmp_path / "key").write_text("0" * 64 + "\n")  # another pyspark, another JDK
    assert not classdata.ready()
    assert classdata.java_options() == ""
