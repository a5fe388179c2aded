"""Landed records: one small JSON file per file that arrived in the archive.

The live pipeline reads these, not the archive's netCDF files: the crawler writes a record
right after it renames a verified file into place (and after the manifest entry), and
``rtofs stream`` (Spark Structured Streaming's file source) picks up each new record once.
A record is never changed; a file NOAA replaces (same name, new content) lands again with a
new record, so it is processed again. Records live in one flat folder::

    archive/landed/YYYYMMDD.<file stem>.<token>.json
    {"name": "rtofs_glo_2ds_f024_prog.nc", "date": "20260708",
     "path": "rtofs.20260708/rtofs_glo_2ds_f024_prog.nc", "size": 156237824,
     "sha256": "…", "landed": "2026-07-08T15:31:02.123Z", "mtime_ns": 1783524662123000000}

``token`` is the first 16 hex digits of the SHA-256, or ``s<size>m<mtime_ns>`` for a file
whose hash is not known (one written by ``rtofs sample`` or by hand, registered by
:func:`ensure_records`). ``path`` is relative to the archive.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> archive = tempfile.mkdtemp()
>>> [f] = sample.write_sample(archive, "20260708", steps="f001", grid="24x24")
>>> p = write_record(archive, f, sha256="ab" * 32)
>>> p.name
'20260708.rtofs_glo_2ds_f001_prog.abababababababab.json'
>>> [r.path for r in read_records(archive)]
['rtofs.20260708/rtofs_glo_2ds_f001_prog.nc']
>>> ensure_records(archive, "20260708")  # the file has its record already
[]
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rtofs_lib import atomic
from rtofs_lib.fetch import names

#: Folder of the records inside the archive.
LANDED_DIR = "landed"


@dataclass(frozen=True)
class Landed:
    """One landed record (see the module docstring for the fields)."""

    name: str
    date: str
    path: str
    size: int
    sha256: str | None
    landed: str
    mtime_ns: int

    @property
    def token(self) -> str:
        """What tells this content from a later replacement of the same name."""
        return self.sha256[:16] if self.sha256 else f"s{self.size}m{self.mtime_ns}"

    @property
    def landed_time(self) -> dt.datetime:
        """``landed`` as an aware UTC datetime."""
        return dt.datetime.fromisoformat(self.landed.replace("Z", "+00:00"))

    def file(self, archive: str | Path) -> Path:
        """The archive file this record is about."""
        return Path(archive) / self.path


def landed_dir(archive: str | Path) -> Path:
    """Return ``archive/landed``, where the records go."""
    return Path(archive) / LANDED_DIR


def record_name(date: str, stem: str, token: str) -> str:
    """Return the file name of a record: ``YYYYMMDD.<stem>.<token>.json``."""
    return f"{date}.{stem}.{token}.json"


def utc_stamp(when: dt.datetime | None = None) -> str:
    """Return ``when`` (default now) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    when = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def record_for(
    archive: str | Path,
    path: str | Path,
    *,
    sha256: str | None = None,
    landed: dt.datetime | None = None,
) -> Landed:
    """Return the record of the archive file ``path`` (not written; see :func:`write_record`)."""
    path = Path(path)
    date = names.parse_day_folder(path.parent.name)
    st = path.stat()
    return Landed(
        name=path.name,
        date=f"{date:%Y%m%d}",
        path=str(path.resolve().relative_to(Path(archive).resolve())),
        size=st.st_size,
        sha256=sha256,
        landed=utc_stamp(landed),
        mtime_ns=st.st_mtime_ns,
    )


def write_record(
    archive: str | Path,
    path: str | Path,
    *,
    sha256: str | None = None,
    landed: dt.datetime | None = None,
) -> Path:
    """Write the landed record of the archive file ``path`` atomically; return the record.

    Call it after the file is renamed into place (a record never names a missing file).
    """
    rec = record_for(archive, path, sha256=sha256, landed=landed)
    target = landed_dir(archive) / record_name(rec.date, Path(rec.name).stem, rec.token)
    return atomic.write_json(target, asdict(rec), indent=None)


def read_record(path: str | Path) -> Landed:
    """Read one record file.

    Raises
    ------
    ValueError
        If it is not a landed record (names the file).
    """
    try:
        data = json.loads(Path(path).read_text())
        return Landed(**{k: data[k] for k in Landed.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a landed record ({e}); delete it") from None


def read_records(archive: str | Path, dates: list[str] | None = None) -> list[Landed]:
    """Return the records in the archive (of ``dates`` only when given), oldest first.

    Unreadable records are skipped (a hand-made file in the folder is not a record).
    """
    folder = landed_dir(archive)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        if p.name.startswith(".") or not p.name.endswith(".json"):
            continue
        if dates is not None and p.name.split(".", 1)[0] not in dates:
            continue
        try:
            out.append(read_record(p))
        except ValueError:
            continue
    return sorted(out, key=lambda r: (r.landed, r.path))


def day_glob(archive: str | Path, dates: list[str] | None = None) -> str:
    """The records of ``dates`` (all when None) as one Hadoop glob, for Spark's file source."""
    folder = landed_dir(archive).resolve()
    if not dates:
        return str(folder)
    pick = dates[0] if len(dates) == 1 else "{" + ",".join(dates) + "}"
    return f"{folder}/{pick}.*.json"


def ensure_records(archive: str | Path, date: str | dt.date, product: str = "prog") -> list[Path]:
    """Write a record for every file of the day that has none for its current content.

    A record is current when its size and modification time are the file's.
    For archives filled by ``rtofs sample`` or by hand, and for a crawler that stopped
    between a rename and its record. The hash comes from the manifest when it has one for
    the file's current size; the landed time is then the file's modification time.
    """
    from rtofs_lib.fetch import catalog

    day = f"{names.parse_date(date):%Y%m%d}"
    manifest = catalog.read_manifest(archive, day)["files"]
    have = {(r.name, r.size, r.mtime_ns) for r in read_records(archive, [day])}
    written = []
    for f in catalog.day_files(archive, day, product):
        st = f.stat()
        entry = manifest.get(f.name, {})
        sha = entry.get("sha256") if entry.get("size") == st.st_size else None
        if (f.name, st.st_size, st.st_mtime_ns) in have:
            continue
        when = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
        written.append(write_record(archive, f, sha256=sha, landed=when))
    return written


def prune_records(archive: str | Path, keep: set[str]) -> list[Path]:
    """Delete records of days not in ``keep`` (``YYYYMMDD`` strings); return them."""
    folder = landed_dir(archive)
    gone = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.endswith(".json") and p.name.split(".", 1)[0] not in keep:
                p.unlink(missing_ok=True)
                gone.append(p)
    return gone


__all__ = [
    "LANDED_DIR",
    "Landed",
    "day_glob",
    "ensure_records",
    "landed_dir",
    "prune_records",
    "read_record",
    "read_records",
    "record_for",
    "record_name",
    "utc_stamp",
    "write_record",
]
