"""The multi-user hub, for real: PAM users, Slurm jobs, the proxy, the hub and its services.

The ``hub_site`` fixture (``tests/hubsite.py``) starts munge, slurmctld/slurmd, creates Unix
users, and runs ``hub_config/run-local-hub`` (proxy and hub as separate processes). Tests talk
HTTP to the proxy as a browser does. Settings and secrets checks at the top need none of that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from hubsite import NotebookKernel, browser_login, login, server_pid, spawn, wait_for, xsrf

from rtofs_lib.errors import ConfigError
from rtofs_lib.hub import settings as hub_settings
from rtofs_lib.hub.config import configure, hub_connect_url
from rtofs_lib.hub.publish import publish
from rtofs_lib.hub.secrets import ensure_secret, hub_secrets

pytestmark = pytest.mark.timeout(300)

RUN_LOCAL_HUB = Path(__file__).resolve().parents[1] / "hub_config" / "run-local-hub"


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults_then_file_then_dropins_in_sorted_order(tmp_path):
    main = tmp_path / "hub.toml"
    main.write_text('[culler]\ntimeout = 600\n[groups]\nusers = "ocean"\n')
    (tmp_path / "hub.d").mkdir()
    (tmp_path / "hub.d" / "20-late.toml").write_text("[culler]\ntimeout = 900\n")
    (tmp_path / "hub.d" / "10-early.toml").write_text(
        '[culler]\ntimeout = 700\n[profiles.gpu]\ncpus = 8\nmemory = "32G"\nruntime = "02:00:00"\n'
    )
    s = hub_settings.load(main)
    assert s["culler"]["timeout"] == 900  # 20-late wins over 10-early over the file
    assert s["groups"] == {"users": "ocean", "admins": "admins"}  # default kept
    assert list(hub_settings.profiles(s)) == ["small", "large", "gpu"]


def test_settings_unknown_key_names_the_file_and_key(tmp_path):
    main = tmp_path / "hub.toml"
    main.write_text("[culler]\ntimeuot = 600\n")
    with pytest.raises(ConfigError, match=r"hub\.toml: unknown setting 'culler\.timeuot'"):
        hub_settings.load(main)


def test_settings_wrong_type_is_refused(tmp_path):
    main = tmp_path / "hub.toml"
    main.write_text('[culler]\ntimeout = "10 minutes"\n')
    with pytest.raises(ConfigError, match=r"culler\.timeout must be a int"):
        hub_settings.load(main)


def test_profile_with_bad_memory_is_refused(tmp_path):
    main = tmp_path / "hub.toml"
    main.write_text('[profiles.small]\nmemory = "2G\\n#SBATCH --uid=0"\n')
    with pytest.raises(ConfigError, match=r"profiles\.small\.memory must look like 2G"):
        hub_settings.load(main)


def test_slurm_needs_a_hub_address_the_workers_can_reach(tmp_path):
    main = tmp_path / "hub.toml"
    main.write_text('[hub]\nhub_connect_url = "http://127.0.0.1:8081"\n')
    with pytest.raises(ConfigError, match=r"hub_connect_url.*compute nodes can reach"):
        hub_connect_url(hub_settings.load(main))


def test_config_uses_an_external_proxy_and_keeps_servers_on_shutdown(tmp_path):
    from traitlets.config import Config

    main = tmp_path / "hub.toml"
    main.write_text(
        f'[hub]\nhub_connect_url = "http://hub.example:8081"\nstate_dir = "{tmp_path}/state"\n'
    )
    c = Config()
    configure(c, hub_settings.load(main))
    assert c.ConfigurableHTTPProxy.should_start is False
    token = (tmp_path / "state" / "proxy_auth_token").read_text().strip()
    assert c.ConfigurableHTTPProxy.auth_token == token
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path}/state/jupyterhub.sqlite"
    assert c.JupyterHub.hub_connect_url == "http://hub.example:8081"
    assert c.Spawner.default_url == "/lab"
    assert c.Spawner.notebook_dir == "~"


# --- the single-user server's start -------------------------------------------------------

LAZY_PROBE = """
import sys
from rtofs_lib.hub.singleuser import install_lazy_rfc3987_syntax
install_lazy_rfc3987_syntax()
import jupyter_server.serverapp
print("lark" in sys.modules)
from jsonschema import FormatChecker
fc = FormatChecker()
print(fc.conforms("http://example.org/%C3%BCml", "iri"), fc.conforms("no iri", "iri"))
print("lark" in sys.modules)
"""


def test_server_start_skips_the_iri_grammars_until_an_iri_is_checked():
    out = subprocess.run(
        [sys.executable, "-c", LAZY_PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True", "False", "True"]  # not loaded, same answers, then loaded


NODE_PROBE = """
import os
from rtofs_lib.hub import singleuser
path = os.environ["PATH"]
singleuser.prepare()
print(os.environ["PATH"] == path)
"""


def test_server_start_runs_no_node_process_and_keeps_path(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "node").write_text(f"#!/bin/sh\ntouch {tmp_path}/node-ran\nexit 1\n")
    (fake / "node").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run(
        [sys.executable, "-c", NODE_PROBE], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert out == ["True"]
    assert not (tmp_path / "node-ran").exists()


def test_spawner_runs_rtofs_singleuser_from_the_user_environment(tmp_path):
    from traitlets.config import Config

    main = tmp_path / "hub.toml"
    main.write_text(f'[hub]\nstate_dir = "{tmp_path}/state"\n[spawner]\nuser_env = "/opt/env"\n'
                    'kind = "local"\n')  # fmt: skip
    c = Config()
    configure(c, hub_settings.load(main))
    assert c.Spawner.cmd == ["/opt/env/bin/rtofs-singleuser"]


# --- secrets -------------------------------------------------------------------------------


def test_secrets_are_generated_once_into_private_files(tmp_path):
    cookie, token = hub_secrets(tmp_path / "state")
    assert len(bytes.fromhex(cookie)) == 32
    assert cookie != token
    for name in ("jupyterhub_cookie_secret", "proxy_auth_token"):
        assert (tmp_path / "state" / name).stat().st_mode & 0o777 == 0o600
    assert hub_secrets(tmp_path / "state") == (cookie, token)


def test_world_readable_secret_is_refused(tmp_path):
    path = tmp_path / "secret"
    ensure_secret(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"mode 0644.*chmod 600"):
        ensure_secret(path)


# --- the running hub -------------------------------------------------------------------------


def logged_in(s: requests.Session, site) -> bool:
    r = s.get(f"{site.url}/hub/home", allow_redirects=False)
    return r.status_code == 200


def test_secret_files_of_the_running_hub_are_private(hub_site):
    for name in ("jupyterhub_cookie_secret", "proxy_auth_token"):
        assert (hub_site.state / name).stat().st_mode & 0o777 == 0o600
    assert hub_site.state.stat().st_mode & 0o777 == 0o700


def test_hub_refuses_to_start_with_a_world_readable_secret(hub_site, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "jupyterhub_cookie_secret").write_text("ab" * 32)
    (state / "jupyterhub_cookie_secret").chmod(0o644)
    settings = tmp_path / "hub.toml"
    text = hub_site.settings.read_text().replace(str(hub_site.state), str(state))
    settings.write_text(text)
    p = subprocess.run(
        [str(RUN_LOCAL_HUB), "--settings", str(settings), "hub"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0
    assert "jupyterhub_cookie_secret: secret file has mode 0644" in p.stderr


def test_researcher_logs_in_with_the_unix_password(hub_site):
    s = login(hub_site, "rttalice")
    assert logged_in(s, hub_site)


def test_wrong_password_is_refused(hub_site):
    s = login(hub_site, "rttalice", "not-the-password")
    assert s.last.status_code == 403
    assert not logged_in(s, hub_site)


def test_user_outside_the_researchers_group_cannot_log_in(hub_site):
    s = login(hub_site, "rttcarol")
    assert s.last.status_code == 403
    assert not logged_in(s, hub_site)


def test_admin_reaches_the_admin_page_and_a_researcher_does_not(hub_site):
    admin = login(hub_site, "rttbob")
    assert admin.get(f"{hub_site.url}/hub/admin").status_code == 200
    researcher = login(hub_site, "rttalice")
    assert researcher.get(f"{hub_site.url}/hub/admin").status_code == 403


def test_researcher_cannot_call_the_admin_api(hub_site):
    s = login(hub_site, "rttalice")
    headers = {"X-XSRFToken": xsrf(s)}
    assert s.get(f"{hub_site.url}/hub/api/users", headers=headers).status_code == 403
    r = s.post(f"{hub_site.url}/hub/api/users/rttbob/server", headers=headers)
    assert r.status_code == 404  # JupyterHub hides the users one may not see
    assert hub_site.slurm.squeue("rttbob") == []


def test_researcher_cannot_read_another_researchers_home(hub_site):
    assert as_user("rttbob", "touch ~/private.txt").returncode == 0
    assert as_user("rttalice", "ls /home/rttbob").returncode != 0
    assert as_user("rttalice", "cat /home/rttbob/private.txt").returncode != 0


def test_spawn_form_offers_the_admin_profiles(hub_site):
    s = login(hub_site, "rttbob")
    page = s.get(f"{hub_site.url}/hub/spawn").text
    assert 'value="small"' in page and 'value="large"' in page
    assert "4 CPU, 8G memory, 08:00:00" in page


@pytest.mark.parametrize(
    "form",
    [
        {"profile": "small\n#SBATCH --uid=0"},
        {"profile": "small", "options": "--uid=0"},
        {"profile": "huge"},
    ],
    ids=["sbatch-line-in-profile", "extra-field", "unknown-profile"],
)
def test_injected_spawn_options_are_rejected_before_submitting(hub_site, form):
    s = login(hub_site, "rttbob")
    r = s.post(f"{hub_site.url}/hub/spawn", data={**form, "_xsrf": xsrf(s)})
    assert r.status_code == 400
    assert hub_site.slurm.squeue("rttbob") == []


def test_api_spawn_with_extra_options_is_rejected(hub_site):
    s = login(hub_site, "rttbob")
    r = s.post(
        f"{hub_site.url}/hub/api/users/rttbob/server",
        json={"profile": "small", "req_options": "--uid=0"},
        headers={"X-XSRFToken": xsrf(s)},
    )
    assert r.status_code == 400
    assert hub_site.slurm.squeue("rttbob") == []


@pytest.fixture(scope="module")
def alice_server(hub_site):
    """rttalice logged in, her server spawned with the small profile through Slurm."""
    return spawn(hub_site, "rttalice", "small")[0]


def server_api(s: requests.Session, site, path: str) -> requests.Response:
    """GET the user's server API with its cookie and xsrf token, as JupyterLab does."""
    token = s.cookies.get("_xsrf", path="/user/rttalice/")
    return s.get(f"{site.url}/user/rttalice/api/{path}", headers={"X-XSRFToken": token})


