"""The named loss terms a distillation objective is made of (the ``distill.terms`` registry).

Each term is a small module called with a :class:`StepInputs` and returning a scalar. Its
``uses`` says what it learns from, which decides how ``alpha`` weighs it:

- ``label`` terms are multiplied by ``1 - alpha``;
- ``teacher`` terms (and ``peer``, the other student in mutual learning) by ``alpha``;
- ``mixed`` terms blend teacher and labels themselves and are not scaled.

Regression tensors are (B, H, N) in scaled units with a (B, H, N) bool mask of observed labels;
classification logits are (B, H, N, C) with integer labels (B, H, N).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import nn

from stgeo_kd.distill import losses as L
from stgeo_kd.errors import StgeoError, did_you_mean


@dataclass
class StepInputs:
    """What every term sees for one batch."""

    student: dict[str, torch.Tensor]  # pred (+ var) or logits
    label: torch.Tensor
    mask: torch.Tensor
    teacher: dict[str, torch.Tensor] | None = None  # one teacher's (or the combined) outputs
    teacher_index: int = 0
    alpha: float = 0.5
    temperature: float = 1.0
    student_features: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, N, D)
    teacher_features: dict[str, torch.Tensor] = field(default_factory=dict)
    peer: dict[str, torch.Tensor] | None = None


def _check_loss(term: str, loss: str) -> None:
    if loss not in L.LOSSES:
        raise StgeoError(f"{term}: unknown loss {loss!r}. {did_you_mean(loss, L.LOSSES)}")


def _check_flag(term: str, param: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise StgeoError(f"{term}: {param} must be true or false, got {value!r}.")
    return value


class Term(nn.Module):
    uses = "teacher"
    tasks: tuple[str, ...] = ("forecast", "classify")
    needs_teacher_var = False

    def student_layers(self) -> list[str]:
        return []

    def teacher_layers(self) -> list[str]:
        return []

    def _teacher(self, s: StepInputs) -> dict[str, torch.Tensor]:
        if s.teacher is None:
            raise StgeoError(f"Distillation term {self.name!r} needs a teacher.")
        return s.teacher


class Labels(Term):
    """Supervised loss on the observed labels: the model's natural one by default (masked
    ``train.loss`` for a point forecast, Gaussian NLL for a mean-and-variance head,
    cross-entropy for classes), or ``loss: mae | mse | huber`` for a regression student."""

    uses = "label"

    def __init__(self, loss: str | None = None, default_loss: str = "mae"):
        super().__init__()
        if loss is not None:
            _check_loss("labels", loss)
        self.loss = loss
        self.default_loss = default_loss

    def forward(self, s: StepInputs) -> torch.Tensor:
        if "logits" in s.student:
            return L.cross_entropy(s.student["logits"], s.label, s.mask)
        if "var" in s.student and self.loss is None:
            return L.gaussian_nll(s.student["pred"], s.student["var"], s.label, s.mask)
        return L.masked_loss(s.student["pred"], s.label, s.mask, self.loss or self.default_loss)


class BlendedTargets(Term):
    """Regress on ``alpha * teacher + (1 - alpha) * label`` (the teacher alone where the label
    is missing, or nothing there with ``teacher_fills_missing: false``)."""

    uses = "mixed"
    tasks = ("forecast",)

    def __init__(self, loss: str = "mae", teacher_fills_missing: bool = True):
        super().__init__()
        _check_loss("blended_targets", loss)
        self.loss, self.fills = loss, teacher_fills_missing

    def forward(self, s: StepInputs) -> torch.Tensor:
        t = self._teacher(s)["pred"]
        return L.distill_objective(s.student["pred"], t, s.label, s.mask, s.alpha, self.loss, self.fills)


class SoftTargets(Term):
    """Point distillation: ``loss(student, teacher)`` over every entry, labelled or not."""

    tasks = ("forecast",)

    def __init__(self, loss: str = "mae"):
        super().__init__()
        _check_loss("soft_targets", loss)
        self.loss = loss

    def forward(self, s: StepInputs) -> torch.Tensor:
        t = self._teacher(s)["pred"].detach()
        return L.masked_loss(s.student["pred"], t, torch.ones_like(t), self.loss)


class ErrorWeighted(Term):
    """Point distillation weighted by trust in the teacher, ``exp(-|teacher - label| / tau)``
    (1 where the label is missing). ``tau`` (scaled units) defaults to the teacher's mean
    absolute error on the training labels, measured before the student trains."""

    tasks = ("forecast",)

    def __init__(self, loss: str = "mae", tau: float | None = None):
        super().__init__()
        _check_loss("error_weighted", loss)
        if tau is not None and tau <= 0:
            raise StgeoError(f"error_weighted: tau must be positive, got {tau}.")
        self.loss, self.tau = loss, tau
        self.auto_tau: list[float] = []  # one per teacher, set by the distiller

    def forward(self, s: StepInputs) -> torch.Tensor:
        t = self._teacher(s)["pred"].detach()
        tau = self.tau or (self.auto_tau[s.teacher_index] if self.auto_tau else 1.0)
        w = L.error_weights(t, s.label, s.mask, tau)
        return L.masked_loss(s.student["pred"], t, w, self.loss)


class GaussianKL(Term):
    """Distributional soft targets: ``KL(N(mu_t, var_t) || N(mu_s, var_s))`` from a teacher with
    a Gaussian head. A point student uses ``var_s = var_t`` (a teacher-variance-weighted MSE)."""

    tasks = ("forecast",)
    needs_teacher_var = True

    def forward(self, s: StepInputs) -> torch.Tensor:
        t = self._teacher(s)
        if "var" not in t:
            raise StgeoError("gaussian_kl needs a teacher with a Gaussian head: set teacher.head: gaussian.")
        var_s = s.student.get("var", t["var"].detach())
        return L.gaussian_kl(t["pred"], t["var"], s.student["pred"], var_s)


def _position_weights(s: StepInputs, class_weighted: bool) -> torch.Tensor | None:
    """The ``labels`` term's per-position weights for a class-weighted soft-target term: the
    mask as given (float class weights of the true labels where the caller passes them, a bool
    mask of labelled positions otherwise), so positions without a label drop out; None (every
    position, equally) when not class-weighted."""
    return s.mask if class_weighted else None


class Hinton(Term):
    """Hinton soft targets: ``T^2 * KL(softmax(t/T) || softmax(s/T))``, with ``T`` from
    ``distill.temperature`` (or this term's own ``temperature``). Averaged over every position
    by default; ``class_weighted: true`` weighs each position's KL like the ``labels`` term
    weighs its cross-entropy (the class weight of its true label; unlabelled positions drop
    out), so soft targets dominated by a majority class do not drown the rare ones."""

    tasks = ("classify",)

    def __init__(self, temperature: float | None = None, class_weighted: bool = False):
        super().__init__()
        self.temperature = temperature
        self.class_weighted = _check_flag("hinton", "class_weighted", class_weighted)

    def forward(self, s: StepInputs) -> torch.Tensor:
        t = self.temperature or s.temperature
        return L.hinton_kd(s.student["logits"], self._teacher(s)["logits"], t,
                           _position_weights(s, self.class_weighted))


class ProbabilityMSE(Term):
    """Squared error between student and teacher class probabilities (at temperature T);
    ``class_weighted: true`` weighs the positions as for ``hinton``."""

    tasks = ("classify",)

    def __init__(self, temperature: float | None = None, class_weighted: bool = False):
        super().__init__()
        self.temperature = temperature
        self.class_weighted = _check_flag("probability_mse", "class_weighted", class_weighted)

    def forward(self, s: StepInputs) -> torch.Tensor:
        t = self.temperature or 1.0
        return L.probability_mse(s.student["logits"], self._teacher(s)["logits"], t,
                                 _position_weights(s, self.class_weighted))


class Hint(Term):
    """FitNets hint on intermediate features picked by layer name; a learned linear projection
    maps the student's width to the teacher's when they differ (trained with the student,
    not part of the exported model)."""

    def __init__(self, student_layer: str, teacher_layer: str, normalize: bool = True):
        super().__init__()
        self.s_layer, self.t_layer, self.normalize = student_layer, teacher_layer, normalize
        self.projections = nn.ModuleDict()

    def student_layers(self) -> list[str]:
        return [self.s_layer]

    def teacher_layers(self) -> list[str]:
        return [self.t_layer]

    def build(self, teacher_index: int, student_width: int, teacher_width: int) -> None:
        key = str(teacher_index)
        if key not in self.projections:
            self.projections[key] = nn.Identity() if student_width == teacher_width else nn.Linear(student_width, teacher_width)

    def forward(self, s: StepInputs) -> torch.Tensor:
        fs = self.projections[str(s.teacher_index)](s.student_features[self.s_layer])
        return L.hint_loss(fs, s.teacher_features[self.t_layer], self.normalize)


class Relation(Term):
    """Relation distillation: match node-to-node cosine similarities of hidden features."""

    def __init__(self, student_layer: str, teacher_layer: str):
        super().__init__()
        self.s_layer, self.t_layer = student_layer, teacher_layer

    def student_layers(self) -> list[str]:
        return [self.s_layer]

    def teacher_layers(self) -> list[str]:
        return [self.t_layer]

    def forward(self, s: StepInputs) -> torch.Tensor:
        return L.relation_loss(s.student_features[self.s_layer], s.teacher_features[self.t_layer])


class Peer(Term):
    """Deep mutual learning (Zhang et al., CVPR 2018): match the other student's detached
    outputs (``loss`` for regression, temperature KL for classes). Needs ``distill.mutual``."""

    uses = "peer"

    def __init__(self, loss: str = "mae"):
        super().__init__()
        _check_loss("peer", loss)
        self.loss = loss

    def forward(self, s: StepInputs) -> torch.Tensor:
        if s.peer is None:
            raise StgeoError("The 'peer' term needs distill.mutual: true (two students that learn from each other).")
        if "logits" in s.student:
            return L.hinton_kd(s.student["logits"], s.peer["logits"], s.temperature)
        p = s.peer["pred"].detach()
        return L.masked_loss(s.student["pred"], p, torch.ones_like(p), self.loss)


TERMS: dict[str, type[Term]] = {
    "labels": Labels,
    "blended_targets": BlendedTargets,
    "soft_targets": SoftTargets,
    "error_weighted": ErrorWeighted,
    "gaussian_kl": GaussianKL,
    "hinton": Hinton,
    "probability_mse": ProbabilityMSE,
    "hint": Hint,
    "relation": Relation,
    "peer": Peer,
}
for _name, _cls in TERMS.items():
    _cls.name = _name


def make_term(name: str, params: dict, task: str, where: str, default_loss: str = "mae") -> Term:
    """Build a registered term; a wrong name, parameter or task gets a message with the valid ones."""
    if name not in TERMS:
        raise StgeoError(f"{where}: unknown distillation term {name!r}. {did_you_mean(name, list(TERMS))} "
                         f"Valid terms: {', '.join(TERMS)}.")
    cls = TERMS[name]
    if task not in cls.tasks:
        valid = [n for n, c in TERMS.items() if task in c.tasks]
        raise StgeoError(f"{where}: term {name!r} is for {' / '.join(cls.tasks)} tasks, not {task}. Terms for {task}: {', '.join(valid)}.")
    sig = inspect.signature(cls.__init__)
    named = {n: p for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    allowed = [p for p in named if p not in ("self", "default_loss")]
    for key in params:
        if key not in allowed:
            listing = ", ".join(allowed) if allowed else "none"
            raise StgeoError(f"{where}: term {name!r} has no parameter {key!r}. {did_you_mean(str(key), allowed)} Its parameters: {listing}.")
    required = [p.name for p in named.values() if p.default is inspect.Parameter.empty and p.name != "self"]
    missing = [p for p in required if p not in params]
    if missing:
        raise StgeoError(f"{where}: term {name!r} needs {', '.join(missing)} (layer names from the model; see docs/distillation.md).")
    kwargs = dict(params)
    if "default_loss" in named:
        kwargs["default_loss"] = default_loss
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise StgeoError(f"{where}: term {name!r}: {exc}") from None
