"""Per-day manifests of the archive: what is there, verified, and when it came.

Each day folder ``archive/rtofs.YYYYMMDD/`` may hold a ``manifest.json`` written by the
crawler (atomically, through :mod:`rtofs_lib.atomic`)::

    {"date": "20260708",
     "files": {"rtofs_glo_2ds_f024_prog.nc": {"size": 156237824, "sha256": "…",
               "valid_time": "2026-07-09T00:00:00", "fetched": "2026-07-08T15:31:02Z",
               "listed": "2026-07-08T15:30:00"}}}

A file listed there was complete and opened as its product when it was renamed into place.
``listed`` is the modification time the server's listing showed for the file when it was
fetched (the server's clock and time zone, to the minute; absent for ``ls-l`` listings and in
older manifests): a later listing showing a newer time, or a size that does not fit ``size``,
means NOAA replaced the file, and the crawler fetches it again.
Readers use :func:`day_files`, which trusts the manifest when there is one and falls back
to the folder's RTOFS names (for archives filled by ``rtofs sample`` or by hand).

Examples
--------
>>> import tempfile
>>> archive = tempfile.mkdtemp()
>>> read_manifest(archive, "20260708")
{'date': '20260708', 'files': {}}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

from rtofs_lib import atomic
from rtofs_lib.errors import RtofsFileError
from rtofs_lib.fetch import landed, names

MANIFEST = "manifest.json"


def day_dir(archive: str | Path, date: str | dt.date) -> Path:
    """Return ``archive/rtofs.YYYYMMDD``."""
    return Path(archive) / names.day_folder(date)


def manifest_path(archive: str | Path, date: str | dt.date) -> Path:
    """Return the path of the manifest of ``date`` in ``archive``."""
    return day_dir(archive, date) / MANIFEST


def read_manifest(archive: str | Path, date: str | dt.date) -> dict:
    """Return the manifest of ``date`` (an empty one when the day has none).

    Raises
    ------
    RtofsFileError
        If the manifest exists but is not a manifest (say, hand-edited into bad JSON).
    """
    path = manifest_path(archive, date)
    empty = {"date": f"{names.parse_date(date):%Y%m%d}", "files": {}}
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return empty
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RtofsFileError(
            path, f"not valid JSON ({e})", "delete it; the next `rtofs crawl` rebuilds it"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise RtofsFileError(
            path, "has no 'files' mapping", "delete it; the next `rtofs crawl` rebuilds it"
        )
    data.setdefault("date", empty["date"])
    return data


def write_manifest(archive: str | Path, date: str | dt.date, manifest: dict) -> Path:
    """Write ``manifest`` for ``date`` atomically and return its path.

    Entries are sorted by name so the file diffs well; readers never see half a file.
    """
    data = {
        "date": f"{names.parse_date(date):%Y%m%d}",
        "files": dict(sorted(manifest.get("files", {}).items())),
    }
    return atomic.write_json(manifest_path(archive, date), data, indent=1)


def file_entry(
    path: str | Path,
    *,
    sha256: str | None = None,
    fetched: dt.datetime | None = None,
    listed: dt.datetime | None = None,
) -> dict:
    """Return the manifest entry of a verified file (hashing it when ``sha256`` is not given).

    ``listed`` is the file's modification time in the listing it was fetched from (kept
    as the listing gave it, to tell a later replacement; left out when None).
    """
    path = Path(path)
    n = names.parse_name(path.name, date=names.parse_day_folder(path.parent.name))
    when = fetched or dt.datetime.now(dt.UTC)
    entry = {
        "size": path.stat().st_size,
        "sha256": sha256 or sha256_file(path),
        "valid_time": n.valid_time.isoformat(),
        "fetched": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if listed is not None:
        entry["listed"] = listed.isoformat()
    return entry


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def day_files(archive: str | Path, date: str | dt.date, product: str = "prog") -> list[Path]:
    """Return the day's files of ``product`` in publication order.

    The manifest decides when there is one (only entries whose file is present with the
    recorded size); otherwise every RTOFS-named file of the product in the folder counts.
    """
    folder = day_dir(archive, date)
    manifest = read_manifest(archive, date)
    if manifest["files"]:
        candidates = [
            folder / name
            for name, entry in manifest["files"].items()
            if (folder / name).is_file() and (folder / name).stat().st_size == entry.get("size")
        ]
    elif folder.is_dir():
        candidates = [p for p in folder.iterdir() if p.is_file()]
    else:
        candidates = []
    order = {s: i for i, s in enumerate(names.steps_for(product))}
    chosen = []
    for p in candidates:
        try:
            n = names.parse_name(p.name)
        except names.NotRtofsNameError:
            continue
        if n.product == product:
            chosen.append((order.get(n.step, len(order)), p.name, p))
    return [p for _, _, p in sorted(chosen)]


def list_days(archive: str | Path) -> list[dt.date]:
    """Return the cycle dates of the ``rtofs.YYYYMMDD`` folders in ``archive``, oldest first."""
    root = Path(archive)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.is_dir():
            try:
                out.append(names.parse_day_folder(p.name))
            except names.NotRtofsNameError:
                continue
    return sorted(out)


def prune(
    archive: str | Path, keep_days: int, *, today: dt.date | None = None, dry_run: bool = False
) -> list[Path]:
    """Delete day folders older than ``keep_days`` days before ``today`` (UTC); return them.

    ``keep_days=2`` on 2026-07-08 keeps ``rtofs.20260707`` and ``rtofs.20260708`` (and
    any later day). Only ``rtofs.YYYYMMDD`` folders are touched, and the landed records
    (:mod:`rtofs_lib.fetch.landed`) of days that no longer have a folder.

    Raises
    ------
    ValueError
        If ``keep_days`` is below 1.
    """
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, not {keep_days}")
    today = today or dt.datetime.now(dt.UTC).date()
    first_kept = today - dt.timedelta(days=keep_days - 1)
    doomed = [day_dir(archive, d) for d in list_days(archive) if d < first_kept]
    if not dry_run:
        for folder in doomed:
            shutil.rmtree(folder)
        landed.prune_records(archive, {f"{d:%Y%m%d}" for d in list_days(archive)})
    return doomed