def test_spawned_job_has_the_profile_resources(hub_site, alice_server):
    (line,) = hub_site.slurm.squeue("rttalice", "%T %C %m %l %j")
    assert line.split() == ["RUNNING", "1", "2G", "8:00:00", "spawner-jupyterhub"]


def test_server_answers_through_the_proxy(hub_site, alice_server):
    r = server_api(alice_server, hub_site, "status")
    assert r.status_code == 200
    assert "started" in r.json()


def run_cell(s: requests.Session, site, user: str, code: str, kernel: str = "rtofs") -> str:
    """Run ``code`` in a new ``kernel`` on the user's server; return its stdout."""
    with NotebookKernel(s, site.url, user, kernel) as k:
        return k.run(code)


def test_shared_kernel_runs_rtofs_and_a_spark_job_on_the_users_server(hub_site, alice_server):
    code = (
        "import getpass, rtofs_lib\n"
        "print(getpass.getuser(), rtofs_lib.__name__, spark.range(1000).count())"
    )
    assert run_cell(alice_server, hub_site, "rttalice", code).split() == [
        "rttalice", "rtofs_lib", "1000",
    ]  # fmt: skip


def test_job_environment_holds_no_hub_secrets(hub_site, alice_server):
    env = dict(
        item.split(b"=", 1)
        for item in Path(f"/proc/{server_pid('rttalice')}/environ").read_bytes().split(b"\0")
        if b"=" in item
    )
    cookie, token = hub_secrets(hub_site.state)
    assert b"JUPYTERHUB_API_TOKEN" in env  # the server's own token does reach it
    assert b"JPY_COOKIE_SECRET" not in env
    assert b"CONFIGPROXY_AUTH_TOKEN" not in env
    values = b"\n".join(env.values())
    assert cookie.encode() not in values
    assert token.encode() not in values


