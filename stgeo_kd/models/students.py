"""Compact student models: no neighbour lookups (MLP) or one cheap graph hop (GNN)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stgeo_kd.models.layers import TimeEmbedding, transition_matrices


class _ResidualMLP(nn.Module):
    def __init__(self, width: int, layers: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width))
            for _ in range(layers)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = h + block(h)
        return h


class NodeEncoder(nn.Module):
    """Per-sensor encoding shared by the students: a linear map of the sensor's own history
    (values and observed flags) concatenated with its learned embedding and time embeddings.

    Shapes:
        x: (B, T, N, 4) -> (B, N, hidden + node_dim + 2 * time_dim)
    """

    def __init__(self, num_nodes: int, history: int, steps_per_day: int, hidden: int, node_dim: int, time_dim: int,
                 relu: bool = False):
        super().__init__()
        self.encode = nn.Linear(2 * history, hidden)
        self.node_embedding = nn.Parameter(torch.empty(num_nodes, node_dim))
        nn.init.xavier_uniform_(self.node_embedding)
        self.time_embedding = TimeEmbedding(steps_per_day, time_dim)
        self.relu = relu
        self.width = hidden + node_dim + 2 * time_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hist = torch.cat([x[..., 0], x[..., 1]], dim=1).transpose(1, 2)  # (B, N, 2T)
        h = self.encode(hist)
        if self.relu:
            h = torch.relu(h)
        return torch.cat(
            [h, self.node_embedding.unsqueeze(0).expand(x.shape[0], -1, -1), self.time_embedding(x)], dim=-1
        )


class MLPStudent(nn.Module):
    """Graph-less MLP over each node's own history, with node and time embeddings.

    The STID idea (Shao et al., CIKM 2022, "Spatial-Temporal Identity"): a learned embedding per
    sensor plus time-of-day and day-of-week embeddings let a plain MLP tell sensors and times
    apart; trained from a graph teacher (GLNN, Zhang et al., ICLR 2022) it needs no neighbour
    lookups at inference, so cost grows linearly with the number of sensors.

    Args:
        hidden: width of the history encoding. layers: residual MLP blocks.
        node_dim / time_dim: embedding widths. dropout: inside the blocks.

    Shapes:
        x: (B, T, N, 4) -> (B, horizon, N)
    """

    def __init__(
        self,
        num_nodes: int,
        history: int,
        horizon: int,
        steps_per_day: int,
        adjacency: np.ndarray,
        hidden: int = 64,
        layers: int = 2,
        node_dim: int = 16,
        time_dim: int = 16,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.encoder = NodeEncoder(num_nodes, history, steps_per_day, hidden, node_dim, time_dim)
        width = self.encoder.width
        self.body = _ResidualMLP(width, layers, dropout)
        self.head = nn.Linear(width, horizon)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-node hidden features, (B, N, width): the layer that hints/relations read."""
        return self.body(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).transpose(1, 2)


class GNNStudent(nn.Module):
    """A small GNN student: the MLP student's encoding followed by one diffusion hop over the
    road graph (forward and backward transition matrices), then a linear head.

    Shapes:
        x: (B, T, N, 4) -> (B, horizon, N)
    """

    def __init__(
        self,
        num_nodes: int,
        history: int,
        horizon: int,
        steps_per_day: int,
        adjacency: np.ndarray,
        hidden: int = 32,
        node_dim: int = 8,
        time_dim: int = 8,
        dropout: float = 0.1,
    ):
        super().__init__()
        fwd, bwd = transition_matrices(adjacency)
        self.register_buffer("p_fwd", fwd)
        self.register_buffer("p_bwd", bwd)
        self.encoder = NodeEncoder(num_nodes, history, steps_per_day, hidden, node_dim, time_dim, relu=True)
        width = self.encoder.width
        self.mix = nn.Linear(3 * width, width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        g = torch.cat([h, self.p_fwd @ h, self.p_bwd @ h], dim=-1)
        h = h + self.dropout(torch.relu(self.mix(g)))
        return self.head(h).transpose(1, 2)
