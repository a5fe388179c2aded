"""The hub's secrets: a cookie secret and the proxy's auth token, each in a 0600 file.

Both are made on first start in the hub's state folder (local disk, mode 0700) and never have a
default value (:func:`ensure_secret` also keeps each researcher's Spark UI key,
:mod:`rtofs_lib.notebook.sparkui`). A file that other users can read or write, or that belongs
to another user, is refused with an error that says how to fix it.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from rtofs_lib.errors import ConfigError

COOKIE_SECRET = "jupyterhub_cookie_secret"
PROXY_TOKEN = "proxy_auth_token"


def ensure_secret(path: str | Path, nbytes: int = 32) -> str:
    """Return the hex secret stored in ``path``, creating it (mode 0600) when missing.

    Parameters
    ----------
    path
        The secret file; its folder is created with mode 0700 when missing.
    nbytes
        Random bytes in a new secret (written as ``2 * nbytes`` hex digits).

    Raises
    ------
    ConfigError
        The file is readable or writable by group or others, belongs to another user, or is
        empty or not hex.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(nbytes) + "\n")
        try:  # a hard link is atomic and never replaces a secret another process just made
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    check_private(path)
    text = path.read_text().strip()
    try:
        bytes.fromhex(text)
    except ValueError:
        text = ""
    if not text:
        raise ConfigError(f"{path}: not a hex secret; delete it and a new one is made on next use")
    return text


def check_private(path: str | Path) -> None:
    """Raise :class:`ConfigError` unless only the current user can read and write ``path``."""
    path = Path(path)
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: secret file has mode {mode:04o} (readable or writable by other users); "
            f"refusing to use it. Run: chmod 600 {path} (and rotate the secret if it leaked)"
        )
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"{path}: secret file belongs to uid {st.st_uid}, not to the user reading it "
            f"(uid {os.geteuid()}); chown it to that user"
        )


def hub_secrets(state_dir: str | Path) -> tuple[str, str]:
    """Return ``(cookie_secret_hex, proxy_token)`` from ``state_dir``, making them if needed."""
    state = Path(state_dir)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ensure_secret(state / COOKIE_SECRET), ensure_secret(state / PROXY_TOKEN)
