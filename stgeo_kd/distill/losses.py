"""Masked regression losses and the offline distillation objective for forecasting."""

from __future__ import annotations

import torch

from stgeo_kd.errors import StgeoError, did_you_mean

LOSSES = ("mae", "mse", "huber")


def masked_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "mae") -> torch.Tensor:
    """Mean of an elementwise loss over the entries where ``weight`` is true (or weighted by it).

    Args:
        pred, target: tensors of the same shape, e.g. (B, H, N) scaled forecasts.
        weight: bool or float tensor of that shape; 0/False entries (missing labels) count for
            nothing, and the mean divides by the total weight, not the number of entries.
        kind: ``mae`` (|e|), ``mse`` (e^2) or ``huber`` (smooth L1 with delta 1).

    Returns:
        A scalar tensor; 0 when no entry has weight.
    """
    w = weight.to(pred.dtype)
    # a NaN target under weight 0 must poison neither the sum nor the gradient (0 * NaN = NaN
    # in backward), so such targets are replaced before any arithmetic
    target = torch.where(w > 0, target, torch.zeros_like(target))
    err = pred - target
    if kind == "mae":
        e = err.abs()
    elif kind == "mse":
        e = err * err
    elif kind == "huber":
        e = torch.nn.functional.huber_loss(pred, target, reduction="none", delta=1.0)
    else:
        raise StgeoError(f"Unknown loss {kind!r}. {did_you_mean(kind, LOSSES)}")
    # zero the error first: a NaN target under weight 0 must not poison the sum
    e = torch.where(w > 0, e, torch.zeros_like(e))
    return (e * w).sum() / w.sum().clamp_min(1.0)


def distill_objective(
    student: torch.Tensor,
    teacher: torch.Tensor,
    label: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    kind: str = "mae",
    teacher_fills_missing: bool = True,
) -> torch.Tensor:
    """Offline distillation for forecasting: regress on a blend of teacher and label.

    ``target = alpha * teacher + (1 - alpha) * label`` where the label is observed; where it is
    missing the target is the teacher alone (``teacher_fills_missing``) or the entry is dropped.
    ``alpha = 0`` is plain supervised training, ``alpha = 1`` pure imitation of the teacher.

    Shapes:
        student, teacher, label: (B, H, N) scaled; mask: (B, H, N) bool (True = observed label).
    """
    teacher = teacher.detach()
    target = torch.where(mask, alpha * teacher + (1.0 - alpha) * label, teacher)
    weight = torch.ones_like(mask) if teacher_fills_missing else mask
    return masked_loss(student, target, weight, kind)
