"""RasterStack: a time stack of georeferenced grids, (time, band, y, x), read lazily.

The container keeps the values as an xarray DataArray (dask-backed when read from files, so a
stack larger than memory is never loaded whole), the CRS, the affine transform of the grid,
the nodata value of the source files and the units of each band. Missing values (nodata,
_FillValue, NaN) are NaN in ``data``; they are masked, never filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine

from stgeo_kd.errors import StgeoError


@dataclass
class RasterStack:
    """A (time, band, y, x) stack on one grid.

    Attributes:
        data: float32 DataArray with dims ``(time, band, y, x)``; NaN where missing. ``time``
            holds datetime64 values, ``band`` the variable names.
        crs: the grid's CRS (a ``rasterio.crs.CRS``).
        transform: affine transform of the grid (pixel corner to CRS coordinates).
        nodata: nodata value of the source files (used for outputs), or None.
        units: units per band name ("" when unknown).
        name: data set name for reports.
        sources: the file each frame came from (for error messages), one per time step.
    """

    data: xr.DataArray
    crs: object
    transform: Affine
    nodata: float | None = None
    units: dict[str, str] = field(default_factory=dict)
    name: str = "raster_stack"
    sources: list[str] = field(default_factory=list)

    def __post_init__(self):
        if tuple(self.data.dims) != ("time", "band", "y", "x"):
            raise StgeoError(f"A RasterStack needs dims (time, band, y, x), got {tuple(self.data.dims)}.")

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.data["time"].values)

    @property
    def bands(self) -> list[str]:
        return [str(b) for b in self.data["band"].values]

    @property
    def num_steps(self) -> int:
        return int(self.data.sizes["time"])

    @property
    def height(self) -> int:
        return int(self.data.sizes["y"])

    @property
    def width(self) -> int:
        return int(self.data.sizes["x"])

    @property
    def step(self) -> pd.Timedelta | None:
        """The most common time step between frames (None for a single frame)."""
        if self.num_steps < 2:
            return None
        return pd.Series(np.diff(self.times.values)).mode().iloc[0]

    @property
    def step_minutes(self) -> float | None:
        s = self.step
        return None if s is None else float(pd.Timedelta(s).total_seconds() / 60.0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the stack's CRS."""
        from rasterio.transform import array_bounds

        return tuple(array_bounds(self.height, self.width, self.transform))

    def nbytes(self) -> int:
        return int(np.prod([self.num_steps, len(self.bands), self.height, self.width]) * 4)

    def load(self) -> RasterStack:
        """The same stack with its values in memory (a NumPy-backed DataArray)."""
        return RasterStack(self.data.load(), self.crs, self.transform, self.nodata, dict(self.units), self.name,
                           list(self.sources))

    def read_window(self, times, row0: int, col0: int, height: int, width: int) -> np.ndarray:
        """Values of frames ``times`` (indices) in rows ``row0 .. row0+height`` and columns
        ``col0 .. col0+width``, float32 (len(times), bands, height, width), NaN outside the grid
        and where missing. Only the needed chunks are read."""
        times = np.atleast_1d(np.asarray(times, dtype=np.int64))
        out = np.full((len(times), len(self.bands), height, width), np.nan, dtype=np.float32)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + height, self.height), min(col0 + width, self.width)
        if r1 <= r0 or c1 <= c0:
            return out
        if self.data.chunks is None:  # in memory: plain NumPy indexing, no xarray overhead per patch
            part = self.data.values[times, :, r0:r1, c0:c1]
        else:
            part = self.data.isel(time=times, y=slice(r0, r1), x=slice(c0, c1)).values
        out[:, :, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = part
        return out
