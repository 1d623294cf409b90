"""Masked regression losses and the offline distillation objective for forecasting."""

from __future__ import annotations

import torch

from stgeo_kd.errors import StgeoError, did_you_mean

LOSSES = ("mae", "mse", "huber")


def masked_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "mae") -> torch.Tensor:
    """Mean of an elementwise loss over the entries where ``weight`` is true (or weighted by it).

    Args:
        pred, target: tensors of the same shape, e.g. (B, H, N) scaled forecasts.
        weight: bool or float tensor of that shape; 0/False entries (missing labels) count for
            nothing, and the mean divides by the total weight, not the number of entries.
        kind: ``mae`` (|e|), ``mse`` (e^2) or ``huber`` (smooth L1 with delta 1).

    Returns:
        A scalar tensor; 0 when no entry has weight.
    """
    w = weight.to(pred.dtype)
    # a NaN target under weight 0 must poison neither the sum nor the gradient (0 * NaN = NaN
    # in backward), so such targets are replaced before any arithmetic
    target = torch.where(w > 0, target, torch.zeros_like(target))
    err = pred - target
    if kind == "mae":
        e = err.abs()
    elif kind == "mse":
        e = err * err
    elif kind == "huber":
        e = torch.nn.functional.huber_loss(pred, target, reduction="none", delta=1.0)
    else:
        raise StgeoError(f"Unknown loss {kind!r}. {did_you_mean(kind, LOSSES)}")
    # zero the error first: a NaN target under weight 0 must not poison the sum
    e = torch.where(w > 0, e, torch.zeros_like(e))
    return (e * w).sum() / w.sum().clamp_min(1.0)


def distill_objective(
    student: torch.Tensor,
    teacher: torch.Tensor,
    label: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    kind: str = "mae",
    teacher_fills_missing: bool = True,
) -> torch.Tensor:
    """Offline distillation for forecasting: regress on a blend of teacher and label.

    ``target = alpha * teacher + (1 - alpha) * label`` where the label is observed; where it is
    missing the target is the teacher alone (``teacher_fills_missing``) or the entry is dropped.
    ``alpha = 0`` is plain supervised training, ``alpha = 1`` pure imitation of the teacher.

    Shapes:
        student, teacher, label: (B, H, N) scaled; mask: (B, H, N) bool (True = observed label).
    """
    teacher = teacher.detach()
    target = torch.where(mask, alpha * teacher + (1.0 - alpha) * label, teacher)
    weight = torch.ones_like(mask) if teacher_fills_missing else mask
    return masked_loss(student, target, weight, kind)


# ----------------------------------------------------------------------------------------------
# classification


def _as_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.ones(like.shape, dtype=torch.bool, device=like.device) if mask is None else mask.bool()


