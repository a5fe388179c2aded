"""Apache ``mod_autoindex`` pages and ``ls -l`` listings, in NOMADS' layout, byte for byte.

The layout copies ``shared/rtofs/nomads_listing_rtofs.20260708.html``: name column as wide
as the longest name plus one, ``DD-Mon-YYYY HH:MM`` dates in UTC, ``apr_strfsize`` sizes
(``60K``, ``149M``, ``3.1G``), names in APR's natural order (``VersionSort IgnoreCase``).

Examples
--------
>>> page = index_page("/pub/rtofs.20260708", "/pub/", [("f001.nc", 0.0, 61440)])
>>> print(page.splitlines()[-3])
<a href="f001.nc">f001.nc</a>          01-Jan-1970 00:00   60K
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import time
from collections.abc import Iterable

__all__ = ["index_page", "ls_l_text", "strfsize", "strnatcmp"]

_HEAD = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
    "<html>\n"
    " <head>\n"
    "  <title>Index of {title}</title>\n"
    ' <script>NS_CSM_td=0;NS_CSM_pd=0;NS_CSM_u="/clm10";NS_CSM_col="";</script>'
    '<script type="text/javascript">function sendTimingInfoInit(){{setTimeout('
    "sendTimingInfo,0)}}function sendTimingInfo(){{}}if(window.addEventListener)"
    'window.addEventListener("load",sendTimingInfoInit,false);</script></head>\n'
    " <body>\n"
    "<h1>Index of {title}</h1>\n"
)
_TAIL = "<hr></pre>\n</body></html>\n"


def strfsize(size: int) -> str:
    """Return ``size`` as Apache's ``apr_strfsize`` prints it: four characters, binary units.

    Examples
    --------
    >>> [strfsize(n) for n in (0, 512, 61440, 156237824, 3328599654, -1)]
    ['  0 ', '512 ', ' 60K', '149M', '3.1G', '  - ']
    """
    if size < 0:
        return "  - "
    if size < 973:
        return f"{size:3d} "
    for unit in "KMGTPE":
        remain = size & 1023
        size >>= 10
        if size >= 973:
            continue
        if size < 9 or (size == 9 and remain < 973):
            remain = (remain * 5 + 256) // 512
            if remain >= 10:
                size, remain = size + 1, 0
            return f"{size}.{remain}{unit}"
        if remain >= 512:
            size += 1
        return f"{size:3d}{unit}"
    return "****"  # pragma: no cover


def index_page(
    title: str, parent: str, entries: Iterable[tuple[str, float, int]], *, width: int | None = None
) -> str:
    """Return an Apache ``mod_autoindex`` page in the NOMADS layout.

    Parameters
    ----------
    title
        The URL path shown in the title and heading.
    parent
        Absolute href of the parent directory.
    entries
        ``(name, mtime, size)``; a name ending in ``/`` is a folder (size printed ``-``).
    width
        Name column width; default the longest name plus one (Apache ``NameWidth=*``).
    """
    rows = sorted(
        entries,
        key=functools.cmp_to_key(
            lambda x, y: strnatcmp(x[0], y[0]) or (x[0] > y[0]) - (x[0] < y[0])
        ),
    )
    if width is None:
        width = max([len("Parent Directory"), *(len(n) for n, _, _ in rows)]) + 1
    out = [_HEAD.format(title=html.escape(title))]
    out.append(
        "<pre>" + "Name".ljust(width) + "Last modified      Size  <hr>"
        f'<a href="{html.escape(parent)}">Parent Directory</a>'
        + " " * (width - len("Parent Directory") + 21)
        + "-\n"
    )
    for name, mtime, size in rows:
        when = dt.datetime.fromtimestamp(mtime, dt.UTC).strftime("%d-%b-%Y %H:%M")
        shown = strfsize(-1 if name.endswith("/") else size)
        line = f'<a href="{html.escape(name)}">{html.escape(name)}</a>'
        line += " " * (width - len(name)) + when + "  " + shown
        out.append(line.rstrip() + "\n")
    out.append(_TAIL)
    return "".join(out)


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def _compare_right(a: str, b: str, i: int, j: int) -> int:
    """Digit runs without a leading zero: the longer run is bigger, else the first difference."""
    bias = 0
    while True:
        ca, cb = a[i], b[j]
        if not _digit(ca) and not _digit(cb):
            return bias
        if not _digit(ca):
            return -1
        if not _digit(cb):
            return 1
        if ca < cb and not bias:
            bias = -1
        elif ca > cb and not bias:
            bias = 1
        i, j = i + 1, j + 1


def _compare_left(a: str, b: str, i: int, j: int) -> int:
    """Digit runs with a leading zero: digit by digit, as fractions."""
    while True:
        ca, cb = a[i], b[j]
        if not _digit(ca) and not _digit(cb):
            return 0
        if not _digit(ca):
            return -1
        if not _digit(cb):
            return 1
        if ca != cb:
            return -1 if ca < cb else 1
        i, j = i + 1, j + 1


def strnatcmp(a: str, b: str) -> int:
    """Compare names as APR's ``apr_strnatcasecmp`` (Apache ``VersionSort IgnoreCase``).

    Digit runs compare as numbers (``f11`` before ``f100``), except runs with a leading
    zero, which compare digit by digit (``f024`` before ``f03``).

    Examples
    --------
    >>> strnatcmp("f11", "f100"), strnatcmp("f024", "f03"), strnatcmp("N024", "n024")
    (-1, -1, 0)
    """
    a0, b0 = a.upper() + "\0", b.upper() + "\0"  # IgnoreCase, as NOMADS sorts
    i = j = 0
    while True:
        ca, cb = a0[i], b0[j]
        if _digit(ca) and _digit(cb):
            compare = _compare_left if "0" in (ca, cb) else _compare_right
            result = compare(a0, b0, i, j)
            if result:
                return result
        if ca == "\0" and cb == "\0":
            return 0
        if ca != cb:
            return -1 if ca < cb else 1
        i, j = i + 1, j + 1


def ls_l_text(entries: Iterable[tuple[str, float, int]]) -> str:
    """Return a plain ``ls -l`` listing of ``(name, mtime, size)`` files, as NOMADS' ``ls-l``."""
    rows = sorted(entries)
    now = time.time()
    lines = [f"total {sum(s for _, _, s in rows) // 1024}"]
    sw = max([1, *(len(str(s)) for _, _, s in rows)])
    for name, mtime, size in rows:
        t = dt.datetime.fromtimestamp(mtime, dt.UTC)
        recent = abs(now - mtime) < 180 * 86400
        when = f"{t:%b} {t.day:2d} " + (f"{t:%H:%M}" if recent else f" {t:%Y}")
        lines.append(f"-rw-r--r-- 1 nwprod rtofs {size:>{sw}d} {when} {name}")
    return "\n".join(lines) + "\n"
