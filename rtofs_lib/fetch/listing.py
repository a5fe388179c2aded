"""What NOMADS lists for a day: its Apache index page, or the plain ``ls-l`` file beside it.

Index pages give sizes rounded as Apache prints them (``149M``), ``ls-l`` files exact
ones; :meth:`RemoteEntry.size_range` says which byte counts a listed size allows. The
functions at the end read the root index (which days the server keeps) and a day's listing
through the crawl's :class:`~rtofs_lib.fetch.client.Client`.

Examples
--------
>>> from rtofs_lib.testing.nomads import index_page
>>> page = index_page("/x/rtofs.20260708", "/x/", [("rtofs_glo_2ds_f024_prog.nc", 0, 156237824)])
>>> [(e.name, e.size_text) for e in parse_index(page)]
[('rtofs_glo_2ds_f024_prog.nc', '149M')]
>>> parse_index(page)[0].size_range()
(155703050, 156772597)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin

from rtofs_lib.fetch import names
from rtofs_lib.fetch.errors import CrawlError

if TYPE_CHECKING:
    from rtofs_lib.fetch.client import Client

__all__ = [
    "Listing",
    "RemoteEntry",
    "day_note",
    "list_day",
    "parse_index",
    "parse_ls_l",
    "parse_size",
    "server_days",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteEntry:
    """One entry of a NOMADS listing.

    ``size`` is exact for ``ls-l`` listings; for index pages it is the rounded
    ``size_text`` (``149M``) read as binary units, and ``size_exact`` is False.
    """

    name: str
    modified: dt.datetime | None
    size: int | None
    size_text: str = ""
    size_exact: bool = False
    is_dir: bool = False

    def size_range(self) -> tuple[int, int] | None:
        """The byte sizes that print as this entry's size (None when unknown)."""
        if self.size is None:
            return None
        if self.size_exact:
            return self.size, self.size
        return _size_text_range(self.size_text)


_INDEX_RE = re.compile(
    r'<a href="([^"]+)">[^<]*</a>\s+(\d\d-[A-Za-z]{3}-\d{4} \d\d:\d\d)\s+(\S+)', re.IGNORECASE
)
_LS_RE = re.compile(
    r"^([-dlrwxsStT]{10})\S*\s+\d+\s+\S+\s+\S+\s+(\d+)\s+"
    r"([A-Z][a-z]{2}\s+\d{1,2}\s+(?:\d\d:\d\d|\d{4}))\s+(.+)$"
)
_UNITS = "KMGTPE"


def parse_size(text: str) -> int | None:
    """Return the bytes of an Apache size such as ``149M``, ``3.1G``, ``60K`` (None for ``-``).

    Examples
    --------
    >>> parse_size("149M"), parse_size("3.1G"), parse_size("512"), parse_size("-")
    (156237824, 3328599654, 512, None)
    """
    text = text.strip()
    if not text or text == "-":
        return None
    if text[-1].upper() in _UNITS:
        return int(float(text[:-1]) * 1024 ** (_UNITS.index(text[-1].upper()) + 1))
    return int(text)


def _size_text_range(text: str) -> tuple[int, int]:
    """The interval of byte counts that ``apr_strfsize`` prints as ``text``."""
    text = text.strip()
    if text[-1].upper() not in _UNITS:
        n = int(text)
        return n, n
    scale = 1024 ** (_UNITS.index(text[-1].upper()) + 1)
    num = text[:-1]
    step = 0.1 if "." in num else 1.0
    value = float(num)
    return int((value - step / 2 - 0.01) * scale), int((value + step / 2 + 0.01) * scale)


def parse_index(page: str) -> list[RemoteEntry]:
    """Parse an Apache ``mod_autoindex`` page (the NOMADS layout) into entries.

    Names come from the ``href`` (the link text may be cut by Apache); each href counts
    once; the parent link and query links are skipped; folders keep their trailing ``/``
    in :attr:`RemoteEntry.is_dir` and lose it in the name.
    """
    seen: dict[str, RemoteEntry] = {}
    for href, when, size in _INDEX_RE.findall(page):
        href = html.unescape(href)
        if href.startswith(("/", "?", "http:", "https:")) or href in seen:
            continue
        is_dir = href.endswith("/")
        name = href.rstrip("/")
        if not name or "/" in name:
            continue
        try:
            modified = dt.datetime.strptime(when, "%d-%b-%Y %H:%M")
        except ValueError:
            modified = None
        seen[href] = RemoteEntry(name, modified, parse_size(size), size, False, is_dir)
    return list(seen.values())


