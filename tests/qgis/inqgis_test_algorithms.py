"""Tests that run INSIDE QGIS (QGIS's Python: .venv-qgis, made by `make qgis-venv`).

Not collected by the main suite (the file name does not start with test_): tests/test_qgis.py
runs this file with .venv-qgis/bin/python when QGIS is installed. To run it by hand:

    make qgis-venv
    QT_QPA_PLATFORM=offscreen .venv-qgis/bin/python -m pytest -o python_files='inqgis_*.py' tests/qgis

Epochs and batches are tiny: these check the plumbing (layers in and out, CRS, files, progress,
cancel), not the accuracy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import sysconfig
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsFeature,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsVectorLayer,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "sample_city"
QGIS_PROCESS = os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin")
FAST = [
    "train.batches_per_epoch=4",
    "teacher.params.channels=8",
    "student.params.hidden=16",
    "train.latency_repeats=3",
    "train.num_threads=1",
]
FORECAST_FIELDS = {"sensor_id", "name", "forecast_origin", "mae_student", "mae_teacher"} | {
    f"{kind}_h{k}" for kind in ("observed", "teacher", "student") for k in (3, 6, 9, 12)
}


@pytest.fixture(scope="session")
def qgis_app():
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from stgeo_kd.qgis import register_provider

    register_provider()
    yield app


def sensors_layer(crs: str) -> QgsVectorLayer:
    """The sample sensors as a memory point layer in ``crs`` (memory layers must work too)."""
    src = QgsVectorLayer(f"file://{SAMPLE}/sensors.csv?type=csv&xField=lon&yField=lat&crs=EPSG:4326", "src", "delimitedtext")
    assert src.isValid()
    layer = QgsVectorLayer(f"Point?crs={crs}&field=sensor_id:string&field=name:string", "sensors", "memory")
    transform = QgsCoordinateTransform(src.crs(), layer.crs(), QgsProject.instance())
    features = []
    for f in src.getFeatures():
        g = f.geometry()
        g.transform(transform)
        out = QgsFeature(layer.fields())
        out.setAttributes([str(f["sensor_id"]), str(f["name"])])
        out.setGeometry(g)
        features.append(out)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def readings_csv(path: Path, start: str, end: str) -> Path:
    """Sample readings from ``start`` (inclusive) to ``end`` (exclusive) as a CSV."""
    df = pd.read_parquet(SAMPLE / "speeds.parquet")
    df[(df["timestamp"] >= start) & (df["timestamp"] < end)].to_csv(path, index=False)
    return path


def check_forecast_layer(layer: QgsVectorLayer, crs: str, fields=FORECAST_FIELDS) -> None:
    assert layer.isValid()
    assert layer.featureCount() == 50
    assert layer.crs().authid() == crs
    names = {f.name() for f in layer.fields()}
    assert fields <= names, sorted(fields - names)
    for feature in layer.getFeatures():
        assert not feature.geometry().isEmpty()
        for name in fields:
            if name.startswith("student_h"):
                value = feature[name]
                assert isinstance(value, float) and math.isfinite(value) and 0 < value < 150, (name, value)


def check_map(path: str | Path) -> None:
    text = Path(path).read_text(encoding="utf-8")
    assert "leaflet" in text.lower() and "S001" in text


@pytest.fixture(scope="module")
def distilled(qgis_app, tmp_path_factory):
    """One run of the traffic algorithm through processing.run, on QGIS layers."""
    import processing

    tmp = tmp_path_factory.mktemp("processing_run")
    roads = QgsVectorLayer(f"{SAMPLE}/roads.gpkg|layername=roads", "roads", "ogr")
    assert roads.isValid()
    progress = []
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(progress.append)
    t0 = time.monotonic()
    results = processing.run("stgeo_kd:distill_traffic", {
        "ROADS": roads,
        "SENSORS": sensors_layer("EPSG:3857"),
        "SENSOR_NAME_FIELD": "name",
        "READINGS_FILE": str(SAMPLE / "speeds.parquet"),
        "ID_COLUMN": "sensor_id",
        "TIME_COLUMN": "timestamp",
        "VALUE_COLUMN": "speed",
        "UNITS": "km/h",
        "EPOCHS": 1,
        "OVERRIDES": "\n".join(FAST),
        "OUTPUT": str(tmp / "forecast.gpkg"),
        "OUTPUT_FOLDER": str(tmp / "run"),
    }, feedback=feedback)
    print(f"processing.run distill_traffic: {time.monotonic() - t0:.1f} s")
    return results, tmp, progress


def test_processing_run_distills_the_sample_city(distilled):
    results, _, progress = distilled
    layer = QgsVectorLayer(results["OUTPUT"], "forecast", "ogr")
    check_forecast_layer(layer, "EPSG:3857")  # the CRS of the sensor layer, not the roads'
    check_map(results["MAP"])
    report = json.loads(Path(results["REPORT"]).read_text())
    assert report["dataset"]["nodes"] == 50 and report["task"]["horizons"] == [3, 6, 9, 12]
    assert report["models"]["student"]["params"] < report["models"]["teacher"]["params"]
    assert Path(results["ONNX"]).stat().st_size > 1000
    names = {p.name for p in Path(results["OUTPUT_FOLDER"]).iterdir()}
    assert {"map.html", "report.json", "student.onnx", "student.pt", "model_meta.json", "predictions.gpkg"} <= names
    assert progress and max(progress) == 100 and progress == sorted(progress)


def test_forecast_algorithm_uses_the_run_folder(distilled, tmp_path):
    import processing

    results, _, _ = distilled
    recent = readings_csv(tmp_path / "recent.csv", "2024-03-24 21:00", "2024-03-24 23:00")
    out = processing.run("stgeo_kd:forecast_student", {
        "RUN_FOLDER": results["OUTPUT_FOLDER"],
        "READINGS_FILE": str(recent),
        "OUTPUT_CRS": "EPSG:32633",
        "OUTPUT": str(tmp_path / "next.gpkg"),
    })
    layer = QgsVectorLayer(out["OUTPUT"], "next", "ogr")
    check_forecast_layer(layer, "EPSG:32633", {"sensor_id", "name", "forecast_origin", "time_h3", "student_h3", "student_h12"})
    feature = next(layer.getFeatures())
    assert feature["forecast_origin"] == "2024-03-24T22:55" and feature["time_h12"] == "2024-03-24T23:55"


def test_qgis_process_runs_the_plugin_headless(qgis_app, tmp_path):
    """The plugin zip from `make qgis-plugin`, enabled and run by qgis_process (no GUI, no iface)."""
    zip_path = tmp_path / "stgeo_kd_plugin.zip"
    subprocess.run([sys.executable, str(ROOT / "qgis_plugin" / "build_zip.py"), "--out", str(zip_path)], check=True)
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins)
    home = tmp_path / "home"
    env = os.environ | {
        "HOME": str(home),  # a fresh QGIS profile: enabling the plugin writes its settings there
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "QGIS_PLUGINPATH": str(plugins),
        # qgis_process embeds the system Python: it finds stgeo_kd and torch through PYTHONPATH
        "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]]),
        "QT_QPA_PLATFORM": "offscreen",
        "OMP_NUM_THREADS": "1",
    }
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", "stgeo_kd_plugin"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run([
        QGIS_PROCESS, "--json", "run", "stgeo_kd:distill_traffic", "--",
        f"ROADS={SAMPLE}/roads.gpkg|layername=roads",
        f"SENSORS={SAMPLE}/sensors.csv",  # a table: lon/lat columns in EPSG:4326
        "SENSOR_NAME_FIELD=name",
        f"READINGS_FILE={SAMPLE}/speeds.parquet",
        "EPOCHS=1",
        "OVERRIDES=" + ";".join(FAST),
        f"OUTPUT={out}/forecast.gpkg",
        f"OUTPUT_FOLDER={out}/run",
    ], env=env, capture_output=True, text=True, timeout=300, check=False)
    print(f"qgis_process run distill_traffic: {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    doc = json.loads(proc.stdout)
    assert doc["algorithm_details"]["id"] == "stgeo_kd:distill_traffic"
    results = doc["results"]
    check_forecast_layer(QgsVectorLayer(results["OUTPUT"], "forecast", "ogr"), "EPSG:4326")
    check_map(results["MAP"])
    assert Path(results["ONNX"]).is_file() and json.loads(Path(results["REPORT"]).read_text())["dataset"]["nodes"] == 50
    assert any("training student (distilled)" in line for line in doc["log"]["info"])


class CancelAt(QgsProcessingFeedback):
    """Cancels from another thread (as the GUI's Cancel button does while the algorithm runs in
    a worker thread) ``delay`` seconds after progress first passes ``percent``."""

    def __init__(self, percent: float, delay: float):
        super().__init__()
        self.percent, self.delay = percent, delay
        self.timer = None
        self.cancelled_at = None
        self.progressChanged.connect(self._progress)

    def _progress(self, value: float) -> None:
        if value > self.percent and self.timer is None:
            self.timer = threading.Timer(self.delay, self._cancel)
            self.timer.start()

    def _cancel(self) -> None:
        self.cancelled_at = time.monotonic()
        self.cancel()


def test_cancel_mid_training_returns_fast_and_leaves_nothing(qgis_app, tmp_path):
    from stgeo_kd.qgis import distill_layers

    feedback = CancelAt(5.0, delay=2.0)  # 5 %: the teacher's training has started; cancel 2 s into it
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        distill_layers(
            str(SAMPLE / "roads.gpkg"), str(SAMPLE / "sensors.csv"), str(SAMPLE / "speeds.parquet"),
            tmp_path / "run", epochs=500, overrides=[*FAST, "train.patience=1000"],
            output=tmp_path / "forecast.gpkg", feedback=feedback,
        )
    feedback.timer.join()
    assert feedback.cancelled_at is not None, "training ended before the cancel"
    waited = time.monotonic() - feedback.cancelled_at
    print(f"returned {waited:.2f} s after the cancel")
    assert waited < 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a cancelled run must leave no output"


def test_console_helpers_make_layers_and_add_them(qgis_app, tmp_path):
    from stgeo_kd.qgis import distill_layers, forecast_layers

    csv = readings_csv(tmp_path / "four_days.csv", "2024-03-04", "2024-03-08")
    readings = QgsVectorLayer(f"file://{csv}?type=csv&geomType=none&detectTypes=yes", "readings", "delimitedtext")
    assert readings.isValid() and readings.featureCount() == 4 * 288 * 50
    project = QgsProject.instance()
    run = distill_layers(
        str(SAMPLE / "roads.shp"), sensors_layer("EPSG:32633"), readings, tmp_path / "run",
        sensor_name_field="name", epochs=1, overrides=FAST, add_to_project=True,
    )
    check_forecast_layer(run.layer, "EPSG:32633")
    assert project.mapLayer(run.layer.id()) is run.layer
    check_map(run.map_path)
    assert run.report["dataset"]["timesteps"] == 4 * 288 and run.onnx_path.is_file()

    recent = readings_csv(tmp_path / "next.csv", "2024-03-08 00:00", "2024-03-08 01:30")
    layer = forecast_layers(run.out_dir, recent, output_crs="EPSG:4326", add_to_project=True)
    check_forecast_layer(layer, "EPSG:4326", {"sensor_id", "forecast_origin", "student_h3", "student_h12"})
    assert project.mapLayer(layer.id()) is layer
    assert next(layer.getFeatures())["forecast_origin"] == "2024-03-08T01:25"


def test_bad_inputs_say_what_to_fix(qgis_app, tmp_path):
    from stgeo_kd.qgis import distill_layers, forecast_layers

    with pytest.raises(QgsProcessingException, match=r"\['nope'\] not found.*parameter 'Readings: time column'"):
        distill_layers(None, str(SAMPLE / "sensors.csv"), str(SAMPLE / "speeds.parquet"), tmp_path / "run",
                       time_column="nope", value_column="speed", epochs=1, overrides=FAST)
    with pytest.raises(QgsProcessingException, match="model_meta.json"):
        forecast_layers(tmp_path, str(SAMPLE / "speeds.parquet"))
    assert not (tmp_path / "run").exists()
