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


# ----------------------------------------------------------------------------------------------
# land cover (data.kind: patches, issue 7)


def eopatch_slovenia(folder: str | Path, cloud_mask: bool = True):
    """The Sentinel-2 NDVI time stack of eo-learn's test EOPatch (1 km² in Slovenia, 68 dates
    2015-2017, 101 x 100 pixels of 10 m, EPSG:32633) as a
    :class:`~stgeo_kd.data.raster_stack.RasterStack` with one band, ``NDVI``.

    Reads the folder laid out as ``../shared/data/raster_stacks/eopatch_slovenia_s2`` (see its
    PROVENANCE.md): ``NDVI.npy`` (time, y, x, 1) float32, ``CLM.npy`` the cloud mask (1 =
    cloud), ``timestamps.json`` (ISO times, UTC, irregular; one date appears twice, at two
    times), ``bbox.geojson`` (the footprint with its CRS; row 0 is north). The grid is the
    bbox cut into the array's rows and columns. With ``cloud_mask`` cloudy pixels are NaN
    (missing), never filled. The land-cover polygons of the same patch are ``LULC.gpkg`` in
    the folder (class column ``LULC_ID``, names ``LULC_NAME``).

    Raises:
        StgeoError: a missing file, or arrays whose shapes disagree.
    """
    from rasterio.crs import CRS
    from rasterio.transform import from_bounds

    from stgeo_kd.data.raster_stack import RasterStack

    folder = Path(folder)
    files = {name: folder / name for name in ("NDVI.npy", "CLM.npy", "timestamps.json", "bbox.geojson")}
    for p in files.values():
        if not p.is_file():
            raise StgeoError(f"{p} is missing; an EOPatch folder for data.patches.loader: eopatch_slovenia needs "
                             f"{', '.join(files)} (see the data set's PROVENANCE.md).")
    ndvi = np.load(files["NDVI.npy"], allow_pickle=False)
    clm = np.load(files["CLM.npy"], allow_pickle=False)
    times = pd.DatetimeIndex(pd.to_datetime(json.loads(files["timestamps.json"].read_text(encoding="utf-8"))))
    if ndvi.ndim != 4 or ndvi.shape[-1] != 1 or clm.shape != ndvi.shape or len(times) != ndvi.shape[0]:
        raise StgeoError(f"{folder}: NDVI.npy {ndvi.shape}, CLM.npy {clm.shape} and {len(times)} timestamps do not "
                         "describe one (time, y, x, 1) stack.")
    bbox = json.loads(files["bbox.geojson"].read_text(encoding="utf-8"))
    ring = np.asarray(bbox["coordinates"][0], dtype=np.float64)
    crs_name = bbox.get("crs", {}).get("properties", {}).get("name", "urn:ogc:def:crs:EPSG::32633")
    crs = CRS.from_user_input(crs_name)
    _, h, w, _ = ndvi.shape
    transform = from_bounds(ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max(), w, h)
    values = ndvi[..., 0].astype(np.float32)
    if cloud_mask:
        values = np.where(clm[..., 0] > 0, np.float32(np.nan), values)
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    data = xr.DataArray(values[:, None], dims=("time", "band", "y", "x"),
                        coords={"time": times.to_numpy(), "band": ["NDVI"], "y": ys, "x": xs})
    return RasterStack(data, crs, transform, None, {"NDVI": ""}, "eopatch_slovenia_s2",
                       [str(files["NDVI.npy"])] * len(times))
