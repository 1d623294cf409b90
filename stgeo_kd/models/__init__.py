"""Forecasting models (teachers and students) and the one place that maps names to classes.

Every forecasting model takes the same input and returns the same output, so teachers and
students are interchangeable in training, evaluation and export:

Shapes:
    input: (B, T, N, 4) -- scaled value, observed flag, time of day in [0, 1), day of week 0..6
    output: (B, H, N) -- scaled forecasts for steps 1..H
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from stgeo_kd.errors import StgeoError, did_you_mean
from stgeo_kd.models.students import GNNStudent, MLPStudent
from stgeo_kd.models.teachers import GraphWaveNet

MODELS: dict[str, Callable[..., torch.nn.Module]] = {
    "graph_wavenet": GraphWaveNet,
    "mlp": MLPStudent,
    "gnn": GNNStudent,
}


def build_model(
    name: str,
    params: dict[str, Any],
    *,
    num_nodes: int,
    history: int,
    horizon: int,
    steps_per_day: int,
    adjacency: np.ndarray,
) -> torch.nn.Module:
    """Build a registered model; unknown names or parameters get a message listing the valid ones."""
    if name not in MODELS:
        raise StgeoError(f"Unknown model {name!r}. {did_you_mean(name, list(MODELS))}")
    cls = MODELS[name]
    import inspect

    sig = inspect.signature(cls.__init__)
    fixed = {"num_nodes", "history", "horizon", "steps_per_day", "adjacency"}
    allowed = [p for p in sig.parameters if p not in fixed | {"self"}]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise StgeoError(f"Model {name!r} has no parameter {unknown[0]!r}. {did_you_mean(unknown[0], allowed)}")
    try:
        return cls(
            num_nodes=num_nodes,
            history=history,
            horizon=horizon,
            steps_per_day=steps_per_day,
            adjacency=adjacency,
            **params,
        )
    except (TypeError, ValueError) as exc:
        raise StgeoError(f"Model {name!r}: bad parameters {params}: {exc}") from None


__all__ = ["MODELS", "build_model", "GraphWaveNet", "MLPStudent", "GNNStudent"]
