"""Global RTOFS file names, forecast steps, valid times and day folders.

The names are those NOMADS publishes (see ``shared/rtofs/format.md``)::

    rtofs_glo_2ds_f024_prog.nc              2-D surface, SST lives here
    rtofs_glo_2ds_n012_diag.nc              2-D diagnostics
    rtofs_glo_2ds_f075_ice.nc               2-D ice
    rtofs_glo_3dz_f048_daily_3ztio.nc       3-D z-level daily temperature (t, s, u, v)
    rtofs_glo_3dz_f006_6hrly_hvr_US_east.nc 3-D z-level 6-hourly regional window
    rtofs_glo_2ds_f001_1hrly_prog.nc        pre-2020 (NETCDF3) form with a cadence tag

Examples
--------
>>> n = parse_name("rtofs_glo_2ds_n014_prog.nc", date="20211118")
>>> n.product, n.step, n.valid_time.isoformat()
('prog', 'n014', '2021-11-17T14:00:00')
>>> compose_name("prog", "f024")
'rtofs_glo_2ds_f024_prog.nc'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from rtofs_lib.errors import NotRtofsNameError

#: Products of the 2-D surface files.
PRODUCTS_2DS = ("prog", "diag", "ice")
#: Products of the 3-D daily z-level files (temperature, salinity, u, v).
PRODUCTS_3DZ_DAILY = ("3ztio", "3zsio", "3zuio", "3zvio")
#: Regions of the 3-D 6-hourly high-vertical-resolution windows.
PRODUCTS_3DZ_6HRLY = ("US_east", "US_west", "alaska")
#: Every product code, in NOMADS listing order.
PRODUCTS = PRODUCTS_2DS + PRODUCTS_3DZ_DAILY + PRODUCTS_3DZ_6HRLY
#: A variable every file of each product holds (what makes a file that product).
KEY_VARIABLE: dict[str, str] = {
    "prog": "sst",
    "diag": "ssh",
    "ice": "ice_coverage",
    "3ztio": "temperature",
    "3zsio": "salinity",
    "3zuio": "u",
    "3zvio": "v",
    "US_east": "temperature",
    "US_west": "temperature",
    "alaska": "temperature",
}
#: Cadence tags of the pre-2020 2-D names.
LEGACY_CADENCES = ("1hrly", "3hrly", "daily")

DAY_PREFIX = "rtofs."

_STEP_RE = re.compile(r"^([nf])(\d{3})$")
_NAME_RE = re.compile(
    r"^rtofs_glo_(?:"
    r"2ds_(?P<s2>[nf]\d{3})(?:_(?P<cad>1hrly|3hrly|daily))?_(?P<p2>prog|diag|ice)"
    r"|3dz_(?P<s3>[nf]\d{3})_daily_(?P<p3>3z[tsuv]io)"
    r"|3dz_(?P<s6>[nf]\d{3})_6hrly_hvr_(?P<p6>US_east|US_west|alaska)"
    r")\.nc$"
)
_DAY_RE = re.compile(r"^rtofs\.(\d{8})$")


def _steps(prefix: str, hours: Iterable[int]) -> tuple[str, ...]:
    return tuple(f"{prefix}{h:03d}" for h in hours)


#: Published steps of each product family, in publication order.
STEPS_2DS = _steps("n", range(0, 25)) + _steps("f", range(0, 73)) + _steps("f", range(75, 193, 3))
STEPS_3DZ_DAILY = ("n024", *_steps("f", range(24, 193, 24)))
STEPS_3DZ_6HRLY = _steps("n", range(6, 25, 6)) + _steps("f", range(6, 193, 6))


def family(product: str) -> str:
    """Return the family (``2ds``, ``3dz_daily`` or ``3dz_6hrly``) of a product code.

    Raises
    ------
    NotRtofsNameError
        If ``product`` is not one of :data:`PRODUCTS`.
    """
    if product in PRODUCTS_2DS:
        return "2ds"
    if product in PRODUCTS_3DZ_DAILY:
        return "3dz_daily"
    if product in PRODUCTS_3DZ_6HRLY:
        return "3dz_6hrly"
    raise NotRtofsNameError(
        f"unknown RTOFS product {product!r}; choose one of {', '.join(PRODUCTS)}"
    )


def steps_for(product: str) -> tuple[str, ...]:
    """Return the steps NOMADS publishes for ``product`` each day (138 for 2-D files)."""
    return {
        "2ds": STEPS_2DS,
        "3dz_daily": STEPS_3DZ_DAILY,
        "3dz_6hrly": STEPS_3DZ_6HRLY,
    }[family(product)]


def parse_step(step: str) -> tuple[str, int]:
    """Split a step code such as ``"f075"`` into ``("f", 75)``.

    Raises
    ------
    NotRtofsNameError
        If ``step`` is not ``n`` or ``f`` followed by three digits.
    """
    m = _STEP_RE.match(step)
    if not m:
        raise NotRtofsNameError(
            f"bad RTOFS step {step!r}; a step is 'n' (nowcast) or 'f' (forecast) "
            "and three digits of hours, e.g. n024 or f192"
        )
    return m.group(1), int(m.group(2))


def parse_date(date: str | dt.date) -> dt.date:
    """Return a :class:`datetime.date` from ``YYYYMMDD`` text or a date.

    Raises
    ------
    NotRtofsNameError
        If the text is not a valid ``YYYYMMDD`` date.
    """
    if isinstance(date, dt.datetime):
        return date.date()
    if isinstance(date, dt.date):
        return date
    text = str(date)
    try:
        if not re.fullmatch(r"\d{8}", text):
            raise ValueError
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise NotRtofsNameError(f"bad date {text!r}; write it as YYYYMMDD, e.g. 20260708") from None


def valid_time(cycle_date: str | dt.date, step: str) -> dt.datetime:
    """Return the valid time of ``step`` in the 00Z cycle of ``cycle_date``.

    ``nHHH`` is valid at the cycle day minus one day plus HHH hours (``n024`` is the
    cycle day's 00Z nowcast); ``fHHH`` at the cycle day plus HHH hours.

    Examples
    --------
    >>> valid_time("20260708", "n000").isoformat()
    '2026-07-07T00:00:00'
    >>> valid_time("20260708", "f024").isoformat()
    '2026-07-09T00:00:00'
    """
    kind, hours = parse_step(step)
    base = dt.datetime.combine(parse_date(cycle_date), dt.time())
    if kind == "n":
        base -= dt.timedelta(days=1)
    return base + dt.timedelta(hours=hours)


def day_folder(date: str | dt.date) -> str:
    """Return the NOMADS day folder name, e.g. ``rtofs.20260708``."""
    return f"{DAY_PREFIX}{parse_date(date):%Y%m%d}"


def parse_day_folder(name: str) -> dt.date:
    """Return the cycle date of a day folder name such as ``rtofs.20260708``.

    Raises
    ------
    NotRtofsNameError
        If ``name`` is not ``rtofs.YYYYMMDD``.
    """
    m = _DAY_RE.match(name.rstrip("/"))
    if not m:
        raise NotRtofsNameError(f"{name!r} is not an RTOFS day folder; expected rtofs.YYYYMMDD")
    return parse_date(m.group(1))


@dataclass(frozen=True, order=True)
class RtofsName:
    """One RTOFS netCDF file name, parsed.

    Attributes
    ----------
    product
        Product code: ``prog``, ``diag``, ``ice``, ``3z[tsuv]io``, ``US_east``, ...
    step
        Step code such as ``n024`` or ``f192``.
    cadence
        The pre-2020 cadence tag (``1hrly``, ``3hrly``, ``daily``) or ``None``.
    date
        The cycle date when known (from the day folder), else ``None``.
    """

    product: str
    step: str
    cadence: str | None = None
    date: dt.date | None = None

    @property
    def family(self) -> str:
        """``2ds``, ``3dz_daily`` or ``3dz_6hrly``."""
        return family(self.product)

    @property
    def legacy(self) -> bool:
        """True for the pre-2020 names that carry a cadence tag."""
        return self.cadence is not None

    @property
    def filename(self) -> str:
        """The file name as NOMADS spells it."""
        return compose_name(self.product, self.step, cadence=self.cadence)

    @property
    def stem(self) -> str:
        """The file name without ``.nc``."""
        return self.filename[:-3]

    @property
    def hours(self) -> int:
        """Hours of the step, e.g. 75 for ``f075``."""
        return parse_step(self.step)[1]

    @property
    def valid_time(self) -> dt.datetime:
        """The valid time; needs :attr:`date`."""
        if self.date is None:
            raise NotRtofsNameError(
                f"{self.filename}: no cycle date; pass date= or parse a path inside rtofs.YYYYMMDD/"
            )
        return valid_time(self.date, self.step)


def compose_name(product: str, step: str, *, cadence: str | None = None) -> str:
    """Return the NOMADS file name of ``product`` at ``step``.

    Raises
    ------
    NotRtofsNameError
        If the product is unknown, the step is not published for it, or a cadence tag
        is given for a product that never had one.
    """
    fam = family(product)
    if step not in steps_for(product) and not (cadence and _legacy_step_ok(step, cadence)):
        raise NotRtofsNameError(
            f"step {step!r} is not published for RTOFS product {product!r}; "
            f"valid steps run {steps_for(product)[0]}..{steps_for(product)[-1]} "
            "(see rtofs_lib.fetch.names.steps_for)"
        )
    if cadence is not None:
        if fam != "2ds" or cadence not in LEGACY_CADENCES:
            raise NotRtofsNameError(
                f"cadence tag {cadence!r} exists only for 2-D products, as one of "
                f"{', '.join(LEGACY_CADENCES)}"
            )
        return f"rtofs_glo_2ds_{step}_{cadence}_{product}.nc"
    if fam == "2ds":
        return f"rtofs_glo_2ds_{step}_{product}.nc"
    if fam == "3dz_daily":
        return f"rtofs_glo_3dz_{step}_daily_{product}.nc"
    return f"rtofs_glo_3dz_{step}_6hrly_hvr_{product}.nc"


def _legacy_step_ok(step: str, cadence: str) -> bool:
    _kind, hours = parse_step(step)
    if cadence == "1hrly":
        return hours <= 192
    if cadence == "3hrly":
        return hours % 3 == 0 and hours <= 192
    return hours % 24 == 0 and hours <= 192


def parse_name(name: str, *, date: str | dt.date | None = None) -> RtofsName:
    """Parse an RTOFS file name or path.

    The cycle date comes from ``date`` or, failing that, from an enclosing
    ``rtofs.YYYYMMDD`` folder in the path.

    Raises
    ------
    NotRtofsNameError
        If the base name is not an RTOFS netCDF name, or its step is not published
        for its product.
    """
    parts = str(name).replace("\\", "/").rstrip("/").split("/")
    base = parts[-1]
    m = _NAME_RE.match(base)
    if not m:
        raise NotRtofsNameError(
            f"{base!r} is not a Global RTOFS netCDF file name; expected e.g. "
            "rtofs_glo_2ds_f024_prog.nc or rtofs_glo_3dz_n024_daily_3ztio.nc"
        )
    step = m.group("s2") or m.group("s3") or m.group("s6")
    product = m.group("p2") or m.group("p3") or m.group("p6")
    cadence = m.group("cad")
    if cadence is None and step not in steps_for(product):
        raise NotRtofsNameError(
            f"{base!r}: step {step} is not published for product {product} "
            f"(valid: {steps_for(product)[0]}..{steps_for(product)[-1]} at the real cadence)"
        )
    if cadence is not None and not _legacy_step_ok(step, cadence):
        raise NotRtofsNameError(f"{base!r}: step {step} does not fit cadence {cadence}")
    cycle = parse_date(date) if date is not None else None
    if cycle is None and len(parts) > 1:
        try:
            cycle = parse_day_folder(parts[-2])
        except NotRtofsNameError:
            cycle = None
    return RtofsName(product=product, step=step, cadence=cadence, date=cycle)


def is_rtofs_name(name: str) -> bool:
    """Return True when ``name`` (a base name or path) parses as an RTOFS file name."""
    try:
        parse_name(name)
    except NotRtofsNameError:
        return False
    return True


def expand_steps(spec: str | Iterable[str] | None, product: str = "prog") -> tuple[str, ...]:
    """Expand a step selection such as ``"n024,f000-f072"`` for ``product``.

    A range keeps only the steps NOMADS publishes for the product between its ends
    (so ``f000-f192`` of ``prog`` is 113 steps). ``None``, ``""`` or ``"all"`` mean
    every published step.

    Raises
    ------
    NotRtofsNameError
        For a malformed item, a range whose ends differ in kind, or a single step
        that is not published for the product.
    """
    published = steps_for(product)
    if spec is None or spec in {"", "all"}:
        return published
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if "-" in item:
            lo, hi = (s.strip() for s in item.split("-", 1))
            k0, h0 = parse_step(lo)
            k1, h1 = parse_step(hi)
            if k0 != k1 or h1 < h0:
                raise NotRtofsNameError(
                    f"bad step range {item!r}; write it low-high with one kind, e.g. f000-f072"
                )
            sel = [s for s in published if s[0] == k0 and h0 <= int(s[1:]) <= h1]
        else:
            parse_step(item)
            if item not in published:
                raise NotRtofsNameError(
                    f"step {item!r} is not published for product {product!r}; "
                    f"valid steps run {published[0]}..{published[-1]}"
                )
            sel = [item]
        chosen.extend(s for s in sel if s not in chosen)
    order = {s: i for i, s in enumerate(published)}
    return tuple(sorted(chosen, key=order.__getitem__))


def expand_products(
    spec: str | Iterable[str] | None, default: Iterable[str] = ("prog",)
) -> tuple[str, ...]:
    """Expand a product selection such as ``"prog,diag"`` (``all`` for every product).

    Raises
    ------
    NotRtofsNameError
        For an unknown product code.
    """
    if spec is None or spec == "":
        return tuple(default)
    if spec == "all":
        return PRODUCTS
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in (s.strip() for s in items):
        if item:
            family(item)
            if item not in out:
                out.append(item)
    return tuple(out)
