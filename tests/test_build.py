"""Assembling a SensorGraph from the sample city files and from Los-loop (when present)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import LOS_LOOP, ROOT, needs_los_loop

from stgeo_kd.config import load_config
from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.build import load_sensor_graph

CITY = ROOT / "examples" / "sample_city.yaml"


@pytest.fixture(scope="module")
def city_graph():
    return load_sensor_graph(load_config(CITY))


def test_sample_city_graph(city_graph):
    g = city_graph
    assert g.num_nodes == 50
    assert g.values.dims == ("time", "node")
    assert g.num_steps == 21 * 288
    assert g.step_minutes == 5
    assert g.nodes.crs.to_epsg() == 4326
    assert g.roads is not None and g.roads.crs.to_epsg() == 32633
    # zeros and NaN are missing, never values
    assert 0.0 < float(g.mask.mean()) < 1.0
    assert not (g.values.values == 0).any()
    assert g.edge_index.shape[1] > g.num_nodes
    assert (g.edge_weight > 0).all() and (g.edge_weight <= 1).all()
    assert g.info["adjacency_method"] == "road_distance"


def test_shapefile_roads_give_the_same_graph(city_graph):
    cfg = load_config(CITY, ["data.roads=../sample_data/sample_city/roads.shp"])
    g = load_sensor_graph(cfg)
    assert np.allclose(g.adjacency(), city_graph.adjacency(), atol=1e-6)


def test_knn_and_matrix_adjacency(tmp_path, city_graph):
    knn = load_sensor_graph(load_config(CITY, ["data.adjacency.method=knn", "data.adjacency.k=4", "data.roads=null"]))
    assert knn.info["adjacency_method"] == "knn"
    assert ((knn.adjacency() > 0).sum(1) >= 4).all()
    matrix = tmp_path / "adj.csv"
    pd.DataFrame(city_graph.adjacency()).to_csv(matrix, header=False, index=False)
    m = load_sensor_graph(load_config(CITY, ["data.adjacency.method=matrix", f"data.adjacency.path={matrix}"]))
    assert np.allclose(m.adjacency(), city_graph.adjacency(), atol=1e-6)


def test_to_pyg(city_graph):
    data = city_graph.to_pyg()
    assert data.num_nodes == 50
    assert data.x.shape == (50, city_graph.num_steps)
    assert data.edge_index.shape[1] == data.edge_weight.shape[0]
    assert bool((data.x[~data.mask] == 0).all())


def test_unknown_sensor_in_readings_is_named(tmp_path):
    readings = pd.read_parquet(ROOT / "sample_data" / "sample_city" / "speeds.parquet")
    readings.loc[readings.index[:10], "sensor_id"] = "S999"
    path = tmp_path / "speeds.parquet"
    readings.to_parquet(path)
    with pytest.raises(StgeoError, match="S999"):
        load_sensor_graph(load_config(CITY, [f"data.readings={path}"]))


def test_sensor_far_from_roads_is_refused(tmp_path):
    sensors = pd.read_csv(ROOT / "sample_data" / "sample_city" / "sensors.csv", dtype={"sensor_id": str})
    sensors.loc[0, "lon"] += 0.2  # ~15 km east of the town
    path = tmp_path / "sensors.csv"
    sensors.to_csv(path, index=False)
    with pytest.raises(StgeoError, match="S001"):
        load_sensor_graph(load_config(CITY, [f"data.sensors={path}"]))


@needs_los_loop
def test_los_loop_graph():
    g = load_sensor_graph(load_config(ROOT / "examples" / "los_loop.yaml"))
    assert g.num_nodes == 207
    assert g.num_steps == 2016
    assert str(g.values["time"].values[0])[:16] == "2012-03-01T00:00"
    assert bool(g.mask.all())  # Los-loop is already imputed (PROVENANCE.md)
    assert g.sensor_ids[:3] == ["773869", "767541", "767542"]
    adj = pd.read_csv(LOS_LOOP / "los_adj.csv", header=None).to_numpy()
    np.fill_diagonal(adj, 0)
    assert np.allclose(g.adjacency(), adj, atol=1e-6)
