"""The one atomic write: readers see the old file or the new one, and the umask is honoured."""

from __future__ import annotations

import os

import pytest

from rtofs_lib import atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_written_file_replaces_the_old_one_whole(tmp_path):
    dest = tmp_path / "index.json"
    dest.write_text("old")
    atomic.write_json(dest, {"steps": [1, 2]})
    assert dest.read_text() == '{\n "steps": [\n  1,\n  2\n ]\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_files_get_the_mode_the_umask_allows(tmp_path, umask_022):
    """Shared products must stay readable by the group (mkstemp would give 0600)."""
    atomic.write_bytes(tmp_path / "a.png", b"png")
    with atomic.atomic_path(tmp_path / "b.gif") as tmp:
        tmp.write_bytes(b"gif")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a.png": 0o644, "b.gif": 0o644}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "stats.json"
    dest.write_text("kept")
    with pytest.raises(RuntimeError, match="disk trouble"), atomic.atomic_open(dest, "w") as f:
        f.write("half")
        raise RuntimeError("disk trouble")
    assert dest.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_a_failed_writer_with_a_path_leaves_no_temporary(tmp_path):
    with pytest.raises(OSError), atomic.atomic_path(tmp_path / "day.mp4", suffix=".mp4") as tmp:
        tmp.write_bytes(b"partial")
        raise OSError("ffmpeg died")
    assert list(tmp_path.iterdir()) == []


def test_temporaries_are_hidden_beside_the_destination(tmp_path):
    tmp = atomic.temporary_path(tmp_path / "sst.low.png", ".png")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".sst.low.png.") and tmp.name.endswith(".tmp.png")
    assert tmp != atomic.temporary_path(tmp_path / "sst.low.png", ".png")


def test_a_folder_is_swapped_in_whole(tmp_path):
    dest = tmp_path / "region_stats.parquet"
    dest.mkdir()
    (dest / "old.parquet").write_text("old")
    new = atomic.temporary_path(dest)
    new.mkdir()
    (new / "part-00000.parquet").write_text("new")
    atomic.replace_tree(new, dest)
    assert [p.name for p in dest.iterdir()] == ["part-00000.parquet"]
    assert [p.name for p in tmp_path.iterdir()] == ["region_stats.parquet"]


def test_only_write_modes_are_accepted(tmp_path):
    with (
        pytest.raises(ValueError, match="mode must be 'wb' or 'w'"),
        atomic.atomic_open(tmp_path / "x", "a"),
    ):
        pass
