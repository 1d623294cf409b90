"""The ``data.points`` section of a run config and the checks of a ``data.kind: points`` run.

:class:`PointsConfig` is a field of :class:`~stgeo_kd.config.DataConfig`; :func:`validate_points`
replaces the sensor-graph checks of :func:`~stgeo_kd.config.validate` when ``data.kind`` is
``points``. Only values are checked here; the files are read by :mod:`stgeo_kd.spatial.points`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stgeo_kd.errors import StgeoError, did_you_mean

#: task kinds a points run accepts; ``forecast`` is the config default and means the same here
TASK_KINDS = ("regress", "forecast")
#: distillation terms that need something a point model does not have
UNSUPPORTED_TERMS = {
    "gaussian_kl": "point teachers have no Gaussian head",
    "peer": "mutual learning (distill.mutual) is not offered for points",
}


@dataclass
class PointsConfig:
    """A point layer with a value to predict (``data.kind: points``); paths are relative to the
    YAML file, distances are in metres.

    ``path``: a GeoPackage, Shapefile or GeoJSON point layer, or ``libpysal:<example>/<file>``
    for a data set that the ``libpysal`` package ships (e.g. ``libpysal:baltim/baltim.shp``).
    ``target``: the numeric column to predict. ``features``: attribute columns used as inputs
    (default: every numeric column except ``target`` and ``id_column``). ``coordinates``: also
    give every model the point's projected x and y. ``crs``: the layer's CRS when the file has
    none. ``k``: neighbours per point in the teacher's graph. ``block_size``/``buffer``: the
    spatial block split (see docs/spatial.md); ``split_seed`` defaults to ``train.seed``.
    """

    path: str = ""
    layer: str | None = None
    target: str = ""
    features: list[str] | None = None
    id_column: str | None = None
    crs: str | None = None
    coordinates: bool = True
    k: int = 8
    block_size: float = 2000.0
    buffer: float = 500.0
    split_seed: int | None = None


def validate_points(cfg: Any) -> None:
    """Check a ``data.kind: points`` RunConfig: its ``data.points``, ``task``, models, ``distill``
    and ``train`` values (names, ranges, combinations).

    Raises:
        StgeoError: naming the key, the value and what to do.
    """
    from stgeo_kd.spatial.models import STUDENTS, TEACHERS

    p = cfg.data.points
    if not p.path:
        raise StgeoError("data.points.path is required: set it to a point layer (GPKG, SHP, GeoJSON), "
                         "e.g. libpysal:baltim/baltim.shp for the Baltimore house prices.")
    if not p.target:
        raise StgeoError("data.points.target is required: the numeric column to predict (e.g. PRICE).")
    if p.k < 1:
        raise StgeoError(f"data.points.k must be at least 1 (neighbours per point), got {p.k}.")
    if not (math.isfinite(p.block_size) and p.block_size > 0):
        raise StgeoError(f"data.points.block_size must be a positive distance in metres, got {p.block_size}.")
    if not (math.isfinite(p.buffer) and p.buffer >= 0):
        raise StgeoError(f"data.points.buffer must be a distance in metres, 0 or more, got {p.buffer}.")
    if p.features is not None and not p.features and not p.coordinates:
        raise StgeoError("data.points.features is empty and data.points.coordinates is false: the models would "
                         "have no input. List feature columns, or leave features out to use every numeric column.")

    t = cfg.task
    if t.kind not in TASK_KINDS:
        raise StgeoError(f"task.kind {t.kind!r} does not apply to data.kind: points; use task.kind: regress "
                         "(a value per point).")
    s = t.split
    if min(s.train, s.val, s.test) < 0 or s.train <= 0 or s.test <= 0 or abs(s.train + s.val + s.test - 1.0) > 1e-6:
        raise StgeoError(f"task.split fractions must be non-negative and sum to 1 (train and test > 0), got "
                         f"train={s.train}, val={s.val}, test={s.test}.")

    if isinstance(cfg.teacher, list) and len(cfg.teacher) != 1:
        raise StgeoError("data.kind: points trains one teacher; give teacher as a single model, not a list of "
                         f"{len(cfg.teacher)}.")
    teacher = cfg.teachers[0]
    for where, m, names in (("teacher", teacher, TEACHERS), ("student", cfg.student, STUDENTS)):
        if m.name not in names:
            raise StgeoError(f"{where}.name {m.name!r} is not a model for points. {did_you_mean(m.name, list(names))}")
        if m.head != "point":
            raise StgeoError(f"{where}.head must be point for data.kind: points, got {m.head!r}.")

    _validate_distill(cfg)

    tr = cfg.train
    if tr.epochs < 1 or (tr.student_epochs is not None and tr.student_epochs < 1):
        raise StgeoError("train.epochs and train.student_epochs must be at least 1.")
    if tr.batch_size < 1:
        raise StgeoError(f"train.batch_size must be at least 1, got {tr.batch_size}.")
    for key, value in (("train.lr", tr.lr), ("train.student_lr", tr.student_lr)):
        if value is not None and not value > 0:
            raise StgeoError(f"{key} must be positive, got {value}.")
    if tr.weight_decay < 0:
        raise StgeoError(f"train.weight_decay must be 0 or more, got {tr.weight_decay}.")
    if tr.patience < 1:
        raise StgeoError(f"train.patience must be at least 1 epoch, got {tr.patience}.")
    losses = ("mae", "mse", "huber")
    for key, value in (("train.loss", tr.loss), ("distill.loss", cfg.distill.loss)):
        if value not in losses:
            raise StgeoError(f"{key} {value!r} is unknown. {did_you_mean(value, losses)}")


def _validate_distill(cfg: Any) -> None:
    """The student's loss terms: the regression terms of the toolbox (see docs/distillation.md)."""
    from stgeo_kd.distill.objective import parse_terms
    from stgeo_kd.distill.schedules import Schedule

    d = cfg.distill
    if d.online or d.mutual:
        raise StgeoError("distill.online and distill.mutual are not offered for data.kind: points; the teacher is "
                         "trained first and then frozen.")
    alpha = Schedule.parse(d.alpha, "distill.alpha")
    for v in (alpha.start, alpha.end):
        if v is not None and not 0.0 <= v <= 1.0:
            raise StgeoError(f"distill.alpha must be between 0 and 1, got {v}.")
    specs = parse_terms(d.terms, "forecast", d.loss, d.teacher_fills_missing)
    for spec in specs:
        why = UNSUPPORTED_TERMS.get(spec.term.name)
        if why:
            raise StgeoError(f"distill.terms: {spec.term.name!r} cannot be used with data.kind: points ({why}).")
