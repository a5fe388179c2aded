"""Publish the shared notebook folders of the hub (run by an admin or Ansible, as root).

Under the shared root it makes:

- ``examples/``: a copy of the example notebooks, owned by root, readable by everyone and
  writable by nobody else (users copy a notebook to their home to change it);
- ``collab/``: a collaboration folder owned by ``root:<researchers>``, mode ``2775``
  (setgid, so new files belong to the group), with a default umask hint in its README.

Each user's server links ``~/shared`` to the shared root. Re-running replaces ``examples/``
atomically and leaves ``collab/`` contents alone::

    python -m rtofs_lib.hub.publish --examples example_notebooks --root /srv/rtofs/notebooks
"""

from __future__ import annotations

import argparse
import grp
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from rtofs_lib import atomic
from rtofs_lib.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
COLLAB_README = """Collaboration folder: everyone in the '{group}' group can add and edit
files here. New files belong to the group (setgid folder). Keep them group-writable: umask 002.
"""


def publish(examples: str | Path, root: str | Path, group: str = "researchers") -> Path:
    """Publish ``examples`` read-only and make the group-writable collaboration folder.

    Parameters
    ----------
    examples
        Folder of example notebooks to copy (sub-folders included; hidden files skipped).
    root
        The shared root (``shared.root`` in the hub settings), made with mode 0755.
    group
        The researchers' Unix group that owns ``collab/``.

    Returns
    -------
    Path
        The published ``examples/`` folder.

    Raises
    ------
    ConfigError
        ``examples`` is not a folder or ``group`` does not exist.
    """
    examples, root = Path(examples), Path(root)
    if not examples.is_dir():
        raise ConfigError(f"{examples}: example notebook folder not found (--examples)")
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"group {group!r} does not exist; create it (groupadd {group})") from None
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)

    staging = atomic.temporary_path(root / "examples")
    shutil.copytree(examples, staging, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    for dirpath, _dirs, filenames in os.walk(staging):
        Path(dirpath).chmod(0o755)
        for name in filenames:
            (Path(dirpath) / name).chmod(0o444)
    target = atomic.replace_tree(staging, root / "examples")

    collab = root / "collab"
    collab.mkdir(exist_ok=True)
    os.chown(collab, 0 if os.geteuid() == 0 else -1, gid)
    collab.chmod(0o2775)
    readme = collab / "README.txt"
    if not readme.exists():
        atomic.write_text(readme, COLLAB_README.format(group=group))
        os.chown(readme, -1, gid)
        readme.chmod(0o664)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: publish the example notebooks and the collaboration folder."""
    parser = argparse.ArgumentParser(description="Publish the hub's shared notebook folders.")
    parser.add_argument("--examples", type=Path, help="default: shared.examples setting")
    parser.add_argument("--root", type=Path, help="shared root (default: shared.root setting)")
    parser.add_argument("--group", help="researchers' group (default: groups.users setting)")
    args = parser.parse_args(argv)
    if None in (args.root, args.group, args.examples):
        from rtofs_lib.hub import settings

        s = settings.load()
        args.root = args.root or Path(s["shared"]["root"])
        args.group = args.group or s["groups"]["users"]
        args.examples = args.examples or Path(s["shared"]["examples"] or REPO / "example_notebooks")
    target = publish(args.examples, args.root, args.group)
    print(f"published {target} and {Path(args.root) / 'collab'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
