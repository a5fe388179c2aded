"""Crawler throughput against plain ``curl`` from the same local NOMADS-like server.

One process: full-size prog files are written once (``synthetic``, grid ``full``) into a
cache folder, served by :class:`rtofs_lib.testing.nomads.NomadsServer` on loopback, then
fetched alternately by ``curl`` (one process, ``--parallel-max`` = the crawler's parallel
downloads) and by ``rtofs_lib.fetch.crawler`` with its default options (verification, SHA-256,
fsync, manifest; only the size floor is off because the server is local). Prints the best
time of each and the ratio; the target is an overhead of at most 10%.

Usage::

    .venv/bin/python benchmarks/bench_crawl.py [--files 4] [--repeat 3] [--parallel 2]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rtofs_lib.fetch import names
from rtofs_lib.fetch.crawler import CrawlOptions, crawl
from rtofs_lib.testing.nomads import NomadsServer

DATE = "20260708"
CACHE = Path(tempfile.gettempdir()) / "rtofs-bench-crawl"


def served_tree(files: int) -> tuple[Path, list[str]]:
    """Write (once) ``files`` full-size prog files; return the tree root and their names."""
    steps = names.STEPS_2DS[24 : 24 + files]  # n024, f000, f001, ...
    wanted = [names.compose_name("prog", s) for s in steps]
    day = CACHE / names.day_folder(DATE)
    if not all((day / n).exists() for n in wanted):
        from rtofs_lib.testing import sample

        print(f"writing {files} full-size prog files into {CACHE} (once) ...", flush=True)
        sample.write_sample(CACHE, DATE, steps=",".join(steps), grid="full")
    return CACHE, wanted


def run_curl(url: str, wanted: list[str], out: Path, parallel: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "curl",
        "--silent",
        "--show-error",
        "--fail",
        "--parallel",
        "--parallel-max",
        str(parallel),
    ]
    for n in wanted:
        cmd += ["-o", str(out / n), f"{url}{names.day_folder(DATE)}/{n}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"curl failed ({proc.returncode}): {proc.stderr}")
    return time.perf_counter() - t0


def run_crawler(url: str, wanted: list[str], archive: Path, options: CrawlOptions) -> float:
    steps = ",".join(names.parse_name(n).step for n in wanted)
    t0 = time.perf_counter()
    report = crawl(archive, DATE, base_url=url, steps=steps, options=options)
    elapsed = time.perf_counter() - t0
    if report.status != "complete":
        raise SystemExit(f"crawl did not complete:\n{report.summary()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if shutil.which("curl") is None:
        raise SystemExit("curl is missing: apt-get install curl (see scripts/setup.sh)")
    root, wanted = served_tree(args.files)
    day = root / names.day_folder(DATE)
    total = sum((day / n).stat().st_size for n in wanted)
    options = CrawlOptions(parallel=args.parallel, size_floors="off", progress="off")
    variants = {"crawler": options, "crawler, no fsync": replace(options, fsync=False)}
    best: dict[str, float] = {"curl": float("inf"), **{k: float("inf") for k in variants}}
    work = Path(tempfile.mkdtemp(prefix="rtofs-bench-crawl-"))
    try:
        with NomadsServer(root) as server:
            for _ in range(args.repeat):
                shutil.rmtree(work / "curl", ignore_errors=True)
                best["curl"] = min(
                    best["curl"], run_curl(server.url, wanted, work / "curl", args.parallel)
                )
                for label, opts in variants.items():
                    shutil.rmtree(work / "archive", ignore_errors=True)
                    best[label] = min(
                        best[label], run_crawler(server.url, wanted, work / "archive", opts)
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = total / 1e6
    print(f"{len(wanted)} files, {mb:.0f} MB, {args.parallel} parallel, best of {args.repeat}")
    for label, seconds in best.items():
        print(f"  {label:<18} {seconds:6.2f} s  {mb / seconds:7.0f} MB/s")
    ratio = best["crawler"] / best["curl"]
    print(
        f"crawler/curl time ratio {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%; target <= +10%)"
    )
    print(f"without fsync: ratio {best['crawler, no fsync'] / best['curl']:.3f}")


if __name__ == "__main__":
    main()
