"""A researcher's own Spark cluster inside her Slurm allocation (``rtofs_lib.jobs.personal``).

Real Slurm (slurmctld + slurmd from Debian's packages, one node on this machine), real
Spark master, workers and executors started as a job step, the kernel's ``LazySpark`` as the
driver. Which uid they run as across hosts, and what that uid may touch, is proven on the
booted hosts (tests/test_converge.py); here: the step, its resources, its secret, its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: The kernel's ``spark`` in a job: ``probe`` reports the tasks' environment and what the
#: host shows; ``hold`` keeps the session until killed.
JOB = r"""
import json, os, subprocess, sys, time
from rtofs_lib.notebook.kernel import start
namespace = {}
start(namespace)  # the kernel's start-up
spark = namespace["spark"]
def spark_steps():
    out = subprocess.run(["squeue", "-h", "-s", "-j", os.environ["SLURM_JOB_ID"], "-o", "%i %j"],
                         capture_output=True, text=True).stdout
    return [s for s in out.split("\n") if s]
prestarted = spark.wait_prestarted()
steps_before_use = spark_steps()
t0 = time.monotonic()
sc = spark.sparkContext
def env(_):
    return {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_STEP_ID")} | {"uid": os.getuid()}
rows = sc.parallelize(range(4), 4).map(env).collect()
first = time.monotonic() - t0
if sys.argv[1] == "hold":
    open(sys.argv[2], "w").write(str(os.getpid()))
    time.sleep(600)
import re, urllib.error, urllib.request
def status(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
log = spark.cluster.log.read_text()
daemon_uis = {name: status(port) for name, port in
              re.findall(r"Successfully started service '(MasterUI|WorkerUI)' on port (\d+)", log)}
steps = spark_steps()
ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
from rtofs_lib.jobs import classdata
jvms = {}  # the main class of every Spark JVM of this job: whether it maps the class archive
job = f"SLURM_JOB_ID={os.environ['SLURM_JOB_ID']}".encode()
for pid in os.listdir("/proc"):
    try:
        args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        if os.path.basename(args[0]) != b"java" or job not in environ:
            continue
        main = next(a for a in args if a.startswith(b"org.apache.spark.")).decode()
        maps = open(f"/proc/{pid}/maps").read()
        jvms[main.rsplit(".", 1)[1]] = str(classdata.archive_path()) in maps
    except (OSError, StopIteration):
        pass
out = {
    "first_task_s": first, "rows": rows, "steps": steps,
    "prestarted": prestarted, "steps_before_use": steps_before_use, "jvms": jvms,
    "parallelism": sc.defaultParallelism,
    "executor_memory": sc.getConf().get("spark.executor.memory"),
    "secret_on_a_command_line": spark.cluster.secret in ps,
    "daemon_uis": daemon_uis,
    "rest_server": "StandaloneRestServer" in log,
}
spark.stop()
time.sleep(2)
after = subprocess.run(["squeue", "-h", "-s", "-j", os.environ["SLURM_JOB_ID"], "-o", "%j"],
                       capture_output=True, text=True).stdout.split()
out["steps_after_stop"] = after
print("RESULT " + json.dumps(out), flush=True)
"""

#: The platform's ``spark-defaults.conf`` (its master, event log and encryption), which a
#: personal session must not pick up from ``SPARK_CONF_DIR``.
PLATFORM_DEFAULTS = """\
spark.master spark://192.0.2.1:7077
spark.authenticate true
spark.eventLog.enabled true
spark.eventLog.dir file:///nonexistent/spark-events
"""

#: Spark's daemons and executors, as ``pgrep -f`` patterns.
SPARK_JVMS = "deploy.master.Master|deploy.worker.Worker|CoarseGrainedExecutorBackend"


def _submit(slurm, tmp: Path, mode: str, *, after: str = "", wait: bool = True) -> Path:
    """Submit the job (2 CPUs, 2 GB) with the kernel's settings; return its output file."""
    import sys

    script = tmp / "job.py"
    script.write_text(JOB)
    out = tmp / f"{mode}.out"
    marker = tmp / "kernel.pid"
    batch = tmp / f"{mode}.sh"
    # the platform's Spark settings, as /etc/spark holds them on the cluster: not for her
    platform = tmp / "platform-conf"
    platform.mkdir(exist_ok=True)
    (platform / "spark-defaults.conf").write_text(PLATFORM_DEFAULTS)
    batch.write_text(
        "#!/bin/bash\n"
        f"srun --nodes=1 --ntasks=1 bash -c '{sys.executable} {script} {mode} {marker}; {after}'\n"
    )
    # as batchspawner submits: only the variables it names reach the job (and its steps)
    env = {
        **slurm.env,
        "RTOFS_NOTEBOOK_SPARK": "slurm",
        "RTOFS_SPARK_LOCAL_DIR": str(tmp / "scratch"),
        "SPARK_CONF_DIR": str(platform),
    }
    keep = "PATH,LANG,SLURM_CONF,RTOFS_NOTEBOOK_SPARK,RTOFS_SPARK_LOCAL_DIR,SPARK_CONF_DIR"
    args = ["sbatch", "--parsable", "--cpus-per-task=2", "--mem=2G", "--time=10"]
    args += [f"--export={keep}", f"--output={out}"]
    subprocess.run(
        [*args, *(["--wait"] if wait else []), str(batch)],
        env=env, check=True, capture_output=True, timeout=400,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """slurmctld and slurmd on this machine (one node, 4 CPUs, 8 GB declared)."""
    import hubsite

    munge_pid = hubsite.start_munge()
    s = hubsite.start_slurm(tmp_path_factory.mktemp("slurm") / "slurm", cpus=4, memory_mb=8000)
    yield s
    subprocess.run(["scancel", "--full", "-u", "root"], env=s.env, check=False)
    s.stop()
    if munge_pid:
        os.kill(munge_pid, 15)


@pytest.fixture(scope="module")
def probe(slurm, tmp_path_factory):
    """One job: the kernel's ``spark`` starts its cluster, runs tasks, stops."""
    tmp = tmp_path_factory.mktemp("personal")
    out = _submit(slurm, tmp, "probe")
    text = out.read_text()
    line = next((x for x in text.splitlines() if x.startswith("RESULT ")), None)
    assert line, text[-3000:]
    return json.loads(line[len("RESULT ") :])


def test_tasks_run_inside_a_step_of_the_researchers_job(probe):
    (job,) = {r["SLURM_JOB_ID"] for r in probe["rows"]}
    spark_steps = [s.split()[0] for s in probe["steps"] if s.split()[1] == "spark"]
    assert len(spark_steps) == 1
    assert {f"{job}.{r['SLURM_STEP_ID']}" for r in probe["rows"]} == set(spark_steps)


def test_the_kernels_start_up_starts_the_master_and_workers_before_spark_is_used(probe):
    assert probe["prestarted"] is True
    assert [s.split()[1] for s in probe["steps_before_use"]].count("spark") == 1
    assert probe["steps_before_use"] == probe["steps"]  # the first use took that step


def test_every_spark_jvm_of_the_session_maps_the_class_archive(probe):
    # master, worker, executor, and the driver (SparkSubmit)
    assert probe["jvms"] == dict.fromkeys(
        ("Master", "Worker", "CoarseGrainedExecutorBackend", "SparkSubmit"), True
    )


def test_workers_offer_the_allocations_cores_and_half_its_memory(probe):
    assert probe["parallelism"] == 2
    assert probe["executor_memory"] == "1024m"


def test_session_secret_is_on_no_command_line(probe):
    assert probe["secret_on_a_command_line"] is False


def test_master_and_worker_web_uis_answer_nobody(probe):
    assert probe["daemon_uis"] == {"MasterUI": 403, "WorkerUI": 403}


def test_master_runs_no_rest_submission_server(probe):
    assert probe["rest_server"] is False  # it would take anyone's job, unauthenticated


def test_stopping_spark_ends_the_step(probe):
    assert "spark" not in probe["steps_after_stop"]
    assert "batch" in probe["steps_after_stop"]  # the server's allocation lives on


def _spark_jvms() -> str:
    """Spark's JVMs on this machine (not those of booted test hosts, in other pid namespaces)."""
    out = subprocess.run(["pgrep", "-a", "-f", SPARK_JVMS], capture_output=True, text=True).stdout
    mine = Path("/proc/self/ns/pid").readlink()

    def here(line: str) -> bool:
        try:
            return Path(f"/proc/{line.split()[0]}/ns/pid").readlink() == mine
        except OSError:  # gone meanwhile
            return False

    return "\n".join(line for line in out.splitlines() if here(line))


def test_killing_the_kernel_ends_its_spark_processes_while_the_job_lives_on(slurm, tmp_path):
    assert not _spark_jvms()  # nothing left over from earlier tests
    _submit(slurm, tmp_path, "hold", after="sleep 300", wait=False)
    marker = tmp_path / "kernel.pid"
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert marker.exists(), (tmp_path / "hold.out").read_text()[-3000:]
    assert "deploy.worker.Worker" in _spark_jvms()
    os.kill(int(marker.read_text()), 9)
    deadline = time.monotonic() + 60
    while _spark_jvms() and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        assert _spark_jvms() == ""
        squeue = ["squeue", "-h", "-u", "root", "-o", "%T"]
        state = subprocess.run(squeue, env=slurm.env, capture_output=True, text=True).stdout
        assert state.split() == ["RUNNING"]
    finally:
        subprocess.run(["scancel", "-u", "root"], env=slurm.env, check=False)
