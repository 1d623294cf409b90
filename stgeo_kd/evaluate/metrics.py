"""Masked forecast metrics per horizon, in the data's own units."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def masked_errors(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (percent) over the entries where ``mask`` is true.

    MAPE skips entries whose true value is within 1e-6 of zero (it is undefined there).
    Returns NaN for every metric when no entry is observed.
    """
    m = mask & np.isfinite(truth)
    if not m.any():
        return {"mae": float("nan"), "rmse": float("nan"), "mape": float("nan"), "count": 0}
    err = pred[m].astype(np.float64) - truth[m].astype(np.float64)
    t = truth[m].astype(np.float64)
    nz = np.abs(t) > 1e-6
    mape = float(np.mean(np.abs(err[nz] / t[nz])) * 100.0) if nz.any() else float("nan")
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": mape,
        "count": int(m.sum()),
    }


def horizon_metrics(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, horizons: Sequence[int]) -> dict[str, dict]:
    """Metrics keyed ``hK`` (exactly step K ahead) and ``upto_hK`` (steps 1..K pooled).

    Shapes:
        pred, truth, mask: (W, H, N) -- windows, steps ahead, nodes. ``truth`` may hold NaN
        where ``mask`` is false.
    """
    out: dict[str, dict] = {}
    for k in horizons:
        out[f"h{k}"] = masked_errors(pred[:, k - 1], truth[:, k - 1], mask[:, k - 1])
    for k in horizons:
        out[f"upto_h{k}"] = masked_errors(pred[:, :k], truth[:, :k], mask[:, :k])
    return out


def per_node_mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Test MAE per node over all windows and steps, (N,); NaN for a node with no observation."""
    m = mask & np.isfinite(truth)
    err = np.where(m, np.abs(pred - np.nan_to_num(truth)), 0.0)
    count = m.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, err.sum(axis=(0, 1)) / np.maximum(count, 1), np.nan)
