"""The dashboard: ``maps/index.html``, ``maps/days.json`` and ``maps/rtofs.YYYYMMDD/index.json``.

``index.json`` lists a day's steps with their maps (paths relative to the day folder), when
each file landed and was published (and the latency between), failures and region
statistics. ``index.html`` is one self-contained page built from every day's ``index.json``:
the latest published map first, then each day, the latest first: the latency summary and
per-file table, the failed files with their errors, the region statistics as an inline SVG
plot, each step's low-resolution map as a thumbnail linking to its high-resolution map.

The page works as a file and without JavaScript. Served over HTTP (the dashboard service,
``Cache-Control: no-cache``) its inline script polls the latest day's ``index.json`` every
second and ``days.json`` every five seconds, and adds new steps, failures, latencies and
days in place, without a reload.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtofs_lib import atomic
from rtofs_lib.fetch import names
from rtofs_lib.jobs.page import (
    DAY_INDEX,
    SHOWN_DAYS,
    html_page,
    latency_summary,
    latest_step,
    stats_svg,
)
from rtofs_lib.jobs.work import FileStatus

__all__ = [
    "DAYS_JSON",
    "DAY_INDEX",
    "INDEX_HTML",
    "SHOWN_DAYS",
    "latency_summary",
    "latest_step",
    "listed_stems",
    "read_days",
    "stats_svg",
    "write_day_index",
    "write_days",
    "write_index",
]

#: The dashboard page inside ``maps/``.
INDEX_HTML = "index.html"
#: The list of days beside ``index.html`` (polled by the page for a new day).
DAYS_JSON = "days.json"


def _maps_of(day: Path, stem: str) -> dict[str, dict[str, str]]:
    """``{field: {size: "stem/field.size.png"}}`` for the maps present on disk."""
    out: dict[str, dict[str, str]] = {}
    folder = day / stem
    if not folder.is_dir():
        return out
    for png in sorted(folder.glob("*.png")):
        parts = png.name.split(".")
        if len(parts) == 3:
            out.setdefault(parts[0], {})[parts[1]] = f"{stem}/{png.name}"
    return out


def _now() -> str:
    from rtofs_lib.fetch.landed import utc_stamp

    return utc_stamp()


def _seconds_between(landed: str | None, published: str) -> float | None:
    if not landed:
        return None
    t0 = dt.datetime.fromisoformat(landed.replace("Z", "+00:00"))
    t1 = dt.datetime.fromisoformat(published.replace("Z", "+00:00"))
    return round((t1 - t0).total_seconds(), 3)


def _read_day_index(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def listed_stems(index: str | Path) -> set[str]:
    """The stems of the steps an ``index.json`` lists (empty when it is missing or bad)."""
    return {s["stem"] for s in _read_day_index(Path(index)).get("steps", []) if "stem" in s}


def _step_order(step: str) -> tuple[int, str]:
    order = {s: i for i, s in enumerate(names.steps_for("prog"))}
    return (order.get(step, len(order)), step)


def write_day_index(
    maps: str | Path,
    date: str | dt.date,
    results: Sequence[Any],
    *,
    landed: dict[str, str] | None = None,
) -> Path:
    """Publish results into ``maps/rtofs.YYYYMMDD/index.json``, keeping the other steps.

    The day's listing is updated, not rebuilt: each result replaces its step's entry
    (or its failure), so the stream can publish one file at a time. A step entry records
    when its file ``landed`` (from its landed record), when it was first ``published``
    for that content and the ``latency_s`` between them; a file that is merely up to
    date keeps the entry it has.

    Parameters
    ----------
    maps
        The maps folder.
    date
        The cycle date.
    results
        :class:`rtofs_lib.jobs.work.FileResult` objects of the day (any status).
    landed
        File name -> landed time (ISO UTC) of the files' landed records.

    Returns
    -------
    Path
        The written ``index.json``.
    """
    cycle = names.parse_date(date)
    day = Path(maps) / names.day_folder(cycle)
    day.mkdir(parents=True, exist_ok=True)
    old = _read_day_index(day / DAY_INDEX)
    steps = {s["stem"]: s for s in old.get("steps", []) if isinstance(s, dict) and "stem" in s}
    failed = {f["file"]: f for f in old.get("failed", []) if isinstance(f, dict) and "file" in f}
    rows = {r.get("step"): [] for r in old.get("region_stats", [])}
    for r in old.get("region_stats", []):
        rows[r.get("step")].append(r)
    landed = landed or {}
    now = _now()
    for r in results:
        if r.status == FileStatus.NO_SPACE:
            continue  # nothing was written; it is published when it is rendered
        name = Path(r.path).name
        parsed = names.parse_name(name, date=cycle)
        when = landed.get(name)
        if r.status == FileStatus.FAILED:
            steps.pop(parsed.stem, None)
            rows.pop(parsed.step, None)
            failed[name] = {
                "file": name, "step": parsed.step, "error": r.error,
                "landed": when, "failed_at": now,
            }  # fmt: skip
            continue
        failed.pop(name, None)
        prior = steps.get(parsed.stem)
        fresh = (
            prior is None
            or r.status == FileStatus.RENDERED
            or (when is not None and prior.get("landed") != when)
        )
        entry = {
            "stem": parsed.stem,
            "step": parsed.step,
            "valid_time": parsed.valid_time.isoformat(),
            "maps": _maps_of(day, parsed.stem),
            "landed": when if fresh else prior.get("landed"),
            "published": now if fresh else prior.get("published"),
        }
        entry["latency_s"] = (
            _seconds_between(entry["landed"], entry["published"])
            if fresh
            else prior.get("latency_s")
        )
        steps[parsed.stem] = entry
        if r.stats:
            rows[parsed.step] = [
                {
                    k: row.get(k)
                    for k in ("step", "valid_time", "field", "region", "mean", "min", "max")
                }
                for row in r.stats
            ]
    ordered = sorted(steps.values(), key=lambda s: _step_order(s["step"]))
    doc = {
        "date": f"{cycle:%Y%m%d}",
        "generated": old.get("generated") or now,
        "updated": now,
        "fields": sorted({f for s in ordered for f in s["maps"]}),
        "steps": ordered,
        "failed": sorted(failed.values(), key=lambda f: _step_order(f["step"])),
        "region_stats": [
            row for step in sorted(rows, key=lambda s: _step_order(s or "")) for row in rows[step]
        ],
    }
    return atomic.write_json(day / DAY_INDEX, doc)


def read_days(maps: str | Path) -> list[dict[str, Any]]:
    """Return every day's ``index.json`` under ``maps``, latest day first."""
    docs = []
    for p in Path(maps).glob(f"{names.DAY_PREFIX}*/{DAY_INDEX}"):
        try:
            docs.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a listing being replaced; the next run rewrites the page
    return sorted(docs, key=lambda d: d.get("date", ""), reverse=True)


