"""The distillation toolbox as users run it: YAML terms, classification, several teachers,
and a graph without sensor locations (chickenpox)."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import ROOT, SHARED_DATA
from test_pipeline import FAST

import stgeo_kd
from stgeo_kd.cli import main

CHICKENPOX = SHARED_DATA / "chickenpox_hu"
needs_chickenpox = pytest.mark.skipif(not (CHICKENPOX / "chickenpox.json").exists(), reason=f"real data not found at {CHICKENPOX}")


@pytest.fixture(scope="module")
def city_graph():
    from stgeo_kd.config import load_config
    from stgeo_kd.ingest.build import load_sensor_graph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_sensor_graph(load_config(ROOT / "examples" / "sample_city.yaml"))


def _sets(overrides):
    out = []
    for o in overrides:
        out += ["--set", o]
    return out


def test_cli_classification_run(tmp_path, capsys):
    out = tmp_path / "cls"
    sets = FAST + [
        "task.kind=classify",
        "task.horizons=[6]",
        "task.classes={rule: thresholds, thresholds: [30, 50], names: [congested, slow, free_flow]}",
        "distill.terms=[labels, {name: hinton, weight: 1.0}, probability_mse]",
        "distill.temperature={kind: cosine, start: 4, end: 1}",
        "outputs.onnx=true",
    ]
    code = main(["run", str(ROOT / "examples" / "sample_city.yaml"), "--out", str(out), *_sets(sets)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "macro-F1" in printed
    rep = json.loads((out / "report.json").read_text())
    m = rep["models"]["student"]["metrics"]["h6"]
    assert set(m) >= {"accuracy", "macro_f1", "kappa"} and 0.0 <= m["accuracy"] <= 1.0
    assert rep["task"]["classes"]["names"] == ["congested", "slow", "free_flow"]
    assert sum(rep["task"]["classes"]["counts"]["train"]) > 0
    assert [t["name"] for t in rep["distill"]["terms"]] == ["labels", "hinton", "probability_mse"]
    assert "accuracy" in rep["models"]["baselines"]["persistence"]["metrics"]["h6"]
    assert "student_macro_f1_minus_scratch" in rep["comparison"]
    assert rep["models"]["student"]["onnx_max_abs_diff"] < 1e-4
    import geopandas as gpd

    gdf = gpd.read_file(out / "predictions.gpkg")
    assert set(gdf["student_h6"].dropna()) <= {"congested", "slow", "free_flow"}
    assert gdf["errorrate_student"].between(0, 1).all()


def test_several_teachers_hint_and_schedules_in_memory(city_graph):
    over = FAST + [
        "teacher=[{name: graph_wavenet, params: {channels: 8}}, {name: lstm, params: {hidden: 8, layers: 1}, head: gaussian, weight: 2}]",
        "distill.combine=weighted",
        "distill.alpha={kind: linear, start: 0.9, end: 0.1}",
        "distill.terms=[labels, soft_targets, {name: hint, weight: 0.5, params: {student_layer: body, teacher_layer: end1}}]",
        "train.lr_schedule=cosine",
        "outputs.onnx=false",
    ]
    over = [o for o in over if not o.startswith("teacher.params")]
    r = stgeo_kd.run(ROOT / "examples" / "sample_city.yaml", overrides=over, graph=city_graph)
    models = r.report["models"]
    assert {"teacher", "teacher_2", "student", "student_scratch"} <= set(models)
    assert models["teacher_2"]["name"] == "lstm" and models["teacher_2"]["head"] == "gaussian"
    assert r.report["distill"]["teachers"] == 2 and r.report["distill"]["combine"] == "weighted"
    curve = models["student"]["training_curve"][-1]
    assert {"term_labels", "term_soft_targets", "term_hint"} <= set(curve)


def test_gaussian_teacher_and_student_with_kl(city_graph):
    over = FAST + ["teacher.head=gaussian", "student.head=gaussian", "distill.terms=[labels, gaussian_kl]", "outputs.onnx=false"]
    r = stgeo_kd.run(ROOT / "examples" / "sample_city.yaml", overrides=over, graph=city_graph)
    assert r.report["models"]["student"]["head"] == "gaussian"
    assert r.report["models"]["student"]["metrics"]["h3"]["mae"] > 0


def test_lstm_teacher_gru_student_and_mutual(city_graph):
    over = [o for o in FAST if "params" not in o] + [
        "teacher={name: lstm, params: {hidden: 8, layers: 1}}", "student={name: gru, params: {hidden: 4}}",
        "distill.mutual=true", "distill.terms=[labels, soft_targets, peer]", "outputs.onnx=false",
    ]
    r = stgeo_kd.run(ROOT / "examples" / "sample_city.yaml", overrides=over, graph=city_graph)
    assert r.report["models"]["teacher"]["name"] == "lstm" and r.report["models"]["student"]["name"] == "gru"
    assert r.report["distill"]["mutual"] is True
    assert r.report["models"]["student"]["params"] < r.report["models"]["teacher"]["params"]


@needs_chickenpox
def test_chickenpox_loader_and_run_without_locations(tmp_path):
    from stgeo_kd.datasets import chickenpox_hungary

    g = chickenpox_hungary(CHICKENPOX)
    assert g.num_nodes == 20 and g.num_steps == 522 and g.step_minutes == 7 * 24 * 60
    assert float(g.values.sel(node="BUDAPEST").isel(time=0)) == 168.0  # first row of the CSV
    assert int(g.values.isnull().sum()) == 0  # zeros are real counts, not missing
    assert g.edge_index.shape[1] == 102 - 20  # county adjacency without the self-loops
    cfg = {
        "data": {"readings": "given in Python"},
        "task": {"history": 8, "horizons": [1, 4]},
        "teacher": {"name": "lstm", "params": {"hidden": 8, "layers": 1}},
        "student": {"name": "gru", "params": {"hidden": 4}},
        "train": {"epochs": 2, "student_epochs": 2, "progress": False, "latency_repeats": 3},
    }
    r = stgeo_kd.run(cfg, out_dir=tmp_path, graph=g)
    assert (tmp_path / "report.json").exists() and not (tmp_path / "map.html").exists()
    assert r.report["artifacts_skipped"]["map"] == "no sensor locations"
    assert r.report["models"]["student"]["metrics"]["h4"]["mae"] > 0


def test_chickenpox_loader_renumbers_edges_to_csv_order(tmp_path):
    from stgeo_kd.datasets import chickenpox_hungary
    from stgeo_kd.errors import StgeoError

    # CSV columns B, A, C; the JSON numbers them alphabetically A=0, B=1, C=2 (as the real file does)
    (tmp_path / "hungary_chickenpox.csv").write_text(
        "\ufeffDate,B,A,C\n03/01/2005,1,2,0\n10/01/2005,4,5,6\n17/01/2005,7,8,9\n", encoding="utf-8"
    )
    (tmp_path / "chickenpox.json").write_text(
        json.dumps({"edges": [[0, 1], [1, 0], [0, 0], [1, 2]], "node_ids": {"A": 0, "B": 1, "C": 2}, "FX": []})
    )
    g = chickenpox_hungary(tmp_path)
    assert list(g.values["node"].values) == ["B", "A", "C"]
    # A->B becomes 1->0, B->A 0->1, B->C 0->2; the self-loop is dropped
    assert sorted(map(tuple, g.edge_index.T.tolist())) == [(0, 1), (0, 2), (1, 0)]
    assert g.values.values[0].tolist() == [1.0, 2.0, 0.0]  # a zero is a count, not missing
    assert str(g.values["time"].values[1])[:10] == "2005-01-10"
    (tmp_path / "chickenpox.json").write_text(json.dumps({"edges": [], "node_ids": {"A": 0, "B": 1}}))
    with pytest.raises(StgeoError, match="Counties .* differ"):
        chickenpox_hungary(tmp_path)
