"""One harness run at a time: ``hostctl.up`` holds a lock until ``down``.

Two processes contend for the lock file in a temporary state folder; no host is booted and
no root is needed.
"""

from __future__ import annotations

import time

import pytest


def test_second_run_fails_at_once_naming_the_first_runs_pid(harness_lock, other_run):
    first = other_run()
    t0 = time.monotonic()
    with pytest.raises(harness_lock.HarnessBusy, match=rf"pid {first.pid} \(.*still running"):
        harness_lock.acquire_lock(wait=0)
    assert time.monotonic() - t0 < 5


def test_lock_outlives_the_up_command_until_down(harness_lock, other_run):
    first = other_run()
    first.stdin.close()  # "hostctl.py up" has returned; its hosts keep running
    first.wait(timeout=30)
    with pytest.raises(harness_lock.HarnessBusy, match=rf"pid {first.pid} .*has exited"):
        harness_lock.acquire_lock(wait=0)
    harness_lock.release_lock()  # what "hostctl.py down" does last
    assert harness_lock.lock_owner() is None
    harness_lock.acquire_lock(wait=0)
    assert harness_lock.lock_owner()["pid"] == __import__("os").getpid()


def test_waiting_for_the_lock_gives_up_after_the_timeout(harness_lock, other_run):
    first = other_run()
    t0 = time.monotonic()
    with pytest.raises(harness_lock.HarnessBusy, match=rf"pid {first.pid}"):
        harness_lock.acquire_lock(wait=3)
    assert 3 <= time.monotonic() - t0 < 8


def test_down_refuses_to_stop_the_hosts_of_a_run_that_is_still_going(harness_lock, other_run):
    first = other_run()
    with pytest.raises(harness_lock.HarnessBusy, match=rf"pid {first.pid}.*down --force"):
        harness_lock.down()
    assert harness_lock.lock_owner()["pid"] == first.pid


def test_lock_is_free_again_once_its_holder_is_gone(harness_lock, other_run):
    import os
    import signal

    first = other_run()
    holder = harness_lock.lock_owner()["holder"]
    os.kill(holder, signal.SIGKILL)  # e.g. the machine's processes were killed
    deadline = time.monotonic() + 10
    while harness_lock.lock_owner() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    harness_lock.acquire_lock(wait=0)
    assert harness_lock.lock_owner()["pid"] != first.pid
