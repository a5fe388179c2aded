"""Notebook viewers (ipywidgets 8, JupyterLab 4) over the RTOFS archive and its maps.

:class:`SSTViewer` shows one cycle day: a day picker, a step slider with play
(``n000`` … ``f192``), the field (SST, SSS, SSH, surface current speed, temperature or
salinity at depth), region presets and a custom box, colormap and colour range, low or
high resolution. A click on the map plots that grid point's values across the day's steps.
A compare mode shows two days side by side, or their difference, pairing day B's map by the
same valid time (default) or the same step.

Maps come from the pre-rendered PNGs of ``rtofs run`` (``maps/rtofs.YYYYMMDD/<stem>/``)
when they match the view (default colours, global or a rendered region); otherwise the
fast renderer (:func:`rtofs_lib.maps.render.render_array`) draws them on demand. Decoded fields
are kept in memory (``cache_mb``), and the next steps are read ahead in a background
thread, so moving the slider mostly costs a gather, a palette pass and a PNG encode.

Examples
--------
>>> from rtofs_lib.notebook.viewers import viewer
>>> v = viewer("~/rtofs/archive", date="20260708")  # doctest: +SKIP
>>> v  # doctest: +SKIP
>>> v.slider.value += 1; v.click_lonlat(-70.0, 38.0); v.series.values  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import ipywidgets as w
import numpy as np

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import catalog, names
from rtofs_lib.fields import regrid
from rtofs_lib.maps import render
from rtofs_lib.maps.decorations import map_box
from rtofs_lib.maps.rasters import parse_region, raster_for
from rtofs_lib.maps.styles import FIELDS, FieldStyle

__all__ = ["COLORMAPS", "DIFF_SPAN", "REGION_PRESETS", "PointSeries", "SSTViewer", "viewer"]

#: Region presets: label → ``(lon0, lon1, lat0, lat1)`` (None: the globe).
REGION_PRESETS: dict[str, tuple[float, float, float, float] | None] = {
    "Global": None,
    "Chilean coast": (-80.0, -68.0, -45.0, -18.0),
    "Gulf Stream": (-80.0, -50.0, 30.0, 45.0),
    "North Atlantic": (-80.0, -5.0, 0.0, 65.0),
    "Equatorial Pacific": (160.0, -80.0, -10.0, 10.0),
    "Mediterranean": (-6.0, 36.0, 30.0, 46.0),
    "Kuroshio": (120.0, 160.0, 20.0, 45.0),
    "Agulhas": (10.0, 40.0, -45.0, -25.0),
    "Arctic": (-180.0, 180.0, 60.0, 90.0),
}
CUSTOM = "Custom box"

#: Fields offered, in menu order (keys of :data:`rtofs_lib.maps.FIELDS`).
VIEW_FIELDS = ("sst", "sss", "ssh", "speed", "temperature", "salinity")

#: Colormaps offered (cmocean first, then matplotlib's).
COLORMAPS = (
    "thermal", "haline", "balance", "speed", "deep", "dense", "solar", "ice", "amp", "tempo",
    "curl", "delta", "viridis", "magma", "RdBu_r",
)  # fmt: skip

#: Half-width of the colour range of a difference map, by field.
DIFF_SPAN = {"sst": 2.0, "sss": 0.5, "ssh": 0.3, "speed": 0.5, "temperature": 2.0, "salinity": 0.5}

MODES = (("single", "single"), ("side by side", "side"), ("difference A − B", "diff"))
#: How compare mode picks day B's map: the same valid time (a forecast against an older
#: forecast of the same moment) or the same step (a day later at the same lead time).
PAIRINGS = (("same valid time", "valid"), ("same step", "step"))


@dataclass(frozen=True)
class PointSeries:
    """The values of one grid point across a day's steps (what a click on the map shows).

    Attributes
    ----------
    lon, lat
        Where the click fell (pixel centre), degrees.
    grid_lon, grid_lat
        The grid point shown at that pixel (longitude in [-180, 180)).
    j, i
        Its row and column in the grid (fold row dropped).
    date
        Cycle day, ``YYYYMMDD``.
    steps, times
        Step names and valid times, in time order.
    values
        float32, NaN on land.
    field, units, depth
        What was read.
    """

    lon: float
    lat: float
    grid_lon: float
    grid_lat: float
    j: int
    i: int
    date: str
    steps: tuple[str, ...]
    times: tuple[dt.datetime, ...]
    values: np.ndarray
    field: str
    units: str
    depth: float | None = None


@dataclass(frozen=True)
class _Field:
    values: np.ndarray  # float32 (ny-1, nx), NaN on land; read-only
    valid_time: dt.datetime | None
    step: str
    depth: float | None

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


class _FieldCache:
    """Decoded fields by (path, mtime, field, depth), bounded in bytes, with read-ahead.

    Read-ahead runs in a worker *process*: netCDF-C/HDF5 is not thread-safe, and a
    background thread reading while notebook code reads a file in the main thread can
    crash the kernel. ``get`` waits for a read already under way instead of reading twice.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._done: OrderedDict[tuple, _Field] = OrderedDict()
        self._pending: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _executor(self) -> ProcessPoolExecutor:
        return _reader_process()

    def _store(self, key: tuple, value: _Field) -> None:
        if value.values.flags.writeable:
            value.values.setflags(write=False)
        with self._lock:
            self._done[key] = value
            self._done.move_to_end(key)
            total = sum(f.nbytes for f in self._done.values())
            while total > self.max_bytes and len(self._done) > 1:
                _, old = self._done.popitem(last=False)
                total -= old.nbytes

    def peek(self, key: tuple) -> _Field | None:
        with self._lock:
            return self._done.get(key)

    def get(self, key: tuple, load: Callable[[], _Field]) -> _Field:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.hits += 1
                return self._done[key]
            pending = self._pending.get(key)
        if pending is not None:
            with contextlib.suppress(Exception):  # a failed read-ahead is read again here
                pending.result()
            for _ in range(1000):  # the done-callback stores it right after
                with self._lock:
                    value = self._done.get(key)
                    if value is not None or key not in self._pending:
                        break
                time.sleep(0.001)
            if value is not None:
                self.hits += 1
                return value
        self.misses += 1
        value = load()
        self._store(key, value)
        return value

    def prefetch(self, key: tuple, args: tuple) -> None:
        """Read ``_read_values_unlocked(*args)`` in the worker process, unless known."""
        with self._lock:
            if key in self._done or key in self._pending:
                return
            future = self._executor().submit(_read_to_shared_memory, *args)
            self._pending[key] = future

        def finished(f: Future) -> None:
            with self._lock:
                self._pending.pop(key, None)
            if not f.cancelled() and f.exception() is None:
                self._store(key, _from_shared_memory(*f.result()))

        future.add_done_callback(finished)

    def wait(self) -> None:
        """Block until every read-ahead has finished."""
        while True:
            with self._lock:
                pending = list(self._pending.values())
            if not pending:
                return
            for f in pending:
                with contextlib.suppress(Exception):
                    f.result()
            time.sleep(0.001)  # let the done-callbacks run

    def clear(self) -> None:
        self.wait()
        with self._lock:
            self._done.clear()

    def close(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for f in pending:
            f.cancel()


def _shared_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def _read_to_shared_memory(path: Path, field: str, depth: float | None) -> tuple:
    """In the worker: read a field into a ``.npy`` in shared memory (no 59 MB pickle)."""
    f = _read_values_unlocked(path, field, depth)
    fd, name = tempfile.mkstemp(prefix="rtofs-viewer-", suffix=".npy", dir=_shared_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            np.save(out, f.values)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return name, f.valid_time, f.step, f.depth


def _from_shared_memory(name: str, valid_time, step: str, depth) -> _Field:
    """In the viewer: map the worker's array (read-only, no copy) and drop its name."""
    try:
        values = np.load(name, mmap_mode="r")
    finally:
        Path(name).unlink(missing_ok=True)  # the mapping keeps the pages until released
    return _Field(values, valid_time, step, depth)


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _reader_process() -> ProcessPoolExecutor:
    """The read-ahead worker process shared by the viewers of this kernel (started once)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or getattr(_POOL, "_broken", False):
            import multiprocessing

            # spawn: a fork of a kernel with running threads may inherit held locks
            _POOL = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def _hdf5_lock():
    """The lock xarray takes around netCDF4/HDF5 calls: the library is not thread-safe.

    The read-ahead thread and the notebook (xarray or this viewer) must never be inside
    netCDF-C/HDF5 at the same time (that crashes the kernel).
    """
    try:
        from xarray.backends.locks import HDF5_LOCK
    except ImportError:  # pragma: no cover - xarray is a dependency
        return _FALLBACK_LOCK
    return HDF5_LOCK


_FALLBACK_LOCK = threading.Lock()


def _read_values(path: Path, field: str, depth: float | None) -> _Field:
    """Read a field (speed from u and v) as float32 with NaN on land."""
    with _hdf5_lock():
        return _read_values_unlocked(path, field, depth)


def _read_values_unlocked(path: Path, field: str, depth: float | None) -> _Field:
    from rtofs_lib.fields import reader

    style = FIELDS[field]
    first = reader.read_field(path, style.variables[0], depth=depth, grid=False)
    values = first.values
    if len(style.variables) == 2:
        second = reader.read_field(path, style.variables[1], depth=depth, grid=False)
        values = np.hypot(values, second.values, out=values)
    return _Field(values, first.valid_time, first.step, first.depth)


def _read_point(path: Path, field: str, depth: float | None, j: int, i: int) -> float:
    """The value of ``field`` at grid row ``j``, column ``i`` (NaN on land), read directly."""
    import netCDF4

    from rtofs_lib.fields import reader

    style = FIELDS[field]
    reader.check_file(path)
    parts = []
    with _hdf5_lock(), netCDF4.Dataset(path, "r") as nc:
        for name in style.variables:
            var = nc.variables[name]
            var.set_auto_maskandscale(False)
            index: list = []
            for dim in var.dimensions[:-2]:
                if dim == "Depth" and depth is not None:
                    levels = np.asarray(nc.variables["Depth"][:], dtype=float)
                    index.append(int(np.argmin(np.abs(levels - depth))))
                else:
                    index.append(0)
            value = np.float32(var[(*index, j, i)])
            fill = np.float32(getattr(var, "_FillValue", reader.FILL_VALUE))
            parts.append(np.float32(np.nan) if value == fill else value)
    if len(parts) == 2:
        return float(np.hypot(parts[0], parts[1]))
    return float(parts[0])


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=render.PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _depths(path: Path) -> list[float]:
    import netCDF4

    with _hdf5_lock(), netCDF4.Dataset(path, "r") as nc:
        if "Depth" not in nc.variables:
            return []
        return [float(d) for d in np.asarray(nc.variables["Depth"][:])]


class SSTViewer(w.VBox):
    """An ipywidgets viewer of one RTOFS day (see the module docs).

    Parameters
    ----------
    archive
        Archive root holding ``rtofs.YYYYMMDD/`` (default: the configured archive).
    maps
        Maps folder of ``rtofs run`` (default: the configured maps); pre-rendered maps
        found there are shown as they are.
    date
        Cycle day to open (default: the latest in the archive).
    field
        ``sst``, ``sss``, ``ssh``, ``speed``, ``temperature`` or ``salinity``.
    region
        A key of :data:`REGION_PRESETS`, or a box ``(lon0, lon1, lat0, lat1)``.
    size
        ``"low"`` (about 1500 px wide) or ``"high"`` (0.08° per pixel).
    cache_dir
        Grid-index cache (default: the configured cache).
    prefetch
        How many following steps to read ahead in the background (0: none).
    cache_mb
        Memory for decoded fields (a full-size field is 59 MB).
    play_interval
        Milliseconds between steps when playing.

    Attributes
    ----------
    image, image_b
        The map widgets (``image_b`` shows day B in compare mode).
    series
        The :class:`PointSeries` of the last click (None before one); ``series_b`` for day B.
    last
        What the last update did: ``source`` (``"pre-rendered"`` or ``"rendered"``),
        ``seconds``, ``raster``, ``path``.
    error
        The message of the last failed update ("" when it worked); also shown in the viewer.
    """

    def __init__(
        self,
        archive: str | Path | None = None,
        maps: str | Path | None = None,
        date: str | dt.date | None = None,
        *,
        field: str = "sst",
        region: str | Sequence[float] = "Global",
        size: str = "low",
        cache_dir: str | Path | None = None,
        prefetch: int = 2,
        cache_mb: int = 1024,
        play_interval: int = 700,
    ) -> None:
        from rtofs_lib import config

        settings = None
        if archive is None or maps is None or cache_dir is None:
            settings = config.load()
        self.archive = Path(archive if archive is not None else settings.archive).expanduser()
        self.maps = Path(maps if maps is not None else settings.maps).expanduser()
        self.cache_dir = Path(cache_dir if cache_dir is not None else settings.cache).expanduser()
        self.prefetch_steps = max(0, int(prefetch))
        self.series: PointSeries | None = None
        self.series_b: PointSeries | None = None
        self.last: dict = {}
        self.error = ""
        self.timings: list[tuple[str, float]] = []
        self._cache = _FieldCache(int(cache_mb) * 1024 * 1024)
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, str]] = {}
        self._grid_lock = threading.Lock()
        self._quiet = 0
        self._files: dict[tuple[str, str], dict[str, Path]] = {}
        self._view: tuple | None = None  # (style, raster) of the image shown
        self._shown_step: str | None = None  # kept across day and field changes
        if field not in VIEW_FIELDS:
            raise ValueError(f"unknown field {field!r}; choose one of {', '.join(VIEW_FIELDS)}")

        days = [f"{d:%Y%m%d}" for d in catalog.list_days(self.archive)]
        if not days:
            raise RtofsError(
                f"{self.archive}: no rtofs.YYYYMMDD day folders; fetch a day (rtofs crawl) or "
                f"write sample data (rtofs sample {self.archive} --date YYYYMMDD)"
            )
        day = f"{names.parse_date(date):%Y%m%d}" if date is not None else days[-1]
        if day not in days:
            raise RtofsError(
                f"{self.archive}: no folder {names.day_folder(day)}; days present: "
                f"{', '.join(days)}"
            )
        day_options = [(f"{names.parse_date(d):%Y-%m-%d}", d) for d in reversed(days)]
        style = FIELDS[field]
        span = style.vmax - style.vmin

        self.day = w.Dropdown(options=day_options, value=day, description="Day")
        self.mode = w.ToggleButtons(options=MODES, value="single", description="Compare")
        self.mode.style.button_width = "auto"
        other = next((d for d in reversed(days) if d != day), day)
        self.day_b = w.Dropdown(options=day_options, value=other, description="Day B")
        self.pair = w.ToggleButtons(options=PAIRINGS, value="valid", description="Pair by")
        self.pair.style.button_width = "auto"
        self.field = w.Dropdown(
            options=[(FIELDS[f].title, f) for f in VIEW_FIELDS],
            value=field,
            description="Field",
        )
        self.depth = w.Dropdown(options=[("0 m", 0.0)], value=0.0, description="Depth")
        presets = [*REGION_PRESETS, CUSTOM]
        self.region = w.Dropdown(options=presets, value="Global", description="Region")
        self.box = w.Text(
            value="-80,-50,30,45",
            placeholder="LON0,LON1,LAT0,LAT1",
            description="Box",
            continuous_update=False,
            disabled=True,
        )
        self.slider = w.IntSlider(
            min=0, max=0, value=0, description="Step", readout=False, continuous_update=True
        )
        self.play = w.Play(min=0, max=0, value=0, interval=play_interval, repeat=True)
        w.jslink((self.play, "value"), (self.slider, "value"))
        w.jslink((self.play, "max"), (self.slider, "max"))
        self.step_label = w.HTML()
        self.cmap = w.Dropdown(options=COLORMAPS, value=style.cmap, description="Colours")
        self.range = w.FloatRangeSlider(
            value=(style.vmin, style.vmax),
            min=style.vmin - span / 2,
            max=style.vmax + span / 2,
            step=span / 200,
            description="Range",
            continuous_update=False,
            readout_format=".2f",
        )
        self.size = w.ToggleButtons(options=[("low", "low"), ("high", "high")], value=size)
        self.size.style.button_width = "4em"
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.image_b = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.series_image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.status = w.HTML()
        self._events = []
        try:
            from ipyevents import Event
        except ImportError:  # clicks need ipyevents (a dependency of the viewers extra)
            self.status.value = "clicks need ipyevents: pip install ipyevents"
        else:
            for img, which in ((self.image, "a"), (self.image_b, "b")):
                ev = Event(source=img, watched_events=["click"], prevent_default_action=True)
                ev.on_dom_event(lambda event, which=which: self._on_dom_event(event, which))
                self._events.append(ev)

        self._images = w.HBox([self.image], layout=w.Layout(width="100%"))
        self._b_row = w.HBox([self.day_b, self.pair])
        super().__init__(
            [
                w.HBox([self.day, self.mode]),
                self._b_row,
                w.HBox([self.field, self.depth, self.region, self.box]),
                w.HBox([self.play, self.slider, self.step_label]),
                w.HBox([self.cmap, self.range, self.size]),
                self._images,
                self.status,
                self.series_image,
            ]
        )
        self.add_class("rtofs-viewer")

        with self._hold():
            self._set_region(region)
            self._sync_field(reset_style=False)
            self._sync_mode()
        for widget, handler in (
            (self.day, self._on_day),
            (self.day_b, self._on_change),
            (self.pair, self._on_change),
            (self.mode, self._on_mode),
            (self.field, self._on_field),
            (self.depth, self._on_change),
            (self.region, self._on_region),
            (self.box, self._on_change),
            (self.slider, self._on_step),
            (self.cmap, self._on_change),
            (self.range, self._on_change),
            (self.size, self._on_change),
        ):
            widget.observe(handler, names="value")
        self.refresh("open")

    # --- state helpers -------------------------------------------------------------------

    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        """Change several widgets without an update per change."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _set_region(self, region: str | Sequence[float]) -> None:
        if isinstance(region, str) and region in REGION_PRESETS:
            self.region.value = region
            self.box.disabled = True
            return
        box = parse_region(region)
        self.region.value = CUSTOM
        self.box.value = ",".join(f"{v:g}" for v in box)
        self.box.disabled = False

    @property
    def product(self) -> str:
        """Product code whose files hold the selected field."""
        return FIELDS[self.field.value].products

    def files(self, date: str | None = None) -> dict[str, Path]:
        """Step → file of the selected field's product on ``date`` (default: the day shown)."""
        date = date or self.day.value
        key = (date, self.product)
        if key not in self._files:
            found: dict[str, Path] = {}
            for p in catalog.day_files(self.archive, date, self.product):
                found.setdefault(names.parse_name(p.name).step, p)
            if "n024" in found:  # f000 is valid at the same time as n024
                found.pop("f000", None)
            self._files[key] = found
        return self._files[key]

    @property
    def steps(self) -> list[str]:
        """Steps of the day shown, in slider order."""
        return list(self.files())

    @property
    def step(self) -> str:
        """The step shown ("" when the day has no files of the field's product)."""
        steps = self.steps
        return steps[min(self.slider.value, len(steps) - 1)] if steps else ""

    @property
    def step_b(self) -> str:
        """Day B's step paired with the step shown ("" when day B has none).

        With ``pair`` = ``valid`` it is the step of day B valid at the same time (a nowcast
        pairs with a nowcast when day B has one, else with a forecast); with ``step`` it is
        the same step.
        """
        return self._paired_step(self.step)

    def _paired_step(self, step: str) -> str:
        files_b = self.files(self.day_b.value)
        if not step:
            return ""
        if self.pair.value == "step":
            return step if step in files_b else ""
        when = names.valid_time(self.day.value, step)
        same = [s for s in files_b if names.valid_time(self.day_b.value, s) == when]
        same.sort(key=lambda s: s[0] != step[0])  # same kind (n/f) first
        return same[0] if same else ""

    def _paired_file(self, step: str) -> Path | None:
        step_b = self._paired_step(step)
        return self.files(self.day_b.value)[step_b] if step_b else None

    @property
    def region_box(self) -> tuple[float, float, float, float] | None:
        """The box shown, or None for the globe."""
        if self.region.value == CUSTOM:
            return parse_region(self.box.value)
        return REGION_PRESETS[self.region.value]

    @property
    def depth_value(self) -> float | None:
        """Depth in metres for 3-D fields, None for surface fields."""
        return self.depth.value if FIELDS[self.field.value].products.startswith("3z") else None

    def style(self) -> FieldStyle:
        """The field's style with the chosen colormap and range."""
        base = FIELDS[self.field.value]
        vmin, vmax = self.range.value
        if not vmax > vmin:
            vmax = vmin + 1e-6
        return replace(base, cmap=self.cmap.value, vmin=float(vmin), vmax=float(vmax))

    def raster(self) -> regrid.Raster:
        """The raster of the map shown."""
        return raster_for(self.region_box, self.size.value)

    def _sync_steps(self, keep: str | None = None) -> None:
        steps = self.steps
        n = max(1, len(steps))
        value = steps.index(keep) if keep in steps else min(self.slider.value, n - 1)
        self.slider.max = n - 1
        self.play.max = n - 1
        self.slider.value = value
        self.play.value = value

    def _sync_field(self, reset_style: bool = True) -> None:
        """Follow a field change: steps of its product, depth choices, default colours."""
        keep = self._shown_step
        style = FIELDS[self.field.value]
        three_d = style.products.startswith("3z")
        self.depth.layout.display = None if three_d else "none"
        if three_d:
            files = self.files()
            levels = _depths(next(iter(files.values()))) if files else []
            if levels:
                old = self.depth.value
                self.depth.options = [(f"{d:g} m", d) for d in levels]
                self.depth.value = min(levels, key=lambda d: abs(d - old))
        if reset_style:
            span = style.vmax - style.vmin
            self.cmap.value = style.cmap
            self.range.min = min(self.range.min, style.vmin - span / 2)
            self.range.max = max(self.range.max, style.vmax + span / 2)
            self.range.value = (style.vmin, style.vmax)
            self.range.min, self.range.max = style.vmin - span / 2, style.vmax + span / 2
            self.range.step = span / 200
        self._sync_steps(keep)

    def _sync_mode(self) -> None:
        compare = self.mode.value != "single"
        self._b_row.layout.display = None if compare else "none"
        if self.mode.value == "side":
            self.image.layout.max_width = "50%"
            self.image_b.layout.max_width = "50%"
            self._images.children = [self.image, self.image_b]
        else:
            self.image.layout.max_width = "100%"
            self._images.children = [self.image]

    # --- observers -----------------------------------------------------------------------

    def _on_change(self, change) -> None:
        if not self._quiet:
            self.refresh(change["owner"].description.lower() or "change")

    def _on_step(self, change) -> None:
        if not self._quiet:
            self.refresh("step")

    def _on_day(self, change) -> None:
        if self._quiet:
            return
        with self._hold():
            self._sync_steps(self._shown_step)
        self.refresh("day")

    def _on_field(self, change) -> None:
        if self._quiet:
            return
        with self._hold():
            self._sync_field()
        self.refresh("field")

    def _on_region(self, change) -> None:
        if self._quiet:
            return
        self.box.disabled = self.region.value != CUSTOM
        self.refresh("region")

    def _on_mode(self, change) -> None:
        if self._quiet:
            return
        self._sync_mode()
        self.refresh("mode")

    def _on_dom_event(self, event: dict, which: str = "a") -> None:
        x = event.get("dataX", event.get("relativeX"))
        y = event.get("dataY", event.get("relativeY"))
        if x is None or y is None:
            return
        self.click(float(x), float(y))

    # --- data ----------------------------------------------------------------------------

    def _key(self, path: Path, field: str, depth: float | None) -> tuple:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        return (str(path), mtime, field, depth)

    def _field(self, path: Path, field: str, depth: float | None) -> _Field:
        return self._cache.get(
            self._key(path, field, depth), lambda: _read_values(path, field, depth)
        )

    def _grid(self, path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, str]:
        """``(lat, lon, key)`` of the grid of ``path`` (read once per grid shape)."""
        from rtofs_lib.fields import reader

        with self._grid_lock:
            if shape not in self._grids:
                with _hdf5_lock():
                    lat, lon = reader.read_grid(path)
                self._grids[shape] = (lat, lon, regrid.grid_key(lat, lon))
            return self._grids[shape]

    def _prefetch(self) -> None:
        """Read the next steps (and day B's paired ones in compare mode) in the background."""
        if not self.prefetch_steps:
            return
        steps = self.steps
        k = self.slider.value
        field, depth = self.field.value, self.depth_value
        ahead = [k + d for d in range(1, self.prefetch_steps + 1)]
        ahead = [steps[i % len(steps)] for i in ahead if len(steps) > 1]  # play wraps round
        paths = [self.files()[step] for step in ahead]
        if self.mode.value != "single":
            paths += [p for p in (self._paired_file(step) for step in ahead) if p is not None]
        for path in paths:
            self._cache.prefetch(self._key(path, field, depth), (path, field, depth))

    def clear_cache(self) -> None:
        """Forget the decoded fields (after a read-ahead has finished)."""
        self._cache.clear()

    def wait_prefetch(self) -> None:
        """Wait for the background reads (for tests and benchmarks)."""
        self._cache.wait()

    def _prerendered(self, path: Path, style: FieldStyle) -> Path | None:
        base = FIELDS[style.name]
        if (style.cmap, style.vmin, style.vmax) != (base.cmap, base.vmin, base.vmax):
            return None
        depth = self.depth_value
        if depth is not None:  # the file name carries the level's depth
            depth = self._field(path, style.name, depth).depth
        png = render.output_path(
            self.maps / names.day_folder(self.day.value),
            path,
            style.name,
            self.size.value,
            self.region_box,
            depth,
        )
        return png if png.is_file() else None

    def _render(self, path: Path, style: FieldStyle, raster: regrid.Raster) -> bytes:
        f = self._field(path, self.field.value, self.depth_value)
        lat, lon, _ = self._grid(path, f.values.shape)
        image = render.render_array(
            f.values, lat, lon, field=style, raster=raster, valid_time=f.valid_time,
            step=f.step, depth=f.depth, cache_dir=self.cache_dir,
        )  # fmt: skip
        return _png(image)

    def _render_diff(self, path_a: Path, path_b: Path, raster: regrid.Raster) -> bytes:
        field, depth = self.field.value, self.depth_value
        a, b = self._field(path_a, field, depth), self._field(path_b, field, depth)
        if a.values.shape != b.values.shape:
            raise RtofsError(
                f"{path_a.name} and {path_b.name} are on different grids "
                f"{a.values.shape} / {b.values.shape}; cannot subtract them"
            )
        lat, lon, _ = self._grid(path_a, a.values.shape)
        base = FIELDS[field]
        half = DIFF_SPAN.get(field, (base.vmax - base.vmin) / 8)
        style = replace(
            base, title=f"{base.title} difference", vmin=-half, vmax=half, cmap="balance"
        )
        step_a, step_b = self.step, self.step_b
        title = f"{self.day.value} {step_a} − {self.day_b.value} {step_b}"
        image = render.render_array(
            a.values - b.values, lat, lon, field=style, raster=raster, title=title,
            cache_dir=self.cache_dir,
        )  # fmt: skip
        return _png(image)

    # --- updates -------------------------------------------------------------------------

    def refresh(self, reason: str = "refresh") -> None:
        """Redraw the map(s) for the current settings (the observers call this)."""
        t0 = time.perf_counter()
        step = self.step
        self._shown_step = step or self._shown_step
        self.step_label.value = (
            f"<b>{step}</b> · valid {names.valid_time(self.day.value, step):%Y-%m-%d %H:%M} UTC"
            f" · {self.slider.value + 1}/{len(self.steps)}"
            if step
            else ""
        )
        if step and self.mode.value != "single":
            self.step_label.value += f" · B: {self._paired_step(step) or '—'}"
        try:
            source = self._update(step)
        except (RtofsError, OSError, ValueError) as e:
            self.error = str(e)
            self.status.value = f"<span style='color:#b00'>{_escape(self.error)}</span>"
            return
        seconds = time.perf_counter() - t0
        self.error = ""
        self.timings.append((reason, seconds))
        self.last.update(source=source, seconds=seconds, reason=reason)
        self.status.value = (
            f"{source} in {seconds * 1000:.0f} ms · click the map for a time series"
            if self.series is None
            else self._series_text()
        )
        self._prefetch()

    def _update(self, step: str) -> str:
        field = self.field.value
        if not step:
            raise RtofsError(
                f"{self.archive / names.day_folder(self.day.value)}: no {self.product} files; "
                f"{FIELDS[field].title} lives in them (rtofs crawl --products "
                f"{self.product})"
            )
        style, raster = self.style(), self.raster()
        path = self.files()[step]
        mode = self.mode.value
        path_b = None
        if mode != "single":
            step_b = self.step_b
            if not step_b:
                when = names.valid_time(self.day.value, step)
                wanted = f"step {step}" if self.pair.value == "step" else f"{when:%Y-%m-%d %H:%M}"
                raise RtofsError(
                    f"{names.day_folder(self.day_b.value)} has no {self.product} file for "
                    f"{wanted}; pick another day B or step, or pair by the other rule"
                )
            path_b = self.files(self.day_b.value)[step_b]
        self.last = {"raster": raster, "path": path}
        if mode == "diff":
            self.image.value = self._render_diff(path, path_b, raster)
            self._view = (style, raster)
            return "rendered"
        pre = self._prerendered(path, style)
        if pre is not None:
            self.image.value = pre.read_bytes()
            self._view = (FIELDS[style.name], raster)
            source = "pre-rendered"
        else:
            self.image.value = self._render(path, style, raster)
            self._view = (style, raster)
            source = "rendered"
        if mode == "side":
            pre_b = self._prerendered(path_b, style)
            self.image_b.value = (
                pre_b.read_bytes() if pre_b is not None else self._render(path_b, style, raster)
            )
        return source

    # --- clicks and series ---------------------------------------------------------------

    def pixel_of(self, lon: float, lat: float) -> tuple[float, float]:
        """Image pixel ``(x, y)`` of a lon/lat in the map shown (the inverse of a click)."""
        if self._view is None:
            raise RtofsError("no map shown yet")
        style, raster = self._view
        x0, y0, mw, mh = map_box(style, raster)
        col = ((lon - raster.lon0) % 360.0) / raster.lon_span * raster.width
        row = (raster.lat1 - lat) / (raster.lat1 - raster.lat0) * raster.height
        if not (0 <= col < mw and 0 <= row < mh):
            raise RtofsError(f"{lon:g}°, {lat:g}° lies outside the map shown")
        return x0 + col, y0 + row

    def click_lonlat(self, lon: float, lat: float) -> PointSeries | None:
        """Click the map at ``lon``, ``lat`` (see :meth:`click`)."""
        return self.click(*self.pixel_of(lon, lat))

    def click(self, x: float, y: float) -> PointSeries | None:
        """Show the time series of the grid point drawn at image pixel ``(x, y)``.

        Returns the :class:`PointSeries` (also in :attr:`series`), or None when the pixel
        is off the map or shows no grid point (the status line says which).
        """
        if self._view is None:
            return None
        style, raster = self._view
        x0, y0, mw, mh = map_box(style, raster)
        col, row = int(np.floor(x - x0)), int(np.floor(y - y0))
        if not (0 <= col < mw and 0 <= row < mh):
            self.status.value = "that click is off the map"
            return None
        lon = float(raster.lons()[col])
        lat = float(raster.lats()[row])
        path = self.files()[self.step]
        shape = self._field(path, self.field.value, self.depth_value).values.shape
        glat, glon, key = self._grid(path, shape)
        index = regrid.get_index(glat, glon, raster, self.cache_dir, key=key)
        flat = int(index[row, col])
        if flat < 0:
            self.status.value = f"no grid point at {lon:.2f}°, {lat:.2f}°"
            return None
        j, i = divmod(flat, shape[1])
        self.series = self._series(self.day.value, j, i, lon, lat, glat, glon)
        self.series_b = (
            self._series(self.day_b.value, j, i, lon, lat, glat, glon)
            if self.mode.value != "single"
            else None
        )
        self.series_image.value = self._plot_series()
        self.status.value = self._series_text()
        return self.series

    def _series(self, date, j, i, lon, lat, glat, glon) -> PointSeries:
        field, depth = self.field.value, self.depth_value
        files = self.files(date)
        steps, times, values = [], [], []
        level_depth = None
        for step, path in files.items():
            cached = self._cache.peek(self._key(path, field, depth))
            if cached is not None:
                value = float(cached.values[j, i])
                level_depth = cached.depth
            else:
                value = _read_point(path, field, depth, j, i)
            steps.append(step)
            times.append(names.valid_time(date, step))
            values.append(value)
        order = np.argsort(np.array(times, dtype="datetime64[s]"), kind="stable")
        return PointSeries(
            lon=lon,
            lat=lat,
            grid_lon=float((float(glon[j, i]) + 180.0) % 360.0 - 180.0),
            grid_lat=float(glat[j, i]),
            j=j,
            i=i,
            date=date,
            steps=tuple(steps[k] for k in order),
            times=tuple(times[k] for k in order),
            values=np.array([values[k] for k in order], dtype=np.float32),
            field=field,
            units=FIELDS[field].units,
            depth=level_depth if level_depth is not None else depth,
        )

    def _series_text(self) -> str:
        s = self.series
        if s is None:
            return ""
        finite = s.values[np.isfinite(s.values)]
        what = "land" if finite.size == 0 else f"{finite.min():.2f} … {finite.max():.2f} {s.units}"
        return (
            f"point {s.grid_lat:.2f}°, {s.grid_lon:.2f}° (grid j={s.j}, i={s.i}): "
            f"{len(s.values)} steps, {what}"
        )

    def _plot_series(self) -> bytes:
        from matplotlib.figure import Figure

        s = self.series
        fig = Figure(figsize=(8, 2.6), dpi=96, layout="constrained")
        ax = fig.add_subplot()
        ax.plot(s.times, s.values, marker=".", label=s.date)
        if self.series_b is not None:
            ax.plot(self.series_b.times, self.series_b.values, marker=".", label=self.series_b.date)
            ax.legend(loc="best", fontsize="small")
        current = names.valid_time(self.day.value, self.step) if self.step else None
        if current is not None:
            ax.axvline(current, color="0.6", lw=1, ls="--")
        depth = f" at {s.depth:g} m" if s.depth is not None else ""
        ax.set_title(
            f"{FIELDS[s.field].title}{depth} at {s.grid_lat:.2f}°, {s.grid_lon:.2f}°",
            fontsize="medium",
        )
        ax.set_ylabel(s.units)
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    # --- the rest ------------------------------------------------------------------------

    def prepare(self, regions: bool = True, sizes: Sequence[str] = ("low", "high")) -> None:
        """Build or load the grid indices of the globe (and the region presets) up front.

        The one-off cost of a grid: later zooms to these regions only gather.
        """
        files = self.files()
        if not files:
            return
        path = next(iter(files.values()))
        shape = self._field(path, self.field.value, self.depth_value).values.shape
        lat, lon, key = self._grid(path, shape)
        boxes = list(REGION_PRESETS.values()) if regions else [None]
        for box in boxes:
            for size in sizes:
                regrid.get_index(lat, lon, raster_for(box, size), self.cache_dir, key=key)

    def close(self) -> None:
        """Close the widgets and stop the read-ahead thread."""
        cache = getattr(self, "_cache", None)  # also called by __del__ after a failed __init__
        if cache is not None:
            cache.close()
        for ev in getattr(self, "_events", ()):
            ev.close()
        super().close()


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def viewer(
    archive: str | Path | None = None,
    date: str | dt.date | None = None,
    **options,
) -> SSTViewer:
    """Return an :class:`SSTViewer` of ``date`` (default: the latest day) in ``archive``.

    Display it by leaving it as the last expression of a cell. Options as
    :class:`SSTViewer` (``maps``, ``field``, ``region``, ``size``, ``cache_dir``, ...).
    """
    return SSTViewer(archive, date=date, **options)
