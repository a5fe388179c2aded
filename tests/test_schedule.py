"""The systemd units of the live pipeline: a crawl per publication wave and the stream.

``rtofs_lib.jobs.schedule.render_units`` fills the templates of ``rtofs_lib/data/systemd/``;
the rtofs_timers role installs what it returns (``tests/test_converge.py`` boots them).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from rtofs_lib.jobs import schedule


def _lines(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_units_pass_systemd_analyze(tmp_path):
    paths = schedule.write_units(
        tmp_path, rtofs=sys.executable, user="root", group="root", master="local[2]"
    )
    assert sorted(p.name for p in paths) == sorted(schedule.UNITS)
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing; install systemd to check the unit files")
    proc = subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_timer_starts_the_crawl_before_each_publication_wave():
    timer = schedule.render_units()["rtofs-crawl.timer"]
    assert _lines(timer, "OnCalendar") == [
        "*-*-* 03:05 UTC", "*-*-* 09:05 UTC", "*-*-* 15:05 UTC"
    ]  # fmt: skip
    assert _lines(timer, "Persistent") == ["true"]
    assert _lines(timer, "Unit") == ["rtofs-crawl.service"]


def test_timer_takes_its_start_times_as_a_list_or_a_comma_separated_string():
    as_list = schedule.render_units(on_calendar=["04:00", "16:30"])["rtofs-crawl.timer"]
    as_text = schedule.render_units(on_calendar="04:00, 16:30")["rtofs-crawl.timer"]
    assert as_list == as_text
    assert _lines(as_list, "OnCalendar") == ["*-*-* 04:00 UTC", "*-*-* 16:30 UTC"]


def test_crawl_follows_the_listing_until_its_deadline_and_starts_nothing_after_it():
    crawl = schedule.render_units(deadline="75m", timeout="100m")["rtofs-crawl.service"]
    (start,) = _lines(crawl, "ExecStart")
    assert start.split()[1:] == [
        "crawl", "--follow", "--date", "latest", "--deadline", "75m", "--progress", "log"
    ]  # fmt: skip
    assert _lines(crawl, "TimeoutStartSec") == ["100m"]
    assert _lines(crawl, "SuccessExitStatus") == ["3"]
    assert "OnSuccess" not in crawl and "rtofs-render" not in crawl


def test_stream_runs_on_the_given_master_and_restarts_after_a_failure():
    stream = schedule.render_units(master="spark://hub:7077", restart_sec="15s")[
        "rtofs-stream.service"
    ]
    assert _lines(stream, "ExecStart") == ["/usr/local/bin/rtofs stream --master spark://hub:7077"]
    assert _lines(stream, "Restart") == ["on-failure"]
    assert _lines(stream, "RestartSec") == ["15s"]
    assert _lines(stream, "StartLimitBurst") and _lines(stream, "StartLimitIntervalSec")
    assert _lines(stream, "WantedBy") == ["multi-user.target"]


def test_stream_without_a_master_takes_the_settings_files():
    stream = schedule.render_units()["rtofs-stream.service"]
    assert _lines(stream, "ExecStart") == ["/usr/local/bin/rtofs stream"]


def test_stream_holds_at_most_its_cores_of_the_cluster():
    capped = schedule.render_units(stream_cores=4)["rtofs-stream.service"]
    assert (
        '"PYSPARK_SUBMIT_ARGS=--conf spark.cores.max=4 --conf spark.executor.cores=1 '
        'pyspark-shell"' in _lines(capped, "Environment")
    )
    uncapped = schedule.render_units()["rtofs-stream.service"]
    assert '"PYSPARK_SUBMIT_ARGS=pyspark-shell"' in _lines(uncapped, "Environment")


def test_stream_runs_as_its_own_user_and_the_crawl_as_the_archive_owner():
    units = schedule.render_units(user="rtofs", group="rtofs", stream_user="spark")
    assert "User=rtofs\nGroup=rtofs\n" in units["rtofs-crawl.service"]
    assert "User=spark\nGroup=rtofs\n" in units["rtofs-stream.service"]


def test_stream_runs_as_the_crawl_user_by_default():
    assert "User=rtofs\n" in schedule.render_units(user="rtofs")["rtofs-stream.service"]


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"on_calendar": "3:05"}, "on_calendar"),
        ({"on_calendar": []}, "on_calendar"),
        ({"rtofs": "rtofs"}, "rtofs"),
        ({"deadline": "ninety minutes"}, "deadline"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields, named):
    with pytest.raises(ValueError, match=named):
        schedule.render_units(**fields)
