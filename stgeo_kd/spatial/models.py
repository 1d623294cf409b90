"""Models for values at points: GNN teachers over the kNN graph, and an MLP student that sees
only the point's own attributes (and coordinates), so it needs no neighbours at inference.

Every model ends in a layer named ``embedding`` (the last hidden features, one vector per
point) and a linear ``head``; the ``hint`` and ``relation`` distillation terms name it.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from stgeo_kd.errors import StgeoError, did_you_mean


class PointMLP(nn.Module):
    """Multi-layer perceptron on one point's features.

    Args:
        in_features: F, the number of input features.
        hidden: width of the hidden layers.
        layers: number of hidden layers (at least 1).
        dropout: dropout after each hidden layer while training.

    Shapes:
        x: (B, F) standardised features -> (B,) standardised prediction.
    """

    uses_graph = False

    def __init__(self, in_features: int, hidden: int = 32, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise StgeoError(f"mlp: hidden and layers must be at least 1, got hidden={hidden}, layers={layers}.")
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.embedding = nn.Identity()
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(self.body(x))).squeeze(-1)


class _GraphTeacher(nn.Module):
    """Encoder -> ``layers`` graph convolutions with residual connections -> head."""

    uses_graph = True

    def __init__(self, in_features: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise StgeoError(f"{self.name}: hidden and layers must be at least 1, got hidden={hidden}, layers={layers}.")
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.convs = nn.ModuleList(self._conv(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Identity()
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def _conv(self, hidden: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        own = self.encoder(x)
        h = own
        for conv in self.convs:
            h = h + self.dropout(torch.relu(conv(h, edge_index)))
        # the point's own encoding next to its neighbourhood summary
        return self.head(self.embedding(torch.cat([own, h], dim=-1))).squeeze(-1)


class GraphSAGETeacher(_GraphTeacher):
    """GraphSAGE (Hamilton et al., NeurIPS 2017) with mean aggregation over the kNN graph.

    Args:
        in_features: F; hidden: width; layers: graph convolutions (hops); dropout.

    Shapes:
        x: (N, F) standardised features of every point; edge_index: (2, E) -> (N,) predictions.
    """

    name = "graphsage"

    def __init__(self, in_features: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__(in_features, hidden, layers, dropout)

    def _conv(self, hidden: int) -> nn.Module:
        from torch_geometric.nn import SAGEConv

        return SAGEConv(hidden, hidden, aggr="mean")


class GCNTeacher(_GraphTeacher):
    """Graph convolutional network (Kipf & Welling, ICLR 2017) over the kNN graph (with
    self-loops and symmetric normalisation).

    Shapes:
        x: (N, F); edge_index: (2, E) -> (N,).
    """

    name = "gcn"

    def __init__(self, in_features: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__(in_features, hidden, layers, dropout)

    def _conv(self, hidden: int) -> nn.Module:
        from torch_geometric.nn import GCNConv

        return GCNConv(hidden, hidden)


TEACHERS: dict[str, type[nn.Module]] = {"graphsage": GraphSAGETeacher, "gcn": GCNTeacher, "mlp": PointMLP}
STUDENTS: dict[str, type[nn.Module]] = {"mlp": PointMLP}


def build_point_model(name: str, params: dict, in_features: int, where: str = "model") -> nn.Module:
    """A registered point model; a wrong name or parameter gets a message with the valid ones."""
    registry = TEACHERS if where.startswith("teacher") else STUDENTS
    if name not in registry:
        raise StgeoError(f"{where}.name {name!r} is not a model for points. {did_you_mean(name, list(registry))}")
    cls = registry[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "in_features")]
    for key in params:
        if key not in allowed:
            raise StgeoError(f"{where}.params: {name} has no parameter {key!r}. {did_you_mean(str(key), allowed)}")
    try:
        return cls(in_features, **params)
    except TypeError as exc:
        raise StgeoError(f"{where}.params for {name}: {exc}") from None


class BoundGraph(nn.Module):
    """A graph teacher with its graph fixed, so it is called like any model: ``model(x)``.

    Used to measure cost (parameters, MACs, latency) the same way for every model.

    Shapes:
        x: (N, F) -> (N,), for the N points of ``edge_index``.
    """

    def __init__(self, model: nn.Module, edge_index: torch.Tensor):
        super().__init__()
        self.model = model
        self.edge_index = edge_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.edge_index)
