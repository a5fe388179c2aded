"""The dashboard page: the HTML of ``maps/index.html`` from the days' ``index.json`` documents.

The latest published map first, then each day (the latest first): the latency summary and
per-file table, the failed files with their errors, the region statistics as an inline SVG
plot, the thumbnails. The inline script (``rtofs_lib/data/dashboard/live.js``) updates this
markup in place, so the two keep the same class names, data attributes and texts.

>>> doc = {"date": "20260708", "fields": ["sst"], "failed": [], "region_stats": [],
...        "steps": [{"stem": "rtofs_glo_2ds_f000_prog", "step": "f000",
...                   "valid_time": "2026-07-08T00:00:00", "maps": {}, "landed": None,
...                   "published": "2026-07-08T15:31:04.456Z", "latency_s": None}]}
>>> html_page([doc]).count('<section class="day"')
1
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.resources
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from rtofs_lib.fetch import names

#: The per-day listing inside ``maps/rtofs.YYYYMMDD/``.
DAY_INDEX = "index.json"
#: Days shown with thumbnails (older days are linked by their listing only).
SHOWN_DAYS = 14

_PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip


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


# --- latency, the latest step, the list of days ---------------------------------------------------


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of sorted ``values`` (numpy's default method)."""
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def latency_summary(steps: Iterable[dict[str, Any]]) -> dict[str, float] | None:
    """Median, p95 and maximum of the steps' known ``latency_s`` (``None`` when none is known).

    >>> s = latency_summary([{"latency_s": 1.0}, {"latency_s": 3.0}, {"latency_s": None}])
    >>> s["n"], s["median"], round(s["p95"], 2), s["max"]
    (2, 2.0, 2.9, 3.0)
    >>> latency_summary([{"step": "f000"}]) is None
    True
    """
    values = sorted(float(s["latency_s"]) for s in steps if s.get("latency_s") is not None)
    if not values:
        return None
    return {
        "n": len(values),
        "median": _quantile(values, 0.5),
        "p95": _quantile(values, 0.95),
        "max": values[-1],
    }


def _when(stamp: str | None) -> float:
    """Seconds since the epoch of an ISO time (``...Z`` or with an offset); ``-inf`` if none."""
    if not stamp:
        return float("-inf")
    try:
        return dt.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return float("-inf")


