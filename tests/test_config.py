"""Tests for stgeo_kd.config: defaults, validation messages, --set overrides, loading YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from stgeo_kd.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
)
from stgeo_kd.errors import StgeoError

MINIMAL = {"data": {"readings": "readings.csv"}}


def minimal(**sections) -> dict:
    raw = {"data": {"readings": "readings.csv"}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return raw


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# defaults
# ----------------------------------------------------------------------------------------------


def test_defaults():
    cfg = config_from_dict(MINIMAL)
    assert cfg.data.readings == "readings.csv"
    assert cfg.data.kind == "sensor_graph" and cfg.data.layout == "auto"
    assert cfg.data.time_column == "timestamp" and cfg.data.id_column == "sensor_id"
    assert cfg.data.missing_values == [0.0]
    assert cfg.data.adjacency.method == "auto" and cfg.data.adjacency.k == 8
    assert cfg.data.adjacency.threshold == 0.1 and cfg.data.adjacency.sigma is None
    assert cfg.task.kind == "forecast" and cfg.task.history == 12
    assert cfg.task.horizons == [3, 6, 9, 12]
    assert (cfg.task.split.train, cfg.task.split.val, cfg.task.split.test) == (0.7, 0.1, 0.2)
    assert cfg.teacher.name == "graph_wavenet" and cfg.teacher.params == {}
    assert cfg.student.name == "mlp"
    assert cfg.distill.alpha == 0.5 and cfg.distill.loss == "mae" and cfg.distill.teacher_fills_missing is True
    assert cfg.train.epochs == 60 and cfg.train.batch_size == 32 and cfg.train.lr == 0.002
    assert cfg.train.student_epochs is None and cfg.train.device == "cpu"
    assert cfg.outputs.gpkg and cfg.outputs.map and cfg.outputs.onnx and cfg.outputs.checkpoints
    d = cfg.to_dict()
    assert set(d) == {"data", "task", "teacher", "student", "distill", "train", "outputs"}
    assert d["task"]["split"] == {"train": 0.7, "val": 0.1, "test": 0.2}
    # a fresh RunConfig() has the same values
    assert RunConfig().to_dict() == {**d, "data": {**d["data"], "readings": ""}}


def test_defaults_are_not_shared_between_configs():
    a = config_from_dict(MINIMAL)
    b = config_from_dict(MINIMAL)
    a.task.horizons.append(99)
    a.data.missing_values.clear()
    assert b.task.horizons == [3, 6, 9, 12] and b.data.missing_values == [0.0]


def test_readings_required():
    with pytest.raises(StgeoError, match="data.readings is required"):
        config_from_dict({})


def test_int_where_float_due_and_scalar_where_list_due():
    cfg = config_from_dict(minimal(train={"lr": 1}, task={"horizons": 6}, distill={"alpha": 1}))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.task.horizons == [6]
    assert cfg.distill.alpha == 1.0
    cfg = config_from_dict(minimal(task={"history": 6.0}, data={"readings": "r.csv", "missing_values": [0, -1]}))
    assert cfg.task.history == 6 and isinstance(cfg.task.history, int)
    assert cfg.data.missing_values == [0.0, -1.0]


# ----------------------------------------------------------------------------------------------
# unknown keys and wrong types
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,path,hint",
    [
        ({"studnet": {"name": "mlp"}}, "studnet", "student"),
        ({"task": {"histroy": 6}}, "task.histroy", "history"),
        ({"data": {"adjacency": {"treshold": 0.2}}}, "data.adjacency.treshold", "threshold"),
        ({"train": {"epoch": 3}}, "train.epoch", "epochs"),
    ],
)
def test_unknown_keys_with_did_you_mean(raw, path, hint):
    raw = {**raw, "data": {"readings": "r.csv", **raw.get("data", {})}}
    with pytest.raises(StgeoError) as info:
        config_from_dict(raw)
    msg = str(info.value)
    assert f"Unknown config key '{path}'" in msg
    assert f"Did you mean '{hint}'?" in msg
    assert "Valid names:" in msg


@pytest.mark.parametrize(
    "sections,fragment",
    [
        ({"task": {"history": "twelve"}}, "'task.history' must be a whole number"),
        ({"task": {"history": 2.5}}, "'task.history' must be a whole number"),
        ({"task": {"history": True}}, "'task.history' must be a whole number"),
        ({"train": {"lr": "fast"}}, "'train.lr' must be a number"),
        ({"train": {"lr": False}}, "'train.lr' must be a number"),
        ({"train": {"progress": "yes"}}, "'train.progress' must be true or false"),
        ({"task": {"horizons": [3, "six"]}}, "'task.horizons[1]' must be a whole number"),
        ({"task": {"horizons": {"a": 1}}}, "'task.horizons' must be a list"),
        ({"train": 5}, "'train' must be a mapping"),
        ({"student": {"params": [1, 2]}}, "'student.params' must be a mapping"),
        ({"train": {"student_epochs": "many"}}, "'train.student_epochs': expected"),
        ({"data": {"readings": ["a.csv"]}}, "'data.readings' must be text"),
    ],
)
def test_wrong_types(sections, fragment):
    with pytest.raises(StgeoError) as info:
        config_from_dict(minimal(**sections))
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "sections,fragment",
    [
        ({"task": {"split": {"train": 0.7, "val": 0.2, "test": 0.2}}}, "sum to 1"),
        ({"task": {"split": {"train": 0.5, "val": 0.0, "test": 0.3}}}, "sum to 1"),
        ({"task": {"split": {"train": 1.0, "val": 0.0, "test": 0.0}}}, "train and test > 0"),
        ({"task": {"split": {"train": 0.9, "val": -0.1, "test": 0.2}}}, "non-negative"),
        ({"distill": {"alpha": 1.5}}, "distill.alpha must be between 0 and 1"),
        ({"task": {"history": 0}}, "task.history must be at least 1"),
        ({"task": {"horizons": [3, 0]}}, "task.horizons"),
        ({"train": {"loss": "l1"}}, "train.loss 'l1' is unknown"),
        ({"data": {"adjacency": {"method": "knnn"}}}, "Did you mean 'knn'?"),
        ({"data": {"layout": "tall"}}, "data.layout"),
    ],
)
def test_value_checks(sections, fragment):
    with pytest.raises(StgeoError) as info:
        config_from_dict(minimal(**sections))
    assert fragment in str(info.value)


def test_split_fractions_that_sum_to_one():
    cfg = config_from_dict(minimal(task={"split": {"train": 0.6, "val": 0.2, "test": 0.2}}))
    assert (cfg.task.split.train, cfg.task.split.val, cfg.task.split.test) == (0.6, 0.2, 0.2)
    cfg = config_from_dict(minimal(task={"split": {"train": 0.8, "val": 0, "test": 0.2}}))
    assert cfg.task.split.val == 0.0


# ----------------------------------------------------------------------------------------------
# --set overrides
# ----------------------------------------------------------------------------------------------


def test_parse_override_reads_yaml_values():
    assert parse_override("task.horizons=[3, 6]") == (["task", "horizons"], [3, 6])
    assert parse_override("train.progress=true") == (["train", "progress"], True)
    assert parse_override("train.lr=0.01") == (["train", "lr"], 0.01)
    assert parse_override("teacher.name=gnn") == (["teacher", "name"], "gnn")
    assert parse_override("data.sensors=a=b.csv") == (["data", "sensors"], "a=b.csv")  # split at the first '='
    assert parse_override("data.name=") == (["data", "name"], "")
    for bad in ("task.history", "=3", " =3"):
        with pytest.raises(StgeoError, match="--set expects key.path=value"):
            parse_override(bad)
    with pytest.raises(StgeoError, match="cannot read value"):
        parse_override("task.horizons=[3, 6")


def test_apply_overrides_nested_keys():
    raw = {"data": {"readings": "r.csv", "adjacency": {"k": 8}}, "task": {"history": 12}}
    out = apply_overrides(
        raw,
        [
            "task.horizons=[3, 6]",
            "train.progress=true",
            "train.epochs=2",
            "data.adjacency.k=4",
            "student.params.hidden=16",
            "task.history=6",
        ],
    )
    assert out is raw
    assert raw["data"]["adjacency"] == {"k": 4}
    assert raw["student"] == {"params": {"hidden": 16}}
    cfg = config_from_dict(raw)
    assert cfg.task.horizons == [3, 6]
    assert cfg.task.history == 6
    assert cfg.train.progress is True and cfg.train.epochs == 2
    assert cfg.data.adjacency.k == 4 and cfg.data.adjacency.method == "auto"
    assert cfg.student.params == {"hidden": 16} and cfg.student.name == ""
    assert apply_overrides({"a": 1}, None) == {"a": 1}


def test_apply_overrides_into_a_value_is_refused():
    with pytest.raises(StgeoError, match="'history' is not a section"):
        apply_overrides({"task": {"history": 12}}, ["task.history.steps=3"])


def test_override_with_unknown_key_is_reported():
    raw = apply_overrides({"data": {"readings": "r.csv"}}, ["train.epocs=3"])
    with pytest.raises(StgeoError, match="Did you mean 'epochs'"):
        config_from_dict(raw)


# ----------------------------------------------------------------------------------------------
# load_config
# ----------------------------------------------------------------------------------------------

GOOD_YAML = """\
data:
  readings: data/readings.csv
  sensors: /abs/sensors.csv
  roads: ../roads/roads.gpkg
