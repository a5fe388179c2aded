"""Time writing a full-size synthetic prog file against a bare netCDF4 write of the same data.

The baseline writes the same seven arrays with the same settings (deflate 1, no shuffle,
the real chunks) straight through netCDF4, so the ratio is the generator's overhead on top
of compression, which dominates. Prints wall and CPU seconds and file sizes.

    .venv/bin/python benchmarks/bench_synthetic.py [--grid full] [--product prog]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import netCDF4

from rtofs_lib.testing import sample
from rtofs_lib.testing.sample.land import land_mask


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn):
    w, c = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - w, _cpu() - c


def _baseline(src: Path, dst: Path) -> None:
    """Copy every variable of ``src`` into ``dst`` with netCDF4 and the same storage."""
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format="NETCDF4") as b:
        a.set_auto_maskandscale(False)
        for d in a.dimensions.values():
            b.createDimension(d.name, None if d.isunlimited() else len(d))
        arrays = {n: v[:] for n, v in a.variables.items()}
        for n, v in a.variables.items():
            out = b.createVariable(n, v.dtype, v.dimensions, zlib=True, complevel=1,
                                   shuffle=False, chunksizes=v.chunking())  # fmt: skip
            out[:] = arrays[n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="full")
    ap.add_argument("--product", default="prog")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, w0, c0 = _timed(lambda: sample.make_grid(*sample.grid_shape(args.grid)))
        _, w1, c1 = _timed(lambda: land_mask(*sample.grid_shape(args.grid)))
        print(f"grid + land mask (once per process): {w0 + w1:.2f} s wall, {c0 + c1:.2f} s CPU")
        for i, step in enumerate(("f024", "f025")):
            path, wall, cpu = _timed(
                lambda step=step: sample.write_file(
                    tmp / f"{step}.nc", args.product, "20260708", step, grid=args.grid
                )
            )
            size = path.stat().st_size
            print(f"write {args.product} {step} ({i + 1}): {wall:.2f} s wall, {cpu:.2f} s CPU, "
                  f"{size:,} bytes ({size / 2**20:.1f} MiB)")  # fmt: skip
        _, bw, bc = _timed(lambda: _baseline(path, tmp / "baseline.nc"))
        print(f"baseline netCDF4 write of the same data: {bw:.2f} s wall, {bc:.2f} s CPU")
        print(f"ratio generator/baseline: {wall / bw:.2f} wall, {cpu / bc:.2f} CPU")
        legacy, lw, _ = (
            _timed(
                lambda: sample.write_file(
                    tmp / "l.nc", args.product, "20150701", "f001", grid=args.grid, legacy=True
                )
            )
            if args.product in ("prog", "diag", "ice")
            else (None, 0.0, 0.0)
        )
        if legacy:
            print(f"legacy NETCDF3 {args.product}: {lw:.2f} s, {legacy.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
