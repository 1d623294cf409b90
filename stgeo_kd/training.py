"""Training loop (Lightning) for teachers, distilled students and scratch students."""

from __future__ import annotations

import copy
import logging
import os
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from stgeo_kd.config import TrainConfig
from stgeo_kd.data.windows import ForecastData
from stgeo_kd.distill.hooks import FeatureTap
from stgeo_kd.distill.losses import cross_entropy, masked_loss
from stgeo_kd.distill.objective import Objective, labels_only
from stgeo_kd.distill.schedules import LRSchedule, lr_scheduler
from stgeo_kd.distill.terms import ErrorWeighted, GaussianKL, Hint
from stgeo_kd.errors import StgeoError
from stgeo_kd.models.heads import GaussianHead, model_outputs


def _lightning():
    # quiet Lightning's banner lines ("GPU available: False ...") that say nothing to users
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    import lightning.pytorch as pl

    return pl


pl = _lightning()


@dataclass
class Teaching:
    """What a student learns from, besides its labels.

    Attributes:
        teachers: trained teacher models (frozen unless ``online``).
        online: the teachers keep training on their own labels while the student learns from
            their current outputs (``online_lr``: their learning rate, default ``train.lr``).
        peer: a second student for deep mutual learning; both learn from each other's
            detached outputs through the ``peer`` term.
    """

    teachers: list[torch.nn.Module] = field(default_factory=list)
    online: bool = False
    online_lr: float | None = None
    peer: torch.nn.Module | None = None


class TrainModule(pl.LightningModule):
    """One model (and its optional teachers / peer) with its objective, optimiser and
    validation metric: masked MAE for forecasts (``val_mae``), cross-entropy for classes
    (``val_ce``), both on the student's outputs."""

    def __init__(
        self,
        model: torch.nn.Module,
        train: TrainConfig,
        lr: float,
        epochs: int,
        objective: Objective,
        kind: str = "forecast",
        teaching: Teaching | None = None,
        teacher_cache: list[dict[str, torch.Tensor]] | None = None,
        student_tap: FeatureTap | None = None,
        teacher_taps: list[FeatureTap] | None = None,
        monitor: str = "val_mae",
    ):
        super().__init__()
        self.model = model
        self.cfg = train
        self.lr = lr
        self.max_epochs_planned = epochs
        self.objective = objective
        self.kind = kind
        self.monitor = monitor
        teaching = teaching or Teaching()
        self.online = teaching.online
        self.online_lr = teaching.online_lr
        if self.online:
            self.teachers = torch.nn.ModuleList(teaching.teachers)  # trained: registered, in the optimiser
        else:
            # frozen teachers stay out of the module tree, so Lightning neither trains them nor
            # switches them to train mode (dropout) at each epoch
            self._frozen = list(teaching.teachers)
        self.peer = teaching.peer
        self.teacher_cache = teacher_cache
        self.student_tap = student_tap
        self.teacher_taps = teacher_taps or []
        self.teacher_objective = labels_only(kind, train.loss) if self.online else None

    @property
    def teacher_models(self) -> list[torch.nn.Module]:
        return list(self.teachers) if self.online else self._frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _teacher_outputs(self, x, i):
        outs, feats = [], []
        for k, teacher in enumerate(self.teacher_models):
            if self.teacher_cache is not None:
                cached = {key: v[i] for key, v in self.teacher_cache[k].items()}
                out = {key: v for key, v in cached.items() if not key.startswith("feat:")}
                outs.append(out)
                feats.append({key[5:]: v for key, v in cached.items() if key.startswith("feat:")})
                continue
            elif self.online:
                out = model_outputs(teacher, x)
            else:
                with torch.no_grad():
                    out = model_outputs(teacher, x)
            outs.append(out)
            tap = self.teacher_taps[k] if self.teacher_taps else None
            feats.append({name: tap[name] for name in self.objective.teacher_layers()} if tap else {})
        return outs, feats

    def training_step(self, batch, batch_idx):
        x, y, m, i = batch
        epoch, epochs = self.current_epoch, self.max_epochs_planned
        out = model_outputs(self.model, x)
        s_feats = {name: self.student_tap[name] for name in self.objective.student_layers()} if self.student_tap else {}
        t_outs, t_feats = self._teacher_outputs(x, i)
        extra = torch.zeros((), device=x.device)
        if self.online:
            for t_out in t_outs:
                t_loss, _ = self.teacher_objective(t_out, y, m, epoch, epochs)
                extra = extra + t_loss
            self.log("teacher_loss", extra, on_step=False, on_epoch=True, batch_size=len(x))
        detached = [{k: v.detach() for k, v in o.items()} for o in t_outs]
        t_feats = [{k: v.detach() for k, v in f.items()} for f in t_feats]
        peer_out = None
        if self.peer is not None:
            peer_out = model_outputs(self.peer, x)
            p_loss, _ = self.objective(peer_out, y, m, epoch, epochs, teachers=detached or None,
                                       peer={k: v.detach() for k, v in out.items()})
            extra = extra + p_loss
        loss, parts = self.objective(
            out, y, m, epoch, epochs, teachers=detached or None, student_features=s_feats, teacher_features=t_feats,
            peer=None if peer_out is None else {k: v.detach() for k, v in peer_out.items()},
        )
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x))
        if len(parts) > 1:
            for name, value in parts.items():
                self.log(f"term_{name}", value, on_step=False, on_epoch=True, batch_size=len(x))
        return loss + extra

    def validation_step(self, batch, batch_idx):
        x, y, m, _ = batch
        out = model_outputs(self.model, x)
        if "logits" in out:
            self.log("val_ce", cross_entropy(out["logits"], y, m), on_step=False, on_epoch=True, prog_bar=True,
                     batch_size=max(int(m.sum()), 1))
        else:
            self.log("val_mae", masked_loss(out["pred"], y, m, "mae"), on_step=False, on_epoch=True, prog_bar=True,
                     batch_size=max(int(m.sum()), 1))

    def configure_optimizers(self):
        wd = self.cfg.weight_decay
        groups = [{"params": list(self.model.parameters()) + list(self.objective.parameters()), "lr": self.lr}]
        if self.peer is not None:
            groups.append({"params": list(self.peer.parameters()), "lr": self.lr})
        if self.online:
            groups.append({"params": list(self.teachers.parameters()), "lr": self.online_lr or self.cfg.lr})
        opt = torch.optim.Adam(groups, lr=self.lr, weight_decay=wd)
        sched = lr_scheduler(opt, LRSchedule.parse(self.cfg.lr_schedule), self.max_epochs_planned, self.cfg.patience, self.monitor)
        return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}


