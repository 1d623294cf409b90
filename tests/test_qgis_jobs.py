"""The QGIS-free part of stgeo_kd.qgis (runs in the main suite, without QGIS): imports stay
light, cancelled runs leave nothing, and a run folder's student forecasts new readings exactly
as the pipeline did."""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SAMPLE_CITY

from stgeo_kd.errors import StgeoError

FAST = [
    "train.batches_per_epoch=4",
    "teacher.params.channels=8",
    "student.params.hidden=16",
    "train.latency_repeats=3",
    "train.num_threads=1",
]


def _config(**kw):
    from stgeo_kd.qgis import jobs

    args = {
        "readings": SAMPLE_CITY / "speeds.parquet",
        "sensors": SAMPLE_CITY / "sensors.csv",
        "roads": SAMPLE_CITY / "roads.gpkg",
        "name_column": "name",
        "epochs": 1,
        "overrides": FAST,
    }
    args.update(kw)
    return jobs.distill_config(**args)


def test_importing_the_package_loads_neither_qgis_nor_torch():
    code = (
        "import sys, stgeo_kd, stgeo_kd.qgis; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'torch', 'lightning', 'PyQt5')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_config_from_the_algorithm_inputs():
    cfg = _config(horizons="3, 6", history=6, teacher="gru", student="mlp", student_epochs=2, missing_values=[0.0, -1.0])
    assert cfg.task.horizons == [3, 6] and cfg.task.history == 6
    assert cfg.teacher.name == "gru" and cfg.student.name == "mlp" and cfg.student.params["hidden"] == 16
    assert cfg.train.student_epochs == 2 and cfg.train.checkpoints is False and cfg.train.progress is False
    assert cfg.outputs.checkpoints and cfg.outputs.onnx
    assert cfg.data.missing_values == [0.0, -1.0] and cfg.data.adjacency.method == "auto"
    # without roads, sensors are linked by their nearest neighbours
    assert _config(roads=None).data.adjacency.method == "knn"


def test_config_errors_are_stgeo_errors():
    from stgeo_kd.qgis import jobs

    with pytest.raises(StgeoError, match="whole numbers"):
        jobs.parse_horizons("3, six")
    with pytest.raises(StgeoError, match="positive"):
        jobs.parse_horizons("0")
    with pytest.raises(StgeoError, match="Unknown config key"):
        _config(overrides=["train.epoch=3"])
    assert jobs.parse_missing_values("") == [] and jobs.parse_missing_values(None) is None
    assert jobs.parse_overrides("a=1; b=2\n# note\n\nc=3") == ["a=1", "b=2", "c=3"]


def test_window_features_match_the_training_windows():
    """The forecast algorithm builds model inputs itself; they must be the pipeline's."""
    from stgeo_kd.ingest.build import load_sensor_graph
    from stgeo_kd.pipeline import task_data
    from stgeo_kd.qgis.jobs import window_features

    cfg = _config()
    graph = load_sensor_graph(cfg)
    data = task_data(graph, cfg.task)
    got = window_features(data.raw, data.times, data.scaler.mean, data.scaler.std)
    np.testing.assert_allclose(got, data.features, atol=1e-6)


def test_a_cancelled_run_leaves_nothing(tmp_path):
    from stgeo_kd.qgis import jobs

    out = tmp_path / "new" / "run"
    calls = {"n": 0}

    def is_canceled():
        calls["n"] += 1
        return calls["n"] > 3  # during the teacher's first epoch

    with pytest.raises(jobs.Cancelled):
        jobs.run_into(_config(epochs=50), out, is_canceled=is_canceled)
    assert not out.exists() and not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from stgeo_kd.qgis import jobs

    out = tmp_path_factory.mktemp("qgis_jobs") / "run"
    seen = []
    result = jobs.run_into(_config(), out, report=lambda f, m: seen.append((f, m)))
    return result, out, seen


def test_run_into_reports_progress_and_moves_every_output(finished_run):
    result, out, seen = finished_run
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["map.html", "model_meta.json", "predictions.gpkg", "report.json", "student.onnx", "student.pt",
                            "student_scratch.pt", "teacher.pt"])
    assert all(p.parent == out for p in result.artifacts.values())
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [m for _, m in seen if m]
    assert any(m.startswith("training teacher") for m in messages)
    assert any(m.startswith("training student (distilled)") for m in messages)


