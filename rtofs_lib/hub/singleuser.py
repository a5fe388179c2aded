"""``rtofs-singleuser``: JupyterHub's single-user server, started in half the CPU time.

With twenty researchers logging in at 9:00 on a small hub, the CPU of the servers' start is
what they wait for. Two import-time costs of JupyterLab's stack do nothing for them:

* ``jupyter_events`` builds ``jsonschema``'s format checker, which imports ``rfc3987_syntax``;
  that module compiles ~35 Lark Earley grammars at import: ~1.2 s of CPU here, for IRI
  formats no Jupyter schema uses (jupyter_server#1559, jsonschema#1428). A stand-in module
  whose ``is_valid_syntax`` imports the real one on first use removes it; IRI validation
  gives the same answers.
* ``jupyterlab.labapp`` asks ``node yarn.js config`` for the npm registry at import (~0.3 s
  of CPU in a Node process) when ``node`` is on ``PATH`` (the single-host install, where
  the proxy's Node is). The registry only matters for installing extensions, which the
  shared platform does not let researchers do; the import runs with Node's folders left
  out of ``PATH`` (restored right after).

Then :func:`jupyterhub.singleuser.main` runs. ``batchspawner-singleuser rtofs-singleuser``
works the same (it runs this script in its own process).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_NAME = "rfc3987_syntax"


def _real() -> types.ModuleType:
    """Import the real ``rfc3987_syntax`` in place of the stand-in; return it."""
    current = sys.modules.get(_NAME)
    if current is not None and not getattr(current, "_rtofs_lazy", False):
        return current
    sys.modules.pop(_NAME, None)
    try:
        return importlib.import_module(_NAME)
    except BaseException:
        if current is not None:
            sys.modules[_NAME] = current
        raise


def is_valid_syntax(*args: Any, **kwargs: Any) -> bool:
    """``rfc3987_syntax.is_valid_syntax``, imported on first call."""
    return _real().is_valid_syntax(*args, **kwargs)


def install_lazy_rfc3987_syntax() -> bool:
    """Put the stand-in module in ``sys.modules``; False if nothing to do.

    Nothing is done when ``rfc3987_syntax`` is not installed (``jsonschema`` then skips
    the IRI formats itself) or is already imported.
    """
    if _NAME in sys.modules or importlib.util.find_spec(_NAME) is None:
        return False
    stand_in = types.ModuleType(_NAME, "Lazy stand-in for rfc3987_syntax (rtofs-singleuser).")
    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stand_in._rtofs_lazy = True  # type: ignore[attr-defined]
    sys.modules[_NAME] = stand_in
    return True


@contextlib.contextmanager
def _without_node_on_path() -> Iterator[None]:
    """Leave the folders holding ``node``/``nodejs`` out of ``PATH`` for a while."""
    path = os.environ.get("PATH")
    if path is None:
        yield
        return
    kept = [
        d for d in path.split(os.pathsep)
        if d and not any((Path(d) / exe).exists() for exe in ("node", "nodejs"))
    ]  # fmt: skip
    os.environ["PATH"] = os.pathsep.join(kept) or "/nonexistent"  # "" means the default
    try:
        yield
    finally:
        os.environ["PATH"] = path


def prepare() -> None:
    """Install the ``rfc3987_syntax`` stand-in and import JupyterLab without its Node probe."""
    install_lazy_rfc3987_syntax()
    # (ImportError: a server without JupyterLab)
    with _without_node_on_path(), contextlib.suppress(ImportError):
        import jupyterlab.labapp  # noqa: F401


def main() -> int | None:
    """Run ``jupyterhub-singleuser`` after :func:`prepare`."""
    prepare()
    from jupyterhub.singleuser import main as singleuser_main

    return singleuser_main()


if __name__ == "__main__":
    sys.exit(main())
