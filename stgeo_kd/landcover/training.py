"""Training for patch models: a small loop that reuses the distillation toolbox's loss terms.

A step takes one training window of ``crop`` x ``crop`` pixels (with the footprint margin every
model needs around it), turned by a random flip / 90° rotation and, for the time series, random
temporal masking (a time step of a pixel set to the mean) and jitter (Gaussian noise) when
``augment`` is on. The loss covers the window's pixels in training blocks: the class-weighted
cross-entropy on the training labels (the toolbox's ``labels`` term with float weights) and,
for a distilled student, the teacher's soft targets (``hinton``) on every training-block pixel,
labelled or not (the frozen teacher sees the same augmented window). Validation and test
pixels are never in a loss. After every epoch the model classifies the whole scene and stops
early on the validation macro-F1, keeping its best epoch's weights.

Loss tensors follow the toolbox's layout: logits (1, 1, P, K), labels and weights (1, 1, P).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from stgeo_kd.distill.objective import Objective, labels_only
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.metrics import classification_scores
from stgeo_kd.landcover.models import TeacherEnsemble
from stgeo_kd.landcover.patches import PatchSet
from stgeo_kd.landcover.split import PixelSplit
from stgeo_kd.training import seed_everything

#: temporal augmentation: share of (pixel, time step) values masked, std of the jitter (standardised units)
TIME_MASK = 0.1
JITTER = 0.05


@dataclass
class PatchData:
    """Model-ready tensors of a PatchSet and its split.

    Attributes:
        x: (C, H, W) float32 inputs standardised per band with training-pixel statistics.
        padded: (C, H + 2R, W + 2R) ``x`` reflect-padded by ``radius`` (R, the largest footprint radius).
        y: (H, W) int64 class index (-1 unlabelled).
        weight: (H, W) float32 class weight at training pixels, 0 elsewhere.
        kd: (H, W) bool, pixels of training blocks with input, outside the buffer (where soft
            targets are taken).
        masks: split name -> (H, W) bool of its labelled pixels.
        mean, std: (bands,) the standardisation.
        bands: bands per time step.
    """

    x: torch.Tensor
    padded: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    kd: torch.Tensor
    masks: dict[str, torch.Tensor]
    mean: np.ndarray
    std: np.ndarray
    bands: int
    radius: int

    @classmethod
    def build(cls, patches: PatchSet, split: PixelSplit, weights: np.ndarray, radius: int) -> PatchData:
        b = len(patches.bands)
        train = split.mask("train")
        per_band = patches.x.reshape(-1, b, patches.height, patches.width)  # (T, b, H, W)
        sel = per_band[:, :, train]  # (T, b, n)
        mean = sel.mean(axis=(0, 2))
        std = sel.std(axis=(0, 2))
        std = np.where(std > 1e-12, std, 1.0)
        x = ((per_band - mean[None, :, None, None]) / std[None, :, None, None]).reshape(patches.x.shape)
        xt = torch.as_tensor(x, dtype=torch.float32)
        padded = pad_reflect(xt, radius)
        y = torch.as_tensor(patches.labels, dtype=torch.long)
        w = np.zeros(patches.labels.shape, dtype=np.float32)
        w[train] = weights[patches.labels[train]]
        masks = {name: torch.as_tensor(split.mask(name)) for name in ("train", "val", "test", "buffer")}
        kd = torch.as_tensor((split.region == "train") & ~split.near_held_out & patches.valid)
        return cls(x=xt, padded=padded, y=y, weight=torch.as_tensor(w), kd=kd, masks=masks, mean=mean, std=std,
                   bands=b, radius=radius)

    @property
    def height(self) -> int:
        return int(self.x.shape[1])

    @property
    def width(self) -> int:
        return int(self.x.shape[2])

    def window(self, top: int, left: int, size: int, radius: int) -> torch.Tensor:
        """Inputs (C, size + 2 radius, size + 2 radius) for the pixels of a window."""
        r0 = self.radius - radius
        return self.padded[:, top + r0 : top + r0 + size + 2 * radius, left + r0 : left + r0 + size + 2 * radius]

    def scene(self, radius: int) -> torch.Tensor:
        """The whole scene's inputs (1, C, H + 2 radius, W + 2 radius)."""
        d = self.radius - radius
        return self.padded[:, d : d + self.height + 2 * radius, d : d + self.width + 2 * radius].unsqueeze(0)

    def chips(self, rows: torch.Tensor, cols: torch.Tensor, radius: int) -> torch.Tensor:
        """Chips (N, C, 2 radius + 1, 2 radius + 1) centred on the pixels ``rows``, ``cols``."""
        k = 2 * radius + 1
        off = torch.arange(k)
        r = (rows[:, None] + self.radius - radius + off[None, :])  # (N, k)
        c = (cols[:, None] + self.radius - radius + off[None, :])
        return self.padded[:, r[:, :, None], c[:, None, :]].permute(1, 0, 2, 3)


