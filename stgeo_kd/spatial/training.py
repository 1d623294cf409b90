"""Training for point models: a small loop that reuses the distillation toolbox's loss terms.

The sensor-graph loop (:func:`stgeo_kd.training.fit`) trains on time windows; a point graph is
one transductive sample instead. So here a graph teacher takes one full-graph step per epoch
(loss on the training points only; the other points lend their attributes, never their
values), and an MLP takes shuffled mini-batches of training points. Every model stops early
on the validation MAE and keeps its best epoch's weights.

Loss tensors follow the toolbox's (B, H, N) layout with B = H = 1 and N = the points of the
batch; features are (1, N, D).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from stgeo_kd.distill.losses import masked_loss
from stgeo_kd.distill.objective import Objective, labels_only
from stgeo_kd.distill.terms import ErrorWeighted, Hint
from stgeo_kd.errors import StgeoError, did_you_mean
from stgeo_kd.spatial.points import PointSet
from stgeo_kd.spatial.split import BlockSplit
from stgeo_kd.training import seed_everything


@dataclass
class Standardiser:
    """``(v - mean) / std`` per column, fitted on the training points only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardiser:
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        return cls(mean=mean, std=np.where(std > 1e-12, std, 1.0))  # constant columns stay 0

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


@dataclass
class PointData:
    """Model-ready tensors of a PointSet and its split.

    Attributes:
        x: (N, F) float32 standardised features; y: (N,) float32 standardised target.
        edge_index: (2, E) int64 kNN graph.
        idx: split name -> int64 indices of its points.
        features, target: the standardisers (fitted on the training points).
    """

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    idx: dict[str, torch.Tensor]
    features: Standardiser
    target: Standardiser

    @classmethod
    def build(cls, points: PointSet, split: BlockSplit, edge_index: np.ndarray) -> PointData:
        train = split.indices("train")
        fs = Standardiser.fit(points.features[train])
        ts = Standardiser.fit(points.target[train])
        idx = {name: torch.as_tensor(split.indices(name), dtype=torch.long) for name in ("train", "val", "test", "buffer")}
        return cls(
            x=torch.as_tensor(fs.transform(points.features), dtype=torch.float32),
            y=torch.as_tensor(ts.transform(points.target), dtype=torch.float32),
            edge_index=torch.as_tensor(edge_index, dtype=torch.long),
            idx=idx,
            features=fs,
            target=ts,
        )

    @property
    def num_points(self) -> int:
        return int(self.x.shape[0])


def run_model(model: nn.Module, data: PointData, x: torch.Tensor | None = None) -> torch.Tensor:
    """The model's (N,) standardised predictions for every point (graph models see the graph)."""
    x = data.x if x is None else x
    return model(x, data.edge_index) if getattr(model, "uses_graph", False) else model(x)


@torch.no_grad()
def predict_points(model: nn.Module, data: PointData) -> np.ndarray:
    """(N,) predictions in the target's units, for every point."""
    model.eval()
    return data.target.inverse(run_model(model, data).double().numpy())


