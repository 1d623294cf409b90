"""Los-loop (real data, skipped when ../shared/data is absent): the whole pipeline, briefly.

The full-length benchmark is benchmarks/los_loop_seeds.py (docs/benchmarks.md); this test
checks the outputs a user gets, with short training.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from conftest import ROOT, needs_los_loop

import stgeo_kd

QUICK = [
    "train.epochs=1",
    "train.student_epochs=1",
    "train.batches_per_epoch=4",
    "train.progress=false",
    "train.latency_repeats=5",
    "train.max_minutes=null",
    "teacher.params.channels=8",
]


@needs_los_loop
def test_los_loop_outputs(tmp_path):
    result = stgeo_kd.run(ROOT / "examples" / "los_loop.yaml", out_dir=tmp_path, overrides=QUICK)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dataset"]["nodes"] == 207
    assert report["task"]["windows"]["test"] == 403 - 24 + 1
    # persistence is deterministic: T-GCN's protocol gives 5.797 mph MAE at step 12
    assert report["models"]["baselines"]["persistence"]["metrics"]["h12"]["mae"] == pytest.approx(5.797, abs=1e-3)
    gdf = gpd.read_file(tmp_path / "predictions.gpkg")
    assert len(gdf) == 207
    assert gdf.crs.to_epsg() == 4326
    assert {"teacher_h12", "student_h12", "observed_h12", "mae_student"} <= set(gdf.columns)
    html = (tmp_path / "map.html").read_text()
    assert all(sid in html for sid in result.graph.sensor_ids)
    assert report["models"]["student"]["onnx_max_abs_diff"] < 1e-4
