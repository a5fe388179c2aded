"""The dashboard's zoomable tile map inside JupyterLab: an ipyleaflet ``Map``.

:func:`tile_map` returns a :class:`TileMap`, an ipyleaflet ``Map`` showing the dashboard
service's XYZ tiles (``<service>tiles/DATE/STEP/FIELD/{z}/{x}/{y}.png``, drawn from the native
grid at every zoom up to the grid's own) of one cycle day, a step slider that swaps the
layer's URL, and a click that shows the point's series (the cube's, or the day's steps).

Who talks to whom
-----------------
Only the **tiles** come from the service: the browser fetches them from the layer's URL. On
the hub that is the relative ``/services/maps/`` (same origin as JupyterLab, so the browser's
hub login cookie opens it, no token in any URL); on one machine ``rtofs dashboard serve``'s
``http://127.0.0.1:8092/``; the ``dashboard_url`` setting overrides both. (A browser that has
not opened the dashboard yet gets the service's login cookie through the first tiles' redirects
to the hub: the service's OAuth asks no confirmation, and the many flows those tiles start at
once each complete, see :mod:`rtofs_lib.hub.oauth`.)

The **kernel** never calls the service over HTTP: from inside a notebook server the service
would need the hub's API token and the hub's internal address. It builds its own
:class:`~rtofs_lib.hub.tileserver.TileService` over the archive and cube of the settings
(readable from every notebook server) and asks it for the days, steps, file versions, zoom and
point series: the very code behind ``api/layers.json`` and ``api/series.json``, so the answers
are the same and no token is involved.

Examples
--------
>>> import tempfile
>>> from rtofs_lib.testing import sample
>>> root = tempfile.mkdtemp()
>>> _ = sample.write_sample(root + "/archive", "20260708", steps="n024,f001", grid="small")
>>> m = tile_map(archive=root + "/archive", cube=root + "/no-cube", cache_dir=root + "/cache",
...              url="http://127.0.0.1:8092/")
>>> m.layer.url  # doctest: +ELLIPSIS
'http://127.0.0.1:8092/tiles/20260708/f001/sst/{z}/{x}/{y}.png?v=...'
>>> m.slider.value = "n024"; m.layer.url.split("/")[5]
'n024'
>>> m.click_lonlat(-30.0, 0.0)["source"]
'files'
>>> m.close()
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import ipyleaflet
import ipywidgets as w
import numpy as np

from rtofs_lib.errors import RtofsError
from rtofs_lib.hub.tileserver import NotFound, TileService
from rtofs_lib.maps.styles import FIELDS

from .series import PointSeries, plot_series, series_text

__all__ = ["TileMap", "dashboard_url", "tile_map"]

#: ``rtofs dashboard serve``'s default address (one machine, no login).
LOCAL_URL = "http://127.0.0.1:8092/"
#: The hub's service name of the dashboard (``rtofs_lib.hub.config.DASHBOARD_SERVICE``).
HUB_SERVICE = "maps"
#: Zooms past the grid's own (Leaflet magnifies the deepest tiles: one cell, easy to click).
OVERZOOM = 3
#: Valid times in the service's JSON.
TIME = "%Y-%m-%dT%H:%M:%SZ"


def dashboard_url(setting: str = "", env: Mapping[str, str] | None = None) -> str:
    """The dashboard service's URL as the browser reaches it, ending in ``/``.

    ``setting`` (the ``dashboard_url`` setting) when given; else on the hub (the notebook
    server has ``JUPYTERHUB_SERVICE_PREFIX``) the ``maps`` service under the hub's base URL
    (``JUPYTERHUB_BASE_URL``, default ``/``), a path on JupyterLab's own origin; else
    ``rtofs dashboard serve``'s address on loopback.

    Examples
    --------
    >>> dashboard_url(env={})
    'http://127.0.0.1:8092/'
    >>> dashboard_url(env={"JUPYTERHUB_SERVICE_PREFIX": "/user/ana/"})
    '/services/maps/'
    >>> dashboard_url(env={"JUPYTERHUB_SERVICE_PREFIX": "/hub1/user/ana/",
    ...                    "JUPYTERHUB_BASE_URL": "/hub1/"})
    '/hub1/services/maps/'
    >>> dashboard_url("http://host:9000/maps")
    'http://host:9000/maps/'
    """
    env = os.environ if env is None else env
    if setting:
        url = setting
    elif env.get("JUPYTERHUB_SERVICE_PREFIX"):
        url = env.get("JUPYTERHUB_BASE_URL") or "/"
        url = url.rstrip("/") + f"/services/{HUB_SERVICE}/"
    else:
        url = LOCAL_URL
    return url if url.endswith("/") else url + "/"


def _series_of(doc: dict[str, Any]) -> PointSeries:
    """``api/series.json``'s answer as a :class:`PointSeries` (for the viewer's plot and text)."""
    times = tuple(dt.datetime.strptime(p["valid_time"], TIME) for p in doc["points"])
    values = np.array([np.nan if p["value"] is None else p["value"] for p in doc["points"]],
                      dtype=np.float32)  # fmt: skip
    cell = doc["cell"]
    return PointSeries(lon=doc["lon"], lat=doc["lat"], grid_lon=cell["lon"], grid_lat=cell["lat"],
                       j=cell["j"], i=cell["i"], date=f"{times[0]:%Y%m%d}" if times else "",
                       steps=(), times=times, values=values, field=doc["field"],
                       units=doc["units"], origin=doc["source"])  # fmt: skip


class TileMap(ipyleaflet.Map):
    """An ipyleaflet ``Map`` of the dashboard's tiles of one day, with a step slider and clicks.

    Build it with :func:`tile_map`. Only one layer, the service's tiles (no basemap: the
    hosts have no internet, and ipyleaflet's OpenStreetMap default is never added).

    Attributes
    ----------
    layer
        The ``TileLayer`` (its ``url`` names the day, step, field, colormap and file version).
    slider, play
        ``SelectionSlider`` of the day's steps (moving it swaps ``layer.url``) and its play
        button (``play_interval`` ms a step).
    series_text, series_image
        What the last click showed: one line (or why there is no series), and its plot.
    series
        The last click's series, as ``api/series.json`` answers it (None before a click).
    service
        The kernel's :class:`~rtofs_lib.hub.tileserver.TileService` (layers and series).
    native_zoom
        The deepest zoom the service draws (``api/layers.json``'s ``max_zoom``); the map
        zooms ``OVERZOOM`` further by magnifying those tiles.
    """

    def __init__(
        self,
        service: TileService,
        base_url: str,
        *,
        date: str | None = None,
        step: str | None = None,
        field: str = "sst",
        cmap: str | None = None,
        play_interval: int = 1500,
        **map_options: Any,
    ) -> None:
        self.service = service
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        TileService._style(field)  # NotFound (an RtofsError) for a field without tiles
        self.field = field
        self.cmap = TileService._cmap(field, cmap)
        layers = service.layers()
        days = {d["date"]: d for d in layers["days"]}
        if not days:
            raise RtofsError(f"no days in the archive {service.archive} yet: no tiles to show")
        self.date = date or layers["days"][0]["date"]
        if self.date not in days:
            raise RtofsError(f"no files of {self.date} in the archive; days: {', '.join(days)}")
        self.steps = {s["step"]: s for s in days[self.date]["steps"]}
        step = step or list(self.steps)[-1]
        if step not in self.steps:
            raise RtofsError(f"no step {step} of {self.date}; steps: {', '.join(self.steps)}")
        self.native_zoom = int(layers["max_zoom"])  # (Map's own max_zoom is a trait)
        self.series: dict[str, Any] | None = None
        self.layer = ipyleaflet.TileLayer(
            url=self.url_for(step), max_native_zoom=self.native_zoom,
            max_zoom=self.native_zoom + OVERZOOM, min_zoom=0, name=f"RTOFS {FIELDS[field].title}",
            attribution="RTOFS (NOAA/NCEP)",
        )  # fmt: skip
        options = {"center": (20.0, -40.0), "zoom": 2, "max_zoom": self.native_zoom + OVERZOOM,
                   "scroll_wheel_zoom": True, "world_copy_jump": True,
                   "layout": w.Layout(height="600px")} | map_options  # fmt: skip
        # layers=(...) replaces ipyleaflet's default basemap layer: it is never created
        super().__init__(layers=(self.layer,), **options)
        self.slider = w.SelectionSlider(
            options=[(s, s) for s in self.steps], value=step, description="step",
            continuous_update=False, layout=w.Layout(width="360px"),
        )  # fmt: skip
        # play steps the slider in the browser (jslink); each step reaches the kernel as a
        # slider change, which swaps the layer's URL
        self.play = w.Play(min=0, max=len(self.steps) - 1, value=self.slider.index,
                           interval=play_interval, repeat=True)  # fmt: skip
        w.jslink((self.play, "value"), (self.slider, "index"))
        self.valid = w.Label(self._valid_text(step))
        self.series_text = w.HTML("click the ocean for the point's series")
        self.series_image = w.Image(format="png",
                                    layout=w.Layout(max_width="480px", display="none"))  # fmt: skip
        self.series_image.add_class("rtofs-tilemap-series")
        self.add_class("rtofs-tilemap")
        self.add(ipyleaflet.WidgetControl(widget=w.HBox([self.play, self.slider, self.valid]),
                                          position="topright"))  # fmt: skip
        self.add(ipyleaflet.WidgetControl(widget=w.VBox([self.series_text, self.series_image]),
                                          position="bottomleft"))  # fmt: skip
        self.slider.observe(self._on_step, names="value")
        self.on_interaction(self._on_interaction)

    def url_for(self, step: str) -> str:
        """The layer's URL template of ``step`` (``{z}/{x}/{y}`` left for Leaflet to fill).

        ``v`` is the file's version: the service then sends the tiles as immutable.
        """
        query = {"v": self.steps[step]["version"]}
        if self.cmap != FIELDS[self.field].cmap:
            query = {"cmap": self.cmap} | query
        path = "/".join(quote(p, safe="") for p in (self.date, step, self.field))
        return f"{self.base_url}tiles/{path}/{{z}}/{{x}}/{{y}}.png?{urlencode(query)}"

    def _valid_text(self, step: str) -> str:
        return f"{self.date} {step}: valid {self.steps[step]['valid_time'].replace('T', ' ')}"

    def _on_step(self, change: dict) -> None:
        self.layer.url = self.url_for(change["new"])
        self.valid.value = self._valid_text(change["new"])

    def _on_interaction(self, **event: Any) -> None:
        if event.get("type") == "click":
            lat, lon = event["coordinates"]
            self.click_lonlat(lon, lat)

    def click_lonlat(self, lon: float, lat: float) -> dict[str, Any] | None:
        """Show the series of the grid cell drawn at ``lon``/``lat`` (what a click does).

        Returns the series as ``api/series.json`` would (None, with the reason shown, on land
        or off the grid). Longitudes of the map's world copies are wrapped to [-180, 180).
        """
        lon = (float(lon) + 180.0) % 360.0 - 180.0
        try:
            doc = self.service.series(lon, float(lat), self.field, self.date)
        except NotFound as e:
            self.series = None
            self.series_text.value = f"<i>{_html(str(e))}</i>"
            self.series_image.value = b""
            self.series_image.layout.display = "none"  # no broken-image icon
            return None
        self.series = doc
        s = _series_of(doc)
        self.series_text.value = _html(series_text(s))
        if len(s.values):
            step = self.slider.value
            current = dt.datetime.strptime(self.steps[step]["valid_time"], TIME)
            self.series_image.value = plot_series(s, None, current)
            self.series_image.layout.display = None
        return doc

    def close(self) -> None:
        """Stop the kernel's tile service (its read-ahead) and close the widgets.

        Also called by ipywidgets when the map is garbage-collected, maybe half-built.
        """
        service = self.__dict__.pop("service", None)
        if service is not None:
            service.close()
        for name in ("play", "slider", "valid", "series_text", "series_image"):
            widget = self.__dict__.get(name)
            if widget is not None:
                widget.close()
        super().close()


def _html(text: str) -> str:
    import html

    return html.escape(text)


def tile_map(
    date: str | dt.date | None = None,
    step: str | None = None,
    field: str = "sst",
    cmap: str | None = None,
    *,
    url: str | None = None,
    archive: str | Path | None = None,
    cube: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **map_options: Any,
) -> TileMap:
    """The dashboard's zoomable tiles of ``date`` at ``step`` in a notebook (an ipyleaflet map).

    Parameters
    ----------
    date, step
        Cycle day ``YYYYMMDD`` and step (``n024``, ``f001``, ...); default the latest day in
        the archive and its latest step.
    field, cmap
        A surface field (as ``rtofs render --field``) and a colormap (default the field's).
    url
        The dashboard service as the browser reaches it (default: the ``dashboard_url``
        setting, see :func:`dashboard_url`).
    archive, cube, cache_dir
        What the kernel reads the days, steps and point series from (default: the settings).
        The kernel never calls the service: see the module's notes.
    map_options
        ``play_interval`` (ms a step, default 1500), or passed to ``ipyleaflet.Map``
        (``center=(lat, lon)``, ``zoom``, ``layout``, ...).

    Raises
    ------
    RtofsError
        An empty archive, an unknown day, step, field or colormap.

    Examples
    --------
    In a notebook, ``m = tile_map(field="sst", center=(-33.0, -75.0), zoom=5)`` and ``m``
    shows it. Here, over a sample day:

    >>> import tempfile
    >>> from rtofs_lib.testing import sample
    >>> root = tempfile.mkdtemp()
    >>> _ = sample.write_sample(root + "/archive", "20260708", steps="n024,f001", grid="small")
    >>> m = tile_map(archive=root + "/archive", cube=root + "/cube", cache_dir=root + "/cache",
    ...              url="http://127.0.0.1:8092/", center=(-33.0, -75.0), zoom=5)
    >>> m.slider.value, m.zoom
    ('f001', 5.0)
    >>> m.click_lonlat(-75.0, -33.0)["cell"]["j"] > 0
    True
    >>> m.close()
    """
    from rtofs_lib import config

    if isinstance(date, dt.date):
        date = f"{date:%Y%m%d}"
    settings = config.load()
    archive = Path(archive if archive is not None else settings.archive).expanduser()
    cube = Path(cube if cube is not None else settings.cube).expanduser()
    cache_dir = Path(cache_dir if cache_dir is not None else settings.cache).expanduser()
    base = url if url is not None else dashboard_url(settings.dashboard_url)
    # a kernel's service draws no tiles: a little memory for the decoded fields of a series
    service = TileService(archive, cube=cube, cache_dir=cache_dir, field_cache_mb=256,
                          tile_memory_mb=1)  # fmt: skip
    try:
        return TileMap(service, dashboard_url(base), date=date, step=step, field=field,
                       cmap=cmap, **map_options)  # fmt: skip
    except BaseException:
        service.close()
        raise
