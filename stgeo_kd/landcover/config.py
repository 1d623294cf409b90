"""The ``data.patches`` section of a run config and the checks of a ``data.kind: patches`` run.

:class:`PatchesConfig` is a field of :class:`~stgeo_kd.config.DataConfig`; the raster itself is
named by the raster keys of ``data`` (``path``, ``pattern``, ``variable``, ``band_as``,
``time_format``, ``start``, ``freq``, ``crs``, ``units``), as for ``data.kind: raster_stack``.
:func:`validate_patches` replaces the sensor-graph checks of :func:`~stgeo_kd.config.validate`
when ``data.kind`` is ``patches``. Only values are checked here; the files are read by
:mod:`stgeo_kd.landcover.patches`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stgeo_kd.errors import StgeoError, did_you_mean

#: task kinds a patches run accepts; ``forecast`` is the config default and means the same here
TASK_KINDS = ("classify", "forecast")
#: dataset loaders for inputs that are not GeoTIFF / NetCDF files (``data.patches.loader``)
LOADERS = ("eopatch_slovenia",)
CLASS_WEIGHTS = ("balanced", "sqrt", "none")
#: distillation terms that work on per-pixel class scores
SUPPORTED_TERMS = ("labels", "hinton", "probability_mse")


@dataclass
class PatchesConfig:
    """Labelled polygons over a raster (``data.kind: patches``); paths are relative to the YAML
    file, sizes are in pixels of the raster's grid.

    ``labels``: a polygon layer (GPKG, SHP, GeoJSON) with a class column, rasterised on the
    raster's grid. ``class_column``: integer class codes (kept in the class map) or text
    (coded 1, 2, ... in sorted order). ``name_column``: class names for reports and the
    legend. ``ignore_classes``: codes that mean "no label" (e.g. ``[0]``). ``labels_crs``:
    the CRS of a layer that has none. ``colors``: class code -> ``#rrggbb``.
    ``loader``: ``eopatch_slovenia`` reads an eo-learn EOPatch folder of ``.npy`` arrays at
    ``data.path`` instead of raster files. ``min_clear``: frames with a smaller share of valid
    (cloud-free) pixels are dropped; the gaps left in the others are filled by linear
    interpolation in time, per pixel. ``block_size`` / ``buffer`` / ``split_seed``: the spatial
    block split (see docs/landcover.md); ``buffer: null`` is the largest model footprint
    radius. ``class_weights``: ``balanced`` (n / (K n_c)), ``sqrt`` (its square root) or
    ``none``. ``augment``: dihedral flips / rotations of the training windows, random temporal
    masking and jitter. ``crop``: side of the training windows.
    """

    labels: str = ""
    labels_layer: str | None = None
    class_column: str = ""
    name_column: str | None = None
    ignore_classes: list[Any] = field(default_factory=list)
    labels_crs: str | None = None
    colors: dict[str, Any] | None = None
    loader: str | None = None
    min_clear: float = 0.5
    block_size: int = 20
    buffer: int | None = None
    split_seed: int | None = None
    class_weights: str = "balanced"
    augment: bool = True
    crop: int = 48


def validate_patches(cfg: Any) -> None:
    """Check a ``data.kind: patches`` RunConfig: its ``data.patches``, ``task``, models,
    ``distill`` and ``train`` values (names, ranges, combinations).

    Raises:
        StgeoError: naming the key, the value and what to do.
    """
    from stgeo_kd.landcover.models import STUDENTS, TEACHERS

    d, p = cfg.data, cfg.data.patches
    if not d.path:
        raise StgeoError("data.path is required for data.kind: patches: a GeoTIFF / NetCDF raster or time stack (or a "
                         "folder of frames), or an EOPatch folder with data.patches.loader: eopatch_slovenia.")
    if not p.labels:
        raise StgeoError("data.patches.labels is required: a polygon layer (GPKG, SHP, GeoJSON) with a class column.")
    if not p.class_column:
        raise StgeoError("data.patches.class_column is required: the column of data.patches.labels holding the class "
                         "of each polygon (e.g. LULC_ID).")
    if p.loader is not None and p.loader not in LOADERS:
        raise StgeoError(f"data.patches.loader {p.loader!r} is unknown. {did_you_mean(p.loader, LOADERS)} Leave it out "
                         "to read GeoTIFF / NetCDF files.")
    if not (math.isfinite(p.min_clear) and 0.0 <= p.min_clear <= 1.0):
        raise StgeoError(f"data.patches.min_clear must be a share between 0 and 1, got {p.min_clear}.")
    if p.block_size < 2:
        raise StgeoError(f"data.patches.block_size must be at least 2 pixels, got {p.block_size}.")
    if p.buffer is not None and p.buffer < 0:
        raise StgeoError(f"data.patches.buffer must be 0 or more pixels (or null), got {p.buffer}.")
    if p.class_weights not in CLASS_WEIGHTS:
        raise StgeoError(f"data.patches.class_weights {p.class_weights!r} is unknown. "
                         f"{did_you_mean(p.class_weights, CLASS_WEIGHTS)}")
    if p.crop < 8:
        raise StgeoError(f"data.patches.crop must be at least 8 pixels, got {p.crop}.")
    for code, colour in (p.colors or {}).items():
        if not (isinstance(colour, str) and len(colour) == 7 and colour.startswith("#")
                and all(c in "0123456789abcdefABCDEF" for c in colour[1:])):
            raise StgeoError(f"data.patches.colors[{code!r}] must be a colour written #rrggbb, got {colour!r}.")

    t = cfg.task
    if t.kind not in TASK_KINDS:
        raise StgeoError(f"task.kind {t.kind!r} does not apply to data.kind: patches; use task.kind: classify "
                         "(a class per pixel).")
    s = t.split
    if min(s.train, s.val, s.test) < 0 or s.train <= 0 or s.test <= 0 or abs(s.train + s.val + s.test - 1.0) > 1e-6:
        raise StgeoError(f"task.split fractions must be non-negative and sum to 1 (train and test > 0), got "
                         f"train={s.train}, val={s.val}, test={s.test}.")

    if isinstance(cfg.teacher, list) and not cfg.teacher:
        raise StgeoError("teacher is an empty list; give one model, or a list of models for an ensemble of teachers.")
    several = len(cfg.teachers) > 1
    checks = [(f"teacher[{i}]" if several else "teacher", m, TEACHERS) for i, m in enumerate(cfg.teachers)]
    for where, m, names in (*checks, ("student", cfg.student, STUDENTS)):
        if m.name not in names:
            raise StgeoError(f"{where}.name {m.name!r} is not a model for data.kind: patches. "
                             f"{did_you_mean(m.name, list(names))}")
        if m.head != "point":
            raise StgeoError(f"{where}.head must be point for data.kind: patches (it outputs class scores), "
                             f"got {m.head!r}.")
        if where.startswith("teacher") and not (math.isfinite(m.weight) and m.weight > 0):
            raise StgeoError(f"{where}.weight must be a positive number, got {m.weight}.")

    _validate_distill(cfg)

    tr = cfg.train
    if tr.epochs < 1 or (tr.student_epochs is not None and tr.student_epochs < 1):
        raise StgeoError("train.epochs and train.student_epochs must be at least 1.")
    if tr.batches_per_epoch is not None and tr.batches_per_epoch < 1:
        raise StgeoError(f"train.batches_per_epoch must be at least 1 (or null), got {tr.batches_per_epoch}.")
    for key, value in (("train.lr", tr.lr), ("train.student_lr", tr.student_lr)):
        if value is not None and not value > 0:
            raise StgeoError(f"{key} must be positive, got {value}.")
    if tr.weight_decay < 0:
        raise StgeoError(f"train.weight_decay must be 0 or more, got {tr.weight_decay}.")
    if tr.patience < 1:
        raise StgeoError(f"train.patience must be at least 1 epoch, got {tr.patience}.")


def _validate_distill(cfg: Any) -> None:
    """The student's loss terms: the classification terms of the toolbox (docs/distillation.md)."""
    from stgeo_kd.distill.objective import COMBINE, COMBINE_ON, parse_terms
    from stgeo_kd.distill.schedules import Schedule

    d = cfg.distill
    if d.combine not in COMBINE:
        raise StgeoError(f"distill.combine {d.combine!r} is unknown. {did_you_mean(d.combine, COMBINE)}")
    if d.combine_on not in COMBINE_ON:
        raise StgeoError(f"distill.combine_on {d.combine_on!r} is unknown. {did_you_mean(d.combine_on, COMBINE_ON)}")
    if d.online or d.mutual:
        raise StgeoError("distill.online and distill.mutual are not offered for data.kind: patches; the teacher is "
                         "trained first and then frozen.")
    alpha = Schedule.parse(d.alpha, "distill.alpha")
    for v in (alpha.start, alpha.end):
        if v is not None and not 0.0 <= v <= 1.0:
            raise StgeoError(f"distill.alpha must be between 0 and 1, got {v}.")
    temp = Schedule.parse(d.temperature, "distill.temperature")
    if temp.start <= 0 or (temp.end is not None and temp.end <= 0):
        raise StgeoError("distill.temperature must be positive.")
    specs = parse_terms(d.terms, "classify", d.loss, d.teacher_fills_missing)
    for spec in specs:
        if spec.term.name not in SUPPORTED_TERMS:
            raise StgeoError(f"distill.terms: {spec.term.name!r} cannot be used with data.kind: patches. Terms for "
                             f"land cover: {', '.join(SUPPORTED_TERMS)}.")
