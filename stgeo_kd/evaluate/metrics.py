"""Masked forecast metrics per horizon, in the data's own units."""

from __future__ import annotations

from collections.abc import Sequence

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


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C): rows are true classes, columns predicted ones."""
    idx = truth.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(idx.ravel(), minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_scores(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1 and Cohen's kappa over the entries where ``mask`` is true.

    Macro-F1 averages the per-class F1 ``2 TP / (2 TP + FP + FN)`` over the classes that occur
    in the truth or the predictions (a class absent from both is left out). Cohen's kappa is
    ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` the agreement expected from the marginals
    (Cohen 1960); it is 0 for a constant prediction.
    """
    m = mask.astype(bool)
    if not m.any():
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "kappa": float("nan"), "count": 0}
    cm = confusion_matrix(pred[m], truth[m], num_classes).astype(np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    f1 = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12), 0.0)
    p_o = tp.sum() / total
    p_e = float((cm.sum(0) * cm.sum(1)).sum() / total**2)
    kappa = (p_o - p_e) / (1.0 - p_e) if p_e < 1.0 else 0.0
    return {
        "accuracy": float(p_o),
        "macro_f1": float(f1[present].mean()),
        "kappa": float(kappa),
        "count": int(total),
    }


def horizon_classification(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, horizons: Sequence[int],
                           num_classes: int) -> dict[str, dict]:
    """Classification scores keyed ``hK`` (lead step K), plus ``all`` pooled over those steps.

    Shapes:
        pred, truth, mask: (W, H, N) integer classes / bool.
    """
    out = {f"h{k}": classification_scores(pred[:, k - 1], truth[:, k - 1], mask[:, k - 1], num_classes) for k in horizons}
    sel = [k - 1 for k in horizons]
    out["all"] = classification_scores(pred[:, sel], truth[:, sel], mask[:, sel], num_classes)
    return out
