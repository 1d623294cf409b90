"""Schedules for distillation weights, temperature and the learning rate.

A :class:`Schedule` maps the epoch (0-based) of a run of ``epochs`` epochs to a number:

- ``constant``: ``start`` throughout;
- ``linear``: from ``start`` at epoch 0 to ``end`` at the last epoch;
- ``cosine``: the same end points along half a cosine (slow, fast, slow);
- ``step``: ``start * gamma ** (epoch // every)``, never past ``end`` when ``end`` is given.

The learning-rate schedules (:func:`lr_scheduler`) wrap torch's schedulers: ``plateau`` (halve
on a validation plateau), ``cosine`` (annealing to ``end_factor * lr``), ``linear`` (linear
decay to ``end_factor * lr``), ``exponential`` (``lr * gamma ** epoch``) and ``constant``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from stgeo_kd.errors import StgeoError, did_you_mean

SCHEDULES = ("constant", "linear", "cosine", "step")
LR_SCHEDULES = ("plateau", "cosine", "linear", "exponential", "constant")


def _from_mapping(cls, value: dict, where: str):
    """Build a schedule dataclass from a config mapping, naming any unknown key."""
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in allowed:
            raise StgeoError(f"Unknown key '{where}.{key}'. {did_you_mean(str(key), allowed)}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise StgeoError(f"{where}: {exc}") from None


@dataclass
class Schedule:
    """A number that changes with the epoch; see the module docstring for the kinds."""

    kind: str = "constant"
    start: float = 1.0
    end: float | None = None
    every: int = 10
    gamma: float = 0.5

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise StgeoError(f"Unknown schedule kind {self.kind!r}. {did_you_mean(self.kind, SCHEDULES)}")
        if self.kind in ("linear", "cosine") and self.end is None:
            raise StgeoError(f"A {self.kind} schedule needs both start and end (got start={self.start}).")
        if self.kind == "step" and self.every < 1:
            raise StgeoError(f"A step schedule needs every >= 1 epoch, got {self.every}.")

    @classmethod
    def parse(cls, value: Any, where: str) -> Schedule:
        """A number (constant) or a mapping with ``kind``, ``start``, ``end``, ``every``, ``gamma``."""
        if isinstance(value, Schedule):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls("constant", float(value))
        if isinstance(value, dict):
            return _from_mapping(cls, value, where)
        raise StgeoError(f"{where} must be a number or a mapping like {{kind: linear, start: 0.9, end: 0.1}}, got {value!r}.")

    def __call__(self, epoch: int, epochs: int) -> float:
        progress = min(max(epoch / max(epochs - 1, 1), 0.0), 1.0)
        if self.kind == "constant":
            return float(self.start)
        if self.kind == "linear":
            return float(self.start + (self.end - self.start) * progress)
        if self.kind == "cosine":
            return float(self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        value = self.start * self.gamma ** (epoch // self.every)
        if self.end is not None:
            value = max(value, self.end) if self.gamma < 1 else min(value, self.end)
        return float(value)


@dataclass
class LRSchedule:
    """Learning-rate schedule over a run of ``epochs`` epochs (see the module docstring)."""

    kind: str = "plateau"
    factor: float = 0.5
    patience: int | None = None
    gamma: float = 0.95
    end_factor: float = 0.05

    def __post_init__(self):
        if self.kind not in LR_SCHEDULES:
            raise StgeoError(f"Unknown train.lr_schedule {self.kind!r}. {did_you_mean(self.kind, LR_SCHEDULES)}")

    @classmethod
    def parse(cls, value: Any, where: str = "train.lr_schedule") -> LRSchedule:
        """A kind name (``cosine``) or a mapping (``{kind: exponential, gamma: 0.97}``)."""
        if isinstance(value, LRSchedule):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict):
            return _from_mapping(cls, value, where)
        raise StgeoError(f"{where} must be one of {', '.join(LR_SCHEDULES)} or a mapping with 'kind', got {value!r}.")


def lr_scheduler(opt: torch.optim.Optimizer, schedule: LRSchedule, epochs: int, patience: int, monitor: str) -> dict | None:
    """A Lightning ``lr_scheduler`` entry for ``configure_optimizers`` (None for ``constant``)."""
    k = schedule.kind
    if k == "constant":
        return None
    if k == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=schedule.factor, patience=schedule.patience or max(2, patience // 3)
        )
        # strict=False: an epoch cut short (max_time) may end without the monitored metric
        return {"scheduler": sched, "monitor": monitor, "strict": False}
    if k == "cosine":
        base = opt.param_groups[0]["lr"]
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs - 1, 1), eta_min=base * schedule.end_factor)
    elif k == "linear":
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=schedule.end_factor, total_iters=max(epochs - 1, 1))
    else:
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=schedule.gamma)
    return {"scheduler": sched, "interval": "epoch"}