task:
  history: 6
  horizons: [1, 3]
train:
  lr: 1e-3          # YAML 1.1 reads this as text; it must still be a number
  epochs: 2
"""


def test_load_config_and_relative_paths(tmp_path, monkeypatch):
    write(tmp_path / "runs" / "exp.yaml", GOOD_YAML)
    monkeypatch.chdir(tmp_path)
    cfg = load_config("runs/exp.yaml", overrides=["task.history=4"])
    assert cfg.task.history == 4 and cfg.task.horizons == [1, 3]
    assert cfg.train.lr == pytest.approx(0.001) and cfg.train.epochs == 2
    folder = (tmp_path / "runs").resolve()
    assert Path(cfg.base_dir) == folder  # absolute, not relative to the working directory
    assert cfg.resolve(cfg.data.readings) == folder / "data" / "readings.csv"
    assert cfg.resolve(cfg.data.roads) == folder / ".." / "roads" / "roads.gpkg"
    assert cfg.resolve(cfg.data.sensors) == Path("/abs/sensors.csv")
    assert cfg.resolve(None) is None and cfg.resolve("") is None
    assert cfg.resolve("~/x.csv") == Path.home() / "x.csv"


def test_load_config_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(StgeoError, match="does not exist") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_load_config_invalid_yaml(tmp_path):
    path = write(tmp_path / "bad.yaml", "data:\n  readings: [unclosed\ntask: {\n")
    with pytest.raises(StgeoError, match="is not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_load_config_empty_file(tmp_path):
    path = write(tmp_path / "empty.yaml", "")
    with pytest.raises(StgeoError, match="is empty"):
        load_config(path)
    path = write(tmp_path / "comments.yaml", "# only a comment\n")
    with pytest.raises(StgeoError, match="is empty"):
        load_config(path)


def test_load_config_top_level_list(tmp_path):
    path = write(tmp_path / "list.yaml", "- data\n- task\n")
    with pytest.raises(StgeoError, match="must hold a mapping .* not a list"):
        load_config(path)


def test_load_config_validation_error_names_the_file(tmp_path):
    path = write(tmp_path / "typo.yaml", "data:\n  readings: r.csv\ntask:\n  horizon: [3]\n")
    with pytest.raises(StgeoError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert "Unknown config key 'task.horizon'" in msg and "Did you mean 'horizons'?" in msg


def test_load_config_override_fixes_missing_key(tmp_path):
    path = write(tmp_path / "run.yaml", "task:\n  history: 3\n")
    with pytest.raises(StgeoError, match="data.readings is required"):
        load_config(path)
    cfg = load_config(path, overrides=["data.readings=x.csv"])
    assert cfg.resolve(cfg.data.readings) == tmp_path.resolve() / "x.csv"


def test_example_configs_load():
    examples = Path(__file__).resolve().parents[1] / "examples"
    files = sorted(examples.glob("*.yaml"))
    assert files, "no example configs"
    for f in files:
        cfg = load_config(f)
        assert Path(cfg.base_dir) == examples.resolve()