class KeepBest(pl.Callback):
    """Remember the weights of the epoch with the best monitored value, in memory."""

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.best = float("inf")
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None
        self.teacher_states: list[dict[str, torch.Tensor]] = []

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "state": self.state, "teacher_states": self.teacher_states}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.state, self.teacher_states = state["state"], state["teacher_states"]

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
            if getattr(module, "online", False):
                self.teacher_states = [copy.deepcopy(t.state_dict()) for t in module.teachers]


class EpochHistory(pl.Callback):
    """Record train loss, validation MAE (scaled units) and wall time per epoch."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []
        self._t0 = time.perf_counter()

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])
        # wall time goes on from the last recorded epoch
        self._t0 = time.perf_counter() - (self.rows[-1]["seconds"] if self.rows else 0.0)

    def on_train_epoch_end(self, trainer, module):
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1, "seconds": round(time.perf_counter() - self._t0, 2)}
        for key in sorted(m):
            if key in ("train_loss", "val_mae", "val_ce", "teacher_loss") or key.startswith("term_"):
                row[key] = round(float(m[key]), 5)
        self.rows.append(row)


def seed_everything(seed: int) -> None:
    pl.seed_everything(seed, workers=True, verbose=False)


class EpochShuffle(torch.utils.data.Sampler):
    """Shuffle each epoch with a generator seeded by ``(seed, epoch)``, so the order of epoch k
    is the same whether or not the run was interrupted and resumed before it (Lightning calls
    :meth:`set_epoch` at every epoch start)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class CrashSafety(pl.Callback):
    """Save a resumable checkpoint at the end of every epoch, atomically (temporary file +
    rename), with the random number generators' states, so a run killed at any moment
    resumes from the last finished epoch and continues exactly as if never interrupted."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._rng: dict | None = None

    def on_train_epoch_end(self, trainer, module):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state: optimiser, schedulers, callbacks
        os.replace(tmp, self.path)

    def state_dict(self) -> dict:
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self._rng = state

    def on_train_epoch_start(self, trainer, module):
        # restore the generators at the start of the first resumed epoch, where an
        # uninterrupted run stands with the same states
        if self._rng is not None:
            torch.set_rng_state(self._rng["torch"])
            kind, keys, *rest = self._rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
            py = self._rng["python"]
            random.setstate((py[0], tuple(py[1]), py[2]))
            self._rng = None


def _loader(data, split: str, batch_size: int | None = None):
    # a private generator: iterating must not draw from the global RNG (resumed runs restore it);
    # data with large samples (raster tiles) sets a smaller evaluation batch
    batch_size = batch_size or getattr(data, "eval_batch_size", 256)
    return DataLoader(data.dataset(split), batch_size=batch_size, shuffle=False, generator=torch.Generator())


#: feature caches larger than this are not kept; the teacher then runs on every batch instead
FEATURE_CACHE_BYTES = 2 * 1024**3


@torch.no_grad()
def _teacher_pass(teacher: torch.nn.Module, data, kind: str, tap: FeatureTap | None = None,
                  layers: list[str] = ()) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A frozen teacher's outputs on every training window (in dataset order) and its training
    error per node: mean absolute error (scaled) or cross-entropy, over observed labels. With a
    ``tap``, the named layers' (B, N, D) features are kept too, under ``feat:<layer>``."""
    was = teacher.training
    teacher.eval()
    outs: dict[str, list] = {}
    err_sum, count = 0.0, 0.0
    for x, y, m, _ in _loader(data, "train"):
        o = model_outputs(teacher, x)
        if tap is not None:
            o = o | {f"feat:{name}": tap[name] for name in layers}
        for k, v in o.items():
            outs.setdefault(k, []).append(v)
        if "logits" in o:
            safe = torch.where(m, y, torch.zeros_like(y)).long()
            e = -torch.log_softmax(o["logits"], -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        else:
            e = (o["pred"] - torch.where(m, y, o["pred"])).abs()
        e = torch.where(m, e, torch.zeros_like(e))
        err_sum = err_sum + e.sum(dim=(0, 1))
        count = count + m.sum(dim=(0, 1))
    teacher.train(was)
    error = err_sum / torch.as_tensor(count).clamp_min(1.0)
    return {k: torch.cat(v) for k, v in outs.items()}, error


def _prepare(model, data, objective: Objective, teaching: Teaching, kind: str):
    """Taps, hint projections, teacher caches and training errors for a distilled student."""
    n = getattr(data, "node_shape", data.num_nodes)  # (rows, cols) for raster patches
    example = data.dataset("train")[0][0].unsqueeze(0)
    s_layers, t_layers = objective.student_layers(), objective.teacher_layers()
    student_tap = teacher_taps = None
    if s_layers:
        student_tap = FeatureTap(model, s_layers, n)
        student_tap.probe(example)
    # with merged targets, feature terms read the first teacher only
    used = range(len(teaching.teachers)) if objective.combine_on == "losses" else [0]
    if t_layers:
        teacher_taps = [FeatureTap(t, t_layers, n) if k in used else None for k, t in enumerate(teaching.teachers)]
        for tap in teacher_taps:
            if tap is not None:
                tap.probe(example)
    for term in objective.terms:
        if isinstance(term, Hint):
            for k in used:
                term.build(k, student_tap.width(term.s_layer), teacher_taps[k].width(term.t_layer))
        if isinstance(term, GaussianKL) and not all(isinstance(t, GaussianHead) for t in teaching.teachers):
            raise StgeoError("The gaussian_kl term needs every teacher to have a Gaussian head: set head: gaussian under teacher.")
    # frozen teachers: their outputs (and tapped features, when they fit in memory) are
    # computed once for every training window instead of at every batch of every epoch
    n_windows = len(data.splits["train"].starts)
    feature_bytes = sum(4 * n_windows * data.num_nodes * tap.width(name) for tap in (teacher_taps or []) if tap is not None
                        for name in t_layers)
    cache_features = not teaching.online and bool(t_layers) and feature_bytes <= FEATURE_CACHE_BYTES
    use_cache = not teaching.online and (not t_layers or cache_features)
    # the teachers' training errors weigh uncertainty-combined teachers and set error_weighted's tau
    need_errors = objective.combine == "uncertainty" or any(isinstance(t, ErrorWeighted) for t in objective.terms)
    if not (use_cache or need_errors):
        return student_tap, teacher_taps, None
    cache, errors = [], []
    for k, teacher in enumerate(teaching.teachers):
        tap = teacher_taps[k] if (cache_features and teacher_taps) else None
        outs, err = _teacher_pass(teacher, data, kind, tap, t_layers)
        cache.append(outs)
        errors.append(err)
    objective.teacher_error = torch.stack(errors)
    for term in objective.terms:
        if isinstance(term, ErrorWeighted):
            term.auto_tau = [max(float(e.mean()), 1e-3) for e in errors]
    return student_tap, teacher_taps, (cache if use_cache else None)


def fit(
    model: torch.nn.Module,
    data: ForecastData,
    train: TrainConfig,
    *,
    epochs: int,
    lr: float,
    objective: Objective | None = None,
    teaching: Teaching | None = None,
    kind: str = "forecast",
    role: str = "model",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[pl.Callback] = (),
) -> dict[str, Any]:
    """Train ``model`` on the train windows, early-stopping on the validation split.

    Without ``objective`` the model trains on its labels alone (its natural loss). With
    ``teaching`` it also learns from teachers (and/or a mutual-learning peer) through the
    objective's terms. The best epoch's weights are loaded back into ``model`` (and into
    online teachers). Returns ``train_seconds``, ``epochs`` (run), ``best_epoch``,
    ``best_val`` (scaled MAE or cross-entropy) and the per-epoch ``history``.

    With ``checkpoint`` (a file path), a resumable checkpoint is written there at the end of
    every epoch; with ``resume`` and that file present, training continues from it (the same
    seed then gives the same result as an uninterrupted run).

    ``callbacks``: extra Lightning callbacks for this model's trainer (progress reports; an
    exception raised in one stops training and propagates, e.g. to cancel a run).
    """
    seed_everything(train.seed)
    objective = objective or labels_only(kind, train.loss)
    teaching = teaching or Teaching()
    if objective.uses_teacher and not teaching.teachers:
        raise StgeoError("The distillation terms need a teacher, but none was given.")
    if objective.uses_peer and teaching.peer is None:
        raise StgeoError("The 'peer' term needs distill.mutual: true (two students that learn from each other).")
    has_val = len(data.splits["val"].starts) > 0
    val_key = "val_ce" if kind == "classify" else "val_mae"
    monitor = val_key if has_val else "train_loss"
    student_tap, teacher_taps, cache = (None, None, None)
    if teaching.teachers:
        student_tap, teacher_taps, cache = _prepare(model, data, objective, teaching, kind)
    module = TrainModule(model, train, lr, epochs, objective, kind, teaching, cache, student_tap, teacher_taps, monitor)
    train_set = data.dataset("train")
    train_loader = DataLoader(train_set, batch_size=train.batch_size, sampler=EpochShuffle(len(train_set), train.seed),
                              generator=torch.Generator())
    val_loader = _loader(data, "val") if has_val else None
    keep = KeepBest(monitor)
    history = EpochHistory()
    extra_callbacks = list(callbacks)
    callbacks = [keep, history, pl.callbacks.EarlyStopping(monitor=monitor, patience=train.patience, mode="min")]
    if train.progress:
        callbacks.append(pl.callbacks.TQDMProgressBar(leave=False))
    ckpt_path = None
    if checkpoint is not None:
        callbacks.append(CrashSafety(Path(checkpoint)))
        if resume and Path(checkpoint).is_file():
            ckpt_path = str(checkpoint)
    callbacks.extend(extra_callbacks)
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
    try:
        with warnings.catch_warnings():
            # Lightning trips a torch pytree deprecation on every fit; it says nothing to users
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    finally:
        for tap in [student_tap, *(teacher_taps or [])]:
            if tap is not None:
                tap.remove()
    seconds = time.perf_counter() - t0
    if keep.state is not None:
        model.load_state_dict(keep.state)
        for t, state in zip(teaching.teachers if teaching.online else [], keep.teacher_states):
            t.load_state_dict(state)
    model.eval()
    for t in teaching.teachers:
        t.eval()
    return {
        "train_seconds": seconds,
        "epochs": int(trainer.current_epoch),
        "best_epoch": int(keep.best_epoch) + 1,
        "best_val": keep.best if np.isfinite(keep.best) else None,
        "monitor": monitor,
        "history": history.rows,
    }


@torch.inference_mode()
def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Model outputs for input windows (W, T, N, 4): (W, H, N) scaled forecasts (the mean of a
    Gaussian head), or (W, H, N, C) class logits."""
    model.eval()
    outs = [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0)
