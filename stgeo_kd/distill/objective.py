"""A distillation objective: weighted, scheduled loss terms over one or several teachers.

    loss(epoch) = sum_label   w_i s_i(epoch) (1 - alpha(epoch)) L_i
                + sum_teacher w_j s_j(epoch) alpha(epoch)       L_j
                + sum_mixed   w_k s_k(epoch)                    L_k

with ``s`` a term's own schedule (1 when it has none). Several teachers are merged either into
one set of targets (``combine_on: targets``) or by averaging each teacher-term's loss over the
teachers (``combine_on: losses``), with weights that are equal (``mean``), given per teacher
(``weighted``) or set by uncertainty (``uncertainty``: inverse predicted variance for Gaussian
teachers, else inverse training error per node; inverse entropy per position for classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from stgeo_kd.distill.schedules import Schedule
from stgeo_kd.distill.terms import TERMS, StepInputs, Term, make_term
from stgeo_kd.errors import StgeoError, did_you_mean

COMBINE = ("mean", "weighted", "uncertainty")
COMBINE_ON = ("targets", "losses")


@dataclass
class TermSpec:
    term: Term
    weight: float
    schedule: Schedule | None


def parse_terms(raw: list[Any] | None, task: str, default_loss: str = "mae", teacher_fills_missing: bool = True,
                where: str = "distill.terms") -> list[TermSpec]:
    """Read ``distill.terms``: a list of names or mappings ``{name, weight, schedule, params}``.

    With no list, forecasting uses ``blended_targets`` (the label/teacher blend) and
    classification ``labels`` + ``hinton``.
    """
    if raw is None:
        if task == "classify":
            raw = ["labels", "hinton"]
        else:
            raw = [{"name": "blended_targets", "params": {"loss": default_loss, "teacher_fills_missing": teacher_fills_missing}}]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise StgeoError(f"{where} must be a non-empty list of terms, e.g. [labels, {{name: soft_targets, weight: 1.0}}].")
    specs = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise StgeoError(f"{here} must be a term name or a mapping with 'name' (one of {', '.join(TERMS)}), got {item!r}.")
        allowed = ("name", "weight", "schedule", "params")
        for key in item:
            if key not in allowed:
                raise StgeoError(f"Unknown key '{here}.{key}'. {did_you_mean(str(key), allowed)}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise StgeoError(f"{here}.weight must be a non-negative number, got {weight!r}.")
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise StgeoError(f"{here}.params must be a mapping, got {params!r}.")
        schedule = item.get("schedule")
        specs.append(TermSpec(
            term=make_term(str(item["name"]), params, task, here, default_loss),
            weight=float(weight),
            schedule=None if schedule is None else Schedule.parse(schedule, f"{here}.schedule"),
        ))
    return specs


class Objective(nn.Module):
    """Weighted, scheduled sum of distillation terms (see the module docstring).

    Args:
        specs: the terms (from :func:`parse_terms`).
        alpha, temperature: schedules over epochs.
        combine, combine_on: how several teachers are merged.
        teacher_weights: one weight per teacher for ``combine: weighted``.
    """

    def __init__(self, specs: list[TermSpec], alpha: Schedule | None = None, temperature: Schedule | None = None,
                 combine: str = "mean", combine_on: str = "targets", teacher_weights: list[float] | None = None):
        super().__init__()
        if combine not in COMBINE:
            raise StgeoError(f"distill.combine {combine!r} is unknown. {did_you_mean(combine, COMBINE)}")
        if combine_on not in COMBINE_ON:
            raise StgeoError(f"distill.combine_on {combine_on!r} is unknown. {did_you_mean(combine_on, COMBINE_ON)}")
        self.terms = nn.ModuleList(s.term for s in specs)
        self.weights = [s.weight for s in specs]
        self.schedules = [s.schedule for s in specs]
        self.alpha = alpha or Schedule("constant", 0.5)
        self.temperature = temperature or Schedule("constant", 1.0)
        self.combine, self.combine_on = combine, combine_on
        self.teacher_weights = teacher_weights
        # set by the distiller once teachers are trained: (K, N) training error per teacher
        self.teacher_error: torch.Tensor | None = None

    @property
    def uses_teacher(self) -> bool:
        return any(t.uses in ("teacher", "mixed") for t in self.terms)

    @property
    def uses_peer(self) -> bool:
        return any(t.uses == "peer" for t in self.terms)

    def student_layers(self) -> list[str]:
        return sorted({name for t in self.terms for name in t.student_layers()})

    def teacher_layers(self) -> list[str]:
        return sorted({name for t in self.terms for name in t.teacher_layers()})

    # -- several teachers -------------------------------------------------------------------

    def summary(self) -> dict:
        """The terms (name, what they use, weight, schedule), alpha and temperature, for reports."""
        return {
            "terms": [
                {"name": t.name, "uses": t.uses, "weight": w, "schedule": None if sch is None else sch.__dict__}
                for t, w, sch in zip(self.terms, self.weights, self.schedules)
            ],
            "alpha": self.alpha.__dict__,
            "temperature": self.temperature.__dict__,
        }

    def _fixed_weights(self, k: int, device) -> torch.Tensor:
        if self.combine == "weighted" and self.teacher_weights:
            w = torch.tensor(self.teacher_weights[:k], dtype=torch.float32, device=device)
        elif self.combine == "uncertainty" and self.teacher_error is not None:
            w = 1.0 / self.teacher_error.to(device).mean(dim=1).clamp_min(1e-6)
        else:
            w = torch.ones(k, device=device)
        return w / w.sum().clamp_min(1e-12)

    def combined(self, outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Merge several teachers' outputs into one set of targets."""
        if len(outs) == 1:
            return outs[0]
        k = len(outs)
        ref = next(iter(outs[0].values()))
        if "logits" in outs[0]:
            probs = torch.stack([torch.softmax(o["logits"], -1) for o in outs])  # (K, B, H, N, C)
            if self.combine == "uncertainty":
                entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1, keepdim=True)
                w = 1.0 / (entropy + 0.05)
                w = w / w.sum(0, keepdim=True)
            else:
                w = self._fixed_weights(k, ref.device).view(k, *[1] * (probs.dim() - 1))
            return {"logits": torch.log((w * probs).sum(0).clamp_min(1e-12))}
        preds = torch.stack([o["pred"] for o in outs])  # (K, B, H, N)
        have_var = all("var" in o for o in outs)
        if self.combine == "uncertainty" and have_var:
            w = 1.0 / torch.stack([o["var"] for o in outs])
            w = w / w.sum(0, keepdim=True)
        elif self.combine == "uncertainty" and self.teacher_error is not None:
            w = 1.0 / self.teacher_error.to(ref.device).clamp_min(1e-6)  # (K, N)
            w = (w / w.sum(0, keepdim=True)).view(k, *[1] * (preds.dim() - 2), -1)  # per node (last axis)
        else:
            w = self._fixed_weights(k, ref.device).view(k, *[1] * (preds.dim() - 1))
        mean = (w * preds).sum(0)
        out = {"pred": mean}
        if have_var:
            var = torch.stack([o["var"] for o in outs])
            out["var"] = ((w * (var + preds**2)).sum(0) - mean**2).clamp_min(1e-6)  # mixture moments
        return out

    # -- the loss ---------------------------------------------------------------------------

    def forward(
        self,
        student: dict[str, torch.Tensor],
        label: torch.Tensor,
        mask: torch.Tensor,
        epoch: int,
        epochs: int,
        teachers: list[dict[str, torch.Tensor]] | None = None,
        student_features: dict[str, torch.Tensor] | None = None,
        teacher_features: list[dict[str, torch.Tensor]] | None = None,
        peer: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and each term's (unweighted) value, for one batch."""
        teachers = teachers or []
        teacher_features = teacher_features or [{} for _ in teachers]
        alpha = self.alpha(epoch, epochs) if (teachers or peer is not None) else 0.0
        temperature = self.temperature(epoch, epochs)
        base = StepInputs(student=student, label=label, mask=mask, alpha=alpha, temperature=temperature,
                          student_features=student_features or {}, peer=peer)
        total = torch.zeros((), device=label.device)
        parts: dict[str, torch.Tensor] = {}
        merged = self.combined(teachers) if teachers and self.combine_on == "targets" else None
        fixed = self._fixed_weights(len(teachers), label.device) if teachers else None
        for i, term in enumerate(self.terms):
            w = self.weights[i] * (self.schedules[i](epoch, epochs) if self.schedules[i] else 1.0)
            if term.uses == "label":
                scale = 1.0 - alpha if (teachers or peer is not None) else 1.0
            elif term.uses == "mixed":
                scale = 1.0
            else:
                scale = alpha
            if term.uses in ("teacher", "mixed"):
                if not teachers:
                    raise StgeoError(f"Distillation term {term.name!r} needs a teacher, but this model trains without one.")
                if merged is not None:
                    value = term(_with(base, merged, 0, teacher_features[0]))
                else:
                    value = sum(fixed[k] * term(_with(base, teachers[k], k, teacher_features[k])) for k in range(len(teachers)))
            else:
                value = term(base)
            parts[f"{term.name}_{i}" if sum(t.name == term.name for t in self.terms) > 1 else term.name] = value.detach()
            if w * scale != 0.0:
                total = total + (w * scale) * value
        return total, parts


def _with(base: StepInputs, teacher: dict, index: int, features: dict) -> StepInputs:
    return StepInputs(
        student=base.student, label=base.label, mask=base.mask, teacher=teacher, teacher_index=index,
        alpha=base.alpha, temperature=base.temperature, student_features=base.student_features,
        teacher_features=features, peer=base.peer,
    )


def labels_only(task: str, default_loss: str) -> Objective:
    """The objective of a model trained without a teacher: its natural label loss."""
    return Objective([TermSpec(make_term("labels", {}, task, "labels", default_loss), 1.0, None)], alpha=Schedule("constant", 0.0))


def objective_from_config(cfg) -> Objective:
    """The student's objective from a :class:`~stgeo_kd.config.RunConfig`'s ``distill`` section."""
    d = cfg.distill
    specs = parse_terms(d.terms, cfg.task.kind, d.loss, d.teacher_fills_missing)
    return Objective(
        specs,
        alpha=Schedule.parse(d.alpha, "distill.alpha"),
        temperature=Schedule.parse(d.temperature, "distill.temperature"),
        combine=d.combine,
        combine_on=d.combine_on,
        teacher_weights=[m.weight for m in cfg.teachers],
    )
