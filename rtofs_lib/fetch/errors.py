"""Why a crawl stops: the errors that end a whole run rather than one file.

>>> issubclass(CrawlLockedError, CrawlError), issubclass(DiskFullError, OSError)
(True, True)
"""

from __future__ import annotations

from rtofs_lib.errors import RtofsError

__all__ = ["CrawlError", "CrawlLockedError", "DiskFullError"]


class CrawlError(RtofsError):
    """The crawl cannot go on (a lock held by another crawler, a full disk, no listing)."""


class DiskFullError(CrawlError, OSError):
    """The archive lacks the space for the next download."""


class CrawlLockedError(CrawlError):
    """Another crawler works on the same archive."""
