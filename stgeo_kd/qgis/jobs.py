"""What the QGIS algorithms do, without QGIS: config building, a cancellable run whose outputs
appear all at once, and forecasts from the output folder of a finished run.

Nothing here imports ``qgis``; the algorithms in :mod:`stgeo_kd.qgis.algorithms` turn QGIS
layers into files, call these functions and turn the results back into layers. This module
imports torch and Lightning, so the algorithms import it inside ``processAlgorithm`` only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

from stgeo_kd import errors
from stgeo_kd.errors import StgeoError

#: models offered in the algorithms' drop-downs (any registered model works through overrides)
TEACHERS = ("graph_wavenet", "gnn", "gru", "lstm", "mlp")
STUDENTS = ("mlp", "gnn", "gru", "lstm")

#: parameters used when a model is picked by name: the settings of examples/sample_city.yaml,
#: sized for a CPU (other models take their defaults); ``overrides`` change any of them
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "graph_wavenet": {
        "channels": 32,
        "dilations": [1, 2, 4, 4],
        "graph_layers": [],
        "output_graph_layers": 2,
        "diffusion_steps": 2,
        "adaptive": True,
        "embedding_dim": 16,
        "skip_channels": 128,
        "end_channels": 256,
        "dropout": 0.3,
    },
    "mlp": {"hidden": 64, "layers": 2, "node_dim": 16, "time_dim": 16},
}


class Cancelled(Exception):
    """The user cancelled the run; nothing was written to the output folder."""


def parse_horizons(text: str | Sequence[int]) -> list[int]:
    """``"3, 6, 9, 12"`` (or a list) -> ``[3, 6, 9, 12]``; positive whole numbers of steps."""
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise StgeoError(
                f"Horizons {text!r}: give whole numbers of time steps separated by commas, e.g. 3, 6, 9, 12."
            ) from None
    else:
        values = [int(v) for v in text]
    if not values or min(values) < 1:
        raise StgeoError(f"Horizons {text!r}: give at least one positive number of time steps, e.g. 3, 6, 9, 12.")
    return sorted(set(values))


def parse_missing_values(text: str | Sequence[float] | None) -> list[float] | None:
    """``"0, -1"`` -> ``[0.0, -1.0]``; ``""`` -> ``[]`` (no missing codes); None -> None (default)."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
        try:
            return [float(p) for p in parts]
        except ValueError:
            raise StgeoError(f"Missing-value codes {text!r}: give numbers separated by commas, e.g. 0 or 0, -1.") from None
    return [float(v) for v in text]


