"""JupyterHub configuration of the RTOFS platform.

Nothing to edit here: every site setting lives in the TOML settings file named by
``$RTOFS_HUB_SETTINGS`` (default ``/etc/rtofs/hub.toml``) and its drop-ins (``hub.d/*.toml``),
see ``settings.example.toml`` and ``README.md``. Start it with ``hub_config/run-local-hub``.
"""

import batchspawner  # noqa: F401  (registers the /hub/api/batchspawner handler, batchspawner>=1.3)

from rtofs_lib.hub.config import configure

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
configure(c)
