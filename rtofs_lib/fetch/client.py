"""The crawler's polite HTTP side: one session, a request-rate cap, backoff, one deadline.

Every request of a crawl goes through one :class:`Client`: a descriptive User-Agent, a
token-bucket rate cap (:class:`RateLimiter`), no redirects followed, exponential backoff with
jitter (:func:`backoff_delay`), a pause of every request on 403/429/3xx honouring
``Retry-After`` (:func:`retry_after`), and a deadline after which nothing new starts.

>>> 8.0 <= backoff_delay(3, base=2.0, cap=300.0) <= 16.0  # 2 s * 2**3, halved by jitter
True
>>> retry_after("120"), retry_after("soon")
(120.0, None)
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rtofs_lib import __version__

if TYPE_CHECKING:
    from rtofs_lib.fetch.crawler import CrawlOptions

__all__ = ["USER_AGENT", "Client", "RateLimiter", "backoff_delay", "retry_after", "short_error"]

log = logging.getLogger(__name__)

USER_AGENT = (
    f"rtofs-lib/{__version__} (RTOFS ocean platform crawler; daily archive of Global RTOFS "
    "netCDF; <=2 connections, <120 requests/min)"
)


class RateLimiter:
    """Token bucket: ``per_minute`` requests a minute, bursts of ``burst``; a shared pause.

    In any 60 s window at most ``per_minute + burst`` requests start (105 with the defaults,
    under NOMADS' 120). :meth:`pause` holds every request (a 403/429/302 from the server).
    """

    def __init__(
        self, per_minute: float, burst: int = 5, clock: Callable[[], float] = time.monotonic
    ):
        if per_minute <= 0:
            raise ValueError(f"request rate must be positive, not {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Hold all requests for ``seconds`` from now."""
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)

    def acquire(self, stop: threading.Event, deadline: float) -> bool:
        """Wait for a token; False when ``stop`` is set or ``deadline`` comes first."""
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait_for = max(0.0, self.paused_until - now)
                if wait_for == 0.0:
                    if self.tokens >= 1.0:
                        self.tokens -= 1.0
                        return True
                    wait_for = (1.0 - self.tokens) / self.rate
            if now + wait_for > deadline or stop.wait(min(wait_for, 1.0)):
                return False


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2**attempt)."""
    d = min(cap, base * 2 ** max(0, attempt))
    return (rng or random).uniform(d / 2, d)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def short_error(e: BaseException) -> str:
    """A one-line account of a requests error, for logs and reports.

    >>> short_error(TimeoutError("HTTPConnectionPool: Read timed out. (read timeout=60)"))
    'TimeoutError: Read timed out'
    """
    text = str(e)
    for key in (
        "Read timed out",
        "timed out",
        "Connection refused",
        "IncompleteRead",
        "Connection broken",
        "RemoteDisconnected",
        "reset by peer",
    ):
        if key in text:
            return f"{type(e).__name__}: {key}"
    return f"{type(e).__name__}: {text[:160]}"


def body_chunks(response: Any, size: int) -> Iterable[bytes]:
    """Yield the body as it arrives, so bytes before a cut connection are kept for resume."""
    import requests
    import urllib3

    raw = response.raw
    try:
        while chunk := raw.read1(size, decode_content=True):
            yield chunk
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise requests.ConnectionError(f"connection broken: {e!r}") from e


def is_throttle(code: int) -> bool:
    """Whether an HTTP status asks the crawler to slow down (403, 429, any redirect)."""
    return code in (403, 429) or 300 <= code < 400


class Client:
    """The HTTP side of one crawl: a session, the rate cap, the stop event and the deadline.

    Parameters
    ----------
    base_url
        URL of the production root holding the day folders (a final ``/`` is added).
    options
        The crawl's :class:`~rtofs_lib.fetch.crawler.CrawlOptions`.
    """

    def __init__(self, base_url: str, options: CrawlOptions) -> None:
        import requests  # heavy-ish; keep `rtofs --help` fast

        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.options = options
        self.session = requests.Session()
        self.session.headers["User-Agent"] = options.user_agent
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=2, pool_maxsize=max(2, options.parallel + 1), max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.limiter = RateLimiter(options.rate_per_minute, options.burst)
        self.stop = threading.Event()
        self.requests = 0
        self._count_lock = threading.Lock()
        self.start = time.monotonic()
        self.deadline = self.start + options.deadline
        self.rng = random.Random()

    def get(self, url: str, headers: dict[str, str] | None = None, *, stream: bool = False):
        """One rate-limited request (no redirects followed); None when the deadline came."""
        if not self.limiter.acquire(self.stop, self.deadline):
            return None
        with self._count_lock:
            self.requests += 1
        return self.session.get(
            url,
            headers=headers or {},
            stream=stream,
            allow_redirects=False,
            timeout=(self.options.connect_timeout, self.options.read_timeout),
        )

    def backoff(self, attempt: int) -> float:
        """The backoff delay before retry number ``attempt`` (0 = the first)."""
        return backoff_delay(attempt, self.options.backoff_base, self.options.backoff_max, self.rng)

    def throttle_wait(self, response: Any) -> float:
        """Seconds to pause every request after a throttling ``response``."""
        wait_s = retry_after(response.headers.get("Retry-After"))
        if wait_s is None:
            wait_s = self.backoff(2)
        return min(wait_s, self.options.max_pause)

    def fetch_text(self, url: str) -> tuple[int, str]:
        """GET a small text resource with retries; return (status, text); status 0 = unreachable."""
        import requests

        last = ""
        for attempt in range(self.options.retries):
            if time.monotonic() >= self.deadline:
                break
            try:
                r = self.get(url)
                if r is None:
                    break
                with r:
                    if r.status_code == 200:
                        return 200, r.text
                    if r.status_code == 404:
                        return 404, ""
                    last = f"HTTP {r.status_code}"
                    if is_throttle(r.status_code):
                        pause = self.throttle_wait(r)
                        log.warning("%s: %s, pausing all requests %.1f s", url, last, pause)
                        self.limiter.pause(pause)
                        continue
                    if r.status_code < 500:
                        return r.status_code, ""
            except requests.RequestException as e:
                last = short_error(e)
            delay = self.backoff(attempt)
            log.warning("%s: %s; retrying in %.1f s", url, last, delay)
            self.stop.wait(min(delay, max(0.0, self.deadline - time.monotonic())))
        log.warning("%s: giving up (%s)", url, last or "deadline")
        return 0, last
