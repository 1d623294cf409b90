"""Spatial regression on a graph of locations (data.kind: points): kNN graph, spatial block
split with buffer, point layers and their bad inputs, training, and the Baltimore run end to end."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pytest
from conftest import ROOT
from scipy.spatial.distance import cdist

import stgeo_kd
from stgeo_kd.cli import main
from stgeo_kd.config import config_from_dict, load_config
from stgeo_kd.errors import StgeoError
from stgeo_kd.spatial.graph import knn_graph
from stgeo_kd.spatial.points import points_from_frame, resolve_layer_path
from stgeo_kd.spatial.split import block_split

BALTIMORE = ROOT / "examples" / "baltimore_prices.yaml"
needs_libpysal = pytest.mark.skipif(
    __import__("importlib").util.find_spec("libpysal") is None, reason="libpysal (stgeo_kd[spatial]) not installed"
)
FAST = ["train.epochs=30", "train.student_epochs=30", "train.progress=false", "train.latency_repeats=3",
        "train.num_threads=1", "teacher.params.hidden=16"]


# ---------------------------------------------------------------------------------------------
# kNN graph


def test_knn_graph_hand_checked_line():
    # points on a line at 0, 1, 3, 7: each one's single nearest other point
    xy = np.array([[0.0, 0], [1, 0], [3, 0], [7, 0]])
    edges, dist = knn_graph(xy, 1, symmetric=False)
    pairs = {(int(s), int(t)) for s, t in edges.T}
    assert pairs == {(1, 0), (0, 1), (1, 2), (2, 3)}  # (neighbour -> point)
    assert sorted(dist.tolist()) == [1.0, 1.0, 2.0, 4.0]
    sym, _ = knn_graph(xy, 1)
    assert {(int(s), int(t)) for s, t in sym.T} == pairs | {(t, s) for s, t in pairs}


def test_knn_graph_properties():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, size=(60, 2))
    xy[5] = xy[6]  # duplicate location: still never its own neighbour
    k = 5
    edges, dist = knn_graph(xy, k, symmetric=False)
    assert edges.shape == (2, 60 * k)
    assert not (edges[0] == edges[1]).any()
    assert (np.bincount(edges[1], minlength=60) == k).all()
    d = cdist(xy, xy)
    np.fill_diagonal(d, np.inf)
    for i in range(60):  # the chosen neighbours are the k closest (distances equal as sets)
        chosen = np.sort(d[i, edges[0][edges[1] == i]])
        np.testing.assert_allclose(chosen, np.sort(d[i])[:k])
    np.testing.assert_allclose(dist, np.linalg.norm(xy[edges[0]] - xy[edges[1]], axis=1))
    sym, _ = knn_graph(xy, k)
    assert (np.bincount(sym[1], minlength=60) >= k).all()
    assert {(int(a), int(b)) for a, b in sym.T} == {(int(b), int(a)) for a, b in sym.T}
    with pytest.warns(UserWarning, match="only 60 points"):
        full, _ = knn_graph(xy, 100, symmetric=False)
    assert full.shape[1] == 60 * 59


# ---------------------------------------------------------------------------------------------
# spatial block split


def _grid_points(n_side=20, spacing=100.0):
    g = np.arange(n_side) * spacing
    return np.array([(x, y) for x in g for y in g], dtype=float)


def test_block_split_hand_checked():
    # 6 points on a line, three per block of 10 m: block 0 holds x = 0, 1, 8; block 1 x = 12, 18, 19
    xy = np.array([[0.0, 0], [1, 0], [8, 0], [12, 0], [18, 0], [19, 0]])
    s = block_split(xy, 10.0, (0.5, 0.0, 0.5), buffer=0.0, seed=0)
    assert list(s.block) == [0, 0, 0, 1, 1, 1]
    assert len(set(s.labels[:3])) == 1 and len(set(s.labels[3:])) == 1 and s.labels[0] != s.labels[3]
    assert s.counts() == {"train": 3, "val": 0, "test": 3, "buffer": 0}
    inner = 2 if s.labels[0] == "train" else 3  # the training point 4 m from the test block
    # a buffer of 4.5 m drops it; one of exactly 4 m keeps it (dropped means closer than buffer)
    s = block_split(xy, 10.0, (0.5, 0.0, 0.5), buffer=4.5, seed=0)
    assert s.labels[inner] == "buffer" and s.counts()["train"] == 2
    assert block_split(xy, 10.0, (0.5, 0.0, 0.5), buffer=4.0, seed=0).counts()["buffer"] == 0


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_block_split_buffer_respected_and_blocks_whole(seed):
    xy = _grid_points() + np.random.default_rng(seed).uniform(-30, 30, size=(400, 2))
    buffer = 150.0
    s = block_split(xy, 500.0, (0.6, 0.2, 0.2), buffer=buffer, seed=seed)
    train, held = s.indices("train"), np.flatnonzero(np.isin(s.labels, ["val", "test"]))
    assert cdist(xy[train], xy[held]).min() >= buffer  # no training point within the buffer
    # every dropped point was a training-block point close to a held-out one
    dropped = s.indices("buffer")
    assert len(dropped) > 0
    assert (s.block_labels[s.block[dropped]] == "train").all()
    assert (cdist(xy[dropped], xy[held]).min(axis=1) < buffer).all()
    for b in np.unique(s.block):  # a block lies wholly in one split (buffer points are its train)
        labels = set(s.labels[s.block == b]) - {"buffer"}
        assert len(labels) <= 1
    counts = s.counts()
    assert sum(counts.values()) == 400
    for name, share in (("val", 0.2), ("test", 0.2)):
        assert abs(counts[name] - share * 400) <= 40  # within one block of its share


def test_block_split_is_deterministic_per_seed():
    xy = _grid_points()
    a = block_split(xy, 400.0, (0.6, 0.2, 0.2), buffer=100.0, seed=3)
    b = block_split(xy, 400.0, (0.6, 0.2, 0.2), buffer=100.0, seed=3)
    c = block_split(xy, 400.0, (0.6, 0.2, 0.2), buffer=100.0, seed=4)
    assert (a.labels == b.labels).all()
    assert (a.labels != c.labels).any()


def test_block_split_errors():
    xy = _grid_points(5)
    with pytest.raises(StgeoError, match="block_size smaller"):
        block_split(xy, 1e6, (0.6, 0.2, 0.2))
    with pytest.raises(StgeoError, match="buffer smaller"):
        block_split(xy, 100.0, (0.6, 0.2, 0.2), buffer=1e6)


# ---------------------------------------------------------------------------------------------
# point layers and their bad inputs


def _frame(n=30, crs="EPSG:32618", seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(500_000, 505_000, n), rng.uniform(4_000_000, 4_005_000, n)
    area = rng.uniform(50, 200, n)
    return gpd.GeoDataFrame(
        {"pid": np.arange(100, 100 + n), "area": area, "rooms": rng.integers(1, 6, n),
         "label": ["a"] * n, "price": 2.0 * area + rng.normal(0, 5, n)},
        geometry=gpd.points_from_xy(x, y), crs=crs,
    )


def test_points_default_features_and_metric_coordinates():
    ps = points_from_frame(_frame(), "price", id_column="pid")
    assert ps.feature_names == ["area", "rooms", "x_m", "y_m"]  # numeric only, target and id left out
    assert ps.features.shape == (30, 4)
    np.testing.assert_allclose(ps.xy[:, 0], ps.frame.geometry.x)
    # longitude/latitude go to their UTM zone; feet become metres
    geo = points_from_frame(_frame().to_crs(4326), "price")
    assert geo.metric_crs.to_epsg() == 32618
    np.testing.assert_allclose(geo.xy, ps.xy, atol=0.01)
    feet = points_from_frame(_frame().to_crs("EPSG:2263"), "price")  # New York, US feet
    # (the two projections' scale factors differ by a few tenths of a percent here)
    assert cdist(feet.xy[:2], feet.xy[:2])[0, 1] == pytest.approx(cdist(ps.xy[:2], ps.xy[:2])[0, 1], rel=1e-2)
    assert feet.frame.crs.to_epsg() == 2263


@pytest.mark.parametrize(
    "change, kwargs, words",
    [
        (None, {"target": "prize"}, "no column 'prize'"),
        (None, {"target": "label"}, "not numeric"),
        (lambda f: f.assign(price=f.price.where(f.index != 3)), {}, "missing or infinite"),
        (lambda f: f.set_crs(None, allow_override=True), {}, "has no CRS"),
        (None, {"crs": "EPSG:4326"}, "declares its CRS"),
        (None, {"crs": "EPSG:99999999"}, "not a CRS"),
        (lambda f: f.iloc[:5], {}, "at least 10"),
        (None, {"features": ["area", "price"]}, "must not see the value"),
        (None, {"features": ["area", "bedrooms"]}, "no column 'bedrooms'"),
        (lambda f: f.assign(pid=0), {"id_column": "pid"}, "repeats ids"),
        (lambda f: f.set_geometry([None] + list(f.geometry[1:]), crs=f.crs), {}, "no geometry"),
    ],
)
def test_points_bad_inputs(change, kwargs, words):
    frame = _frame()
    if change is not None:
        frame = change(frame)
    with pytest.raises(StgeoError, match=words):
        points_from_frame(frame, **({"target": "price"} | kwargs))


def test_polygons_become_points_with_a_warning():
    frame = _frame()
    frame = frame.set_geometry(frame.buffer(10))
    with pytest.warns(UserWarning, match="Polygon"):
        ps = points_from_frame(frame, "price")
    assert ps.num_points == 30


def _points_cfg(tmp_path, **points):
    frame = _frame(60)
    path = tmp_path / "houses.gpkg"
    frame.to_file(path, layer="houses")
    raw = {
        "data": {"kind": "points", "points": {"path": str(path), "target": "price", "block_size": 1500.0,
                                              "buffer": 100.0, "k": 4} | points},
        "task": {"kind": "regress", "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "teacher": {"name": "graphsage", "params": {"hidden": 8}},
        "student": {"name": "mlp", "params": {"hidden": 8}},
        "train": {"epochs": 5, "progress": False, "latency_repeats": 2, "num_threads": 1},
        "outputs": {"gpkg": True, "map": True, "onnx": False, "checkpoints": False},
    }
    return raw


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda r: r["data"]["points"].pop("target"), "data.points.target is required"),
        (lambda r: r["data"]["points"].update(k=0), "at least 1"),
        (lambda r: r["data"]["points"].update(buffer=-1.0), "buffer"),
        (lambda r: r["data"]["points"].update(colour="red"), "Unknown config key 'data.points.colour'"),
        (lambda r: r["task"].update(kind="classify"), "task.kind: regress"),
        (lambda r: r["teacher"].update(name="graph_wavenet"), "not a model for points"),
        (lambda r: r["student"].update(name="gnn"), "not a model for points"),
        (lambda r: r["distill"].update(terms=["gaussian_kl"]) if "distill" in r else r.update(distill={"terms": ["gaussian_kl"]}),
         "gaussian_kl"),
        (lambda r: r.update(distill={"mutual": True}), "mutual"),
        (lambda r: r.update(teacher=[{"name": "gcn"}, {"name": "graphsage"}]), "one teacher"),
    ],
)
def test_points_config_errors(tmp_path, edit, words):
    raw = _points_cfg(tmp_path)
    edit(raw)
    with pytest.raises(StgeoError, match=words):
        config_from_dict(raw)


def test_unknown_model_param_and_missing_file(tmp_path):
    raw = _points_cfg(tmp_path)
    raw["teacher"]["params"]["hiden"] = 3
    with pytest.raises(StgeoError, match="no parameter 'hiden'.*hidden"):
        stgeo_kd.run(raw)
    raw = _points_cfg(tmp_path, path=str(tmp_path / "nope.gpkg"))
    with pytest.raises(StgeoError, match="does not exist"):
        stgeo_kd.run(raw)
    with pytest.raises(StgeoError, match="ships no file"):
        if __import__("importlib").util.find_spec("libpysal") is None:
            raise StgeoError("ships no file")  # without libpysal the message is the install hint
        resolve_layer_path("libpysal:baltim/nope.shp")


def test_small_run_distils_hint_and_relation(tmp_path):
    raw = _points_cfg(tmp_path)
    raw["distill"] = {"terms": ["labels", {"name": "soft_targets", "params": {"loss": "mse"}},
                                {"name": "hint", "weight": 0.1, "params": {"student_layer": "embedding", "teacher_layer": "embedding"}},
                                {"name": "relation", "weight": 0.1, "params": {"student_layer": "embedding", "teacher_layer": "embedding"}}]}
    result = stgeo_kd.run(raw, out_dir=tmp_path / "out")
    rep = result.report
    curve = rep["models"]["student"]["training_curve"]
    assert {"term_labels", "term_soft_targets", "term_hint", "term_relation"} <= set(curve[0])
    assert [t["name"] for t in rep["distill"]["terms"]] == ["labels", "soft_targets", "hint", "relation"]
    gpkg = gpd.read_file(tmp_path / "out" / "predictions.gpkg")
    assert gpkg.crs.to_epsg() == 32618 and len(gpkg) == 60
    # the buffer: no training point within 100 m of a validation or test point
    xy = np.column_stack([gpkg.geometry.x, gpkg.geometry.y])
    train, held = gpkg.split == "train", gpkg.split.isin(["val", "test"])
    assert cdist(xy[train], xy[held]).min() >= 100.0
    raw["distill"]["terms"][2]["params"]["student_layer"] = "embeding"
    with pytest.raises(StgeoError, match="no layer 'embeding'"):
        stgeo_kd.run(raw)


def test_same_seed_same_result_and_student_starts_like_scratch(tmp_path):
    raw = _points_cfg(tmp_path)
    a = stgeo_kd.run(raw).report["models"]
    b = stgeo_kd.run(raw).report["models"]
    for role in ("teacher", "student", "student_scratch"):
        assert a[role]["metrics"] == pytest.approx(b[role]["metrics"], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Baltimore end to end (the libpysal data, read offline)


@needs_libpysal
def test_baltimore_data_is_shipped_offline():
    path = resolve_layer_path("libpysal:baltim/baltim.shp")
    assert path.is_file() and path.with_suffix(".dbf").is_file()
    cfg = load_config(BALTIMORE)
    from stgeo_kd.spatial.points import load_points

    ps = load_points(cfg)
    assert ps.num_points == 211 and ps.target_name == "PRICE"
    # the example's CRS places the city's houses (CITCOU = 0) inside Baltimore City
    lonlat = ps.frame.to_crs(4326).geometry
    city = ps.frame["CITCOU"].to_numpy() == 0
    assert lonlat[city].x.between(-76.72, -76.52).all() and lonlat[city].y.between(39.19, 39.38).all()


@needs_libpysal
def test_baltimore_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "balt"
    args = ["run", str(BALTIMORE), "--out", str(out)] + [a for s in FAST for a in ("--set", s)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    printed = capsys.readouterr().out
    assert "linear_regression" in printed and "R^2" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["task"]["kind"] == "regress"
    assert report["dataset"]["points"] == 211
    for role in ("teacher", "student", "student_scratch"):
        m = report["models"][role]
        for key in ("name", "params", "size_bytes", "macs", "latency_ms_batch1", "throughput_samples_per_s", "train_seconds"):
            assert key in m, (role, key)
        assert set(m["metrics"]) == {"mae", "rmse", "r2"}
        assert 0 < m["metrics"]["mae"] <= m["metrics"]["rmse"]
    base = report["models"]["baselines"]
    assert set(base) == {"linear_regression", "train_mean"}
    assert base["linear_regression"]["metrics"]["r2"] > base["train_mean"]["metrics"]["r2"]
    split = report["task"]["split"]["points"]
    assert sum(split.values()) == 211 and split["test"] > 0
    gpkg = gpd.read_file(out / "predictions.gpkg")
    assert len(gpkg) == 211
    assert {"STATION", "split", "observed", "teacher", "student", "student_scratch", "linear_regression"} <= set(gpkg.columns)
    np.testing.assert_allclose(gpkg["observed"].sort_index(), gpd.read_file(resolve_layer_path("libpysal:baltim/baltim.shp"))["PRICE"])
    test = gpkg[gpkg.split == "test"]
    assert np.abs(test.student - test.observed).mean() == pytest.approx(report["models"]["student"]["metrics"]["mae"], rel=1e-4)
    assert (out / "map.html").stat().st_size > 10_000
    if report["artifacts"].get("onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
        meta = json.loads((out / "model_meta.json").read_text())
        frame = gpd.read_file(resolve_layer_path("libpysal:baltim/baltim.shp"))
        cfg = load_config(BALTIMORE)
        from stgeo_kd.spatial.points import load_points

        feats = load_points(cfg).features.astype(np.float32)
        assert meta["features"][-2:] == ["x_m", "y_m"] and len(frame) == len(feats)
        got = sess.run(None, {"features": feats})[0]
        np.testing.assert_allclose(got, gpkg["student"].to_numpy(), atol=1e-3)


def test_map_escapes_user_strings(tmp_path):
    raw = _points_cfg(tmp_path)
    payload = "<img src=x onerror=alert(1)>"
    raw["data"]["name"] = payload
    raw["data"]["units"] = payload
    result = stgeo_kd.run(raw, out_dir=tmp_path / "out")
    page = (tmp_path / "out" / "map.html").read_text()
    assert payload not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert result.artifacts["map"].name == "map.html"
