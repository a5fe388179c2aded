"""The hub with the local spawner (single-host install): real PAM users, real processes.

``local_hub_site`` (``tests/hubsite.py``) runs the same proxy and hub as ``test_hub.py`` with
``spawner.kind = "local"``: each user's server is a ``jupyterhub-singleuser`` process started
by the hub as that Unix user.
"""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest
from hubsite import server_pid, spawn, wait_for, xsrf

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def dave(local_hub_site):
    """rttdave logged in, his server spawned by the local spawner."""
    return spawn(local_hub_site, "rttdave", "small")[0]


def test_local_server_runs_as_the_user_and_not_as_a_slurm_job(local_hub_site, dave):
    pid = server_pid("rttdave")
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == [str(pwd.getpwnam("rttdave").pw_uid)] * 4  # real, effective, saved, fs
    assert local_hub_site.slurm.squeue("rttdave") == []


def test_local_server_answers_through_the_proxy(local_hub_site, dave):
    token = dave.cookies.get("_xsrf", path="/user/rttdave/")
    r = dave.get(f"{local_hub_site.url}/user/rttdave/api/status", headers={"X-XSRFToken": token})
    assert r.status_code == 200
    assert "started" in r.json()


def test_local_server_starts_in_the_users_home_with_the_shared_folder_linked(local_hub_site, dave):
    pid = server_pid("rttdave")
    home = Path(pwd.getpwnam("rttdave").pw_dir)
    assert Path(f"/proc/{pid}/cwd").resolve() == home
    assert (home / "shared").resolve() == (local_hub_site.base / "shared").resolve()


def test_another_user_cannot_open_the_local_server(local_hub_site, dave):
    erin = spawn(local_hub_site, "rtterin", "small")[0]
    r = erin.get(f"{local_hub_site.url}/user/rttdave/api/status", allow_redirects=False)
    assert r.status_code == 403


def test_hub_restart_keeps_a_local_server_running(local_hub_site, dave):
    pid = server_pid("rttdave")
    local_hub_site.restart_hub()
    assert server_pid("rttdave") == pid
    me = dave.get(f"{local_hub_site.url}/hub/api/user", headers={"X-XSRFToken": xsrf(dave)})
    assert me.json()["servers"][""]["ready"] is True


def test_idle_culler_stops_idle_servers(local_hub_site, dave):
    """Last in this file: the culler (45 s timeout) stops every server left idle."""
    pid = server_pid("rttdave")
    headers = {"X-XSRFToken": xsrf(dave)}

    def culled() -> bool:
        me = dave.get(f"{local_hub_site.url}/hub/api/user", headers=headers).json()
        return me["servers"] == {}

    wait_for(culled, 150, "the idle culler to stop rttdave's server", interval=2)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the server process to exit")
