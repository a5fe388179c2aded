"""The cube's layout and its writer: one file appended per transaction.

The cube is an Icechunk repository (local or Lustre file system) holding Zarr v3 arrays on
the native grid, fold row dropped:

===========================  =============================  ==================================
array                        dimensions                     chunks
===========================  =============================  ==================================
``<field>`` (``sst``, ...)   cycle, step, y, x              1, 1, 825, 1125 (map-chunked)
``series/<field>``           cycle, step, y, x              1, 138, 75, 75 (series-chunked)
``source``                   cycle, step                    1, 138: a digest of each file written
``series_source``            cycle, step                    1, 138: what ``series/`` was made of
``cycle``                    cycle                          days since 1970-01-01
``lat``, ``lon``, ``ocean``  y, x                           the grid and its ocean cells
===========================  =============================  ==================================

``step`` runs over the 138 published 2-D steps (:data:`rtofs_lib.fetch.names.STEPS_2DS`); a
new cycle day adds one ``cycle`` entry (in the order days arrive; readers sort). Values are the
netCDF's float32, NaN on land, encoded with Pcodec (lossless; chosen by measurement: see
``docs/cube.md``).

**Transactions.** :func:`append` writes a file's chunks into a writable session and commits
it: a reader (its own read-only session) sees the snapshot before or after, never half an
append. Icechunk's local storage does not make concurrent commits safe by itself, so commits
take an exclusive ``flock`` on ``.rtofs-commit.lock`` in the repository (released by the kernel
when a writer dies); a commit whose base moved is rebased (files of other days merge), and a
real conflict (two writers of one day: its ``source`` chunk; or adding the same new cycle) is
redone from the new tip. A
writer killed mid-append leaves only unreferenced chunk objects: the last commit stays
readable and the next append of that file writes it again.

**Rerun and replaced files.** ``source`` holds a 63-bit digest of the file's identity (its
manifest SHA-256 when the crawler recorded one, else size and modification time): a file
already in the cube with the same identity is skipped (:func:`missing`); a file NOAA replaced
has another one and is written again.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> tmp = tempfile.mkdtemp()
>>> (path,) = sample.write_sample(tmp + "/archive", "20260708", steps="f006", grid="12x12")
>>> append(path, tmp + "/cube", ["sst"])
True
>>> append(path, tmp + "/cube", ["sst"]), missing([path], tmp + "/cube")
(False, [])
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names

# Zarr warns on every open of an array whose codec is a numcodecs one (the cube's Pcodec, see
# `_codecs`): said once in the docs, not on each read of a notebook
warnings.filterwarnings("ignore", "Numcodecs codecs are not in the Zarr version 3 specification")

log = logging.getLogger(__name__)

__all__ = ["CubeError", "append", "finish_day", "missing", "source_token"]

#: The steps axis: every published 2-D step, in publication order.
STEPS: tuple[str, ...] = names.STEPS_2DS
#: Map-chunked layout: one step, the netCDF's own 825 x 1125 tiles.
MAP_CHUNK = (825, 1125)
#: Series-chunked layout: one cycle's 138 steps of a 75 x 75 cell tile (75 divides the map
#: chunk's 825 and 1125, so the day's copy decompresses each map chunk only a few times).
SERIES_CHUNK = (75, 75)
#: Group of the series-chunked copies.
SERIES = "series"
#: The lock file commits take, inside the repository (made after it: Icechunk creates
#: repositories only in empty folders). A dot-file, so readers of the folder skip it.
LOCK_NAME = ".rtofs-commit.lock"
#: Format of the cube (root attribute ``rtofs_cube``).
FORMAT = 1
EPOCH = dt.date(1970, 1, 1)
#: How often one append is redone after a real conflict.
TRIES = 20


class CubeError(RtofsError):
    """The cube is missing, of another grid, or cannot take a file."""


def _quiet_icechunk() -> None:
    import icechunk

    # it warns on every open that local storage is unsafe for concurrent commits: the
    # commit lock below is what makes them safe
    icechunk.set_logs_filter("error")


def _codecs(dtype: str = "float32") -> dict:
    """How an array's chunks are encoded: floats with Pcodec (lossless), others Blosc zstd.

    A chunk of full-size sst is 0.44 times Blosc zstd's bytes and a third of the netCDF's
    (deflate 1: ``docs/cube.md``); it is a numcodecs codec (``numcodecs.pcodec``), which Zarr
    readers outside Python may not have.
    """
    from zarr.codecs import BloscCodec
    from zarr.codecs.numcodecs import PCodec

    if not str(dtype).startswith("float"):  # Pcodec takes numbers only (``ocean`` is bool)
        return {"compressors": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]}
    return {"serializer": PCodec(level=8), "compressors": None}


def _storage(path: Path):
    import icechunk

    _quiet_icechunk()
    return icechunk.local_filesystem_storage(str(path))


def repository(path: str | Path, *, create: bool = False):
    """The cube's Icechunk repository at ``path`` (made when ``create`` and missing).

    Raises
    ------
    CubeError
        When there is no cube at ``path`` and ``create`` is false.
    """
    import icechunk

    path = Path(path).expanduser()
    if (path / "refs").is_dir():
        return icechunk.Repository.open(_storage(path))
    if not create:
        raise CubeError(
            f"{path}: no cube here; fill it with `rtofs cube build --from D --to D` or "
            "let `rtofs run`/`rtofs stream` append files (setting `cube`, or --cube DIR)"
        )
    path.mkdir(parents=True, exist_ok=True)
    for attempt in range(50):
        try:
            return icechunk.Repository.open_or_create(_storage(path))
        except icechunk.IcechunkError:  # another writer is making it: open it once it is made
            time.sleep(0.02 * (attempt + 1))
    raise CubeError(f"{path}: not an Icechunk repository, nor an empty folder to make one in")


@contextlib.contextmanager
def _commit_lock(path: Path) -> Iterator[None]:
    with open(path / LOCK_NAME, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def transact(path: str | Path, message: str, work: Callable[[Any], Any]) -> Any:
    """Run ``work(session)`` on a writable session and commit it; redo it on a conflict.

    ``work`` returns None when it changed nothing (nothing is committed).
    """
    import icechunk

    path = Path(path)
    repo = repository(path, create=True)
    for attempt in range(TRIES):
        session = repo.writable_session("main")
        result = work(session)
        if result is None or not session.has_uncommitted_changes:
            return result
        try:
            with _commit_lock(path):
                session.commit(message, rebase_with=icechunk.ConflictDetector())
            return result
        except (icechunk.ConflictError, icechunk.RebaseFailedError) as e:
            log.info("%s: %s conflicts with another writer (%s); redoing it", path, message, e)
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
    raise CubeError(f"{path}: {message} kept conflicting with other writers; run it again")


# --- identity of a file ---------------------------------------------------------------------------


def source_token(path: str | Path) -> int:
    """A non-zero 63-bit digest of a file's identity: its manifest SHA-256, else size + mtime."""
    from rtofs_lib.fetch import catalog

    path = Path(path)
    ident = ""
    try:
        entry = catalog.read_manifest(path.parent.parent, names.parse_day_folder(path.parent.name))
        ident = str(entry["files"].get(path.name, {}).get("sha256", ""))
    except (RtofsError, OSError):
        ident = ""
    if not ident:
        st = path.stat()
        ident = f"{st.st_size}:{st.st_mtime_ns}"
    digest = int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "little")
    return (digest >> 1) or 1