def parse_overrides(text: str | Sequence[str] | None) -> list[str]:
    """Overrides as ``key.path=value`` strings, one per line (or ``;``-separated), blanks dropped."""
    if not text:
        return []
    if isinstance(text, str):
        lines = [part for line in text.splitlines() for part in line.split(";")]
    else:
        lines = list(text)
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def distill_config(
    *,
    readings: str | Path,
    sensors: str | Path,
    roads: str | Path | None = None,
    roads_layer: str | None = None,
    sensors_layer: str | None = None,
    id_column: str = "sensor_id",
    time_column: str | None = "timestamp",
    value_column: str | None = None,
    sensors_id_column: str | None = None,
    name_column: str | None = None,
    lon_column: str = "lon",
    lat_column: str = "lat",
    sensors_crs: str = "EPSG:4326",
    missing_values: Sequence[float] | None = None,
    units: str = "",
    name: str | None = None,
    history: int = 12,
    horizons: Sequence[int] | str = (3, 6, 9, 12),
    teacher: str = "graph_wavenet",
    student: str = "mlp",
    epochs: int = 15,
    student_epochs: int | None = None,
    seed: int = 0,
    base_config: str | Path | None = None,
    overrides: Sequence[str] | str | None = None,
):
    """A validated :class:`~stgeo_kd.config.RunConfig` for the files and choices of the
    "Distill a traffic forecaster" algorithm.

    ``base_config`` (a YAML file) gives every other setting (distillation terms, learning
    rates, ...); the arguments here replace its data section, task history/horizons, models
    and epochs, and ``overrides`` (``key.path=value``, as ``stgeo-kd run --set``) come last.
    Checkpoints for ``--resume`` are off: the algorithm cannot resume.
    """
    from stgeo_kd.config import apply_overrides, config_from_dict

    raw, base_dir = _base_config(base_config)
    data = dict(raw.get("data") or {})
    adjacency = dict(data.get("adjacency") or {})
    data.update(
        kind="sensor_graph",
        readings=str(readings),
        layout="auto",
        time_column=time_column or None,
        id_column=id_column,
        value_column=value_column or None,
        sensors=str(sensors),
        sensors_layer=sensors_layer,
        sensors_id_column=sensors_id_column or None,
        lon_column=lon_column,
        lat_column=lat_column,
        sensors_crs=sensors_crs,
        name_column=name_column or None,
        roads=None if roads is None else str(roads),
        roads_layer=roads_layer if roads is not None else None,
    )
    if missing_values is not None:
        data["missing_values"] = list(missing_values)
    if units:
        data["units"] = units
    if name:
        data["name"] = name
    if roads is None and adjacency.get("method") in (None, "auto", "road_distance"):
        adjacency["method"] = "knn"
    data["adjacency"] = adjacency
    task = dict(raw.get("task") or {})
    task.update(history=int(history), horizons=parse_horizons(horizons))
    train = dict(raw.get("train") or {})
    train.update(epochs=int(epochs), seed=int(seed), progress=False, checkpoints=False)
    if student_epochs:
        train["student_epochs"] = int(student_epochs)
    raw = dict(raw)
    raw.update(data=data, task=task, train=train)
    raw["teacher"] = _model_section(raw.get("teacher"), teacher)
    raw["student"] = _model_section(raw.get("student"), student)
    outputs = dict(raw.get("outputs") or {})
    # the forecast algorithm rebuilds the student from its weights (outputs.checkpoints)
    outputs.update(gpkg=True, map=True, onnx=True, checkpoints=True)
    raw["outputs"] = outputs
    raw = apply_overrides(raw, parse_overrides(overrides))
    return config_from_dict(raw, base_dir=base_dir)


def _model_section(section: Any, name: str) -> dict[str, Any]:
    """The config of model ``name``: the base config's section when it names the same model,
    else the preset parameters."""
    if isinstance(section, dict) and section.get("name") == name:
        return dict(section)
    return {"name": name, "params": dict(MODEL_PRESETS.get(name, {}))}


# ---------------------------------------------------------------------------------------------
# raster stacks: "Forecast a raster stack"

#: model sizes offered by the raster algorithm (``medium``: examples/sample_rain.yaml)
RASTER_TEACHER_SIZES: dict[str, dict[str, Any]] = {
    "small": {"hidden": 12, "spatial_layers": 2, "fusion_layers": 1},
    "medium": {"hidden": 24, "spatial_layers": 3, "fusion_layers": 2},
    "large": {"hidden": 48, "spatial_layers": 4, "fusion_layers": 2},
}
RASTER_STUDENT_SIZES: dict[str, dict[str, Any]] = {
    "small": {"width": 8, "blocks": 3},
    "medium": {"width": 12, "blocks": 4},
    "large": {"width": 24, "blocks": 5},
}