@pytest.fixture
def bob_server(hub_site):
    """rttbob, a second researcher, with his own server (stopped afterwards)."""
    s = spawn(hub_site, "rttbob", "small")[0]
    yield s
    s.delete(f"{hub_site.url}/hub/api/users/rttbob/server", headers={"X-XSRFToken": xsrf(s)})
    wait_for(lambda: not hub_site.slurm.squeue("rttbob"), 60, "rttbob's server to stop")


def test_researchers_spark_ui_is_reachable_through_her_server_and_no_one_elses(
    hub_site, alice_server, bob_server
):
    """alice's Spark UI (her kernel's driver) at /user/rttalice/spark-ui/<port>/; bob's
    server on the same host gets nothing from that port, by either proxy route."""
    job = "spark.range(1000).selectExpr('id % 3 AS k').groupBy('k').count().collect()"
    with NotebookKernel(alice_server, hub_site.url, "rttalice") as k:
        route = k.run(f"{job}\nprint(spark.ui_url)").strip()
        port = int(route.rstrip("/").rsplit("/", 1)[1])
        assert route == f"/user/rttalice/spark-ui/{port}/"
        ui = f"{hub_site.url}{route}"

        jobs = alice_server.get(f"{ui}jobs/")
        assert jobs.status_code == 200
        assert f"setUIRoot('/user/rttalice/spark-ui/{port}')" in jobs.text
        assert f'href="{route}jobs/job/?id=0"' in jobs.text
        assert alice_server.get(f"{ui}jobs/job/?id=0").status_code == 200
        assert alice_server.get(f"{ui}executors/").status_code == 200
        (app,) = alice_server.get(f"{ui}api/v1/applications").json()
        executors = alice_server.get(f"{ui}api/v1/applications/{app['id']}/allexecutors")
        assert [e["id"] for e in executors.json()] == ["driver"]

        bob = f"{hub_site.url}/user/rttbob"
        assert bob_server.get(f"{bob}/spark-ui/{port}/jobs/").status_code == 404
        assert bob_server.get(f"{bob}/proxy/{port}/jobs/").status_code == 403  # Spark's filter


