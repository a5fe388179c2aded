"""One resumable, verified download of one file into the archive's day folder.

The body goes to a hidden ``.NAME.part`` beside a ``.NAME.part.json`` that records the URL,
the total size and the validators (``ETag``/``Last-Modified``) of the response. A later
attempt resumes with ``Range`` and ``If-Range``; a server that answers with the whole file,
a size that moved, or a ``Content-Range`` that does not fit restarts it. The byte count must
match ``Content-Length``, the listing and the product's size floor, and the complete file
must open as its product (:func:`~rtofs_lib.fetch.verify.verify_file`) before it is fsync'ed
and renamed to its real name (:func:`rtofs_lib.atomic.commit`). The ``.part`` name is
stable on purpose: the next run finds it and resumes.

Each attempt ends in an :class:`Outcome` whose :class:`Result` tells the crawler what to do
next (keep it, retry with backoff, pause every request, try again later, give up).

>>> Result.NOT_READY == "not_ready"
True
>>> Outcome(Result.RETRY, "HTTP 503").reason
'HTTP 503'
"""

from __future__ import annotations

import datetime as dt
import enum
import errno
import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin

from rtofs_lib import atomic
from rtofs_lib.errors import RtofsFileError
from rtofs_lib.fetch import names
from rtofs_lib.fetch.client import body_chunks, is_throttle, short_error
from rtofs_lib.fetch.errors import DiskFullError
from rtofs_lib.fetch.verify import verify_file

if TYPE_CHECKING:
    from rtofs_lib.fetch.client import Client
    from rtofs_lib.fetch.listing import RemoteEntry

__all__ = ["Outcome", "Result", "Transfer", "Wanted"]

log = logging.getLogger(__name__)


class Result(enum.StrEnum):
    """How one attempt at one file ended."""

    #: Verified and renamed into place.
    DONE = "done"
    #: A transient error (connection, 5xx, a short body): retry with backoff, resuming.
    RETRY = "retry"
    #: The server asks to slow down (403, 429, 3xx): pause every request, then retry.
    THROTTLE = "throttle"
    #: The file is still being written on the server: list the day again later.
    NOT_READY = "not_ready"
    #: The server will not give this file (404, an unexpected status): give up on it.
    FAILED = "failed"
    #: The run stopped (deadline); the partial file is kept for the next run.
    ABORTED = "aborted"


@dataclass
class Outcome:
    """The end of one attempt: its :class:`Result`, why, and what was kept.

    ``landed`` is the UTC time right after a verified file was renamed into place.
    """

    kind: Result
    reason: str = ""
    size: int = 0
    sha256: str = ""
    wait: float | None = None
    landed: dt.datetime | None = None


class _Ended(Exception):
    """Raised by a step of :class:`Transfer` that settles the attempt early."""

    def __init__(self, kind: Result, reason: str = "", *, wait: float | None = None) -> None:
        super().__init__(reason)
        self.outcome = Outcome(kind, reason, wait=wait)


class Wanted(Protocol):
    """A file to fetch: its name, product and step, and its entry in the day's listing."""

    name: str
    product: str
    step: str
    entry: RemoteEntry


