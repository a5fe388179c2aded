"""Is a downloaded file a complete netCDF file? Answered from its bytes alone.

A download cut short is caught even where the netCDF library would read zeros past the end
of a NETCDF3 file: the size a file needs is read from its HDF5 superblock or classic header.
Used by the crawler before a file gets its real name, and by the reader before every open.

>>> import tempfile, pathlib
>>> page = pathlib.Path(tempfile.mkdtemp()) / "rtofs_glo_2ds_f024_prog.nc"
>>> _ = page.write_text("<html><body>503 Service Unavailable</body></html>")
>>> try:
...     check_file(page)
... except NotNetCDFError as e:
...     print(e.problem)
it is an HTML/XML page (a saved error or login page?), not netCDF
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rtofs_lib.errors import NotNetCDFError, TruncatedFileError

__all__ = ["REFETCH", "check_file"]

#: What to do about a cut or foreign file.
REFETCH = "download it again; the crawler only keeps files whose size it verified"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CDF_MAGIC = b"CDF"
_HDF5_USERBLOCK_OFFSETS = (0, 512, 1024, 2048, 4096)


def _describe_foreign(head: bytes) -> str:
    """Say in words what a non-netCDF file looks like, from its first bytes."""
    text = head[:1024].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or (
        b"<html" in text
    ):
        return "it is an HTML/XML page (a saved error or login page?), not netCDF"
    if head.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed; gunzip it first"
    if head.startswith(b"GRIB"):
        return "it is a GRIB file, not netCDF"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive, not netCDF"
    try:
        decoded = head[:64].decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and all(c.isprintable() or c in "\r\n\t" for c in decoded):
        return f"it is text starting {decoded[:40]!r}, not netCDF"
    return f"it starts with bytes {head[:8].hex(' ')}, not the netCDF/HDF5 signature"


def _hdf5_end(head: bytes, base: int) -> int | None:
    """End-of-file address the HDF5 superblock at ``base`` promises (None if cut short)."""
    try:
        version = head[base + 8]
        if version in (0, 1):
            size_off = head[base + 13]
            start = base + (24 if version == 0 else 28)
        elif version in (2, 3):
            size_off = head[base + 9]
            start = base + 12
        else:
            return -1  # unknown superblock: let the library decide
    except IndexError:
        return None
    if size_off not in (2, 4, 8) or len(head) < start + 3 * size_off:
        return None if size_off in (2, 4, 8) else -1
    fields = [
        int.from_bytes(head[start + i * size_off : start + (i + 1) * size_off], "little")
        for i in range(3)
    ]
    base_addr, eof_rel = fields[0], fields[2]
    return base_addr + eof_rel


_NC_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_STREAMING = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


class _ClassicHeader:
    """Reads the big-endian fields of a classic netCDF header; :class:`EOFError` when cut.

    ``version`` is the fourth byte of the file: 1 (classic), 2 (64-bit offsets) or 5 (CDF-5,
    64-bit counts).
    """

    def __init__(self, f: BinaryIO, version: int) -> None:
        self.f = f
        self.count = 8 if version == 5 else 4  # bytes of a count or a dimension length
        self.offset = 4 if version == 1 else 8  # bytes of a variable's begin offset

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) < n:
            raise EOFError
        return b

    def num(self, n: int) -> int:
        return int.from_bytes(self.read(n), "big")

    def skip_name(self) -> None:
        n = self.num(self.count)
        self.read(n + (-n % 4))

    def skip_attrs(self) -> None:
        self.num(4)  # tag (NC_ATTRIBUTE or ABSENT)
        for _ in range(self.num(self.count)):
            self.skip_name()
            nctype = self.num(4)
            nbytes = self.num(self.count) * _NC_TYPE_SIZE.get(nctype, 1)
            self.read(nbytes + (-nbytes % 4))

    def dims(self) -> list[int]:
        """The dimension list: the length of each dimension (0 for the record one)."""
        self.num(4)  # tag (NC_DIMENSION or ABSENT)
        dims = []
        for _ in range(self.num(self.count)):
            self.skip_name()
            dims.append(self.num(self.count))
        return dims

    def variables(self, dims: list[int]) -> Iterator[tuple[int, int, bool]]:
        """Each variable's begin offset, bytes (one record's for record variables), is_record."""
        for _ in range(self.num(self.count)):
            self.skip_name()
            dimids = [self.num(self.count) for _ in range(self.num(self.count))]
            self.skip_attrs()
            nctype = self.num(4)
            self.num(self.count)  # vsize (clipped for > 4 GiB variables, so recomputed below)
            begin = self.num(self.offset)
            shape = [dims[i] for i in dimids]
            is_record = bool(shape) and shape[0] == 0
            nbytes = math.prod(shape[1:] if is_record else shape) * _NC_TYPE_SIZE.get(nctype, 1)
            yield begin, nbytes, is_record


def _classic_end(path: Path, version: int) -> int | None:
    """Bytes a classic (NETCDF3/CDF-5) file needs, from its header (None: header cut)."""
    with open(path, "rb") as f:
        header = _ClassicHeader(f, version)
        try:
            f.seek(4)
            numrecs = header.num(header.count)
            dims = header.dims()
            header.skip_attrs()
            header.num(4)  # tag of the variable list
            end = f.tell()
            records: list[tuple[int, int]] = []
            for begin, nbytes, is_record in header.variables(dims):
                if is_record:
                    records.append((begin, nbytes))
                else:
                    end = max(end, begin + nbytes)
        except EOFError:
            return None
    if records and numrecs not in _STREAMING and numrecs > 0:
        if len(records) == 1:
            recsize = records[0][1]
        else:
            recsize = sum(n + (-n % 4) for _, n in records)
        for begin, nbytes in records:
            end = max(end, begin + (numrecs - 1) * recsize + nbytes)
    return end


def _require(path: Path, size: int, need: int | None, header: str, verb: str) -> None:
    """Raise TruncatedFileError unless the file's ``size`` covers what its header ``need``s."""
    if need is None:
        raise TruncatedFileError(path, f"the {header} is cut short ({size} bytes in all)", REFETCH)
    if size < need:
        raise TruncatedFileError(
            path, f"file has {size} bytes but its {header} {verb} {need}", REFETCH
        )


