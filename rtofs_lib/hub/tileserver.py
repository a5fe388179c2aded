"""What the dashboard's map asks for: tiles, the days and steps, palettes, a point's series.

:class:`TileService` answers the dashboard service's ``tiles/`` and ``api/`` requests
(:mod:`rtofs_lib.hub.dashboard_service` does the HTTP): it reads fields through the
viewers' :class:`~rtofs_lib.notebook.viewer.source.FieldSource` (from the cube when it holds
the file, else the archive's netCDF; decoded fields kept in memory, bounded in bytes; the next
step read ahead in a thread), draws tiles
with :mod:`rtofs_lib.maps.tiles` and keeps them in memory and, when ``tile_cache`` is given,
on disk. A tile's key holds its file's **version** (inode, size and modification time): the
archive's files are complete and never change in place, so a tile drawn once stays right
until NOAA replaces the file, whose new version draws new tiles.

Every request a user can get wrong raises :class:`NotFound` with a message (the service's
404): an unknown date, step, field or colormap, a file not yet in the archive, a tile
outside the world or deeper than the grid's zoom, a point on land or outside the grid.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> root = tempfile.mkdtemp()
>>> _ = sample.write_sample(root + "/archive", "20260708", steps="n024,f001", grid="small")
>>> service = TileService(root + "/archive", cache_dir=root + "/cache")
>>> [s["step"] for s in service.layers()["days"][0]["steps"]]
['n024', 'f001']
>>> png, version = service.tile("20260708", "f001", "sst", 0, 0, 0)
>>> png[:4], len(version)
(b'\\x89PNG', 12)
>>> service.tile("20260708", "f002", "sst", 0, 0, 0)
Traceback (most recent call last):
...
rtofs_lib.hub.tileserver.NotFound: no f002 file of 20260708 for sst in the archive yet ...
>>> service.close()
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rtofs_lib import atomic
from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import catalog, names
from rtofs_lib.fields.grid import LRU, Grid
from rtofs_lib.maps import tiles
from rtofs_lib.maps.colors import LAND_RGB, N_COLORS, _colormap_rgb
from rtofs_lib.maps.styles import FIELDS, FieldStyle
from rtofs_lib.notebook.viewer.source import FieldSource, day_steps

log = logging.getLogger(__name__)

__all__ = ["CMAPS", "NotFound", "TileService"]

#: Colormaps a user may pick (cmocean's), besides each field's own.
CMAPS = ("thermal", "haline", "solar", "ice", "gray", "oxy", "deep", "dense", "algae", "matter",
         "turbid", "speed", "amp", "tempo", "rain", "phase", "topo", "balance", "delta", "curl",
         "diff", "tarn")  # fmt: skip
#: Fields drawn as tiles: the 2-D surface ones (the 3-D files' steps are daily).
TILE_FIELDS = tuple(name for name, s in FIELDS.items() if s.products in ("prog", "diag"))
#: Days listed by ``layers()``, latest first.
SHOWN_DAYS = 10


class NotFound(RtofsError):
    """A request for something that does not exist (the service answers 404 with the text)."""


def _version(path: Path) -> str:
    st = path.stat()
    ident = f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()
    return hashlib.sha256(ident).hexdigest()[:12]


class TileService:
    """Tiles, layers, palettes and point series from one archive (and its cube).

    Parameters
    ----------
    archive
        Archive root holding ``rtofs.YYYYMMDD/``.
    cube
        The cube (``rtofs_lib.cube``) for point series; None or missing: the day's files.
    cache_dir
        Grid-index cache (the tile index is kept there; read-only is fine once it is built).
    tile_cache
        Folder for drawn tiles on disk (None: memory only). A folder the service may not
        write is logged once and left alone.
    field_cache_mb, tile_memory_mb
        Memory for decoded fields (59 MB each at full size) and for tile PNGs.
    """

    def __init__(
        self,
        archive: str | Path,
        *,
        cube: str | Path | None = None,
        cache_dir: str | Path,
        tile_cache: str | Path | None = None,
        field_cache_mb: int = 1024,
        tile_memory_mb: int = 128,
    ) -> None:
        self.archive = Path(archive)
        self.cube = Path(cube) if cube is not None else None
        self.cache_dir = Path(cache_dir)
        self.tile_cache = Path(tile_cache) if tile_cache is not None else None
        self.source = FieldSource(self.archive, self.archive, self.cache_dir,
                                  cache_mb=field_cache_mb, cube=self.cube)  # fmt: skip
        self.memory = LRU(tile_memory_mb << 20, max_entries=1 << 20)
        self._grids: dict[tuple[int, int], Grid] = {}
        self._lock = threading.Lock()
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="rtofs-tiles-ahead")
        self._loading: dict[tuple, Future] = {}
        self._disk_ok = True
        self.stats = {"drawn": 0, "memory": 0, "disk": 0}

    # --- what exists --------------------------------------------------------------------------

    def _file(self, date: str, step: str, field: str) -> Path:
        style = self._style(field)
        try:
            day = names.parse_date(date)
            names.parse_step(step)
            name = names.compose_name(style.products, step)
        except ValueError as e:
            raise NotFound(str(e)) from None
        path = catalog.day_dir(self.archive, day) / name
        if not path.is_file():
            raise NotFound(
                f"no {step} file of {date} for {field} in the archive yet ({path.name}); "
                "api/layers.json lists the steps there are"
            )
        return path

    @staticmethod
    def _style(field: str) -> FieldStyle:
        if field not in TILE_FIELDS:
            raise NotFound(f"no tiles of field {field!r}; choose one of {', '.join(TILE_FIELDS)}")
        return FIELDS[field]

    @staticmethod
    def _cmap(field: str, cmap: str | None) -> str:
        own = FIELDS[field].cmap
        if cmap in (None, "", own):
            return own
        if cmap not in CMAPS:
            raise NotFound(f"unknown colormap {cmap!r}; choose one of {', '.join(CMAPS)}")
        return cmap

    def layers(self) -> dict[str, Any]:
        """The days (latest first) and their steps in the archive, fields, zoom and colormaps.

        A step is listed once its prog file is in the archive (complete: the crawler renames
        it into place), with its valid time and the file's version.
        """
        days = []
        for day in catalog.list_days(self.archive)[::-1][:SHOWN_DAYS]:
            date = f"{day:%Y%m%d}"
            steps = []
            files = day_steps(self.archive, day)
            for step, path in files.items():
                try:
                    version = _version(path)
                except OSError:  # replaced or removed while listing
                    continue
                valid = names.valid_time(day, step)
                steps.append({"step": step, "valid_time": f"{valid:%Y-%m-%dT%H:%M:%SZ}",
                              "version": version})  # fmt: skip
            steps.sort(key=lambda s: s["valid_time"])
            if steps:
                days.append({"date": date, "steps": steps})
        return {
            "max_zoom": self._max_zoom(days),
            "tile_size": tiles.TILE,
            "fields": {
                f: {
                    "title": FIELDS[f].title,
                    "units": FIELDS[f].units,
                    "range": [FIELDS[f].vmin, FIELDS[f].vmax],
                    "cmap": FIELDS[f].cmap,
                }
                for f in TILE_FIELDS
            },
            "cmaps": list(CMAPS),
            "days": days,
        }

    def _max_zoom(self, days: list[dict]) -> int:
        """The deepest zoom of the latest readable file's grid (a damaged file is skipped)."""
        for day in days:
            for step in day["steps"][::-1]:
                try:
                    path = self._file(day["date"], step["step"], "sst")
                    return tiles.max_zoom(self._grid(path).shape)
                except (RtofsError, OSError) as e:
                    log.info("no grid from %s %s: %s", day["date"], step["step"], e)
        return 0

    def palette(self, field: str, cmap: str | None = None) -> dict[str, Any]:
        """The colours of ``field``'s tiles: low to high over its range, and land."""
        style = self._style(field)
        cmap = self._cmap(field, cmap)
        rgb = _colormap_rgb(cmap)
        return {
            "field": field,
            "cmap": cmap,
            "range": [style.vmin, style.vmax],
            "units": style.units,
            "title": style.title,
            "colors": [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb[:N_COLORS].tolist()],
            "land": "#{:02x}{:02x}{:02x}".format(*LAND_RGB),
        }

    # --- tiles --------------------------------------------------------------------------------

    def _grid(self, path: Path) -> Grid:
        grid = Grid.of_file(path, self.cache_dir)
        with self._lock:  # one Grid per shape, so its index stays in memory once
            return self._grids.setdefault((grid.key, grid.shape), grid)

    def warm(self) -> None:
        """Build (or load) the tile index of the latest day's grid: the first tile then waits
        for nothing. Run in a thread when the service starts."""
        days = catalog.list_days(self.archive)
        for day in days[::-1]:
            for path in catalog.day_files(self.archive, day):
                try:
                    tiles.tile_index(self._grid(path))
                except (RtofsError, OSError, ValueError) as e:
                    log.warning("cannot prepare the tiles of %s: %s", path, e)
                    continue
                return

    def _key(self, date: str, step: str, field: str, z: int, x: int, y: int, cmap: str | None):
        path = self._file(date, step, field)
        cmap = self._cmap(field, cmap)
        try:
            version = _version(path)
        except OSError:
            raise NotFound(f"{path.name} of {date} was just removed from the archive") from None
        return path, (date, step, field, cmap, version, z, x, y)

    def cached(
        self, date: str, step: str, field: str, z: int, x: int, y: int, cmap: str | None = None
    ) -> tuple[bytes, str] | None:
        """The tile and its version when it is in memory (a stat and a lookup), else None."""
        _, key = self._key(date, step, field, z, x, y, cmap)
        png = self.memory.get(key)
        if png is None:
            return None
        self.stats["memory"] += 1
        return png, key[4]

    def tile(
        self, date: str, step: str, field: str, z: int, x: int, y: int, cmap: str | None = None
    ) -> tuple[bytes, str]:
        """The PNG of tile ``z/x/y`` of ``field`` at ``step`` of ``date``, and the file's version.

        Raises
        ------
        NotFound
            For anything that does not exist (the message says what and what does).
        """
        path, key = self._key(date, step, field, z, x, y, cmap)
        version, cmap = key[4], key[3]
        png = self.memory.get(key)
        if png is not None:
            self.stats["memory"] += 1
            return png, version
        disk = self._disk_path(key)
        if disk is not None:
            try:
                png = disk.read_bytes()
            except OSError:
                png = None
            if png is not None:
                self.stats["disk"] += 1
                self.memory.put(key, png, len(png))
                return png, version
        grid = self._grid(path)
        try:
            cells = tiles.tile_cells(tiles.tile_index(grid), z, x, y)
        except tiles.TileError as e:
            raise NotFound(str(e)) from None
        values = self._values(path, field)
        self._read_ahead(date, step, field)
        png = tiles.render_tile(values, cells, field, cmap)
        self.stats["drawn"] += 1
        self.memory.put(key, png, len(png))
        if disk is not None:
            self._write_disk(disk, png)
        return png, version

    def _values(self, path: Path, field: str) -> np.ndarray:
        """The field of ``path``: from memory, a read under way (ahead, or for another tile of
        the viewport: a step's 20 tiles ask at once), or read now, once."""
        key = self.source.key(path, field, None)
        with self._lock:
            reading = self._loading.get(key)
            mine = reading is None and self.source.cache.peek(key) is None
            if mine:
                reading = self._loading[key] = Future()
        if reading is None:
            return self.source.field(path, field, None).values
        if not mine:
            return reading.result().values
        try:
            found = self.source.field(path, field, None)
            reading.set_result(found)
            return found.values
        except BaseException as e:
            reading.set_exception(e)
            raise
        finally:
            with self._lock:
                self._loading.pop(key, None)

    def _read_ahead(self, date: str, step: str, field: str) -> None:
        """Read the next step's field in a background thread (the slider and play go forward).

        A thread, not the viewers' reader process: the cube's reads release the GIL, and a
        netCDF read waits for the one HDF5 lock as any other. Code in the same process that
        opens netCDF files without that lock (:data:`rtofs_lib.fields.netcdf.HDF5_LOCK`) must
        not run beside it: only :meth:`tile` reads ahead, which a notebook's
        :func:`~rtofs_lib.notebook.viewer.tile_map` never calls.
        """
        style = FIELDS[field]
        steps = list(names.steps_for(style.products))
        if step not in steps or steps.index(step) + 1 >= len(steps):
            return
        nxt = steps[steps.index(step) + 1]
        path = catalog.day_dir(self.archive, names.parse_date(date)) / names.compose_name(
            style.products, nxt
        )
        if not path.is_file():
            return
        key = self.source.key(path, field, None)
        with self._lock:
            if key in self._loading or self.source.cache.peek(key) is not None:
                return
            future = self._ahead.submit(self.source.field, path, field, None)
            self._loading[key] = future

        def done(f: Future) -> None:
            with self._lock:
                self._loading.pop(key, None)
            if f.exception() is not None:  # the request for that step will say it
                log.info("reading %s ahead: %s", path.name, f.exception())

        future.add_done_callback(done)

    def _disk_path(self, key: tuple) -> Path | None:
        if self.tile_cache is None or not self._disk_ok:
            return None
        date, step, field, cmap, version, z, x, y = key
        return self.tile_cache / date / step / field / cmap / version / str(z) / str(x) / f"{y}.png"

    def _write_disk(self, dest: Path, png: bytes) -> None:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(dest, png, fsync=False)  # a cache: redrawn if lost
        except OSError as e:
            self._disk_ok = False
            log.warning("tiles are kept in memory only: cannot write %s (%s)", dest, e)

    # --- a point's series ---------------------------------------------------------------------

    def series(
        self, lon: float, lat: float, field: str = "sst", date: str | None = None
    ) -> dict[str, Any]:
        """The values at the grid cell drawn at ``lon``/``lat`` (the tiles' cell there).

        The cube's whole best series when it holds the point, else the steps of ``date``'s
        files (default: the latest day).

        Raises
        ------
        NotFound
            A latitude outside the grid, a point on land (naming the nearest ocean cell), an
            unknown field or date.
        """
        from rtofs_lib.notebook.viewer import series as point

        self._style(field)
        if not -90.0 <= lat <= 90.0:
            raise NotFound(f"latitude {lat:g} is outside -90 … 90")
        days = [f"{d:%Y%m%d}" for d in catalog.list_days(self.archive)[::-1]]
        days = [d for d in days if day_steps(self.archive, d)]
        if not days:
            raise NotFound("the archive holds no files yet")
        date = date or days[0]
        if date not in days:
            raise NotFound(f"no files of {date} in the archive; days: {', '.join(days)}")
        files = {step: self._file(date, step, field) for step in day_steps(self.archive, date)}
        path = next(iter(files.values()))
        grid = self._grid(path)
        index = tiles.tile_index(grid)
        col, row = tiles.lonlat_pixel(lon, lat, tiles.index_zoom(index))
        found = grid.cell_at(index, x=col, y=row)
        if found is None:
            raise NotFound(f"{lon:g}°, {lat:g}° is outside the grid (it ends near "
                           f"{float(np.nanmin(grid.lat)):.1f}°)")  # fmt: skip
        j, i = found
        values = self.source.field(path, field, None).values
        if np.isnan(values[j, i]):
            raise NotFound(self._land_message(grid, values, lon, lat))
        where = (float(lon), float(lat))
        cell = (j, i, grid.lat, grid.lon)
        s = None
        if self.cube is not None:
            s = point.cube_series(self.cube, (field, None), cell, where, self.cache_dir)
        if s is None:
            s = point.point_series(self.source, files, date=date, field=(field, None),
                                   point=cell, where=where)  # fmt: skip
        return {
            "field": field,
            "units": s.units,
            "lon": where[0],
            "lat": where[1],
            "cell": {"j": s.j, "i": s.i, "lon": s.grid_lon, "lat": s.grid_lat},
            "source": s.origin,
            "points": [
                {
                    "valid_time": f"{t:%Y-%m-%dT%H:%M:%SZ}",
                    "value": None if np.isnan(v) else round(float(v), 4),
                }
                for t, v in zip(s.times, s.values, strict=True)
            ],
        }

    @staticmethod
    def _land_message(grid: Grid, values: np.ndarray, lon: float, lat: float) -> str:
        wet = grid.nearest_wet(lon, lat, ~np.isnan(values))
        if wet is None:
            return f"{lon:g}°, {lat:g}° is on land, and the field has no ocean cell"
        j, i = wet
        glon = (float(grid.lon[j, i]) + 180.0) % 360.0 - 180.0
        return (
            f"{lon:g}°, {lat:g}° is on land; the nearest ocean cell is {glon:.2f}°, "
            f"{float(grid.lat[j, i]):.2f}° (j={j}, i={i}): click there"
        )

    def close(self) -> None:
        """Stop the read-ahead."""
        self._ahead.shutdown(wait=True, cancel_futures=True)
        self.source.close()
