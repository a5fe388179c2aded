"""Reading files: open a file as xarray, fast field reads, derived fields, the grid, regridding."""

import os

# Read-only archive access on Lustre: HDF5's advisory locks fail or serialise there.
# HDF5 reads the variable at every file open, so setting it on import is early enough.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