def check_file(path: str | Path) -> str:
    """Check that ``path`` is a complete netCDF file, from its bytes alone.

    Returns ``"hdf5"`` (netCDF-4) or ``"classic"`` (NETCDF3). The size a file needs
    is read from its HDF5 superblock or its classic header, so a download cut short
    is caught even where the netCDF library would read zeros past the end.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    NotNetCDFError
        If the file is something else (an HTML error page, a gzip, random bytes).
    TruncatedFileError
        If the file is empty or shorter than its header says.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such RTOFS file")
    if path.is_dir():
        raise NotNetCDFError(path, "is a directory, not a netCDF file")
    size = path.stat().st_size
    if size == 0:
        raise TruncatedFileError(path, "file is empty (0 bytes)", REFETCH)
    with open(path, "rb") as f:
        head = f.read(_HDF5_USERBLOCK_OFFSETS[-1] + 128)
    if head.startswith(_CDF_MAGIC) and len(head) >= 4 and head[3] in (1, 2, 5):
        _require(path, size, _classic_end(path, head[3]), "NETCDF3 header", "needs")
        return "classic"
    for base in _HDF5_USERBLOCK_OFFSETS:
        if head[base : base + 8] == _HDF5_MAGIC:
            _require(path, size, _hdf5_end(head, base), "HDF5 superblock", "says")
            return "hdf5"
    if len(head) < len(_HDF5_MAGIC) and (
        _HDF5_MAGIC.startswith(head) or (_CDF_MAGIC.startswith(head[:3]) and len(head) < 4)
    ):
        raise TruncatedFileError(path, f"file has only {size} bytes", REFETCH)
    raise NotNetCDFError(
        path, _describe_foreign(head), "delete it and fetch the file again from NOMADS"
    )