def test_dashboard_refuses_an_anonymous_request(hub_site):
    r = requests.get(f"{hub_site.url}/services/maps/", allow_redirects=True)
    assert "RTOFS test maps" not in r.text
    assert "/hub/login" in r.url


def test_dashboard_serves_the_map_and_the_gallery_to_a_logged_in_user(hub_site):
    s = login(hub_site, "rttalice")
    r = s.get(f"{hub_site.url}/services/maps/")
    assert r.status_code == 200 and "static/vendor/leaflet/leaflet.js" in r.text
    gallery = s.get(f"{hub_site.url}/services/maps/index.html")
    assert gallery.status_code == 200 and "RTOFS test maps" in gallery.text


def test_dashboard_tiles_and_series_need_the_hub_login(hub_site):
    tile = f"{hub_site.url}/services/maps/tiles/20260708/f001/sst/0/0/0.png"
    anonymous = requests.get(tile, allow_redirects=True)
    assert not anonymous.content.startswith(b"\x89PNG") and "/hub/login" in anonymous.url
    s = login(hub_site, "rttalice")
    r = s.get(tile)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    assert r.headers["Cache-Control"].startswith("private")  # no shared cache keeps it
    series = s.get(f"{hub_site.url}/services/maps/api/series.json", params={"lon": -30, "lat": 0})
    assert series.status_code == 200 and len(series.json()["points"]) == 1


def test_the_map_behind_the_hub_login_draws_its_tiles_in_a_browser(
    hub_site, chromium, artifacts_dir
):
    """Log in through the hub's form, open the dashboard: the service's OAuth, the page's
    script's requests (JupyterHub wants the "_xsrf" cookie back as a header on them), the
    tiles, and a click's series."""
    page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    try:
        browser_login(page, hub_site, "rttalice")
        page.goto(f"{hub_site.url}/services/maps/")
        page.wait_for_function("() => document.body.dataset.tiles === 'loaded'", timeout=60_000)
        loaded = page.evaluate(
            "() => [...document.querySelectorAll('img.leaflet-tile-loaded')]"
            ".filter(i => i.naturalWidth === 256 && i.src.includes('/services/maps/tiles/')).length"
        )
        assert loaded > 0 and page.url.startswith(f"{hub_site.url}/services/maps/")
        page.evaluate("() => rtofsMap.clickAt(0, -30)")
        page.wait_for_function(
            "() => ['drawn', 'error'].includes(document.body.dataset.series)", timeout=60_000
        )
        assert page.evaluate("() => document.body.dataset.series") == "drawn"
        page.screenshot(path=str(artifacts_dir / "hub-map.png"))
    finally:
        page.context.close()


