"""Training loop (Lightning) for teachers, distilled students and scratch students."""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from stgeo_kd.config import TrainConfig
from stgeo_kd.data.windows import ForecastData
from stgeo_kd.distill.losses import distill_objective, masked_loss


def _lightning():
    # quiet Lightning's banner lines ("GPU available: False ...") that say nothing to users
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    import lightning.pytorch as pl

    return pl


pl = _lightning()


@dataclass
class Distillation:
    """What a student learns from: the teacher's (scaled) predictions for every training window."""

    teacher_predictions: torch.Tensor  # (W_train, H, N)
    alpha: float
    loss: str
    teacher_fills_missing: bool


class ForecastModule(pl.LightningModule):
    """Wraps a forecasting model with its loss, optimiser and validation metric (masked MAE)."""

    def __init__(
        self,
        model: torch.nn.Module,
        train: TrainConfig,
        lr: float,
        distillation: Distillation | None = None,
        monitor: str = "val_mae",
    ):
        super().__init__()
        self.model = model
        self.cfg = train
        self.lr = lr
        self.distillation = distillation
        self.monitor = monitor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y, m, i = batch
        pred = self.model(x)
        if self.distillation is None:
            loss = masked_loss(pred, y, m, self.cfg.loss)
        else:
            d = self.distillation
            t = d.teacher_predictions[i]
            loss = distill_objective(pred, t, y, m, d.alpha, d.loss, d.teacher_fills_missing)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y, m, _ = batch
        mae = masked_loss(self.model(x), y, m, "mae")
        self.log("val_mae", mae, on_step=False, on_epoch=True, prog_bar=True, batch_size=int(m.sum()))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=max(2, self.cfg.patience // 3))
        # strict=False: an epoch cut short (max_time) may end without the monitored metric
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": self.monitor, "strict": False}}


class KeepBest(pl.Callback):
    """Remember the weights of the epoch with the best monitored value, in memory."""

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.best = float("inf")
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer, module):
        self._check(trainer, module)

    def on_train_epoch_end(self, trainer, module):
        if self.monitor == "train_loss":
            self._check(trainer, module)

    def _check(self, trainer, module):
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        value = float(value)
        if value < self.best:
            self.best, self.best_epoch = value, trainer.current_epoch
            self.state = copy.deepcopy(module.model.state_dict())


class EpochHistory(pl.Callback):
    """Record train loss, validation MAE (scaled units) and wall time per epoch."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1, "seconds": round(time.perf_counter() - self._t0, 2)}
        for key in ("train_loss", "val_mae"):
            if key in m:
                row[key] = round(float(m[key]), 5)
        self.rows.append(row)


def seed_everything(seed: int) -> None:
    pl.seed_everything(seed, workers=True, verbose=False)


def fit(
    model: torch.nn.Module,
    data: ForecastData,
    train: TrainConfig,
    *,
    epochs: int,
    lr: float,
    distillation: Distillation | None = None,
    role: str = "model",
) -> dict[str, Any]:
    """Train ``model`` on the train windows, early-stopping on validation masked MAE.

    The best epoch's weights are loaded back into ``model``. Returns a summary dict with
    ``train_seconds``, ``epochs`` (run), ``best_epoch`` and ``best_val_mae`` (scaled units).
    """
    seed_everything(train.seed)
    has_val = len(data.splits["val"].starts) > 0
    monitor = "val_mae" if has_val else "train_loss"
    module = ForecastModule(model, train, lr, distillation, monitor)
    gen = torch.Generator().manual_seed(train.seed)
    train_loader = DataLoader(data.dataset("train"), batch_size=train.batch_size, shuffle=True, generator=gen)
    val_loader = DataLoader(data.dataset("val"), batch_size=256) if has_val else None
    keep = KeepBest(monitor)
    history = EpochHistory()
    callbacks: list[Any] = [keep, history, pl.callbacks.EarlyStopping(monitor=monitor, patience=train.patience, mode="min")]
    if train.progress:
        callbacks.append(pl.callbacks.TQDMProgressBar(leave=False))
    trainer = pl.Trainer(
        max_epochs=epochs,
        max_time={"minutes": train.max_minutes} if train.max_minutes else None,
        limit_train_batches=train.batches_per_epoch or 1.0,
        accelerator=train.device,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=train.progress,
        num_sanity_val_steps=0,
        gradient_clip_val=5.0,
        deterministic=False,  # CPU kernels used here are deterministic already; the strict mode is ~5x slower
        callbacks=callbacks,
    )
    if train.progress:
        print(f"training {role} ({sum(p.numel() for p in model.parameters()):,} parameters, up to {epochs} epochs)", flush=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # Lightning trips a torch pytree deprecation on every fit; it says nothing to users
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - t0
    if keep.state is not None:
        model.load_state_dict(keep.state)
    model.eval()
    return {
        "train_seconds": seconds,
        "epochs": int(trainer.current_epoch),
        "best_epoch": int(keep.best_epoch) + 1,
        "best_val_mae_scaled": keep.best if np.isfinite(keep.best) else None,
        "history": history.rows,
    }


@torch.inference_mode()
def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Model outputs (W, H, N) for input windows (W, T, N, 4), in scaled units."""
    model.eval()
    outs = [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0)
