"""Typed run configuration, read from YAML with clear validation errors.

The top-level keys are a contract (see docs/configuration.md): ``data``, ``task``, ``teacher``,
``student``, ``distill``, ``train``, ``outputs``. Unknown keys and wrong types raise
:class:`~stgeo_kd.errors.StgeoError` naming the key path and listing the valid keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stgeo_kd.errors import StgeoError, did_you_mean


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


@dataclass
class SplitConfig:
    """Chronological split fractions; validation is taken from the end of the training part."""

    train: float = 0.7
    val: float = 0.1
    test: float = 0.2


@dataclass
class TaskConfig:
    kind: str = "forecast"
    history: int = 12
    horizons: list[int] = field(default_factory=lambda: [3, 6, 9, 12])
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class ModelConfig:
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillConfig:
    """Offline distillation: the student's target is ``alpha * teacher + (1 - alpha) * label``.

    Where the label is missing, the target is the teacher's prediction alone
    (``teacher_fills_missing: true``) or nothing (``false``).
    """

    alpha: float = 0.5
    loss: str = "mae"
    teacher_fills_missing: bool = True


@dataclass
class TrainConfig:
    epochs: int = 60
    student_epochs: int | None = None
    batch_size: int = 32
    lr: float = 2e-3
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


@dataclass
class OutputsConfig:
    gpkg: bool = True
    map: bool = True
    onnx: bool = True
    checkpoints: bool = True


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    teacher: ModelConfig = field(default_factory=lambda: ModelConfig(name="graph_wavenet"))
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
            if number == number and abs(number) != float("inf"):
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
    t = cfg.task
    if t.kind != "forecast":
        raise StgeoError(f"task.kind {t.kind!r} is not available for sensor graphs; use 'forecast'.")
    if cfg.data.kind != "sensor_graph":
        raise StgeoError(f"data.kind {cfg.data.kind!r} is not supported yet. {did_you_mean(cfg.data.kind, ['sensor_graph'])}")
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
    if not 0.0 <= cfg.distill.alpha <= 1.0:
        raise StgeoError(f"distill.alpha must be between 0 and 1, got {cfg.distill.alpha}.")
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
    methods = ("auto", "road_distance", "matrix", "knn")
    if cfg.data.adjacency.method not in methods:
        raise StgeoError(f"data.adjacency.method {cfg.data.adjacency.method!r} is unknown. {did_you_mean(cfg.data.adjacency.method, methods)}")
    if cfg.data.layout not in ("auto", "wide", "long"):
        raise StgeoError(f"data.layout must be auto, wide or long, got {cfg.data.layout!r}.")
    if not cfg.data.readings:
        raise StgeoError("data.readings is required: the CSV or Parquet file of sensor readings.")