def pad_reflect(x: torch.Tensor, radius: int) -> torch.Tensor:
    """(C, H, W) padded by ``radius`` on every side, mirrored (edge pixels see a mirrored
    neighbourhood; a radius larger than the grid repeats the mirroring)."""
    out = x
    while radius > 0:
        step = min(radius, out.shape[-1] - 1, out.shape[-2] - 1)
        out = torch.nn.functional.pad(out.unsqueeze(0), (step, step, step, step), mode="reflect").squeeze(0)
        radius -= step
    return out


@torch.no_grad()
def predict_scene(model: nn.Module, data: PatchData) -> torch.Tensor:
    """Class scores (K, H, W) of every pixel."""
    model.eval()
    return model(data.scene(model.radius))[0]


def _dihedral(t: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    t = torch.rot90(t, k, dims=(-2, -1))
    return torch.flip(t, dims=(-1,)) if flip else t


def train_patch_model(
    model: nn.Module,
    data: PatchData,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    patience: int = 15,
    steps_per_epoch: int | None = None,
    crop: int = 48,
    augment: bool = True,
    seed: int = 0,
    objective: Objective | None = None,
    teacher: nn.Module | None = None,
    max_minutes: float | None = None,
    role: str = "model",
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on the training pixels, stopping early on the validation macro-F1.

    Without ``objective`` the model learns its labels (class-weighted cross-entropy). With
    ``teacher`` (trained and frozen) and an objective, it also learns the teacher's class
    scores on the training-block pixels; a :class:`~stgeo_kd.landcover.models.TeacherEnsemble`
    hands every member's scores to the objective, which merges them (``distill.combine``). The best epoch's weights are loaded back into ``model``.

    Returns:
        ``train_seconds``, ``epochs`` (run), ``best_epoch``, ``best_val`` (validation macro-F1,
        or minus the training loss without validation pixels), ``monitor`` and the per-epoch
        ``history``.
    """
    seed_everything(seed)
    objective = objective or labels_only("classify", "mae")
    if objective.uses_teacher and teacher is None:
        raise StgeoError("The distillation terms need a teacher, but none was given.")
    if teacher is not None:
        teacher.eval()
    k = int(data.y.max()) + 1
    size = min(crop, data.height, data.width)
    steps = steps_per_epoch or max(1, math.ceil(2 * data.height * data.width / size**2))
    val_mask = data.masks["val"]
    has_val = bool(val_mask.any())
    train_rows, train_cols = torch.nonzero(data.masks["train"], as_tuple=True)
    gen = torch.Generator().manual_seed(seed * 100_003 + 7)
    params = list(model.parameters()) + list(objective.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    best, best_epoch, best_state, stale = -math.inf, -1, None, 0
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(epochs):
        model.train()
        total, parts_sum, n_steps = 0.0, {}, 0
        for _ in range(steps):
            # a window around a random training pixel, so every window holds labels
            j = int(torch.randint(len(train_rows), (1,), generator=gen))
            top = int(torch.clamp(train_rows[j] - torch.randint(size, (1,), generator=gen)[0], 0, data.height - size))
            left = int(torch.clamp(train_cols[j] - torch.randint(size, (1,), generator=gen)[0], 0, data.width - size))
            rot, flip = (int(torch.randint(4, (1,), generator=gen)), bool(torch.randint(2, (1,), generator=gen))) \
                if augment else (0, False)
            r_max = data.radius
            tile = data.window(top, left, size, r_max)
            if augment:
                tile = _dihedral(tile, rot, flip)
                keep = (torch.rand((tile.shape[0] // data.bands, 1, *tile.shape[1:]), generator=gen) >= TIME_MASK)
                noise = torch.randn(tile.shape, generator=gen) * JITTER
                tile = (tile.view(-1, data.bands, *tile.shape[1:]) * keep).view(tile.shape) + noise
            sl = (slice(top, top + size), slice(left, left + size))
            y = _dihedral(data.y[sl], rot, flip).reshape(-1)
            w = _dihedral(data.weight[sl], rot, flip).reshape(-1)
            pos = _dihedral(data.kd[sl], rot, flip).reshape(-1)
            if not pos.any():
                continue
            logits = model(_inner(tile, r_max, model.radius).unsqueeze(0))[0]  # (K, size, size)
            logits = logits.permute(1, 2, 0).reshape(-1, k)[pos]
            teachers = None
            if teacher is not None:
                with torch.no_grad():
                    t_in = _inner(tile, r_max, teacher.radius).unsqueeze(0)
                    # an ensemble hands each member's scores to the objective (distill.combine merges them)
                    outs = teacher.member_logits(t_in) if isinstance(teacher, TeacherEnsemble) else [teacher(t_in)]
                teachers = [{"logits": t[0].permute(1, 2, 0).reshape(-1, k)[pos].view(1, 1, -1, k)} for t in outs]
            value, parts = objective({"logits": logits.view(1, 1, -1, k)}, y[pos].view(1, 1, -1),
                                     w[pos].view(1, 1, -1), epoch, epochs, teachers=teachers)
            opt.zero_grad()
            value.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            total += float(value.detach())
            n_steps += 1
            for name, v in parts.items():
                parts_sum[name] = parts_sum.get(name, 0.0) + float(v)
        train_loss = total / max(n_steps, 1)
        row = {"epoch": epoch + 1, "train_loss": round(train_loss, 5)}
        if len(parts_sum) > 1:
            row |= {f"term_{name}": round(v / max(n_steps, 1), 5) for name, v in parts_sum.items()}
        if has_val:
            pred = predict_scene(model, data).argmax(0)
            val = classification_scores(pred[val_mask].numpy(), data.y[val_mask].numpy(),
                                        np.ones(int(val_mask.sum()), dtype=bool), k)["macro_f1"]
            row["val_macro_f1"] = round(val, 5)
        else:
            val = -train_loss
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        if val > best:
            best, best_epoch, stale = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if stale >= patience:
            break
        if max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes:
            break
    seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if progress:
        print(f"  {role}: {epoch + 1} epochs in {seconds:.1f} s, best epoch {best_epoch + 1} "
              f"({'val macro-F1' if has_val else 'train loss'} {abs(best):.4f})", flush=True)
    return {
        "train_seconds": seconds,
        "epochs": epoch + 1,
        "best_epoch": best_epoch + 1,
        "best_val": best if has_val else -best,
        "monitor": "val_macro_f1" if has_val else "train_loss",
        "steps_per_epoch": steps,
        "history": history,
    }


def _inner(tile: torch.Tensor, r_max: int, radius: int) -> torch.Tensor:
    d = r_max - radius
    return tile[:, d : tile.shape[1] - d, d : tile.shape[2] - d] if d else tile
