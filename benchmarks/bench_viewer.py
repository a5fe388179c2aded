"""Benchmark: how fast the SST viewer answers, driven programmatically on full-size files.

On a sample day of full-size (4500 x 3298) real-format prog files written by
``rtofs_lib.testing.sample`` (or ``--archive``), one
:class:`rtofs_lib.notebook.viewer.SSTViewer` is
driven the way a person drives it, and each widget change is timed until the new PNG is
in the Image widget:

* ``slider step``: the step slider moved one step at a time at Play's pace (``--pause``
  between steps, the read-ahead thread working meanwhile), maps drawn on demand;
* ``slider step, back-to-back``: the same without a pause (read-ahead cannot keep up:
  most steps wait for their file to be read);

The viewer's field memory (``--cache-mb``) is kept below the day's size and emptied
before each series, so every pass reads the files again.
* ``slider step, pre-rendered``: with the maps of ``render_file`` present;
* ``region zoom``: each region preset at full resolution (``high``, 0.08° or finer).

Baseline, in the same process: what one step costs without the viewer's caches
(``read_field`` + ``render_array`` + PNG encode). The grid index is a one-off per grid
(built, or loaded from the cache, by ``SSTViewer.prepare``) and reported apart.
Targets: slider step p95 <= 250 ms, region zoom p95 <= 500 ms.

Run: ``.venv/bin/python benchmarks/bench_viewer.py [--steps n024,f001-f005] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATE = "20260708"
TARGET_STEP = 0.250
TARGET_ZOOM = 0.500


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(0.95 * len(ordered) + 0.5) - 1))]


def timed(action) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def summary(name: str, seconds: list[float], target: float | None = None) -> dict:
    row = {
        "name": name,
        "n": len(seconds),
        "p50_ms": statistics.median(seconds) * 1000,
        "p95_ms": p95(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
    }
    if target is not None:
        row["target_ms"] = target * 1000
        row["met"] = p95(seconds) <= target
    return row


def drive_steps(v, rounds: int, pause: float, expect: str) -> list[float]:
    """Move the slider forward through every step ``rounds`` times; time each move."""
    n = len(v.steps)
    out = []
    for _ in range(rounds):
        for k in [*range(1, n), 0]:
            if pause:
                time.sleep(pause)
            before = v.image.value
            out.append(timed(lambda k=k: setattr(v.slider, "value", k)))
            if v.error or v.image.value == before or v.last.get("source") != expect:
                sys.exit(f"step {k}: no new {expect} map ({v.error or v.last})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, help="archive with the day (default: write one)")
    ap.add_argument("--date", default=DATE)
    ap.add_argument("--steps", default="n024,f001-f005", help="steps of the sample day")
    ap.add_argument("--grid", default="full", help="sample grid (full, small, NYxNX)")
    ap.add_argument("--rounds", type=int, default=2, help="passes over the steps")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between slider steps")
    ap.add_argument(
        "--cache-mb",
        type=int,
        default=200,
        help="viewer memory for decoded fields (default: 3 full-size fields, less "
        "than the day, so every pass reads the files again)",
    )
    ap.add_argument("--cache", type=Path, help="grid-index cache (default: a temporary one)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    import numpy as np

    from rtofs_lib.fetch import catalog
    from rtofs_lib.fields import netcdf
    from rtofs_lib.fields.grid import Grid
    from rtofs_lib.maps import render
    from rtofs_lib.notebook import viewer as viewers
    from rtofs_lib.notebook.viewer import images
    from rtofs_lib.testing import sample

    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        tmp = Path(tmp)
        archive = args.archive
        if archive is None:
            archive = tmp / "archive"
            t = timed(lambda: sample.write_sample(archive, args.date, steps=args.steps,
                                                     grid=args.grid))  # fmt: skip
            print(f"wrote sample day {args.date} ({args.steps}, grid {args.grid}) in {t:.1f} s")
        cache = args.cache or tmp / "cache"
        maps = tmp / "maps"
        files = catalog.day_files(archive, args.date, "prog")
        results: dict = {"files": len(files), "grid": args.grid, "pause_s": args.pause}

        opened = {}
        t_open = timed(
            lambda: opened.setdefault(
                "v",
                viewers.SSTViewer(
                    archive, maps=maps, date=args.date, cache_dir=cache, cache_mb=args.cache_mb
                ),
            )
        )
        v = opened["v"]
        if v.error:
            sys.exit(f"viewer failed to open: {v.error}")
        t_prep = timed(v.prepare)
        v.wait_prefetch()
        shape = v.source.field(files[0], "sst", None).values.shape
        print(f"{len(files)} files, grid {shape[1]}x{shape[0] + 1}; viewer opened in "
              f"{t_open:.1f} s, grid indices (globe + {len(viewers.REGION_PRESETS) - 1} "
              f"regions, low+high) ready in {t_prep:.1f} s (one-off per grid)")  # fmt: skip
        results.update(open_s=t_open, prepare_s=t_prep)

        # baseline: a step without the viewer's caches (read + render + encode)
        grid = Grid.of_file(files[0], cache)
        base = []
        for path in files:

            def one(path=path):
                f = netcdf.read_field(path, "sst", grid=False)
                img = render.render_array(f.values, grid, field="sst", valid_time=f.valid_time,
                                          step=f.step)  # fmt: skip
                images.png_bytes(img)

            base.append(timed(one))
        rows = [summary("baseline: read + render + encode (no caches)", base)]

        v.clear_cache()
        rows.append(
            summary(
                "slider step (on demand, read-ahead)",
                drive_steps(v, args.rounds, args.pause, "rendered"),
                TARGET_STEP,
            )
        )
        v.clear_cache()
        rows.append(summary("slider step, back-to-back (no pause)",
                            drive_steps(v, args.rounds, 0.0, "rendered")))  # fmt: skip

        day_maps = maps / f"rtofs.{args.date}"
        v.wait_prefetch()  # netCDF/HDF5 is not thread-safe: no read-ahead while rendering
        for path in files:
            render.render_file(path, day_maps, sizes=("low",), cache_dir=cache)
        rows.append(
            summary(
                "slider step (pre-rendered maps)",
                drive_steps(v, args.rounds, 0.0, "pre-rendered"),
                TARGET_STEP,
            )
        )
        for path in files:  # back to on-demand drawing for the zooms
            for png in (day_maps / path.name.removesuffix(".nc")).glob("*.png"):
                png.unlink()

        zooms = []
        for _ in range(args.rounds):
            for name in viewers.REGION_PRESETS:
                if name == "Global":
                    continue
                with v._hold():
                    v.region.value = "Global"
                    v.size.value = "high"
                before = v.image.value
                zooms.append(timed(lambda name=name: setattr(v.region, "value", name)))
                if v.error or v.image.value == before:
                    sys.exit(f"zoom to {name}: no new map ({v.error})")
        rows.append(summary("region zoom, full resolution (presets)", zooms, TARGET_ZOOM))
        with v._hold():
            v.region.value = viewers.CUSTOM
        cold = timed(lambda: setattr(v.box, "value", "-30,-10,35,45"))  # index not prepared
        rows.append(summary("region zoom, new custom box (index query)", [cold]))

        print(f"\n{'':46} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target")
        for r in rows:
            verdict = ""
            if "target_ms" in r:
                verdict = f"p95 <= {r['target_ms']:.0f} ms: {'met' if r['met'] else 'MISSED'}"
            print(f"{r['name']:46} {r['n']:3d} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} "
                  f"{r['max_ms']:8.1f}  {verdict}")  # fmt: skip
        base_p50 = rows[0]["p50_ms"]
        for r in rows[1:4]:
            print(f"speed-up of {r['name']!r} over the baseline (p50): "
                  f"{base_p50 / r['p50_ms']:.1f}x")  # fmt: skip
        print(f"read-ahead: {v.source.cache.hits} hits, {v.source.cache.misses} misses")
        results["rows"] = rows
        results["numpy"] = np.__version__
        v.close()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
        return 0 if all(r.get("met", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