class _Capture:
    """Forward hooks keeping the latest output of named layers, as (N, D) features."""

    def __init__(self, model: nn.Module, names: list[str], role: str):
        modules = dict(model.named_modules())
        valid = [n for n in modules if n]
        for name in names:
            if name not in modules or not name:
                raise StgeoError(f"distill.terms: the {role} has no layer {name!r}. {did_you_mean(name, valid)} "
                                 "Point models name their last hidden features 'embedding'.")
        self.out: dict[str, torch.Tensor] = {}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.out[name] = output.reshape(output.shape[0], -1)

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def train_point_model(
    model: nn.Module,
    data: PointData,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    patience: int = 20,
    batch_size: int = 32,
    seed: int = 0,
    loss: str = "mae",
    objective: Objective | None = None,
    teacher: nn.Module | None = None,
    max_minutes: float | None = None,
    role: str = "model",
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on the training points, stopping early on the validation MAE.

    Without ``objective`` the model learns its labels (``loss``). With ``teacher`` (trained and
    frozen) and an objective, it also learns from the teacher's predictions (and features, for
    ``hint`` / ``relation`` terms) on the training points. The best epoch's weights are loaded
    back into ``model``.

    Returns:
        ``train_seconds``, ``epochs`` (run), ``best_epoch``, ``best_val`` (standardised MAE, or
        training loss without validation points), ``monitor`` and the per-epoch ``history``.
    """
    seed_everything(seed)
    objective = objective or labels_only("forecast", loss)
    if objective.uses_teacher and teacher is None:
        raise StgeoError("The distillation terms need a teacher, but none was given.")
    train_idx, val_idx = data.idx["train"], data.idx["val"]
    has_val = len(val_idx) > 0

    s_layers, t_layers = objective.student_layers(), objective.teacher_layers()
    s_cap = _Capture(model, s_layers, "student") if s_layers else None
    t_pred = t_feats = None
    if teacher is not None:
        teacher.eval()
        t_cap = _Capture(teacher, t_layers, "teacher") if t_layers else None
        with torch.no_grad():
            t_pred = run_model(teacher, data)
        t_feats = {name: v.detach() for name, v in t_cap.out.items()} if t_cap else {}
        if t_cap:
            t_cap.remove()
        err = (t_pred[train_idx] - data.y[train_idx]).abs()
        objective.teacher_error = err.view(1, -1)
        for term in objective.terms:
            if isinstance(term, ErrorWeighted):
                term.auto_tau = [max(float(err.mean()), 1e-3)]
            if isinstance(term, Hint):
                with torch.no_grad():
                    run_model(model, data)
                term.build(0, s_cap.out[term.s_layer].shape[-1], t_feats[term.t_layer].shape[-1])

    params = list(model.parameters()) + list(objective.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    graph_step = getattr(model, "uses_graph", False)
    best, best_epoch, best_state, stale = float("inf"), -1, None, 0
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    epoch = 0
    try:
        for epoch in range(epochs):
            model.train()
            if graph_step:
                batches = [train_idx]
            else:
                g = torch.Generator().manual_seed(seed * 100_003 + epoch)
                order = train_idx[torch.randperm(len(train_idx), generator=g)]
                batches = list(torch.split(order, batch_size))
            total, parts_sum = 0.0, {}
            for b in batches:
                out = run_model(model, data) if graph_step else model(data.x[b])
                pred = out[b] if graph_step else out
                s_feats = {}
                if s_cap:
                    s_feats = {n: (v[b] if graph_step else v).unsqueeze(0) for n, v in s_cap.out.items()}
                teachers = [{"pred": t_pred[b].view(1, 1, -1)}] if t_pred is not None else None
                tf = [{n: v[b].unsqueeze(0) for n, v in t_feats.items()}] if t_pred is not None else None
                value, parts = objective(
                    {"pred": pred.view(1, 1, -1)}, data.y[b].view(1, 1, -1), torch.ones(1, 1, len(b), dtype=torch.bool),
                    epoch, epochs, teachers=teachers, student_features=s_feats, teacher_features=tf,
                )
                opt.zero_grad()
                value.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                total += float(value.detach()) * len(b)
                for k, v in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * len(b)
            train_loss = total / len(train_idx)
            row = {"epoch": epoch + 1, "train_loss": round(train_loss, 5)}
            if len(parts_sum) > 1:
                row |= {f"term_{k}": round(v / len(train_idx), 5) for k, v in parts_sum.items()}
            if has_val:
                model.eval()
                with torch.no_grad():
                    val = float(masked_loss(run_model(model, data)[val_idx], data.y[val_idx],
                                            torch.ones(len(val_idx), dtype=torch.bool), "mae"))
                row["val_mae"] = round(val, 5)
            else:
                val = train_loss
            row["seconds"] = round(time.perf_counter() - t0, 3)
            history.append(row)
            if val < best:
                best, best_epoch, stale = val, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            if stale >= patience:
                break
            if max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes:
                break
    finally:
        if s_cap:
            s_cap.remove()
    seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if progress:
        print(f"  {role}: {epoch + 1} epochs in {seconds:.1f} s, best epoch {best_epoch + 1} "
              f"({'val' if has_val else 'train'} MAE {best:.4f} standardised)", flush=True)
    return {
        "train_seconds": seconds,
        "epochs": epoch + 1,
        "best_epoch": best_epoch + 1,
        "best_val": best if np.isfinite(best) else None,
        "monitor": "val_mae" if has_val else "train_loss",
        "history": history,
    }
