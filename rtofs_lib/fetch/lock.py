"""The archive's crawl lock: one crawler (or ``rtofs prune``) per archive at a time.

>>> import tempfile
>>> archive = tempfile.mkdtemp()
>>> with archive_lock(archive) as path:
...     print(path.name, path.read_text().startswith("pid "))
.rtofs-crawl.lock True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from rtofs_lib.fetch.errors import CrawlLockedError

__all__ = ["LOCK_NAME", "archive_lock"]

LOCK_NAME = ".rtofs-crawl.lock"


@contextlib.contextmanager
def archive_lock(archive: str | Path) -> Iterator[Path]:
    """Hold the archive's crawl lock (``flock``; an exclusive lock file where flock is missing).

    Raises
    ------
    CrawlLockedError
        If another process holds it; the message names that process.
    """
    root = Path(archive)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        _take(fd, path)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode(),
            0,
        )
        yield path
    finally:
        os.close(fd)


def _take(fd: int, path: Path) -> None:
    """Lock ``fd`` without waiting; name the holder when another process has it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise CrawlLockedError(
                f"{path}: another crawler holds the archive lock ({holder}); wait for it to "
                "finish, or delete the file if that process is gone"
            ) from None
        raise  # flock unsupported: Lustre needs the 'flock' mount option