class Transfer:
    """One attempt at downloading the ``wanted`` file of cycle ``date`` into ``folder``.

    ``floor`` is the product's size floor in bytes (0 for none); ``advance`` is told the
    bytes of every chunk received (a progress bar).
    """

    def __init__(
        self,
        client: Client,
        folder: Path,
        wanted: Wanted,
        *,
        date: str,
        floor: int = 0,
        advance: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.client = client
        self.options = client.options
        self.folder, self.date, self.floor, self.advance = folder, date, floor, advance
        self.name, self.product, self.step = wanted.name, wanted.product, wanted.step
        self.entry = wanted.entry
        self.final = folder / self.name
        self.part = folder / f".{self.name}.part"
        self.meta_path = folder / f".{self.name}.part.json"
        self.url = urljoin(client.base_url, f"{names.day_folder(date)}/{self.name}")

    def run(self) -> Outcome:
        """Make one attempt and say how it ended.

        Raises
        ------
        DiskFullError
            If the archive lacks the space for the file (the partial file is removed).
        """
        try:
            offset, meta = self._resume_state()
            if self.entry.size is not None and self.entry.size < self.floor:
                raise _Ended(
                    Result.NOT_READY,
                    f"listed at {self.entry.size_text}, below the {self.floor / 1e6:.0f} MB floor",
                )
            self._check_space((self.entry.size or 0) - offset)
            r = self._request(offset, meta)
            with r:
                self._check_status(r)
                total, offset = self._total(r, offset, meta)
                self._check_total(total, offset)
                self._write_meta(r, total)
                got, sha256 = self._receive(r, offset, total)
            return self._finish(got, total, sha256)
        except _Ended as e:
            return e.outcome

    # -- the steps -------------------------------------------------------------------------

    def _resume_state(self) -> tuple[int, dict]:
        """Bytes already here and the partial file's record; drop a part without a record."""
        meta = _read_json(self.meta_path)
        offset = self.part.stat().st_size if self.part.exists() and meta else 0
        if self.part.exists() and not meta:
            self.part.unlink()
        return offset, meta

    def _request(self, offset: int, meta: dict) -> Any:
        """Send the GET (a ranged one when resuming); the streaming response."""
        import requests

        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if meta.get("etag") or meta.get("last_modified"):
                headers["If-Range"] = meta.get("etag") or meta["last_modified"]
        try:
            r = self.client.get(self.url, headers, stream=True)
        except requests.RequestException as e:
            raise _Ended(Result.RETRY, short_error(e)) from None
        if r is None:
            raise _Ended(Result.ABORTED, "deadline")
        return r

    def _check_status(self, r: Any) -> None:
        """Settle the attempt unless the server sent (part of) the file."""
        code = r.status_code
        if is_throttle(code):
            raise _Ended(Result.THROTTLE, f"HTTP {code}", wait=self.client.throttle_wait(r))
        if code >= 500:
            raise _Ended(Result.RETRY, f"HTTP {code}")
        if code == 404:
            raise _Ended(Result.FAILED, "HTTP 404: listed but gone from the server")
        if code == 416:
            self._discard()
            raise _Ended(Result.RETRY, "HTTP 416: partial file longer than the server's")
        if code not in (200, 206):
            raise _Ended(Result.FAILED, f"HTTP {code}")

    def _total(self, r: Any, offset: int, meta: dict) -> tuple[int, int]:
        """The file's total size and where this body starts (0 when the server restarted)."""
        length = r.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise _Ended(Result.RETRY, "no Content-Length in the response")
        if r.status_code != 206:
            if offset:
                log.info(
                    "%s: server sent the whole file (changed or no range); restarting", self.name
                )
            return int(length), 0
        m = re.match(r"bytes (\d+)-(\d+)/(\d+)", r.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != offset:
            self._discard()
            raise _Ended(Result.RETRY, "bad Content-Range; starting over")
        total = int(m.group(3))
        if meta.get("total") not in (None, total):
            self._discard()
            raise _Ended(
                Result.NOT_READY,
                f"size changed from {meta['total']} to {total} since the partial download",
            )
        return total, offset

    def _check_total(self, total: int, offset: int) -> None:
        """The total must fit the listing, the size floor and the free space."""
        rng = self.entry.size_range()
        if rng is not None and not rng[0] <= total <= rng[1]:
            self._discard()
            listed = self.entry.size_text if not self.entry.size_exact else str(self.entry.size)
            raise _Ended(
                Result.NOT_READY,
                f"size {total} differs from the listed {listed}: still being written",
            )
        if total < self.floor:
            raise _Ended(
                Result.NOT_READY, f"{total} bytes, below the {self.floor / 1e6:.0f} MB floor"
            )
        self._check_space(total - offset)

    def _write_meta(self, r: Any, total: int) -> None:
        """Record what the partial file is a part of, for a later ``If-Range`` resume."""
        meta = {
            "url": self.url,
            "total": total,
            "etag": r.headers.get("ETag"),
            "last_modified": r.headers.get("Last-Modified"),
        }
        atomic.write_json(self.meta_path, meta, indent=None)

    def _receive(self, r: Any, offset: int, total: int) -> tuple[int, str]:
        """Append the body to the partial file; the bytes it holds and their SHA-256."""
        import requests

        h = hashlib.sha256()
        chunk_size = self.options.chunk_size
        try:
            with open(self.part, "r+b" if offset else "wb") as f:
                if offset:
                    while block := f.read(chunk_size):
                        h.update(block)
                    f.seek(offset)
                    f.truncate()
                got = offset
                for chunk in body_chunks(r, chunk_size):
                    f.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    self.advance(len(chunk))
                    if self.client.stop.is_set():
                        raise _Ended(Result.ABORTED, "deadline")
        except requests.RequestException as e:
            have = self.part.stat().st_size if self.part.exists() else 0
            raise _Ended(
                Result.RETRY, f"{short_error(e)} after {have} of {total} bytes (resuming)"
            ) from None
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                self._discard()
                raise DiskFullError(
                    f"{self.folder}: disk full while writing {self.name} ({e.strerror}); free "
                    "space or run `rtofs prune --keep-days N`, then crawl again"
                ) from None
            raise
        return got, h.hexdigest()

    def _finish(self, got: int, total: int, sha256: str) -> Outcome:
        """Verify the complete file and give it its real name."""
        if got != total:
            if got > total:
                self._discard()
            return Outcome(Result.RETRY, f"received {got} of {total} bytes (resuming)")
        try:
            verify_file(self.part, self.product, self.step, self.date)
        except RtofsFileError as e:
            self._discard()
            return Outcome(
                Result.NOT_READY, f"complete download does not open as {self.product}: {e.problem}"
            )
        atomic.commit(self.part, self.final, fsync=self.options.fsync)
        landed = dt.datetime.now(dt.UTC)
        self.meta_path.unlink(missing_ok=True)
        return Outcome(Result.DONE, size=total, sha256=sha256, landed=landed)

    # -- helpers ---------------------------------------------------------------------------

    def _discard(self) -> None:
        """Remove the partial file and its record (the next attempt starts over)."""
        self.part.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    def _check_space(self, need: int) -> None:
        """Raise :class:`DiskFullError` unless ``need`` bytes and the reserve fit."""
        reserve = self.options.reserve_bytes
        where = self.folder if self.folder.exists() else self.folder.parent  # the archive root
        free = shutil.disk_usage(where).free
        if need + reserve > free:
            raise DiskFullError(
                f"{self.folder}: {free / 1e6:.1f} MB free, {self.name} needs {need / 1e6:.1f} MB "
                f"(+{reserve / 1e6:.0f} MB reserve); free space or run "
                "`rtofs prune --keep-days N`, then crawl again"
            )


def _read_json(path: Path) -> dict:
    """The JSON object in ``path``; ``{}`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
