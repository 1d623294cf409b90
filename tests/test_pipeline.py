"""End to end on the bundled sample city: Python API, CLI, report.json contract, outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import torch
from conftest import ROOT

import stgeo_kd
from stgeo_kd.cli import main

# small models and short epochs: this checks the plumbing, not the accuracy
FAST = [
    "train.epochs=2",
    "train.student_epochs=2",
    "train.batches_per_epoch=8",
    "teacher.params.channels=8",
    "student.params.hidden=16",
    "train.progress=false",
    "train.latency_repeats=5",
    "train.max_minutes=null",
    # one thread: tiny models, and two threads spin against each other on a busy 2-core machine
    "train.num_threads=1",
]


@pytest.fixture(scope="module")
def city_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("city")
    result = stgeo_kd.run(ROOT / "examples" / "sample_city.yaml", out_dir=out, overrides=FAST)
    return result, out


def test_report_follows_the_contract(city_run):
    _, out = city_run
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["nodes"] == 50
    assert report["dataset"]["step_minutes"] == 5
    assert report["task"]["horizons"] == [3, 6, 9, 12]
    for role in ("teacher", "student", "student_scratch"):
        m = report["models"][role]
        for key in ("name", "params", "size_bytes", "macs", "latency_ms_batch1", "throughput_samples_per_s", "train_seconds"):
            assert key in m, (role, key)
        assert m["params"] > 0 and m["macs"] > 0 and m["latency_ms_batch1"] > 0
        for h in ("h3", "h6", "h9", "h12", "upto_h3", "upto_h12"):
            assert set(m["metrics"][h]) >= {"mae", "rmse", "mape"}
            assert 0 < m["metrics"][h]["mae"] <= m["metrics"][h]["rmse"]
    for name in ("persistence", "historical_average"):
        assert report["models"]["baselines"][name]["metrics"]["h12"]["mae"] > 0
    assert report["artifacts"]["gpkg"] == "predictions.gpkg"
    assert report["artifacts"]["map"] == "map.html"
    assert report["artifacts"]["onnx"] == "student.onnx"
    assert report["versions"]["torch"] == torch.__version__


def test_student_is_cheaper_than_teacher(city_run):
    result, _ = city_run
    t, s = result.report["models"]["teacher"], result.report["models"]["student"]
    assert s["macs"] * 5 < t["macs"]
    assert s["latency_ms_batch1"] < t["latency_ms_batch1"]


def test_pooled_metric_matches_hand_computation(city_run):
    result, _ = city_run
    data = result.data
    truth, mask = data.window_targets_raw("test")
    from stgeo_kd.training import predict

    pred = data.scaler.inverse(predict(result.models["student"], data.window_inputs("test")).numpy())
    m = mask[:, :3]
    want = np.abs(pred[:, :3][m] - truth[:, :3][m]).mean()
    got = result.report["models"]["student"]["metrics"]["upto_h3"]["mae"]
    assert got == pytest.approx(want, rel=1e-5)


def test_geopackage_has_one_point_per_sensor_in_input_crs(city_run):
    result, out = city_run
    gdf = gpd.read_file(out / "predictions.gpkg")
    assert len(gdf) == 50
    assert gdf.crs == result.graph.nodes.crs
    assert {"sensor_id", "observed_h3", "teacher_h12", "student_h12", "mae_teacher", "mae_student", "mae_student_scratch"} <= set(gdf.columns)
    assert gdf["mae_student"].notna().all()
    # returned GeoDataFrame and file agree
    assert np.allclose(gdf["student_h12"].to_numpy(), result.predictions["student_h12"].to_numpy(), equal_nan=True)


def test_map_carries_every_sensor(city_run):
    result, out = city_run
    html = (out / "map.html").read_text()
    for sid in result.graph.sensor_ids:
        assert sid in html
    assert "LayerControl" in html or "control.layers" in html


def test_onnx_student_matches_eager(city_run):
    result, out = city_run
    assert result.report["models"]["student"]["onnx_max_abs_diff"] < 1e-4
    ort = pytest.importorskip("onnxruntime")
    x = result.data.window_inputs("test")[:4].contiguous()
    sess = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"window": x.numpy()})[0]
    with torch.inference_mode():
        want = result.models["student"](x).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_saved_weights_reload_safely(city_run):
    result, out = city_run
    state = torch.load(out / "student.pt", weights_only=True)
    meta = json.loads((out / "model_meta.json").read_text())
    from stgeo_kd.models import build_model

    model = build_model(
        meta["student"]["name"], meta["student"]["params"], num_nodes=meta["num_nodes"], history=meta["history"],
        horizon=meta["horizon"], steps_per_day=meta["steps_per_day"], adjacency=result.graph.adjacency(),
    )
    model.load_state_dict(state)
    model.eval()
    x = result.data.window_inputs("test")[:2]
    with torch.inference_mode():
        assert torch.allclose(model(x), result.models["student"](x))


def test_cli_bad_input_exits_2_without_traceback(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data:\n  readings: nowhere.csv\n  sensors: nowhere.csv\n")
    code = main(["run", str(cfg), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nowhere.csv" in err and "Traceback" not in err


def test_cli_unknown_key_lists_valid_keys(tmp_path, capsys):
    code = main(["run", str(ROOT / "examples" / "sample_city.yaml"), "--out", str(tmp_path), "--set", "train.epochz=3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "epochz" in err and "epochs" in err


def test_console_script_runs_as_a_user_would(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data: [1, 2]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "stgeo_kd.cli", "run", str(cfg), "--out", str(tmp_path / "o")],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "data" in proc.stderr


def test_cli_run_prints_where_map_and_report_are(tmp_path, capsys):
    out = tmp_path / "cli"
    sets = []
    for o in FAST:
        sets += ["--set", o]
    code = main(["run", str(ROOT / "examples" / "sample_city.yaml"), "--out", str(out), "--quiet", *sets])
    printed = capsys.readouterr().out
    assert code == 0
    assert str((out / "map.html").resolve()) in printed
    assert str((out / "report.json").resolve()) in printed
    assert "student_scratch" in printed
    # nothing but the final outputs are left in the folder (no temporary files)
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_runs_in_memory_without_a_validation_split():
    result = stgeo_kd.run(
        ROOT / "examples" / "sample_city.yaml",
        out_dir=None,
        overrides=FAST + ["task.split.train=0.8", "task.split.val=0", "task.split.test=0.2"],
    )
    assert result.report["task"]["windows"]["val"] == 0
    assert result.artifacts == {}
    assert len(result.predictions) == 50
    assert np.isfinite(result.report["models"]["student"]["metrics"]["h12"]["mae"])


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["run", str(ROOT / "examples" / "sample_city.yaml"), "--out", str(blocker / "out")])
    err = " ".join(capsys.readouterr().err.split())  # the CLI wraps long messages
    assert code == 2
    assert "not writable" in err and "a_file" in err and "Traceback" not in err
