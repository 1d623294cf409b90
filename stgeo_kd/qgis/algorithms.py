"""The Processing algorithms: "Distill a traffic forecaster", "Forecast with a trained student"
and "Forecast a raster stack".

Only QGIS is imported at module level. torch, Lightning and the pipeline are imported inside
``processAlgorithm`` (via :mod:`stgeo_kd.qgis.jobs`), so the toolbox opens fast and a missing
dependency shows up as a :class:`QgsProcessingException` that says what to install. Nothing
here touches ``iface``: the algorithms run the same under ``qgis_process``.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputHtml,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterFileWriter,
    QgsRasterPipe,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, Qt, QTime, QVariant

#: kept in step with stgeo_kd.qgis.jobs.TEACHERS / STUDENTS (that module imports torch)
TEACHERS = ("graph_wavenet", "gnn", "gru", "lstm", "mlp")
STUDENTS = ("mlp", "gnn", "gru", "lstm")
#: kept in step with stgeo_kd.qgis.jobs.RASTER_TEACHER_SIZES / RASTER_STUDENT_SIZES
RASTER_SIZES = ("small", "medium", "large")
TABLE_FILTER = "Readings tables (*.csv *.csv.gz *.tsv *.parquet *.pq);;All files (*.*)"
INSTALL_HINT = (
    "Install stgeo_kd and its dependencies into the Python that QGIS runs (see docs/qgis.md, "
    "'Install'): python -m pip install torch stgeo_kd[onnx]"
)


#: config keys that StgeoError messages name -> the algorithm parameters that set them
KEY_LABELS = {
    "data.id_column": "Readings: sensor-id column",
    "data.time_column": "Readings: time column",
    "data.value_column": "Readings: value column",
    "data.missing_values": "Readings that mean 'no data'",
    "data.sensors_id_column": "Sensors: id field",
    "data.name_column": "Sensors: name field",
    "data.lon_column": "Sensor table: x / longitude field",
    "data.lat_column": "Sensor table: y / latitude field",
    "data.sensors_crs": "Sensor table CRS",
    "task.history": "History",
    "task.horizons": "Horizons",
    "train.epochs": "Epochs",
    "train.student_epochs": "Student epochs",
    "data.pattern": "File name pattern",
    "data.time_format": "Date format in the file names",
    "data.variable": "NetCDF variable(s)",
    "data.start": "First time (bands without dates)",
    "data.freq": "Time step (bands without dates)",
}


def _error(exc: Exception) -> QgsProcessingException:
    """A StgeoError as a QgsProcessingException, naming the algorithm parameter beside each
    config key (the messages are written for config files)."""
    text = str(exc)
    for key, label in KEY_LABELS.items():
        text = re.sub(rf"(?<![\w.]){re.escape(key)}(?!\w)", f"{key} (parameter '{label}')", text, count=1)
    return QgsProcessingException(text)


def _jobs():
    """stgeo_kd.qgis.jobs (torch, Lightning, the pipeline), or a QgsProcessingException saying
    what to install."""
    try:
        from stgeo_kd.qgis import jobs
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise QgsProcessingException(f"stgeo_kd cannot run here: the Python package {missing!r} is missing ({exc}). {INSTALL_HINT}") from None
    return jobs


def _advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


class _Base(QgsProcessingAlgorithm):
    def group(self) -> str:
        return "Traffic forecasting"

    def groupId(self) -> str:
        return "traffic"

    def createInstance(self):
        return type(self)()

    # -- inputs -----------------------------------------------------------------------------

    def _add_readings_params(self, required_columns: bool) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            "READINGS", "Readings table (a layer; or give a file below)", [QgsProcessing.TypeVector], optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "READINGS_FILE", "Readings file (CSV or Parquet; instead of a layer)", QgsProcessingParameterFile.File,
            optional=True, fileFilter=TABLE_FILTER))
        if required_columns:
            self.addParameter(QgsProcessingParameterString("ID_COLUMN", "Readings: sensor-id column", "sensor_id"))
            self.addParameter(QgsProcessingParameterString("TIME_COLUMN", "Readings: time column", "timestamp"))
            self.addParameter(QgsProcessingParameterString(
                "VALUE_COLUMN", "Readings: value column (empty: the only other column)", optional=True))
        else:
            for key, label in (("ID_COLUMN", "sensor-id"), ("TIME_COLUMN", "time"), ("VALUE_COLUMN", "value")):
                self.addParameter(QgsProcessingParameterString(
                    key, f"Readings: {label} column (empty: as in the trained run)", optional=True))

    def _readings_path(self, parameters, context, feedback, folder: Path) -> Path:
        """The readings as a CSV/Parquet file: the given file, or the table layer written to CSV."""
        path = self.parameterAsFile(parameters, "READINGS_FILE", context)
        source = self.parameterAsSource(parameters, "READINGS", context) if parameters.get("READINGS") else None
        if path and source is not None:
            raise QgsProcessingException("Give the readings either as a layer or as a file, not both.")
        if path:
            return Path(path)
        if source is None:
            raise QgsProcessingException("Give the readings: a table layer (Readings table) or a CSV/Parquet file (Readings file).")
        feedback.pushInfo(f"writing the readings layer ({source.featureCount()} rows) to a temporary CSV ...")
        return _source_to_csv(source, folder / "readings.csv", feedback)

    def _str(self, parameters, context, key, default=None):
        """A text or field parameter (its default when not given), stripped; ``default`` when empty."""
        if self.parameterDefinition(key).type() == "field":
            fields = self.parameterAsFields(parameters, key, context)
            text = fields[0].strip() if fields else ""
        else:
            text = (self.parameterAsString(parameters, key, context) or "").strip()
        return text or default

    def _feedback_hooks(self, feedback):
        def report(fraction: float, message: str | None) -> None:
            feedback.setProgress(100.0 * fraction)
            if message:
                feedback.pushInfo(message)

        def warn(message: str) -> None:
            if hasattr(feedback, "pushWarning"):
                feedback.pushWarning(message)
            else:
                feedback.pushInfo(f"Warning: {message}")

        return report, feedback.isCanceled, warn

    # -- outputs ----------------------------------------------------------------------------

    def _write_points(self, frame, parameters, context, target_crs: QgsCoordinateReferenceSystem) -> str:
        """The GeoDataFrame ``frame`` into the OUTPUT sink as points in ``target_crs``."""
        columns = [c for c in frame.columns if c != frame.geometry.name]
        fields = QgsFields()
        kinds = {}
        for name in columns:
            kind = frame[name].dtype.kind
            kinds[name] = kind
            qtype = {"f": QVariant.Double, "i": QVariant.LongLong, "u": QVariant.LongLong, "b": QVariant.Bool}.get(kind, QVariant.String)
            fields.append(QgsField(str(name), qtype))
        source_crs = _qgs_crs(frame.crs)
        if not target_crs.isValid():
            target_crs = source_crs
        sink, dest_id = self.parameterAsSink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Point, target_crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        transform = QgsCoordinateTransform(source_crs, target_crs, context.transformContext())
        for values in frame.to_dict("records"):
            feature = QgsFeature(fields)
            feature.setAttributes([_qvalue(values[name], kinds[name]) for name in columns])
            point = values[frame.geometry.name]
            if point is not None and not point.is_empty:
                geometry = QgsGeometry.fromPointXY(QgsPointXY(point.x, point.y))
                geometry.transform(transform)
                feature.setGeometry(geometry)
            if not sink.addFeature(feature, QgsFeatureSink.FastInsert):
                raise QgsProcessingException(f"Could not write a feature to the output layer: {sink.lastError()}")
        return dest_id


class DistillTrafficAlgorithm(_Base):
    """Train a teacher on the sensor readings, distil it into a small student and write the
    forecast layer, the HTML map, report.json and the ONNX student."""

    def name(self) -> str:
        return "distill_traffic"

    def displayName(self) -> str:
        return "Distill a traffic forecaster"

    def shortHelpString(self) -> str:
        return (
            "Trains a graph teacher on sensor readings, distils it into a small fast student (and trains the same "
            "student on the labels alone, for comparison), and writes a forecast point layer, an HTML map, "
            "report.json (accuracy, size and speed of every model) and the student as ONNX.<br><br>"
            "<b>Roads</b>: line layer; sensors are snapped to it and linked by road distance (without roads: "
            "nearest neighbours). <b>Sensors</b>: a point layer, or a table with longitude/latitude columns "
            "(in the 'Sensor table CRS'). <b>Readings</b>: a table layer or a CSV/Parquet file in long form "
            "(sensor id, time, value) or wide form (a time column and one column per sensor).<br>"
            "<b>History</b>: input time steps; <b>horizons</b>: forecast steps ahead, e.g. 3, 6, 9, 12.<br><br>"
            "The run folder also keeps the weights and model_meta.json that 'Forecast with a trained student' "
            "needs. Outputs appear only when the run has finished: cancelling leaves nothing behind. Advanced: "
            "a YAML config as the base, and overrides such as <code>teacher.params.channels=16</code> (one per line)."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFeatureSource(
            "ROADS", "Road lines", [QgsProcessing.TypeVectorLine], optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "SENSORS", "Sensors (point layer, or table with lon/lat)", [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVector]))
        self.addParameter(QgsProcessingParameterField(
            "SENSOR_ID_FIELD", "Sensors: id field (empty: the readings' id column)", parentLayerParameterName="SENSORS",
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            "SENSOR_NAME_FIELD", "Sensors: name field (optional, shown on the map)", parentLayerParameterName="SENSORS",
            optional=True))
        self._add_readings_params(required_columns=True)
        self.addParameter(QgsProcessingParameterNumber(
            "HISTORY", "History (input time steps)", QgsProcessingParameterNumber.Integer, 12, minValue=1))
        self.addParameter(QgsProcessingParameterString("HORIZONS", "Horizons (steps ahead, comma-separated)", "3, 6, 9, 12"))
        self.addParameter(QgsProcessingParameterEnum("TEACHER", "Teacher model", list(TEACHERS), defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum("STUDENT", "Student model", list(STUDENTS), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "EPOCHS", "Epochs (teacher; students too unless set below)", QgsProcessingParameterNumber.Integer, 15, minValue=1))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "STUDENT_EPOCHS", "Student epochs (0: as the teacher)", QgsProcessingParameterNumber.Integer, 0, minValue=0)))
        self.addParameter(_advanced(QgsProcessingParameterField(
            "LON_FIELD", "Sensor table: x / longitude field", "lon", parentLayerParameterName="SENSORS", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterField(
            "LAT_FIELD", "Sensor table: y / latitude field", "lat", parentLayerParameterName="SENSORS", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterCrs(
            "SENSORS_CRS", "Sensor table CRS (of its x/y fields)", "EPSG:4326", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "MISSING_VALUES", "Readings that mean 'no data' (comma-separated; empty: none)", "0", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString("UNITS", "Units of the readings (for the map)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "SEED", "Random seed", QgsProcessingParameterNumber.Integer, 0, minValue=0)))
        self.addParameter(_advanced(QgsProcessingParameterFile(
            "CONFIG", "Base config (YAML; the inputs above replace its data, task and model choices)",
            QgsProcessingParameterFile.File, optional=True, fileFilter="YAML (*.yaml *.yml)")))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "OVERRIDES", "Overrides (key.path=value, one per line, e.g. train.batch_size=32)", multiLine=True, optional=True)))
        self.addParameter(QgsProcessingParameterFeatureSink(
            "OUTPUT", "Forecast points", QgsProcessing.TypeVectorPoint))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "OUTPUT_FOLDER", "Run folder (map, report, ONNX student, weights)"))
        self.addOutput(QgsProcessingOutputHtml("MAP", "Forecast map (HTML)"))
        self.addOutput(QgsProcessingOutputFile("REPORT", "Report (report.json)"))
        self.addOutput(QgsProcessingOutputFile("ONNX", "Student model (ONNX)"))

    def processAlgorithm(self, parameters, context, feedback):
        jobs = _jobs()
        from stgeo_kd.errors import StgeoError

        out_dir = Path(self.parameterAsString(parameters, "OUTPUT_FOLDER", context))
        with tempfile.TemporaryDirectory(prefix="stgeo_kd_inputs_", dir=QgsProcessingUtils.tempFolder()) as tmp:
            folder = Path(tmp)
            roads_path = roads_layer = None
            if parameters.get("ROADS"):
                roads_path, roads_layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
                    parameters, "ROADS", context, ["gpkg", "shp", "geojson"], "gpkg", feedback)
            sensors = self.parameterAsSource(parameters, "SENSORS", context)
            if sensors is None:
                raise QgsProcessingException(self.invalidSourceError(parameters, "SENSORS"))
            lon = self._str(parameters, context, "LON_FIELD", "lon")
            lat = self._str(parameters, context, "LAT_FIELD", "lat")
            table_crs = self.parameterAsCrs(parameters, "SENSORS_CRS", context)
            if sensors.wkbType() == QgsWkbTypes.NoGeometry:
                sensors_path, sensors_layer = _source_to_csv(sensors, folder / "sensors.csv", feedback), None
                out_crs = table_crs if table_crs.isValid() else QgsCoordinateReferenceSystem("EPSG:4326")
            else:
                sensors_path, sensors_layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
                    parameters, "SENSORS", context, ["gpkg", "shp", "geojson"], "gpkg", feedback)
                out_crs = sensors.sourceCrs()
            readings_path = self._readings_path(parameters, context, feedback, folder)
            id_column = self._str(parameters, context, "ID_COLUMN", "sensor_id")
            missing = self._str(parameters, context, "MISSING_VALUES", "")
            try:
                cfg = jobs.distill_config(
                    readings=readings_path,
                    sensors=sensors_path,
                    sensors_layer=sensors_layer or None,
                    roads=roads_path,
                    roads_layer=roads_layer or None,
                    id_column=id_column,
                    time_column=self._str(parameters, context, "TIME_COLUMN"),
                    value_column=self._str(parameters, context, "VALUE_COLUMN"),
                    sensors_id_column=self._str(parameters, context, "SENSOR_ID_FIELD"),
                    name_column=self._str(parameters, context, "SENSOR_NAME_FIELD"),
                    lon_column=lon,
                    lat_column=lat,
                    sensors_crs=_crs_text(table_crs) if table_crs.isValid() else "EPSG:4326",
                    missing_values=jobs.parse_missing_values(missing),
                    units=self._str(parameters, context, "UNITS", ""),
                    name=Path(str(readings_path)).stem.split(".")[0],
                    history=self.parameterAsInt(parameters, "HISTORY", context),
                    horizons=self.parameterAsString(parameters, "HORIZONS", context),
                    teacher=TEACHERS[self.parameterAsEnum(parameters, "TEACHER", context)],
                    student=STUDENTS[self.parameterAsEnum(parameters, "STUDENT", context)],
                    epochs=self.parameterAsInt(parameters, "EPOCHS", context),
                    student_epochs=self.parameterAsInt(parameters, "STUDENT_EPOCHS", context) or None,
                    seed=self.parameterAsInt(parameters, "SEED", context),
                    base_config=self._str(parameters, context, "CONFIG"),
                    overrides=self._str(parameters, context, "OVERRIDES"),
                )
                report, is_canceled, warn = self._feedback_hooks(feedback)
                result = jobs.run_into(cfg, out_dir, report=report, is_canceled=is_canceled, warn=warn)
            except jobs.Cancelled as exc:
                raise QgsProcessingException(str(exc)) from None
            except StgeoError as exc:
                raise _error(exc) from None
        feedback.pushInfo(_summary(result.report))
        dest_id = self._write_points(result.predictions, parameters, context, out_crs)
        arts = result.artifacts
        return {
            "OUTPUT": dest_id,
            "OUTPUT_FOLDER": str(out_dir),
            "MAP": str(arts["map"]) if "map" in arts else None,
            "REPORT": str(arts["report"]),
            "ONNX": str(arts["onnx"]) if "onnx" in arts else None,
        }


class ForecastStudentAlgorithm(_Base):
    """Forecast from new readings with the student saved by a distillation run."""

    def name(self) -> str:
        return "forecast_student"

    def displayName(self) -> str:
        return "Forecast with a trained student"

    def shortHelpString(self) -> str:
        return (
            "Forecasts the next time steps for every sensor with the student of an earlier 'Distill a traffic "
            "forecaster' run (or stgeo-kd run): give that run's output folder and a table of recent readings of the "
            "same sensors at the same time step (at least the run's history of steps; the forecast starts after "
            "its last time stamp). The student is rebuilt from model_meta.json and student.pt (weights only: "
            "nothing in the file is run). The output has one point per sensor with the forecast per horizon "
            "(student_h3 ...) and its time (time_h3 ...), in the run's sensor CRS or the CRS chosen here. "
            "Empty column settings take those of the run."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            "RUN_FOLDER", "Run folder of a distillation (holds model_meta.json, student.pt)",
            QgsProcessingParameterFile.Folder))
        self._add_readings_params(required_columns=False)
        self.addParameter(_advanced(QgsProcessingParameterString(
            "MISSING_VALUES", "Readings that mean 'no data' (comma-separated; empty: as in the run)", optional=True)))
        self.addParameter(QgsProcessingParameterCrs("OUTPUT_CRS", "Output CRS (empty: the run's)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", "Forecast points", QgsProcessing.TypeVectorPoint))

    def processAlgorithm(self, parameters, context, feedback):
        jobs = _jobs()
        import warnings

        from stgeo_kd.errors import StgeoError

        run_dir = self.parameterAsFile(parameters, "RUN_FOLDER", context)
        with tempfile.TemporaryDirectory(prefix="stgeo_kd_inputs_", dir=QgsProcessingUtils.tempFolder()) as tmp:
            readings = self._readings_path(parameters, context, feedback, Path(tmp))
            if feedback.isCanceled():
                raise QgsProcessingException("Cancelled by the user; nothing was written.")
            missing = self._str(parameters, context, "MISSING_VALUES")
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    frame, info = jobs.forecast_from_run(
                        run_dir, readings,
                        id_column=self._str(parameters, context, "ID_COLUMN"),
                        time_column=self._str(parameters, context, "TIME_COLUMN"),
                        value_column=self._str(parameters, context, "VALUE_COLUMN"),
                        missing_values=jobs.parse_missing_values(missing) if missing is not None else None,
                    )
            except StgeoError as exc:
                raise _error(exc) from None
        _, _, warn = self._feedback_hooks(feedback)
        for w in caught:
            if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                warn(str(w.message))
        if frame.geometry.isna().all():
            raise QgsProcessingException(f"{run_dir} has no sensor locations (predictions.gpkg); run the distillation again.")
        feedback.pushInfo(
            f"{info['student']} student: forecasts for {info['sensors']} sensors from {info['forecast_origin']}, "
            f"{', '.join(str(k) for k in info['horizons'])} steps of {info['step_minutes']:g} min ahead"
        )
        target = self.parameterAsCrs(parameters, "OUTPUT_CRS", context)
        dest_id = self._write_points(frame, parameters, context, target)
        feedback.setProgress(100)
        return {"OUTPUT": dest_id}


class ForecastRasterAlgorithm(_Base):
    """Distil a raster nowcaster from a time stack of frames and forecast the next frames."""

    def name(self) -> str:
        return "forecast_raster"

    def displayName(self) -> str:
        return "Forecast a raster stack"

    def group(self) -> str:
        return "Raster forecasting"

    def groupId(self) -> str:
        return "raster"

    def shortHelpString(self) -> str:
        return (
            "Trains a spatio-temporal CNN teacher on a time stack of rasters (rain radar, temperature, satellite "
            "frames ...), distils it into a small depthwise-separable CNN student (and trains the same student on "
            "the labels alone, for comparison), and forecasts the frames after the last one.<br><br>"
            "<b>Frames</b>: a folder of GeoTIFF or NetCDF files with the date in their names (the <b>file name "
            "pattern</b> is a regular expression with a <code>(?P&lt;date&gt;...)</code> group, e.g. "
            "<code>rain_(?P&lt;date&gt;\\d{8}_\\d{4})\\.tif$</code>; empty: any date in the name), <i>or</i> a "
            "raster layer / file: a multi-band GeoTIFF whose bands are time steps (dated by their descriptions, or "
            "by 'First time' and 'Time step') or a NetCDF file with a time dimension. All frames must share one "
            "grid.<br><b>History</b>: input frames; <b>horizons</b>: frames ahead, e.g. 1, 2, 3.<br><br>"
            "The forecast raster is on the input grid (CRS, extent, pixel size and nodata), one band per frame "
            "ahead up to the largest horizon. The run folder holds the HTML map, report.json (accuracy against "
            "persistence, size and speed of every model), the student as ONNX and the weights. Outputs appear only "
            "when the run has finished: cancelling leaves nothing behind."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            "FOLDER", "Folder of frames (GeoTIFF / NetCDF, dated file names)", QgsProcessingParameterFile.Folder,
            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "RASTER", "or: a raster layer / file (multi-band GeoTIFF of time steps, or NetCDF)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            "PATTERN", "File name pattern (regular expression with a (?P<date>...) group; empty: any date)",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "HISTORY", "History (input frames)", QgsProcessingParameterNumber.Integer, 4, minValue=1))
        self.addParameter(QgsProcessingParameterString("HORIZONS", "Horizons (frames ahead, comma-separated)", "1, 2, 3"))
        self.addParameter(QgsProcessingParameterEnum("TEACHER_SIZE", "Teacher size (ST-CNN)", list(RASTER_SIZES), defaultValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            "STUDENT_SIZE", "Student size (depthwise-separable CNN)", list(RASTER_SIZES), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "EPOCHS", "Epochs", QgsProcessingParameterNumber.Integer, 8, minValue=1))
        self.addParameter(_advanced(QgsProcessingParameterNumber(
            "SEED", "Random seed", QgsProcessingParameterNumber.Integer, 0, minValue=0)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "TIME_FORMAT", "Date format in the file names (strftime codes, e.g. %Y%m%d_%H%M; empty: guessed)",
            optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "VARIABLE", "NetCDF variable(s) (comma-separated; empty: the only one, or the layer's)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "START", "First time (bands without dates, e.g. 2024-06-01 12:00)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "FREQ", "Time step (bands without dates, e.g. 10min, 1h)", optional=True)))
        self.addParameter(_advanced(QgsProcessingParameterFile(
            "CONFIG", "Base config (YAML; the inputs above replace its data, task and model choices)",
            QgsProcessingParameterFile.File, optional=True, fileFilter="YAML (*.yaml *.yml)")))
        self.addParameter(_advanced(QgsProcessingParameterString(
            "OVERRIDES", "Overrides (key.path=value, one per line, e.g. task.patches.count=128)", multiLine=True,
            optional=True)))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Forecast raster"))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "OUTPUT_FOLDER", "Run folder (map, report, ONNX student, weights)"))
        self.addOutput(QgsProcessingOutputHtml("MAP", "Forecast map (HTML)"))
        self.addOutput(QgsProcessingOutputFile("REPORT", "Report (report.json)"))
        self.addOutput(QgsProcessingOutputFile("ONNX", "Student model (ONNX)"))

    def processAlgorithm(self, parameters, context, feedback):
        jobs = _jobs()
        from stgeo_kd.errors import StgeoError

        out_dir = Path(self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context))
        dest = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        with tempfile.TemporaryDirectory(prefix="stgeo_kd_inputs_", dir=QgsProcessingUtils.tempFolder()) as tmp:
            path, layer_variable = self._frames(parameters, context, feedback, Path(tmp))
            try:
                cfg = jobs.raster_config(
                    path=path,
                    pattern=self._str(parameters, context, "PATTERN"),
                    variable=self._str(parameters, context, "VARIABLE") or layer_variable,
                    time_format=self._str(parameters, context, "TIME_FORMAT"),
                    start=self._str(parameters, context, "START"),
                    freq=self._str(parameters, context, "FREQ"),
                    name=path.stem.split(".")[0] if path.is_file() else path.name,
                    history=self.parameterAsInt(parameters, "HISTORY", context),
                    horizons=self.parameterAsString(parameters, "HORIZONS", context),
                    teacher_size=RASTER_SIZES[self.parameterAsEnum(parameters, "TEACHER_SIZE", context)],
                    student_size=RASTER_SIZES[self.parameterAsEnum(parameters, "STUDENT_SIZE", context)],
                    epochs=self.parameterAsInt(parameters, "EPOCHS", context),
                    seed=self.parameterAsInt(parameters, "SEED", context),
                    base_config=self._str(parameters, context, "CONFIG"),
                    overrides=self._str(parameters, context, "OVERRIDES"),
                )
                report, is_canceled, warn = self._feedback_hooks(feedback)
                result = jobs.run_into(cfg, out_dir, report=report, is_canceled=is_canceled, warn=warn)
            except jobs.Cancelled as exc:
                raise QgsProcessingException(str(exc)) from None
            except StgeoError as exc:
                raise _error(exc) from None
        feedback.pushInfo(_summary(result.report))
        arts = result.artifacts
        _copy_raster(Path(arts["geotiff"]), Path(dest))
        feedback.pushInfo(f"forecast raster: {dest}")
        return {
            "OUTPUT": dest,
            "OUTPUT_FOLDER": str(out_dir),
            "MAP": str(arts["map"]) if "map" in arts else None,
            "REPORT": str(arts["report"]),
            "ONNX": str(arts["onnx"]) if "onnx" in arts else None,
        }

    def _frames(self, parameters, context, feedback, folder: Path) -> tuple[Path, str | None]:
        """The stack to read: the folder, or the raster layer's file (and its NetCDF variable);
        a layer that is not a local file is written to a temporary GeoTIFF first."""
        frames = self.parameterAsFile(parameters, "FOLDER", context)
        has_layer = bool(parameters.get("RASTER"))
        if frames and has_layer:
            raise QgsProcessingException("Give the frames either as a folder or as a raster layer / file, not both.")
        if frames:
            return Path(frames), None
        if not has_layer:
            raise QgsProcessingException(
                "Give the frames: a folder of dated GeoTIFF / NetCDF files (Folder of frames), or a multi-band "
                "GeoTIFF / NetCDF file or raster layer.")
        layer = self.parameterAsRasterLayer(parameters, "RASTER", context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(self.invalidRasterError(parameters, "RASTER"))
        parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
        path, variable = parts.get("path") or "", parts.get("layerName") or None
        netcdf = re.fullmatch(r'NETCDF:"?(.+?)"?:([^:"]+)', path)  # one variable of a NetCDF file
        if netcdf:
            path, variable = netcdf.groups()
        if layer.providerType() == "gdal" and path and Path(path).is_file():
            return Path(path), variable
        feedback.pushInfo(f"writing the raster layer {layer.name()!r} to a temporary GeoTIFF ...")
        target = folder / "stack.tif"
        writer = QgsRasterFileWriter(str(target))
        writer.setOutputFormat("GTiff")
        pipe = QgsRasterPipe()
        if not pipe.set(layer.dataProvider().clone()):
            raise QgsProcessingException(f"The raster layer {layer.name()!r} cannot be read.")
        code = writer.writeRaster(pipe, layer.width(), layer.height(), layer.extent(), layer.crs(),
                                  context.transformContext())
        if code != QgsRasterFileWriter.NoError:
            raise QgsProcessingException(f"The raster layer {layer.name()!r} could not be written to {target} ({code}).")
        return target, None


# ---------------------------------------------------------------------------------------------


def _source_to_csv(source, path: Path, feedback=None) -> Path:
    """The attribute table of a feature source (geometry left out) as a UTF-8 CSV: dates and
    times in ISO 8601, NULL as an empty cell."""
    names = [f.name() for f in source.fields()]
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry)
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for feature in source.getFeatures(request):
            if feedback is not None and rows % 20000 == 0 and feedback.isCanceled():
                raise QgsProcessingException("Cancelled by the user; nothing was written.")
            writer.writerow([_csv_value(v) for v in feature.attributes()])
            rows += 1
    if feedback is not None:
        feedback.pushInfo(f"  {rows} rows written to {path.name}")
    return path


def _copy_raster(source: Path, dest: Path) -> None:
    """forecast.tif to the OUTPUT destination, whole or not at all: a GeoTIFF is copied, any
    other format converted by GDAL (its driver from the file extension)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() == dest.resolve():
        return
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        if dest.suffix.lower() in (".tif", ".tiff"):
            shutil.copyfile(source, partial)
        else:
            from osgeo import gdal

            driver = QgsRasterFileWriter.driverForExtension(dest.suffix.lstrip("."))
            if not driver:
                raise QgsProcessingException(f"No raster format writes {dest.suffix!r} files; save the forecast as .tif.")
            if gdal.Translate(str(partial), str(source), format=driver) is None:
                raise QgsProcessingException(f"GDAL could not write {dest} as {driver}: {gdal.GetLastErrorMsg()}")
        os.replace(partial, dest)
    finally:
        if partial.exists():
            partial.unlink()


