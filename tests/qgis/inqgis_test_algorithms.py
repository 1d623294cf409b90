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
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "sample_city"
RAIN = ROOT / "sample_data" / "sample_rain"
RAIN_PATTERN = r"rain_(?P<date>\d{8}_\d{4})\.tif$"
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


def qgis_process_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a qgis_process with the plugin zip from `make qgis-plugin` installed
    and enabled in a fresh profile under ``tmp_path``."""
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
    return env


def test_qgis_process_runs_the_plugin_headless(qgis_app, tmp_path):
    """The plugin zip from `make qgis-plugin`, enabled and run by qgis_process (no GUI, no iface)."""
    env = qgis_process_env(tmp_path)
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


# ---------------------------------------------------------------------------------------------
# "Forecast a raster stack" on the bundled synthetic rain stack (48 frames of 96 x 96 px)

#: the smallest models and fewest patches: plumbing, not accuracy
RASTER_FAST = [
    "teacher.params.hidden=8",
    "task.patches.count=16",
    "task.patches.size=32",
    "train.latency_repeats=3",
    "train.num_threads=1",
]


def check_forecast_raster(path: str | Path, bands: int) -> QgsRasterLayer:
    """A forecast raster on exactly the grid of the input frames."""
    import rasterio

    # the frame is read with rasterio: a QgsRasterLayer would write statistics (.aux.xml) beside it
    with rasterio.open(RAIN / "rain_20240601_1200.tif") as frame:
        crs = QgsCoordinateReferenceSystem.fromWkt(frame.crs.to_wkt())
        size, bounds = (frame.width, frame.height), frame.bounds
    layer = QgsRasterLayer(str(path), "forecast", "gdal")
    assert layer.isValid() and crs.isValid()
    assert layer.crs() == crs and layer.crs().authid() == "EPSG:32633"
    assert (layer.width(), layer.height()) == size == (96, 96)
    extent = QgsRectangle(bounds.left, bounds.bottom, bounds.right, bounds.top)
    assert layer.extent() == extent, (layer.extent().toString(), extent.toString())
    assert layer.bandCount() == bands
    stats = layer.dataProvider().bandStatistics(bands)
    assert math.isfinite(stats.mean) and stats.maximumValue > 0
    return layer


@pytest.fixture(scope="module")
def raster_run(qgis_app, tmp_path_factory):
    """One run of the raster algorithm through processing.run, on the folder of frames."""
    import processing

    tmp = tmp_path_factory.mktemp("raster_run")
    progress = []
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(progress.append)
    t0 = time.monotonic()
    results = processing.run("stgeo_kd:forecast_raster", {
        "FOLDER": str(RAIN),
        "PATTERN": RAIN_PATTERN,
        "HISTORY": 4,
        "HORIZONS": "1, 3",  # three bands: every frame up to the largest horizon
        "TEACHER_SIZE": 0,
        "STUDENT_SIZE": 0,
        "EPOCHS": 1,
        "OVERRIDES": "\n".join(RASTER_FAST),
        "OUTPUT": QgsProcessing.TEMPORARY_OUTPUT,
        "OUTPUT_FOLDER": str(tmp / "run"),
    }, feedback=feedback)
    print(f"processing.run forecast_raster: {time.monotonic() - t0:.1f} s")
    return results, progress


def test_processing_run_forecasts_the_rain_stack(raster_run):
    results, progress = raster_run
    check_forecast_raster(results["OUTPUT"], bands=3)
    text = Path(results["MAP"]).read_text(encoding="utf-8")
    assert "leaflet" in text.lower() and "student" in text
    report = json.loads(Path(results["REPORT"]).read_text())
    assert report["dataset"]["frames"] == 48 and report["task"]["horizons"] == [1, 3]
    assert report["models"]["student"]["params"] < report["models"]["teacher"]["params"]
    assert Path(results["ONNX"]).stat().st_size > 1000
    names = {p.name for p in Path(results["OUTPUT_FOLDER"]).iterdir()}
    assert {"forecast.tif", "map.html", "report.json", "student.onnx", "model_meta.json"} <= names
    assert progress and max(progress) == 100 and progress == sorted(progress)


def rain_netcdf(path: Path) -> Path:
    """The sample frames as one NetCDF cube (time, y, x) with its CRS as a CF grid mapping."""
    import rioxarray  # noqa: F401
    import xarray as xr

    from stgeo_kd.ingest.rasters import open_raster_stack

    stack = open_raster_stack(RAIN, pattern=RAIN_PATTERN)
    da = stack.data.isel(band=0).load()
    ds = xr.Dataset({"rain": (("time", "y", "x"), da.values, {"units": "mm/h"})},
                    coords={"time": da["time"].values, "y": da["y"].values, "x": da["x"].values})
    ds.rio.write_crs(stack.crs).to_netcdf(path)
    return path


def test_qgis_process_forecasts_a_netcdf_cube(qgis_app, tmp_path):
    """qgis_process (system GDAL/netCDF/HDF5 loaded globally) reads a NetCDF file through the
    RASTER parameter: netCDF4 and rasterio must use the system libraries there."""
    env = qgis_process_env(tmp_path)
    cube = rain_netcdf(tmp_path / "rain.nc")
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run([
        QGIS_PROCESS, "--json", "run", "stgeo_kd:forecast_raster", "--",
        f"RASTER={cube}", "HISTORY=4", "HORIZONS=2", "TEACHER_SIZE=0", "STUDENT_SIZE=0", "EPOCHS=1",
        "OVERRIDES=" + ";".join(RASTER_FAST),
        f"OUTPUT={out}/forecast.tif",
        f"OUTPUT_FOLDER={out}/run",
    ], env=env, capture_output=True, text=True, timeout=300, check=False)
    print(f"qgis_process run forecast_raster: {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    doc = json.loads(proc.stdout)
    assert doc["algorithm_details"]["id"] == "stgeo_kd:forecast_raster"
    results = doc["results"]
    check_forecast_raster(results["OUTPUT"], bands=2)
    assert "leaflet" in Path(results["MAP"]).read_text(encoding="utf-8").lower()
    report = json.loads(Path(results["REPORT"]).read_text())
    assert report["dataset"]["frames"] == 48 and report["dataset"]["bands"] == ["rain"]
    assert any("training student (distilled)" in line for line in doc["log"]["info"])


def test_cancel_raster_run_leaves_nothing(qgis_app, tmp_path):
    from stgeo_kd.qgis import forecast_raster_layers

    feedback = CancelAt(5.0, delay=1.0)  # 1 s into the teacher's training
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        forecast_raster_layers(
            RAIN, tmp_path / "run", pattern=RAIN_PATTERN, teacher_size="small", student_size="small", epochs=500,
            overrides=[*RASTER_FAST, "task.patches.count=64", "train.patience=1000"],
            output=tmp_path / "forecast.tif", feedback=feedback,
        )
    feedback.timer.join()
    assert feedback.cancelled_at is not None, "training ended before the cancel"
    waited = time.monotonic() - feedback.cancelled_at
    print(f"raster run returned {waited:.2f} s after the cancel")
    assert waited < 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a cancelled run must leave no output"


def test_console_raster_helper_adds_the_layer(qgis_app, tmp_path):
    """forecast_raster_layers on a multi-band GeoTIFF layer (bands are time steps) of the frames."""
    import rasterio

    from stgeo_kd.qgis import forecast_raster_layers

    frames = sorted(RAIN.glob("rain_*.tif"))[:36]
    with rasterio.open(frames[0]) as first:
        profile = first.profile | {"count": len(frames)}
    stacked = tmp_path / "stack.tif"
    with rasterio.open(stacked, "w", **profile) as dst:
        for i, frame in enumerate(frames, start=1):
            with rasterio.open(frame) as src:
                dst.write(src.read(1), i)
            dst.set_band_description(i, frame.stem.split("_", 1)[1])  # 20240601_1200: its date
    run = forecast_raster_layers(
        QgsRasterLayer(str(stacked), "stack", "gdal"), tmp_path / "run", horizons=[1, 2], teacher_size="small",
        student_size="small", epochs=1, overrides=RASTER_FAST, add_to_project=True,
    )
    check_forecast_raster(run.forecast_path, bands=2)
    assert QgsProject.instance().mapLayer(run.layer.id()) is run.layer
    assert run.report["dataset"]["frames"] == 36 and run.map_path.is_file() and run.onnx_path.is_file()
    assert run.report["forecast"]["times"][0] == "2024-06-01 18:00:00"
