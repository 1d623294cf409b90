"""Typed run configuration, read from YAML with clear validation errors.

The top-level keys are a contract (see docs/configuration.md): ``data``, ``task``, ``teacher``,
``student``, ``distill``, ``train``, ``outputs``. Unknown keys and wrong types raise
:class:`~stgeo_kd.errors.StgeoError` naming the key path and listing the valid keys.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stgeo_kd.errors import StgeoError, did_you_mean
from stgeo_kd.landcover.config import PatchesConfig  # data.kind: patches (land cover)
from stgeo_kd.spatial.config import PointsConfig  # data.kind: points (issue 7)


@dataclass
class AdjacencyConfig:
    """How the sensor graph is built.

    ``method``: ``road_distance`` (shortest road-network distance -> thresholded Gaussian kernel,
    the DCRNN recipe; needs ``data.roads``), ``matrix`` (a square CSV/NPY file at ``path`` whose
    rows and columns follow the sensor order of ``data.sensors``), ``knn`` (``k`` nearest sensors
    by straight-line distance), or ``auto`` (road_distance when roads are given, else knn).
    """

    method: str = "auto"
    path: str | None = None
    threshold: float = 0.1
    sigma: float | None = None
    k: int = 8
    directed: bool = False
    max_snap_distance: float = 250.0


@dataclass
class DataConfig:
    """Where the sensor data is and how to read it (paths are relative to the YAML file)."""

    kind: str = "sensor_graph"
    name: str | None = None
    readings: str = ""
    layout: str = "auto"
    time_column: str | None = "timestamp"
    id_column: str = "sensor_id"
    value_column: str | None = None
    start: str | None = None
    freq: str | None = None
    missing_values: list[float] = field(default_factory=lambda: [0.0])
    units: str = ""
    sensors: str | None = None
    sensors_layer: str | None = None
    sensors_id_column: str | None = None
    lon_column: str = "lon"
    lat_column: str = "lat"
    sensors_crs: str = "EPSG:4326"
    name_column: str | None = None
    roads: str | None = None
    roads_layer: str | None = None
    adjacency: AdjacencyConfig = field(default_factory=AdjacencyConfig)
    # --- kind: raster_stack (see docs/rasters.md) ---
    path: str | None = None
    pattern: str | None = None
    variable: Any = None
    band_as: str = "time"
    time_format: str | None = None
    reproject: str | None = None
    crs: str | None = None
    chunks: int = 512
    # --- data.kind: points (spatial regression on a graph of locations; see docs/spatial.md) ---
    points: PointsConfig = field(default_factory=PointsConfig)
    # --- data.kind: patches (land cover: raster + labelled polygons; see docs/landcover.md) ---
    patches: PatchesConfig = field(default_factory=PatchesConfig)


@dataclass
class SplitConfig:
    """Chronological split fractions; validation is taken from the end of the training part."""

    train: float = 0.7
    val: float = 0.1
    test: float = 0.2


@dataclass
class ClassesConfig:
    """How a window's future value becomes a class (``task.kind: classify``).

    ``rule: thresholds``: the value ``h`` steps ahead binned by ``thresholds`` (data units,
    increasing): class 0 below the first, ... (e.g. speed < 30 congested, < 50 slow, else
    free flow). ``rule: trend``: the change from the last observed input value to the value
    ``h`` steps ahead, relative to the training standard deviation: below ``-band`` fall, above
    ``band`` rise, else flat. ``names`` label the classes in reports.
    """

    rule: str = "trend"
    thresholds: list[float] = field(default_factory=list)
    band: float = 0.25
    names: list[str] | None = None


@dataclass
class PatchConfig:
    """How a raster stack is cut into samples (``data.kind: raster_stack``): ``count`` random
    training patches of ``size`` pixels (the outer ``margin`` left out of the loss), and
    evaluation tiles of ``eval_size`` read with a ``halo`` of context (null: the models'
    measured receptive field)."""

    size: int = 48
    count: int = 512
    margin: int = 4
    eval_size: int = 128
    halo: int | None = None


@dataclass
class TaskConfig:
    kind: str = "forecast"
    history: int = 12
    horizons: list[int] = field(default_factory=lambda: [3, 6, 9, 12])
    split: SplitConfig = field(default_factory=SplitConfig)
    classes: ClassesConfig = field(default_factory=ClassesConfig)
    # --- raster stacks ---
    target: str | None = None
    time_features: bool = True
    patches: PatchConfig = field(default_factory=PatchConfig)


@dataclass
class ModelConfig:
    """A model: registry ``name``, its ``params``, an output ``head`` (``point`` or
    ``gaussian``: mean and variance) and, among several teachers, its ``weight``."""

    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    head: str = "point"
    weight: float = 1.0


@dataclass
class DistillConfig:
    """How the student learns from the teacher(s); see docs/distillation.md.

    Without ``terms`` a forecasting student regresses on ``alpha * teacher + (1 - alpha) *
    label`` (the teacher alone where the label is missing, with ``teacher_fills_missing``), and
    a classifier uses hard labels + Hinton soft targets. ``terms`` lists named loss terms with
    weights, parameters and schedules; ``alpha`` and ``temperature`` are numbers or schedules
    (``{kind: linear, start: 0.9, end: 0.1}``).
    """

    alpha: Any = 0.5
    loss: str = "mae"
    teacher_fills_missing: bool = True
    temperature: Any = 4.0
    terms: list[Any] | None = None
    combine: str = "mean"
    combine_on: str = "targets"
    online: bool = False
    online_lr: float | None = None
    mutual: bool = False


@dataclass
class TrainConfig:
    epochs: int = 60
    student_epochs: int | None = None
    batch_size: int = 32
    lr: float = 2e-3
    lr_schedule: Any = "plateau"
    student_lr: float | None = None
    weight_decay: float = 1e-4
    loss: str = "mae"
    patience: int = 15
    seed: int = 0
    max_minutes: float | None = None
    batches_per_epoch: int | None = None
    device: str = "cpu"
    num_threads: int | None = None
    progress: bool = True
    latency_repeats: int = 50
    checkpoints: bool = True


@dataclass
class OutputsConfig:
    gpkg: bool = True
    map: bool = True
    onnx: bool = True
    geotiff: bool = True
    checkpoints: bool = True


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    teacher: ModelConfig | list[ModelConfig] = field(default_factory=lambda: ModelConfig(name="graph_wavenet"))
    student: ModelConfig = field(default_factory=lambda: ModelConfig(name="mlp"))
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    base_dir: str = "."

    def resolve(self, path: str | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if path is None or path == "":
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p)

    @property
    def teachers(self) -> list[ModelConfig]:
        """The teacher(s) as a list (``teacher`` may be one model or several)."""
        return list(self.teacher) if isinstance(self.teacher, list) else [self.teacher]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("base_dir")
        return d


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert ints to floats where floats are due."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except StgeoError:
                continue
        raise StgeoError(f"Config key '{where}': expected {_type_name(tp)}, got {value!r}.")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise StgeoError(f"Config key '{where}' must be a mapping of keys, got {value!r}.")
        return _build(tp, value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            value = [value] if isinstance(value, (int, float, str)) and not isinstance(value, bool) else value
        if not isinstance(value, (list, tuple)):
            raise StgeoError(f"Config key '{where}' must be a list, got {value!r}.")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise StgeoError(f"Config key '{where}' must be a mapping, got {value!r}.")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise StgeoError(f"Config key '{where}' must be true or false, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                number = float(value.strip())
            except ValueError:
                number = float("nan")
            if math.isfinite(number):
                return number
        raise StgeoError(f"Config key '{where}' must be a number, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise StgeoError(f"Config key '{where}' must be a whole number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise StgeoError(f"Config key '{where}' must be text, got {value!r}.")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "base_dir"]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise StgeoError(f"Unknown config key '{path}'. {did_you_mean(str(key), names)}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value`` (value read as YAML, so ``3``, ``true``, ``[3, 6]`` work)."""
    if "=" not in text:
        raise StgeoError(f"--set expects key.path=value, got {text!r}.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise StgeoError(f"--set expects key.path=value, got {text!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise StgeoError(f"--set {key}: cannot read value {raw!r}: {exc}") from None
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``--set key.path=value`` overrides to a raw config mapping (in place, returned)."""
    for text in overrides or []:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise StgeoError(f"--set {'.'.join(keys)}: '{k}' is not a section.")
            node = nxt
        node[keys[-1]] = value
    return raw


def config_from_dict(raw: dict[str, Any], base_dir: str | Path = ".") -> RunConfig:
    """Validate a raw mapping (as read from YAML) into a :class:`RunConfig`."""
    if not isinstance(raw, dict):
        raise StgeoError("The config must be a YAML mapping with keys such as data, task, teacher, student.")
    cfg = _build(RunConfig, raw, "")
    cfg.base_dir = str(base_dir)
    validate(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (safe loader), apply ``--set`` overrides and validate it.

    Raises:
        StgeoError: the file is missing or not valid YAML, or a key/value is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise StgeoError(f"Config file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StgeoError(f"Config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        raise StgeoError(f"Config file {path} is empty.")
    if not isinstance(raw, dict):
        raise StgeoError(f"Config file {path} must hold a mapping (keys such as data:, task:), not a {type(raw).__name__}.")
    raw = apply_overrides(raw, overrides)
    try:
        return config_from_dict(raw, base_dir=path.resolve().parent)
    except StgeoError as exc:
        raise StgeoError(f"{path}: {exc}") from None


def validate(cfg: RunConfig) -> None:
    """Checks that span several keys (ranges, choices)."""
    if cfg.data.kind == "points":  # its own task, models and checks: stgeo_kd.spatial.config
        from stgeo_kd.spatial.config import validate_points

        validate_points(cfg)
        return
    if cfg.data.kind == "patches":  # land cover, its own task, models and checks: stgeo_kd.landcover.config
        from stgeo_kd.landcover.config import validate_patches

        validate_patches(cfg)
        return
    t = cfg.task
    if t.kind not in ("forecast", "classify"):
        raise StgeoError(f"task.kind {t.kind!r} is unknown. {did_you_mean(t.kind, ['forecast', 'classify'])}")
    _validate_distill(cfg)
    if cfg.data.kind not in ("sensor_graph", "raster_stack"):
        raise StgeoError(f"data.kind {cfg.data.kind!r} is not supported yet. "
                         f"{did_you_mean(cfg.data.kind, ['sensor_graph', 'raster_stack', 'points', 'patches'])}")
    if t.history < 1:
        raise StgeoError(f"task.history must be at least 1 step, got {t.history}.")
    if not t.horizons or min(t.horizons) < 1:
        raise StgeoError(f"task.horizons must be a list of positive step counts, got {t.horizons}.")
    s = t.split
    if min(s.train, s.val, s.test) < 0 or s.train <= 0 or s.test <= 0 or abs(s.train + s.val + s.test - 1.0) > 1e-6:
        raise StgeoError(
            f"task.split fractions must be non-negative and sum to 1 (train and test > 0), got "
            f"train={s.train}, val={s.val}, test={s.test}."
        )
    if cfg.train.epochs < 1 or (cfg.train.student_epochs is not None and cfg.train.student_epochs < 1):
        raise StgeoError("train.epochs and train.student_epochs must be at least 1.")
    if cfg.train.batch_size < 1:
        raise StgeoError(f"train.batch_size must be at least 1, got {cfg.train.batch_size}.")
    if cfg.train.lr <= 0:
        raise StgeoError(f"train.lr must be positive, got {cfg.train.lr}.")
    losses = ("mae", "mse", "huber")
    for key, value in (("train.loss", cfg.train.loss), ("distill.loss", cfg.distill.loss)):
        if value not in losses:
            raise StgeoError(f"{key} {value!r} is unknown. {did_you_mean(value, losses)}")
    if cfg.data.kind == "raster_stack":
        _validate_raster(cfg)
        return
    methods = ("auto", "road_distance", "matrix", "knn")
    if cfg.data.adjacency.method not in methods:
        raise StgeoError(f"data.adjacency.method {cfg.data.adjacency.method!r} is unknown. {did_you_mean(cfg.data.adjacency.method, methods)}")
    if cfg.data.layout not in ("auto", "wide", "long"):
        raise StgeoError(f"data.layout must be auto, wide or long, got {cfg.data.layout!r}.")
    if not cfg.data.readings:
        raise StgeoError("data.readings is required: set it to the CSV or Parquet file of sensor readings.")
    _validate_data(cfg)


def _validate_distill(cfg: RunConfig) -> None:
    """Teachers, heads, classes, loss terms and schedules: every name and parameter checked."""
    from stgeo_kd.distill.objective import COMBINE, COMBINE_ON, parse_terms
    from stgeo_kd.distill.schedules import LRSchedule, Schedule
    from stgeo_kd.models.heads import HEADS

    t, d = cfg.task, cfg.distill
    if not cfg.teachers:
        raise StgeoError("teacher must name a model, or be a list of models for several teachers.")
    models = [(f"teacher[{i}]" if len(cfg.teachers) > 1 else "teacher", m) for i, m in enumerate(cfg.teachers)]
    for where, m in models + [("student", cfg.student)]:
        if m.head not in HEADS:
            raise StgeoError(f"{where}.head {m.head!r} is unknown. {did_you_mean(m.head, HEADS)}")
        if t.kind == "classify" and m.head != "point":
            raise StgeoError(f"{where}.head must be point for task.kind classify (it outputs class scores).")
        if m.weight < 0:
            raise StgeoError(f"{where}.weight must be non-negative, got {m.weight}.")
    if t.kind == "classify":
        c = t.classes
        if c.rule not in ("thresholds", "trend"):
            raise StgeoError(f"task.classes.rule {c.rule!r} is unknown. {did_you_mean(c.rule, ['thresholds', 'trend'])}")
        if c.rule == "thresholds" and (not c.thresholds or sorted(c.thresholds) != list(c.thresholds)):
            raise StgeoError(f"task.classes.thresholds must be an increasing list of values in data units, got {c.thresholds}.")
        if c.rule == "trend" and c.band <= 0:
            raise StgeoError(f"task.classes.band must be positive, got {c.band}.")
        n = len(c.thresholds) + 1 if c.rule == "thresholds" else 3
        if c.names is not None and len(c.names) != n:
            raise StgeoError(f"task.classes.names has {len(c.names)} names but the rule makes {n} classes.")
    alpha = Schedule.parse(d.alpha, "distill.alpha")
    for v in (alpha.start, alpha.end):
        if v is not None and not 0.0 <= v <= 1.0:
            raise StgeoError(f"distill.alpha must be between 0 and 1, got {v}.")
    temp = Schedule.parse(d.temperature, "distill.temperature")
    if temp.start <= 0 or (temp.end is not None and temp.end <= 0):
        raise StgeoError("distill.temperature must be positive.")
    if d.combine not in COMBINE:
        raise StgeoError(f"distill.combine {d.combine!r} is unknown. {did_you_mean(d.combine, COMBINE)}")
    if d.combine_on not in COMBINE_ON:
        raise StgeoError(f"distill.combine_on {d.combine_on!r} is unknown. {did_you_mean(d.combine_on, COMBINE_ON)}")
    specs = parse_terms(d.terms, t.kind, d.loss, d.teacher_fills_missing)
    names = [s.term.name for s in specs]
    if "peer" in names and not d.mutual:
        raise StgeoError("distill.terms has 'peer' but distill.mutual is false; set distill.mutual: true.")
    if d.mutual and any(s.term.student_layers() for s in specs):
        raise StgeoError("distill.mutual cannot be combined with hint or relation terms (one projection per student).")
    if "gaussian_kl" in names and any(m.head != "gaussian" for m in cfg.teachers):
        raise StgeoError("distill.terms has gaussian_kl, which needs teacher.head: gaussian (a mean-and-variance teacher).")
    LRSchedule.parse(cfg.train.lr_schedule)


def _validate_raster(cfg: RunConfig) -> None:
    """data.* and task.* values of a raster stack job."""
    d, t = cfg.data, cfg.task
    if not d.path:
        raise StgeoError("data.path is required for data.kind raster_stack: a folder of frames, a GeoTIFF or a NetCDF file.")
    if t.kind != "forecast":
        raise StgeoError("task.kind must be forecast for data.kind raster_stack (per-pixel classes are issue 7's patches).")
    if d.band_as not in ("time", "variable"):
        raise StgeoError(f"data.band_as must be time or variable, got {d.band_as!r}.")
    if d.chunks < 16:
        raise StgeoError(f"data.chunks must be at least 16 pixels, got {d.chunks}.")
    p = t.patches
    for key in ("size", "count", "eval_size"):
        if getattr(p, key) < 1:
            raise StgeoError(f"task.patches.{key} must be at least 1, got {getattr(p, key)}.")
    if p.margin < 0 or (p.halo is not None and p.halo < 0):
        raise StgeoError("task.patches.margin and task.patches.halo must not be negative.")
    names = {"st_cnn", "ds_cnn"}
    for where, m in [("teacher", x) for x in cfg.teachers] + [("student", cfg.student)]:
        if m.name not in names:
            raise StgeoError(f"{where}.name {m.name!r} is not a raster model. {did_you_mean(m.name, sorted(names))}")
        if m.head != "point":
            raise StgeoError(f"{where}.head must be point for raster stacks (Gaussian heads are for sensor graphs).")


def _validate_data(cfg: RunConfig) -> None:
    """Ranges of the data.* values that are only used once the files have been read."""
    a = cfg.data.adjacency
    if not 0.0 <= a.threshold <= 1.0:
        raise StgeoError(
            f"data.adjacency.threshold must be between 0 and 1 (weights below it are dropped; DCRNN uses 0.1), "
            f"got {a.threshold}."
        )
    if a.sigma is not None and not 0.0 < a.sigma < float("inf"):
        raise StgeoError(
            f"data.adjacency.sigma must be a positive distance in metres, or null to estimate it, got {a.sigma}."
        )
    if a.k < 1:
        raise StgeoError(f"data.adjacency.k must be at least 1 (neighbours per sensor), got {a.k}.")
    if not a.max_snap_distance > 0:
        raise StgeoError(
            f"data.adjacency.max_snap_distance must be a positive distance in metres, got {a.max_snap_distance}."
        )
