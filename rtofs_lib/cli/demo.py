"""``rtofs demo``: the live pipeline on one machine, on sample data, ending by itself.

A sample day is published file by file on a local NOMADS-like server (in waves, as NOAA
publishes); ``rtofs crawl --follow`` fetches each file as it appears; ``rtofs stream``
(Spark in local mode) renders and publishes each file as it lands; the dashboard is served
on loopback and fills without a reload. When every file is published the demo stops and
prints the landed → published latency of the day.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

#: Steps of the demo day: the nowcast and the first forecast day, hourly.
DEMO_STEPS = "n024,f000-f024"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="the live pipeline on a sample day: publish, crawl, stream, dashboard",
        description=(
            "Publish a synthetic day of real-format RTOFS prog files on a local NOMADS-like "
            "server in waves, crawl it with --follow into OUT/archive, render and publish each "
            "file as it lands with the stream (Spark in local mode) into OUT/maps, serve the "
            "live dashboard on loopback, and print the latency figures when the day is done."
        ),
    )
    p.add_argument("--out", default="rtofs-demo", help="folder for the demo (default ./rtofs-demo)")
    p.add_argument("--grid", default="small", help="small (330x450), full (3298x4500) or NYxNX")
    p.add_argument("--steps", default=DEMO_STEPS, help=f"steps to make (default {DEMO_STEPS})")
    p.add_argument("--date", help="cycle day YYYYMMDD (default: today, UTC)")
    p.add_argument("--fields", default="sst", help="fields to draw (default sst)")
    p.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    p.add_argument("--wave", type=int, default=5, help="files per publication wave (default 5)")
    p.add_argument("--gap", type=float, default=2.0, help="seconds between waves (default 2)")
    p.add_argument("--port", type=int, default=8092, help="dashboard port on 127.0.0.1 (0: none)")
    p.set_defaults(func=run_demo)


def _samples(out: Path, date: str, steps: list[str], grid: str) -> list[Path]:
    """The day's sample files, written once into OUT/samples."""
    from rtofs_lib.fetch import names
    from rtofs_lib.testing import sample

    folder = out / "samples" / names.day_folder(date)
    files = [folder / names.compose_name("prog", s) for s in steps]
    missing = [s for s, f in zip(steps, files, strict=True) if not f.exists()]
    if missing:
        print(f"writing {len(missing)} sample files ({grid} grid) ...", flush=True)
        sample.write_sample(out / "samples", date, steps=",".join(missing), grid=grid)
    return files


def serve_command(out: Path, port: int) -> list[str]:
    """``rtofs dashboard serve`` over the demo's folders (archive, maps, cube, cache)."""
    return [sys.executable, "-m", "rtofs_lib", "dashboard", "serve", "--port", str(port),
            "--maps", str(out / "maps"), "--archive", str(out / "archive"),
            "--cube", str(out / "cube"), "--cache", str(out / "cache")]  # fmt: skip


def _dashboard(out: Path, port: int) -> subprocess.Popen | None:
    if not port:
        return None
    (out / "maps").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        serve_command(out, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    print(f"live dashboard: http://127.0.0.1:{port}/ (the map; fills without a reload)", flush=True)
    return proc


def _all_published(maps: Path, date: str, n: int) -> bool:
    import json

    from rtofs_lib.fetch import names

    try:
        doc = json.loads((maps / names.day_folder(date) / "index.json").read_text())
    except (OSError, ValueError):
        return False
    return len(doc.get("steps", [])) + len(doc.get("failed", [])) >= n


def latency_lines(maps: Path, date: str) -> list[str]:
    """The day's landed → published figures from its ``index.json``."""
    import json

    from rtofs_lib.fetch import names
    from rtofs_lib.jobs import page

    doc = json.loads((maps / names.day_folder(date) / "index.json").read_text())
    s = page.latency_summary(doc.get("steps", []))
    figures = (
        f"median {s['median']:.1f} s, p95 {s['p95']:.1f} s, max {s['max']:.1f} s "
        f"over {s['n']} files"
        if s
        else "no landed times known"
    )
    return [f"landed → published: {figures}"] + [
        f"failed: {f['file']}: {f['error']}" for f in doc.get("failed", [])
    ]


def run_demo(args: argparse.Namespace) -> int:
    """Publish, crawl and stream the sample day; return when every file is published."""
    from rtofs_lib import config
    from rtofs_lib.cli.run import print_progress
    from rtofs_lib.fetch import names
    from rtofs_lib.fetch.crawler import CrawlOptions, crawl
    from rtofs_lib.jobs import stream, work
    from rtofs_lib.status import ExitStatus
    from rtofs_lib.testing.nomads import NomadsServer, publish

    out = Path(args.out).expanduser().resolve()
    archive, maps, served = out / "archive", out / "maps", out / "nomads"
    date = args.date or f"{dt.datetime.now(dt.UTC):%Y%m%d}"
    steps = names.expand_steps(args.steps, "prog")
    files = _samples(out, date, steps, args.grid)
    todo = [f for f in files if not (served / names.day_folder(date) / f.name).exists()]
    served.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(config.load(), cube=out / "cube")  # the demo's own cube
    work.prepare_grid(files[0], cache_dir=out / "cache")  # as a running service's cache is
    stop, crawled = threading.Event(), {}
    dashboard = _dashboard(out, args.port)
    with NomadsServer(served) as server:
        waves = [min(args.wave, len(todo) - i) for i in range(0, len(todo), args.wave)]
        publisher = []

        def crawl_then_wait() -> None:
            options = CrawlOptions(follow_interval=0.5, progress="off", deadline=600)
            crawled["report"] = crawl(
                archive, date, base_url=server.url, products="prog", steps=",".join(steps),
                options=options, follow=True,
            )  # fmt: skip
            while not stop.is_set() and not _all_published(maps, date, len(steps)):
                stop.wait(0.2)
            stop.set()

        def start_publishing() -> None:  # once the stream runs: files land one by one
            if todo:
                publisher.append(publish(todo, served, date, waves=waves, gap=args.gap))
            threading.Thread(target=crawl_then_wait, name="rtofs-demo-crawl", daemon=True).start()

        report = stream.stream(
            archive=archive, maps=maps, cache_dir=out / "cache", checkpoint=out / "checkpoint",
            master=args.master, fields=args.fields, trigger="0.5", progress=print_progress,
            on_start=start_publishing, stop=stop, settings=settings,
        )  # fmt: skip
        for p in publisher:
            p.stop()
    if dashboard is not None:
        dashboard.terminate()
    crawl_report = crawled.get("report")
    if crawl_report is not None:
        print(crawl_report.summary())
    if report.error or not _all_published(maps, date, len(steps)):
        print(f"rtofs demo: the stream stopped early: {report.error}", file=sys.stderr)
        return ExitStatus.FAILED
    for line in latency_lines(maps, date):
        print(line)
    print(f"\nOpen the dashboard: {(maps / 'index.html').as_uri()}")
    serve = " ".join(["rtofs", *serve_command(out, args.port or 8092)[3:]])
    print(f"or serve the zoomable map: {serve}")
    return ExitStatus.OK
