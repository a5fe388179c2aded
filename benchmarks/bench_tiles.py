"""Tile latency of the dashboard's map on full-size (4500x3298) files, through HTTP.

One run: ``rtofs dashboard serve`` over full-size prog files (the files of
``bench_cube.py``, written once), a fresh tile cache, then, each a latency of one HTTP
request measured in this process:

* **first tile of a step**: the step's field is read from its netCDF file (once per step and
  field; the service keeps it in memory and reads the next step ahead);
* **uncached tiles**: a realistic mix of zooms (1 to the deepest) and places (Humboldt
  Current, Gulf Stream, dateline, the 74°E seam, the Arctic, Southern Ocean, the
  Mediterranean), each tile asked for the first time (not in memory or on disk), its field in
  memory;
* **cached tiles**: the same tiles again (memory);
* **disk**: a restarted service serving the same tiles from its disk cache; this one reads
  fields from the cube (the pipeline appends every file to it), so its **first tile of a
  step** is measured again;
* **browser** (``bench_tiles_browser.py``): a viewport of about 24 tiles after a step change
  and click → series, from the page's own performance marks, in headless Chromium.

Targets on a 2-core machine (issue 16): uncached p95 <= 100 ms, cached p95 <= 10 ms, a
viewport after a step change <= 1 s, click → series <= 1 s.

Usage::

    .venv/bin/python benchmarks/bench_tiles.py [--files 8] [--no-browser]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from bench_cube import files_on_disk  # the same full-size files (same folder)

from rtofs_lib.maps import tiles

CACHE = Path(tempfile.gettempdir()) / "rtofs-bench-tiles"
DATE = "20260708"
#: (name, lon, lat) of the places in the mix.
PLACES = [
    ("Humboldt", -75.0, -30.0), ("Gulf Stream", -65.0, 38.0), ("dateline", 180.0, 20.0),
    ("74E seam", 74.0, -10.0), ("Arctic", 0.0, 82.0), ("Bering", -170.0, 66.0),
    ("Southern Ocean", 30.0, -60.0), ("Mediterranean", 15.0, 37.0),
]  # fmt: skip


def mix(deepest: int) -> list[tuple[int, int, int]]:
    """Tiles of the mix: at each zoom 1 … deepest, the 3 x 2 tiles around each place."""
    out: list[tuple[int, int, int]] = []
    for z in range(1, deepest + 1):
        n = 1 << z
        for _, lon, lat in PLACES:
            col, row = tiles.lonlat_pixel(lon, lat, z)
            x0, y0 = col // tiles.TILE, row // tiles.TILE
            for dx in (-1, 0, 1):
                for dy in (0, 1):
                    t = (z, (x0 + dx) % n, min(max(y0 + dy, 0), n - 1))
                    if t not in out:
                        out.append(t)
    return out


def percentiles(ms: list[float]) -> str:
    a = np.array(ms)
    return (f"p50 {np.percentile(a, 50):.1f} ms, p95 {np.percentile(a, 95):.1f} ms, "
            f"max {a.max():.1f} ms over {len(a)}")  # fmt: skip


#: One connection kept alive, as a browser keeps it.
SESSION = requests.Session()


def get(url: str) -> float:
    """Milliseconds of one GET (checked: 200 and a PNG)."""
    t0 = time.perf_counter()
    r = SESSION.get(url, timeout=600)
    ms = (time.perf_counter() - t0) * 1e3
    if r.status_code != 200 or not r.content.startswith(b"\x89PNG"):
        raise SystemExit(f"{url}: {r.status_code} {r.text[:200]}")
    return ms


class Server:
    def __init__(self, archive: Path, work: Path, port: int, cube: Path | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, "-m", "rtofs_lib", "dashboard", "serve", "--port", str(port),
               "--archive", str(archive), "--maps", str(work / "maps"),
               "--cache", str(CACHE / "cache"), "--tile-cache", str(work / "tiles"),
               "--cube", str(cube or work / "no-cube")]  # fmt: skip
        self.log = (work / "serve.log").open("a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 900
        while True:
            try:
                if requests.get(self.url + "api/layers.json", timeout=900).ok:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the dashboard did not start; see {work / 'serve.log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main() -> None:
    from rtofs_lib.testing.cluster import free_port

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8, help="full-size files of one cycle (8)")
    ap.add_argument("--archive", type=Path, default=CACHE.parent / "rtofs-bench-cube" / "archive")
    ap.add_argument("--no-browser", action="store_true", help="skip the headless Chromium part")
    args = ap.parse_args()
    paths = files_on_disk(args.archive, args.files)
    steps = [p.name.split("_")[3] for p in paths]
    work = Path(tempfile.mkdtemp(prefix="rtofs-bench-tiles-"))
    (CACHE / "cache").mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        server = Server(args.archive, work, free_port())
        layers = requests.get(server.url + "api/layers.json", timeout=600).json()
        deepest = layers["max_zoom"]
        t_index = time.perf_counter()
        get(server.url + f"tiles/{DATE}/{steps[0]}/sst/0/0/0.png")  # the tile index, once a grid
        print(f"service up {t_index - t0:.1f} s; tile index + first field "
              f"{time.perf_counter() - t_index:.1f} s (the index is built once per grid and "
              f"cached; deepest zoom {deepest})")  # fmt: skip

        base = server.url + f"tiles/{DATE}/{{step}}/sst/{{z}}/{{x}}/{{y}}.png"
        first = [get(base.format(step=s, z=2, x=1, y=1)) for s in steps[1:]]
        print(f"first tile of a step (reads the field, 0.3 s at full size): {percentiles(first)}")

        wanted = mix(deepest)
        step = steps[-1]  # its field is in memory now; none of these tiles is
        uncached = [get(base.format(step=step, z=z, x=x, y=y)) for z, x, y in wanted]
        cached = [get(base.format(step=step, z=z, x=x, y=y)) for z, x, y in wanted]
        print(f"uncached tiles (zooms 1-{deepest}, {len(PLACES)} places): {percentiles(uncached)}"
              f"  [target p95 <= 100 ms]")  # fmt: skip
        print(f"cached tiles (memory): {percentiles(cached)}  [target p95 <= 10 ms]")
        print(f"  ratio uncached/cached p95: "
              f"{np.percentile(uncached, 95) / np.percentile(cached, 95):.1f}x")  # fmt: skip
        server.stop()

        from rtofs_lib.cube import store

        cube = CACHE / "cube"
        for path in store.missing(paths, cube):  # what the pipeline does after each file
            store.append(path, cube, ["sst"])
        server = Server(args.archive, work, free_port(), cube)  # memory gone, disk cache stays
        base = server.url + f"tiles/{DATE}/{{step}}/sst/{{z}}/{{x}}/{{y}}.png"
        disk = [get(base.format(step=step, z=z, x=x, y=y)) for z, x, y in wanted]
        print(f"restarted service, tiles from its disk cache: {percentiles(disk)}")
        first = [get(base.format(step=s, z=3, x=2, y=2)) for s in steps]
        print(f"first tile of a step, the field from the cube: {percentiles(first)}")
        if not args.no_browser:
            from bench_tiles_browser import browser_figures

            f = browser_figures(server.url)  # the restarted service: no field in memory yet
            print(f"browser, viewport after a step change ({f['viewport_tiles_median']} tiles, "
                  f"{f['step_changes']} changes, each step's field read then): median "
                  f"{f['viewport_ms_median']:.0f} ms, max {f['viewport_ms_max']:.0f} ms  "
                  "[target <= 1000 ms]")  # fmt: skip
            print(f"  each change, ms (sst steps in order, then sss: not in the cube): "
                  f"{f['viewport_ms']}")  # fmt: skip
            print(f"browser, click -> series ({f['series_clicks']} clicks, from the cube): "
                  f"median {f['series_ms_median']} ms, max {f['series_ms_max']} ms  "
                  "[target <= 1000 ms]")  # fmt: skip
        server.stop()
    except BaseException:
        print(f"the service's log: {work / 'serve.log'}", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
