"""Benchmark: both maps (low + high) of one full-size RTOFS prog file, per file.

Compares, on ONE full-size (4500 x 3298) real-format sample written by
``rtofs_lib.testing.sample``, each variant in a fresh subprocess (so peak RSS is its own):

* ``fast``  - :func:`rtofs_lib.maps.render.render_file` (palette-index path), grid index warm;
* ``seed``  - the seed's approach: xarray open, matplotlib ``Figure`` (no pyplot) with
  ``imshow`` + colorbar, saved at low (1500 px) and high (4500 px) width;
* ``floor`` - reading ``sst`` with netCDF4 plus encoding one palette PNG of that array.

The grid index is a one-off per grid: it is built (and cached on disk) in its own
subprocess first and its time reported apart. Targets: fast >= 10x faster than seed,
<= 1.5x floor, peak RSS <= 0.5 GB per file.

Run: ``.venv/bin/python benchmarks/bench_render.py [--repeat 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATE = "20260708"
STEP = "f024"
NAME = "rtofs_glo_2ds_f024_prog.nc"


def _rss_mb() -> float:
    """Peak RSS of this process in MB.

    ``VmHWM`` belongs to this process's own address space; ``ru_maxrss`` is carried over
    through ``exec`` on Linux, so a child would report its parent's peak if larger.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def variant_build(path: Path, cache: Path, out: Path, repeat: int) -> dict:
    """Build the grid index for both map sizes (tree + two queries), cached on disk."""
    from rtofs_lib.maps import render

    t0 = time.perf_counter()
    render.prepare(path, cache_dir=cache)
    return {"seconds": [time.perf_counter() - t0]}


def variant_fast(path: Path, cache: Path, out: Path, repeat: int) -> dict:
    """render_file with both sizes; the first call also loads the index and draws decorations."""
    from rtofs_lib.maps import render

    t0 = time.perf_counter()
    render.prepare(path, cache_dir=cache)  # loads the cached index (not part of per-file time)
    load = time.perf_counter() - t0
    times = []
    first = None
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        written = render.render_file(path, out / f"fast{i}", cache_dir=cache)
        dt = time.perf_counter() - t0
        if i == 0:
            first = dt  # includes the decorations, drawn once per process
        else:
            times.append(dt)
    sizes = [p.stat().st_size for p in written]
    return {"seconds": times, "first": first, "index_load": load, "bytes": sizes}


def variant_seed(path: Path, cache: Path, out: Path, repeat: int) -> dict:
    """The seed's way: xarray + matplotlib Figure/imshow/colorbar, low and high PNGs."""
    import cmocean
    import numpy as np
    import xarray as xr
    from matplotlib.figure import Figure

    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        with xr.open_dataset(path) as ds:
            sst = ds["sst"].isel(MT=0, Y=slice(0, -1)).values
            lon = ds["Longitude"].values[0, :]
            lat = ds["Latitude"].values[:-1, 0]
        for width_px, name in ((1500, "low"), (4500, "high")):
            dpi = 100
            fig = Figure(figsize=(width_px / dpi, width_px / dpi / 2), dpi=dpi)
            ax = fig.add_subplot()
            im = ax.imshow(
                sst,
                origin="lower",
                extent=(float(lon[0]), float(lon[-1]), float(lat[0]), float(lat[-1])),
                cmap=cmocean.cm.thermal,
                vmin=-2,
                vmax=32,
                interpolation="nearest",
                aspect="auto",
            )
            ax.set_facecolor("0.8")
            fig.colorbar(im, ax=ax, orientation="horizontal", label="°C", shrink=0.6)
            ax.set_title(f"Sea surface temperature {STEP}")
            fig.savefig(out / f"seed{i}.{name}.png")
            del fig, ax, im
        del sst
        times.append(time.perf_counter() - t0)
        assert np.isfinite(times[-1])
    return {"seconds": times}


def variant_floor(path: Path, cache: Path, out: Path, repeat: int) -> dict:
    """Read sst with netCDF4, scale to uint8 in one pass, encode one palette PNG."""
    import netCDF4
    import numpy as np
    from PIL import Image

    pal = bytes(range(256)) * 3
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        with netCDF4.Dataset(path) as nc:
            var = nc.variables["sst"]
            var.set_auto_maskandscale(False)
            sst = var[0, :-1, :]
        q = np.clip((sst - np.float32(-2)) * np.float32(240 / 34), 0, 240).astype(np.uint8)
        image = Image.fromarray(q)
        image.putpalette(pal)
        image.save(out / f"floor{i}.png", compress_level=1)
        times.append(time.perf_counter() - t0)
    return {"seconds": times}


VARIANTS = {
    "build": variant_build,
    "fast": variant_fast,
    "seed": variant_seed,
    "floor": variant_floor,
}


def _child(args: argparse.Namespace) -> None:
    result = VARIANTS[args.variant](Path(args.file), Path(args.cache), Path(args.out), args.repeat)
    result["peak_rss_mb"] = _rss_mb()
    print("RESULT " + json.dumps(result))


def _run(variant: str, path: Path, cache: Path, out: Path, repeat: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--file",
        str(path),
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--repeat",
        str(repeat),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_render: variant {variant} failed:\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    """Write the sample, run every variant in its own process, print times and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per variant (seed: 1)")
    ap.add_argument("--keep", help="folder to keep the sample, cache and PNGs in")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.variant = args.child
        _child(args)
        return

    from rtofs_lib.testing import sample

    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        folder = root / f"rtofs.{DATE}"
        path = folder / NAME
        cache, out = root / "cache", root / "out"
        out.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            t0 = time.perf_counter()
            sample.write_file(path, "prog", DATE, STEP, grid="full")
            print(
                f"sample: {path} ({path.stat().st_size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        res = {}
        shutil.rmtree(cache, ignore_errors=True)  # time a real build
        res["build"] = _run("build", path, cache, out, 1)
        for name in ("floor", "fast", "seed"):
            res[name] = _run(name, path, cache, out, 1 if name == "seed" else args.repeat)

    med = {k: statistics.median(v["seconds"]) for k, v in res.items()}
    print(
        f"grid index build (one-off per grid, both sizes): {med['build']:.2f} s, "
        f"peak RSS {res['build']['peak_rss_mb']:.0f} MB"
    )
    print(
        f"fast: first file in a process {res['fast']['first']:.3f} s (draws decorations), "
        f"index load {res['fast']['index_load']:.3f} s; PNG bytes {res['fast']['bytes']}"
    )
    print(f"{'variant':8} {'per file (low+high)':>20} {'peak RSS':>10}")
    for name in ("fast", "seed", "floor"):
        print(f"{name:8} {med[name]:>18.3f} s {res[name]['peak_rss_mb']:>7.0f} MB")
    speedup = med["seed"] / med["fast"]
    over_floor = med["fast"] / med["floor"]
    rss_gb = res["fast"]["peak_rss_mb"] / 1024
    print(f"seed / fast  = {speedup:5.1f}x   (target >= 10)  {'OK' if speedup >= 10 else 'MISS'}")
    print(
        f"fast / floor = {over_floor:5.2f}x   (target <= 1.5) "
        f"{'OK' if over_floor <= 1.5 else 'MISS'}"
    )
    print(f"fast peak RSS = {rss_gb:.2f} GB (target <= 0.5)  {'OK' if rss_gb <= 0.5 else 'MISS'}")


if __name__ == "__main__":
    main()
