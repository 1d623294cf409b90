"""Assemble a SensorGraph from the files named in a config: readings + sensors + graph."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest import roads as roads_mod
from stgeo_kd.ingest.sensors import read_readings, read_sensor_locations

if TYPE_CHECKING:
    from stgeo_kd.config import RunConfig


def _match_sensors(readings, sensors, readings_path, sensors_path):
    """Keep the sensors that have readings, in the sensors file's order; refuse unknown ids."""
    reading_ids = [str(s) for s in readings["node"].values]
    sensor_ids = sensors["sensor_id"].tolist()
    known = set(sensor_ids)
    unknown = [s for s in reading_ids if s not in known]
    if len(unknown) == len(reading_ids):
        raise StgeoError(
            f"No sensor id in {readings_path} matches the sensors in {sensors_path} "
            f"(readings ids e.g. {reading_ids[:3]}, sensor ids e.g. {sensor_ids[:3]}). "
            "Check data.id_column / data.sensors_id_column and that both files describe the same sensors."
        )
    if unknown:
        raise StgeoError(
            f"{len(unknown)} sensor id(s) in {readings_path} are not in {sensors_path}: {unknown[:10]}. "
            "Add their locations to the sensors file or remove them from the readings."
        )
    have = set(reading_ids)
    keep = [i for i, s in enumerate(sensor_ids) if s in have]
    if len(keep) < len(sensor_ids):
        dropped = [s for s in sensor_ids if s not in have]
        warnings.warn(
            f"{len(dropped)} sensor(s) in {sensors_path} have no readings and were left out: {dropped[:10]}.",
            stacklevel=3,
        )
    return keep


def _crs_name(crs) -> str:
    epsg = crs.to_epsg() if crs is not None else None
    return f"EPSG:{epsg}" if epsg else (crs.name if crs is not None else "no CRS")


