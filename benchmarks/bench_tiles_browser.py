"""Benchmark, browser part: the map page in headless Chromium, timed by its own marks.

The page (``rtofs_lib/data/dashboard/map.js``) marks ``rtofs:step`` when it asks for another
step and measures ``rtofs:viewport`` when every tile in view of that step has loaded; it marks
``rtofs:click`` on a map click and measures ``rtofs:series`` when the series chart is drawn.
:func:`browser_figures` opens the page at 1280x800 in Debian's chromium (Playwright, never
``playwright install``), zooms to a mid zoom over the ocean, then:

* changes step ``changes`` times, each to a (cycle, step, field) the browser has not shown yet
  (its tiles are not in the browser's cache; whether the server has them is up to the caller),
  and reads each ``rtofs:viewport`` measure and how many tiles it loaded;
* clicks ``clicks`` ocean points and reads each ``rtofs:series`` measure.

Targets (issue 16): a full viewport after a step change <= 1 s, click -> series <= 1 s.
``benchmarks/bench_tiles.py`` calls :func:`browser_figures` on the service it started; run
alone against a running service::

    .venv/bin/python benchmarks/bench_tiles_browser.py http://127.0.0.1:8092/
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

#: Debian's chromium and the flags the tests use (tests/conftest.py).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 900}  # the map 1280 px beside the panel: 24 tiles
#: The view the step changes are timed in: the Gulf Stream at zoom 4 (about 20 tiles).
CENTER, ZOOM = (38.0, -55.0), 4
#: Ocean points clicked for the series (lat, lon): Atlantic, Pacific, Indian, Southern Ocean.
OCEAN_POINTS = ((30.0, -40.0), (0.0, -140.0), (-20.0, 80.0), (-55.0, 0.0), (45.0, -160.0))
TARGET_VIEWPORT_S = 1.0
TARGET_SERIES_S = 1.0

# Resolves with the next measure called `name` after `count` of them exist (or null on timeout).
_NEXT_MEASURE = """([name, count, ms]) => new Promise(resolve => {
  const t0 = Date.now();
  (function check() {
    const m = performance.getEntriesByName(name, "measure");
    if (m.length > count) return resolve(m[m.length - 1].duration);
    if (Date.now() - t0 > ms) return resolve(null);
    setTimeout(check, 10);
  })();
})"""
_COUNT = "name => performance.getEntriesByName(name, 'measure').length"
# Tiles requested since the last rtofs:step mark (the viewport of the step).
_TILES_SINCE_STEP = """() => {
  const marks = performance.getEntriesByName("rtofs:step", "mark");
  const t = marks.length ? marks[marks.length - 1].startTime : 0;
  return performance.getEntriesByType("resource")
    .filter(e => e.name.includes("/tiles/") && e.startTime >= t).length;
}"""


def _targets(layers: dict, count: int) -> list[tuple[str, str, str]]:
    """``count`` (date, step, field) to show, new to the browser: steps, then days, then fields."""
    shown = (layers["days"][0]["date"], layers["days"][0]["steps"][-1]["step"], "sst")
    out = []
    for field in ["sst", *[f for f in layers["fields"] if f != "sst"]]:
        for day in layers["days"]:
            for step in day["steps"]:
                if (day["date"], step["step"], field) != shown:
                    out.append((day["date"], step["step"], field))
    return out[:count]


def browser_figures(
    url: str,
    *,
    changes: int = 10,
    clicks: int = 5,
    timeout_s: float = 30.0,
    screenshot: Path | None = None,
) -> dict:
    """Time the map page at ``url`` (the service's prefix, ending in ``/``) in headless Chromium.

    Returns medians and maxima in milliseconds, with the counts they are over::

        {"viewport_ms_median", "viewport_ms_max", "viewport_tiles_median", "step_changes",
         "viewport_ms" (each change, in order),
         "series_ms_median", "series_ms_max", "series_clicks", "series_errors"}
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise RuntimeError("Debian's chromium is missing: apt-get install chromium")
    ms = timeout_s * 1000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)  # fmt: skip
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(url)
            page.evaluate("() => performance.setResourceTimingBufferSize(100000)")
            page.wait_for_function("() => document.body.dataset.tiles === 'loaded'", timeout=ms)
            page.evaluate(
                "([c, z]) => rtofsMap.map.setView(c, z, {animate: false})", [list(CENTER), ZOOM]
            )
            page.wait_for_function("() => !rtofsMap.layer().isLoading()", timeout=ms)
            layers = page.evaluate("() => rtofsMap.state.layers")
            viewport, tiles = [], []
            for date, step, field in _targets(layers, changes):
                n = page.evaluate(_COUNT, "rtofs:viewport")
                page.evaluate(
                    """([d, s, f]) => {
                      if (rtofsMap.state.field !== f) rtofsMap.setField(f);
                      if (rtofsMap.state.date !== d) rtofsMap.setDay(d);
                      rtofsMap.setStep(rtofsMap.steps().findIndex(x => x.step === s));
                    }""",
                    [date, step, field],
                )
                took = page.evaluate(_NEXT_MEASURE, ["rtofs:viewport", n, ms])
                if took is None:
                    raise RuntimeError(f"{date} {step} {field}: tiles not loaded in {timeout_s} s")
                viewport.append(took)
                tiles.append(page.evaluate(_TILES_SINCE_STEP))
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            page.evaluate("() => rtofsMap.setField('sst')")
            series, errors = [], 0
            for lat, lon in (OCEAN_POINTS * (clicks // len(OCEAN_POINTS) + 1))[:clicks]:
                n = page.evaluate(_COUNT, "rtofs:series")
                page.evaluate("([lat, lon]) => rtofsMap.clickAt(lat, lon)", [lat, lon])
                page.wait_for_function(
                    "() => ['drawn', 'error'].includes(document.body.dataset.series)", timeout=ms
                )
                took = page.evaluate(_NEXT_MEASURE, ["rtofs:series", n, 2000])
                if took is None:  # the point was on land: the page shows the 404's message
                    errors += 1
                else:
                    series.append(took)
        finally:
            browser.close()
    return {
        "viewport_ms_median": round(statistics.median(viewport), 1),
        "viewport_ms_max": round(max(viewport), 1),
        "viewport_tiles_median": statistics.median(tiles),
        "step_changes": len(viewport),
        "viewport_ms": [round(v) for v in viewport],
        "series_ms_median": round(statistics.median(series), 1) if series else None,
        "series_ms_max": round(max(series), 1) if series else None,
        "series_clicks": len(series),
        "series_errors": errors,
        "target_viewport_ms": TARGET_VIEWPORT_S * 1000,
        "target_series_ms": TARGET_SERIES_S * 1000,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print :func:`browser_figures` of a running service as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the map page, e.g. http://127.0.0.1:8092/")
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    figures = browser_figures(
        args.url, changes=args.changes, clicks=args.clicks, screenshot=args.screenshot
    )
    json.dump(figures, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