def write_days(maps: str | Path, days: Sequence[dict[str, Any]] | None = None) -> Path:
    """Write ``maps/days.json``: every day with its ``index.json`` path, latest first.

    The live page polls it (every few seconds) to notice a new day, and its ``updated``
    time to notice that ``index.html`` was rewritten.

    >>> import tempfile, pathlib
    >>> maps = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_day_index(maps, "20260708", [])
    >>> doc = json.loads(write_days(maps).read_text())
    >>> doc["days"]
    [{'date': '20260708', 'index': 'rtofs.20260708/index.json'}]
    """
    maps = Path(maps)
    days = read_days(maps) if days is None else days
    doc = {
        "updated": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "days": [
            {"date": d["date"], "index": f"{names.DAY_PREFIX}{d['date']}/{DAY_INDEX}"} for d in days
        ],
    }
    return atomic.write_json(maps / DAYS_JSON, doc)


def write_index(maps: str | Path, *, title: str = "RTOFS maps") -> Path:
    """Write ``maps/index.html`` (and ``maps/days.json``) from every day's ``index.json``.

    The page (:func:`rtofs_lib.jobs.page.html_page`) is complete without JavaScript; its
    inline script polls the latest day's ``index.json`` every second and ``days.json`` every
    five, and adds new steps, failures, latencies and days in place, without a reload.
    """
    maps = Path(maps)
    maps.mkdir(parents=True, exist_ok=True)
    days = read_days(maps)
    write_days(maps, days)
    return atomic.write_text(maps / INDEX_HTML, html_page(days, title=title))
