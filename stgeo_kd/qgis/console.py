"""One-call helpers for the QGIS Python console (and standalone PyQGIS scripts).

All three run the provider's algorithms through :meth:`QgsProcessingAlgorithm.run`, so they do
exactly what the toolbox does, and need QGIS's application to be running (as it is in the
console) but not the Processing plugin.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from stgeo_kd.qgis.algorithms import RASTER_SIZES, STUDENTS, TEACHERS
from stgeo_kd.qgis.provider import PROVIDER_ID, register_provider

_TABLE_SUFFIXES = {".csv", ".txt", ".tsv", ".gz", ".parquet", ".pq"}


class PrintFeedback(QgsProcessingFeedback):
    """Feedback that prints the algorithm's messages (and every 10 % of progress)."""

    def __init__(self):
        super().__init__()
        self._shown = -10
        self.progressChanged.connect(self._progress)

    def _progress(self, value: float) -> None:
        if value >= self._shown + 10:
            self._shown = int(value // 10 * 10)
            print(f"{self._shown:3d} %", flush=True)

    def pushInfo(self, info: str) -> None:
        print(info, flush=True)

    def pushWarning(self, warning: str) -> None:
        print(f"Warning: {warning}", flush=True)

    def reportError(self, error: str, fatalError: bool = False) -> None:
        print(f"Error: {error}", flush=True)


@dataclass
class DistillRun:
    """What :func:`distill_layers` returns.

    Attributes:
        layer: the forecast point layer (one point per sensor, in the sensors' CRS).
        out_dir: the run folder: report.json, map.html, student.onnx, predictions.gpkg, the
            weights and model_meta.json (give it to :func:`forecast_layers`).
        map_path, report_path, onnx_path: files in ``out_dir`` (None when not written).
        report: report.json as a dict (metrics, sizes, speed-ups, config).
        results: the algorithm's raw results.
    """

    layer: QgsVectorLayer
    out_dir: Path
    map_path: Path | None
    report_path: Path
    onnx_path: Path | None
    report: dict[str, Any] = field(repr=False)
    results: dict[str, Any] = field(repr=False)


def _layer_or_path(value):
    if value is None:
        return None
    if isinstance(value, QgsMapLayer):
        return value
    return str(Path(value).expanduser())


def _readings_parameters(readings) -> dict[str, Any]:
    if isinstance(readings, QgsMapLayer):
        return {"READINGS": readings}
    path = Path(str(readings)).expanduser()
    if path.suffix.lower() in _TABLE_SUFFIXES:
        return {"READINGS_FILE": str(path)}
    return {"READINGS": str(path)}


def _run(algorithm_id: str, parameters: dict[str, Any], feedback: QgsProcessingFeedback | None):
    register_provider()
    alg = QgsApplication.processingRegistry().createAlgorithmById(f"{PROVIDER_ID}:{algorithm_id}")
    if alg is None:
        raise QgsProcessingException(f"The algorithm {PROVIDER_ID}:{algorithm_id} is not registered.")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = feedback if feedback is not None else PrintFeedback()
    results, ok = alg.run(parameters, context, feedback, {}, False)
    if not ok:
        raise QgsProcessingException(f"{PROVIDER_ID}:{algorithm_id} failed; see the messages above.")
    return results, context


def _output_layer(value: str, context: QgsProcessingContext, name: str) -> QgsVectorLayer:
    layer = context.takeResultLayer(value)  # a memory layer (TEMPORARY_OUTPUT)
    if layer is None:
        layer = QgsVectorLayer(value, name, "ogr")
    layer.setName(name)
    if not layer.isValid():
        raise QgsProcessingException(f"The output layer {value} could not be opened.")
    return layer


def distill_layers(
    roads,
    sensors,
    readings,
    out_dir: str | Path | None = None,
    *,
    id_column: str = "sensor_id",
    time_column: str = "timestamp",
    value_column: str | None = None,
    sensor_id_field: str | None = None,
    sensor_name_field: str | None = None,
    history: int = 12,
    horizons: Sequence[int] | str = (3, 6, 9, 12),
    teacher: str = "graph_wavenet",
    student: str = "mlp",
    epochs: int = 15,
    student_epochs: int | None = None,
    config: str | Path | None = None,
    overrides: Sequence[str] | str | None = None,
    output: str | Path | None = None,
    add_to_project: bool = False,
    feedback: QgsProcessingFeedback | None = None,
    parameters: dict[str, Any] | None = None,
) -> DistillRun:
    """Distil a traffic forecaster from QGIS layers (or file paths) in one call.

    Args:
        roads: road line layer or file path (None: sensors linked by nearest neighbours).
        sensors: sensor point layer, a table layer with lon/lat fields, or a file path.
        readings: a table layer, or a CSV/Parquet file path (long: id, time, value; or wide).
        out_dir: the run folder (made if needed; a new temporary folder when None). Its files
            appear only once the run has finished.
        id_column / time_column / value_column: columns of the readings.
        sensor_id_field / sensor_name_field: fields of the sensor layer (id: as the readings').
        history, horizons: input steps and forecast steps ahead.
        teacher, student: model names (``stgeo_kd.qgis.algorithms.TEACHERS`` / ``STUDENTS``).
        epochs, student_epochs: training epochs (students: as the teacher when None).
        config: a YAML config as the base for everything else; overrides: ``key.path=value``
            strings (as ``stgeo-kd run --set``).
        output: a file for the forecast layer (e.g. ``.gpkg``); None: a memory layer.
        add_to_project: add the forecast layer to the current project.
        feedback: a QgsProcessingFeedback (progress, cancel); None prints the messages.
        parameters: further algorithm parameters by name (e.g. ``{"LON_FIELD": "x"}``).

    Returns:
        :class:`DistillRun` with the layer, the run folder, the file paths and the report.

    Raises:
        QgsProcessingException: bad inputs (the message says what to fix), a cancel, or
            missing dependencies.
    """
    if teacher not in TEACHERS or student not in STUDENTS:
        raise QgsProcessingException(f"Choose teacher from {list(TEACHERS)} and student from {list(STUDENTS)}.")
    out = Path(out_dir).expanduser() if out_dir is not None else Path(tempfile.mkdtemp(prefix="stgeo_kd_run_"))
    params: dict[str, Any] = {
        "ROADS": _layer_or_path(roads),
        "SENSORS": _layer_or_path(sensors),
        "ID_COLUMN": id_column,
        "TIME_COLUMN": time_column or "",
        "VALUE_COLUMN": value_column or "",
        "SENSOR_ID_FIELD": sensor_id_field,
        "SENSOR_NAME_FIELD": sensor_name_field,
        "HISTORY": int(history),
        "HORIZONS": horizons if isinstance(horizons, str) else ", ".join(str(int(h)) for h in horizons),
        "TEACHER": TEACHERS.index(teacher),
        "STUDENT": STUDENTS.index(student),
        "EPOCHS": int(epochs),
        "STUDENT_EPOCHS": int(student_epochs or 0),
        "CONFIG": str(config) if config else None,
        "OVERRIDES": overrides if isinstance(overrides, str) or overrides is None else "\n".join(overrides),
        "OUTPUT": str(output) if output else QgsProcessing.TEMPORARY_OUTPUT,
        "OUTPUT_FOLDER": str(out),
    }
    params.update(_readings_parameters(readings))
    params.update(parameters or {})
    params = {k: v for k, v in params.items() if v is not None}
    results, context = _run("distill_traffic", params, feedback)
    layer = _output_layer(results["OUTPUT"], context, "stgeo_kd forecast")
    if add_to_project:
        QgsProject.instance().addMapLayer(layer)
    report_path = Path(results["REPORT"])

    def _path(key):
        return Path(results[key]) if results.get(key) else None

    return DistillRun(
        layer=layer,
        out_dir=Path(results["OUTPUT_FOLDER"]),
        map_path=_path("MAP"),
        report_path=report_path,
        onnx_path=_path("ONNX"),
        report=json.loads(report_path.read_text(encoding="utf-8")),
        results=dict(results),
    )


def forecast_layers(
    run_dir: str | Path,
    readings,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    value_column: str | None = None,
    output_crs: str | None = None,
    output: str | Path | None = None,
    add_to_project: bool = False,
    feedback: QgsProcessingFeedback | None = None,
) -> QgsVectorLayer:
    """Forecast from new readings with the student of a finished run (its ``out_dir``).

    ``readings``: a table layer or CSV/Parquet path with at least the run's history of steps;
    empty column names take the run's. Returns the forecast point layer (a memory layer, or
    ``output`` when given), added to the project with ``add_to_project``.
    """
    params: dict[str, Any] = {
        "RUN_FOLDER": str(Path(run_dir).expanduser()),
        "ID_COLUMN": id_column or "",
        "TIME_COLUMN": time_column or "",
        "VALUE_COLUMN": value_column or "",
        "OUTPUT": str(output) if output else QgsProcessing.TEMPORARY_OUTPUT,
    }
    if output_crs:
        params["OUTPUT_CRS"] = output_crs
    params.update(_readings_parameters(readings))
    results, context = _run("forecast_student", params, feedback)
    layer = _output_layer(results["OUTPUT"], context, "stgeo_kd student forecast")
    if add_to_project:
        QgsProject.instance().addMapLayer(layer)
    return layer


@dataclass
class RasterRun:
    """What :func:`forecast_raster_layers` returns.

    Attributes:
        layer: the forecast raster layer (the input grid and CRS, one band per frame ahead).
        out_dir: the run folder: forecast.tif, report.json, map.html, student.onnx, the
            weights and model_meta.json.
        forecast_path: the file of ``layer`` (``output``, or a temporary GeoTIFF).
        map_path, report_path, onnx_path: files in ``out_dir`` (None when not written).
        report: report.json as a dict (metrics against persistence, sizes, speeds, config).
        results: the algorithm's raw results.
    """

    layer: QgsRasterLayer
    out_dir: Path
    forecast_path: Path
    map_path: Path | None
    report_path: Path
    onnx_path: Path | None
    report: dict[str, Any] = field(repr=False)
    results: dict[str, Any] = field(repr=False)


def forecast_raster_layers(
    frames,
    out_dir: str | Path | None = None,
    *,
    pattern: str | None = None,
    variable: str | Sequence[str] | None = None,
    history: int = 4,
    horizons: Sequence[int] | str = (1, 2, 3),
    teacher_size: str = "medium",
    student_size: str = "small",
    epochs: int = 8,
    seed: int = 0,
    config: str | Path | None = None,
    overrides: Sequence[str] | str | None = None,
    output: str | Path | None = None,
    add_to_project: bool = False,
    feedback: QgsProcessingFeedback | None = None,
    parameters: dict[str, Any] | None = None,
) -> RasterRun:
    """Distil a raster nowcaster from a time stack and forecast the next frames, in one call.

    Args:
        frames: a folder of dated GeoTIFF / NetCDF frames, a multi-band GeoTIFF or NetCDF file,
            or a ``QgsRasterLayer``.
        out_dir: the run folder (made if needed; a new temporary folder when None). Its files
            appear only once the run has finished.
        pattern: for a folder, a regular expression with a ``(?P<date>...)`` group matched
            against the file names (None: any date in the name).
        variable: NetCDF variable(s) (None: the only one, or the layer's).
        history, horizons: input frames and frames ahead.
        teacher_size, student_size: ``small``, ``medium`` or ``large``.
        epochs, seed: training epochs and random seed.
        config: a YAML config as the base for everything else; overrides: ``key.path=value``
            strings (as ``stgeo-kd run --set``).
        output: a file for the forecast raster (``.tif``); None: a temporary GeoTIFF.
        add_to_project: add the forecast layer to the current project.
        feedback: a QgsProcessingFeedback (progress, cancel); None prints the messages.
        parameters: further algorithm parameters by name (e.g. ``{"START": "2024-06-01"}``).

    Returns:
        :class:`RasterRun`: the raster layer, the run folder, the file paths and the report.

    Raises:
        QgsProcessingException: bad inputs (the message says what to fix), a cancel, or
            missing dependencies.
    """
    if teacher_size not in RASTER_SIZES or student_size not in RASTER_SIZES:
        raise QgsProcessingException(f"Choose teacher_size and student_size from {list(RASTER_SIZES)}.")
    out = Path(out_dir).expanduser() if out_dir is not None else Path(tempfile.mkdtemp(prefix="stgeo_kd_raster_"))
    params: dict[str, Any] = {
        "PATTERN": pattern or "",
        "VARIABLE": variable if isinstance(variable, str) or variable is None else ", ".join(variable),
        "HISTORY": int(history),
        "HORIZONS": horizons if isinstance(horizons, str) else ", ".join(str(int(h)) for h in horizons),
        "TEACHER_SIZE": RASTER_SIZES.index(teacher_size),
        "STUDENT_SIZE": RASTER_SIZES.index(student_size),
        "EPOCHS": int(epochs),
        "SEED": int(seed),
        "CONFIG": str(config) if config else None,
        "OVERRIDES": overrides if isinstance(overrides, str) or overrides is None else "\n".join(overrides),
        "OUTPUT": str(output) if output else QgsProcessing.TEMPORARY_OUTPUT,
        "OUTPUT_FOLDER": str(out),
    }
    if isinstance(frames, QgsMapLayer):
        params["RASTER"] = frames
    else:
        path = Path(str(frames)).expanduser()
        params["FOLDER" if path.is_dir() else "RASTER"] = str(path)
    params.update(parameters or {})
    params = {k: v for k, v in params.items() if v is not None}
    results, _ = _run("forecast_raster", params, feedback)
    forecast = Path(results["OUTPUT"])
    layer = QgsRasterLayer(str(forecast), "stgeo_kd raster forecast", "gdal")
    if not layer.isValid():
        raise QgsProcessingException(f"The forecast raster {forecast} could not be opened.")
    if add_to_project:
        QgsProject.instance().addMapLayer(layer)
    report_path = Path(results["REPORT"])

    def _path(key):
        return Path(results[key]) if results.get(key) else None

    return RasterRun(
        layer=layer,
        out_dir=Path(results["OUTPUT_FOLDER"]),
        forecast_path=forecast,
        map_path=_path("MAP"),
        report_path=report_path,
        onnx_path=_path("ONNX"),
        report=json.loads(report_path.read_text(encoding="utf-8")),
        results=dict(results),
    )
