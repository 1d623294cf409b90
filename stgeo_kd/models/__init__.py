"""Forecasting models (teachers and students) and the one place that maps names to classes.

Every forecasting model takes the same input and returns the same output, so teachers and
students are interchangeable in training, evaluation and export:

Shapes:
    input: (B, T, N, 4) -- scaled value, observed flag, time of day in [0, 1), day of week 0..6
    output: (B, H, N) -- scaled forecasts for steps 1..H
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from stgeo_kd.errors import StgeoError, did_you_mean
from stgeo_kd.models.heads import HEADS, ClassifierHead, GaussianHead, model_outputs
from stgeo_kd.models.recurrent import RNNForecaster, gru, lstm
from stgeo_kd.models.students import GNNStudent, MLPStudent
from stgeo_kd.models.teachers import GraphWaveNet

MODELS: dict[str, Callable[..., torch.nn.Module]] = {
    "graph_wavenet": GraphWaveNet,
    "mlp": MLPStudent,
    "gnn": GNNStudent,
    "lstm": lstm,
    "gru": gru,
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
    head: str = "point",
    num_classes: int | None = None,
) -> torch.nn.Module:
    """Build a registered model; unknown names or parameters get a message listing the valid ones.

    ``head``: ``point`` (the model itself), ``gaussian`` (:class:`GaussianHead`, mean and
    variance) or, with ``num_classes``, class logits (:class:`ClassifierHead`).
    """
    if head not in HEADS:
        raise StgeoError(f"Unknown head {head!r}. {did_you_mean(head, HEADS)}")
    if num_classes is not None and head != "point":
        raise StgeoError(f"A classification model takes no {head!r} head; remove 'head' from its config.")
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
    outputs = horizon * (num_classes or 1) * (2 if head == "gaussian" else 1)
    try:
        base = cls(
            num_nodes=num_nodes,
            history=history,
            horizon=outputs,
            steps_per_day=steps_per_day,
            adjacency=adjacency,
            **params,
        )
    except (TypeError, ValueError) as exc:
        raise StgeoError(f"Model {name!r}: bad parameters {params}: {exc}") from None
    if num_classes is not None:
        return ClassifierHead(base, horizon, num_classes)
    if head == "gaussian":
        return GaussianHead(base, horizon)
    return base


__all__ = [
    "MODELS",
    "ClassifierHead",
    "GNNStudent",
    "GaussianHead",
    "GraphWaveNet",
    "MLPStudent",
    "RNNForecaster",
    "build_model",
    "model_outputs",
]
