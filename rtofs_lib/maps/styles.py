"""Field styles: how each renderable field is drawn (variables, colour range, colormap, units).

Examples
--------
>>> FIELDS["sst"].cmap, FIELDS["sst"].vmin, FIELDS["sst"].vmax
('thermal', -2.0, 32.0)
>>> field_style("speed").variables
('u_velocity', 'v_velocity')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIELDS", "FieldStyle", "field_style"]


@dataclass(frozen=True)
class FieldStyle:
    """How one field is drawn.

    Attributes
    ----------
    name
        Field name used on the command line and in output file names.
    title
        Human name drawn above the map.
    variables
        netCDF variables read (two for a speed computed from u and v).
    vmin, vmax
        Fixed colour range; values outside are clipped to the end colours.
    cmap
        cmocean colormap name.
    units
        Units label under the colorbar.
    products
        Files the variables live in (for error hints).

    Examples
    --------
    >>> FieldStyle("sst", "SST", ("sst",), 10.0, 20.0, "thermal", "°C").products
    ''
    >>> FieldStyle("sst", "SST", ("sst",), 20.0, 10.0, "thermal", "°C")
    Traceback (most recent call last):
    ...
    ValueError: sst: need vmin < vmax, got 20.0, 10.0
    """

    name: str
    title: str
    variables: tuple[str, ...]
    vmin: float
    vmax: float
    cmap: str
    units: str
    products: str = ""

    def __post_init__(self) -> None:
        if not self.vmax > self.vmin:
            raise ValueError(f"{self.name}: need vmin < vmax, got {self.vmin}, {self.vmax}")


#: Default style of each renderable field.
FIELDS: dict[str, FieldStyle] = {
    s.name: s
    for s in (
        FieldStyle("sst", "Sea surface temperature", ("sst",), -2.0, 32.0, "thermal", "°C",
                   "prog"),
        FieldStyle("sss", "Sea surface salinity", ("sss",), 30.0, 38.0, "haline", "psu", "prog"),
        FieldStyle("ssh", "Sea surface height", ("ssh",), -1.5, 1.5, "balance", "m", "diag"),
        FieldStyle("speed", "Surface current speed", ("u_velocity", "v_velocity"), 0.0, 1.5,
                   "speed", "m/s", "prog"),
        FieldStyle("temperature", "Sea water potential temperature", ("temperature",), -2.0,
                   30.0, "thermal", "°C", "3ztio"),
        FieldStyle("salinity", "Sea water salinity", ("salinity",), 30.0, 38.0, "haline", "psu",
                   "3zsio"),
    )
}  # fmt: skip


def field_style(field_or_style: str | FieldStyle) -> FieldStyle:
    """Return the style of a field name (a key of :data:`FIELDS`), or a style as given.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> field_style("ssh").units
    'm'
    >>> field_style("mud")
    Traceback (most recent call last):
    ...
    ValueError: unknown field 'mud'; choose one of sst, sss, ssh, speed, temperature, salinity
    """
    if isinstance(field_or_style, FieldStyle):
        return field_or_style
    try:
        return FIELDS[field_or_style]
    except KeyError:
        raise ValueError(
            f"unknown field {field_or_style!r}; choose one of {', '.join(FIELDS)}"
        ) from None
