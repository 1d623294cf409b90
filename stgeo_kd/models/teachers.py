"""Teacher models: graph spatio-temporal networks that see every sensor's neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from stgeo_kd.models.layers import TimeEmbedding, input_channels, transition_matrices


class DiffusionConv(nn.Module):
    """Diffusion graph convolution: ``sum_s sum_k P_s^k H W_sk`` (Li et al., ICLR 2018).

    Works in a node-first layout so every hop is one plain matrix product ``P @ H`` with H
    flattened to (N, B*T*C), and sums per-hop projections instead of concatenating hops
    (same result as one linear layer over the concatenation, without the copy).

    Shapes:
        h: (N, B, T, C_in); supports: list of (N, N) -> (N, B, T, C_out)
    """

    def __init__(self, c_in: int, c_out: int, n_supports: int, order: int, dropout: float):
        super().__init__()
        self.order = order
        self.hops = nn.ModuleList(nn.Linear(c_in, c_out, bias=(j == 0)) for j in range(1 + n_supports * order))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, supports: Sequence[torch.Tensor]) -> torch.Tensor:
        shape = h.shape
        flat = h.reshape(shape[0], -1)
        out = self.hops[0](h)
        j = 1
        for p in supports:
            z = flat
            for _ in range(self.order):
                z = p @ z
                out = out + self.hops[j](z.view(shape))
                j += 1
        return self.dropout(out)


class GraphWaveNet(nn.Module):
    """Graph WaveNet-style teacher (Wu et al., IJCAI 2019, "Graph WaveNet for Deep Spatial-Temporal
    Graph Modeling"): stacked gated dilated temporal convolutions, each followed by a diffusion
    graph convolution over the road graph's forward/backward transition matrices and a learned
    adaptive adjacency ``softmax(relu(E1 E2^T))``, with skip connections into an MLP head that
    emits all horizons at once.

    Args:
        num_nodes, history, horizon, steps_per_day: fixed by the data.
        adjacency: (N, N) weighted adjacency, row = source.
        channels: residual width C. skip_channels / end_channels: head widths.
        dilations: one gated temporal convolution (kernel 2) per entry; the receptive field is
            ``1 + sum(dilations)`` steps (shorter histories are zero-padded on the left).
        diffusion_steps: K hops per support. adaptive: learn an extra adjacency.
        adaptive_dim: width of the node embeddings E1, E2. dropout: after each graph conv.
        graph_layers: indices of the temporal layers followed by a graph convolution (default:
            all but the last, as in Graph WaveNet). Later layers see fewer time steps, so graph
            convolutions there are cheaper.
        output_graph_layers: extra diffusion convolutions on the per-node summary (the skip
            sum, one time step), before the head: cheap spatial mixing.
        embedding_dim: if > 0, learned sensor, time-of-day and day-of-week embeddings (as in
            STID) are added to the skip sum, so the teacher also knows who and when it is.

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
        channels: int = 32,
        skip_channels: int = 64,
        end_channels: int = 128,
        dilations: Sequence[int] = (1, 2, 1, 2, 1, 2, 1, 2),
        diffusion_steps: int = 2,
        adaptive: bool = True,
        adaptive_dim: int = 10,
        dropout: float = 0.3,
        graph_layers: Sequence[int] | None = None,
        output_graph_layers: int = 0,
        embedding_dim: int = 0,
    ):
        super().__init__()
        self.horizon = horizon
        self.dilations = [int(d) for d in dilations]
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError("dilations must be a non-empty list of positive integers")
        self.receptive_field = 1 + sum(self.dilations)
        n_layers = len(self.dilations)
        # the last temporal layer feeds only the skip path, so by default it has no graph conv
        chosen = range(n_layers - 1) if graph_layers is None else [int(i) for i in graph_layers]
        if any(i < 0 or i >= n_layers - 1 for i in chosen):
            raise ValueError(f"graph_layers must be indices in 0..{n_layers - 2}")
        self.graph_layers = sorted(set(chosen))
        fwd, bwd = transition_matrices(adjacency)
        self.register_buffer("p_fwd", fwd)
        self.register_buffer("p_bwd", bwd)
        self.adaptive = adaptive
        n_supports = 2 + int(adaptive)
        if adaptive:
            self.node_src = nn.Parameter(torch.randn(num_nodes, adaptive_dim))
            self.node_dst = nn.Parameter(torch.randn(adaptive_dim, num_nodes))
        self.start = nn.Linear(5, channels)
        self.temporal = nn.ModuleList(nn.Linear(2 * channels, 2 * channels) for _ in self.dilations)
        self.skip = nn.ModuleList(nn.Linear(channels, skip_channels) for _ in self.dilations)
        self.graph = nn.ModuleDict(
            {str(i): DiffusionConv(channels, channels, n_supports, diffusion_steps, dropout) for i in self.graph_layers}
        )
        self.norm = nn.ModuleList(nn.LayerNorm(channels) for _ in self.dilations[:-1])
        self.embedding_dim = embedding_dim
        if embedding_dim:
            self.node_embedding = nn.Parameter(torch.empty(num_nodes, embedding_dim))
            nn.init.xavier_uniform_(self.node_embedding)
            self.time_embedding = TimeEmbedding(steps_per_day, embedding_dim)
            self.embed = nn.Linear(3 * embedding_dim, skip_channels)
        self.output_graph = nn.ModuleList(
            DiffusionConv(skip_channels, skip_channels, n_supports, diffusion_steps, dropout)
            for _ in range(output_graph_layers)
        )
        self.end1 = nn.Linear(skip_channels, end_channels)
        self.end2 = nn.Linear(end_channels, horizon)

    def supports(self) -> list[torch.Tensor]:
        s = [self.p_fwd, self.p_bwd]
        if self.adaptive:
            s.append(torch.softmax(torch.relu(self.node_src @ self.node_dst), dim=1))
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # node-first (N, B, T, C): graph hops become plain (N, N) @ (N, B*T*C) products
        h = self.start(input_channels(x)).permute(2, 0, 1, 3)
        if h.shape[2] < self.receptive_field:
            h = nn.functional.pad(h, (0, 0, self.receptive_field - h.shape[2], 0))
        supports = self.supports()
        skip = 0
        for i, d in enumerate(self.dilations):
            residual = h[:, :, d:]
            f, g = self.temporal[i](torch.cat([h[:, :, :-d], h[:, :, d:]], dim=-1)).chunk(2, dim=-1)
            h = torch.tanh(f) * torch.sigmoid(g)
            skip = skip + self.skip[i](h[:, :, -1])
            if i == len(self.dilations) - 1:
                break
            if str(i) in self.graph:
                h = self.graph[str(i)](h.contiguous(), supports)
            h = self.norm[i](h + residual)
        if self.embedding_dim:
            emb = torch.cat([self.node_embedding.unsqueeze(0).expand(x.shape[0], -1, -1), self.time_embedding(x)], dim=-1)
            skip = skip + self.embed(emb).transpose(0, 1)
        out = torch.relu(skip)  # (N, B, S)
        for conv in self.output_graph:
            out = out + torch.relu(conv(out, supports))
        out = self.end2(torch.relu(self.end1(out)))  # (N, B, H)
        return out.permute(1, 2, 0)
