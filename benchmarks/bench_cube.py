"""The cube against reading the netCDF files directly, on full-size (4500x3298) files.

One run, one process, warm page cache for both sides:

* **append**: :func:`rtofs_lib.cube.store.append` of each file (read sst, write the map-chunked
  chunks, commit), and the day's series-chunked copy (:func:`~rtofs_lib.cube.store.finish_day`);
* **size**: the cube's bytes per file against the netCDF's ``sst`` alone (written again with
  NCEP's settings: deflate 1, no shuffle, 825x1125 chunks);
* **point best-series** at Valparaíso, **box mean** over the Chilean coast and **one map**:
  the cube against plain netCDF4 (open, read the slice, close, per file) and xarray
  ``open_mfdataset`` over the same files.

The files on disk are one cycle's few steps; the 30-day x 138-step case is projected from
the measured per-file costs (netCDF) and per-chunk costs (cube: a series-chunked array of
30 cycles x 138 steps around the point, and 3 cycles over the box's chunks, filled from
the real steps with a per-step offset so no two steps' bytes repeat).

Usage::

    .venv/bin/python benchmarks/bench_cube.py [--files 8] [--archive DIR] [--full-day]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr
from bench_reader_regrid import best  # one timing helper for the benchmarks (same folder)

from rtofs_lib.cube import query, store
from rtofs_lib.fetch import names
from rtofs_lib.fields.netcdf import read_field, read_grid
from rtofs_lib.fields.regions import REGIONS

DATE = "20260708"
CACHE = Path(tempfile.gettempdir()) / "rtofs-bench-cube"
VALPARAISO = (-71.8, -33.0)
DAYS, STEPS = 30, 138


def files_on_disk(archive: Path, n: int) -> list[Path]:
    first = names.STEPS_2DS.index("f024")
    steps = names.STEPS_2DS[first : first + n]  # f024, f025, ...
    day = archive / names.day_folder(DATE)
    wanted = [day / names.compose_name("prog", s) for s in steps]
    if not all(p.exists() for p in wanted):
        from rtofs_lib.testing import sample

        print(f"writing {n} full-size prog files into {archive} (once) ...", flush=True)
        sample.write_sample(archive, DATE, steps=",".join(steps), grid="full")
    return wanted


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def netcdf_sst_bytes(path: Path, out: Path) -> int:
    """Bytes of ``sst`` alone, written as NCEP writes it (deflate 1, no shuffle, same chunks)."""
    v = read_field(path, "sst", grid=False).values
    with netCDF4.Dataset(out, "w") as nc:
        nc.createDimension("MT", 1)
        nc.createDimension("Y", v.shape[0])
        nc.createDimension("X", v.shape[1])
        var = nc.createVariable("sst", "f4", ("MT", "Y", "X"), zlib=True, complevel=1,
                                shuffle=False, chunksizes=(1, 825, 1125),
                                fill_value=np.float32(2**100))  # fmt: skip
        var[0] = np.where(np.isnan(v), np.float32(2**100), v)
    return out.stat().st_size


def synthetic_series(root: Path, blocks: np.ndarray, cycles: int):
    """A series-chunked array of ``cycles`` x 138 steps filled from the real steps."""
    import icechunk
    import zarr

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    session = repo.writable_session("main")
    ny, nx = blocks.shape[1:]
    arr = zarr.create_array(session.store, name="sst", shape=(cycles, STEPS, ny, nx),
                            chunks=(1, STEPS, *store.SERIES_CHUNK), dtype="float32",
                            fill_value=np.nan, **store._codecs())  # fmt: skip
    for c in range(cycles):
        day = np.stack(
            [blocks[k % len(blocks)] + np.float32(0.001 * (k + c)) for k in range(STEPS)]
        )
        arr[c] = day
    session.commit("synthetic")
    return zarr.open_array(repo.readonly_session("main").store, path="sst")


def full_day_copy(paths: list[Path], work: Path) -> tuple[float, int, int]:
    """Seconds of :func:`store.finish_day` for a day whose 138 steps are all held (filled
    from the real steps with a per-step offset), and the bytes of its map-chunked and
    series-chunked arrays."""
    import zarr

    cube = work / "cube-full-day"
    store.append(paths[0], cube, ["sst"])
    values = [read_field(p, "sst", grid=False).values for p in paths]

    def fill(session) -> bool:
        root = zarr.open_group(session.store, mode="r+")
        for k in range(STEPS):
            root["sst"][0, k] = values[k % len(values)] + np.float32(0.001 * k)
        root["source"][0, :] = np.arange(1, STEPS + 1)
        return True

    store.transact(cube, "fill a day", fill)
    map_bytes = folder_bytes(cube)
    t0 = time.perf_counter()
    store.finish_day(cube, DATE)
    seconds = time.perf_counter() - t0
    return seconds, map_bytes, folder_bytes(cube) - map_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8, help="full-size files of one cycle (8)")
    ap.add_argument("--archive", type=Path, default=CACHE / "archive")
    ap.add_argument(
        "--full-day",
        action="store_true",
        help="also time the series copy of a complete 138-step day (~3 min)",
    )
    args = ap.parse_args()
    paths = files_on_disk(args.archive, args.files)
    n = len(paths)
    work = Path(tempfile.mkdtemp(prefix="bench-cube-"))
    cube, cache = work / "cube", work / "cache"
    try:
        # --- append ---------------------------------------------------------------------------
        t_append = []
        for p in paths:
            t0 = time.perf_counter()
            store.append(p, cube, ["sst"])
            t_append.append(time.perf_counter() - t0)
        t_read = best(lambda: read_field(paths[-1], "sst", grid=False), 2)
        map_bytes = folder_bytes(cube)
        t0 = time.perf_counter()
        store.finish_day(cube, DATE)
        t_finish = time.perf_counter() - t0
        series_bytes = folder_bytes(cube) - map_bytes
        nc_bytes = netcdf_sst_bytes(paths[0], work / "sst.nc")
        print(f"full-size files: {n} steps of {DATE}")
        print(f"append (read sst + write + commit): first {t_append[0]:.2f} s (creates the "
              f"store), then median {np.median(t_append[1:]):.2f} s, max {max(t_append[1:]):.2f} s"
              f" (of which reading sst {t_read:.2f} s)")  # fmt: skip
        print(
            f"series copy of the day: {t_finish:.1f} s with {n} of 138 steps held (the "
            "empty ones are compressed too; --full-day measures a complete day)"
        )
        if args.full_day:
            seconds, day_map, day_series = full_day_copy(paths, work)
            print(
                f"complete day (138 steps held): series copy {seconds:.0f} s; size per step: "
                f"map-chunked {day_map / STEPS / 1e6:.1f} MB + series-chunked "
                f"{day_series / STEPS / 1e6:.1f} MB (ratio to the netCDF's sst "
                f"{(day_map + day_series) / STEPS / nc_bytes:.2f})"
            )
        print(
            f"size per step: map-chunked {map_bytes / n / 1e6:.1f} MB + series-chunked "
            f"{series_bytes / n / 1e6:.1f} MB vs netCDF sst {nc_bytes / 1e6:.1f} MB "
            f"(ratio {(map_bytes + series_bytes) / n / nc_bytes:.2f}; map-chunked alone "
            f"{map_bytes / n / nc_bytes:.2f})"
        )

        # --- point ----------------------------------------------------------------------------
        lat, lon = read_grid(paths[0])
        c = query.Cube(cube)
        j, i = query.ocean_cell(c, *VALPARAISO, cache)
        t_cube_point = best(lambda: query.point_series(*VALPARAISO, cube=cube, cache_dir=cache))

        def nc_points() -> list:
            out = []
            for p in paths:
                with netCDF4.Dataset(p) as nc:
                    out.append(nc["sst"][0, j, i])
            return out

        def mf_points():
            with xr.open_mfdataset(paths, combine="nested", concat_dim="MT",
                                   decode_times=False) as ds:  # fmt: skip
                return ds["sst"][:, j, i].values

        t_nc_point = best(nc_points) / n
        t_mf_point = best(mf_points, 2) / n
        h = store.SERIES_CHUNK[0]
        blocks = np.stack([read_field(p, "sst", grid=False).values[j - h : j + h, i - h : i + h]
                           for p in paths])  # fmt: skip
        arr = synthetic_series(work / "synthetic-point", blocks, DAYS)
        jj, ii = h, h
        t_30 = best(lambda: [arr.get_orthogonal_selection((d, slice(None), jj, ii))
                             for d in range(DAYS)])  # fmt: skip
        print(f"\npoint best-series at {VALPARAISO} (cell j={j}, i={i}):")
        print(f"  cube, this cycle ({n} steps, series copy): {t_cube_point * 1e3:.0f} ms")
        print(
            f"  cube, 30 cycles x 138 steps (one chunk a day, measured): {t_30:.3f} s "
            f"({t_30 / DAYS * 1e3:.1f} ms a chunk)"
        )
        print(
            f"  netCDF4 per file {t_nc_point * 1e3:.1f} ms -> 30x138 projected "
            f"{t_nc_point * DAYS * STEPS:.0f} s (ratio {t_nc_point * DAYS * STEPS / t_30:.0f}x)"
        )
        print(
            f"  open_mfdataset per file {t_mf_point * 1e3:.1f} ms -> projected "
            f"{t_mf_point * DAYS * STEPS:.0f} s (ratio {t_mf_point * DAYS * STEPS / t_30:.0f}x)"
        )

        # --- box ------------------------------------------------------------------------------
        region = REGIONS["chilean_coast"]
        inside = region.mask(lat, lon)
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        rs, cs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        w = np.where(inside[rs, cs], np.cos(np.deg2rad(lat[rs, cs].astype(np.float64))), 0.0)
        t_cube_box = best(lambda: query.box_series(region.box, cube=cube))

        def nc_box() -> list:
            out = []
            for p in paths:
                with netCDF4.Dataset(p) as nc:
                    v = nc["sst"][0, rs, cs].filled(np.nan)
                ok = np.isfinite(v)
                out.append((np.where(ok, v, 0) * w).sum() / np.where(ok, w, 0).sum())
            return out

        def mf_box():
            with xr.open_mfdataset(paths, combine="nested", concat_dim="MT",
                                   decode_times=False) as ds:  # fmt: skip
                return ds["sst"][:, rs, cs].weighted(xr.DataArray(w, dims=("Y", "X"))).mean(
                    ("Y", "X")).values  # fmt: skip

        t_nc_box = best(nc_box) / n
        t_mf_box = best(mf_box, 2) / n
        r0, c0 = (rs.start // h) * h, (cs.start // h) * h
        r1, c1 = -(-rs.stop // h) * h, -(-cs.stop // h) * h
        box_blocks = np.stack([read_field(p, "sst", grid=False).values[r0:r1, c0:c1]
                               for p in paths])  # fmt: skip
        box_days = 3
        barr = synthetic_series(work / "synthetic-box", box_blocks, box_days)
        bw = np.zeros(box_blocks.shape[1:])
        bw[rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0] = w

        def synthetic_box() -> None:
            for d in range(box_days):
                v = barr[d]
                ok = np.isfinite(v)
                _ = (np.where(ok, v, 0) * bw).sum(axis=(1, 2)) / np.where(ok, bw, 0).sum(
                    axis=(1, 2)
                )

        t_box3 = best(synthetic_box, 2)
        t_box30 = t_box3 / box_days * DAYS
        nchunks = (r1 - r0) // h * ((c1 - c0) // h)
        print(f"\nbox mean, Chilean coast ({inside.sum()} cells, {nchunks} series chunks a day):")
        print(f"  cube, this cycle ({n} steps): {t_cube_box * 1e3:.0f} ms")
        print(
            f"  cube, {box_days} cycles x 138 steps measured {t_box3:.2f} s -> 30 days "
            f"projected {t_box30:.1f} s"
        )
        print(
            f"  netCDF4 per file {t_nc_box * 1e3:.1f} ms -> projected "
            f"{t_nc_box * DAYS * STEPS:.0f} s (ratio {t_nc_box * DAYS * STEPS / t_box30:.0f}x)"
        )
        print(
            f"  open_mfdataset per file {t_mf_box * 1e3:.1f} ms -> projected "
            f"{t_mf_box * DAYS * STEPS:.0f} s (ratio {t_mf_box * DAYS * STEPS / t_box30:.0f}x)"
        )

        # --- one map --------------------------------------------------------------------------
        ds = query.open_cube("sst", cube=cube)
        t_cube_map = best(lambda: ds["sst"].isel(cycle=0).sel(step="f027").values)
        t_nc_map = best(lambda: read_field(paths[3], "sst", grid=False))

        def xr_map():
            with xr.open_dataset(paths[3], decode_times=False) as d:
                return d["sst"].values

        t_xr_map = best(xr_map)
        print("\none map (sst, full size):")
        print(
            f"  cube (open_cube, lazy, one step) {t_cube_map:.3f} s; netCDF4 (read_field) "
            f"{t_nc_map:.3f} s (ratio {t_nc_map / t_cube_map:.2f}x); xarray open_dataset "
            f"{t_xr_map:.3f} s (ratio {t_xr_map / t_cube_map:.2f}x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
