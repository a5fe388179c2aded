"""The proxy's command line when it runs as its own user with copies of the hub's secrets.

The hub's state folder and TLS key are root's; the systemd unit copies the token and the
certificate into the proxy's private runtime folder and names them on the command line.
"""

from __future__ import annotations

import pytest

from rtofs_lib.errors import ConfigError
from rtofs_lib.hub import run_local, settings


@pytest.fixture
def hub_settings(tmp_path, monkeypatch):
    """Settings with TLS and a state folder; the proxy executable is any executable file."""
    monkeypatch.setenv("RTOFS_CHP", "/bin/true")
    path = tmp_path / "hub.toml"
    path.write_text(
        "[hub]\n"
        'bind_url = "https://0.0.0.0:8443/"\n'
        'hub_connect_url = "http://10.0.0.1:8081"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        'ssl_cert = "/etc/rtofs/tls/hub.crt"\n'
        'ssl_key = "/etc/rtofs/tls/hub.key"\n'
    )
    return settings.load(path)


@pytest.fixture
def token_copy(tmp_path):
    """A private copy of a proxy token, as the unit's ExecStartPre makes it."""
    path = tmp_path / "run" / "proxy_auth_token"
    path.parent.mkdir()
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o600)
    return path


def test_proxy_takes_its_token_from_the_given_file_not_the_state_folder(
    hub_settings, token_copy, tmp_path
):
    _, env = run_local.proxy_command(hub_settings, token_file=token_copy)
    assert env["CONFIGPROXY_AUTH_TOKEN"] == "ab" * 32
    assert not (tmp_path / "state").exists()


def test_proxy_serves_the_given_certificate_copies(hub_settings, token_copy, tmp_path):
    cert, key = tmp_path / "run" / "hub.crt", tmp_path / "run" / "hub.key"
    cmd, _ = run_local.proxy_command(hub_settings, token_copy, cert, key)
    assert cmd[cmd.index("--ssl-cert") + 1] == str(cert)
    assert cmd[cmd.index("--ssl-key") + 1] == str(key)


def test_proxy_refuses_a_token_file_others_can_read(hub_settings, token_copy):
    token_copy.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        run_local.proxy_command(hub_settings, token_file=token_copy)


def test_missing_token_file_says_where_the_token_is_made(hub_settings, tmp_path):
    with pytest.raises(ConfigError, match="state folder"):
        run_local.proxy_command(hub_settings, token_file=tmp_path / "nothing")
