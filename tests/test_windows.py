"""Tests for stgeo_kd.data.windows: chronological splits, train-only scaler, features, windows."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from shapely.geometry import Point

from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.data.windows import FEATURES, ForecastData, Scaler, WindowDataset
from stgeo_kd.errors import StgeoError

T, N = 30, 3
HISTORY, HORIZON = 3, 2
START = "2024-03-04 00:00"  # a Monday


def make_raw() -> np.ndarray:
    """Hourly readings, 30 steps x 3 sensors.

    Training part (t < 18): 10 where t + n is even, 30 where odd, with one of each missing
    ((4, 0) was a 10, (2, 1) was a 30) -> 26 tens and 26 thirties: mean 20, std 10.
    Later steps: 100 + t + 10 n, with (27, 0) missing.
    """
    raw = np.zeros((T, N), dtype=np.float32)
    for t in range(T):
        for n in range(N):
            raw[t, n] = (10.0 if (t + n) % 2 == 0 else 30.0) if t < 18 else 100.0 + t + 10 * n
    raw[4, 0] = np.nan
    raw[2, 1] = np.nan
    raw[27, 0] = np.nan
    return raw


def make_graph(raw: np.ndarray | None = None) -> SensorGraph:
    raw = make_raw() if raw is None else raw
    values = xr.DataArray(
        raw,
        dims=("time", "node"),
        coords={"time": pd.date_range(START, periods=raw.shape[0], freq="1h").values, "node": ["a", "b", "c"]},
    )
    nodes = gpd.GeoDataFrame(
        {"sensor_id": ["a", "b", "c"]},
        geometry=[Point(13.40, 52.50), Point(13.41, 52.50), Point(13.41, 52.51)],
        crs="EPSG:4326",
    )
    return SensorGraph(values=values, edge_index=[[0, 1, 2], [1, 2, 0]], edge_weight=[1.0, 0.5, 0.25], nodes=nodes)


@pytest.fixture()
def data() -> ForecastData:
    return ForecastData(make_graph(), HISTORY, HORIZON, train=0.6, val=0.2, test=0.2)


def test_graph_basics():
    g = make_graph()
    assert g.num_nodes == 3 and g.num_steps == 30
    assert g.step_minutes == 60.0
    assert g.sensor_ids == ["a", "b", "c"]
    a = g.adjacency()
    assert a[0, 1] == 1.0 and a[1, 2] == 0.5 and a[2, 0] == 0.25 and a.sum() == pytest.approx(1.75)


def test_split_sizes_and_window_starts(data):
    # 30 steps: test = round(6.0) = 6, val = 6, train = 18; one window needs 3 + 2 = 5 steps
    tr, va, te = data.splits["train"], data.splits["val"], data.splits["test"]
    assert (tr.start, tr.stop) == (0, 18)
    assert (va.start, va.stop) == (18, 24)
    assert (te.start, te.stop) == (24, 30)
    np.testing.assert_array_equal(tr.starts, np.arange(0, 14))
    np.testing.assert_array_equal(va.starts, [18, 19])
    np.testing.assert_array_equal(te.starts, [24, 25])
    for split in (tr, va, te):
        first_input = split.starts
        last_target = split.starts + HISTORY + HORIZON - 1
        assert (first_input >= split.start).all() and (last_target < split.stop).all()
    assert len(data.dataset("train")) == 14 and len(data.dataset("val")) == 2 and len(data.dataset("test")) == 2


def test_empty_val_split_is_allowed():
    d = ForecastData(make_graph(), HISTORY, HORIZON, train=0.8, val=0.0, test=0.2)
    assert (d.splits["train"].start, d.splits["train"].stop) == (0, 24)
    assert len(d.splits["val"].starts) == 0
    np.testing.assert_array_equal(d.splits["test"].starts, [24, 25])


@pytest.mark.parametrize(
    "train,val,test,name,steps",
    [(0.9, 0.0, 0.1, "test", 3), (0.8, 0.13, 0.07, "val", 4), (0.1, 0.1, 0.8, "train", 3)],
)
def test_too_short_split_raises(train, val, test, name, steps):
    with pytest.raises(StgeoError, match=rf"The {name} split has {steps} time steps .* history \+ horizon = 5"):
        ForecastData(make_graph(), HISTORY, HORIZON, train=train, val=val, test=test)


def test_scaler_fitted_on_training_readings_only(data):
    assert data.scaler.mean == pytest.approx(20.0)
    assert data.scaler.std == pytest.approx(10.0)
    raw = make_raw()
    raw[28, 2] = 1e6  # a test reading
    raw[20, 1] = -5e5  # a validation reading
    changed = ForecastData(make_graph(raw), HISTORY, HORIZON, train=0.6, val=0.2, test=0.2)
    assert changed.scaler.mean == pytest.approx(20.0)
    assert changed.scaler.std == pytest.approx(10.0)
    # ... while a training reading does move it: 27 thirties and 25 tens -> mean 20 + 10 * 2 / 52
    raw = make_raw()
    raw[0, 0] = 30.0
    moved = ForecastData(make_graph(raw), HISTORY, HORIZON, train=0.6, val=0.2, test=0.2)
    assert moved.scaler.mean == pytest.approx(20.0 + 20.0 / 52, rel=1e-6)


def test_scaler_roundtrip_and_constant_data():
    s = Scaler.fit(np.array([1.0, np.nan, 3.0]))
    assert (s.mean, s.std) == (2.0, 1.0)
    assert s.transform(5.0) == 3.0 and s.inverse(3.0) == 5.0
    flat = Scaler.fit(np.array([4.0, 4.0]))
    assert flat.std == 1.0  # no division by zero
    with pytest.raises(StgeoError, match="no observed value"):
        Scaler.fit(np.array([np.nan, np.nan]))


def test_features_values_mask_and_targets(data):
    assert FEATURES == ("value", "observed", "time_of_day", "day_of_week")
    assert data.features.shape == (T, N, 4) and data.features.dtype == np.float32
    assert data.target.shape == (T, N) and data.mask.shape == (T, N)
    # missing readings: mask False, scaled value 0, observed flag 0, target 0, raw NaN
    for t, n in [(4, 0), (2, 1), (27, 0)]:
        assert not data.mask[t, n]
        assert data.features[t, n, 0] == 0.0 and data.features[t, n, 1] == 0.0
        assert data.target[t, n] == 0.0
        assert np.isnan(data.raw[t, n])
    assert data.mask.sum() == T * N - 3
    # observed readings, scaled by (x - 20) / 10
    assert data.features[0, 0, 0] == pytest.approx(-1.0)  # 10
    assert data.features[0, 1, 0] == pytest.approx(1.0)  # 30
    assert data.features[0, 1, 1] == 1.0
    assert data.target[19, 1] == pytest.approx((100 + 19 + 10 - 20) / 10)  # 10.9
    assert data.features[28, 2, 0] == pytest.approx((100 + 28 + 20 - 20) / 10)  # 12.8


def test_time_of_day_and_day_of_week(data):
    assert data.steps_per_day == 24
    tod, dow = data.features[..., 2], data.features[..., 3]
    assert (tod[0] == 0.0).all()  # 00:00
    assert tod[6, 0] == pytest.approx(0.25)  # 06:00
    assert tod[18, 2] == pytest.approx(0.75)  # 18:00
    assert tod[25, 1] == pytest.approx(1 / 24)  # next day 01:00
    assert (dow[:24] == 0).all()  # 2024-03-04 is a Monday
    assert (dow[24:] == 1).all()  # Tuesday


def test_day_of_week_for_a_sunday():
    raw = np.ones((10, 3), dtype=np.float32)
    g = make_graph(raw)
    g.values = g.values.assign_coords(time=pd.date_range("2024-03-10 12:00", periods=10, freq="6h").values)
    d = ForecastData(g, 1, 1, train=0.6, val=0.2, test=0.2)
    # Sunday 12:00, 18:00, Monday 00:00 ...
    np.testing.assert_allclose(d.features[:3, 0, 3], [6, 6, 0])
    np.testing.assert_allclose(d.features[:3, 0, 2], [0.5, 0.75, 0.0])
    assert d.steps_per_day == 4


def test_window_dataset_item_shapes_and_alignment(data):
    ds = data.dataset("val")
    assert isinstance(ds, WindowDataset)
    x, y, m, i = ds[1]
    assert i == 1
    assert tuple(x.shape) == (HISTORY, N, 4) and tuple(y.shape) == (HORIZON, N) and tuple(m.shape) == (HORIZON, N)
    assert x.dtype == torch.float32 and y.dtype == torch.float32 and m.dtype == torch.bool
    s = 19  # second validation window
    torch.testing.assert_close(x, torch.from_numpy(data.features[s : s + HISTORY]))
    # target at step k is the reading at s + history + k - 1, scaled: (100 + t + 10 n - 20) / 10
    for k in (1, 2):
        t = s + HISTORY + k - 1
        expected = torch.tensor([(100 + t + 10 * n - 20) / 10 for n in range(N)])
        torch.testing.assert_close(y[k - 1], expected)
    assert m.all()


def test_window_dataset_missing_entries(data):
    x, y, m, _ = data.dataset("train")[0]
    # input step 2 of window 0 is t = 2, where sensor b is missing
    assert x[2, 1, 0] == 0.0 and x[2, 1, 1] == 0.0 and x[1, 1, 1] == 1.0
    x, y, m, _ = data.dataset("test")[0]
    # window at 24: targets are t = 27, 28; sensor a is missing at 27
    assert not m[0, 0] and y[0, 0] == 0.0
    assert m[1, 0] and y[1, 0] == pytest.approx((100 + 28 - 20) / 10)
    raw_t, raw_m = data.window_targets_raw("test")
    assert raw_t.shape == (2, HORIZON, N)
    assert np.isnan(raw_t[0, 0, 0]) and not raw_m[0, 0, 0]
    assert raw_t[1, 1, 2] == pytest.approx(100 + 25 + 3 + 1 + 20)  # window 25, step 2 -> t = 29
    inputs = data.window_inputs("test")
    assert tuple(inputs.shape) == (2, HISTORY, N, 4)
    torch.testing.assert_close(inputs[1], torch.from_numpy(data.features[25:28]))
