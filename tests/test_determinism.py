"""Same seed and config, same results: every metric and loss of the report agrees to 1e-6 on the
CPU, within one process and across processes (the CLI's report.json)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from bad_inputs.catalogue import Workspace
from conftest import ROOT
from test_pipeline import FAST

import stgeo_kd

# a tiny copy of the sample city (8 sensors, one day) and the fast settings of test_pipeline; one
# torch thread: on a busy 2-core machine two spinning threads make the run many times slower
SETTINGS = [
    *FAST,
    "train.num_threads=1",
    "outputs.map=false",
    "outputs.onnx=false",
    "outputs.gpkg=false",
    "outputs.checkpoints=false",
]
TOLERANCE = 1e-6
_CLOCKS = ("seconds", "latency", "throughput", "wall", "threads")


def _numbers(node, path=()) -> dict[tuple, float]:
    """Every number in a report section, by key path, leaving out clock readings."""
    out: dict[tuple, float] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            if not any(word in str(key) for word in _CLOCKS):
                out.update(_numbers(value, (*path, str(key))))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.update(_numbers(value, (*path, i)))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out[path] = float(node)
    return out


def _largest_difference(a: dict, b: dict) -> tuple[float, tuple]:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert np.isfinite(value) == np.isfinite(b[key]), key
    worst = max(a, key=lambda k: abs(a[k] - b[k]) if np.isfinite(a[k]) else 0.0)
    return abs(a[worst] - b[worst]), worst


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("determinism"))


@pytest.fixture(scope="module")
def first(workspace):
    return stgeo_kd.run(workspace.path("config.yaml"), out_dir=None, overrides=SETTINGS)


def test_same_seed_and_config_give_the_same_metrics(workspace, first):
    again = stgeo_kd.run(workspace.path("config.yaml"), out_dir=None, overrides=SETTINGS)
    a, b = _numbers(first.report["models"]), _numbers(again.report["models"])
    metrics = [k for k in a if "metrics" in k]
    assert len(metrics) > 50 and any("training_curve" in k for k in a)
    diff, where = _largest_difference(a, b)
    assert diff <= TOLERANCE, (where, a[where], b[where])
    for column in ("mae_teacher", "mae_student", "mae_student_scratch", "student_h12"):
        np.testing.assert_allclose(first.predictions[column], again.predictions[column], atol=TOLERANCE, rtol=0)


def test_a_different_seed_changes_the_metrics(workspace, first):
    """The comparison above is sensitive: another seed moves the trained models' metrics."""
    other = stgeo_kd.run(workspace.path("config.yaml"), out_dir=None, overrides=[*SETTINGS, "train.seed=1"])
    diff, _ = _largest_difference(_numbers(first.report["models"]), _numbers(other.report["models"]))
    assert diff > 1e-3


def test_same_metrics_from_the_cli_in_another_process(workspace, first, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stgeo_kd.cli", "run", str(workspace.path("config.yaml")), "--out", str(out)]
    for s in SETTINGS:
        command += ["--set", s]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    diff, where = _largest_difference(_numbers(first.report["models"]), _numbers(report["models"]))
    assert diff <= TOLERANCE, where
