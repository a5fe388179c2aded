"""systemd units for the daily crawl and the rendering job that follows it.

The templates live in ``rtofs_lib/data/systemd/``: ``rtofs-crawl.service`` (oneshot
``rtofs crawl``; exit 3 = partial still counts as success), ``rtofs-crawl.timer`` (daily,
15:00 UTC by default, ``Persistent=true``) and ``rtofs-render.service`` (``rtofs run``,
started by the crawl's ``OnSuccess=``).

Examples
--------
>>> units = render_units(on_calendar="15:45")
>>> sorted(units)
['rtofs-crawl.service', 'rtofs-crawl.timer', 'rtofs-render.service']
>>> "OnCalendar=*-*-* 15:45 UTC" in units["rtofs-crawl.timer"]
True
>>> "User=spark" in render_units(render_user="spark")["rtofs-render.service"]
True
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

from rtofs_lib import atomic

UNITS = ("rtofs-crawl.service", "rtofs-crawl.timer", "rtofs-render.service")


def render_units(
    *,
    on_calendar: str = "15:00",
    rtofs: str = "/usr/local/bin/rtofs",
    user: str = "rtofs",
    group: str = "rtofs",
    config: str = "/etc/rtofs/rtofs.toml",
    timeout: str = "5h",
    randomized_delay: str = "5min",
    render_user: str | None = None,
) -> dict[str, str]:
    """Return the unit files' text by name, with the fields filled in.

    Parameters
    ----------
    on_calendar
        Daily start time ``HH:MM`` (UTC). 15:00 by default; the last forecast wave lands
        about 15:45, so a run at 15:00 fetches days 0–3 and the next day's run (or a second
        timer at 16:00) picks up the rest.
    rtofs
        Absolute path of the ``rtofs`` command.
    user, group
        Account the crawl runs as (the archive's owner) and the group of both jobs.
    render_user
        Account the rendering job runs as; ``user`` when omitted. On a cluster, the account
        Spark's executors run as (they write the maps too, so the maps have one owner).

    Raises
    ------
    ValueError
        If ``on_calendar`` is not ``HH:MM`` or ``rtofs`` is not an absolute path.
    """
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", on_calendar):
        raise ValueError(f"on_calendar must be HH:MM (UTC), e.g. 15:00, not {on_calendar!r}")
    if not rtofs.startswith("/"):
        raise ValueError(f"rtofs must be an absolute path for systemd, not {rtofs!r}")
    fields = dict(
        on_calendar=on_calendar,
        rtofs=rtofs,
        user=user,
        render_user=render_user or user,
        group=group,
        config=config,
        timeout=timeout,
        randomized_delay=randomized_delay,
    )
    folder = resources.files("rtofs_lib") / "data" / "systemd"
    return {name: Template((folder / name).read_text()).substitute(fields) for name in UNITS}


def write_units(target: str | Path, **fields: str) -> list[Path]:
    """Write the rendered units into ``target`` (e.g. ``/etc/systemd/system``); return paths."""
    out = []
    for name, text in render_units(**fields).items():
        out.append(atomic.write_text(Path(target) / name, text))
    return out
