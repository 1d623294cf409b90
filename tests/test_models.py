"""Tests for the model registry (shapes, build_model errors) and the cost measurements."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.cost import count_macs, latency_ms, parameter_count, size_bytes
from stgeo_kd.models import MODELS, build_model

N, HORIZON, SPD = 5, 3, 288


def ring_adjacency(n: int = N) -> np.ndarray:
    a = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        a[i, (i + 1) % n] = 1.0
    return a


def example(batch: int, history: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, history, N, 4)
    x[..., 0] = torch.randn(batch, history, N, generator=g)
    x[..., 1] = 1.0
    x[..., 2] = torch.rand(batch, history, N, generator=g) * 0.999
    x[..., 3] = torch.randint(0, 7, (batch, history, N), generator=g).float()
    return x


def build(name: str, history: int, **params) -> nn.Module:
    torch.manual_seed(0)
    return build_model(
        name, params, num_nodes=N, history=history, horizon=HORIZON, steps_per_day=SPD, adjacency=ring_adjacency()
    )


def test_registry_names():
    assert set(MODELS) == {"graph_wavenet", "mlp", "gnn", "lstm", "gru"}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("history", [4, 14])  # 4 < Graph WaveNet's default receptive field of 13 < 14
def test_forward_shape(name, history):
    model = build(name, history).eval()
    with torch.no_grad():
        out = model(example(2, history))
        out_other = model(example(2, history, seed=1))
    assert tuple(out.shape) == (2, HORIZON, N)
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, out_other)  # the output depends on the input


def test_graph_wavenet_receptive_field_and_short_history():
    model = build("graph_wavenet", 2, dilations=[1, 2], channels=8, skip_channels=8, end_channels=8)
    assert model.receptive_field == 4
    with torch.no_grad():
        assert tuple(model.eval()(example(1, 2)).shape) == (1, HORIZON, N)


def test_build_model_unknown_name_lists_valid_names():
    with pytest.raises(StgeoError) as info:
        build("mpl", 4)
    msg = str(info.value)
    assert "'mpl'" in msg
    assert "Valid names: gnn, graph_wavenet, gru, lstm, mlp." in msg
    assert "Did you mean 'mlp'?" in msg


def test_build_model_unknown_parameter_lists_valid_parameters():
    with pytest.raises(StgeoError) as info:
        build("mlp", 4, hiden=8)
    msg = str(info.value)
    assert "no parameter 'hiden'" in msg
    assert "Did you mean 'hidden'?" in msg
    for p in ("dropout", "layers", "node_dim", "time_dim"):
        assert p in msg
    assert "num_nodes" not in msg  # fixed by the data, not a user parameter


def test_build_model_bad_parameter_value():
    with pytest.raises(StgeoError, match="graph_wavenet"):
        build("graph_wavenet", 4, dilations=[])


def test_build_model_passes_parameters():
    model = build("mlp", 6, hidden=7, layers=1, node_dim=3, time_dim=2)
    assert model.encoder.encode.in_features == 12 and model.encoder.encode.out_features == 7
    assert len(model.body.blocks) == 1
    assert tuple(model.encoder.node_embedding.shape) == (N, 3)


def test_parameter_count_and_size_bytes():
    lin = nn.Linear(3, 2)
    assert parameter_count(lin) == 3 * 2 + 2
    assert size_bytes(lin) == 8 * 4  # float32
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert parameter_count(mlp) == (12 + 4) + (8 + 2)
    # the GNN student keeps two (N, N) float32 transition matrices as buffers
    gnn = build("gnn", 4)
    assert size_bytes(gnn) == 4 * parameter_count(gnn) + 2 * N * N * 4


def test_count_macs_linear_only():
    assert count_macs(nn.Linear(3, 2), torch.zeros(7, 3)) == 7 * 3 * 2
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert count_macs(mlp, torch.zeros(5, 3)) == 5 * (3 * 4 + 4 * 2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cost_of_every_model(name):
    model = build(name, 4)
    x = example(1, 4)
    macs1 = count_macs(model, x)
    assert macs1 > 0
    # linear in the batch size, except Graph WaveNet's adaptive adjacency E1 @ E2 (N x 10 x N),
    # which is computed once per forward pass whatever the batch
    fixed = N * 10 * N if name == "graph_wavenet" else 0
    assert count_macs(model, example(2, 4)) == 2 * macs1 - fixed
    assert parameter_count(model) > 0
    assert latency_ms(model, x, repeats=2, warmup=1) > 0


def test_mlp_macs_by_hand():
    # encode (2T -> hidden) + per block 2 x (width x width) + head (width -> horizon), per node
    model = build("mlp", 4, hidden=8, layers=1, node_dim=2, time_dim=3)
    width = 8 + 2 + 2 * 3
    per_node = 2 * 4 * 8 + 2 * width * width + width * HORIZON
    assert count_macs(model, example(1, 4)) == N * per_node
