"""Does a downloaded file open as the RTOFS product its name says? Checked before it is kept.

>>> import tempfile, pathlib
>>> page = pathlib.Path(tempfile.mkdtemp()) / "rtofs_glo_2ds_f024_prog.nc"
>>> _ = page.write_text("<html><body>404 Not Found</body></html>")
>>> try:
...     verify_file(page, "prog", "f024", "20260708")
... except NotNetCDFError as e:
...     print(type(e).__name__)
NotNetCDFError
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

from rtofs_lib.errors import (
    MissingVariableError,
    NotNetCDFError,
    TruncatedFileError,
    UnexpectedGridError,
)
from rtofs_lib.fetch import names
from rtofs_lib.fetch.check import check_file

__all__ = ["verify_file"]

_MT_EPOCH = dt.datetime(1900, 12, 31)
_verify_lock = threading.Lock()  # HDF5 is not built thread-safe everywhere


def verify_file(path: str | Path, product: str, step: str, date: str | dt.date) -> None:
    """Check that ``path`` opens as the RTOFS ``product`` at ``step`` of cycle ``date``.

    Opens the file with netCDF4, checks the product's variable (``sst`` for prog, …), its
    ``MT``/``Y``/``X`` dimensions and single time, decodes the last compressed chunk of that
    variable (HDF5 writes it last) and, except for ice files whose ``MT`` is not
    trustworthy, checks that ``MT`` is the valid time the name implies. With the reader's
    :func:`~rtofs_lib.fetch.check.check_file` first (file size against the HDF5 superblock), this
    costs tens of milliseconds for a 150 MB file.

    Raises
    ------
    NotNetCDFError, TruncatedFileError, MissingVariableError, UnexpectedGridError
        Naming the file and what is wrong.
    """
    import netCDF4  # heavy; only when verifying

    path = Path(path)
    check_file(path)  # the byte-level check: HDF5 superblock end vs file size
    with _verify_lock:
        try:
            ds = netCDF4.Dataset(path)
        except OSError as e:
            raise _not_opening(path, e) from None
        with ds:
            mt = _check_product(ds, path, product)
    if product != "ice" and mt is not None:
        _check_valid_time(path, mt, step, date)


def _not_opening(path: Path, e: OSError) -> TruncatedFileError | NotNetCDFError:
    """The error for a file netCDF4 cannot open: cut short, or not netCDF at all."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith((b"\x89HDF", b"CDF")):
        return TruncatedFileError(
            path, f"netCDF header present but the file does not open ({e})", "refetch it"
        )
    return NotNetCDFError(
        path, f"not a netCDF file (starts with {magic!r})", "the server sent something else"
    )


def _check_product(ds: Any, path: Path, product: str) -> float | None:
    """Check the product's variable, its grid and last chunk; return ``MT`` (None if absent)."""
    var = names.KEY_VARIABLE[product]
    if var not in ds.variables:
        raise MissingVariableError(
            path,
            f"no variable {var!r} for product {product}; has {', '.join(ds.variables)}",
            "the file is not the product its name says",
        )
    v = ds.variables[var]
    if v.dimensions[:1] != ("MT",) or v.dimensions[-2:] != ("Y", "X"):
        raise UnexpectedGridError(
            path, f"{var} has dimensions {v.dimensions}, expected (MT, …, Y, X)"
        )
    if len(ds.dimensions["MT"]) != 1:
        raise UnexpectedGridError(path, f"MT has {len(ds.dimensions['MT'])} times, expected 1")
    try:
        v[(0,) * (v.ndim - 2) + (-1, -1)]  # decodes the last chunk, written last
        return float(ds.variables["MT"][0]) if "MT" in ds.variables else None
    except (OSError, RuntimeError, IndexError) as e:
        raise TruncatedFileError(path, f"data do not decode ({e})", "refetch it") from None


def _check_valid_time(path: Path, mt: float, step: str, date: str | dt.date) -> None:
    """Check that ``MT`` (days since 1900-12-31) is the valid time of ``step`` of ``date``."""
    when = _MT_EPOCH + dt.timedelta(days=mt)
    expect = names.valid_time(date, step)
    if abs((when - expect).total_seconds()) > 1800:
        raise UnexpectedGridError(
            path,
            f"MT is {when:%Y-%m-%d %H:%M} but step {step} of {date} is valid at "
            f"{expect:%Y-%m-%d %H:%M}",
            "the file is from another cycle or step",
        )
