"""Atomic writes: readers see the old file or the new one, never half of one.

Every file the platform writes into a shared folder (archive manifests, maps, JSON indexes,
grid caches, Parquet folders, sample files) goes through this module: a temporary name in the
same folder (hidden, unique per process and call), written, flushed and fsync'ed, then renamed
over the destination, and the folder fsync'ed. Files are created with mode ``0o666`` less the
umask (not ``mkstemp``'s ``0600``): shared products must stay readable by the group.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_text(folder / "index.json", '{"steps": []}')
PosixPath('.../index.json')
>>> (folder / "index.json").read_text()
'{"steps": []}'
>>> with atomic_path(folder / "day.gif") as tmp:
...     _ = tmp.write_bytes(b"GIF89a")
>>> sorted(p.name for p in folder.iterdir())
['day.gif', 'index.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_path",
    "commit",
    "replace_tree",
    "temporary_path",
    "write_bytes",
    "write_json",
    "write_text",
]


def temporary_path(dest: str | Path, suffix: str = "") -> Path:
    """A hidden, unique temporary name beside ``dest`` (readers skip dot-files).

    ``suffix`` is appended for writers that choose a format by extension (``.gif``).
    """
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: str | Path, dest: str | Path, *, fsync: bool = True) -> Path:
    """Move a finished temporary file (or folder) ``tmp`` over ``dest`` atomically.

    With ``fsync`` the data is on disk before the rename and the rename before returning.
    """
    tmp, dest = Path(tmp), Path(dest)
    if fsync and tmp.is_file():
        _fsync_path(tmp)
    tmp.replace(dest)
    if fsync:
        _fsync_path(dest.parent)
    return dest


@contextlib.contextmanager
def atomic_path(dest: str | Path, *, suffix: str = "", fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest``.

    For writers that want a path (netCDF, Pillow, ffmpeg). On an error the temporary file is
    removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(dest, suffix)
    try:
        yield tmp
        commit(tmp, dest, fsync=fsync)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(dest: str | Path, mode: str = "wb", *, fsync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``dest`` for writing; on success it replaces ``dest``.

    ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text). The file is created with ``0o666`` less
    the umask.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', not {mode!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(dest)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        commit(tmp, dest, fsync=False)
        if fsync:
            _fsync_path(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(dest: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``dest`` atomically and return ``dest``."""
    with atomic_open(dest, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(dest)


def write_text(dest: str | Path, text: str, *, fsync: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``dest`` atomically and return ``dest``."""
    with atomic_open(dest, "w", fsync=fsync) as f:
        f.write(text)
    return Path(dest)


def write_json(dest: str | Path, data: Any, *, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON (with a final newline) to ``dest`` atomically."""
    return write_text(dest, json.dumps(data, indent=indent) + "\n")


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def replace_tree(tmp: str | Path, dest: str | Path) -> Path:
    """Swap the finished folder ``tmp`` in as ``dest`` (a Parquet folder, a notebook set).

    Readers see the old folder or the new one: the old one is renamed aside first, the new
    one renamed into place, then the old one removed.
    """
    tmp, dest = Path(tmp), Path(dest)
    old = temporary_path(dest, ".old")
    if dest.exists() or dest.is_symlink():
        dest.rename(old)
    tmp.rename(dest)
    _fsync_path(dest.parent)
    if old.exists() or old.is_symlink():
        _remove_tree(old)
    return dest