def parse_ls_l(text: str) -> list[RemoteEntry]:
    """Parse a plain ``ls -l`` listing (NOMADS' ``ls-l`` file) into entries with exact sizes.

    >>> line = "-rw-r--r-- 1 nwprod prod 156237824 Jul  8 09:11 rtofs_glo_2ds_f024_prog.nc"
    >>> [(e.name, e.size, e.size_exact) for e in parse_ls_l(line)]
    [('rtofs_glo_2ds_f024_prog.nc', 156237824, True)]
    """
    out: dict[str, RemoteEntry] = {}
    for line in text.splitlines():
        m = _LS_RE.match(line.strip())
        if not m:
            continue
        mode, size, _when, name = m.groups()
        name = name.split(" -> ", 1)[0].strip()
        if mode.startswith("l") or name in out:
            continue
        out[name] = RemoteEntry(name, None, int(size), size, True, mode.startswith("d"))
    return list(out.values())


@dataclass
class Listing:
    """What the server lists for one day: entries by name, and where they came from."""

    date: str
    entries: dict[str, RemoteEntry]
    source: Literal["index", "ls-l"]


# --- reading listings from the server ---------------------------------------------------------


def server_days(client: Client) -> list[str]:
    """Return the ``YYYYMMDD`` day folders the root index lists, oldest first.

    Raises
    ------
    CrawlError
        If the root index cannot be read or lists no day folder.
    """
    status, text = client.fetch_text(client.base_url)
    if status != 200:
        raise CrawlError(
            f"{client.base_url}: cannot read the root index ({text or f'HTTP {status}'}); "
            "check --base-url and the network"
        )
    days = []
    for e in parse_index(text):
        with contextlib.suppress(names.NotRtofsNameError):
            days.append(f"{names.parse_day_folder(e.name):%Y%m%d}")
    if not days:
        raise CrawlError(f"{client.base_url}: the root index lists no rtofs.YYYYMMDD folder")
    return sorted(days)


def list_day(client: Client, date: str) -> Listing | None:
    """Return the day's listing (index page, else ``ls-l``); None when the day is absent.

    Raises
    ------
    CrawlError
        If neither the index page nor ``ls-l`` can be read.
    """
    folder = urljoin(client.base_url, names.day_folder(date) + "/")
    status, text = client.fetch_text(folder)
    if status == 404:
        return None
    if status == 200:
        entries = [e for e in parse_index(text) if not e.is_dir]
        if entries:
            return Listing(date, {e.name: e for e in entries}, "index")
        log.warning("%s: index page lists no files; trying ls-l", folder)
    else:
        log.warning("%s: index unavailable (%s); trying ls-l", folder, text or status)
    status2, text2 = client.fetch_text(urljoin(folder, "ls-l"))
    if status2 == 200:
        entries = [e for e in parse_ls_l(text2) if not e.is_dir]
        return Listing(date, {e.name: e for e in entries}, "ls-l")
    if status == 404 or status2 == 404:
        return None
    raise CrawlError(
        f"{folder}: neither the index page nor ls-l could be read "
        f"({text or status}; {text2 or status2}); try again later"
    )


def day_note(client: Client, date: str) -> str:
    """Say why the server has no folder for ``date`` (too old, not yet, or a gap)."""
    try:
        days = server_days(client)
    except CrawlError as e:
        return f"rtofs.{date} is not on the server, and {e}"
    if date < days[0]:
        return (
            f"rtofs.{date} is no longer on the server (it keeps about two days; oldest now "
            f"rtofs.{days[0]}); nothing more can be fetched for that day"
        )
    if date > days[-1]:
        return f"rtofs.{date} is not on the server yet (newest is rtofs.{days[-1]})"
    return f"rtofs.{date} is not on the server (it has {', '.join(days)})"
