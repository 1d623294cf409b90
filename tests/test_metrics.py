"""Tests for masked metrics, the persistence / historical-average baselines and the losses."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from shapely.geometry import Point

from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.data.windows import ForecastData
from stgeo_kd.distill.losses import distill_objective, masked_loss
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.baselines import historical_average, persistence
from stgeo_kd.evaluate.metrics import horizon_metrics, masked_errors, per_node_mae

NAN = np.nan

# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------

# one window, 3 steps ahead, 3 nodes; node 2 is never observed
TRUTH = np.array([[[1.0, 2.0, NAN], [4.0, 0.0, 3.0], [NAN, 5.0, 1.0]]])
PRED = np.array([[[2.0, 2.0, 0.0], [1.0, 1.0, 0.0], [9.0, 7.0, 0.0]]])
MASK = np.array([[[True, True, False], [True, True, False], [False, True, False]]])
# errors (pred - truth) where observed: step 1: +1, 0; step 2: -3, +1; step 3: (node 1) +2


def test_masked_errors_by_hand():
    r = masked_errors(PRED, TRUTH, MASK)
    assert r["count"] == 5
    assert r["mae"] == pytest.approx(7 / 5)
    assert r["rmse"] == pytest.approx(math.sqrt((1 + 0 + 9 + 1 + 4) / 5))
    # MAPE skips the zero truth at (step 2, node 1): |1/1|, |0/2|, |3/4|, |2/5|
    assert r["mape"] == pytest.approx((1 + 0 + 0.75 + 0.4) / 4 * 100)


def test_masked_errors_ignores_nan_truth_even_if_mask_true_and_handles_no_observation():
    r = masked_errors(np.array([1.0, 5.0]), np.array([2.0, NAN]), np.array([True, True]))
    assert r["count"] == 1 and r["mae"] == 1.0 and r["rmse"] == 1.0 and r["mape"] == 50.0
    empty = masked_errors(np.array([1.0]), np.array([2.0]), np.array([False]))
    assert empty["count"] == 0 and all(math.isnan(empty[k]) for k in ("mae", "rmse", "mape"))
    zeros = masked_errors(np.array([1.0]), np.array([0.0]), np.array([True]))
    assert zeros["mae"] == 1.0 and math.isnan(zeros["mape"])


def test_horizon_metrics_exact_step_and_pooled():
    r = horizon_metrics(PRED, TRUTH, MASK, [1, 2, 3])
    assert set(r) == {"h1", "h2", "h3", "upto_h1", "upto_h2", "upto_h3"}
    # h1: errors +1, 0
    assert r["h1"]["mae"] == pytest.approx(0.5)
    assert r["h1"]["rmse"] == pytest.approx(math.sqrt(0.5))
    assert r["h1"]["mape"] == pytest.approx(50.0)
    # h2: errors -3, +1; MAPE only over truth 4
    assert r["h2"]["mae"] == pytest.approx(2.0)
    assert r["h2"]["rmse"] == pytest.approx(math.sqrt(5.0))
    assert r["h2"]["mape"] == pytest.approx(75.0)
    # h3: exactly step 3 -> only node 1, error +2 on truth 5
    assert r["h3"] == {"mae": 2.0, "rmse": 2.0, "mape": pytest.approx(40.0), "count": 1}
    # upto_h2 pools steps 1 and 2
    assert r["upto_h2"]["count"] == 4
    assert r["upto_h2"]["mae"] == pytest.approx((1 + 0 + 3 + 1) / 4)
    assert r["upto_h2"]["mape"] == pytest.approx((100 + 0 + 75) / 3)
    # upto_h3 pools steps 1..3
    assert r["upto_h3"]["count"] == 5
    assert r["upto_h3"]["mae"] == pytest.approx(1.4)
    assert r["upto_h3"]["rmse"] == pytest.approx(math.sqrt(3.0))
    assert r["upto_h1"] == r["h1"]


def test_per_node_mae():
    out = per_node_mae(PRED, TRUTH, MASK)
    assert out.shape == (3,)
    assert out[0] == pytest.approx((1 + 3) / 2)  # step 3 masked (its truth is NaN)
    assert out[1] == pytest.approx((0 + 1 + 2) / 3)
    assert math.isnan(out[2])


# ----------------------------------------------------------------------------------------------
# baselines
# ----------------------------------------------------------------------------------------------


def baseline_data() -> ForecastData:
    """12-hour steps from Friday 2024-03-08 00:00, 12 steps, 3 sensors; history 3, horizon 2.

    t: 0 Fri 00, 1 Fri 12, 2 Sat 00, 3 Sat 12, 4 Sun 00, 5 Sun 12 (train = t 0..5),
       6 Mon 00, 7 Mon 12, 8 Tue 00, 9 Tue 12, 10 Wed 00, 11 Wed 12 (test = t 6..11).
    """
    raw = np.array(
        [
            [1, 10, 7],
            [2, NAN, NAN],
            [3, 30, 8],
            [4, 40, NAN],
            [5, 50, 9],
            [6, 60, NAN],
            [11, 21, NAN],
            [12, NAN, NAN],
            [13, NAN, NAN],
            [14, 24, NAN],
            [15, 25, 5],
            [16, 26, 6],
        ],
        dtype=np.float32,
    )
    values = xr.DataArray(
        raw,
        dims=("time", "node"),
        coords={"time": pd.date_range("2024-03-08 00:00", periods=12, freq="12h").values, "node": ["a", "b", "c"]},
    )
    nodes = gpd.GeoDataFrame(
        {"sensor_id": ["a", "b", "c"]}, geometry=[Point(0, 0), Point(1, 0), Point(2, 0)], crs="EPSG:4326"
    )
    graph = SensorGraph(values=values, edge_index=[[0, 1], [1, 2]], edge_weight=[1.0, 1.0], nodes=nodes)
    return ForecastData(graph, history=3, horizon=2, train=0.5, val=0.0, test=0.5)


def test_baseline_data_layout():
    d = baseline_data()
    np.testing.assert_array_equal(d.splits["train"].starts, [0, 1])
    np.testing.assert_array_equal(d.splits["test"].starts, [6, 7])
    np.testing.assert_allclose(d.features[:6, 0, 3], [4, 4, 5, 5, 6, 6])  # Fri, Sat, Sun
    assert d.steps_per_day == 2
    assert d.scaler.mean == pytest.approx(235 / 14)  # (21 + 190 + 24) / 14 observed training readings


def test_persistence_last_observed_with_fallbacks():
    d = baseline_data()
    out = persistence(d, "test")
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    mean = 235 / 14
    # window 6 sees t 6, 7, 8: a -> 13; b missing at 7 and 8 -> 21 (t 6); c never -> training mean
    # window 7 sees t 7, 8, 9: a -> 14; b -> 24; c never -> training mean
    expected_last = np.array([[13, 21, mean], [14, 24, mean]])
    np.testing.assert_allclose(out, np.repeat(expected_last[:, None, :], 2, axis=1), rtol=1e-6)


def test_historical_average_test_split():
    out = historical_average(baseline_data(), "test")
    assert out.shape == (2, 2, 3)
    # targets: window 6 -> t 9 (Tue 12:00), t 10 (Wed 00:00); window 7 -> t 10, t 11 (Wed 12:00)
    # weekday 12:00 in training is only Fri 12: a -> 2; b missing there -> b's 12:00 mean over
    # all days (40 + 60) / 2 = 50; c has no 12:00 reading at all -> c's mean (7 + 8 + 9) / 3 = 8
    noon = [2, 50, 8]
    midnight = [1, 10, 7]  # weekday 00:00: Fri 00 only
    np.testing.assert_allclose(out, [[noon, midnight], [midnight, noon]])


def test_historical_average_weekend_slots():
    out = historical_average(baseline_data(), "train")
    # window 0 -> t 3 (Sat 12), t 4 (Sun 00); window 1 -> t 4, t 5 (Sun 12)
    # weekend 12:00: a (4 + 6) / 2 = 5, b (40 + 60) / 2 = 50, c none -> 8
    # weekend 00:00: a (3 + 5) / 2 = 4, b (30 + 50) / 2 = 40, c (8 + 9) / 2 = 8.5
    noon, midnight = [5, 50, 8], [4, 40, 8.5]
    np.testing.assert_allclose(out, [[noon, midnight], [midnight, noon]])


# ----------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------

PRED_L = [1.0, 2.0, 3.0, 4.0]
TARGET_L = [0.0, 4.0, float("nan"), 4.5]  # errors +1, -2, (NaN, weight 0), -0.5
WEIGHT_L = [1.0, 2.0, 0.0, 1.0]  # total 4


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("mae", (1 * 1 + 2 * 2 + 0.5 * 1) / 4),
        ("mse", (1 * 1 + 4 * 2 + 0.25 * 1) / 4),
        # huber, delta 1: 0.5 e^2 for |e| <= 1, else |e| - 0.5 -> 0.5, 1.5, 0.125
        ("huber", (0.5 * 1 + 1.5 * 2 + 0.125 * 1) / 4),
    ],
)
def test_masked_loss_weighted_with_nan_under_zero_weight(kind, expected):
    pred = torch.tensor(PRED_L, requires_grad=True)
    loss = masked_loss(pred, torch.tensor(TARGET_L), torch.tensor(WEIGHT_L), kind)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[2] == 0.0
    if kind == "mae":  # d/dpred = w * sign(e) / total weight
        torch.testing.assert_close(pred.grad, torch.tensor([0.25, -0.5, 0.0, -0.25]))


def test_masked_loss_bool_weight_and_nothing_observed():
    pred = torch.tensor(PRED_L)
    target = torch.tensor(TARGET_L)
    mask = torch.tensor([True, True, False, True])
    assert masked_loss(pred, target, mask, "mae").item() == pytest.approx(3.5 / 3)
    none = torch.zeros(4, dtype=torch.bool)
    assert masked_loss(pred, target, none, "mse").item() == 0.0
    with pytest.raises(StgeoError, match="Did you mean 'mse'"):
        masked_loss(pred, target, mask, "mes")


S = [1.0, 2.0, 3.0, 4.0]  # student
TCH = [2.0, 2.0, 5.0, 0.0]  # teacher
LAB = [0.0, 4.0, 0.0, 8.0]  # label (entry 2 missing)
MSK = [True, True, False, True]


@pytest.mark.parametrize(
    "alpha,fills,expected",
    [
        # alpha 0: target = label, teacher where missing -> [0, 4, 5, 8]: errors 1, 2, 2, 4
        (0.0, True, 9 / 4),
        (0.0, False, 7 / 3),  # missing entry dropped: 1, 2, 4
        # alpha 1: target = teacher [2, 2, 5, 0]: errors 1, 0, 2, 4
        (1.0, True, 7 / 4),
        (1.0, False, 5 / 3),
        # alpha 0.5: target [1, 3, 5, 4]: errors 0, 1, 2, 0
        (0.5, True, 3 / 4),
        (0.5, False, 1 / 3),
    ],
)
def test_distill_objective_by_hand(alpha, fills, expected):
    loss = distill_objective(
        torch.tensor(S), torch.tensor(TCH), torch.tensor(LAB), torch.tensor(MSK), alpha, "mae", fills
    )
    assert loss.item() == pytest.approx(expected)


def test_distill_objective_mse_and_nan_label_where_missing():
    label = torch.tensor([0.0, 4.0, float("nan"), 8.0])
    loss = distill_objective(torch.tensor(S), torch.tensor(TCH), label, torch.tensor(MSK), 0.5, "mse", True)
    assert loss.item() == pytest.approx((0 + 1 + 4 + 0) / 4)


def test_distill_gradients_reach_student_not_teacher():
    student = torch.tensor(S, requires_grad=True)
    teacher = torch.tensor(TCH, requires_grad=True)
    loss = distill_objective(student, teacher, torch.tensor(LAB), torch.tensor(MSK), 0.5, "mae", True)
    loss.backward()
    assert teacher.grad is None
    # errors 0, -1, -2, 0 (student - target): d|e|/ds = sign(e) / 4
    torch.testing.assert_close(student.grad, torch.tensor([0.0, -0.25, -0.25, 0.0]))
