"""The distillation toolbox: each loss against hand-computed values, schedules, hooks, the term
registry, several teachers, and where gradients go (student only; teacher only when online)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from test_windows import make_graph
from torch.distributions import Normal, kl_divergence

from stgeo_kd.config import TrainConfig, config_from_dict
from stgeo_kd.data.windows import ClassifyData, ForecastData
from stgeo_kd.distill import losses as L
from stgeo_kd.distill.hooks import FeatureTap
from stgeo_kd.distill.objective import (
    Objective,
    TermSpec,
    objective_from_config,
    parse_terms,
)
from stgeo_kd.distill.schedules import LRSchedule, Schedule, lr_scheduler
from stgeo_kd.distill.terms import TERMS, make_term
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.metrics import classification_scores, horizon_classification
from stgeo_kd.models import build_model, model_outputs
from stgeo_kd.training import Teaching, TrainModule, fit

LN3 = math.log(3.0)


# ---------------------------------------------------------------- classification losses


def test_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0]])  # p = [1/4, 3/4] and [1/2, 1/2]
    labels = torch.tensor([1, 0])
    assert L.cross_entropy(logits, labels).item() == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2)
    # the second position unobserved: only the first counts, whatever its label says
    mask = torch.tensor([True, False])
    assert L.cross_entropy(logits, torch.tensor([1, 99]), mask).item() == pytest.approx(-math.log(0.75))


def test_hinton_kd_by_hand_with_temperature_scaling():
    s, t = torch.tensor([[LN3, 0.0]]), torch.tensor([[0.0, 0.0]])
    # T = 1: p_s = [3/4, 1/4], p_t = [1/2, 1/2]; KL(p_t || p_s) = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25)
    assert L.hinton_kd(s, t, 1.0).item() == pytest.approx(0.5 * math.log(4.0 / 3.0), rel=1e-6)
    # T = 2: p_s = softmax([ln3/2, 0]) = [sqrt3, 1] / (1 + sqrt3); the KL is scaled by T^2 = 4
    r3 = math.sqrt(3.0)
    p1, p2 = r3 / (1 + r3), 1 / (1 + r3)
    expected = 4.0 * (0.5 * math.log(0.5 / p1) + 0.5 * math.log(0.5 / p2))
    assert L.hinton_kd(s, t, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert L.hinton_kd(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_hinton_kd_weighs_positions_by_float_weights():
    # position 1: p_s = [3/4, 1/4], p_t = [1/2, 1/2]; position 2: p_s = [1/2, 1/2], p_t = [3/4, 1/4]
    s = torch.tensor([[LN3, 0.0], [0.0, 0.0], [5.0, -5.0]])
    t = torch.tensor([[0.0, 0.0], [LN3, 0.0], [-5.0, 5.0]])
    kl1 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl2 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    w = torch.tensor([3.0, 1.0, 0.0])  # the third position (no label) counts for nothing
    assert L.hinton_kd(s, t, 1.0, w).item() == pytest.approx((3 * kl1 + 1 * kl2) / 4, rel=1e-6)
    # T = 2: the weighted mean of the per-position T^2 KL
    per = [L.hinton_kd(s[i : i + 1], t[i : i + 1], 2.0).item() for i in range(2)]
    assert L.hinton_kd(s, t, 2.0, w).item() == pytest.approx((3 * per[0] + per[1]) / 4, rel=1e-6)
    # a bool mask still means "these positions, equally"
    assert L.hinton_kd(s, t, 1.0, w > 0).item() == pytest.approx((kl1 + kl2) / 2, rel=1e-6)
    # probability_mse: [1/4, -1/4] and [-1/4, 1/4] both give 1/8
    assert L.probability_mse(s, t, 1.0, w).item() == pytest.approx(0.125, rel=1e-6)


def test_class_weighted_hinton_term_uses_the_label_weights():
    s = {"logits": torch.tensor([[LN3, 0.0], [0.0, 0.0]]).view(1, 1, 2, 2)}
    t = {"logits": torch.tensor([[0.0, 0.0], [LN3, 0.0]]).view(1, 1, 2, 2)}
    kl1 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl2 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    label, w = torch.tensor([0, 1]).view(1, 1, 2), torch.tensor([0.5, 2.0]).view(1, 1, 2)
    plain, weighted = (Objective(parse_terms(["labels", {"name": "hinton", "params": {"class_weighted": cw}}],
                                             "classify"), alpha=Schedule(start=0.5), temperature=Schedule(start=1.0))
                      for cw in (False, True))
    _, parts = plain(s, label, w, 0, 1, teachers=[t])
    assert float(parts["hinton"]) == pytest.approx((kl1 + kl2) / 2, rel=1e-6)
    _, parts = weighted(s, label, w, 0, 1, teachers=[t])
    assert float(parts["hinton"]) == pytest.approx((0.5 * kl1 + 2.0 * kl2) / 2.5, rel=1e-6)
    assert float(parts["labels"]) == pytest.approx((0.5 * -math.log(0.75) + 2.0 * -math.log(0.5)) / 2.5, rel=1e-6)
    with pytest.raises(StgeoError, match="class_weighted must be true or false"):
        make_term("probability_mse", {"class_weighted": "yes"}, "classify", "distill.terms[1]")


def test_probability_mse_by_hand():
    s, t = torch.tensor([[LN3, 0.0]]), torch.tensor([[0.0, 0.0]])
    assert L.probability_mse(s, t).item() == pytest.approx(0.25**2 * 2)


# ---------------------------------------------------------------- regression losses


def test_gaussian_nll_by_hand():
    mean, var = torch.tensor([0.0, 5.0]), torch.tensor([math.e, 1.0])
    y, mask = torch.tensor([1.0, float("nan")]), torch.tensor([True, False])
    assert L.gaussian_nll(mean, var, y, mask).item() == pytest.approx(0.5 * (1.0 + 1.0 / math.e))


def test_gaussian_kl_equals_closed_form_and_torch():
    g = torch.Generator().manual_seed(0)
    mu_t, mu_s = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    var_t, var_s = torch.rand(4, 3, 5, generator=g) + 0.1, torch.rand(4, 3, 5, generator=g) + 0.1
    ours = L.gaussian_kl(mu_t, var_t, mu_s, var_s)
    closed = (0.5 * (torch.log(var_s / var_t) + (var_t + (mu_t - mu_s) ** 2) / var_s - 1)).mean()
    reference = kl_divergence(Normal(mu_t, var_t.sqrt()), Normal(mu_s, var_s.sqrt())).mean()
    assert ours.item() == pytest.approx(closed.item(), rel=1e-6)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    # one number by hand: mu_t=1, var_t=1, mu_s=0, var_s=2 -> 0.5 (ln 2 + 2/2 - 1) = 0.5 ln 2
    one = L.gaussian_kl(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]))
    assert one.item() == pytest.approx(0.5 * math.log(2.0))
    # a point student (var_s = var_t) pays (mu_t - mu_s)^2 / (2 var_t): less where the teacher is unsure
    sure = L.gaussian_kl(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([0.5]))
    unsure = L.gaussian_kl(torch.tensor([1.0]), torch.tensor([4.0]), torch.tensor([0.0]), torch.tensor([4.0]))
    assert sure.item() == pytest.approx(1.0) and unsure.item() == pytest.approx(1.0 / 8.0)


def test_error_weights_by_hand():
    teacher = torch.tensor([2.0, 1.0, 7.0])
    label = torch.tensor([1.0, 1.0, float("nan")])
    mask = torch.tensor([True, True, False])
    w = L.error_weights(teacher, label, mask, tau=1.0)
    assert w.tolist() == pytest.approx([math.exp(-1.0), 1.0, 1.0])
    w2 = L.error_weights(teacher, label, mask, tau=2.0)
    assert w2[0].item() == pytest.approx(math.exp(-0.5))


def test_hint_loss_by_hand():
    s = torch.tensor([[[1.0, 2.0]]])
    t = torch.tensor([[[3.0, 2.0]]])
    assert L.hint_loss(s, t, normalize=False).item() == pytest.approx((4.0 + 0.0) / 2)
    # standardised, an affine copy is a perfect hint
    assert L.hint_loss(s, 10 * s + 3, normalize=True).item() == pytest.approx(0.0, abs=1e-6)


def test_relation_loss_by_hand():
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # orthogonal nodes: similarity I
    t = torch.tensor([[[2.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])  # parallel nodes: similarity all ones
    # difference [[0, -1], [-1, 0]]: mean of squares 2 / 4 (widths 2 and 3 may differ)
    assert L.relation_loss(s, t).item() == pytest.approx(0.5)
    assert L.relation_loss(t[..., :2], t[..., :2] * 3).item() == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- schedules


def test_schedules():
    lin = Schedule("linear", 0.9, 0.1)
    assert [round(lin(e, 5), 6) for e in range(5)] == [0.9, 0.7, 0.5, 0.3, 0.1]
    cos = Schedule("cosine", 4.0, 1.0)
    assert cos(0, 11) == pytest.approx(4.0) and cos(5, 11) == pytest.approx(2.5) and cos(10, 11) == pytest.approx(1.0)
    step = Schedule("step", 1.0, 0.2, every=2, gamma=0.5)
    assert [step(e, 10) for e in range(7)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]
    assert Schedule.parse(0.3, "x")(7, 10) == 0.3
    with pytest.raises(StgeoError, match="Did you mean 'cosine'"):
        Schedule.parse({"kind": "cosin", "start": 1, "end": 0}, "distill.alpha")
    with pytest.raises(StgeoError, match="needs both start and end"):
        Schedule.parse({"kind": "linear", "start": 1}, "distill.alpha")
    with pytest.raises(StgeoError, match="Unknown key 'distill.alpha.stop'"):
        Schedule.parse({"kind": "linear", "start": 1, "stop": 0}, "distill.alpha")


@pytest.mark.parametrize("kind,expected_last", [("linear", 0.1), ("exponential", 0.5**4), ("cosine", 0.1)])
def test_lr_schedules_follow_their_formula(kind, expected_last):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = lr_scheduler(opt, LRSchedule(kind, gamma=0.5, end_factor=0.1), epochs=5, patience=3, monitor="val_mae")["scheduler"]
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(expected_last)
    assert lr_scheduler(opt, LRSchedule("constant"), 5, 3, "val_mae") is None
    with pytest.raises(StgeoError, match="Did you mean 'cosine'"):
        LRSchedule.parse("cosin")


# ---------------------------------------------------------------- hooks


def _model(name="mlp", head="point", num_classes=None, **params):
    torch.manual_seed(0)
    return build_model(name, params, num_nodes=5, history=6, horizon=3, steps_per_day=24, adjacency=np.ones((5, 5)),
                       head=head, num_classes=num_classes)


def _x(b=4, t=6, n=5):
    x = torch.randn(b, t, n, 4)
    x[..., 1] = 1.0
    x[..., 2] = 0.25
    x[..., 3] = 2.0
    return x


def test_hooks_pick_named_layers_and_find_node_axes():
    mlp, gwn = _model("mlp", hidden=8), _model("graph_wavenet", channels=8, end_channels=12, dilations=[1, 2])
    tap_s = FeatureTap(mlp, ["body"], num_nodes=5)
    tap_t = FeatureTap(gwn, ["end1"], num_nodes=5)  # end1 works node-first: (N, B, D)
    x = _x(b=5)  # batch size equal to the node count: the probe must still tell the axes apart
    tap_s.probe(x)
    tap_t.probe(x)
    mlp(x), gwn(x)
    assert tuple(tap_s["body"].shape) == (5, 5, mlp.encoder.width)
    assert tuple(tap_t["end1"].shape) == (5, 5, 12)
    # the tapped tensor is the layer's own output, re-arranged: node 2 of sample 1
    raw = tap_t.raw["end1"]
    assert torch.equal(tap_t["end1"][1, 2], raw[2, 1])
    tap_s.remove()
    assert not mlp.body._forward_hooks


def test_hooks_see_through_output_heads_and_name_valid_layers():
    wrapped = _model("mlp", head="gaussian", hidden=8)
    tap = FeatureTap(wrapped, ["body"], num_nodes=5)
    tap.probe(_x())
    wrapped(_x())
    assert tap["body"].shape[:2] == (4, 5)
    with pytest.raises(StgeoError) as info:
        FeatureTap(_model("mlp"), ["bdy"], num_nodes=5)
    assert "Did you mean 'body'" in str(info.value) and "encoder" in str(info.value)


# ---------------------------------------------------------------- registry and config


def test_term_registry_names_params_and_tasks():
    assert {"labels", "soft_targets", "blended_targets", "error_weighted", "gaussian_kl", "hinton", "probability_mse",
            "hint", "relation", "peer"} == set(TERMS)
    with pytest.raises(StgeoError) as info:
        make_term("hintin", {}, "classify", "distill.terms[1]")
    assert "Did you mean 'hinton'" in str(info.value) and "relation" in str(info.value)
    with pytest.raises(StgeoError, match="has no parameter 'temp'.*Its parameters: temperature, class_weighted"):
        make_term("hinton", {"temp": 2}, "classify", "distill.terms[0]")
    with pytest.raises(StgeoError, match="no parameter 'class_weights'.*Did you mean 'class_weighted'"):
        make_term("hinton", {"class_weights": True}, "classify", "distill.terms[0]")
    with pytest.raises(StgeoError, match="for classify tasks, not forecast"):
        make_term("hinton", {}, "forecast", "distill.terms[0]")
    with pytest.raises(StgeoError, match="needs student_layer, teacher_layer"):
        make_term("hint", {}, "forecast", "distill.terms[0]")


def _cfg(**sections):
    raw = {"data": {"readings": "x.csv"}, "teacher": {"name": "graph_wavenet"}, "student": {"name": "mlp"}}
    raw.update(sections)
    return config_from_dict(raw)


def test_distill_section_from_yaml_mapping():
    cfg = _cfg(distill={
        "alpha": {"kind": "linear", "start": 0.9, "end": 0.1},
        "terms": ["labels", {"name": "soft_targets", "weight": 2.0, "params": {"loss": "huber"}},
                  {"name": "relation", "weight": 0.1, "schedule": {"kind": "step", "start": 1.0, "every": 5, "gamma": 0.5},
                   "params": {"student_layer": "body", "teacher_layer": "end1"}}],
    }, train={"lr_schedule": {"kind": "exponential", "gamma": 0.97}})
    obj = objective_from_config(cfg)
    assert [t.name for t in obj.terms] == ["labels", "soft_targets", "relation"]
    assert obj.weights == [1.0, 2.0, 0.1] and obj.alpha(0, 10) == pytest.approx(0.9)
    assert obj.schedules[2](10, 20) == pytest.approx(0.25)
    assert obj.student_layers() == ["body"] and obj.teacher_layers() == ["end1"]


@pytest.mark.parametrize(
    "sections,words",
    [
        ({"distill": {"terms": ["labels", "soft_target"]}}, "Did you mean 'soft_targets'"),
        ({"distill": {"terms": [{"name": "labels", "wieght": 1}]}}, "Unknown key 'distill.terms[0].wieght'"),
        ({"distill": {"terms": ["labels", "gaussian_kl"]}}, "needs teacher.head: gaussian"),
        ({"distill": {"terms": ["labels", "peer"]}}, "distill.mutual is false"),
        ({"distill": {"combine": "median"}}, "distill.combine 'median' is unknown"),
        ({"distill": {"alpha": {"kind": "linear", "start": 1.5, "end": 0}}}, "between 0 and 1"),
        ({"distill": {"temperature": -1}}, "temperature must be positive"),
        ({"train": {"lr_schedule": "cosin"}}, "Did you mean 'cosine'"),
        ({"teacher": {"name": "graph_wavenet", "head": "gauss"}}, "Did you mean 'gaussian'"),
        ({"task": {"kind": "classify", "classes": {"rule": "thresholds"}}}, "increasing list"),
        ({"task": {"kind": "classify", "classes": {"rule": "trend", "names": ["a", "b"]}}}, "rule makes 3 classes"),
        ({"task": {"kind": "classify"}, "distill": {"terms": ["labels", "soft_targets"]}}, "not classify"),
    ],
)
def test_bad_distill_config_names_the_key(sections, words):
    with pytest.raises(StgeoError, match=words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        _cfg(**sections)


def test_several_teachers_in_config():
    cfg = _cfg(teacher=[{"name": "graph_wavenet", "weight": 3}, {"name": "lstm", "head": "gaussian"}],
               distill={"combine": "weighted", "terms": ["labels", "soft_targets"]})
    assert [m.name for m in cfg.teachers] == ["graph_wavenet", "lstm"]
    assert objective_from_config(cfg).teacher_weights == [3.0, 1.0]


# ---------------------------------------------------------------- several teachers


def test_combined_targets_mean_weighted_and_inverse_variance():
    a = {"pred": torch.tensor([0.0, 0.0]), "var": torch.tensor([1.0, 4.0])}
    b = {"pred": torch.tensor([3.0, 3.0]), "var": torch.tensor([2.0, 1.0])}
    spec = parse_terms(["labels", "soft_targets"], "forecast")
    mean = Objective(spec, combine="mean").combined([a, b])
    assert mean["pred"].tolist() == pytest.approx([1.5, 1.5])
    # mixture variance: E[var] + Var[mean] = 1.5 + 2.25 and 2.5 + 2.25
    assert mean["var"].tolist() == pytest.approx([3.75, 4.75])
    weighted = Objective(spec, combine="weighted", teacher_weights=[2.0, 1.0]).combined([a, b])
    assert weighted["pred"].tolist() == pytest.approx([1.0, 1.0])
    unc = Objective(spec, combine="uncertainty").combined([a, b])
    # weights 1/var: (1, 1/2) -> 2/3, 1/3 ; (1/4, 1) -> 1/5, 4/5
    assert unc["pred"].tolist() == pytest.approx([1.0, 2.4])


def test_combined_class_probabilities():
    spec = parse_terms(["labels", "hinton"], "classify")
    a = {"logits": torch.tensor([[0.0, 0.0]])}
    b = {"logits": torch.tensor([[LN3, 0.0]])}
    merged = Objective(spec, combine="mean").combined([a, b])
    assert torch.softmax(merged["logits"], -1).tolist()[0] == pytest.approx([0.625, 0.375])


def test_losses_mode_averages_each_teacher_term():
    spec = parse_terms([{"name": "soft_targets", "params": {"loss": "mse"}}], "forecast")
    obj = Objective(spec, alpha=Schedule("constant", 1.0), combine="mean", combine_on="losses")
    student = {"pred": torch.zeros(1, 1, 2)}
    t1, t2 = {"pred": torch.ones(1, 1, 2)}, {"pred": 3 * torch.ones(1, 1, 2)}
    total, _ = obj(student, torch.zeros(1, 1, 2), torch.ones(1, 1, 2, dtype=torch.bool), 0, 1, teachers=[t1, t2])
    assert total.item() == pytest.approx((1.0 + 9.0) / 2)  # mean of the two losses, not the loss of the mean (4)


def test_alpha_weighs_label_and_teacher_terms():
    spec = parse_terms([{"name": "labels", "params": {"loss": "mae"}}, "soft_targets"], "forecast")
    obj = Objective(spec, alpha=Schedule("constant", 0.25))
    student = {"pred": torch.zeros(1, 1, 1)}
    label, teacher = torch.full((1, 1, 1), 2.0), {"pred": torch.full((1, 1, 1), 4.0)}
    total, parts = obj(student, label, torch.ones(1, 1, 1, dtype=torch.bool), 0, 1, teachers=[teacher])
    assert parts["labels"].item() == 2.0 and parts["soft_targets"].item() == 4.0
    assert total.item() == pytest.approx(0.75 * 2.0 + 0.25 * 4.0)


# ---------------------------------------------------------------- gradients


def _tiny_data():
    return ForecastData(make_graph(), 3, 2, train=0.6, val=0.2, test=0.2)


def _tiny(name, data, head="point", **params):
    torch.manual_seed(0)
    return build_model(name, params, num_nodes=3, history=3, horizon=2, steps_per_day=24, adjacency=make_graph().adjacency(),
                       head=head)


def _step(module, data):
    batch = next(iter(torch.utils.data.DataLoader(data.dataset("train"), batch_size=4)))
    for p in module.parameters():
        p.grad = None
    for t in module.teacher_models:
        for p in t.parameters():
            p.grad = None
    module.training_step(batch, 0).backward()


def _grad_norm(model):
    return sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("terms", [
    ["labels", "soft_targets"],
    ["labels", "gaussian_kl", "error_weighted"],
    ["blended_targets"],
    ["labels", {"name": "hint", "params": {"student_layer": "body", "teacher_layer": "end1"}},
     {"name": "relation", "params": {"student_layer": "body", "teacher_layer": "end1"}}],
])
def test_offline_gradients_reach_the_student_only(terms):
    from stgeo_kd.training import _prepare

    data = _tiny_data()
    teacher = _tiny("graph_wavenet", data, head="gaussian", channels=4, end_channels=6, dilations=[1, 2])
    student = _tiny("mlp", data, hidden=4, node_dim=2, time_dim=2)
    obj = Objective(parse_terms(terms, "forecast"))
    teaching = Teaching(teachers=[teacher])
    s_tap, t_taps, cache = _prepare(student, data, obj, teaching, "forecast")
    module = TrainModule(student, TrainConfig(), 1e-3, 5, obj, "forecast", teaching, cache, s_tap, t_taps)
    _step(module, data)
    assert _grad_norm(student) > 0
    assert all(p.grad is None for p in teacher.parameters())
    if "hint" in str(terms):  # the hint projection (student width 4+2+4 -> teacher 6) learns too
        assert _grad_norm(obj) > 0
    assert teacher not in list(module.modules())  # frozen teachers stay out of Lightning's reach


def test_online_teacher_keeps_learning_and_mutual_peer_too():
    data = _tiny_data()
    teacher = _tiny("lstm", data, hidden=4, layers=1)
    student, peer = _tiny("mlp", data, hidden=4), _tiny("mlp", data, hidden=4)
    obj = Objective(parse_terms(["labels", "soft_targets", "peer"], "forecast"))
    teaching = Teaching(teachers=[teacher], online=True, peer=peer)
    module = TrainModule(student, TrainConfig(), 1e-3, 5, obj, "forecast", teaching)
    _step(module, data)
    assert _grad_norm(student) > 0 and _grad_norm(teacher) > 0 and _grad_norm(peer) > 0
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert len(groups) == 3  # student (+projections), peer, online teacher


def test_fit_refuses_teacher_terms_without_a_teacher():
    data = _tiny_data()
    obj = Objective(parse_terms(["labels", "soft_targets"], "forecast"))
    with pytest.raises(StgeoError, match="need a teacher"):
        fit(_tiny("mlp", data), data, TrainConfig(epochs=1, progress=False), epochs=1, lr=1e-3, objective=obj)


def test_online_fit_restores_teacher_at_best_student_epoch():
    data = _tiny_data()
    teacher = _tiny("lstm", data, hidden=4, layers=1)
    before = [p.detach().clone() for p in teacher.parameters()]
    obj = Objective(parse_terms(["labels", "soft_targets"], "forecast"))
    tr = TrainConfig(epochs=2, progress=False, latency_repeats=1)
    out = fit(_tiny("mlp", data, hidden=4), data, tr, epochs=2, lr=1e-2, objective=obj,
              teaching=Teaching(teachers=[teacher], online=True))
    assert out["epochs"] == 2 and "teacher_loss" in out["history"][-1]
    assert any(not torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert not teacher.training


# ---------------------------------------------------------------- classification


def test_classification_scores_by_hand():
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    s = classification_scores(pred, truth, np.ones(6, bool), 3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    # F1: class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 1, fp 0, fn 1 -> 2/3
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # kappa: p_o = 2/3, p_e = (2*2 + 2*3 + 2*1) / 36 = 1/3 -> (2/3 - 1/3) / (2/3) = 0.5
    assert s["kappa"] == pytest.approx(0.5)
    const = classification_scores(np.ones(6, int), truth, np.ones(6, bool), 3)
    assert const["kappa"] == pytest.approx(0.0)
    masked = classification_scores(pred, truth, np.array([1, 0, 1, 1, 1, 0], bool), 3)
    assert masked["accuracy"] == 1.0 and masked["count"] == 4
    per = horizon_classification(pred.reshape(1, 2, 3), truth.reshape(1, 2, 3), np.ones((1, 2, 3), bool), [1, 2], 3)
    assert set(per) == {"h1", "h2", "all"} and per["all"]["accuracy"] == pytest.approx(4 / 6)


def _series_graph(values):
    import geopandas as gpd

    from stgeo_kd.data.sensor_graph import SensorGraph

    raw = np.asarray(values, dtype=np.float32)[:, None]
    da = xr.DataArray(raw, dims=("time", "node"),
                      coords={"time": pd.date_range("2024-01-01", periods=len(raw), freq="1h").values, "node": ["s"]})
    nodes = gpd.GeoDataFrame({"sensor_id": ["s"]}, geometry=gpd.points_from_xy([0.0], [0.0]), crs="EPSG:4326")
    return SensorGraph(values=da, edge_index=np.zeros((2, 0)), edge_weight=np.zeros(0), nodes=nodes)


def test_threshold_and_trend_labels():
    values = [10, 50, 70, 30, np.nan, 60, 20, 40, 80, 10]
    g = _series_graph(values)
    th = ClassifyData(g, 2, 1, 0.6, 0.0, 0.4, rule="thresholds", thresholds=[40, 55])
    labels, ok = th.window_labels("train")  # train steps 0..5: windows start 0..3, targets at 2..5
    assert labels[:, 0, 0].tolist() == [2, 0, -1, 2] and ok[:, 0, 0].tolist() == [True, True, False, True]
    tr = ClassifyData(g, 2, 1, 0.6, 0.0, 0.4, rule="trend", band=0.25)
    labels, _ = tr.window_labels("train")
    # last input -> target: 50 -> 70 rise, 70 -> 30 fall, 30 -> nan unlabelled, nan -> 60 unlabelled
    assert labels[:, 0, 0].tolist() == [2, 0, -1, -1]
    assert tr.class_names == ["fall", "flat", "rise"]
    _, y, _, _ = tr.dataset("train")[0]
    assert y.dtype == torch.int64 and tuple(y.shape) == (1, 1)


def test_classifier_head_and_hinton_training_runs():
    g = make_graph()
    data = ClassifyData(g, 3, 2, 0.6, 0.2, 0.2, rule="trend", band=0.1)
    torch.manual_seed(0)
    kw = {"num_nodes": 3, "history": 3, "horizon": 2, "steps_per_day": 24, "adjacency": g.adjacency(), "num_classes": 3}
    teacher, student = build_model("lstm", {"hidden": 4, "layers": 1}, **kw), build_model("mlp", {"hidden": 4}, **kw)
    x = data.window_inputs("train")[:2]
    assert tuple(model_outputs(student, x)["logits"].shape) == (2, 2, 3, 3)
    tr = TrainConfig(epochs=1, progress=False)
    fit(teacher, data, tr, epochs=1, lr=1e-2, kind="classify")
    obj = Objective(parse_terms(None, "classify"), temperature=Schedule("constant", 4.0))
    out = fit(student, data, tr, epochs=2, lr=1e-2, objective=obj, teaching=Teaching(teachers=[teacher]), kind="classify")
    assert out["monitor"] == "val_ce" and "term_hinton" in out["history"][-1]


def test_objective_terms_report_each_value():
    spec = [TermSpec(make_term("labels", {}, "forecast", "t"), 1.0, None)]
    total, parts = Objective(spec)({"pred": torch.zeros(1, 1, 1)}, torch.ones(1, 1, 1), torch.ones(1, 1, 1, dtype=torch.bool), 0, 1)
    assert parts == {"labels": torch.tensor(1.0)} and total.item() == 1.0