def _csv_value(value: Any) -> str:
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return ""
    if isinstance(value, QDateTime):
        return value.toString(Qt.ISODateWithMs) if value.time().msec() else value.toString(Qt.ISODate)
    if isinstance(value, (QDate, QTime)):
        return value.toString(Qt.ISODate)
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _qvalue(value: Any, kind: str) -> Any:
    """A pandas/NumPy cell as a QGIS attribute value (NaN and None -> NULL)."""
    if value is None:
        return None
    if kind == "f":
        value = float(value)
        return None if math.isnan(value) else value
    if kind in "iu":
        return int(value)
    if kind == "b":
        return bool(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _qgs_crs(crs) -> QgsCoordinateReferenceSystem:
    """A pyproj CRS as a QGIS CRS (by EPSG code when it has one)."""
    if crs is None:
        return QgsCoordinateReferenceSystem()
    epsg = crs.to_epsg()
    if epsg:
        return QgsCoordinateReferenceSystem(f"EPSG:{epsg}")
    return QgsCoordinateReferenceSystem.fromWkt(crs.to_wkt())


def _crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """A QGIS CRS as text pyproj reads: its authority id, or WKT."""
    authid = crs.authid()
    if authid and authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)


def _summary(report: dict) -> str:
    """Two lines on how the student did, for the log."""
    models = report.get("models", {})
    horizons = report.get("task", {}).get("horizons", [])
    if not horizons or "student" not in models:
        return "done"
    key = f"h{horizons[-1]}"
    lines = []
    for role in ("teacher", "student", "student_scratch"):
        m = models.get(role, {})
        metrics = m.get("metrics", {}).get(key, {})
        score = metrics.get("mae", metrics.get("accuracy"))
        name = "MAE" if "mae" in metrics else "accuracy"
        if score is not None:
            lines.append(f"{role}: {name} {score:.3f} at {key}, {m.get('params', 0):,} parameters")
    return "\n".join(lines) or "done"
