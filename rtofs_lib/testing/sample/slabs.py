"""The data of one sample file, slab by slab: the synthetic ocean on the file's window.

Each data variable is computed at full resolution once per file (surface), then level by
level for z-level products (temperature and salinity relax to a deep profile below the
mixed layer, currents decay with depth); NaN marks land and the sea floor, replaced by
``_FillValue`` in the slabs handed to the writer. Callers may override any variable.

Examples
--------
>>> data = FileData("prog", "20260708", "n024", grid=(66, 90))
>>> slab, rng = data.slab(data.vars[2], 0, 1)  # sst
>>> slab.shape, slab.dtype.name, bool(rng[0] < rng[1])
((1, 66, 90), 'float32', True)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import numpy as np

from rtofs_lib.fetch import names
from rtofs_lib.testing.sample.grid import SampleError, make_grid
from rtofs_lib.testing.sample.land import land_mask
from rtofs_lib.testing.sample.ocean import Ocean
from rtofs_lib.testing.sample.structure import DEPTHS, FILL_VALUE, VARS, Var, region_window

__all__ = ["FileData"]

# surface state keys behind each variable
_SOURCE = {
    "u_velocity": "u",
    "v_velocity": "v",
    "sst": "sst",
    "sss": "sss",
    "layer_density": "rho",
    "ssh": "ssh",
    "u_barotropic_velocity": "u",
    "v_barotropic_velocity": "v",
    "surface_boundary_layer_thickness": "sbl",
    "mixed_layer_thickness": "mld",
    "ice_coverage": "ice",
    "ice_temperature": "ice_t",
    "ice_thickness": "ice_thk",
    "ice_uvelocity": "ice_u",
    "ice_vvelocity": "ice_v",
    "temperature": "sst",
    "salinity": "sss",
    "u": "u",
    "v": "v",
}
_SCALE = {"u_barotropic_velocity": 0.3, "v_barotropic_velocity": 0.3}


def _finite_range(a: np.ndarray) -> np.ndarray:
    finite = a[~np.isnan(a)]
    if finite.size == 0:
        return np.zeros(2, dtype=np.float32)
    return np.array([finite.min(), finite.max()], dtype=np.float32)


class FileData:
    """The data of one file of ``product`` at ``step`` on a grid of ``grid = (ny, nx)``.

    Regional products cover their window of the grid (``rows``, ``cols``; ``ny``, ``nx``
    are the window's size, ``gny``, ``gnx`` the grid's). ``fields`` override variables by
    name (validated against the file's shape).
    """

    def __init__(
        self,
        product: str,
        date: str | dt.date,
        step: str,
        *,
        grid: tuple[int, int],
        seed: int = 0,
        fields: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.product, self.step, self.seed = product, step, seed
        self.family = names.family(product)
        self.cycle = names.parse_date(date)
        self.when = names.valid_time(self.cycle, step)
        kind, hours = names.parse_step(step)
        self.lead = hours if kind == "f" else 0
        self.gny, self.gnx = grid
        self.vars: tuple[Var, ...] = VARS[product]
        if self.family == "3dz_6hrly":
            self.rows, self.cols = region_window(product, *grid)
        else:
            self.rows, self.cols = slice(0, self.gny), slice(0, self.gnx)
        self.ny = self.rows.stop - self.rows.start
        self.nx = self.cols.stop - self.cols.start
        self.depths: tuple[int, ...] | None = DEPTHS[self.family]
        self.fields = self._check_fields(fields or {})
        self._ocean: Ocean | None = None
        self._memo: dict[str, np.ndarray] = {}

    def _check_fields(self, fields: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        known = {v.name: v for v in self.vars}
        out = {}
        for name, value in fields.items():
            if name not in known:
                raise SampleError(
                    f"field {name!r} is not a variable of {self.product} files; "
                    f"choose from {', '.join(known)}"
                )
            a = np.asarray(value, dtype=np.float32)
            want = [(self.ny, self.nx)]
            if self.depths:
                want.append((len(self.depths), self.ny, self.nx))
            elif known[name].layered:
                want.append((1, self.ny, self.nx))
            if a.shape not in want:
                raise SampleError(
                    f"field {name!r} has shape {a.shape}; {self.product} on this grid "
                    f"needs {' or '.join(str(w) for w in want)} (NaN marks land)"
                )
            out[name] = a
        return out

    def warm(self) -> None:
        """Fill the grid and land caches (before a second thread uses them)."""
        make_grid(self.gny, self.gnx)
        land_mask(self.gny, self.gnx)

    @property
    def ocean(self) -> Ocean:
        """The synthetic ocean at the file's valid time (made on first use)."""
        if self._ocean is None:
            self._ocean = Ocean(self.gny, self.gnx, self.when, self.lead, self.cycle, self.seed)
        return self._ocean

    def _rows_distinct(self) -> tuple[slice, bool]:
        """Rows to compute among the ny-1 distinct rows, and whether to add the fold copy."""
        if self.rows.stop == self.gny:
            return slice(self.rows.start, self.gny - 1), True
        return self.rows, False

    def _surface(self, var: Var) -> np.ndarray:
        """The 2-D surface data of ``var`` with NaN on land (float32, ny x nx)."""
        if var.name in self.fields and self.fields[var.name].ndim == 2:
            return self.fields[var.name]
        if var.name in self.fields:
            return self.fields[var.name][0]
        return self._compute(_SOURCE[var.name], _SCALE.get(var.name, 1.0))

    def _compute(self, key: str, scale: float = 1.0) -> np.ndarray:
        rows, fold = self._rows_distinct()
        a = self.ocean.field(key, rows, self.cols)
        if scale != 1.0:
            a *= np.float32(scale)
        if fold:
            a[-1] = 0.5 * (a[-1] + a[-1, ::-1])  # the fold row meets itself mirrored
            a = np.vstack([a, a[-1:]])
        a[land_mask(self.gny, self.gnx)[self.rows, self.cols]] = np.nan
        return a

    def _full(self, key: str) -> np.ndarray:
        """A full-resolution field of the window, NaN on land, computed once per file."""
        if key not in self._memo:
            if key == "lat":
                self._memo[key] = make_grid(self.gny, self.gnx)[0][self.rows, self.cols]
            else:
                self._memo[key] = self._compute(key)
        return self._memo[key]

    def _level(self, name: str, z: float, surface: np.ndarray) -> np.ndarray:
        """Data of ``name`` at depth ``z`` below the sea surface (before the sea floor)."""
        below = np.maximum(z - self._full("mld"), np.float32(0.0))
        if name == "temperature":
            deep = 0.8 + 3.5 * math.exp(-z / 900.0)
            deep = deep - 1.5 * np.exp(-(((self._full("lat") + 75.0) / 8.0) ** 2))
            return deep + (surface - deep) * np.exp(-below / self._full("thermo"))
        if name == "salinity":
            deep = 34.7 - 0.35 * math.exp(-(((z - 900.0) / 350.0) ** 2))
            return deep + (surface - deep) * np.exp(-below / np.float32(300.0))
        level = surface * np.float32(math.exp(-z / 500.0))
        if name == "u":
            euc = np.float32(0.9 * math.exp(-(((z - 110.0) / 50.0) ** 2)))
            level = level + euc * self._full("euc")
        return level

    def _level_slab(self, var: Var, k0: int, k1: int, surface: np.ndarray) -> np.ndarray:
        """Data of depth levels k0..k1 (NaN on land and below the sea floor)."""
        if var.name in self.fields:
            a = self.fields[var.name]
            return np.broadcast_to(a, (k1 - k0, *a.shape[-2:])) if a.ndim == 2 else a[k0:k1]
        floor = self._full("depth")
        out = np.empty((k1 - k0, self.ny, self.nx), dtype=np.float32)
        for k in range(k0, k1):
            z = float(self.depths[k])
            level = self._level(var.name, z, surface)
            level[z > floor] = np.nan
            out[k - k0] = level
        return out

    def slab(self, var: Var, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Levels ``k0:k1`` of ``var`` ready to write (fill on land) and, from level 0, its range.

        A 2-D variable is one slab ``(1, ny, nx)``; its surface is freed once written.
        """
        key = f"surface:{var.name}"
        if key not in self._memo:
            self._memo[key] = self._surface(var)
        if self.depths:
            slab = self._level_slab(var, k0, k1, self._memo[key])
        else:
            slab = self._memo.pop(key)[None]
        rng = _finite_range(slab[0]) if k0 == 0 else None
        return np.where(np.isnan(slab), FILL_VALUE, slab), rng