def raster_config(
    *,
    path: str | Path,
    pattern: str | None = None,
    variable: str | Sequence[str] | None = None,
    time_format: str | None = None,
    band_as: str = "time",
    start: str | None = None,
    freq: str | None = None,
    name: str | None = None,
    history: int = 4,
    horizons: Sequence[int] | str = (1, 2, 3),
    teacher_size: str = "medium",
    student_size: str = "small",
    epochs: int = 8,
    seed: int = 0,
    base_config: str | Path | None = None,
    overrides: Sequence[str] | str | None = None,
):
    """A validated :class:`~stgeo_kd.config.RunConfig` for the "Forecast a raster stack"
    algorithm: ``data.kind: raster_stack`` on ``path`` (a folder of frames, a multi-band
    GeoTIFF or a NetCDF file), an ST-CNN teacher and a depthwise-separable CNN student of the
    chosen sizes (:data:`RASTER_TEACHER_SIZES`, :data:`RASTER_STUDENT_SIZES`).

    ``base_config`` (a YAML file) gives every other setting (patches, learning rates,
    distillation terms ...); the arguments here replace its data path and reading options,
    history/horizons, model sizes and epochs, and ``overrides`` come last. Outputs: the
    forecast GeoTIFF, map, ONNX student and weights; no resume checkpoints.
    """
    from stgeo_kd.config import apply_overrides, config_from_dict

    for label, size, sizes in (("teacher", teacher_size, RASTER_TEACHER_SIZES), ("student", student_size, RASTER_STUDENT_SIZES)):
        if size not in sizes:
            raise StgeoError(f"The {label} size {size!r} is unknown; choose one of {', '.join(sizes)}.")
    raw, base_dir = _base_config(base_config)
    data = dict(raw.get("data") or {})
    if isinstance(variable, str):
        names = [v.strip() for v in variable.split(",") if v.strip()]
        variable = names[0] if len(names) == 1 else (names or None)
    data.update(kind="raster_stack", path=str(path), pattern=pattern or None, time_format=time_format or None,
                band_as=band_as)
    for key, value in (("variable", variable), ("start", start), ("freq", freq), ("name", name)):
        if value:
            data[key] = value
    task = dict(raw.get("task") or {})
    task.update(kind="forecast", history=int(history), horizons=parse_horizons(horizons))
    if "patches" not in task:  # the sample's patches: fewer, smaller ones than the defaults (CPU)
        task["patches"] = {"size": 40, "count": 256, "margin": 4, "eval_size": 64}
    train = dict(raw.get("train") or {})
    train.setdefault("batch_size", 16)
    train.setdefault("lr", 0.003)
    train.update(epochs=int(epochs), seed=int(seed), progress=False, checkpoints=False)
    raw = dict(raw)
    raw.update(data=data, task=task, train=train)
    teacher = raw.get("teacher") if isinstance(raw.get("teacher"), dict) else {}
    student = raw.get("student") if isinstance(raw.get("student"), dict) else {}
    raw["teacher"] = {**teacher, "name": "st_cnn", "params": dict(RASTER_TEACHER_SIZES[teacher_size])}
    raw["student"] = {**student, "name": "ds_cnn", "params": dict(RASTER_STUDENT_SIZES[student_size])}
    raw.pop("teachers", None)
    outputs = dict(raw.get("outputs") or {})
    outputs.update(geotiff=True, map=True, onnx=True, checkpoints=True)
    raw["outputs"] = outputs
    raw = apply_overrides(raw, parse_overrides(overrides))
    return config_from_dict(raw, base_dir=base_dir)


