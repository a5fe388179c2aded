"""Shared fixtures: real-format sample files, servers and clusters started for real.

Each area keeps its fixtures in its own section below.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ARTIFACTS = Path(os.environ.get("RTOFS_TEST_ARTIFACTS", REPO / "test-artifacts"))

#: A day to build samples for (any date works; this one matches the saved NOMADS listing).
SAMPLE_DATE = "20260708"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout: the CDL dumps and the saved NOMADS listing."""
    if not (SHARED / "rtofs" / "format.md").exists():
        pytest.fail(f"{SHARED}/rtofs is missing; the tests need the shared/ folder beside the repo")
    return SHARED


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep things for people to look at (screenshots, maps)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _isolated_rtofs_env(monkeypatch, tmp_path_factory):
    """Keep tests away from /etc/rtofs and the user's ~/rtofs."""
    home = tmp_path_factory.mktemp("rtofs-home")
    monkeypatch.setenv("RTOFS_HOME", str(home))
    monkeypatch.setenv("RTOFS_CONFIG", "")
    for var in list(os.environ):
        if var.startswith("RTOFS_") and var not in ("RTOFS_HOME", "RTOFS_CONFIG"):
            monkeypatch.delenv(var)


# --- sample data (synthetic) -------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_day(tmp_path_factory) -> Path:
    """An archive with one small-grid day of prog files (a few steps); returns the archive root."""
    from rtofs_lib import synthetic

    archive = tmp_path_factory.mktemp("archive-small")
    synthetic.write_sample(archive, SAMPLE_DATE, steps="n024,f000-f003", grid="small")
    return archive


@pytest.fixture(scope="session")
def full_prog_file(tmp_path_factory) -> Path:
    """One full-size (4500x3298) real-format prog file."""
    from rtofs_lib import synthetic

    archive = tmp_path_factory.mktemp("archive-full")
    (path,) = synthetic.write_sample(archive, SAMPLE_DATE, steps="f024", grid="full")
    return path


# --- reader and regrid ---------------------------------------------------------------------------


# --- render ------------------------------------------------------------------------------------


# --- crawler -----------------------------------------------------------------------------------


# --- spark -------------------------------------------------------------------------------------
