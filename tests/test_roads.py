"""Tests for stgeo_kd.ingest.roads: reading roads, road graphs, network distances, adjacency."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyproj
import pytest
from shapely.geometry import LineString, MultiLineString, Point

from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.roads import (
    adjacency_to_edges,
    gaussian_kernel_adjacency,
    knn_adjacency,
    metric_crs,
    network_distances,
    read_adjacency_matrix,
    read_osm_xml,
    read_roads,
    road_graph,
    snap_points,
)

UTM = "EPSG:32633"
X0, Y0 = 500_000.0, 5_000_000.0
WEST_OAKLAND = Path(__file__).resolve().parents[2] / "shared" / "data" / "road_networks" / "West-Oakland.osm"


def grid_roads(oneway: dict[int, str] | None = None) -> gpd.GeoDataFrame:
    """3x3 grid of nodes 100 m apart; 12 lines, each drawn left->right or bottom->top.

    Row 0 is the line from (X0, Y0) to (X0+100, Y0).
    """
    lines = []
    for j in range(3):
        for i in range(2):
            lines.append(LineString([(X0 + 100 * i, Y0 + 100 * j), (X0 + 100 * (i + 1), Y0 + 100 * j)]))
    for i in range(3):
        for j in range(2):
            lines.append(LineString([(X0 + 100 * i, Y0 + 100 * j), (X0 + 100 * i, Y0 + 100 * (j + 1))]))
    gdf = gpd.GeoDataFrame({"name": [f"r{k}" for k in range(len(lines))]}, geometry=lines, crs=UTM)
    if oneway is not None:
        gdf["oneway"] = [oneway.get(k) for k in range(len(lines))]
    return gdf


def grid_sensors(crs: str = UTM) -> gpd.GeoDataFrame:
    """A and B on the bottom-left line (30 m and 70 m along; B 2 m off the road), C on the
    right-hand vertical line from (200, 100) to (200, 200), 50 m along it."""
    pts = [Point(X0 + 30, Y0), Point(X0 + 70, Y0 + 2), Point(X0 + 200, Y0 + 150)]
    return gpd.GeoDataFrame({"sensor_id": ["A", "B", "C"]}, geometry=pts, crs=UTM).set_index("sensor_id").to_crs(crs)


# Hand-computed: A-B along their shared line; A -> (100,0) 70 m -> (200,0) 100 m -> up 150 m.
GRID_EXPECTED = np.array([[0.0, 40.0, 320.0], [40.0, 0.0, 280.0], [320.0, 280.0, 0.0]])


# ----------------------------------------------------------------------------------------------
# network distances, snapping, graph
# ----------------------------------------------------------------------------------------------


def test_network_distances_match_hand_computed_values():
    dist = network_distances(grid_roads(), grid_sensors())
    assert dist.dtype == np.float64 and dist.shape == (3, 3)
    np.testing.assert_allclose(dist, GRID_EXPECTED, atol=1e-9)


def test_sensors_in_lonlat_with_roads_in_utm_give_the_same_distances():
    sensors = grid_sensors("EPSG:4326")
    assert sensors.crs.to_epsg() == 4326
    np.testing.assert_allclose(network_distances(grid_roads(), sensors), GRID_EXPECTED, atol=1e-3)


def test_snap_points_reports_edge_offset_and_distance():
    snapped = snap_points(grid_roads(), grid_sensors())
    assert list(snapped.index) == ["A", "B", "C"]
    np.testing.assert_allclose(snapped["position_m"], [30.0, 70.0, 50.0], atol=1e-9)
    np.testing.assert_allclose(snapped["distance_m"], [0.0, 2.0, 0.0], atol=1e-9)
    assert snapped.loc["A", "road"] == snapped.loc["B", "road"] == 0
    assert snapped.loc["C", "u"] == (X0 + 200, Y0 + 100) and snapped.loc["C", "v"] == (X0 + 200, Y0 + 200)

    from_graph = snap_points(road_graph(grid_roads()), grid_sensors("EPSG:4326"))
    np.testing.assert_allclose(from_graph["position_m"], [30.0, 70.0, 50.0], atol=1e-3)
    assert list(from_graph["key"]) == list(snapped["key"])
    assert list(from_graph["u"]) == list(snapped["u"])


def test_snap_points_too_far_names_the_sensors():
    sensors = grid_sensors()
    far = gpd.GeoDataFrame({"sensor_id": ["FAR"]}, geometry=[Point(X0 + 50, Y0 - 500)], crs=UTM).set_index("sensor_id")
    sensors = pd.concat([sensors, far])
    with pytest.raises(StgeoError, match=r"'FAR'.*max_snap_distance=10"):
        snap_points(grid_roads(), sensors, max_snap_distance=10)
    with pytest.raises(StgeoError, match="'FAR'"):
        network_distances(grid_roads(), sensors, max_snap_distance=10)


def test_directed_distances_honour_oneway():
    sensors = grid_sensors()
    forward = network_distances(grid_roads({0: "yes"}), sensors, directed=True)
    assert forward[0, 1] == pytest.approx(40.0)  # A -> B along the one-way line
    # B -> A must go round the block: 30 + 100 + 100 + 100 + 30.
    assert forward[1, 0] == pytest.approx(360.0)
    backward = network_distances(grid_roads({0: "-1"}), sensors, directed=True)
    assert backward[0, 1] == pytest.approx(360.0) and backward[1, 0] == pytest.approx(40.0)
    # Undirected ignores the tag.
    np.testing.assert_allclose(network_distances(grid_roads({0: "yes"}), sensors), GRID_EXPECTED, atol=1e-9)


def test_cutoff_and_unreachable_pairs_are_inf():
    dist = network_distances(grid_roads(), grid_sensors(), cutoff=100)
    assert dist[0, 1] == pytest.approx(40.0) and np.isinf(dist[0, 2])
    island = gpd.GeoDataFrame(geometry=[LineString([(X0 + 1000, Y0), (X0 + 1100, Y0)])], crs=UTM)
    roads = pd.concat([grid_roads(), island], ignore_index=True)
    sensors = pd.concat(
        [grid_sensors(), gpd.GeoDataFrame(geometry=[Point(X0 + 1050, Y0)], index=["D"], crs=UTM)]
    )
    dist = network_distances(roads, sensors)
    assert np.isinf(dist[0, 3]) and np.isinf(dist[3, 0]) and dist[3, 3] == 0


def test_road_graph_nodes_edges_and_crs():
    graph = road_graph(grid_roads())
    assert isinstance(graph, nx.MultiGraph) and not graph.is_directed()
    assert graph.number_of_nodes() == 9 and graph.number_of_edges() == 12
    assert graph.graph["crs"] == pyproj.CRS(UTM)
    for _, _, data in graph.edges(data=True):
        assert data["length"] == pytest.approx(100.0)
        assert isinstance(data["geometry"], LineString)
    directed = road_graph(grid_roads({0: "yes", 1: "-1"}), directed=True)
    assert isinstance(directed, nx.MultiDiGraph) and directed.number_of_edges() == 22
    assert directed.has_edge((X0, Y0), (X0 + 100, Y0)) and not directed.has_edge((X0 + 100, Y0), (X0, Y0))
    assert directed.has_edge((X0 + 200, Y0), (X0 + 100, Y0)) and not directed.has_edge((X0 + 100, Y0), (X0 + 200, Y0))


def test_road_graph_joins_endpoints_that_touch_within_a_centimetre():
    roads = gpd.GeoDataFrame(
        geometry=[LineString([(X0, Y0), (X0 + 100.001, Y0)]), LineString([(X0 + 99.999, Y0), (X0 + 200, Y0)])],
        crs=UTM,
    )
    graph = road_graph(roads)
    assert graph.number_of_nodes() == 3 and nx.is_connected(graph)


def test_road_graph_in_lonlat_uses_utm():
    roads = grid_roads().to_crs("EPSG:4326")
    graph = road_graph(roads)
    assert graph.graph["crs"].to_epsg() == 32633
    assert sum(d["length"] for _, _, d in graph.edges(data=True)) == pytest.approx(1200.0, abs=1e-3)


def test_metric_crs_keeps_utm_and_replaces_lonlat_and_web_mercator():
    roads = grid_roads()
    assert metric_crs(roads) == pyproj.CRS(UTM)
    assert metric_crs(roads.to_crs("EPSG:4326")).to_epsg() == 32633
    assert metric_crs(roads.to_crs("EPSG:3857")).to_epsg() == 32633
    with pytest.raises(StgeoError, match="no CRS"):
        metric_crs(roads.set_crs(None, allow_override=True))


def test_road_graph_rejects_non_metric_crs_and_missing_crs():
    with pytest.raises(StgeoError, match="not a projected CRS in metres"):
        road_graph(grid_roads(), crs="EPSG:4326")
    with pytest.raises(StgeoError, match="roads have no CRS"):
        road_graph(grid_roads().set_crs(None, allow_override=True))
    with pytest.raises(StgeoError, match="sensors have no CRS"):
        network_distances(grid_roads(), grid_sensors().set_crs(None, allow_override=True))


# ----------------------------------------------------------------------------------------------
# read_roads
# ----------------------------------------------------------------------------------------------


def test_read_roads_gpkg_and_shapefile_round_trip(tmp_path):
    roads = grid_roads()
    roads.to_file(tmp_path / "grid.gpkg", layer="roads", engine="pyogrio")
    roads.to_file(tmp_path / "grid.shp", engine="pyogrio")
    for name in ("grid.gpkg", "grid.shp"):
        got = read_roads(tmp_path / name)
        assert len(got) == 12 and got.crs == pyproj.CRS(UTM)
        assert list(got.index) == list(range(12)) and "name" in got.columns
        np.testing.assert_allclose(network_distances(got, grid_sensors()), GRID_EXPECTED, atol=1e-6)


def test_read_roads_explodes_multilines_and_drops_empty(tmp_path):
    multi = MultiLineString([[(X0, Y0), (X0 + 100, Y0)], [(X0 + 100, Y0), (X0 + 200, Y0)]])
    gdf = gpd.GeoDataFrame(
        {"name": ["multi", "none", "empty"]}, geometry=[multi, None, LineString()], crs=UTM
    )
    gdf.to_file(tmp_path / "m.gpkg", engine="pyogrio")
    got = read_roads(tmp_path / "m.gpkg")
    assert list(got.geom_type) == ["LineString", "LineString"] and list(got["name"]) == ["multi", "multi"]


def test_read_roads_picks_first_line_layer_with_a_warning(tmp_path):
    path = tmp_path / "several.gpkg"
    gpd.GeoDataFrame(geometry=[Point(X0, Y0)], crs=UTM).to_file(path, layer="stops", engine="pyogrio")
    grid_roads().to_file(path, layer="streets", engine="pyogrio")
    with pytest.warns(UserWarning, match="'streets'"):
        got = read_roads(path)
    assert len(got) == 12
    with pytest.raises(StgeoError, match=r"no layer 'street'.*Did you mean 'streets'"):
        read_roads(path, layer="street")
    with pytest.raises(StgeoError, match=r"several\.gpkg.*no line features"):
        read_roads(path, layer="stops")


@pytest.mark.parametrize("sidecar", [".dbf", ".shx"])
def test_read_roads_shapefile_missing_sidecar(tmp_path, sidecar):
    grid_roads().to_file(tmp_path / "grid.shp", engine="pyogrio")
    (tmp_path / f"grid{sidecar}").unlink()
    with pytest.raises(StgeoError, match=rf"grid\.shp is missing .* grid\{sidecar}"):
        read_roads(tmp_path / "grid.shp")


def test_read_roads_no_crs(tmp_path):
    grid_roads().to_file(tmp_path / "grid.shp", engine="pyogrio")
    (tmp_path / "grid.prj").unlink()
    with pytest.raises(StgeoError, match=r"grid\.shp has no CRS \(its projection file grid\.prj is missing\).*set_crs"):
        read_roads(tmp_path / "grid.shp")


def test_read_roads_empty_layer_empty_file_missing_file_and_garbage(tmp_path):
    empty = gpd.GeoDataFrame({"name": []}, geometry=gpd.GeoSeries([], crs=UTM))
    empty.to_file(tmp_path / "empty.gpkg", layer="roads", geometry_type="LineString", engine="pyogrio")
    with pytest.raises(StgeoError, match=r"'roads' of .*empty\.gpkg has no features"):
        read_roads(tmp_path / "empty.gpkg")
    (tmp_path / "zero.gpkg").write_bytes(b"")
    with pytest.raises(StgeoError, match=r"zero\.gpkg is empty"):
        read_roads(tmp_path / "zero.gpkg")
    with pytest.raises(StgeoError, match=r"File not found: .*nope\.gpkg"):
        read_roads(tmp_path / "nope.gpkg")
    (tmp_path / "junk.gpkg").write_text("not a geopackage")
    with pytest.raises(StgeoError, match=r"junk\.gpkg cannot be read"):
        read_roads(tmp_path / "junk.gpkg")


# ----------------------------------------------------------------------------------------------
# OSM XML
# ----------------------------------------------------------------------------------------------

OSM_XML = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="hand">
  <bounds minlat="37.800" minlon="-122.300" maxlat="37.802" maxlon="-122.298"/>
  <node id="1" lat="37.8000" lon="-122.3000"/>
  <node id="2" lat="37.8000" lon="-122.2990"/>
  <node id="3" lat="37.8000" lon="-122.2980"/>
  <node id="4" lat="37.8010" lon="-122.2990"><tag k="highway" v="traffic_signals"/></node>
  <node id="5" lat="37.7990" lon="-122.2990"/>
  <node id="6" lat="37.8020" lon="-122.3000"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/></way>
  <way id="11"><nd ref="4"/><nd ref="2"/><nd ref="5"/>
    <tag k="highway" v="primary"/><tag k="name" v="Main Street"/><tag k="oneway" v="yes"/></way>
  <way id="12"><nd ref="1"/><nd ref="6"/><nd ref="4"/><nd ref="1"/><tag k="building" v="yes"/></way>
  <way id="13"><nd ref="6"/><nd ref="99"/><nd ref="4"/><nd ref="3"/><tag k="highway" v="service"/></way>
  <way id="14"><nd ref="6"/><nd ref="1"/><tag k="highway" v="primary"/><tag k="junction" v="roundabout"/></way>
  <relation id="20"><member type="way" ref="10" role=""/><tag k="type" v="route"/></relation>
</osm>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_osm_xml_hand_written(tmp_path):
    path = write(tmp_path, "tiny.osm", OSM_XML)
    with pytest.warns(UserWarning, match="1 road way"):
        roads = read_osm_xml(path)
    assert roads.crs.to_epsg() == 4326
    assert list(roads.columns) == ["osm_id", "highway", "name", "oneway", "geometry"]
    assert roads["osm_id"].dtype == np.int64
    # Ways 10 and 11 cross at node 2 and are split there; way 13 loses missing node 99, which
    # leaves the run 4-3 (node 6 alone is no line); the building is not a road.
    assert sorted(roads["osm_id"]) == [10, 10, 11, 11, 13, 14]
    main = roads[roads["osm_id"] == 11]
    assert set(main["name"]) == {"Main Street"} and set(main["oneway"]) == {"yes"}
    assert roads.loc[roads["osm_id"] == 14, "oneway"].item() == "yes"  # implied by the roundabout
    assert roads.loc[roads["osm_id"] == 10, "name"].isna().all()
    first = roads[roads["osm_id"] == 10].geometry.iloc[0]
    assert list(first.coords) == [(-122.3, 37.8), (-122.299, 37.8)]

    graph = road_graph(roads)
    assert nx.is_connected(graph) and graph.number_of_nodes() == 6

    unsplit = read_osm_xml(path, highway_types="primary", split_at_junctions=False)
    assert sorted(unsplit["osm_id"]) == [11, 14]
    with pytest.warns(UserWarning, match="1 road way"):
        assert read_roads(path).shape == roads.shape


def test_read_osm_xml_errors(tmp_path):
    with pytest.raises(StgeoError, match=r"broken\.osm is not well-formed XML"):
        read_osm_xml(write(tmp_path, "broken.osm", OSM_XML[:400]))
    with pytest.raises(StgeoError, match=r"other\.xml .*root element is <kml>"):
        read_osm_xml(write(tmp_path, "other.xml", "<kml><Document/></kml>"))
    no_roads = OSM_XML.replace('k="highway"', 'k="railway"')
    with pytest.raises(StgeoError, match=r"rail\.osm has no roads"):
        read_osm_xml(write(tmp_path, "rail.osm", no_roads))
    with pytest.raises(StgeoError, match=r"tiny\.osm has no roads of the requested .*'motorway'.*residential \(1\)"):
        read_osm_xml(write(tmp_path, "tiny.osm", OSM_XML), highway_types=["motorway"])
    bad_lat = OSM_XML.replace('lat="37.8000" lon="-122.3000"', 'lat="north" lon="-122.3000"')
    with pytest.raises(StgeoError, match=r"badlat\.osm .*lat='north'"):
        read_osm_xml(write(tmp_path, "badlat.osm", bad_lat))
    with pytest.raises(StgeoError, match="no layers"):
        read_roads(write(tmp_path, "t.osm", OSM_XML), layer="lines")


@pytest.mark.realdata
@pytest.mark.skipif(not WEST_OAKLAND.exists(), reason="shared/data/road_networks/West-Oakland.osm not present")
def test_west_oakland_osm():
    whole = read_osm_xml(WEST_OAKLAND, split_at_junctions=False)
    # PROVENANCE.md: 31 ways with a highway tag (residential 9, footway 7, service 6, secondary 5, ...).
    assert len(whole) == 31 and whole["osm_id"].is_unique
    assert whole["highway"].value_counts().to_dict() == {
        "residential": 9, "footway": 7, "service": 6, "secondary": 5, "unclassified": 3, "cycleway": 1
    }
    minx, miny, maxx, maxy = whole.total_bounds
    assert -122.315 < minx < maxx < -122.290 and 37.803 < miny < maxy < 37.819

    roads = read_roads(WEST_OAKLAND)
    assert len(roads) > len(whole) and set(roads["osm_id"]) == set(whole["osm_id"])
    streets = roads[roads["highway"].isin(["residential", "secondary", "unclassified"])]
    graph = road_graph(streets)
    assert graph.graph["crs"].to_epsg() == 32610  # UTM 10N
    giant = max(nx.connected_components(graph), key=len)
    assert len(giant) > 0.8 * graph.number_of_nodes()

    # Two sensors on streets of the giant component: network distance >= straight-line distance.
    nodes = sorted(giant)
    pts = gpd.GeoDataFrame(geometry=[Point(nodes[0]), Point(nodes[-1])], crs=graph.graph["crs"]).to_crs(4326)
    dist = network_distances(streets, pts)
    straight = Point(nodes[0]).distance(Point(nodes[-1]))
    assert np.isfinite(dist).all() and dist[0, 1] >= straight - 1e-6
    assert dist[0, 1] == pytest.approx(dist[1, 0])


# ----------------------------------------------------------------------------------------------
# adjacency
# ----------------------------------------------------------------------------------------------


def test_gaussian_kernel_matches_formula_and_thresholds():
    dist = np.array([[0.0, 100.0, 400.0], [100.0, 0.0, np.inf], [250.0, 300.0, 0.0]])
    finite = dist[np.isfinite(dist)]
    sigma = finite.std()
    w = gaussian_kernel_adjacency(dist, threshold=0.0)
    expected = np.exp(-((dist / sigma) ** 2))
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(w, expected)
    assert w[1, 2] == 0.0  # inf -> 0

    w = gaussian_kernel_adjacency(dist, threshold=0.5, sigma=200.0)
    assert w[0, 1] == pytest.approx(math.exp(-0.25))  # 0.78 kept
    assert w[0, 2] == 0.0  # exp(-4) = 0.018 cut
    assert w[2, 0] == 0.0  # exp(-1.5625) = 0.21 < 0.5
    np.testing.assert_array_equal(np.diag(w), 1.0)


def test_gaussian_kernel_errors():
    with pytest.raises(StgeoError, match="square"):
        gaussian_kernel_adjacency(np.zeros((2, 3)))
    with pytest.raises(StgeoError, match="negative"):
        gaussian_kernel_adjacency(np.array([[0.0, -1.0], [1.0, 0.0]]))
    with pytest.raises(StgeoError, match="sigma"):
        gaussian_kernel_adjacency(np.zeros((2, 2)))
    with pytest.raises(StgeoError, match="threshold"):
        gaussian_kernel_adjacency(np.ones((2, 2)), threshold=2)


def test_knn_adjacency_symmetric_with_k_neighbours():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 5000, size=(40, 2)) + [X0, Y0]
    pts = gpd.GeoDataFrame(geometry=[Point(x, y) for x, y in xy], crs=UTM)
    w = knn_adjacency(pts, k=4)
    assert w.shape == (40, 40)
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(np.diag(w), 1.0)
    off = w - np.eye(40)
    assert ((off > 0).sum(axis=1) >= 4).all()
    # Weight is the Gaussian of the straight-line distance with sigma = mean kNN distance.
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    knn_d = np.sort(d, axis=1)[:, 1:5]
    i, j = np.argwhere(off > 0)[0]
    assert w[i, j] == pytest.approx(math.exp(-((d[i, j] / knn_d.mean()) ** 2)))
    # Same result from lon/lat input (measured in UTM), and k is clipped to N - 1.
    np.testing.assert_allclose(knn_adjacency(pts.to_crs(4326), k=4), w, atol=1e-6)
    assert (knn_adjacency(pts.iloc[:3], k=8) > 0).all()


def test_read_adjacency_matrix_formats(tmp_path):
    m = np.array([[0.0, 1.5, 0.0], [1.5, 0.0, 2.0], [0.0, 2.0, 0.0]])
    np.savetxt(tmp_path / "plain.csv", m, delimiter=",")
    got, ids = read_adjacency_matrix(tmp_path / "plain.csv", n_expected=3)
    np.testing.assert_array_equal(got, m)
    assert ids is None

    frame = pd.DataFrame(m, index=["s1", "s2", "s3"], columns=["s1", "s2", "s3"])
    frame.to_csv(tmp_path / "labelled.csv")
    frame.to_csv(tmp_path / "header.csv", index=False)
    frame.set_axis([400001, 400017, 400030], axis=1).to_csv(tmp_path / "numeric_ids.csv", index=False)
    for name, expected_ids in [
        ("labelled.csv", ["s1", "s2", "s3"]),
        ("header.csv", ["s1", "s2", "s3"]),
        ("numeric_ids.csv", ["400001", "400017", "400030"]),
    ]:
        got, ids = read_adjacency_matrix(tmp_path / name)
        np.testing.assert_array_equal(got, m)
        assert ids == expected_ids, name

    np.save(tmp_path / "m.npy", m)
    got, ids = read_adjacency_matrix(tmp_path / "m.npy", n_expected=3)
    np.testing.assert_array_equal(got, m)
    assert ids is None


def test_read_adjacency_matrix_errors(tmp_path):
    np.savetxt(tmp_path / "rect.csv", np.ones((2, 4)), delimiter=",")
    with pytest.raises(StgeoError, match=r"rect\.csv is not square: 2 rows x 4 columns"):
        read_adjacency_matrix(tmp_path / "rect.csv")
    np.save(tmp_path / "rect.npy", np.ones((3, 2)))
    with pytest.raises(StgeoError, match=r"rect\.npy is not square"):
        read_adjacency_matrix(tmp_path / "rect.npy")
    np.savetxt(tmp_path / "three.csv", np.ones((3, 3)), delimiter=",")
    with pytest.raises(StgeoError, match=r"three\.csv is 3 x 3, but 5 nodes were expected"):
        read_adjacency_matrix(tmp_path / "three.csv", n_expected=5)
    (tmp_path / "text.csv").write_text("a,b\n1,x\n2,3\n")
    with pytest.raises(StgeoError, match=r"text\.csv has a non-numeric value 'x' at line 2, column 2"):
        read_adjacency_matrix(tmp_path / "text.csv")
    np.savetxt(tmp_path / "neg.csv", np.array([[0, -1.0], [1, 0]]), delimiter=",")
    with pytest.raises(StgeoError, match=r"neg\.csv has negative entries"):
        read_adjacency_matrix(tmp_path / "neg.csv")
    np.save(tmp_path / "obj.npy", np.array([[None, 1], [1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(StgeoError, match=r"obj\.npy cannot be loaded"):
        read_adjacency_matrix(tmp_path / "obj.npy")
    (tmp_path / "m.txt").write_text("1")
    with pytest.raises(StgeoError, match=r"m\.txt: unsupported"):
        read_adjacency_matrix(tmp_path / "m.txt")
    (tmp_path / "mismatch.csv").write_text(",a,b\nb,0,1\na,1,0\n")
    with pytest.raises(StgeoError, match=r"mismatch\.csv the row labels"):
        read_adjacency_matrix(tmp_path / "mismatch.csv")


def test_adjacency_to_edges_keeps_direction_and_drops_self_loops():
    adj = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.25], [0.75, 0.0, 1.0]])
    edge_index, edge_weight = adjacency_to_edges(adj)
    assert edge_index.dtype == np.int64 and edge_weight.dtype == np.float32
    np.testing.assert_array_equal(edge_index, [[0, 1, 2], [1, 2, 0]])
    np.testing.assert_allclose(edge_weight, [0.5, 0.25, 0.75])
    with pytest.raises(StgeoError, match="square"):
        adjacency_to_edges(np.ones((2, 3)))
