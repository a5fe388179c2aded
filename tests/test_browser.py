"""The viewer notebook in a real browser: JupyterLab on loopback, headless Chromium.

JupyterLab runs with token auth in a temporary root holding the viewer notebook, with the
RTOFS kernel installed; Debian's chromium, driven by Playwright, opens the notebook, runs
it, moves the step slider with the keyboard, and the screenshots (kept under
``test-artifacts/``) must show a map that changes.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import CHROMIUM, CHROMIUM_ARGS, jupyterlab_at, run_all_cells
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.network]


@pytest.fixture
def jupyterlab(kernel_env, tmp_path):
    """JupyterLab on 127.0.0.1 with token auth; yields (base URL, token). Stopped afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(REPO / "example_notebooks" / "02_sst_viewer.ipynb", root)
    with jupyterlab_at(root, tmp_path / "jupyterlab.log") as (url, token):
        # token auth is on: without it the API refuses
        assert requests.get(f"{url}/api/status", timeout=5).status_code == 403
        yield url, token


def map_crop(png: bytes) -> np.ndarray:
    """RGB pixels of a screenshot of the map image."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_viewer_notebook_shows_a_map_that_changes_with_the_slider(jupyterlab, artifacts_dir):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (scripts/setup.sh)")
    url, token = jupyterlab
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            run_all_cells(page, f"{url}/lab/tree/02_sst_viewer.ipynb?token={token}")
            viewer = page.locator(".rtofs-viewer")
            viewer.wait_for(timeout=240_000)
            image = viewer.locator("img").first
            page.wait_for_function(
                "el => el.naturalWidth > 0", arg=image.element_handle(), timeout=120_000
            )
            # the last cell drives the viewer from code (step 2, a click): wait for it all
            page.wait_for_function(
                "() => document.querySelector('.rtofs-viewer').innerText.includes('grid j=')",
                timeout=120_000,
            )
            no_news = page.locator(".jp-toast-button:has-text('No')")
            if no_news.count():
                no_news.first.click()  # JupyterLab's "notify about news?" toast
            image.scroll_into_view_if_needed()
            before_src = image.get_attribute("src")
            shot1 = image.screenshot(path=str(artifacts_dir / "browser-viewer-step2.png"))
            viewer.screenshot(path=str(artifacts_dir / "browser-viewer-whole.png"))

            handle = viewer.locator(".noUi-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([el, old]) => el.src !== old && el.naturalWidth > 0",
                arg=[image.element_handle(), before_src],
                timeout=60_000,
            )
            page.wait_for_function(
                "() => document.querySelector('.rtofs-viewer').innerText.includes('3/')",
                timeout=60_000,
            )
            shot2 = image.screenshot(path=str(artifacts_dir / "browser-viewer-step3.png"))
        finally:
            browser.close()

    a, b = map_crop(shot1), map_crop(shot2)
    # a map is shown: many distinct colours (a colormap), not a blank or a broken image
    colours = np.unique(a.reshape(-1, 3), axis=0)
    assert len(colours) > 100, f"only {len(colours)} colours in the map screenshot"
    # and the slider changed it
    assert a.shape == b.shape
    changed = np.any(a != b, axis=-1).mean()
    assert changed > 0.01, f"only {changed:.2%} of the map's pixels changed"