def _where(path: Path) -> tuple[dt.date, str]:
    n = names.parse_name(str(path))
    if n.date is None or n.family != "2ds":
        raise CubeError(
            f"{path}: the cube takes 2-D files inside an rtofs.YYYYMMDD folder (it needs the "
            "cycle day and a 2-D step)"
        )
    return n.date, n.step


def cycle_number(date: dt.date) -> int:
    """Days since 1970-01-01 (how ``cycle`` is stored)."""
    return (date - EPOCH).days


# --- the layout -----------------------------------------------------------------------------------


def _create_array(group, name: str, shape, chunks, dtype, fill, dims, attrs=None):  # noqa: PLR0917
    return group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=fill,
        **_codecs(dtype),
        dimension_names=dims,
        attributes=attrs or {},
    )


def _layout(session, grid: Callable[[], tuple], field_attrs: dict[str, dict]):
    """The root group, with the arrays ``field_attrs`` names (created when missing)."""
    import zarr

    store = session.store
    try:
        root = zarr.open_group(store, mode="r+")
        ny, nx = root["lat"].shape
    except (FileNotFoundError, KeyError):
        from rtofs_lib.fields import regrid

        lat, lon, ocean = grid()
        ny, nx = lat.shape
        attrs = {
            "rtofs_cube": FORMAT,
            "steps": list(STEPS),
            "grid_key": regrid.grid_key(lat, lon),  # the key of the grid's shared indices
            "lat_range": [float(np.nanmin(lat)), float(np.nanmax(lat))],
        }
        root = zarr.group(store, attributes=attrs)
        for name, values in (("lat", lat), ("lon", lon), ("ocean", ocean)):
            arr = _create_array(root, name, (ny, nx), MAP_CHUNK, values.dtype, 0, ("y", "x"))
            arr[:] = values
        cyc = _create_array(root, "cycle", (0,), (1,), "int32", 0, ("cycle",),
                            {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
                             "long_name": "cycle (run) date"})  # fmt: skip
        _ = cyc
        for name in ("source", "series_source"):
            # one chunk a day: a reader's look at what the cube holds costs one read a day
            # (per-cell chunks cost ~1 ms each); two writers of one day redo on conflict
            steps = (1, len(STEPS))
            _create_array(root, name, (0, len(STEPS)), steps, "int64", 0, ("cycle", "step"))
        root.create_group(SERIES)
    ncyc = root["cycle"].shape[0]
    for field, attrs in field_attrs.items():
        if field in root:
            continue
        dims = ("cycle", "step", "y", "x")
        shape = (ncyc, len(STEPS), ny, nx)
        _create_array(root, field, shape, (1, 1, *MAP_CHUNK), "float32", np.nan, dims, attrs)
        _create_array(root[SERIES], field, shape, (1, len(STEPS), *SERIES_CHUNK), "float32",
                      np.nan, dims, attrs)  # fmt: skip
    return root


