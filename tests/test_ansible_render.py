"""The roles' release-dependent files, rendered without a host, match the reviewed copies.

Debian 10 buster cannot be booted here (its archive is not reachable), so its apt sources,
its Java repository and its Java settings are checked this way; the other releases too, so
a template change shows up for every release at once. The reviewed copies are in
``tests/data/golden/ansible/<release>/``; after a deliberate change, regenerate them with
``tests/data/ansible/render_release.yml`` (its header shows the command) and review the diff.
"""

from __future__ import annotations

import pytest
from conftest import REPO, run_playbook

GOLDEN = REPO / "tests" / "data" / "golden" / "ansible"
RELEASES = ("buster", "bullseye", "bookworm", "trixie")


@pytest.fixture(scope="module", params=RELEASES)
def rendered(request, tmp_path_factory):
    """(release, folder) with the files render_release.yml wrote for that release."""
    out = tmp_path_factory.mktemp(f"render-{request.param}")
    run = run_playbook(
        "-e", f"release={request.param}", "-e", f"out_dir={out}",
        playbook=str(REPO / "tests" / "data" / "ansible" / "render_release.yml"),
        inventory="localhost,", timeout=300,
    )  # fmt: skip
    assert run.rc == 0, run.tail()
    return request.param, out


def test_rendered_files_match_the_reviewed_copies(rendered):
    release, out = rendered
    got = {p.name: p.read_text() for p in sorted(out.iterdir())}
    want = {p.name: p.read_text() for p in sorted((GOLDEN / release).iterdir())}
    assert got == want


def test_buster_takes_its_packages_from_the_archive_without_point_release_updates():
    sources = (GOLDEN / "buster" / "sources.list").read_text()
    lines = [line for line in sources.splitlines() if line.startswith("deb ")]
    assert lines == [
        "deb http://archive.debian.org/debian buster main",
        "deb http://archive.debian.org/debian-security buster/updates main",
    ]


def test_only_buster_gets_a_java_repository_outside_debian():
    have = {r for r in RELEASES if (GOLDEN / r / "java.list").exists()}
    assert have == {"buster"}
    assert "temurin-17" in (GOLDEN / "buster" / "settings.txt").read_text()
