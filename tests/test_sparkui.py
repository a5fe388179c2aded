"""A notebook's Spark UI through its user's Jupyter server, for real, and nowhere else.

A real ``jupyter server`` (base URL ``/user/tester/`` as under JupyterHub, token auth, the
extension enabled by the environment's ``jupyter_server_config.d``) and a real Spark driver
started by the kernel's :class:`LazySpark` in a process of its own, with the environment a
hub's single-user server gives its kernels. Pages are fetched through
``/user/tester/spark-ui/<port>/`` as a browser would, and the UI's own port is tried
directly, with and without tokens.
"""

from __future__ import annotations

import html as html_text
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from rtofs_lib.errors import ConfigError
from rtofs_lib.notebook import sparkui
from rtofs_lib.testing.cluster import free_port

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(300)]

PREFIX = "/user/tester/"

#: The driver: the kernel's ``spark`` runs a job with a shuffle (two stages), reports its UI,
#: then waits until its stdin closes.
DRIVER = """
import json, sys
from rtofs_lib.notebook.kernel import LazySpark
spark = LazySpark(master="local[1]")
spark.range(1000).selectExpr("id % 3 AS k").groupBy("k").count().collect()
sc = spark.sparkContext
print(json.dumps({"web_url": sc.uiWebUrl, "ui_url": spark.ui_url, "app": sc.applicationId,
                  "repr": repr(spark)}), flush=True)
sys.stdin.read()
spark.stop()
"""


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> dict[str, str]:
    """The researcher's environment: her own data folder (the key) and Spark scratch."""
    base = tmp_path_factory.mktemp("sparkui-user")
    return {
        **os.environ,
        "XDG_DATA_HOME": str(base / "data"),
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(base / "jupyter-runtime"),
        "JUPYTER_DATA_DIR": str(base / "jupyter-data"),
        "RTOFS_CONFIG": "",
        "RTOFS_HOME": str(base / "rtofs"),
        "RTOFS_SPARK_LOCAL_DIR": str(base / "spark-local"),
    }


@pytest.fixture(scope="module")
def server(user_env, tmp_path_factory):
    """The user's Jupyter server; yields ``(origin, session)``, the session logged in."""
    log_path = tmp_path_factory.mktemp("sparkui-server") / "server.log"
    port, token = free_port(), secrets.token_hex(16)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
                f"--port={port}", f"--ServerApp.base_url={PREFIX}",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={log_path.parent}",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            env=user_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    origin = f"http://127.0.0.1:{port}"
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the Jupyter server exited: {log_path.read_text()}")
            return s.get(f"{origin}{PREFIX}api/status").ok

        wait_until(up, 60, f"the Jupyter server (log {log_path})")
        yield origin, s
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def start_driver(env: dict[str, str]) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        proc.wait(timeout=30)
        pytest.fail(f"the Spark driver exited with {proc.returncode} before reporting its UI")
    return proc, json.loads(line)


def stop_driver(proc: subprocess.Popen) -> None:
    proc.stdin.close()  # type: ignore[union-attr]
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def driver(user_env):
    """A kernel's Spark driver inside a hub's single-user server; yields what it reported."""
    proc, info = start_driver({**user_env, "JUPYTERHUB_SERVICE_PREFIX": PREFIX})
    info["port"] = urlsplit(info["web_url"]).port
    try:
        yield info
    finally:
        stop_driver(proc)


