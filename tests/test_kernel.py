"""The shared "RTOFS (PySpark)" kernel: installer, spec, start-up and the lazy ``spark``."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rtofs_lib.errors import RtofsError
from rtofs_lib.notebook import kernel

REPO = Path(__file__).resolve().parents[1]
RTOFS = str(Path(sys.executable).parent / "rtofs")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RTOFS, *args], capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- installer --------------------------------------------------------------------------------


def test_install_writes_the_spec_into_the_prefix(installed_kernel):
    folder = installed_kernel / "kernels" / "rtofs"
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["display_name"] == "RTOFS (PySpark)"
    assert spec["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
    assert "--IPKernelApp.exec_files={resource_dir}/startup.py" in spec["argv"]
    assert (folder / "startup.py").read_text() == kernel.STARTUP_SOURCE


def test_installed_spec_environment_points_at_this_python_and_spark(installed_kernel):
    env = json.loads((installed_kernel / "kernels/rtofs/kernel.json").read_text())["env"]
    assert env["HDF5_USE_FILE_LOCKING"] == "FALSE"
    assert env["OMP_NUM_THREADS"] == str(kernel.DEFAULT_OMP_THREADS)
    assert env["PYSPARK_PYTHON"] == sys.executable
    assert (Path(env["SPARK_HOME"]) / "bin" / "spark-submit").exists()
    assert env["PATH"].startswith(f"{Path(sys.executable).parent}:")


def test_installed_spec_is_readable_by_everybody(installed_kernel):
    folder = installed_kernel / "kernels" / "rtofs"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for name in ("kernel.json", "startup.py"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644


def test_install_records_the_config_file_and_thread_count(tmp_path):
    cfg = tmp_path / "rtofs.toml"
    cfg.write_text('archive = "/data/archive"\n')
    r = run_cli(
        "kernel", "install", "--prefix", str(tmp_path / "p"), "--config", str(cfg),
        "--omp-threads", "4", "--name", "rtofs-test",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    folder = Path(r.stdout.strip())
    assert folder == tmp_path / "p/share/jupyter/kernels/rtofs-test"
    env = json.loads((folder / "kernel.json").read_text())["env"]
    assert env["RTOFS_CONFIG"] == str(cfg)
    assert env["OMP_NUM_THREADS"] == "4"


def test_install_locations_are_exclusive(tmp_path):
    r = run_cli("kernel", "install", "--user", "--prefix", str(tmp_path))
    assert r.returncode == 2
    assert "not allowed with argument" in r.stderr


def test_install_refuses_zero_threads(tmp_path):
    r = run_cli("kernel", "install", "--prefix", str(tmp_path), "--omp-threads", "0")
    assert r.returncode == 2
    assert "positive whole number" in r.stderr


def test_repository_spec_is_what_the_installer_writes_for_the_platform_venv():
    folder = REPO / "kernels" / "rtofs"
    venv = "/opt/rtofs/venv"
    expected = kernel.kernel_json(
        f"{venv}/bin/python",
        config="/etc/rtofs/rtofs.toml",
        spark_home=f"{venv}/lib/python3.11/site-packages/pyspark",
    )
    assert json.loads((folder / "kernel.json").read_text()) == expected
    assert (folder / "startup.py").read_text() == kernel.STARTUP_SOURCE


# --- the lazy spark handle (in this process) ----------------------------------------------------


def test_lazy_spark_repr_does_not_start_spark():
    spark = kernel.LazySpark(master="spark://127.0.0.1:9")
    assert "not started" in repr(spark)
    assert "spark://127.0.0.1:9" in repr(spark)
    assert not spark.started
    with pytest.raises(AttributeError):
        spark._repr_html_  # noqa: B018 - IPython probes these; they must not start Spark


def test_unreachable_master_error_names_the_url_and_what_to_check():
    url = f"spark://127.0.0.1:{free_port()}"
    spark = kernel.LazySpark(master=url)
    with pytest.raises(RtofsError) as err:
        spark.range(1)
    text = str(err.value)
    assert f"Spark master {url} is unreachable" in text
    assert "connection refused" in text.lower()
    assert "spark_master" in text and "RTOFS_SPARK_MASTER" in text
    assert not spark.started


def test_unknown_master_host_is_reported_as_such():
    with pytest.raises(RtofsError, match=r"no-such-host\.invalid: unknown host"):
        kernel.check_master("spark://no-such-host.invalid:7077", timeout=2)


def test_master_check_accepts_a_listening_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        kernel.check_master(f"spark://127.0.0.1:{server.getsockname()[1]}", timeout=2)


# --- the installed kernel, started for real ---------------------------------------------------


def run_in_kernel(km_kc, code: str, timeout: float = 180) -> tuple[str, list[dict]]:
    """Execute ``code``; return its stdout and the error contents (if any)."""
    _, kc = km_kc
    msg_id = kc.execute(code)
    out, errors = [], []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            errors.append(msg["content"])
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out), errors


@pytest.fixture
def started_kernel(kernel_env):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="rtofs", startup_timeout=120)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_installed_kernel_namespace_has_idle_spark_library_and_viewers(started_kernel):
    out, errors = run_in_kernel(
        started_kernel,
        "import os, sys\n"
        "from pyspark import SparkContext\n"
        "print(type(spark).__name__, spark.started, SparkContext._active_spark_context)\n"
        "print(rtofs.__name__, viewer.__module__, SSTViewer.__name__, open_day.__module__)\n"
        "print(sys.executable, os.environ['HDF5_USE_FILE_LOCKING'])\n",
    )
    assert not errors, errors
    lines = out.splitlines()
    assert lines[0] == "LazySpark False None"
    assert lines[1] == "rtofs_lib rtofs_lib.notebook.viewer SSTViewer rtofs_lib.fields.reader"
    assert lines[2] == f"{sys.executable} FALSE"


def test_installed_kernel_spark_starts_on_first_use(started_kernel):
    out, errors = run_in_kernel(
        started_kernel, "print(spark.range(5).count(), spark.started, spark.sparkContext.master)"
    )
    assert not errors, errors
    assert out.split() == ["5", "True", "local[2]"]


def test_spark_that_cannot_start_raises_a_clear_error_and_the_kernel_keeps_working(
    kernel_env, monkeypatch
):
    from jupyter_client.manager import start_new_kernel

    # a personal cluster needs the notebook server's Slurm job: there is none here
    monkeypatch.setenv("RTOFS_NOTEBOOK_SPARK", "slurm")
    for var in [v for v in os.environ if v.startswith("SLURM_")]:
        monkeypatch.delenv(var)
    km, kc = start_new_kernel(kernel_name="rtofs", startup_timeout=120)
    try:
        _, errors = run_in_kernel((km, kc), "spark.read")
        assert [e["ename"] for e in errors] == ["RtofsError"]
        assert "runs outside a Slurm job" in errors[0]["evalue"]
        out, errors = run_in_kernel((km, kc), "print(spark.started, 6 * 7)")
        assert not errors
        assert out.split() == ["False", "42"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
