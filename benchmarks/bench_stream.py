"""Latency of the live pipeline: landed → published per file, with 1 and 2 executors.

Part 1, for real: the NOMADS-like server (:mod:`rtofs_lib.testing.nomads`) publishes a
sample day's full-size prog files (4500 × 3298) in waves, as NOAA does (compressed: NOAA's
waves put 25–73 files on the server over ~10 minutes); ``rtofs crawl --follow`` and
``rtofs stream --master local[N]`` run as processes. For each file the landed time comes
from its landed record (the crawler's rename) and the published time from the day's
``index.json`` (maps written and listed). The stream has been running before the day
starts: it renders one file of the previous day first (a long-running service's Python
workers hold the grid index; the grid cache is built beforehand, as the service's is).

Part 2, throughput in one process and one warm SparkSession: ``rtofs run`` (the run-once
mode, ``Trigger.AvailableNow``) on the day's files (best of a run before and one after)
against the running stream taking the same files landing all at once (landed → last
published).

Targets (2-core machine): p95 landed → published ≤ 10 s; the day complete ≤ 30 s after its
last file lands; stream throughput within 10% of ``rtofs run``.

Usage::

    .venv/bin/python benchmarks/bench_stream.py [--files 24] [--waves 6,6,6,6] [--gap 20]
        [--executors 1,2] [--trigger 1] [--grid full] [--data DIR] [--skip-live]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rtofs_lib import config
from rtofs_lib.fetch import landed, names
from rtofs_lib.jobs import pipeline, stream, work
from rtofs_lib.jobs import spark as sparkmod
from rtofs_lib.testing import sample
from rtofs_lib.testing.nomads import NomadsServer, publish

DATE = "20260708"
WARM_DATE = "20260707"
#: Files of the day before that the stream renders first (so each Python worker has one).
WARM_FILES = 4
RTOFS = str(Path(sys.executable).with_name("rtofs"))


def sources(data: Path, n: int, grid: str) -> list[Path]:
    """``n`` sample prog files of DATE (and one of WARM_DATE), written once into ``data``."""
    steps = names.expand_steps("f000-f072", "prog")[:n]
    for date, want in ((DATE, steps), (WARM_DATE, steps[:WARM_FILES])):
        folder = data / names.day_folder(date)
        missing = [s for s in want if not (folder / names.compose_name("prog", s)).exists()]
        if missing:
            t = time.perf_counter()
            sample.write_sample(data, date, steps=",".join(missing), grid=grid)
            print(f"wrote {len(missing)} {grid} files in {time.perf_counter() - t:.0f} s")
    return [data / names.day_folder(DATE) / names.compose_name("prog", s) for s in steps]


def stamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def index(maps: Path, date: str) -> dict:
    try:
        return json.loads((maps / names.day_folder(date) / "index.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_listed(maps: Path, date: str, n: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(index(maps, date).get("steps", [])) + len(index(maps, date).get("failed", [])) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"stream stopped or timed out; see {proc.args}")
        time.sleep(0.2)


def live_run(files: list[Path], data: Path, cache: Path, executors: int, args) -> dict:
    """Part 1: server → crawl --follow → stream, all real processes."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-stream-{executors}-"))
    archive, maps, served = root / "archive", root / "maps", root / "nomads"
    served.mkdir()
    env = {**os.environ, "RTOFS_SPARK_LOCAL_DIR": str(root / "scratch"), "RTOFS_CONFIG": ""}
    log = open(root / "stream.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [RTOFS, "stream", "--archive", str(archive), "--maps", str(maps), "--cache", str(cache),
         "--checkpoint", str(root / "checkpoint"), "--master", f"local[{executors}]",
         "--trigger", str(args.trigger)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        # the service was running before: files of the day before, rendered (warm workers)
        day = archive / names.day_folder(WARM_DATE)
        day.mkdir(parents=True)
        for f in files[:WARM_FILES]:
            shutil.copyfile(data / names.day_folder(WARM_DATE) / f.name, day / f.name)
        for f in files[:WARM_FILES]:
            landed.write_record(archive, day / f.name)
        wait_listed(maps, WARM_DATE, WARM_FILES, proc, 300)
        with NomadsServer(served) as server:
            publisher = publish(files, served, DATE, waves=args.waves, gap=args.gap, delay=1.0)
            crawl = subprocess.run(
                [RTOFS, "crawl", "--follow", "--interval", "1", "--date", DATE,
                 "--steps", ",".join(names.parse_name(f.name).step for f in files),
                 "--archive", str(archive), "--base-url", server.url, "--size-floor", "off",
                 "--deadline", "15m", "--progress", "off"],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            publisher.wait(60)
        if crawl.returncode != 0:
            raise SystemExit(f"crawl failed ({crawl.returncode}):\n{crawl.stdout}{crawl.stderr}")
        wait_listed(maps, DATE, len(files), proc, 300)
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()
    records = {r.name: stamp(r.landed) for r in landed.read_records(archive, [DATE])}
    doc = index(maps, DATE)
    published = {f"{s['stem']}.nc": stamp(s["published"]) for s in doc["steps"]}
    if doc.get("failed"):
        raise SystemExit(f"files failed: {doc['failed']}")
    lat_of = {n: (published[n] - records[n]).total_seconds() for n in published}
    lat = list(lat_of.values())
    last_landed, last_published = max(records.values()), max(published.values())
    out = {
        "executors": executors,
        "n": len(lat),
        "p50": statistics.median(lat),
        "p95": pct(lat, 0.95),
        "max": max(lat),
        "complete_after_last": (last_published - last_landed).total_seconds(),
    }
    if args.verbose:
        for n in sorted(published, key=lambda n: records[n]):
            print(f"  {n}: landed {records[n]:%H:%M:%S.%f} latency {lat_of[n]:.1f} s")
    print(
        f"local[{executors}]: {out['n']} files, landed → published p50 {out['p50']:.1f} s, "
        f"p95 {out['p95']:.1f} s, max {out['max']:.1f} s; day complete "
        f"{out['complete_after_last']:.1f} s after its last file landed"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


def timed_run(maps: Path, kw: dict) -> float:
    t = time.perf_counter()
    report = pipeline.run(DATE, maps=maps, force=True, **kw)
    wall = time.perf_counter() - t
    assert report.exit_status == 0, report.summary()
    return wall


def throughput(files: list[Path], cache: Path, executors: int, trigger: float) -> dict:
    """Part 2: ``rtofs run`` against the stream on the same files, one warm session."""
    root = Path(tempfile.mkdtemp(prefix="bench-stream-tp-"))
    archive = root / "archive"
    day = archive / names.day_folder(DATE)
    day.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, day / f.name)
    settings = config.Settings(spark_local_dir=str(root / "scratch"))
    session = sparkmod.session(f"local[{executors}]", app_name="bench-stream", settings=settings)
    try:
        kw = dict(archive=archive, cache_dir=cache, spark=session, settings=settings)
        pipeline.run(DATE, maps=root / "warm", **kw)  # warm the Python workers
        run_wall = timed_run(root / "run", kw)
        shutil.rmtree(archive / landed.LANDED_DIR)  # the stream sees the files land anew
        job = pipeline.Job(archive=archive, maps=root / "stream", cache=cache, fields=("sst",))
        src = str(landed.landed_dir(archive).resolve())
        landed.landed_dir(archive).mkdir()
        query = stream.start_query(
            session,
            src,
            root / "checkpoint",
            lambda recs, _: job.handle(recs, session),
            trigger=trigger,
        )
        time.sleep(3)  # the query's first (empty) trigger
        t = time.perf_counter()
        for f in files:
            landed.write_record(archive, day / f.name)
        while len(index(root / "stream", DATE).get("steps", [])) < len(files):
            time.sleep(0.1)
        stream_wall = time.perf_counter() - t
        query.stop()
        run_wall = min(run_wall, timed_run(root / "run-again", kw))  # best of before and after
    finally:
        session.stop()
        shutil.rmtree(root, ignore_errors=True)
    n = len(files)
    print(
        f"throughput local[{executors}]: rtofs run {60 * n / run_wall:.1f} files/min, "
        f"stream {60 * n / stream_wall:.1f} files/min: "
        f"stream/run time {stream_wall / run_wall:.3f}×"
    )
    return {"run": run_wall, "stream": stream_wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--waves", default="6,6,6,6", help="files per wave")
    ap.add_argument("--gap", type=float, default=20.0, help="seconds between waves")
    ap.add_argument("--executors", default="1,2", help="local[N] values to measure")
    ap.add_argument("--grid", default="full")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "rtofs-bench-stream")
    ap.add_argument("--trigger", type=float, default=1.0, help="the stream's trigger (s)")
    ap.add_argument("--skip-live", action="store_true", help="only the throughput part")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the run folders (logs)")
    ap.add_argument("--verbose", action="store_true", help="print every file's latency")
    args = ap.parse_args()
    args.waves = [int(x) for x in args.waves.split(",")]
    if sum(args.waves) != args.files:
        raise SystemExit(f"--waves {args.waves} must add up to --files {args.files}")
    files = sources(args.data, args.files, args.grid)
    cache = args.data / "cache"
    work.prepare_grid(files[0], cache_dir=cache)
    print(
        f"{args.files} {args.grid} files in waves of {args.waves}, {args.gap:.0f} s apart; "
        f"trigger {args.trigger:g} s; {os.cpu_count()} cores"
    )
    if not args.skip_live:
        results = [
            live_run(files, args.data, cache, int(n), args) for n in args.executors.split(",")
        ]
        worst = max(r["p95"] for r in results)
        print(f"target p95 ≤ 10 s: {'met' if worst <= 10 else 'MISSED'} (worst {worst:.1f} s)")
        done = max(r["complete_after_last"] for r in results)
        print(
            f"target day complete ≤ 30 s after the last file: {'met' if done <= 30 else 'MISSED'}"
        )
    if not args.skip_throughput:
        tp = throughput(files, cache, 2, args.trigger)
        ratio = tp["stream"] / tp["run"]
        verdict = "met" if ratio <= 1.1 else "MISSED"
        print(f"target stream within 10% of rtofs run: {verdict} ({ratio:.3f}×)")


if __name__ == "__main__":
    main()