def _arrays(root) -> list:
    """Every array with a ``cycle`` axis (resized together)."""
    out = [root["cycle"], root["source"], root["series_source"]]
    for name, arr in root.arrays():
        if name not in ("cycle", "source", "series_source", "lat", "lon", "ocean"):
            out.append(arr)
    out += [arr for _, arr in root[SERIES].arrays()]
    return out


def cycle_index(root, date: dt.date, *, add: bool = False) -> int | None:
    """Index of ``date`` along ``cycle`` (added at the end when ``add``; else None if absent)."""
    cycles = root["cycle"][:]
    hit = np.flatnonzero(cycles == cycle_number(date))
    if hit.size:
        return int(hit[0])
    if not add:
        return None
    n = cycles.shape[0]
    for arr in _arrays(root):
        arr.resize((n + 1, *arr.shape[1:]))
    root["cycle"][n] = cycle_number(date)
    return n


# --- appending ------------------------------------------------------------------------------------


def missing(paths: Iterable[str | Path], cube: str | Path) -> list[Path]:
    """The files of ``paths`` the cube does not hold (or holds an older version of)."""
    import zarr

    paths = [Path(p) for p in paths]
    try:
        repo = repository(cube)
        root = zarr.open_group(repo.readonly_session("main").store, mode="r")
        cycles = root["cycle"][:]
        source = root["source"]
    except (CubeError, FileNotFoundError, KeyError):
        return paths
    out = []
    for p in paths:
        date, step = _where(p)
        hit = np.flatnonzero(cycles == cycle_number(date))
        if not hit.size or int(source[int(hit[0]), STEPS.index(step)]) != source_token(p):
            out.append(p)
    return out