def load_sensor_graph(cfg: RunConfig) -> SensorGraph:
    """Read readings, sensor locations and roads (or a matrix) into a :class:`SensorGraph`.

    Node order follows the sensors file. The adjacency comes from ``data.adjacency``:
    road-network distances with a thresholded Gaussian kernel, a given matrix (rows/columns in
    the sensors file's order), or k nearest neighbours.

    Raises:
        StgeoError: any file, column, id or CRS problem, with the file named.
    """
    d = cfg.data
    readings_path = cfg.resolve(d.readings)
    readings = read_readings(
        readings_path,
        layout=d.layout,
        time_column=d.time_column,
        id_column=d.id_column,
        value_column=d.value_column,
        start=d.start,
        freq=d.freq,
        missing_values=d.missing_values,
    )
    sensors_path = cfg.resolve(d.sensors)
    if sensors_path is None:
        raise StgeoError("data.sensors is required: set it to a CSV with sensor ids and lon/lat, or a point layer.")
    sensors = read_sensor_locations(
        sensors_path,
        id_column=d.sensors_id_column or d.id_column,
        lon_column=d.lon_column,
        lat_column=d.lat_column,
        crs=d.sensors_crs,
        layer=d.sensors_layer,
        name_column=d.name_column,
    )
    keep = _match_sensors(readings, sensors, readings_path, sensors_path)
    n_in_file = len(sensors)
    sensors = sensors.iloc[keep].reset_index(drop=True)
    if len(sensors) < 2:
        raise StgeoError(
            f"Only {len(sensors)} sensor ({sensors['sensor_id'].tolist()}) has both readings in {readings_path} and a "
            f"location in {sensors_path}; a sensor graph needs at least 2 sensors. Add the other sensors to both files."
        )
    readings = readings.sel(node=sensors["sensor_id"].to_numpy())

    empty = [s for s, ok in zip(sensors["sensor_id"], readings.notnull().any("time").values) if not ok]
    if empty:
        raise StgeoError(
            f"Sensor(s) {empty[:10]} in {readings_path} have no valid reading at all (all missing). "
            "Remove them from the sensors file, or check data.missing_values."
        )

    a = d.adjacency
    roads_path = cfg.resolve(d.roads)
    roads = None
    if roads_path is not None:
        if roads_path.suffix.lower() in (".osm", ".xml") and d.roads_layer is not None:
            raise StgeoError(
                f"{roads_path} is an OSM XML file, which has no layers; remove data.roads_layer ({d.roads_layer!r}) "
                "from the config."
            )
        roads = roads_mod.read_roads(roads_path, layer=d.roads_layer)
    method = a.method
    if method == "auto":
        method = "road_distance" if roads is not None else "knn"
    info: dict = {"adjacency_method": method}
    if method == "road_distance":
        if roads is None:
            raise StgeoError("data.adjacency.method is road_distance but data.roads is not set; give a road layer or use knn.")
        try:
            # indexed by id so that a sensor too far from the roads is named by its id
            dist = roads_mod.network_distances(
                roads, sensors.set_index("sensor_id"), directed=a.directed, max_snap_distance=a.max_snap_distance
            )
        except StgeoError as exc:
            raise StgeoError(
                f"Cannot place the sensors of {sensors_path} on the roads of {roads_path}: {exc} The roads are in "
                f"{_crs_name(roads.crs)} (from the road file) and the sensors in {_crs_name(sensors.crs)} "
                "(data.sensors_crs for a table); if either is wrong, fix it there. The snapping limit is "
                "data.adjacency.max_snap_distance."
            ) from None
        off_diagonal = ~np.eye(len(dist), dtype=bool)
        if not np.isfinite(dist[off_diagonal]).any():
            raise StgeoError(
                f"No two sensors of {sensors_path} are connected along the roads of {roads_path}: every pair is "
                "unreachable. Check that the road lines are connected (lines must share their end points) and cover "
                "the roads between the sensors, or set data.adjacency.method: knn."
            )
        try:
            adj = roads_mod.gaussian_kernel_adjacency(dist, threshold=a.threshold, sigma=a.sigma)
        except StgeoError as exc:
            raise StgeoError(f"Road-distance graph of {sensors_path} on {roads_path}: {exc} (data.adjacency.sigma, data.adjacency.threshold)") from None
        info["unreachable_pairs"] = int(np.isinf(dist).sum())
    elif method == "matrix":
        matrix_path = cfg.resolve(a.path)
        if matrix_path is None:
            raise StgeoError(
                "data.adjacency.method is matrix but data.adjacency.path is not set; set it to the CSV or .npy "
                "matrix file, or choose another data.adjacency.method (road_distance, knn)."
            )
        adj, ids = roads_mod.read_adjacency_matrix(matrix_path)
        if ids is not None:
            pos = {s: i for i, s in enumerate(ids)}
            missing = [s for s in sensors["sensor_id"] if s not in pos]
            if missing:
                raise StgeoError(
                    f"Adjacency matrix {matrix_path} has no row for sensor(s) {missing[:10]} of {sensors_path}; "
                    "add them, or use the matrix made for these sensors."
                )
            idx = [pos[s] for s in sensors["sensor_id"]]
        elif adj.shape[0] == n_in_file:
            idx = keep
        else:
            raise StgeoError(
                f"Adjacency matrix {matrix_path} is {adj.shape[0]}x{adj.shape[1]} but {sensors_path} lists "
                f"{n_in_file} sensors; its rows and columns must follow the sensors file's order."
            )
        adj = adj[np.ix_(idx, idx)]
    else:
        try:
            adj = roads_mod.knn_adjacency(sensors, k=a.k)
        except StgeoError as exc:
            raise StgeoError(
                f"Nearest-neighbour graph of the sensors in {sensors_path}: {exc} Check their coordinates and "
                "data.sensors_crs."
            ) from None
    np.fill_diagonal(adj, 0.0)
    isolated = [s for s, deg in zip(sensors["sensor_id"], (adj > 0).sum(0) + (adj > 0).sum(1)) if deg == 0]
    if isolated:
        warnings.warn(
            f"{len(isolated)} sensor(s) have no neighbour in the graph ({isolated[:10]}); graph models will "
            "see only their own history. Lower data.adjacency.threshold or use knn to connect them.",
            stacklevel=2,
        )
    info["isolated_sensors"] = len(isolated)
    edge_index, edge_weight = roads_mod.adjacency_to_edges(adj)
    name = d.name or readings_path.stem
    return SensorGraph(
        values=readings,
        edge_index=edge_index,
        edge_weight=edge_weight,
        nodes=sensors,
        roads=roads,
        name=name,
        units=d.units,
        info=info,
    )
