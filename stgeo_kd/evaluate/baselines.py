"""Simple forecasting baselines every model must beat: persistence and historical average."""

from __future__ import annotations

import numpy as np

from stgeo_kd.data.windows import ForecastData


def persistence(data: ForecastData, split: str = "test") -> np.ndarray:
    """Repeat the last observed value of each window's history for every step ahead.

    When a node has no observation in the window's history, the training mean is used.

    Returns:
        (W, H, N) forecasts in data units.
    """
    starts = data.splits[split].starts
    idx = starts[:, None] + np.arange(data.history)[None, :]
    hist = data.raw[idx]  # (W, T, N)
    obs = ~np.isnan(hist)
    # index of the last observed step in each (window, node), -1 if none
    last = np.where(obs.any(1), data.history - 1 - np.argmax(obs[:, ::-1], axis=1), -1)
    w, n = np.meshgrid(np.arange(len(starts)), np.arange(hist.shape[2]), indexing="ij")
    value = np.where(last >= 0, hist[w, np.maximum(last, 0), n], data.scaler.mean)
    return np.repeat(value[:, None, :], data.horizon, axis=1).astype(np.float32)


def historical_average(data: ForecastData, split: str = "test") -> np.ndarray:
    """Mean of the training readings at the same time of day (and weekday/weekend) per node.

    Slots never observed in training fall back to the node's time-of-day mean over all days,
    then to the node's training mean.

    Returns:
        (W, H, N) forecasts in data units.
    """
    tr = data.splits["train"]
    raw = data.raw[: tr.stop]
    spd = data.steps_per_day
    feats = data.features
    slot = np.clip(np.floor(feats[:, 0, 2] * spd + 1e-3).astype(np.int64), 0, spd - 1)
    weekend = (feats[:, 0, 3] >= 5).astype(np.int64)
    key = slot * 2 + weekend
    n = raw.shape[1]
    obs = ~np.isnan(raw)
    sums = np.zeros((spd * 2, n))
    counts = np.zeros((spd * 2, n))
    np.add.at(sums, key[: tr.stop], np.where(obs, raw, 0.0))
    np.add.at(counts, key[: tr.stop], obs)
    tod_sums = sums.reshape(spd, 2, n).sum(1)
    tod_counts = counts.reshape(spd, 2, n).sum(1)
    node_mean = np.nansum(raw, 0) / np.maximum(obs.sum(0), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tod_mean = np.where(tod_counts > 0, tod_sums / np.maximum(tod_counts, 1), node_mean[None, :])
        table = np.where(counts > 0, sums / np.maximum(counts, 1), np.repeat(tod_mean, 2, axis=0))
    starts = data.splits[split].starts
    idx = starts[:, None] + data.history + np.arange(data.horizon)[None, :]
    return table[key[idx]].astype(np.float32)
