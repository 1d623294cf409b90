"""Small building blocks shared by the forecasting models."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def input_channels(x: torch.Tensor) -> torch.Tensor:
    """Turn the raw window features into model channels.

    Shapes:
        x: (B, T, N, 4) -> (B, T, N, 5): value, observed, sin/cos of time of day, weekend flag.
    """
    tod = x[..., 2] * (2 * math.pi)
    weekend = (x[..., 3] >= 5).to(x.dtype)
    return torch.stack([x[..., 0], x[..., 1], torch.sin(tod), torch.cos(tod), weekend], dim=-1)


def transition_matrices(adjacency: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward random-walk transition matrices of a weighted directed graph.

    ``P_f = D_out^-1 A`` and ``P_b = D_in^-1 A^T`` (DCRNN's diffusion supports), with self-loops
    added so that isolated nodes keep their own signal. Both are returned transposed for the
    ``(.., N, C)`` layout: ``h_new = P @ h`` aggregates over a node's out-neighbours.
    """
    a = np.asarray(adjacency, dtype=np.float64) + np.eye(adjacency.shape[0])
    fwd = a / a.sum(1, keepdims=True)
    bwd = a.T / a.T.sum(1, keepdims=True)
    return torch.tensor(fwd, dtype=torch.float32), torch.tensor(bwd, dtype=torch.float32)


class TimeEmbedding(nn.Module):
    """Learned embeddings of the time of day (``steps_per_day`` slots) and the day of week.

    Shapes:
        x: (B, T, N, 4) -> (B, N, 2 * dim) embeddings at the last input step.
    """

    def __init__(self, steps_per_day: int, dim: int):
        super().__init__()
        self.steps_per_day = steps_per_day
        self.tod = nn.Embedding(steps_per_day, dim)
        self.dow = nn.Embedding(7, dim)
        nn.init.xavier_uniform_(self.tod.weight)
        nn.init.xavier_uniform_(self.dow.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1]
        slot = torch.clamp((last[..., 2] * self.steps_per_day + 1e-3).floor().long(), 0, self.steps_per_day - 1)
        day = torch.clamp(last[..., 3].long(), 0, 6)
        return torch.cat([self.tod(slot), self.dow(day)], dim=-1)