def test_the_tile_map_in_a_researchers_jupyterlab_draws_the_services_tiles(
    hub_site, alice_server, chromium, artifacts_dir
):
    """In her Slurm-spawned JupyterLab, ``tile_map()`` with the site's settings only: the
    browser, logged in at the hub but never on the dashboard, gets the tiles from
    ``/services/maps/`` (the service's OAuth through the tiles' own redirects), and a click
    shows the point's series computed in her kernel."""
    from conftest import LOADED_TILES, run_all_cells, write_notebook

    cell = (
        "from rtofs_lib.notebook.viewer import tile_map\n\n"
        "m = tile_map(center=(0.0, -30.0), zoom=2)\nm"
    )
    notebook = write_notebook(Path("~rttalice/tile_map.ipynb").expanduser(), [cell])
    shutil.chown(notebook, "rttalice")
    tiles = "/services/maps/tiles/"
    page = chromium.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    try:
        browser_login(page, hub_site, "rttalice")
        run_all_cells(page, f"{hub_site.url}/user/rttalice/lab/tree/tile_map.ipynb")
        page.wait_for_selector(".leaflet-container", timeout=240_000)
        page.wait_for_function(LOADED_TILES + " > 0", arg=[f"{hub_site.url}{tiles}", "f001"],
                               timeout=120_000)  # fmt: skip
        page.wait_for_timeout(500)  # Leaflet fades tiles in
        page.locator(".leaflet-container").screenshot(path=str(artifacts_dir / "hub-tilemap.png"))
        box = page.locator(".leaflet-container").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # 0°, 30°W
        page.wait_for_function(
            "() => document.querySelector('.rtofs-tilemap-series').naturalWidth > 0",
            timeout=120_000,
        )
        text = page.locator(".leaflet-container").inner_text()
        assert "grid j=" in text
    finally:
        page.context.close()
        notebook.unlink()


def test_dashboard_gives_a_rewritten_index_json_a_new_etag(hub_site):
    """The live page polls index.json with If-None-Match: a rewrite must not answer 304."""
    from rtofs_lib import atomic

    s = login(hub_site, "rttalice")
    url = f"{hub_site.url}/services/maps/days.json"
    atomic.write_json(hub_site.maps / "days.json", {"days": []})
    first = s.get(url)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-cache"
    etag = first.headers["ETag"]
    assert s.get(url, headers={"If-None-Match": etag}).status_code == 304
    atomic.write_json(hub_site.maps / "days.json", {"days": [{"date": "20260708"}]})
    again = s.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.json()["days"] == [{"date": "20260708"}]


def test_idle_culler_runs_with_the_configured_timeout(hub_site):
    admin = login(hub_site, "rttbob")
    r = admin.get(f"{hub_site.url}/hub/api/services", headers={"X-XSRFToken": xsrf(admin)})
    r.raise_for_status()
    culler = r.json()["idle-culler"]
    assert f"--timeout={hub_site.culler_timeout}" in culler["command"]
    assert culler["pid"] > 0
    os.kill(culler["pid"], 0)  # the process is alive


def test_hub_restart_keeps_user_servers_running(hub_site, alice_server):
    before = hub_site.slurm.squeue("rttalice", "%i %T")
    pid = server_pid("rttalice")
    hub_site.restart_hub()
    assert hub_site.slurm.squeue("rttalice", "%i %T") == before
    assert server_pid("rttalice") == pid
    r = server_api(alice_server, hub_site, "status")
    assert r.status_code == 200
    # and the hub still knows the server after its restart
    me = alice_server.get(
        f"{hub_site.url}/hub/api/user", headers={"X-XSRFToken": xsrf(alice_server)}
    )
    assert me.json()["servers"][""]["ready"] is True


# --- shared notebooks ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(hub_site):
    examples = hub_site.base / "examples-src"
    examples.mkdir()
    (examples / "01-sst.ipynb").write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5}')
    publish(examples, hub_site.shared, group="rtt-researchers")
    return hub_site.shared


def as_user(user: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", user, "--", "sh", "-c", command], capture_output=True, text=True
    )


def test_examples_are_readable_by_everyone_and_writable_by_nobody(published):
    nb = published / "examples" / "01-sst.ipynb"
    assert as_user("rttcarol", f"cat {nb}").returncode == 0
    assert as_user("rttalice", f"echo x >> {nb}").returncode != 0
    assert as_user("rttalice", f"touch {published}/examples/new.ipynb").returncode != 0


def test_collab_folder_is_group_writable_with_group_ownership(published):
    collab = published / "collab"
    assert as_user("rttalice", f"umask 002; echo hi > {collab}/notes.txt").returncode == 0
    import grp

    assert grp.getgrgid((collab / "notes.txt").stat().st_gid).gr_name == "rtt-researchers"
    assert as_user("rttbob", f"echo more >> {collab}/notes.txt").returncode == 0
    assert as_user("rttcarol", f"touch {collab}/intruder.txt").returncode != 0


def test_example_settings_file_documents_every_default():
    example = Path(__file__).resolve().parents[1] / "hub_config" / "settings.example.toml"
    assert hub_settings.load(example) == hub_settings.DEFAULTS
