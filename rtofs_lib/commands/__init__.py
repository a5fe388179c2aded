"""Sub-commands of the ``rtofs`` CLI, one light module each (see :mod:`rtofs_lib.cli`)."""
