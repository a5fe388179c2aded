"""Time to the first task of a researcher's own Spark cluster, against ``local[N]``.

A real Slurm on this machine (slurmctld + slurmd, one node; needs root and munge, as the
tests do), a job like a notebook server's (``--cpus-per-task`` and ``--mem``, the server's
step on the first node), and in it what the kernel's ``spark`` does
(:class:`rtofs_lib.notebook.kernel.LazySpark` with ``notebook_spark = "slurm"``), three ways,
interleaved, each in fresh processes:

- ``local``: a ``local[N]`` session to its first task (the single-host kernel's ``spark``),
  the baseline;
- ``cold``: the personal cluster when ``spark`` is used as the kernel starts (master,
  worker, driver and executor all start then);
- ``prestarted``: the kernel's start-up began the master and workers
  (:meth:`~rtofs_lib.notebook.kernel.LazySpark.prestart`); the first use, once they are up,
  waits for the driver and the executor only.

Also reported: how many of the session's JVMs map the class-data archive of Spark's classes
(:mod:`rtofs_lib.jobs.classdata`; 4 for a personal session: master, worker, driver, executor).

Target (issue 14): the first task <= 20 s after ``spark`` is first used on the test hosts.

Usage::

    sudo .venv/bin/python benchmarks/bench_personal.py [--repeat 3] [--cpus 2] [--mem 2G]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("local", "cold", "prestarted")

#: One measurement in a fresh process, as the kernel's ``spark`` does it: ``local``
#: (``local[N]``), ``cold`` (personal cluster, first use as the kernel starts) or
#: ``prestarted`` (personal cluster whose daemons the kernel's start-up began, first use
#: once they are up, as when she runs her first cell a little after opening the notebook).
PROBE = r"""
import json, os, sys, time
t0 = time.monotonic()
marks = {}
from rtofs_lib.notebook.kernel import LazySpark, local_master
mode = sys.argv[1]
spark = LazySpark(master=local_master()) if mode == "local" else LazySpark()
if mode == "prestarted":
    spark.prestart()
    spark._starting.result().wait_for_workers()  # the daemons are up: she starts her cell
    marks["daemons ready"] = time.monotonic() - t0
    t0 = time.monotonic()
spark.get()
marks["driver up"] = time.monotonic() - t0
spark.sparkContext.parallelize([1], 1).map(lambda x: x).collect()
marks["first task"] = time.monotonic() - t0
from rtofs_lib.jobs import classdata
mapped = []
for pid in os.listdir("/proc"):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        if b"java" in cmd and str(classdata.archive_path()) in open(f"/proc/{pid}/maps").read():
            mapped.append(cmd.split(b"\0")[-2].decode()[-40:])
    except (OSError, ValueError):
        pass
marks["jvms using the archive"] = len(mapped)
spark.stop()
print("MARKS " + json.dumps(marks), flush=True)
"""


def run_job(slurm, tmp: Path, mode: str, cpus: int, mem: str) -> dict[str, float]:
    """Run one probe as the server's step of a fresh job; return its stage times."""
    script = tmp / "probe.py"
    script.write_text(PROBE)
    out = tmp / f"{mode}-{time.monotonic_ns()}.out"
    batch = tmp / "job.sh"
    batch.write_text(
        "#!/bin/bash\n"
        f"export RTOFS_SPARK_LOCAL_DIR={tmp / 'scratch'} RTOFS_NOTEBOOK_SPARK=slurm\n"
        f"srun --nodes=1 --ntasks=1 {sys.executable} {script} {mode}\n"
    )
    cmd = ["sbatch", "--wait", "--parsable", f"--cpus-per-task={cpus}", f"--mem={mem}"]
    cmd += ["--time=10", f"--output={out}", str(batch)]
    subprocess.run(cmd, env=slurm.env, check=True, capture_output=True, timeout=600)
    line = next((x for x in out.read_text().splitlines() if x.startswith("MARKS ")), None)
    if line is None:
        raise SystemExit(f"{mode} run failed:\n{out.read_text()[-3000:]}")
    return json.loads(line[len("MARKS ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--mem", default="2G")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    import hubsite

    with tempfile.TemporaryDirectory(prefix="bench-personal-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "scratch").mkdir(mode=0o1777)
        munge = hubsite.start_munge()
        slurm = hubsite.start_slurm(tmp_path / "slurm", cpus=max(4, args.cpus), memory_mb=8000)
        try:
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
            for _ in range(args.repeat):  # interleaved: the machine's load hits all alike
                for mode in MODES:
                    runs[mode].append(run_job(slurm, tmp_path, mode, args.cpus, args.mem))
        finally:
            subprocess.run(["scancel", "-u", "root"], env=slurm.env, check=False)
            slurm.stop()
            if munge:
                subprocess.run(["kill", str(munge)], check=False)
    med = {
        mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()
    }
    print(f"median of {args.repeat} runs, {args.cpus} CPUs and {args.mem} per job:")
    for mode in MODES:
        for stage, value in med[mode].items():
            print(f"  {mode:<11} {stage:<24} {value:6.1f}")
    base = med["local"]["first task"]
    for mode in ("cold", "prestarted"):
        first = med[mode]["first task"]
        print(f"first task, personal cluster ({mode}) / local[N]: {first / base:.2f}x")
    print("target (issue 14): first task <= 20 s after spark is first used")


if __name__ == "__main__":
    main()
