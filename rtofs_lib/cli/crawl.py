"""``rtofs crawl``: fetch a day from NOMADS; ``rtofs prune``: drop old days from the archive."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtofs_lib.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``crawl`` and ``prune`` sub-commands."""
    p = subparsers.add_parser(
        "crawl",
        help="fetch one day of RTOFS files from NOMADS into the archive",
        description=(
            "Fetch the selected RTOFS files of one cycle day into ARCHIVE/rtofs.YYYYMMDD/, "
            "verified, resumable and politely rate-limited; each file that lands gets a record "
            "in ARCHIVE/landed/ for `rtofs stream`. With --follow, list the day again every "
            "--interval and fetch each file as soon as NOAA publishes it, until the selection "
            "is complete or the deadline passes. Exit status: 0 complete, "
            "3 partial (the server has not published everything yet, or some files failed), "
            "1 failed. Defaults come from the rtofs configuration."
        ),
    )
    p.add_argument(
        "--date",
        default="latest",
        help="YYYYMMDD or 'latest' (default: the newest day on the server; with --follow, "
        "today's UTC cycle)",
    )
    p.add_argument("--products", help="products, e.g. prog,diag or all (default: config)")
    p.add_argument("--steps", help="steps, e.g. n024,f000-f072 or all (default: config)")
    p.add_argument("--archive", help="archive root (default: config)")
    p.add_argument("--base-url", help="production root holding rtofs.YYYYMMDD/ (default: config)")
    p.add_argument("--parallel", type=int, help="downloads at once (default: config, 2)")
    p.add_argument("--rate", type=float, help="requests per minute (default: config, 100)")
    p.add_argument(
        "--deadline",
        help="stop after this long, e.g. 90m, 4h, 600 (seconds) (default: config, 4h)",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep listing the day and fetch each file as soon as it is listed, until the "
        "selection is complete or the deadline passes (a day not on the server yet is waited for)",
    )
    p.add_argument(
        "--interval",
        help="with --follow: time between two listings, e.g. 60, 30s, 2m "
        "(default: config crawl_follow_interval, 60s)",
    )
    p.add_argument(
        "--size-floor",
        help="'auto' (real floors on the NOMADS host only), 'off', or e.g. prog=140M,diag=175M "
        "(default: config, auto)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "off"),
        default="auto",
        help="progress bar on a terminal, log lines otherwise (default auto)",
    )
    p.set_defaults(func=run_crawl)

    q = subparsers.add_parser(
        "prune",
        help="delete archive days older than --keep-days",
        description=(
            "Delete rtofs.YYYYMMDD folders older than N days (UTC) from the archive, with "
            "their landed records."
        ),
    )
    q.add_argument("--keep-days", type=int, help="days to keep, today included (default: config)")
    q.add_argument("--archive", help="archive root (default: config)")
    q.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    q.set_defaults(func=run_prune)


def parse_duration(text: str, source: str = "--deadline") -> float:
    """Return seconds from ``600``, ``90s``, ``90m`` or ``4h``; ``source`` names it in errors."""
    from rtofs_lib.errors import ConfigError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise ConfigError(f"{source}: bad duration {text!r}; write e.g. 600, 90m or 4h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def parse_floors(text: str, source: str = "--size-floor") -> str | dict[str, int]:
    """Return ``auto``, ``off`` or a dict from ``prog=140M,diag=175M``; ``source`` names it."""
    from rtofs_lib.errors import ConfigError
    from rtofs_lib.fetch import names
    from rtofs_lib.fetch.listing import parse_size

    if text in ("auto", "off"):
        return text
    out = {}
    for item in text.split(","):
        product, _, size = item.partition("=")
        product = product.strip()
        names.family(product)
        try:
            value = parse_size(size)
        except ValueError:
            value = None
        if value is None:
            raise ConfigError(f"{source}: bad size {size!r} for {product}; write e.g. prog=140M")
        out[product] = value
    return out


def follow_interval(args: argparse.Namespace, settings: Settings) -> float:
    """Seconds between two listings of a followed day, from ``--interval`` or the setting.

    Raises
    ------
    ConfigError
        If it is not a positive duration, or ``--interval`` comes without ``--follow``.
    """
    from rtofs_lib.errors import ConfigError

    if args.interval is not None and not args.follow:
        raise ConfigError("--interval: only applies with --follow; add --follow or drop it")
    text, source = (
        (args.interval, "--interval")
        if args.interval is not None
        else (settings.crawl_follow_interval, "setting crawl_follow_interval")
    )
    seconds = parse_duration(text, source)
    if seconds <= 0:
        raise ConfigError(f"{source}: must be more than 0 seconds, not {text!r}; write e.g. 60s")
    return seconds


def run_crawl(args: argparse.Namespace) -> int:
    """Run ``rtofs crawl``."""
    import logging
    from dataclasses import replace
    from pathlib import Path

    from rtofs_lib import config
    from rtofs_lib.fetch.crawler import CrawlOptions, crawl

    settings = config.load()
    options = CrawlOptions(
        parallel=args.parallel or settings.crawl_parallel,
        rate_per_minute=args.rate or settings.crawl_rate_per_minute,
        size_floors=(
            parse_floors(args.size_floor)
            if args.size_floor
            else parse_floors(settings.crawl_size_floor, "setting crawl_size_floor")
        ),
        progress=args.progress,
    )
    deadline = (
        parse_duration(args.deadline)
        if args.deadline
        else parse_duration(settings.crawl_deadline, "setting crawl_deadline")
    )
    options = replace(options, deadline=deadline, follow_interval=follow_interval(args, settings))
    report = crawl(
        Path(args.archive) if args.archive else settings.archive,
        args.date,
        base_url=args.base_url or settings.base_url,
        products=args.products or settings.products,
        steps=args.steps or settings.steps,
        options=options,
        follow=args.follow,
    )
    logging.getLogger("rtofs_lib.fetch.crawler").info("crawl done: %s", report.status)
    print(report.summary(), flush=True)
    return report.exit_status


def run_prune(args: argparse.Namespace) -> int:
    """Run ``rtofs prune``."""
    from pathlib import Path

    from rtofs_lib import config
    from rtofs_lib.fetch import catalog
    from rtofs_lib.fetch.lock import archive_lock
    from rtofs_lib.status import ExitStatus

    settings = config.load()
    archive = Path(args.archive) if args.archive else settings.archive
    keep = args.keep_days if args.keep_days is not None else settings.keep_days
    if keep < 1:
        print(f"rtofs prune: error: --keep-days must be at least 1, not {keep}")
        return ExitStatus.USAGE
    with archive_lock(archive):
        gone = catalog.prune(archive, keep, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for folder in gone:
        print(f"{verb} {folder}")
    print(
        f"rtofs prune: {verb} {len(gone)} day folders (and their landed records); "
        f"kept the last {keep} days of {archive}"
    )
    return ExitStatus.OK
