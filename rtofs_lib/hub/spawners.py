"""Spawn-time resource profiles, and the small spawner hooks of the hub.

Users pick a profile NAME on the spawn form (or send ``{"profile": name}`` to the REST API);
the resources come only from the admin's ``[profiles.<name>]`` settings. Anything else in the
form or the API request (an extra field, an ``#SBATCH`` line, an unknown name) is refused with
HTTP 400 before a job is submitted.
"""

from __future__ import annotations

import html
import os
import pwd
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtofs_lib.hub.settings import profiles as enabled_profiles

#: Form fields JupyterHub itself adds to the spawn form's POST body.
_FORM_HOUSEKEEPING = {"_xsrf"}


def default_exec_prefix() -> str:
    """Return the prefix that runs Slurm commands as the user (``{username}`` is filled in)."""
    if os.geteuid() == 0:  # the job's PATH has no sbin: name runuser by its full path
        return f"{shutil.which('runuser') or '/usr/sbin/runuser'} -u {{username}} --"
    return "sudo -E -u {username}"


def describe(name: str, p: dict[str, Any]) -> str:
    """Return a one-line description of profile ``p`` for the spawn form."""
    nodes = p.get("nodes", 1)
    where = f" on each of {nodes} nodes" if nodes > 1 else ""
    text = f"{name}: {p['cpus']} CPU, {p['memory']} memory{where}, {p['runtime']}"
    return f"{text} — {p['description']}" if p.get("description") else text


def options_form_html(profiles: dict[str, dict[str, Any]], default: str) -> str:
    """Return the spawn form: one radio button per profile, ``default`` checked."""
    rows = []
    for name, p in profiles.items():
        checked = " checked" if name == default else ""
        rows.append(
            f'<div class="radio"><label><input type="radio" name="profile" '
            f'value="{html.escape(name)}"{checked}> {html.escape(describe(name, p))}</label></div>'
        )
    return "<p>Choose the resources of your server:</p>\n" + "\n".join(rows)


def parse_form(formdata: dict[str, list[str]], profiles: dict[str, dict]) -> dict[str, str]:
    """Return ``{"profile": name}`` from the spawn form's data, or raise HTTP 400.

    Only one ``profile`` field naming an admin-defined profile is accepted.
    """
    from tornado.web import HTTPError

    extra = sorted(set(formdata) - {"profile"} - _FORM_HOUSEKEEPING)
    if extra:
        raise HTTPError(400, f"Unexpected form fields {extra}: only a profile can be chosen")
    values = formdata.get("profile") or []
    if len(values) != 1:
        raise HTTPError(400, "Choose exactly one profile")
    return {"profile": check_profile_name(values[0], profiles)}


def check_profile_name(name: object, profiles: dict[str, dict]) -> str:
    """Return ``name`` if it is one of ``profiles``, else raise HTTP 400."""
    from tornado.web import HTTPError

    if not isinstance(name, str) or name not in profiles:
        shown = repr(name)[:60]
        raise HTTPError(400, f"Unknown profile {shown}; choose one of: {', '.join(profiles)}")
    return name


def apply_profile(spawner: Any, user_options: dict[str, Any], profiles: dict, default: str):
    """Set the spawner's resources from the chosen profile (JupyterHub's apply_user_options).

    ``user_options`` must be empty (the default profile) or exactly ``{"profile": name}``.
    """
    from tornado.web import HTTPError

    options = dict(user_options or {})
    extra = sorted(set(options) - {"profile"})
    if extra:
        raise HTTPError(400, f"Unexpected options {extra}: only a profile can be chosen")
    name = check_profile_name(options.get("profile", default), profiles)
    p = profiles[name]
    if hasattr(spawner, "req_nprocs"):  # batchspawner
        spawner.req_nprocs = str(p["cpus"])
        spawner.req_memory = p["memory"]
        spawner.req_runtime = p["runtime"]
        # cpus and memory on each node; the server runs on the first, the researcher's own
        # Spark workers on all of them (rtofs_lib.jobs.personal)
        nodes = p.get("nodes", 1)
        spawner.req_options = f"--nodes={nodes} --ntasks-per-node=1" if nodes > 1 else ""
    else:
        spawner.cpu_limit = float(p["cpus"])
        spawner.mem_limit = p["memory"]
    spawner.log.info("%s: profile %s (%s)", spawner._log_name, name, describe(name, p))


def configure_profiles(c: Any, s: dict[str, Any]) -> None:
    """Set the spawn form and the profile hooks on traitlets config ``c`` from settings ``s``."""
    profiles = enabled_profiles(s)
    default = s["spawner"]["default_profile"]
    form = options_form_html(profiles, default)
    c.Spawner.options_form = form
    c.Spawner.options_from_form = lambda formdata: parse_form(formdata, profiles)
    c.Spawner.apply_user_options = lambda spawner, opts: apply_profile(
        spawner, opts, profiles, default
    )


def shared_link_prologue(shared_root: str) -> str:
    """Return batch-script lines that link ``~/shared`` to the shared notebook folder."""
    root = shlex.quote(shared_root)
    return f'if [ -d {root} ] && [ ! -e "$HOME/shared" ]; then ln -s {root} "$HOME/shared"; fi'


def shared_link_hook(shared_root: str) -> Callable[[Any], None]:
    """Return a pre-spawn hook that links ``~/shared`` to the shared folder (local spawner)."""

    def hook(spawner: Any) -> None:
        if not Path(shared_root).is_dir():
            return
        user = pwd.getpwnam(spawner.user.name)
        link = Path(user.pw_dir) / "shared"
        if link.parent.is_dir() and not link.exists() and not link.is_symlink():
            link.symlink_to(shared_root)
            os.lchown(link, user.pw_uid, user.pw_gid)

    return hook