@dataclass
class Route:
    """The route of a UI on the user's server, and the server's logged-in session."""

    origin: str
    path: str  # /user/tester/spark-ui/<port>
    session: requests.Session

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET ``path``: relative to the UI's root, or absolute on the server (``/user/...``)."""
        url = self.origin + (path if path.startswith("/") else f"{self.path}/{path}")
        return self.session.get(url, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def ui(server, driver) -> Route:
    """The driver's UI through the user's server."""
    origin, s = server
    return Route(origin, f"{PREFIX}spark-ui/{driver['port']}", s)


def direct(driver: dict, path: str, key: bytes | None, **token_args) -> int:
    """Status of a request made to the UI's own port, with a token of ``key`` if given."""
    headers = {"Authorization": f"Bearer {sparkui.token(key, **token_args)}"} if key else {}
    url = f"http://127.0.0.1:{driver['port']}/{path}"
    return requests.get(url, headers=headers, timeout=30).status_code


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def links(html: str) -> list[str]:
    """Every ``href`` and ``src`` of a page that is a path (no anchors, no other sites)."""
    found = re.findall(r'(?:href|src)="([^"#][^"]*)"', html)
    return [html_text.unescape(u) for u in found if u.startswith("/")]


def ui_root(html: str) -> str:
    """The root the page's scripts build their API calls on (``setUIRoot('...')``)."""
    return re.search(r"setUIRoot\('([^']*)'\)", html).group(1)


def user_key(env: dict[str, str]) -> bytes:
    return bytes.fromhex((Path(env["XDG_DATA_HOME"]) / sparkui.KEY_NAME).read_text())


# --- the key ---------------------------------------------------------------------------------


def test_key_is_made_once_in_a_file_only_the_user_reads(tmp_path):
    path = tmp_path / "rtofs" / "spark-ui.key"
    key = sparkui.ui_key(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert sparkui.ui_key(path) == key


def test_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "spark-ui.key"
    sparkui.ui_key(path)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=r"spark-ui\.key: secret file has mode 0640.*chmod 600"):
        sparkui.ui_key(path)


def test_outside_a_jupyter_server_the_driver_gets_no_ui_properties(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert sparkui.driver_ui_conf() == ({}, {})


# --- the UI's own port -----------------------------------------------------------------------


def test_ui_port_refuses_a_request_without_a_token(driver):
    assert direct(driver, "jobs/", None) == 403


def test_ui_port_refuses_a_token_signed_with_another_key(driver):
    assert direct(driver, "jobs/", secrets.token_bytes(32)) == 403


def test_ui_port_refuses_an_expired_token(driver, user_env):
    assert direct(driver, "jobs/", user_key(user_env), now=time.time() - 3600) == 403


def test_ui_port_answers_a_fresh_token_of_the_users_key(driver, user_env):
    assert direct(driver, "jobs/", user_key(user_env)) == 200


def test_ui_key_is_on_no_command_line(driver, user_env):
    key = sparkui.ui_conf(1, prefix=None, key=user_key(user_env))[1].popitem()[1].encode()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        assert key not in cmdline, f"the UI key is on the command line of process {proc.name}"


# --- through the user's server ---------------------------------------------------------------


def test_kernel_shows_the_ui_at_its_route(driver):
    route = f"{PREFIX}spark-ui/{driver['port']}/"
    assert driver["ui_url"] == route
    assert f"UI {route}" in driver["repr"]


def test_route_sends_a_visitor_without_a_session_to_the_login_page(server, driver):
    origin, _ = server
    r = requests.get(
        f"{origin}{PREFIX}spark-ui/{driver['port']}/jobs/", allow_redirects=False, timeout=30
    )
    assert r.status_code == 302
    assert urlsplit(r.headers["Location"]).path == f"{PREFIX}login"


def test_route_without_a_path_redirects_to_the_jobs_page_under_the_route(ui):
    for path in ("", "jobs"):
        r = ui.get(path, allow_redirects=False)
        assert r.status_code in (301, 302)
        assert urlsplit(urljoin(r.url, r.headers["Location"])).path == f"{ui.path}/jobs/"


def test_jobs_page_and_its_links_stay_under_the_route(ui):
    page = ui.get("jobs/")
    assert page.status_code == 200
    assert ui_root(page.text) == ui.path
    paths = links(page.text)
    assert paths and all(p.startswith(ui.path + "/") for p in paths), paths
    job = next(p for p in paths if "/jobs/job/?id=" in p)
    static = next(p for p in paths if p.endswith(".js"))
    for path in (job, static):
        assert ui.get(path).status_code == 200, path


def test_stage_page_and_the_data_its_scripts_load_come_through_the_route(ui, driver):
    stages = ui.get("stages/")
    assert stages.status_code == 200
    stage = next(p for p in links(stages.text) if "/stages/stage/?id=" in p)
    page = ui.get(stage)
    assert page.status_code == 200
    assert all(p.startswith(ui.path + "/") for p in links(page.text))
    stage_id, attempt = re.search(r"id=(\d+)&attempt=(\d+)", stage).groups()
    api = f"{ui_root(page.text)}/api/v1/applications/{driver['app']}/stages/{stage_id}/{attempt}"
    assert ui.get(api).json()["stageId"] == int(stage_id)
    assert ui.get(f"{api}/taskSummary?quantiles=0.5").status_code == 200
    assert ui.get(f"{ui_root(page.text)}/static/stagespage-template.html").status_code == 200


def test_executors_page_and_the_data_its_scripts_load_come_through_the_route(ui, driver):
    page = ui.get("executors/")
    assert page.status_code == 200
    root = ui_root(page.text)
    assert root == ui.path
    # what executorspage.js asks for: the application, its executors, the page's template
    (app,) = ui.get(f"{root}/api/v1/applications").json()
    assert app["id"] == driver["app"]
    executors = ui.get(f"{root}/api/v1/applications/{app['id']}/allexecutors").json()
    assert [e["id"] for e in executors] == ["driver"]
    assert ui.get(f"{root}/static/executorspage-template.html").status_code == 200


def test_executors_stage_and_job_pages_work_in_a_browser(chromium, server, ui):
    """Chromium follows the pages' links and runs their scripts; nothing fails or leaves."""
    origin, s = server
    token = s.headers["Authorization"].split()[1]
    context = chromium.new_context()
    page = context.new_page()
    failures, requested = [], []
    page.on("requestfailed", lambda r: failures.append(f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and failures.append(f"{r.url}: {r.status}"))
    page.on("request", lambda r: requested.append(r.url))
    try:
        page.goto(f"{origin}{PREFIX}api/status?token={token}")  # logs in (cookie)
        page.goto(f"{origin}{ui.path}/")
        assert urlsplit(page.url).path == f"{ui.path}/jobs/"
        page.click("a[href*='/jobs/job/?id=']")
        page.click("a[href*='/stages/stage/?id=']")
        page.wait_for_selector("#active-tasks-table tbody tr", timeout=30_000)
        page.click("a[href$='/executors/']")
        page.wait_for_selector("#active-executors-table tbody tr", timeout=30_000)
        assert "driver" in page.inner_text("#active-executors-table")
    finally:
        context.close()
    assert failures == []
    outside = [u for u in requested if not u.startswith(f"{origin}{ui.path}/")]
    assert outside == [f"{origin}{PREFIX}api/status?token={token}"]


def test_route_refuses_a_port_where_no_ui_listens(server):
    origin, s = server
    r = s.get(f"{origin}{PREFIX}spark-ui/{free_port()}/jobs/", timeout=30)
    assert r.status_code == 404
    assert "No Spark UI of yours listens" in r.text


def test_route_sends_nothing_to_another_users_server_on_its_port(server):
    """A server of user nobody on a port: 404, and it never sees a request (nor a token)."""
    if os.geteuid() != 0:
        pytest.fail("this test starts a server as user nobody: run it as root")
    origin, s = server
    port = free_port()
    other = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port), 30, "the other user's server")
        r = s.get(f"{origin}{PREFIX}spark-ui/{port}/jobs/", timeout=30)
    finally:
        other.terminate()
        log = other.communicate(timeout=30)[0]
    assert r.status_code == 404
    assert "GET" not in log


def test_without_the_servers_prefix_the_ui_follows_the_routes_header(server, user_env):
    """A kernel that does not know the server's base URL: Spark's X-Forwarded-Context."""
    env = {k: v for k, v in user_env.items() if k != "JUPYTERHUB_SERVICE_PREFIX"}
    proc, info = start_driver({**env, "JPY_SESSION_NAME": "notebook.ipynb"})
    try:
        origin, s = server
        route = Route(origin, f"{PREFIX}spark-ui/{urlsplit(info['web_url']).port}", s)
        page = route.get("jobs/")
        assert page.status_code == 200
        assert ui_root(page.text) == route.path
        assert all(p.startswith(route.path + "/") for p in links(page.text))
    finally:
        stop_driver(proc)
