"""The static dashboard: ``maps/index.html`` and ``maps/rtofs.YYYYMMDD/index.json``.

``index.json`` lists a day's steps with their maps (paths relative to the day folder),
failures and region statistics. ``index.html`` is one self-contained page built from
every day's ``index.json``: the latest day first, each step's low-resolution map as a
thumbnail linking to its high-resolution map, the region statistics as an inline SVG
plot, and links between days and steps. It needs no server: open it as a file or
serve the maps folder read-only.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rtofs_lib import atomic
from rtofs_lib.fetch import names
from rtofs_lib.jobs.work import FileStatus

#: The per-day listing inside ``maps/rtofs.YYYYMMDD/``.
DAY_INDEX = "index.json"
#: The dashboard page inside ``maps/``.
INDEX_HTML = "index.html"
#: Days shown with thumbnails (older days are linked by their listing only).
SHOWN_DAYS = 14

_PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip


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


# --- the region-statistics plot ------------------------------------------------------------------


def _series(rows: Iterable[dict[str, Any]]) -> dict[str, list[tuple[dt.datetime, float]]]:
    """Region -> (valid time, mean) points of the rows that have both."""
    series: dict[str, list[tuple[dt.datetime, float]]] = {}
    for r in rows:
        if r.get("mean") is not None and r.get("valid_time"):
            series.setdefault(r["region"], []).append(
                (dt.datetime.fromisoformat(r["valid_time"]), float(r["mean"]))
            )
    return series


def stats_svg(rows: Iterable[dict[str, Any]], *, width: int = 640, height: int = 240) -> str:
    """Return an inline SVG line plot of the mean of each region against valid time."""
    from rtofs_lib.fields.regions import REGIONS

    series = _series(rows)
    if not series:
        return '<p class="nostats">No region statistics for this day.</p>'
    times = [t for pts in series.values() for t, _ in pts]
    values = [v for pts in series.values() for _, v in pts]
    t0, t1 = min(times), max(times)
    v0, v1 = min(values), max(values)
    if v1 - v0 < 1e-6:
        v0, v1 = v0 - 0.5, v1 + 0.5
    span = (t1 - t0).total_seconds() or 1.0
    left, right, top, bottom = 44, 150, 10, 28
    pw, ph = width - left - right, height - top - bottom

    def xy(t: dt.datetime, v: float) -> str:
        x = left + pw * (t - t0).total_seconds() / span
        y = top + ph * (1 - (v - v0) / (v1 - v0))
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg class="stats" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Mean per region against valid time">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{v1:.1f}</text>',
        f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{v0:.1f}</text>',
        f'<text x="{left}" y="{height - 8}">{t0:%d %b %H:%M}</text>',
        f'<text x="{left + pw}" y="{height - 8}" text-anchor="end">{t1:%d %b %H:%M}</text>',
    ]
    order = [r for r in REGIONS if r in series] + sorted(set(series) - set(REGIONS))
    for i, region in enumerate(order):
        color = _PALETTE[i % len(_PALETTE)]
        pts = sorted(series[region])
        label = REGIONS[region].label if region in REGIONS else region
        title = html.escape(f"{label}: mean {pts[-1][1]:.2f}")
        if len(pts) == 1:
            x, y = xy(*pts[0]).split(",")
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="3" fill="{color}"><title>{title}</title></circle>'
            )
        else:
            line = " ".join(xy(t, v) for t, v in pts)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{line}">'
                f"<title>{title}</title></polyline>"
            )
        ly = top + 12 + 15 * i
        parts.append(
            f'<rect x="{left + pw + 8}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + pw + 22}" y="{ly + 1}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- the page ------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1rem 2rem; color: #222; }
nav.days a, nav.steps a { margin-right: .6em; }
nav.days { position: sticky; top: 0; background: #fff; padding: .4em 0;
           border-bottom: 1px solid #ddd; }
section.day { margin-top: 1.5rem; }
.grid { display: flex; flex-wrap: wrap; gap: .8rem; }
figure { margin: 0; width: 300px; }
figure img { width: 300px; height: auto; border: 1px solid #ccc; background: #eee; }
figcaption { font-size: .85em; }
figcaption a { margin-left: .4em; }
svg.stats text { font-size: 11px; fill: #333; }
.failed { color: #a00; }
"""


def _day_html(doc: dict[str, Any], *, shown: bool) -> str:
    date = doc["date"]
    folder = f"{names.DAY_PREFIX}{date}"
    pretty = f"{names.parse_date(date):%Y-%m-%d}"
    out = [f'<section class="day" id="d{date}"><h2>Cycle {pretty} (00Z)</h2>']
    steps = doc.get("steps", [])
    out.append(
        f'<p>{len(steps)} steps · <a href="{folder}/{DAY_INDEX}">index.json</a>'
        + (
            f' · <a href="{folder}/region_stats.parquet/">region statistics (Parquet)</a>'
            if doc.get("region_stats")
            else ""
        )
        + "</p>"
    )
    for f in doc.get("failed", []):
        text = f"Failed: {f['file']}: {f['error']}"
        out.append(f'<p class="failed">{html.escape(text)}</p>')
    if not shown:
        return "".join([*out, "</section>"])
    out.append(stats_svg(doc.get("region_stats", [])))
    if steps:
        links = " ".join(f'<a href="#d{date}-{s["step"]}">{s["step"]}</a>' for s in steps)
        out.append(f'<nav class="steps">Steps: {links}</nav>')
    fields = doc.get("fields") or [""]
    for field in fields:
        out.append(f"<h3>{html.escape(field)}</h3><div class='grid'>")
        for i, s in enumerate(steps):
            m = s["maps"].get(field, {})
            low, high = m.get("low"), m.get("high") or m.get("low")
            vt = dt.datetime.fromisoformat(s["valid_time"])
            prev = f'<a href="#d{date}-{steps[i - 1]["step"]}">◀</a>' if i else ""
            nxt = f'<a href="#d{date}-{steps[i + 1]["step"]}">▶</a>' if i + 1 < len(steps) else ""
            img = (
                f'<a href="{folder}/{high}"><img src="{folder}/{low}" loading="lazy" '
                f'alt="{html.escape(field)} {s["step"]}"></a>'
                if low
                else "<p>(no map)</p>"
            )
            anchor = f' id="d{date}-{s["step"]}"' if field == fields[0] else ""
            out.append(
                f"<figure{anchor}>{img}<figcaption>{s['step']} · valid {vt:%Y-%m-%d %H:%M}Z"
                f"{prev}{nxt}</figcaption></figure>"
            )
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def write_index(maps: str | Path, *, title: str = "RTOFS maps") -> Path:
    """Write ``maps/index.html`` from every day's ``index.json`` (latest day first)."""
    maps = Path(maps)
    maps.mkdir(parents=True, exist_ok=True)
    days = read_days(maps)
    nav = " ".join(
        f'<a href="#d{d["date"]}">{names.parse_date(d["date"]):%Y-%m-%d}</a>' for d in days
    )
    now = dt.datetime.now(dt.UTC)
    body = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Global RTOFS forecasts. Page written {now:%Y-%m-%d %H:%M} UTC.</p>",
        f'<nav class="days">Days: {nav or "none yet"}</nav>',
    ]
    body += [_day_html(d, shown=i < SHOWN_DAYS) for i, d in enumerate(days)]
    if not days:
        body.append("<p>No maps yet: run <code>rtofs run</code> or <code>rtofs demo</code>.</p>")
    body.append("</body></html>")
    return atomic.write_text(maps / INDEX_HTML, "\n".join(body))