def latest_step(steps: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The step published last (by ``published``; without times, the last in step order).

    >>> latest_step([{"step": "f001", "published": "2026-07-08T15:31:04.456Z"},
    ...              {"step": "f002", "published": "2026-07-08T15:31:03.000Z"}])["step"]
    'f001'
    >>> latest_step([{"step": "n024"}, {"step": "f000"}])["step"]
    'f000'
    """
    if not steps:
        return None
    return max(enumerate(steps), key=lambda i_s: (_when(i_s[1].get("published")), i_s[0]))[1]


# --- the page ------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1rem 2rem; color: #222; }
nav.days a, nav.steps a { margin-right: .6em; }
nav.days { position: sticky; top: 0; background: #fff; padding: .4em 0;
           border-bottom: 1px solid #ddd; z-index: 1; }
section.day { margin-top: 1.5rem; }
section.latest img { width: 100%; max-width: 1200px; height: auto; border: 1px solid #ccc;
                     background: #eee; }
.grid { display: flex; flex-wrap: wrap; gap: .8rem; }
figure { margin: 0; width: 300px; }
figure img { width: 300px; height: auto; border: 1px solid #ccc; background: #eee; }
figcaption { font-size: .85em; }
figcaption a { margin-left: .4em; }
figure.new { outline: 3px solid #2ca02c; }
svg.stats text { font-size: 11px; fill: #333; }
table { border-collapse: collapse; font-size: .85em; }
td, th { padding: .1em .6em; text-align: left; border-bottom: 1px solid #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failed, .failures { color: #a00; }
p.live { font-size: .85em; color: #666; }
"""


def _hms(stamp: str | None) -> str:
    """``HH:MM:SSZ`` of an ISO UTC time, or a dash."""
    return f"{stamp[11:19]}Z" if stamp else "—"


def _secs(value: float | None) -> str:
    """Seconds to one decimal, ties up on the exact value (as JavaScript's ``toFixed``)."""
    if value is None:
        return "—"
    return f"{Decimal(float(value)).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} s"


def _valid(stamp: str) -> str:
    return f"{stamp[:10]} {stamp[11:16]}Z"


def _pretty(date: str) -> str:
    return f"{date[:4]}-{date[4:6]}-{date[6:8]}"


def _summary_text(steps: Sequence[dict[str, Any]]) -> str:
    s = latency_summary(steps)
    if s is None:
        return "Latency landed → published: not recorded for these files."
    return (
        f"Latency landed → published: median {_secs(s['median'])} · p95 {_secs(s['p95'])}"
        f" · max {_secs(s['max'])} over {s['n']} of {len(steps)} files."
    )


def _fields_of(doc: dict[str, Any], step: dict[str, Any]) -> list[str]:
    maps = step.get("maps", {})
    return [f for f in doc.get("fields", []) if f in maps] or list(maps)


def _latest_html(days: Sequence[dict[str, Any]]) -> str:
    for doc in days:
        s = latest_step(doc.get("steps", []))
        if s is not None:
            break
    else:
        return (
            '<section id="latest" class="latest"><h2>Latest</h2>'
            '<p class="empty">No maps published yet.</p></section>'
        )
    date, folder = doc["date"], f"{names.DAY_PREFIX}{doc['date']}"
    fields = _fields_of(doc, s)
    field = fields[0] if fields else ""
    m = s.get("maps", {}).get(field, {})
    low, high = m.get("low"), m.get("high") or m.get("low")
    img = (
        f'<a class="map" href="{folder}/{high}"><img src="{folder}/{low}" '
        f'alt="{html.escape(field)} {s["step"]}"></a>'
        if low
        else '<p class="empty">(no map)</p>'
    )
    highs = " ".join(
        f'<a href="{folder}/{s["maps"][f].get("high") or s["maps"][f].get("low")}">'
        f"{html.escape(f)}</a>"
        for f in fields
    )
    meta = (
        f"{field} · cycle {_pretty(date)} · landed {_hms(s.get('landed'))}"
        f" · published {_hms(s.get('published'))} · latency {_secs(s.get('latency_s'))}"
    )
    return (
        f'<section id="latest" class="latest" data-date="{date}" data-step="{s["step"]}">'
        f"<h2>Latest: {s['step']} · valid {_valid(s['valid_time'])}</h2>{img}"
        f'<p class="meta">{html.escape(meta)}</p>'
        f'<p class="high">High resolution: {highs}</p></section>'
    )


def _failures_html(failed: Sequence[dict[str, Any]]) -> str:
    if not failed:
        return '<div class="failures"></div>'
    rows = "".join(
        f'<tr data-file="{html.escape(f["file"])}"><td>{html.escape(f["file"])}</td>'
        f"<td>{html.escape(str(f.get('step') or ''))}</td>"
        f"<td>{html.escape(str(f.get('error') or ''))}</td>"
        f"<td>{_hms(f.get('landed'))}</td><td>{_hms(f.get('failed_at'))}</td></tr>"
        for f in failed
    )
    return (
        f'<div class="failures"><h3>Failed files ({len(failed)})</h3><table>'
        "<thead><tr><th>file</th><th>step</th><th>error</th><th>landed</th>"
        f"<th>failed at</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _latency_table(steps: Sequence[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr data-step="{s["step"]}"><td>{s["step"]}</td><td>{_valid(s["valid_time"])}</td>'
        f"<td>{_hms(s.get('landed'))}</td><td>{_hms(s.get('published'))}</td>"
        f'<td class="num">{_secs(s.get("latency_s"))}</td></tr>'
        for s in steps
    )
    return (
        '<details class="latency"><summary>Per-file latency (landed → published)</summary>'
        "<table><thead><tr><th>step</th><th>valid</th><th>landed</th><th>published</th>"
        f"<th>latency</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _figure(doc: dict[str, Any], i: int, field: str, *, anchor: bool) -> str:
    steps, date = doc["steps"], doc["date"]
    s, folder = steps[i], f"{names.DAY_PREFIX}{date}"
    m = s["maps"].get(field, {})
    low, high = m.get("low"), m.get("high") or m.get("low")
    prev = f'<a href="#d{date}-{steps[i - 1]["step"]}">◀</a>' if i else ""
    nxt = f'<a href="#d{date}-{steps[i + 1]["step"]}">▶</a>' if i + 1 < len(steps) else ""
    img = (
        f'<a href="{folder}/{high}"><img src="{folder}/{low}" loading="lazy" '
        f'alt="{html.escape(field)} {s["step"]}"></a>'
        if low
        else "<p>(no map)</p>"
    )
    lat = s.get("latency_s")
    lat_text = f" · {_secs(lat)}" if lat is not None else ""
    ident = f' id="d{date}-{s["step"]}"' if anchor else ""
    return (
        f'<figure data-step="{s["step"]}"{ident}>{img}'
        f"<figcaption>{s['step']} · valid {_valid(s['valid_time'])}"
        f'<span class="lat">{lat_text}</span><span class="arrows">{prev}{nxt}</span>'
        "</figcaption></figure>"
    )


def _day_html(doc: dict[str, Any], *, shown: bool) -> str:
    date = doc["date"]
    folder = f"{names.DAY_PREFIX}{date}"
    steps = doc.get("steps", [])
    out = [
        f'<section class="day" id="d{date}" data-date="{date}" data-index="{folder}/{DAY_INDEX}">'
        f"<h2>Cycle {_pretty(date)} (00Z)</h2>",
        f'<p class="counts">{len(steps)} steps · <a href="{folder}/{DAY_INDEX}">index.json</a>'
        + (
            f' · <a href="{folder}/region_stats.parquet/">region statistics (Parquet)</a>'
            if doc.get("region_stats")
            else ""
        )
        + "</p>",
        f'<p class="latency-summary">{html.escape(_summary_text(steps))}</p>',
        _failures_html(doc.get("failed", [])),
    ]
    if not shown:
        return "".join([*out, "</section>"])
    out.append(stats_svg(doc.get("region_stats", [])))
    links = " ".join(f'<a href="#d{date}-{s["step"]}">{s["step"]}</a>' for s in steps)
    out.append(f'<nav class="steps">Steps: <span class="links">{links}</span></nav>')
    fields = doc.get("fields") or [""]
    for field in fields:
        figures = "".join(
            _figure(doc, i, field, anchor=field == fields[0]) for i in range(len(steps))
        )
        out.append(
            f'<div class="field" data-field="{html.escape(field)}"><h3>{html.escape(field)}</h3>'
            f'<div class="grid">{figures}</div></div>'
        )
    out.append(_latency_table(steps))
    out.append("</section>")
    return "".join(out)


def live_script() -> str:
    """The page's live-update script (package data ``rtofs_lib/data/dashboard/live.js``)."""
    return (
        importlib.resources.files("rtofs_lib")
        .joinpath("data/dashboard/live.js")
        .read_text(encoding="utf-8")
    )


def html_page(days: Sequence[dict[str, Any]], *, title: str = "RTOFS maps") -> str:
    """The dashboard page of ``days`` (``index.json`` documents, latest day first)."""
    nav = " ".join(f'<a href="#d{d["date"]}">{_pretty(d["date"])}</a>' for d in days)
    now = dt.datetime.now(dt.UTC)
    body = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Global RTOFS forecasts. Page written {now:%Y-%m-%d %H:%M} UTC."
        ' <a href="./">Zoomable map</a> (through the dashboard service).</p>',
        '<p class="live" id="live-status">Static page: open it through the dashboard service'
        " for live updates.</p>",
        f'<nav class="days">Days: <span class="links">{nav or "none yet"}</span></nav>',
        _latest_html(days),
        '<main id="days">',
        *(_day_html(d, shown=i < SHOWN_DAYS) for i, d in enumerate(days)),
        "</main>",
    ]
    if not days:
        body.append(
            '<p class="nodays">No maps yet: run <code>rtofs run</code> or '
            "<code>rtofs demo</code>.</p>"
        )
    body.append(f"<script>{live_script()}</script></body></html>")
    return "\n".join(body)
