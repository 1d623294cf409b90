"""Output heads that turn any forecasting model into a probabilistic or a classifying one.

Every registered model maps (B, T, N, 4) to (B, K, N) with K the ``horizon`` it was built for.
Building it with ``K = 2 * H`` (Gaussian) or ``K = H * C`` (classes) and reshaping gives a
mean-and-variance head or class logits for every lead step, for teachers and students alike.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("point", "gaussian")


class GaussianHead(nn.Module):
    """Mean and variance per step and node: the wrapped model emits 2H channels, the first H
    are the mean and ``softplus`` of the other H (plus ``min_var``) the variance.

    ``forward`` returns the mean only, so evaluation, maps and ONNX export see a point
    forecast; :meth:`distribution` returns ``(mean, var)`` for Gaussian losses.

    Shapes:
        x: (B, T, N, 4) -> mean (B, H, N); distribution -> two (B, H, N) tensors.
    """

    def __init__(self, base: nn.Module, horizon: int, min_var: float = 1e-4):
        super().__init__()
        self.base = base
        self.horizon = int(horizon)
        self.min_var = float(min_var)

    def distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.base(x)
        mean, raw = out[:, : self.horizon], out[:, self.horizon :]
        return mean, nn.functional.softplus(raw) + self.min_var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.distribution(x)[0]


class ClassifierHead(nn.Module):
    """Class logits per lead step and node: the wrapped model emits H*C channels.

    Shapes:
        x: (B, T, N, 4) -> logits (B, H, N, C).
    """

    def __init__(self, base: nn.Module, horizon: int, num_classes: int):
        super().__init__()
        self.base = base
        self.horizon = int(horizon)
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)  # (B, H*C, N)
        b, _, n = out.shape
        return out.reshape(b, self.horizon, self.num_classes, n).permute(0, 1, 3, 2)


def model_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a model says about a batch: ``pred`` (and ``var``) for regression, ``logits`` for
    classification, whatever its head."""
    if isinstance(model, GaussianHead):
        mean, var = model.distribution(x)
        return {"pred": mean, "var": var}
    if isinstance(model, ClassifierHead):
        return {"logits": model(x)}
    return {"pred": model(x)}
