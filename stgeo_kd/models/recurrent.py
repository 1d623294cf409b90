"""Recurrent forecasters for station-style series: an LSTM teacher and a GRU student.

Each node's history is read by the same recurrent network (nodes folded into the batch), its
last hidden state is joined with a learned node embedding and time-of-day / day-of-week
embeddings, and a linear head emits every lead step. No graph is used: this is the classic
per-station model, and the LSTM -> GRU pair is the usual teacher/student pairing for series.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stgeo_kd.models.layers import TimeEmbedding, input_channels


class RNNForecaster(nn.Module):
    """Shared LSTM or GRU over every node's own history.

    Args:
        cell: ``lstm`` or ``gru``. hidden: recurrent width. layers: stacked recurrent layers.
        node_dim / time_dim: embedding widths (0 turns an embedding off). dropout: between
        recurrent layers and before the head.

    Shapes:
        x: (B, T, N, 4) -> (B, horizon, N); the ``readout`` layer holds (B, N, D) features.
    """

    def __init__(
        self,
        num_nodes: int,
        history: int,
        horizon: int,
        steps_per_day: int,
        adjacency: np.ndarray,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 2,
        node_dim: int = 8,
        time_dim: int = 8,
        dropout: float = 0.1,
    ):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be lstm or gru, got {cell!r}")
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(5, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.node_dim = node_dim
        if node_dim:
            self.node_embedding = nn.Parameter(torch.empty(num_nodes, node_dim))
            nn.init.xavier_uniform_(self.node_embedding)
        self.time_embedding = TimeEmbedding(steps_per_day, time_dim) if time_dim else None
        width = hidden + node_dim + 2 * time_dim
        self.readout = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, n, _ = x.shape
        seq = input_channels(x).permute(0, 2, 1, 3).reshape(b * n, t, 5)
        out, _ = self.rnn(seq)
        parts = [out[:, -1].reshape(b, n, -1)]
        if self.node_dim:
            parts.append(self.node_embedding.unsqueeze(0).expand(b, -1, -1))
        if self.time_embedding is not None:
            parts.append(self.time_embedding(x))
        h = self.readout(torch.cat(parts, dim=-1))
        return self.head(self.dropout(h)).transpose(1, 2)


class lstm(RNNForecaster):
    """LSTM teacher (Hochreiter & Schmidhuber 1997): :class:`RNNForecaster` with ``cell='lstm'``."""

    def __init__(self, num_nodes, history, horizon, steps_per_day, adjacency, hidden: int = 64, layers: int = 2,
                 node_dim: int = 8, time_dim: int = 8, dropout: float = 0.1):
        super().__init__(num_nodes, history, horizon, steps_per_day, adjacency, "lstm", hidden, layers, node_dim, time_dim, dropout)


class gru(RNNForecaster):
    """GRU student (Cho et al. 2014): :class:`RNNForecaster` with ``cell='gru'`` (3 gates
    instead of 4, so 3/4 of an LSTM's recurrent weights at the same width)."""

    def __init__(self, num_nodes, history, horizon, steps_per_day, adjacency, hidden: int = 32, layers: int = 1,
                 node_dim: int = 8, time_dim: int = 8, dropout: float = 0.1):
        super().__init__(num_nodes, history, horizon, steps_per_day, adjacency, "gru", hidden, layers, node_dim, time_dim, dropout)