def test_forecast_from_a_run_folder_reproduces_the_pipeline(finished_run, tmp_path):
    """Readings up to the forecast origin of the run's last test window give the same student
    forecasts as the run wrote to predictions.gpkg."""
    from stgeo_kd.qgis import jobs

    _, out, _ = finished_run
    written = gpd.read_file(out / "predictions.gpkg", layer="predictions")
    origin = pd.Timestamp(written["forecast_origin"].iloc[0])
    readings = pd.read_parquet(SAMPLE_CITY / "speeds.parquet")
    recent = readings[(readings["timestamp"] <= origin) & (readings["timestamp"] > origin - pd.Timedelta(hours=3))]
    path = tmp_path / "recent.csv"
    recent.sort_values(["timestamp", "sensor_id"]).to_csv(path, index=False)  # another row order than the run's
    frame, info = jobs.forecast_from_run(out, path)
    assert info["forecast_origin"] == written["forecast_origin"].iloc[0]
    assert list(frame["sensor_id"]) == list(written["sensor_id"])
    assert frame.crs == written.crs and frame.geometry.equals(written.geometry)
    for k in (3, 6, 9, 12):
        np.testing.assert_allclose(frame[f"student_h{k}"], written[f"student_h{k}"], rtol=1e-4, atol=1e-3)
    assert frame["time_h3"].iloc[0] == str((origin + pd.Timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M"))


def test_forecast_refuses_unusable_readings(finished_run, tmp_path):
    from stgeo_kd.qgis import jobs

    _, out, _ = finished_run
    readings = pd.read_parquet(SAMPLE_CITY / "speeds.parquet")
    readings = readings[readings["timestamp"] < readings["timestamp"].min() + pd.Timedelta(hours=3)]
    short = tmp_path / "short.csv"
    readings[readings["timestamp"] < readings["timestamp"].min() + pd.Timedelta(minutes=30)].to_csv(short, index=False)
    with pytest.raises(StgeoError, match="needs the last 12 steps"):
        jobs.forecast_from_run(out, short)
    fewer = tmp_path / "fewer.csv"
    readings[readings["sensor_id"] != "S007"].to_csv(fewer, index=False)
    with pytest.raises(StgeoError, match="S007"):
        jobs.forecast_from_run(out, fewer)
    coarse = tmp_path / "coarse.csv"
    readings[readings["timestamp"].dt.minute % 10 == 0].to_csv(coarse, index=False)
    with pytest.raises(StgeoError, match="time step of 10 minutes"):
        jobs.forecast_from_run(out, coarse)
    with pytest.raises(StgeoError, match="model_meta.json"):
        jobs.forecast_from_run(tmp_path, short)


# ---------------------------------------------------------------------------------------------
# "Forecast a raster stack"

RAIN = ROOT / "sample_data" / "sample_rain"
RASTER_FAST = ["teacher.params.hidden=8", "task.patches.count=16", "task.patches.size=32", "train.latency_repeats=3",
               "train.num_threads=1"]


def _raster_config(**kw):
    from stgeo_kd.qgis import jobs

    args = {"path": RAIN, "pattern": r"rain_(?P<date>\d{8}_\d{4})\.tif$", "epochs": 1, "overrides": RASTER_FAST}
    args.update(kw)
    return jobs.raster_config(**args)


def test_raster_config_from_the_algorithm_inputs():
    from stgeo_kd.qgis import jobs

    cfg = _raster_config(horizons="1, 3", history=5, teacher_size="large", student_size="medium", variable="rain, snow")
    assert cfg.data.kind == "raster_stack" and cfg.data.variable == ["rain", "snow"]
    assert cfg.task.horizons == [1, 3] and cfg.task.history == 5
    assert cfg.teacher.name == "st_cnn" and cfg.teacher.params["hidden"] == 8  # the override wins
    assert cfg.teacher.params["spatial_layers"] == jobs.RASTER_TEACHER_SIZES["large"]["spatial_layers"]
    assert cfg.student.name == "ds_cnn" and cfg.student.params == jobs.RASTER_STUDENT_SIZES["medium"]
    assert cfg.outputs.geotiff and cfg.outputs.onnx and cfg.outputs.map and cfg.outputs.checkpoints
    assert cfg.train.checkpoints is False and cfg.train.progress is False
    with pytest.raises(StgeoError, match="size 'huge' is unknown"):
        _raster_config(student_size="huge")
    with pytest.raises(StgeoError, match="positive"):
        _raster_config(horizons="0")


def test_a_raster_run_cancelled_in_tiled_prediction_leaves_nothing(tmp_path):
    """The cancel reaches the tiled prediction of forecast.tif (after training) through
    ProgressCallback.raster_cancel, and run_into still leaves nothing."""
    import traceback

    from stgeo_kd.qgis import jobs

    out = tmp_path / "run"
    state = {"trained": False, "polled_by": []}

    def report(fraction, message):
        state["trained"] |= fraction >= 0.9  # training ends at 0.9

    def is_canceled():
        if state["trained"]:
            state["polled_by"].append({frame.name for frame in traceback.extract_stack()})
        return state["trained"]

    with pytest.raises(jobs.Cancelled, match="nothing was written"):
        jobs.run_into(_raster_config(), out, report=report, is_canceled=is_canceled)
    assert state["polled_by"] and "predict_tiled" in state["polled_by"][0]
    assert list(tmp_path.iterdir()) == []
