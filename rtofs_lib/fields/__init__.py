"""Reading files: open a file as xarray, fast field reads, derived fields, the grid, regridding."""
