"""systemd units of the live pipeline: the crawl over the publication window and the stream.

The templates live in ``rtofs_lib/data/systemd/``:

- ``rtofs-crawl.timer`` starts the crawl once per NOMADS publication wave (03:05, 09:05 and
  15:05 UTC by default: the nowcasts land about 03:12–03:24, forecast days 1–3 about
  09:11–09:40, days 4–8 about 15:13–15:41), ``Persistent=true``;
- ``rtofs-crawl.service`` (oneshot ``rtofs crawl --follow --date latest``) fetches each file
  as soon as NOMADS lists it, until the day's selection is complete or the deadline (90 min)
  passes; exit 3 (partial) still counts as success. Nothing follows it (no ``OnSuccess=``):
- ``rtofs-stream.service`` (``rtofs stream``, always running, ``Restart=on-failure``)
  renders and publishes each file as it lands. One writer of the maps: it runs as the maps'
  owner, and there is no rendering unit beside it (``rtofs run`` by hand, with the stream
  stopped, for a full re-render).

Examples
--------
>>> units = render_units(on_calendar=["03:05", "15:45"], master="spark://hub:7077")
>>> sorted(units)
['rtofs-crawl.service', 'rtofs-crawl.timer', 'rtofs-stream.service']
>>> [line for line in units["rtofs-crawl.timer"].splitlines() if line.startswith("OnCal")]
['OnCalendar=*-*-* 03:05 UTC', 'OnCalendar=*-*-* 15:45 UTC']
>>> "ExecStart=/usr/local/bin/rtofs stream --master spark://hub:7077" in units[
...     "rtofs-stream.service"]
True
>>> "OnSuccess" in units["rtofs-crawl.service"]
False
>>> "User=spark" in render_units(stream_user="spark")["rtofs-stream.service"]
True
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template

from rtofs_lib import atomic

UNITS = ("rtofs-crawl.service", "rtofs-crawl.timer", "rtofs-stream.service")
#: Start times of the crawl (UTC), a few minutes before each NOMADS publication wave.
WAVES = ("03:05", "09:05", "15:05")

_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_SPAN = re.compile(r"(\d+(\.\d+)?\s*[a-z]*\s*)+")


def render_units(  # noqa: PLR0913 - keyword fields, one per unit setting the role sets
    *,
    on_calendar: str | Sequence[str] = WAVES,
    rtofs: str = "/usr/local/bin/rtofs",
    user: str = "rtofs",
    group: str = "rtofs",
    config: str = "/etc/rtofs/rtofs.toml",
    deadline: str = "90m",
    timeout: str = "2h",
    randomized_delay: str = "2min",
    stream_user: str | None = None,
    master: str = "",
    stream_cores: int = 0,
    restart_sec: str = "30s",
) -> dict[str, str]:
    """Return the unit files' text by name, with the fields filled in.

    Parameters
    ----------
    on_calendar
        Start times of the crawl, ``HH:MM`` in UTC: a list, or one string with commas
        (``"03:05,09:05,15:05"``). One ``OnCalendar=`` line each.
    rtofs
        Absolute path of the ``rtofs`` command.
    user, group
        Account the crawl runs as (the archive's owner) and the group of both services.
    deadline
        How long each crawl follows the listing (``rtofs crawl --deadline``), e.g. ``90m``.
    timeout
        Longest run of the crawl before systemd stops it (longer than ``deadline``).
    randomized_delay
        Random delay added to each start (the timer's ``RandomizedDelaySec=``).
    stream_user
        Account the stream runs as; ``user`` when omitted. On a cluster, the account Spark's
        executors run as (they write the maps too, so the maps have one owner).
    master
        Spark master of the stream (``spark://hub:7077``, ``local[2]``); empty = the
        settings file's ``spark_master``.
    stream_cores
        Most cores the stream holds on the cluster (``spark.cores.max``, executors of one
        core); 0 = no cap. A long-running application keeps its executors: cap it so the
        researchers' Spark jobs still get cores.
    restart_sec
        Pause before systemd restarts a stream that failed.

    Raises
    ------
    ValueError
        If a start time is not ``HH:MM``, ``rtofs`` is not an absolute path, or a time span
        is not a systemd time span.
    """
    times = on_calendar.split(",") if isinstance(on_calendar, str) else list(on_calendar)
    times = [t.strip() for t in times]
    if not times or not all(_HHMM.fullmatch(t) for t in times):
        raise ValueError(
            f"on_calendar must be HH:MM times in UTC, e.g. 03:05,09:05,15:05, not {on_calendar!r}"
        )
    if not rtofs.startswith("/"):
        raise ValueError(f"rtofs must be an absolute path for systemd, not {rtofs!r}")
    for name, span in (("deadline", deadline), ("timeout", timeout), ("restart_sec", restart_sec),
                       ("randomized_delay", randomized_delay)):  # fmt: skip
        if not _SPAN.fullmatch(span.strip()):
            raise ValueError(f"{name} must be a systemd time span such as 90m or 2h, not {span!r}")
    submit, cores = "pyspark-shell", int(stream_cores)
    if cores:
        submit = f"--conf spark.cores.max={cores} --conf spark.executor.cores=1 {submit}"
    fields = dict(
        on_calendar="\n".join(f"OnCalendar=*-*-* {t} UTC" for t in times),
        times=", ".join(times),
        rtofs=rtofs,
        user=user,
        stream_user=stream_user or user,
        group=group,
        config=config,
        deadline=deadline,
        timeout=timeout,
        randomized_delay=randomized_delay,
        master_args=f" --master {shlex.quote(master)}" if master else "",
        submit_args=submit,
        restart_sec=restart_sec,
    )
    folder = resources.files("rtofs_lib") / "data" / "systemd"
    return {name: Template((folder / name).read_text()).substitute(fields) for name in UNITS}


def write_units(target: str | Path, **fields) -> list[Path]:
    """Write the rendered units into ``target`` (e.g. ``/etc/systemd/system``); return paths.

    ``fields`` are :func:`render_units`' parameters.
    """
    out = []
    for name, text in render_units(**fields).items():
        out.append(atomic.write_text(Path(target) / name, text))
    return out