def _weights(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """A bool mask as it is, float weights as they are, None as all-true."""
    return _as_mask(mask, like) if mask is None or mask.dtype == torch.bool else mask


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` weighted by a bool mask or float weights; entries of weight 0 are
    zeroed first, so a NaN there poisons neither the sum nor the gradient. 0 when all weigh 0."""
    w = weight.to(values.dtype)
    values = torch.where(w > 0, values, torch.zeros_like(values))
    return (values * w).sum() / w.sum().clamp_min(1e-12)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hard-label cross-entropy ``-log softmax(z)[y]`` averaged over the observed positions.

    A float ``mask`` weighs the positions (e.g. class weights for imbalance, 0 = no label):
    the result is ``sum(w * nll) / sum(w)``, as ``torch.nn.functional.cross_entropy`` with
    ``weight=`` does.

    Shapes:
        logits: (..., C); labels: (...) integer classes (any value where ``mask`` is false or 0);
        mask: (...) bool, float weights, or None (all observed).
    """
    weight = _weights(mask, labels)
    observed = weight if weight.dtype == torch.bool else weight > 0
    safe = torch.where(observed, labels, torch.zeros_like(labels)).long()
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return _masked_mean(nll, weight)


def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hinton et al. (2015) soft-target loss: ``T^2 * KL(softmax(t/T) || softmax(s/T))``.

    The KL is summed over classes and averaged over positions; the ``T^2`` factor keeps the
    gradient scale independent of T, so it can be mixed with a hard-label loss. A float
    ``mask`` weighs the positions as in :func:`cross_entropy` (``sum(w * T^2 KL) / sum(w)``,
    e.g. the class weight of each position's true label; 0 = left out).

    Shapes:
        student_logits, teacher_logits: (..., C); mask: (...) bool, float weights, or None.
    """
    t = float(temperature)
    log_p_s = torch.log_softmax(student_logits / t, dim=-1)
    log_p_t = torch.log_softmax(teacher_logits.detach() / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return (t * t) * _masked_mean(kl, _weights(mask, kl))


def probability_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error between probability vectors: ``sum_c (p_s,c - p_t,c)^2`` averaged over
    positions, with ``p = softmax(z / T)`` (Kim et al. 2021 compare it with the KL loss); a
    float ``mask`` weighs the positions as in :func:`hinton_kd`.

    Shapes:
        student_logits, teacher_logits: (..., C); mask: (...) bool, float weights, or None.
    """
    t = float(temperature)
    diff = torch.softmax(student_logits / t, dim=-1) - torch.softmax(teacher_logits.detach() / t, dim=-1)
    se = (diff * diff).sum(-1)
    return _masked_mean(se, _weights(mask, se))


# ----------------------------------------------------------------------------------------------
# regression: Gaussian soft targets


def gaussian_nll(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood ``0.5 * (log var + (y - mu)^2 / var)`` (the constant
    ``0.5 log 2 pi`` left out) averaged over observed entries; trains a mean-and-variance head.

    Shapes:
        mean, var, target, mask: the same shape, e.g. (B, H, N); var > 0.
    """
    target = torch.where(mask, target, mean.detach())
    nll = 0.5 * (torch.log(var) + (target - mean) ** 2 / var)
    return _masked_mean(nll, mask.bool())


def gaussian_kl(mean_t: torch.Tensor, var_t: torch.Tensor, mean_s: torch.Tensor, var_s: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """``KL(N(mu_t, var_t) || N(mu_s, var_s))``, elementwise closed form, averaged:

        0.5 * (log(var_s / var_t) + (var_t + (mu_t - mu_s)^2) / var_s - 1)

    The teacher side is detached. Where the teacher is unsure (large ``var_t``) a student mean
    far from ``mu_t`` costs less, so the teacher's uncertainty weighs what the student copies.
    A point student passes ``var_s = var_t``, which leaves ``(mu_t - mu_s)^2 / (2 var_t)``.

    Shapes:
        all (B, H, N) (or any one shape); weight: optional bool/float of that shape.
    """
    mean_t, var_t = mean_t.detach(), var_t.detach()
    kl = 0.5 * (torch.log(var_s / var_t) + (var_t + (mean_t - mean_s) ** 2) / var_s - 1.0)
    if weight is None:
        return kl.mean()
    return _masked_mean(kl, weight)


def error_weights(teacher: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Trust in the teacher per entry: ``exp(-|teacher - label| / tau)`` where the label is
    observed, 1 where it is missing (nothing says the teacher is wrong there).

    Shapes:
        teacher, label, mask: (B, H, N) scaled; returns float weights of that shape in (0, 1].
    """
    err = (teacher.detach() - torch.where(mask, label, teacher.detach())).abs()
    return torch.where(mask, torch.exp(-err / float(tau)), torch.ones_like(err))


# ----------------------------------------------------------------------------------------------
# features


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """FitNets (Romero et al., ICLR 2015) hint: mean squared error between the (projected)
    student features and the teacher's, optionally after standardising each feature vector
    (zero mean, unit variance over its last axis) so that scale differences do not dominate.

    Shapes:
        student_features, teacher_features: (B, N, D) with the same D (project first).
    """
    t = teacher_features.detach()
    s = student_features
    if normalize:
        s = torch.nn.functional.layer_norm(s, s.shape[-1:])
        t = torch.nn.functional.layer_norm(t, t.shape[-1:])
    return ((s - t) ** 2).mean()


def similarity_matrix(features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between every pair of nodes (or pixels): (B, N, D) -> (B, N, N)."""
    f = torch.nn.functional.normalize(features, dim=-1, eps=1e-8)
    return f @ f.transpose(1, 2)


def relation_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Relation distillation (Park et al., CVPR 2019 "Relational KD"; for graphs, Yang et al.,
    CVPR 2020 "local structure preserving"): mean squared difference between the student's and
    the teacher's node-to-node cosine similarity matrices. The widths may differ, since only
    the (N, N) matrices are compared; a graph-less student so inherits which sensors behave
    alike from a graph teacher.

    Shapes:
        student_features: (B, N, Ds); teacher_features: (B, N, Dt).
    """
    ss = similarity_matrix(student_features)
    st = similarity_matrix(teacher_features.detach())
    return ((ss - st) ** 2).mean()
