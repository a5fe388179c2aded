"""Time the reader's fast path and the regrid index on a full-size (4500x3298) file.

Prints seconds and ratios against baselines run in the same process:

* reading ``sst``: :func:`rtofs_lib.fields.netcdf.read_field` (netCDF4, auto-mask off, compare
  with the fill value) against netCDF4's default masked-array read and against
  :func:`rtofs_lib.fields.reader.open_file` (xarray);
* the grid index: tree build (cold), load from the disk cache, index query, index load,
  and the gather to a 1500-wide and a native 4500-wide global raster.

Run: ``.venv/bin/python benchmarks/bench_reader_regrid.py [--keep DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np


def best(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def masked_read(path: Path) -> np.ndarray:
    """Baseline: netCDF4's default (masked array) read, then NaN-filled."""
    with netCDF4.Dataset(path) as nc:
        return nc["sst"][0, :-1, :].astype(np.float32).filled(np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="folder to keep the sample file and cache in")
    args = parser.parse_args()

    from rtofs_lib.fields import cachefile, netcdf, reader, regrid
    from rtofs_lib.fields.grid import Grid, clear_memory
    from rtofs_lib.testing import sample

    work = args.keep or Path(tempfile.mkdtemp(prefix="rtofs-bench-"))
    folder = work / "rtofs.20260708"
    path = folder / "rtofs_glo_2ds_f024_prog.nc"
    if not path.exists():
        t0 = time.perf_counter()
        sample.write_file(path, "prog", "20260708", "f024", grid="full")
        print(f"write full-size prog file          {time.perf_counter() - t0:7.3f} s")

    print("\n-- reading sst (fold dropped, NaN land) --")
    base = best(lambda: masked_read(path))
    fast = best(lambda: netcdf.read_field(path, "sst", grid=False))
    with_grid = best(lambda: netcdf.read_field(path, "sst"))
    xr_time = best(lambda: reader.open_file(path, "sst").values)
    print(f"netCDF4 masked read (baseline)     {base:7.3f} s  1.00x")
    print(f"read_field(grid=False)             {fast:7.3f} s  {fast / base:.2f}x")
    print(f"read_field (+ lat/lon)             {with_grid:7.3f} s  {with_grid / base:.2f}x")
    print(f"open_file(...).values (xarray)     {xr_time:7.3f} s  {xr_time / base:.2f}x")
    np.testing.assert_array_equal(masked_read(path), netcdf.read_field(path, "sst").values)

    print("\n-- grid index --")
    data = netcdf.read_field(path, "sst")
    lat, lon = data.lat, data.lon
    key_time = best(lambda: regrid.grid_key(lat, lon))
    print(f"grid_key (hash of lat/lon)         {key_time:7.3f} s")
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    key = regrid.grid_key(lat, lon)
    t0 = time.perf_counter()
    tree = regrid.build_tree(lat, lon)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"grid-{key}.tree", "wb") as f:
        tree.save(f, f"grid-{key}")
    save = time.perf_counter() - t0
    print(f"tree build (cold, once per grid)   {build:7.3f} s")
    print(f"tree save to cache                 {save:7.3f} s")
    load = best(lambda: regrid.load_tree(cache / f"grid-{key}.tree", f"grid-{key}"))
    print(f"tree load from cache               {load:7.3f} s  {load / build:.2f}x of build")
    size_mb = (cache / f"grid-{key}.tree").stat().st_size / 1e6
    print(f"tree cache size                    {size_mb:7.0f} MB")

    for width in (1500, 4500):
        raster = regrid.Raster.global_(width)
        t0 = time.perf_counter()
        index = regrid.query(tree, raster)
        query = time.perf_counter() - t0
        Grid(lat, lon, key=key, cache_dir=cache).index(raster)  # writes the index cache
        clear_memory()
        name = f"index-{key}-{raster.key}"
        index_load = best(lambda n=name: cachefile.read(cache / f"{n}.index", n))
        gather = best(lambda i=index: regrid.apply(data.values, i), repeat=5)
        print(
            f"{width}x{raster.height}: query {query:6.3f} s, index load {index_load:6.3f} s, "
            f"gather {gather * 1e3:6.1f} ms ({gather / fast:.3f}x of the read), "
            f"holes {np.count_nonzero(index < 0) / index.size:.1%}"
        )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
