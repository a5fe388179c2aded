"""Time to the first task of a researcher's own Spark cluster, against ``local[N]``.

A real Slurm on this machine (slurmctld + slurmd, one node; needs root and munge, as the
tests do), a job like a notebook server's (``--cpus-per-task`` and ``--mem``, the server's
step on the first node), and in it what the kernel's ``spark`` does on first use
(:class:`rtofs_lib.notebook.kernel.LazySpark` with ``notebook_spark = "slurm"``): the
personal master and worker as a job step, the driver, the executor, one task. The
baseline, in the same job: a ``local[N]`` session to its first task (the single-host
kernel's ``spark``). Each is measured ``--repeat`` times in fresh processes; the stages
(master answering, driver up, workers registered, first task) come from the personal runs.

Target (issue 14): the first task ≤ 20 s after ``spark`` is first used on the test hosts.

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

#: One measurement in a fresh process: ``personal`` or ``local``.
PROBE = r"""
import json, os, sys, time
t0 = time.monotonic()
marks = {}
from rtofs_lib import config
from rtofs_lib.jobs import spark as sparkmod
if sys.argv[1] == "personal":
    from rtofs_lib.jobs.personal import PersonalCluster
    cluster = PersonalCluster(settings=config.load()).start()
    marks["master answers"] = time.monotonic() - t0
    os.environ.update(cluster.driver_env())
    session = sparkmod.session(cluster.master_url, app_name="bench", **cluster.spark_conf())
    marks["driver up"] = time.monotonic() - t0
    cluster.wait_for_workers()
    marks["workers registered"] = time.monotonic() - t0
else:
    from rtofs_lib.notebook.kernel import local_master
    session = sparkmod.session(local_master(), app_name="bench")
    marks["driver up"] = time.monotonic() - t0
session.sparkContext.parallelize([1], 1).map(lambda x: x).collect()
marks["first task"] = time.monotonic() - t0
session.stop()
if sys.argv[1] == "personal":
    cluster.stop()
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
        f"export RTOFS_SPARK_LOCAL_DIR={tmp / 'scratch'}\n"
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
            runs: dict[str, list[dict[str, float]]] = {"local": [], "personal": []}
            for _ in range(args.repeat):  # interleaved: the machine's load hits both alike
                for mode in ("local", "personal"):
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
    for stage, value in med["personal"].items():
        print(f"  personal cluster: {stage:<20} {value:6.1f} s")
    base = med["local"]["first task"]
    first = med["personal"]["first task"]
    print(f"  local[N] baseline: first task          {base:6.1f} s")
    print(f"first task, personal cluster / local[N]: {first / base:.2f}x (target: <= 20 s)")


if __name__ == "__main__":
    main()
