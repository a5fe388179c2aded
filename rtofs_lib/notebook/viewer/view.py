"""The viewer's widgets: :class:`SSTViewer`, its layout and what each control does.

What is selected lives in the widgets; :meth:`SSTViewer.selection` takes a plain snapshot
(:class:`~rtofs_lib.notebook.viewer.state.Selection`) that the data source
(:mod:`~rtofs_lib.notebook.viewer.source`), the map drawing
(:mod:`~rtofs_lib.notebook.viewer.images`) and the point series
(:mod:`~rtofs_lib.notebook.viewer.series`) work from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import ipywidgets as w

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import regrid
from rtofs_lib.maps.rasters import raster_for
from rtofs_lib.maps.styles import FIELDS, FieldStyle

from . import controls, images, state
from . import series as point
from .series import PointSeries
from .source import FieldSource

__all__ = ["SSTViewer"]


class SSTViewer(w.VBox):
    """An ipywidgets viewer of one RTOFS day (see :mod:`rtofs_lib.notebook.viewer`).

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
    cube
        The analysis-ready cube (default: the ``cube`` setting): a click on a surface field
        it stores shows the point's whole series from it; otherwise the day's steps.
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
        The :class:`PointSeries` of the last click (None before one): from the cube when it
        holds the field (``series.origin == "cube"``), else the day's files; ``series_b``
        for day B in compare mode (the day's files; None with a cube series, which spans
        both days).
    last
        What the last update did: ``source`` (``"pre-rendered"`` or ``"rendered"``),
        ``seconds``, ``raster``, ``path``.
    error
        The message of the last failed update ("" when it worked); also shown in the viewer.
    source
        The :class:`~rtofs_lib.notebook.viewer.source.FieldSource` (files, decoded fields).
    """

    def __init__(  # noqa: PLR0913 - the viewer's keyword options
        self,
        archive: str | Path | None = None,
        maps: str | Path | None = None,
        date: str | dt.date | None = None,
        *,
        field: str = "sst",
        region: str | Sequence[float] = "Global",
        size: str = "low",
        cache_dir: str | Path | None = None,
        cube: str | Path | None = None,
        prefetch: int = 2,
        cache_mb: int = 1024,
        play_interval: int = 700,
    ) -> None:
        self._open_source(archive, maps, cache_dir, cache_mb, cube)
        self.prefetch_steps = max(0, int(prefetch))
        self.series: PointSeries | None = None
        self.series_b: PointSeries | None = None
        self.last: dict = {}
        self.error = ""
        self.timings: list[tuple[str, float]] = []
        self._quiet = 0
        self._view: tuple | None = None  # (style, raster) of the image shown
        self._shown_step: str | None = None  # kept across day and field changes
        state.check_field(field)
        days = self.source.days()
        day = state.choose_day(self.archive, days, date)
        self._build(days, day, field, size, play_interval)
        super().__init__(self._rows())
        self.add_class("rtofs-viewer")
        with self._hold():
            self._set_region(region)
            self._sync_field(reset_style=False)
            self._sync_mode()
        self._observe()
        self.refresh("open")

    # --- building ------------------------------------------------------------------------

    def _open_source(self, archive, maps, cache_dir, cache_mb: int, cube) -> None:
        from rtofs_lib import config

        settings = None
        if archive is None or maps is None or cache_dir is None or cube is None:
            settings = config.load()
        self.cube = Path(cube if cube is not None else settings.cube).expanduser()
        self.archive = Path(archive if archive is not None else settings.archive).expanduser()
        self.maps = Path(maps if maps is not None else settings.maps).expanduser()
        self.cache_dir = Path(cache_dir if cache_dir is not None else settings.cache).expanduser()
        self.source = FieldSource(self.archive, self.maps, self.cache_dir, cache_mb=cache_mb)

    def _build(self, days: list[str], day: str, field: str, size: str, interval: int) -> None:
        self.day, self.mode, self.day_b, self.pair = controls.day_controls(days, day)
        self.field, self.depth, self.region, self.box = controls.field_controls(field)
        self.slider, self.play, self.step_label = controls.step_controls(interval)
        self.cmap, self.range, self.size = controls.colour_controls(field, size)
        self.image, self.image_b, self.series_image, self.status = controls.image_widgets()
        try:
            self._events = controls.click_events(
                {"a": self.image, "b": self.image_b}, self._on_dom_event
            )
        except ImportError:  # clicks need ipyevents (a dependency of the viewers extra)
            self._events = []
            self.status.value = "clicks need ipyevents: pip install ipyevents"
        self._images = w.HBox([self.image], layout=w.Layout(width="100%"))
        self._b_row = w.HBox([self.day_b, self.pair])

    def _rows(self) -> list[w.Widget]:
        return [
            w.HBox([self.day, self.mode]),
            self._b_row,
            w.HBox([self.field, self.depth, self.region, self.box]),
            w.HBox([self.play, self.slider, self.step_label]),
            w.HBox([self.cmap, self.range, self.size]),
            self._images,
            self.status,
            self.series_image,
        ]

    def _observe(self) -> None:
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

    # --- what is selected ----------------------------------------------------------------

    def selection(self) -> state.Selection:
        """A plain snapshot of the controls (see :class:`~.state.Selection`)."""
        return state.Selection(
            day=self.day.value,
            field=self.field.value,
            depth=self.depth.value,
            region=self.region.value,
            box=self.box.value,
            cmap=self.cmap.value,
            vrange=tuple(self.range.value),
            size=self.size.value,
            mode=self.mode.value,
            day_b=self.day_b.value,
            pair=self.pair.value,
            index=self.slider.value,
        )

    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        """Change several widgets without an update per change."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _set_region(self, region: str | Sequence[float]) -> None:
        label, box = state.region_choice(region)
        self.region.value = label
        if box is not None:
            self.box.value = box
        self.box.disabled = box is None

    @property
    def product(self) -> str:
        """Product code whose files hold the selected field."""
        return self.selection().product

    def files(self, date: str | None = None) -> dict[str, Path]:
        """Step → file of the selected field's product on ``date`` (default: the day shown)."""
        return self.source.files(date or self.day.value, self.product)

    @property
    def steps(self) -> list[str]:
        """Steps of the day shown, in slider order."""
        return list(self.files())

    @property
    def step(self) -> str:
        """The step shown ("" when the day has no files of the field's product)."""
        return self.selection().step(self.steps)

    @property
    def step_b(self) -> str:
        """Day B's step paired with the step shown ("" when day B has none).

        With ``pair`` = ``valid`` it is the step of day B valid at the same time (a nowcast
        pairs with a nowcast when day B has one, else with a forecast); with ``step`` it is
        the same step.
        """
        return self._paired_step(self.step)

    def _paired_step(self, step: str) -> str:
        return self.selection().paired_step(step, self.files(self.day_b.value))

    def _paired_file(self, step: str) -> Path | None:
        step_b = self._paired_step(step)
        return self.files(self.day_b.value)[step_b] if step_b else None

    @property
    def region_box(self) -> tuple[float, float, float, float] | None:
        """The box shown, or None for the globe."""
        return self.selection().region_box

    @property
    def depth_value(self) -> float | None:
        """Depth in metres for 3-D fields, None for surface fields."""
        return self.selection().depth_value

    def style(self) -> FieldStyle:
        """The field's style with the chosen colormap and range."""
        return self.selection().style()

    def raster(self) -> regrid.Raster:
        """The raster of the map shown."""
        return self.selection().raster()

    # --- following changes ---------------------------------------------------------------

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
        three_d = self.selection().three_d
        self.depth.layout.display = None if three_d else "none"
        if three_d:
            files = self.files()
            levels = self.source.depths(next(iter(files.values()))) if files else []
            if levels:
                old = self.depth.value
                self.depth.options = [(f"{d:g} m", d) for d in levels]
                self.depth.value = min(levels, key=lambda d: abs(d - old))
        if reset_style:
            self._reset_colours()
        self._sync_steps(keep)

    def _reset_colours(self) -> None:
        style = FIELDS[self.field.value]
        lo, hi, step = state.range_bounds(style.name)
        self.cmap.value = style.cmap
        self.range.min = min(self.range.min, lo)
        self.range.max = max(self.range.max, hi)
        self.range.value = (style.vmin, style.vmax)
        self.range.min, self.range.max = lo, hi
        self.range.step = step

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
        self.box.disabled = self.region.value != state.CUSTOM
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

    def _prefetch(self) -> None:
        """Read the next steps (and day B's paired ones in compare mode) in the background."""
        if not self.prefetch_steps:
            return
        ahead = state.ahead(self.steps, self.slider.value, self.prefetch_steps)
        paths = [self.files()[step] for step in ahead]
        if self.mode.value != "single":
            paths += [p for p in (self._paired_file(step) for step in ahead) if p is not None]
        self.source.prefetch(paths, self.field.value, self.depth_value)

    def clear_cache(self) -> None:
        """Forget the decoded fields (after a read-ahead has finished)."""
        self.source.clear()

    def wait_prefetch(self) -> None:
        """Wait for the background reads (for tests and benchmarks)."""
        self.source.wait()

    def _render(self, path: Path, style: FieldStyle, raster: regrid.Raster) -> bytes:
        return images.map_png(self.source, path, style, raster, depth=self.depth_value)

    # --- updates -------------------------------------------------------------------------

    def refresh(self, reason: str = "refresh") -> None:
        """Redraw the map(s) for the current settings (the observers call this)."""
        t0 = time.perf_counter()
        step = self.step
        self._shown_step = step or self._shown_step
        self.step_label.value = self._step_text(step)
        try:
            source = self._update(step)
        except (RtofsError, OSError, ValueError) as e:
            self.error = str(e)
            self.status.value = f"<span style='color:#b00'>{html.escape(self.error)}</span>"
            return
        seconds = time.perf_counter() - t0
        self.error = ""
        self.timings.append((reason, seconds))
        self.last.update(source=source, seconds=seconds, reason=reason)
        self.status.value = (
            f"{source} in {seconds * 1000:.0f} ms · click the map for a time series"
            if self.series is None
            else point.series_text(self.series)
        )
        self._prefetch()

    def _step_text(self, step: str) -> str:
        if not step:
            return ""
        text = (
            f"<b>{step}</b> · valid {names.valid_time(self.day.value, step):%Y-%m-%d %H:%M} UTC"
            f" · {self.slider.value + 1}/{len(self.steps)}"
        )
        if self.mode.value != "single":
            text += f" · B: {self._paired_step(step) or '—'}"
        return text

    def _update(self, step: str) -> str:
        sel = self.selection()
        if not step:
            raise sel.no_files(self.archive)
        style, raster = sel.style(), sel.raster()
        path = self.files()[step]
        path_b, step_b = None, ""
        if sel.compare:
            step_b = self.step_b
            if not step_b:
                raise sel.missing_b(step)
            path_b = self.files(sel.day_b)[step_b]
        self.last = {"raster": raster, "path": path}
        if sel.mode == "diff":
            self.image.value = images.difference_png(
                self.source, sel, (path, path_b), (step, step_b)
            )
            self._view = (style, raster)
            return "rendered"
        self.image.value, source, shown = images.field_map(self.source, sel, path)
        self._view = (shown, raster)
        if sel.mode == "side":
            self.image_b.value = images.field_map(self.source, sel, path_b)[0]
        return source

    # --- clicks and series ---------------------------------------------------------------

    def pixel_of(self, lon: float, lat: float) -> tuple[float, float]:
        """Image pixel ``(x, y)`` of a lon/lat in the map shown (the inverse of a click)."""
        if self._view is None:
            raise RtofsError("no map shown yet")
        return point.pixel_of(*self._view, lon, lat)

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
        cell = point.cell_at(*self._view, x, y)
        if cell is None:
            self.status.value = "that click is off the map"
            return None
        col, row, lon, lat = cell
        sel = self.selection()
        what = (sel.field, sel.depth_value)
        path = self.files()[self.step]
        found = point.grid_point(self.source, path, what, self._view[1], (col, row))
        if found is None:
            self.status.value = f"no grid point at {lon:.2f}°, {lat:.2f}°"
            return None
        self.series = point.cube_series(self.cube, what, found, (lon, lat), self.cache_dir)
        self.series_b = None
        if self.series is None:  # not in the cube: the day's files
            self.series = self._read_series(sel.day, what, found, (lon, lat))
            if sel.compare:
                self.series_b = self._read_series(sel.day_b, what, found, (lon, lat))
        current = names.valid_time(sel.day, self.step) if self.step else None
        self.series_image.value = point.plot_series(self.series, self.series_b, current)
        self.status.value = point.series_text(self.series)
        return self.series

    def _read_series(self, date: str, what: tuple, found: tuple, where: tuple) -> PointSeries:
        return point.point_series(
            self.source, self.files(date), date=date, field=what, point=found, where=where
        )

    # --- the rest ------------------------------------------------------------------------

    def prepare(self, regions: bool = True, sizes: Sequence[str] = ("low", "high")) -> None:
        """Build or load the grid indices of the globe (and the region presets) up front.

        The one-off cost of a grid: later zooms to these regions only gather.
        """
        files = self.files()
        if not files:
            return
        grid = self.source.grid(next(iter(files.values())))
        boxes = state.preset_boxes() if regions else [None]
        for box in boxes:
            for size in sizes:
                grid.index(raster_for(box, size))

    def close(self) -> None:
        """Close the widgets and stop the read-ahead."""
        source = getattr(self, "source", None)  # also called by __del__ after a failed __init__
        if source is not None:
            source.close()
        for ev in getattr(self, "_events", ()):
            ev.close()
        super().close()
