"""Distillation: losses that let a student learn from a teacher's predictions."""

from stgeo_kd.distill.losses import distill_objective, masked_loss

__all__ = ["distill_objective", "masked_loss"]
