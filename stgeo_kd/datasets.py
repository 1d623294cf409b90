"""Loaders for public benchmark data sets held as local copies (no download at run time).

Each loader reads the files of a folder laid out as the original distribution and returns a
:class:`~stgeo_kd.data.sensor_graph.SensorGraph`, ready for :func:`stgeo_kd.run` (pass it as
``graph=``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.errors import StgeoError


def chickenpox_hungary(folder: str | Path) -> SensorGraph:
    """Weekly chickenpox cases in Hungary's 20 counties, 2005-2014 (Rozemberczki et al.,
    CIKM 2021, "Chickenpox cases in Hungary: a benchmark dataset for spatiotemporal signal
    processing with graph neural networks"; the UCI "Hungarian Chickenpox Cases" table).

    Reads ``hungary_chickenpox.csv`` (``Date`` dd/mm/yyyy + one column of raw counts per
    county; a UTF-8 BOM is allowed) and the county adjacency ``edges`` of ``chickenpox.json``
    (PyTorch Geometric Temporal's file, whose ``node_ids`` map county names to its node
    numbers). Zeros are true zero counts, not missing values. No coordinates are shipped, so
    the node table has empty geometries (maps are skipped).

    Raises:
        StgeoError: a missing file, or counties that do not match between the two files.
    """
    import geopandas as gpd

    folder = Path(folder)
    csv, graph_json = folder / "hungary_chickenpox.csv", folder / "chickenpox.json"
    for p in (csv, graph_json):
        if not p.is_file():
            raise StgeoError(f"{p} is missing; the chickenpox folder needs hungary_chickenpox.csv and chickenpox.json.")
    table = pd.read_csv(csv, encoding="utf-8-sig")
    if "Date" not in table.columns:
        raise StgeoError(f"{csv} has no 'Date' column (columns: {list(table.columns)[:5]} ...).")
    times = pd.to_datetime(table.pop("Date"), format="%d/%m/%Y")
    spec = json.loads(graph_json.read_text(encoding="utf-8"))
    node_ids: dict[str, int] = spec["node_ids"]
    counties = list(table.columns)
    if set(counties) != set(node_ids):
        raise StgeoError(f"Counties in {csv} and node_ids in {graph_json} differ: {sorted(set(counties) ^ set(node_ids))}.")
    position = {c: i for i, c in enumerate(counties)}
    # re-number the JSON's edges into the CSV's column order; self-loops are dropped (the
    # models add their own)
    to_csv = {v: position[k] for k, v in node_ids.items()}
    edges = np.array([(to_csv[a], to_csv[b]) for a, b in spec["edges"] if a != b], dtype=np.int64).T
    values = xr.DataArray(
        table.to_numpy(dtype=np.float32),
        dims=("time", "node"),
        coords={"time": times.to_numpy(), "node": np.array(counties, dtype=object)},
    )
    nodes = gpd.GeoDataFrame({"sensor_id": counties, "name": [c.title() for c in counties]},
                             geometry=gpd.GeoSeries([None] * len(counties)))
    return SensorGraph(
        values=values,
        edge_index=edges,
        edge_weight=np.ones(edges.shape[1], dtype=np.float32),
        nodes=nodes,
        name="chickenpox_hu",
        units="cases/week",
        info={"adjacency_method": "county adjacency (PyG Temporal chickenpox.json)"},
    )
