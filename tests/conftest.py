"""Shared fixtures: paths to the bundled sample data and the optional real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CITY = ROOT / "sample_data" / "sample_city"
SHARED_DATA = Path(os.environ.get("STGEO_KD_SHARED_DATA", ROOT.parent / "shared" / "data"))
LOS_LOOP = SHARED_DATA / "los_loop"

needs_los_loop = pytest.mark.skipif(
    not (LOS_LOOP / "los_speed.csv").exists(), reason=f"real data not found at {LOS_LOOP}"
)


@pytest.fixture(autouse=True)
def _quiet_torch_threads():
    # tests run on 2-core CI machines; keep torch from oversubscribing them
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
