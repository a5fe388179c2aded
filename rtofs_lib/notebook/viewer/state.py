"""What the viewer shows: day, step, day B's step, field, depth, region, colours, size, mode.

Plain Python, no widgets. :class:`Selection` is a snapshot of the viewer's controls; its
properties work out what follows from them: the product whose files hold the field, the depth
to read, the box and raster to draw, the colours, and day B's step paired with the step shown.
The region presets live here and only here (:data:`REGION_PRESETS`); the viewer reads them
through :func:`region_names`, :func:`region_choice`, :func:`preset_boxes` and
:attr:`Selection.region_box`.

Examples
--------
>>> s = Selection(day="20260708", field="sst", region="Gulf Stream", index=1)
>>> s.region_box
(-80.0, -50.0, 30.0, 45.0)
>>> s.product, s.depth_value
('prog', None)
>>> s.step(["n024", "f001", "f002"])
'f001'
>>> b = replace(s, mode="side", day_b="20260707")
>>> b.paired_step("n024", ["n024", "f024", "f025"])
'f024'
>>> replace(b, pair="step").paired_step("n024", ["n024", "f024"])
'n024'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rtofs_lib.errors import RtofsError
from rtofs_lib.fetch import names
from rtofs_lib.fields import regrid
from rtofs_lib.maps.rasters import parse_region, raster_for
from rtofs_lib.maps.styles import FIELDS, FieldStyle

__all__ = [
    "COLORMAPS",
    "CUSTOM",
    "DIFF_SPAN",
    "MODES",
    "PAIRINGS",
    "REGION_PRESETS",
    "VIEW_FIELDS",
    "Selection",
    "ahead",
    "check_field",
    "choose_day",
    "preset_boxes",
    "range_bounds",
    "region_choice",
    "region_names",
]

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
#: The region menu's last entry: the box typed by the user.
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

#: Compare modes: label → value.
MODES = (("single", "single"), ("side by side", "side"), ("difference A − B", "diff"))
#: How compare mode picks day B's map: the same valid time (a forecast against an older
#: forecast of the same moment) or the same step (a day later at the same lead time).
PAIRINGS = (("same valid time", "valid"), ("same step", "step"))

Box = tuple[float, float, float, float]


def region_names() -> list[str]:
    """The region menu: the presets, then :data:`CUSTOM`.

    >>> region_names()[0], region_names()[-1]
    ('Global', 'Custom box')
    """
    return [*REGION_PRESETS, CUSTOM]


def preset_boxes() -> list[Box | None]:
    """The boxes of the presets, the globe (None) first."""
    return list(REGION_PRESETS.values())


def region_choice(region: str | Sequence[float]) -> tuple[str, str | None]:
    """The menu entry and box text for ``region`` (a preset name or a box).

    >>> region_choice("Kuroshio")
    ('Kuroshio', None)
    >>> region_choice((-30, -10, 35, 45))
    ('Custom box', '-30,-10,35,45')
    """
    if isinstance(region, str) and region in REGION_PRESETS:
        return region, None
    box = parse_region(region)
    return CUSTOM, ",".join(f"{v:g}" for v in box)


def check_field(field: str) -> None:
    """Raise ValueError unless ``field`` is one the viewer offers."""
    if field not in VIEW_FIELDS:
        raise ValueError(f"unknown field {field!r}; choose one of {', '.join(VIEW_FIELDS)}")


def choose_day(archive: Path, days: Sequence[str], date: str | dt.date | None) -> str:
    """The day to open: ``date``, or the latest of ``days`` (``YYYYMMDD``, ascending).

    Raises
    ------
    RtofsError
        When the archive has no days, or not ``date``; the message says what to do.
    """
    if not days:
        raise RtofsError(
            f"{archive}: no rtofs.YYYYMMDD day folders; fetch a day (rtofs crawl) or "
            f"write sample data (rtofs sample {archive} --date YYYYMMDD)"
        )
    day = f"{names.parse_date(date):%Y%m%d}" if date is not None else days[-1]
    if day not in days:
        raise RtofsError(
            f"{archive}: no folder {names.day_folder(day)}; days present: {', '.join(days)}"
        )
    return day


def range_bounds(field: str) -> tuple[float, float, float]:
    """``(min, max, step)`` of the colour-range slider of ``field`` (half a span either side).

    >>> range_bounds("sst")
    (-19.0, 49.0, 0.17)
    """
    style = FIELDS[field]
    span = style.vmax - style.vmin
    return style.vmin - span / 2, style.vmax + span / 2, span / 200


def ahead(steps: Sequence[str], k: int, n: int) -> list[str]:
    """The ``n`` steps after position ``k`` (wrapping round, as play does).

    >>> ahead(["n024", "f001", "f002"], 1, 2)
    ['f002', 'n024']
    """
    if len(steps) <= 1:
        return []
    return [steps[(k + d) % len(steps)] for d in range(1, n + 1)]


@dataclass(frozen=True)
class Selection:
    """A snapshot of the viewer's controls.

    Attributes
    ----------
    day, day_b
        Cycle day shown and day B of compare mode (``YYYYMMDD``).
    field, depth
        Field (a key of :data:`rtofs_lib.maps.FIELDS`) and the depth picked (m).
    region, box
        Region menu entry and the custom box text (used when ``region`` is :data:`CUSTOM`).
    cmap, vrange
        Colormap and colour range (None: the field's own).
    size, mode, pair, index
        ``low``/``high``; ``single``/``side``/``diff``; ``valid``/``step``; slider position.
    """

    day: str
    field: str = "sst"
    depth: float = 0.0
    region: str = "Global"
    box: str = ""
    cmap: str | None = None
    vrange: tuple[float, float] | None = None
    size: str = "low"
    mode: str = "single"
    day_b: str = ""
    pair: str = "valid"
    index: int = 0

    @property
    def product(self) -> str:
        """Product code whose files hold the field."""
        return FIELDS[self.field].products

    @property
    def three_d(self) -> bool:
        """Whether the field has depth levels."""
        return self.product.startswith("3z")

    @property
    def depth_value(self) -> float | None:
        """Depth in metres for 3-D fields, None for surface fields."""
        return self.depth if self.three_d else None

    @property
    def compare(self) -> bool:
        """Whether day B is shown too (side by side or difference)."""
        return self.mode != "single"

    @property
    def region_box(self) -> Box | None:
        """The box shown, or None for the globe."""
        if self.region == CUSTOM:
            return parse_region(self.box)
        return REGION_PRESETS[self.region]

    def raster(self) -> regrid.Raster:
        """The raster of the map shown."""
        return raster_for(self.region_box, self.size)

    def style(self) -> FieldStyle:
        """The field's style with the chosen colormap and range."""
        base = FIELDS[self.field]
        vmin, vmax = self.vrange if self.vrange is not None else (base.vmin, base.vmax)
        if not vmax > vmin:
            vmax = vmin + 1e-6
        cmap = self.cmap or base.cmap
        return replace(base, cmap=cmap, vmin=float(vmin), vmax=float(vmax))

    def diff_style(self) -> FieldStyle:
        """The style of a difference map: ``balance`` around zero (:data:`DIFF_SPAN`)."""
        base = FIELDS[self.field]
        half = DIFF_SPAN.get(self.field, (base.vmax - base.vmin) / 8)
        return replace(
            base, title=f"{base.title} difference", vmin=-half, vmax=half, cmap="balance"
        )

    def step(self, steps: Sequence[str]) -> str:
        """The step at the slider position ("" when there are none)."""
        return steps[min(self.index, len(steps) - 1)] if steps else ""

    def paired_step(self, step: str, steps_b: Iterable[str]) -> str:
        """Day B's step paired with ``step`` of the day shown ("" when day B has none).

        With ``pair`` = ``valid`` it is the step of day B valid at the same time (a nowcast
        pairs with a nowcast when day B has one, else with a forecast); with ``step`` it is
        the same step.
        """
        if not step:
            return ""
        if self.pair == "step":
            return step if step in steps_b else ""
        when = names.valid_time(self.day, step)
        same = [s for s in steps_b if names.valid_time(self.day_b, s) == when]
        same.sort(key=lambda s: s[0] != step[0])  # same kind (n/f) first
        return same[0] if same else ""

    def missing_b(self, step: str) -> RtofsError:
        """The error for a day B without the file paired with ``step``."""
        when = names.valid_time(self.day, step)
        wanted = f"step {step}" if self.pair == "step" else f"{when:%Y-%m-%d %H:%M}"
        return RtofsError(
            f"{names.day_folder(self.day_b)} has no {self.product} file for "
            f"{wanted}; pick another day B or step, or pair by the other rule"
        )

    def no_files(self, archive: Path) -> RtofsError:
        """The error for a day without files of the field's product."""
        return RtofsError(
            f"{archive / names.day_folder(self.day)}: no {self.product} files; "
            f"{FIELDS[self.field].title} lives in them (rtofs crawl --products "
            f"{self.product})"
        )