def _base_config(base_config: str | Path | None) -> tuple[dict[str, Any], str | Path]:
    """A base YAML config as a dict, and the folder its relative paths are relative to."""
    import yaml

    if not base_config:
        return {}, "."
    path = Path(base_config)
    if not path.is_file():
        raise StgeoError(f"Config file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StgeoError(f"Config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise StgeoError(f"Config file {path} must hold a mapping (keys such as task:, teacher:).")
    return raw, path.resolve().parent


class ProgressCallback(pl.Callback):
    """Progress and cancellation for every model a run trains (teachers, student, scratch student).

    ``stages``: the names of the models in training order. ``report(fraction, message)``
    receives the whole run's progress in [0, 1] (training covers ``span``) and, with a
    message, a line to show; ``is_canceled()`` is polled before every training and
    validation batch and raises :class:`Cancelled`, which stops the run within one batch.
    """

    def __init__(self, stages: Sequence[str], report: Callable[[float, str | None], None],
                 is_canceled: Callable[[], bool] = lambda: False, span: tuple[float, float] = (0.05, 0.9)):
        self.stages = list(stages)
        self.report = report
        self.is_canceled = is_canceled
        self.span = span
        self.stage = -1
        self._last = 0.0

    def check(self) -> None:
        if self.is_canceled():
            raise Cancelled("Cancelled by the user; nothing was written.")

    # raster runs: stgeo_kd.raster.pipeline passes these to the tiled prediction of forecast.tif
    # (after training), which polls the cancel before every row of tiles

    def raster_progress(self, fraction: float) -> None:
        a = self.span[1]
        self.report(a + (0.95 - a) * min(max(fraction, 0.0), 1.0), None)

    def raster_cancel(self) -> bool:
        return bool(self.is_canceled())

    def _fraction(self, within: float) -> float:
        n = max(len(self.stages), 1)
        done = (max(self.stage, 0) + min(max(within, 0.0), 1.0)) / n
        a, b = self.span
        return a + (b - a) * min(done, 1.0)

    def on_fit_start(self, trainer, module):
        self.check()
        self.stage += 1
        name = self.stages[self.stage] if self.stage < len(self.stages) else f"model {self.stage + 1}"
        params = sum(p.numel() for p in module.model.parameters())
        self.report(self._fraction(0.0), f"training {name} ({params:,} parameters, up to {trainer.max_epochs} epochs)")

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.check()

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self.check()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        per_epoch = trainer.num_training_batches
        if not per_epoch or per_epoch == float("inf"):
            return
        within = (trainer.current_epoch + (batch_idx + 1) / per_epoch) / max(trainer.max_epochs or 1, 1)
        now = time.monotonic()
        if now - self._last > 0.2:  # a progress bar needs no more than five updates a second
            self._last = now
            self.report(self._fraction(within), None)

    def on_train_epoch_end(self, trainer, module):
        m = trainer.callback_metrics
        parts = [f"{k} {float(m[k]):.4f}" for k in ("train_loss", "val_mae", "val_ce") if k in m]
        name = self.stages[self.stage] if 0 <= self.stage < len(self.stages) else "model"
        within = (trainer.current_epoch + 1) / max(trainer.max_epochs or 1, 1)
        self.report(self._fraction(within), f"  {name} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {', '.join(parts)}")


def stage_names(cfg) -> list[str]:
    """The models :func:`stgeo_kd.run` trains for ``cfg``, in order."""
    from stgeo_kd.pipeline import _teacher_roles

    return [*_teacher_roles(len(cfg.teachers)), "student (distilled)", "student_scratch (labels only)"]


def run_into(
    cfg,
    out_dir: str | Path,
    *,
    report: Callable[[float, str | None], None] = lambda fraction, message: None,
    is_canceled: Callable[[], bool] = lambda: False,
    warn: Callable[[str], None] = lambda message: None,
):
    """Run the pipeline for ``cfg`` so that ``out_dir`` gets the outputs all at once, or not at all.

    The run writes into a hidden staging folder next to ``out_dir``; only when it has
    finished (and was not cancelled) are its files moved into ``out_dir`` (each move is a
    rename, so no file is ever half there). A cancel (:class:`Cancelled`) or any error removes
    the staging folder and leaves ``out_dir`` as it was (not created, if it did not exist).

    Returns:
        the :class:`~stgeo_kd.pipeline.RunResult`, its ``artifacts`` pointing into ``out_dir``.
    """
    from stgeo_kd.pipeline import run

    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise StgeoError(f"Output folder {out} is a file; choose a folder.")
    made = _make_parents(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    created_out = False
    moved: list[Path] = []
    try:
        report(0.0, f"reading {cfg.data.path if cfg.data.kind == 'raster_stack' else cfg.data.readings} ...")
        callback = ProgressCallback(stage_names(cfg), report, is_canceled)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run(cfg, out_dir=staging, callbacks=[callback])
        for w in caught:
            if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                warn(str(w.message))
        callback.check()  # cancelled during evaluation or writing: still nothing in out_dir
        report(0.97, f"moving the outputs into {out} ...")
        created_out = not out.exists()
        out.mkdir(exist_ok=True)
        for path in sorted(p for p in staging.iterdir() if p.is_file()):
            os.replace(path, out / path.name)
            moved.append(out / path.name)
        result.artifacts.update({key: out / Path(path).name for key, path in result.artifacts.items()})
        report(1.0, None)
        return result
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        for path in moved:  # a failed move: take back the ones already made
            path.unlink(missing_ok=True)
        if created_out and out.exists() and not any(out.iterdir()):
            out.rmdir()
        for folder in reversed(made):
            _rmdir_if_empty(folder)
        if isinstance(exc, errors.Cancelled):  # the tiled prediction of a raster run saw the cancel
            raise Cancelled("Cancelled by the user; nothing was written.") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p ``folder``; return the folders it created (outermost first)."""
    made = []
    for parent in reversed([folder, *folder.parents]):
        if not parent.exists():
            made.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    return made


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# forecasts from the output folder of a finished run


def load_student(run_dir: str | Path):
    """The trained student of a finished run, rebuilt from ``model_meta.json`` and loaded
    from ``student.pt`` with ``weights_only=True`` (nothing in the file is run).

    Returns:
        ``(model, meta, report)``: the torch module in eval mode, model_meta.json and
        report.json (``{}`` when absent) as dicts.
    """
    from stgeo_kd.export.weights import load_weights
    from stgeo_kd.models import build_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StgeoError(f"Run folder {run_dir} does not exist; give the output folder of a finished distillation run.")
    meta_path, weights = run_dir / "model_meta.json", run_dir / "student.pt"
    if not meta_path.is_file() or not weights.is_file():
        missing = [p.name for p in (meta_path, weights) if not p.is_file()]
        raise StgeoError(
            f"Run folder {run_dir} has no {' or '.join(missing)}: give the output folder of a finished "
            "distillation run (it holds model_meta.json and student.pt; runs with outputs.checkpoints: false "
            "do not save the weights)."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        report_path = run_dir / "report.json"
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
        spec = meta["student"]
        n = int(meta["num_nodes"])
        num_classes = None
        if meta.get("task") == "classify":
            num_classes = len(report["task"]["classes"]["names"])
        model = build_model(
            spec["name"], spec.get("params") or {}, num_nodes=n, history=int(meta["history"]),
            horizon=int(meta["horizon"]), steps_per_day=int(meta["steps_per_day"]),
            # graph models keep their transition matrices as buffers: the weights file restores them
            adjacency=np.zeros((n, n), dtype=np.float32), head=spec.get("head", "point"), num_classes=num_classes,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StgeoError(
            f"{meta_path} (or report.json beside it) is damaged or from another version ({type(exc).__name__}: "
            f"{exc}); run the distillation again."
        ) from None
    load_weights(weights, model)
    model.eval()
    return model, meta, report


def window_features(raw: np.ndarray, times: np.ndarray, mean: float, std: float) -> np.ndarray:
    """The model input of :class:`~stgeo_kd.data.windows.ForecastData` for readings ``raw``
    (T, N) in data units (NaN where missing) at ``times``: (T, N, 4) float32 with the scaled
    value (0 where missing), the observed flag, time of day in [0, 1) and day of week 0..6
    (Monday 0). ``mean``/``std``: the training scaler of the run."""
    mask = ~np.isnan(raw)
    scaled = np.where(mask, (np.nan_to_num(raw).astype(np.float64) - mean) / std, 0.0).astype(np.float32)
    t = np.asarray(times).astype("datetime64[m]")
    minutes = (t - t.astype("datetime64[D]")).astype(np.int64)
    tod = (minutes / 1440.0).astype(np.float32)
    dow = ((t.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(np.float32)
    n = raw.shape[1]
    return np.stack([scaled, mask.astype(np.float32), np.repeat(tod[:, None], n, 1), np.repeat(dow[:, None], n, 1)], axis=-1)


def forecast_from_run(
    run_dir: str | Path,
    readings: str | Path,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    value_column: str | None = None,
    missing_values: Sequence[float] | None = None,
    layout: str | None = None,
):
    """Forecast from the latest readings with the student of a finished run.

    Args:
        run_dir: the output folder of a distillation run (``stgeo-kd run --out``, the
            "Distill a traffic forecaster" algorithm or :func:`stgeo_kd.qgis.distill_layers`):
            ``model_meta.json``, ``student.pt``, ``report.json`` and ``predictions.gpkg``
            (the sensor locations).
        readings: a CSV/Parquet table of new readings of the same sensors at the same time
            step; at least ``history`` steps. The forecast starts after its last time stamp.
        id_column, time_column, value_column, missing_values, layout: how to read it;
            None takes the run's settings (report.json's config).

    Returns:
        ``(frame, info)``: a GeoDataFrame with one point per sensor (the run's CRS):
        ``sensor_id``, ``name`` (when the run had names), ``forecast_origin`` (the last
        input time), ``last_observed``, ``observed_fraction_input`` and per horizon ``k`` of
        the run ``time_h{k}`` and ``student_h{k}`` (a value in data units, or a class name
        for a classification run); ``info`` holds the origin, step and horizons.

    Raises:
        StgeoError: a missing or damaged run folder, a readings file that lacks sensors of
        the run, has another time step or fewer than ``history`` steps.
    """
    import geopandas as gpd
    import torch

    from stgeo_kd.ingest.sensors import read_readings

    model, meta, report = load_student(run_dir)
    run_dir = Path(run_dir)
    data_cfg = (report.get("config") or {}).get("data") or {}
    readings = Path(readings)
    array = read_readings(
        readings,
        layout=layout or "auto",
        time_column=time_column or data_cfg.get("time_column", "timestamp"),
        id_column=id_column or data_cfg.get("id_column", "sensor_id"),
        value_column=value_column or data_cfg.get("value_column"),
        missing_values=missing_values if missing_values is not None else data_cfg.get("missing_values", [0.0]),
    )
    ids = [str(s) for s in meta["sensor_ids"]]
    have = {str(s) for s in array["node"].values}
    missing = [s for s in ids if s not in have]
    if missing:
        raise StgeoError(
            f"{readings} has no readings for {len(missing)} sensor(s) of the trained model: {missing[:10]}. The "
            f"student forecasts the {len(ids)} sensors it was trained on; give readings for all of them (missing "
            "readings may be empty cells)."
        )
    extra = sorted(have - set(ids))
    if extra:
        warnings.warn(f"{readings}: {len(extra)} sensor(s) unknown to the trained model were ignored: {extra[:10]}.", stacklevel=2)
    array = array.sel(node=ids)
    times = array["time"].values
    history, step = int(meta["history"]), float(meta["step_minutes"])
    if len(times) < max(history, 2):
        raise StgeoError(
            f"{readings} holds {len(times)} time step(s); the student needs the last {history} steps "
            f"({history * step:g} minutes) of readings to forecast."
        )
    got = float((times[1] - times[0]) / np.timedelta64(1, "m"))
    if abs(got - step) > 1e-6:
        raise StgeoError(
            f"{readings} has a time step of {got:g} minutes but the student was trained on {step:g}-minute "
            "steps; give readings at the same step (resample them)."
        )
    raw = array.values[-history:].astype(np.float32)
    window = times[-history:]
    scaler = meta["scaler"]
    x = torch.from_numpy(window_features(raw, window, float(scaler["mean"]), float(scaler["std"])))[None]
    with torch.inference_mode():
        out = model(x)[0].numpy()  # (H, N) scaled, or (H, N, C) logits
    horizons = list((report.get("task") or {}).get("horizons") or range(1, int(meta["horizon"]) + 1))
    origin = window[-1]
    frame: dict[str, Any] = {"sensor_id": ids}
    sensors = _run_sensors(run_dir)
    if sensors is not None and "name" in sensors.columns:
        frame["name"] = [str(sensors["name"].get(s, "")) for s in ids]
    frame["forecast_origin"] = [str(np.datetime_as_string(origin, unit="m"))] * len(ids)
    last = np.full(len(ids), np.nan, dtype=np.float64)
    for j in range(len(ids)):
        seen = np.flatnonzero(~np.isnan(raw[:, j]))
        if len(seen):
            last[j] = raw[seen[-1], j]
    frame["last_observed"] = last
    frame["observed_fraction_input"] = (~np.isnan(raw)).mean(axis=0).astype(np.float64)
    names = (report.get("task") or {}).get("classes", {}).get("names") if meta.get("task") == "classify" else None
    for k in horizons:
        when = origin + np.timedelta64(round(k * step), "m")
        frame[f"time_h{k}"] = [str(np.datetime_as_string(when, unit="m"))] * len(ids)
        if names is not None:
            frame[f"student_h{k}"] = [names[c] for c in out[k - 1].argmax(-1)]
        else:
            frame[f"student_h{k}"] = (out[k - 1] * float(scaler["std"]) + float(scaler["mean"])).astype(np.float64)
    if sensors is not None:
        geometry = [sensors.geometry.get(s) for s in ids]
        gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=sensors.crs), crs=sensors.crs)
    else:
        gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([None] * len(ids)))
    info = {
        "forecast_origin": frame["forecast_origin"][0],
        "step_minutes": step,
        "horizons": horizons,
        "sensors": len(ids),
        "student": meta["student"]["name"],
        "task": meta.get("task", "forecast"),
    }
    return gdf, info


def _run_sensors(run_dir: Path):
    """The run's sensor points (index: sensor id) from its predictions.gpkg, or None."""
    path = run_dir / "predictions.gpkg"
    if not path.is_file():
        return None
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path, layer="predictions")
    except Exception as exc:  # noqa: BLE001 -- pyogrio raises several error types
        raise StgeoError(f"{path} cannot be read ({exc}); run the distillation again.") from None
    gdf["sensor_id"] = gdf["sensor_id"].astype(str)
    return gdf.set_index("sensor_id")
