"""What a crawl tells people: progress while it runs, and the report of the day after.

>>> report = CrawlReport("20260708", wanted=["rtofs_glo_2ds_n024_prog.nc"])
>>> report.kept.append("rtofs_glo_2ds_n024_prog.nc")
>>> report.status, report.exit_status
(<RunStatus.COMPLETE: 'complete'>, <ExitStatus.OK: 0>)
>>> describe_missing("20260708", ["rtofs_glo_2ds_f075_prog.nc", "rtofs_glo_2ds_f078_prog.nc"])
['not on the server yet: 2 files of forecast days 4-8 (published about 15:45 UTC): prog f075-f078']
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rtofs_lib.fetch import names
from rtofs_lib.status import ExitStatus, RunStatus

__all__ = ["CrawlReport", "Progress", "describe_missing", "wave"]

log = logging.getLogger(__name__)


@dataclass
class CrawlReport:
    """What a crawl of one day did, and what is still missing."""

    date: str
    wanted: list[str] = field(default_factory=list)
    downloaded: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    not_listed: list[str] = field(default_factory=list)
    not_ready: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    day_note: str = ""
    source: str = ""
    fatal: str = ""
    seconds: float = 0.0
    requests: int = 0
    follow: bool = False

    @property
    def present(self) -> int:
        """Files of the selection now in the archive, verified."""
        return len(self.downloaded) + len(self.kept)

    @property
    def status(self) -> RunStatus:
        """Complete, partial or failed."""
        if self.fatal:
            return RunStatus.FAILED
        if self.wanted and self.present == len(self.wanted):
            return RunStatus.COMPLETE
        if self.present == 0 and (self.failed or self.day_note or not self.wanted):
            return RunStatus.FAILED
        return RunStatus.PARTIAL

    @property
    def exit_status(self) -> ExitStatus:
        """The ``rtofs crawl`` exit status: OK complete, PARTIAL partial, FAILED failed."""
        return self.status.exit_status

    @property
    def bytes(self) -> int:
        """Bytes downloaded by this run."""
        return sum(self.downloaded.values())

    def summary(self) -> str:
        """A few lines for people and the journal."""
        rate = self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0
        lines = [
            f"rtofs crawl {self.date}: {self.status}: {self.present}/{len(self.wanted)} files in "
            f"the archive ({len(self.downloaded)} fetched, {self.bytes / 1e6:.1f} MB in "
            f"{self.seconds:.1f} s, {rate:.1f} MB/s; {len(self.kept)} already there; "
            f"{self.requests} requests{'; listing from ' + self.source if self.source else ''})"
        ]
        if self.fatal:
            lines.append(f"  stopped: {self.fatal}")
        if self.day_note:
            lines.append(f"  {self.day_note}")
        if self.not_listed:
            lines.extend(f"  {line}" for line in describe_missing(self.date, self.not_listed))
        for title, items in (
            ("still being written, retry later", self.not_ready),
            ("failed", self.failed),
        ):
            if items:
                lines.append(f"  {title}: {len(items)} files")
                lines.extend(f"    {n}: {why}" for n, why in sorted(items.items())[:10])
                if len(items) > 10:
                    lines.append(f"    … and {len(items) - 10} more")
        if self.unfinished:
            lines.append(
                f"  not attempted before the deadline: {len(self.unfinished)} files "
                "(partial downloads are kept and resumed by the next run)"
            )
        if self.follow and (self.not_listed or self.not_ready or self.unfinished):
            lines.append("  followed the listing until the deadline; the next run fetches the rest")
        return "\n".join(lines)


def wave(product: str, step: str) -> str:
    """The daily publication wave of a step (see ``shared/rtofs/format.md`` §2.2).

    >>> wave("prog", "n024")
    'nowcasts (published about 03:30 UTC)'
    """
    kind, hours = names.parse_step(step)
    if kind == "n":
        return "nowcasts (published about 03:30 UTC)"
    last_early = 72 if names.family(product) == "2ds" else 96
    if hours <= last_early:
        return "forecast days 1-3 (published about 09:45 UTC)"
    return "forecast days 4-8 (published about 15:45 UTC)"


def _compress_steps(steps: Sequence[str], product: str) -> str:
    order = names.steps_for(product)
    idx = sorted(order.index(s) for s in steps)
    runs: list[tuple[int, int]] = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return ",".join(order[a] if a == b else f"{order[a]}-{order[b]}" for a, b in runs)


def describe_missing(date: str, missing: Iterable[str]) -> list[str]:
    """Group files a server does not list yet by publication wave, as readable lines."""
    groups: dict[str, dict[str, list[str]]] = {}
    for name in missing:
        n = names.parse_name(name)
        groups.setdefault(wave(n.product, n.step), {}).setdefault(n.product, []).append(n.step)
    lines = []
    for w, by_product in groups.items():
        count = sum(len(v) for v in by_product.values())
        detail = "; ".join(f"{p} {_compress_steps(s, p)}" for p, s in by_product.items())
        lines.append(f"not on the server yet: {count} files of {w}: {detail}")
    return lines


class Progress:
    """tqdm bytes bar with a files count on a terminal; log lines otherwise.

    ``mode`` is ``"auto"`` (a bar on a terminal), ``"bar"``, ``"log"`` or ``"off"``.
    """

    def __init__(self, mode: str, total_files: int = 0, total_bytes: int = 0) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode = mode
        self.total_files = 0
        self.files = 0
        self.bar = None
        self.add(total_files, total_bytes)

    def add(self, files: int, nbytes: int) -> None:
        """Count ``files`` more files of ``nbytes`` bytes to fetch (a followed listing grows)."""
        self.total_files += files
        if self.mode != "bar" or not files:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=nbytes or None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{self.files}/{self.total_files} files",
                dynamic_ncols=True,
            )
        else:
            self.bar.total = (self.bar.total or 0) + nbytes
            self.bar.set_description(f"{self.files}/{self.total_files} files")

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more bytes received."""
        if self.bar is not None:
            self.bar.update(nbytes)

    def done(self, name: str, size: int, seconds: float) -> None:
        """Count one more file fetched."""
        self.files += 1
        if self.bar is not None:
            self.bar.set_description(f"{self.files}/{self.total_files} files")
        elif self.mode == "log":
            log.info(
                "fetched %s (%.1f MB in %.1f s, %.1f MB/s) [%d/%d]",
                name,
                size / 1e6,
                seconds,
                size / 1e6 / max(seconds, 1e-6),
                self.files,
                self.total_files,
            )

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
