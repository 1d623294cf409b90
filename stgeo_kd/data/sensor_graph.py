"""SensorGraph: readings on a graph of sensors, with their locations and the missing mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from stgeo_kd.errors import StgeoError

if TYPE_CHECKING:  # heavy imports only for type checkers
    import geopandas as gpd
    from torch_geometric.data import Data


@dataclass
class SensorGraph:
    """Readings of N sensors over T time steps, on a weighted directed sensor graph.

    Attributes:
        values: ``xarray.DataArray`` with dims ``(time, node)``, float32, in the data's units.
            Missing readings are NaN; ``mask`` tells which are real. Coordinates: ``time``
            (datetime64, regular steps) and ``node`` (sensor ids as strings).
        edge_index: int64 array (2, E); row 0 = source node position, row 1 = target.
        edge_weight: float32 array (E,), in (0, 1].
        nodes: GeoDataFrame with one point per sensor, in the user's CRS, rows in ``node`` order,
            with at least a ``sensor_id`` column.
        roads: the road lines used to build the graph (user's CRS), or None.
        name: a short dataset name used in reports.
        units: units of ``values`` (e.g. ``"km/h"``); informational.
    """

    values: xr.DataArray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    nodes: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame | None = None
    name: str = "sensor_graph"
    units: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.dims != ("time", "node"):
            raise StgeoError(f"SensorGraph values must have dims (time, node), got {self.values.dims}.")
        if not (np.issubdtype(self.values.dtype, np.number) or self.values.dtype == bool):
            raise StgeoError(f"SensorGraph values must be numbers (NaN where missing), got dtype {self.values.dtype}.")
        times = self.values["time"].values if "time" in self.values.coords else None
        if times is None or not np.issubdtype(times.dtype, np.datetime64):
            raise StgeoError("SensorGraph values need a 'time' coordinate of date-times (datetime64).")
        if len(times) > 1 and not (np.diff(times) > np.timedelta64(0)).all():
            raise StgeoError("SensorGraph time stamps must be strictly increasing: sorted, without duplicates or NaT.")
        n = self.values.sizes["node"]
        if len(self.nodes) != n:
            raise StgeoError(f"SensorGraph has {n} nodes in values but {len(self.nodes)} sensor locations.")
        self.edge_index = np.asarray(self.edge_index, dtype=np.int64).reshape(2, -1)
        self.edge_weight = np.asarray(self.edge_weight, dtype=np.float32).reshape(-1)
        if self.edge_index.shape[1] != self.edge_weight.shape[0]:
            raise StgeoError("edge_index and edge_weight disagree on the number of edges.")
        if self.edge_index.size and (self.edge_index.min() < 0 or self.edge_index.max() >= n):
            raise StgeoError(f"edge_index refers to nodes outside 0..{n - 1}.")

    @property
    def num_nodes(self) -> int:
        return int(self.values.sizes["node"])

    @property
    def num_steps(self) -> int:
        return int(self.values.sizes["time"])

    @property
    def sensor_ids(self) -> list[str]:
        return [str(s) for s in self.values["node"].values]

    @property
    def mask(self) -> xr.DataArray:
        """Boolean (time, node): True where a real reading exists."""
        return self.values.notnull()

    @property
    def step_minutes(self) -> float:
        """Length of one time step in minutes (from the first two time stamps)."""
        t = self.values["time"].values
        if len(t) < 2:
            raise StgeoError("SensorGraph needs at least two time steps to know the step length.")
        return float((t[1] - t[0]) / np.timedelta64(1, "m"))

    @property
    def crs(self) -> Any:
        return self.nodes.crs

    def adjacency(self) -> np.ndarray:
        """Dense (N, N) float32 weighted adjacency, row = source, column = target, no self-loops."""
        a = np.zeros((self.num_nodes, self.num_nodes), dtype=np.float32)
        a[self.edge_index[0], self.edge_index[1]] = self.edge_weight
        return a

    def to_pyg(self) -> Data:
        """The graph as a PyTorch Geometric ``Data`` object.

        Shapes:
            x: (N, T) float32 readings with NaN replaced by 0; ``mask``: (N, T) bool;
            edge_index: (2, E); edge_weight: (E,); pos: (N, 2) point coordinates in the nodes' CRS.
        """
        import torch
        from torch_geometric.data import Data

        v = self.values.values.T.astype(np.float32)
        mask = ~np.isnan(v)
        pos = np.column_stack([self.nodes.geometry.x.to_numpy(), self.nodes.geometry.y.to_numpy()])
        return Data(
            x=torch.from_numpy(np.where(mask, v, 0.0).astype(np.float32)),
            mask=torch.from_numpy(mask),
            edge_index=torch.from_numpy(self.edge_index),
            edge_weight=torch.from_numpy(self.edge_weight),
            pos=torch.from_numpy(pos.astype(np.float32)),
            num_nodes=self.num_nodes,
        )

    def summary(self) -> dict[str, Any]:
        """Counts for reports: nodes, time steps, step length, missing fraction, edges."""
        return {
            "name": self.name,
            "nodes": self.num_nodes,
            "timesteps": self.num_steps,
            "step_minutes": self.step_minutes,
            "edges": int(self.edge_index.shape[1]),
            "missing_fraction": float(1.0 - self.mask.values.mean()),
            "start": str(self.values["time"].values[0])[:19],
            "end": str(self.values["time"].values[-1])[:19],
            "units": self.units,
        }