def _read(path: Path, fields: Sequence[str]) -> tuple[dict, dict]:
    from rtofs_lib.fields.netcdf import read_field

    values, attrs = {}, {}
    for f in fields:
        data = read_field(path, f, grid=False)
        values[f] = data.values
        attrs[f] = {"units": data.units, "long_name": data.long_name}
    return values, attrs


def _grid_of(path: Path, first: np.ndarray) -> Callable[[], tuple]:
    def grid() -> tuple:
        from rtofs_lib.fields.netcdf import read_grid

        lat, lon = read_grid(path)
        return lat, lon, np.isfinite(first)

    return grid


def append(path: str | Path, cube: str | Path, fields: Sequence[str]) -> bool:
    """Write one 2-D file's ``fields`` into the cube at its cycle and step, as one commit.

    Returns False when the cube already holds this version of the file (nothing written).

    Raises
    ------
    CubeError
        For a file outside a day folder or on another grid than the cube's.
    RtofsFileError
        For a file that cannot be read (it names the file).
    """
    path, cube = Path(path), Path(cube).expanduser()
    if not missing([path], cube):
        return False
    date, step = _where(path)
    token = source_token(path)
    values, attrs = _read(path, fields)
    grid = _grid_of(path, values[fields[0]])

    def work(session) -> bool | None:
        root = _layout(session, grid, attrs)
        if root["lat"].shape != values[fields[0]].shape:
            raise CubeError(
                f"{path}: its grid is {values[fields[0]].shape}, the cube's {root['lat'].shape}; "
                "a cube holds one grid: give this file another --cube"
            )
        c = cycle_index(root, date, add=True)
        s = STEPS.index(step)
        if int(root["source"][c, s]) == token:
            return None
        for f in fields:
            root[f][c, s] = values[f]
        root["source"][c, s] = token
        return True

    return bool(transact(cube, f"append {date:%Y%m%d} {step}", work))


def finish_day(cube: str | Path, date: str | dt.date, steps: Iterable[str] | None = None) -> bool:
    """Write the series-chunked copy of a cycle day once it holds every step of ``steps``.

    ``steps`` defaults to every step the day holds (a backfill of past days). Returns False
    when the day is not complete or its copy is already current.
    """
    import zarr

    cube, date = Path(cube).expanduser(), names.parse_date(date)

    def work(session) -> bool | None:
        root = zarr.open_group(session.store, mode="r+")
        c = cycle_index(root, date)
        if c is None:
            return None
        source = root["source"][c, :]
        held = {STEPS[k] for k in np.flatnonzero(source)}
        if not held or not set(steps or held) <= held:
            return None
        if np.array_equal(root["series_source"][c, :], source):
            return None
        for name, arr in root.arrays():
            if name in root[SERIES]:
                _copy_series(arr, root[SERIES][name], c)
        root["series_source"][c, :] = source
        return True

    return bool(transact(cube, f"series {date:%Y%m%d}", work))


def _copy_series(maps, series, c: int) -> None:
    """Copy cycle ``c`` of a map-chunked array into its series-chunked twin, band by band."""
    ny, nx = maps.shape[2:]
    rows, cols = MAP_CHUNK[0] // 3, MAP_CHUNK[1]  # a third of a map chunk: 170 MB of 138 steps
    for y0 in range(0, ny, rows):
        for x0 in range(0, nx, cols):
            band = maps[c, :, y0 : y0 + rows, x0 : x0 + cols]
            series[c, :, y0 : y0 + rows, x0 : x0 + cols] = band
