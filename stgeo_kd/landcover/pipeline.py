"""The ``data.kind: patches`` job: raster (time stack) + labelled polygons -> PatchSet ->
spatial block split with a buffer -> chip / temporal CNN teacher -> distilled small student
(+ the same student from scratch, + the majority class) -> test metrics, cost, saliency ->
class maps GeoTIFF, class polygons GPKG, map, confusion matrices PNG, ONNX student, report.json.

:func:`stgeo_kd.pipeline.run` hands configs with ``data.kind: patches`` to :func:`run_patches`.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stgeo_kd._atomic import atomic_path, write_bytes_atomic, write_text_atomic
from stgeo_kd.distill.objective import Objective, parse_terms
from stgeo_kd.distill.schedules import Schedule
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.cost import count_macs, latency_ms, parameter_count, size_bytes
from stgeo_kd.evaluate.metrics import classification_scores, confusion_matrix
from stgeo_kd.landcover.models import TeacherEnsemble, build_patch_model
from stgeo_kd.landcover.patches import PatchSet, load_patches
from stgeo_kd.landcover.split import PixelSplit, class_weights, pixel_block_split
from stgeo_kd.landcover.training import (
    PatchData,
    predict_scene,
    train_patch_model,
)
from stgeo_kd.training import seed_everything

ROLES = ("teacher", "student", "student_scratch")
BASELINES = ("majority_class",)


@dataclass
class PatchesRunResult:
    """What :func:`run_patches` returns.

    Attributes:
        report: the content of report.json.
        predictions: role -> (H, W) int64 class index per pixel (-1 where the raster has no
            input), for every model and baseline.
        patches: the PatchSet read; split: the PixelSplit; data: the model-ready tensors.
        models: ``teacher``, ``student``, ``student_scratch`` (torch modules in eval mode).
        saliency: role -> the maps of :func:`~stgeo_kd.landcover.saliency.input_gradcam`.
        artifacts: output name -> path of what was written (empty without ``out_dir``).
    """

    report: dict[str, Any]
    predictions: dict[str, np.ndarray]
    patches: PatchSet
    split: PixelSplit
    data: PatchData
    models: dict[str, nn.Module]
    saliency: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)


def class_metrics(pred: np.ndarray, truth: np.ndarray, names: list[str], codes: np.ndarray) -> dict[str, Any]:
    """Overall accuracy, macro-F1, Cohen's kappa (as :func:`~stgeo_kd.evaluate.metrics.classification_scores`),
    the confusion matrix (rows true, columns predicted) and per-class precision, recall and F1.
    A class with no pixel of this split has ``f1: null`` and ``note`` saying so."""
    k = len(names)
    s = classification_scores(pred, truth, np.ones(len(truth), dtype=bool), k)
    cm = confusion_matrix(pred, truth, k) if len(truth) else np.zeros((k, k), dtype=np.int64)
    per_class = []
    for i in range(k):
        tp, support, predicted = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
        entry = {"code": int(codes[i]), "name": names[i], "support": support, "predicted": predicted}
        if support == 0:
            entry |= {"precision": None, "recall": None, "f1": None,
                      "note": "no pixels of this class in this split" + (" (but predicted)" if predicted else "")}
        else:
            fp, fn = predicted - tp, support - tp
            entry |= {"precision": tp / predicted if predicted else 0.0, "recall": tp / support,
                      "f1": 2 * tp / (2 * tp + fp + fn)}
        per_class.append(entry)
    return {"overall_accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "kappa": s["kappa"], "pixels": s["count"],
            "per_class": per_class, "confusion_matrix": cm.tolist(),
            "classes_without_pixels": [names[i] for i in range(k) if cm[i].sum() == 0]}


def run_patches(cfg: Any, out_dir: str | Path | None = None, resume: bool = False) -> PatchesRunResult:
    """Run the land-cover job of a ``data.kind: patches`` RunConfig end to end.

    Args:
        cfg: a validated RunConfig.
        out_dir: folder for the outputs (see docs/landcover.md); None keeps everything in memory.
        resume: accepted for the CLI's sake; patch models train in a minute or two and keep no
            per-epoch checkpoints, so a resumed run starts afresh (with a warning).

    Raises:
        StgeoError: bad input files, config values, a split that leaves a class without
            training pixels, or an unwritable output folder.
    """
    from stgeo_kd.pipeline import _check_out_dir

    t_start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        _check_out_dir(out)
    if resume:
        warnings.warn("--resume has no effect for data.kind: patches (no per-epoch checkpoints); the run starts afresh.",
                      stacklevel=2)
    tr, p = cfg.train, cfg.data.patches
    if tr.num_threads:
        torch.set_num_threads(tr.num_threads)
    log = print if tr.progress else (lambda *a, **k: None)

    log("reading the raster and the label polygons ...", flush=True)
    patches = load_patches(cfg)
    c, k, b = patches.num_channels, patches.num_classes, len(patches.bands)

    # build every model and the objective first, so a bad name or parameter fails before training
    t_cfgs = cfg.teachers
    members = []
    for i, mcfg in enumerate(t_cfgs):  # teacher i starts from seed train.seed + i (an ensemble of seeds differs)
        seed_everything(tr.seed + i)
        members.append(build_patch_model(mcfg.name, mcfg.params, c, k, b, "teacher" if len(t_cfgs) == 1 else f"teacher[{i}]"))
    models: dict[str, nn.Module] = {}
    for role in ("student", "student_scratch"):
        seed_everything(tr.seed)  # the distilled and the scratch student start from the same weights
        models[role] = build_patch_model(cfg.student.name, cfg.student.params, c, k, b, "student")
    objective = _objective(cfg)
    radius = max(m.radius for m in [*members, *models.values()])
    buffer = radius if p.buffer is None else p.buffer
    if buffer < radius:
        raise StgeoError(f"data.patches.buffer is {buffer} px but the models read chips of radius {radius} px: training "
                         "chips would cover validation or test pixels. Set data.patches.buffer to at least "
                         f"{radius}, or leave it out (null) to use {radius}.")

    s = cfg.task.split
    split_seed = tr.seed if p.split_seed is None else p.split_seed
    split = pixel_block_split(patches.labels, p.block_size, (s.train, s.val, s.test), buffer, split_seed)
    train_counts = patches.class_counts(split.mask("train"))
    _check_train_classes(patches, split, train_counts, p, split_seed)
    weights = class_weights(train_counts, p.class_weights)
    data = PatchData.build(patches, split, weights, radius)
    counts = split.counts()
    log(f"{patches.name}: {patches.height} x {patches.width} px, {len(patches.times)} frames kept of "
        f"{len(patches.times) + len(patches.dropped)} (min_clear {p.min_clear:g}), {k} classes, "
        f"{int(patches.class_counts().sum())} labelled px; blocks of {p.block_size} px, buffer {buffer} px: "
        + ", ".join(f"{name} {v}" for name, v in counts.items()), flush=True)

    s_epochs, s_lr = tr.student_epochs or tr.epochs, tr.student_lr or tr.lr
    common = {"weight_decay": tr.weight_decay, "patience": tr.patience, "steps_per_epoch": tr.batches_per_epoch,
              "crop": p.crop, "augment": p.augment, "seed": tr.seed, "max_minutes": tr.max_minutes,
              "progress": tr.progress}
    log("training ...", flush=True)
    member_fits = []
    for i, (m, mcfg) in enumerate(zip(members, t_cfgs)):
        role = "teacher" if len(members) == 1 else f"teacher {i + 1}/{len(members)} ({mcfg.name})"
        member_fits.append(train_patch_model(m, data, epochs=tr.epochs, lr=tr.lr, role=role,
                                             **(common | {"seed": tr.seed + i})))
    if len(members) == 1:
        models = {"teacher": members[0], **models}
        fits = {"teacher": member_fits[0]}
    else:
        weights_t = [m.weight for m in t_cfgs] if cfg.distill.combine == "weighted" else None
        models = {"teacher": TeacherEnsemble(members, weights_t).eval(), **models}
        fits = {"teacher": {"train_seconds": sum(f["train_seconds"] for f in member_fits),
                            "epochs": [f["epochs"] for f in member_fits],
                            "best_epoch": [f["best_epoch"] for f in member_fits],
                            "steps_per_epoch": member_fits[0]["steps_per_epoch"],
                            "history": [f["history"] for f in member_fits]}}
    fits["student"] = train_patch_model(models["student"], data, epochs=s_epochs, lr=s_lr, objective=objective,
                                        teacher=models["teacher"], role="student (distilled)", **common)
    fits["student_scratch"] = train_patch_model(models["student_scratch"], data, epochs=s_epochs, lr=s_lr,
                                                role="student_scratch (labels only)", **common)

    log("evaluating on the test blocks ...", flush=True)
    preds: dict[str, np.ndarray] = {}
    for role, m in models.items():
        preds[role] = predict_scene(m, data).argmax(0).numpy().astype(np.int64)
    majority = int(np.argmax(train_counts))
    preds["majority_class"] = np.full(patches.labels.shape, majority, dtype=np.int64)
    preds = {role: np.where(patches.valid, p, -1) for role, p in preds.items()}

    def metrics(role: str, pred: np.ndarray | None = None) -> dict[str, Any]:
        pred = preds[role] if pred is None else pred
        entry = {}
        for key, name in (("metrics", "test"), ("val_metrics", "val")):
            mask = split.mask(name) & patches.valid
            if mask.any():
                entry[key] = class_metrics(pred[mask], patches.labels[mask], patches.names, patches.codes)
        return entry

    model_reports: dict[str, Any] = {}
    for role, m in models.items():
        if role == "teacher" and len(t_cfgs) > 1:
            entry = {"name": teacher_name(cfg), "params_config": [t.params for t in t_cfgs], "head": "point"}
        else:
            mcfg = t_cfgs[0] if role == "teacher" else cfg.student
            entry = {"name": mcfg.name, "params_config": mcfg.params, "head": mcfg.head}
        entry |= {"input": m.input_kind, "footprint_px": m.footprint()}
        entry |= _cost(m, data, tr.latency_repeats)
        entry |= {key: fits[role][key] for key in ("train_seconds", "epochs", "best_epoch", "steps_per_epoch")}
        entry["training_curve"] = fits[role]["history"]
        entry |= metrics(role)
        if role == "teacher" and len(members) > 1:
            entry["members"] = []
            for i, (mm, mcfg, f) in enumerate(zip(members, t_cfgs, member_fits)):
                pm = np.where(patches.valid, predict_scene(mm, data).argmax(0).numpy().astype(np.int64), -1)
                entry["members"].append({"name": mcfg.name, "params_config": mcfg.params, "seed": tr.seed + i,
                                         "params": parameter_count(mm), "footprint_px": mm.footprint(),
                                         "train_seconds": f["train_seconds"], "best_epoch": f["best_epoch"],
                                         **metrics("teacher", pm)})
        model_reports[role] = entry
    model_reports["baselines"] = {"majority_class": {"class": patches.names[majority], **metrics("majority_class")}}

    log("saliency (Grad-CAM-style, at the input) ...", flush=True)
    from stgeo_kd.landcover.saliency import input_gradcam

    saliency = {role: input_gradcam(models[role], data) for role in ("teacher", "student")}

    report: dict[str, Any] = {
        "dataset": patches.summary(),
        "task": {
            "kind": "classify",
            "data_kind": "patches",
            "classes": patches.names,
            "codes": [int(x) for x in patches.codes],
            "split": {"method": "spatial_blocks", "train": s.train, "val": s.val, "test": s.test,
                      "block_size_px": p.block_size, "buffer_px": buffer, "seed": split_seed,
                      "pixels": counts, "blocks": split.block_counts(),
                      "class_pixels": {name: patches.class_counts(split.mask(name)).tolist()
                                       for name in ("train", "val", "test", "buffer")}},
            "class_weights": {"kind": p.class_weights, "values": weights.tolist()},
            "augment": p.augment,
        },
        "models": model_reports,
        "distill": _distill_report(cfg, objective),
        "comparison": _comparison(model_reports),
        "saliency": {role: {"method": "Grad-CAM-style, at the input: positive gradient x input per location (docs/landcover.md)",
                            "mean_own_pixel_share": float(np.nanmean(v["own_pixel_share"])),
                            "per_time": {t.isoformat(): float(x) for t, x in zip(patches.times, v["per_time"])}}
                     for role, v in saliency.items()},
        "artifacts": {},
        "versions": _versions(),
        "config": cfg.to_dict(),
    }
    result = PatchesRunResult(report=report, predictions=preds, patches=patches, split=split, data=data, models=models,
                              saliency=saliency)
    if out is not None:
        try:
            _write_outputs(cfg, out, result)
        except StgeoError:
            for path in result.artifacts.values():
                Path(path).unlink(missing_ok=True)
            raise
    report["wall_seconds"] = time.perf_counter() - t_start
    if out is not None:
        from stgeo_kd.pipeline import _jsonable

        result.artifacts["report"] = write_text_atomic(out / "report.json", json.dumps(_jsonable(report), indent=2))
    return result


def _check_train_classes(patches: PatchSet, split: PixelSplit, train_counts: np.ndarray, p: Any, seed: int) -> None:
    missing = [i for i in range(patches.num_classes) if train_counts[i] == 0]
    if not missing:
        return
    total = patches.class_counts()
    where = {name: patches.class_counts(split.mask(name)) for name in ("val", "test", "buffer")}
    parts = [f"{patches.names[i]!r} (code {int(patches.codes[i])}: {int(total[i])} labelled px, "
             + ", ".join(f"{int(where[n][i])} in {n}" for n in where) + ")" for i in missing]
    raise StgeoError(
        f"No training pixel of class {', '.join(parts)} with blocks of {p.block_size} px, buffer "
        f"{split.buffer} px and split seed {seed}: a model cannot learn a class it never sees. Label more of it, "
        "try another data.patches.split_seed or a smaller data.patches.block_size, or list its code in "
        "data.patches.ignore_classes to leave it out.")


def _objective(cfg: Any) -> Objective:
    d = cfg.distill
    specs = parse_terms(d.terms, "classify", d.loss, d.teacher_fills_missing)
    return Objective(specs, alpha=Schedule.parse(d.alpha, "distill.alpha"),
                     temperature=Schedule.parse(d.temperature, "distill.temperature"),
                     combine=d.combine, combine_on=d.combine_on, teacher_weights=[t.weight for t in cfg.teachers])


def teacher_name(cfg: Any) -> str:
    """``resnet_chip``, or for several teachers ``ensemble(resnet_chip x 3)`` /
    ``ensemble(resnet_chip, temporal_cnn)``."""
    names = [t.name for t in cfg.teachers]
    if len(names) == 1:
        return names[0]
    if len(set(names)) == 1:
        return f"ensemble({names[0]} x {len(names)})"
    return f"ensemble({', '.join(names)})"


def _cost(model: nn.Module, data: PatchData, repeats: int) -> dict[str, Any]:
    """Cost of classifying one pixel, measured alike for every model: one chip of the model's
    own footprint (1 x 1 for a per-pixel model). Throughput: the whole scene in one pass."""
    model.eval()
    r = model.radius
    chip = data.chips(torch.tensor([data.height // 2]), torch.tensor([data.width // 2]), r).contiguous()
    scene = data.scene(r).contiguous()
    ms_scene = latency_ms(model, scene, repeats=max(3, repeats // 5), warmup=1)
    return {
        "params": parameter_count(model),
        "size_bytes": size_bytes(model),
        "macs": count_macs(model, chip),
        "latency_ms_batch1": latency_ms(model, chip, repeats=repeats),
        "scene_ms": ms_scene,
        "throughput_pixels_per_s": data.height * data.width / (ms_scene / 1000.0),
        "threads": torch.get_num_threads(),
    }


def _comparison(m: dict[str, Any]) -> dict[str, Any]:
    t, s, c = m["teacher"], m["student"], m["student_scratch"]
    maj = m["baselines"]["majority_class"]
    out = {
        "latency_speedup_student_vs_teacher": t["latency_ms_batch1"] / max(s["latency_ms_batch1"], 1e-9),
        "param_ratio_teacher_to_student": t["params"] / max(s["params"], 1),
        "mac_ratio_teacher_to_student": t["macs"] / max(s["macs"], 1),
    }
    if "metrics" in s:
        for metric in ("macro_f1", "kappa", "overall_accuracy"):
            out[f"student_minus_scratch_{metric}"] = s["metrics"][metric] - c["metrics"][metric]
            out[f"student_minus_teacher_{metric}"] = s["metrics"][metric] - t["metrics"][metric]
            out[f"student_minus_majority_{metric}"] = s["metrics"][metric] - maj["metrics"][metric]
    return out


def _distill_report(cfg: Any, objective: Objective) -> dict[str, Any]:
    return objective.summary() | {
        "teachers": len(cfg.teachers),
        "combine": cfg.distill.combine if len(cfg.teachers) > 1 else None,
        "combine_on": cfg.distill.combine_on if len(cfg.teachers) > 1 else None,
        "student_sees": "training blocks only: class-weighted labels of the training pixels, and the teacher's "
                        "soft targets on every training-block pixel with input outside the buffer (labelled or not)",
    }


def _versions() -> dict[str, str]:
    import rasterio

    from stgeo_kd.pipeline import _versions as versions

    return versions() | {"rasterio": rasterio.__version__}


# ---------------------------------------------------------------------------------------------
# outputs


def _code_dtype(codes: np.ndarray) -> tuple[str, int | None]:
    """GeoTIFF data type and nodata value for class codes (a colour table needs uint8/uint16)."""
    lo, hi = int(codes.min()), int(codes.max())
    if lo >= 0 and hi <= 254:
        return "uint8", (0 if 0 not in codes else 255)
    if lo >= 0 and hi <= 65534:
        return "uint16", (0 if 0 not in codes else 65535)
    return "int32", None


def write_class_geotiff(index: np.ndarray, patches: PatchSet, path: Path, description: str) -> Path:
    """(H, W) class indices (-1 = no input) as a GeoTIFF of class codes on the input grid, with a
    colour table and the class names as band tags (``class_<code>=<name>``)."""
    import rasterio

    dtype, nodata = _code_dtype(patches.codes)
    codes = patches.codes.astype(np.int64)
    fill = nodata if nodata is not None else np.iinfo(np.int32).min
    grid = np.where(index >= 0, codes[np.clip(index, 0, None)], fill).astype(dtype)
    profile = {"driver": "GTiff", "height": patches.height, "width": patches.width, "count": 1, "dtype": dtype,
               "crs": patches.crs, "transform": patches.transform, "nodata": nodata, "compress": "deflate"}
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(grid, 1)
        dst.set_band_description(1, description)
        dst.update_tags(1, **{f"class_{int(c)}": n for c, n in zip(codes, patches.names)})
        if dtype != "int32":
            dst.write_colormap(1, {int(c): tuple(int(col[i : i + 2], 16) for i in (1, 3, 5)) + (255,)
                                   for c, col in zip(codes, patches.colors)})
    return path


def write_saliency_geotiff(maps: dict[str, np.ndarray], patches: PatchSet, path: Path) -> Path:
    """Band 1 ``saliency``, band 2 ``own_pixel_share`` (float32, NaN where the raster has no
    input), on the input grid."""
    import rasterio

    bands = [np.where(patches.valid, maps[key], np.nan).astype(np.float32) for key in ("saliency", "own_pixel_share")]
    profile = {"driver": "GTiff", "height": patches.height, "width": patches.width, "count": 2, "dtype": "float32",
               "crs": patches.crs, "transform": patches.transform, "nodata": float("nan"), "compress": "deflate"}
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for i, (arr, name) in enumerate(zip(bands, ("saliency", "own_pixel_share")), start=1):
            dst.write(arr, i)
            dst.set_band_description(i, name)
    return path


def class_polygons(preds: dict[str, np.ndarray], patches: PatchSet, roles: tuple[str, ...]):
    """Polygons of connected pixels of one predicted class (4-connected), per model: a
    GeoDataFrame in the raster's CRS with ``model``, ``code``, ``class``, ``pixels``."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    rows = []
    res = abs(patches.transform.a * patches.transform.e)
    for role in roles:
        idx = preds[role].astype(np.int32)
        for geom, value in shapes(idx, mask=idx >= 0, transform=patches.transform, connectivity=4):
            g = shape(geom)
            v = int(value)
            rows.append({"model": role, "code": int(patches.codes[v]), "class": patches.names[v],
                         "pixels": round(g.area / res), "geometry": g})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=patches.crs)


class DeployedStudent(nn.Module):
    """The student with its standardisation built in, for export: gap-filled values in, class
    scores out.

    Shapes:
        chips: (B, C, 2r + 1, 2r + 1) in the channel order of ``model_meta.json``'s
        ``channels`` (1 x 1 for a per-pixel student) -> logits (B, K).
    """

    def __init__(self, model: nn.Module, data: PatchData):
        super().__init__()
        self.model = model
        t = data.x.shape[0] // data.bands
        self.register_buffer("mean", torch.as_tensor(np.tile(data.mean, t), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(np.tile(data.std, t), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        return self.model((chips - self.mean) / self.std)[:, :, 0, 0]


def export_student_onnx(result: PatchesRunResult, path: Path) -> tuple[Path, float]:
    """Write the deployed student as ONNX (opset 17, dynamic batch) and check it with
    onnxruntime against eager on 256 chips: returns the path and the max abs difference."""
    import io

    import onnxruntime as ort

    data = result.data
    deployed = DeployedStudent(result.models["student"], data).eval()
    r = deployed.model.radius
    g = torch.Generator().manual_seed(0)
    rows, cols = torch.randint(data.height, (256,), generator=g), torch.randint(data.width, (256,), generator=g)
    t = data.x.shape[0] // data.bands
    mean = torch.as_tensor(np.tile(data.mean, t), dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(np.tile(data.std, t), dtype=torch.float32).view(1, -1, 1, 1)
    raw = (data.chips(rows, cols, r) * std + mean).contiguous()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(deployed, (raw[:1],), buf, input_names=["chips"], output_names=["logits"],
                          dynamic_axes={"chips": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    write_bytes_atomic(path, buf.getvalue())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"chips": raw.numpy()})[0]
    with torch.inference_mode():
        want = deployed(raw).numpy()
    return path, float(np.max(np.abs(got - want)))


def _write_outputs(cfg: Any, out: Path, result: PatchesRunResult) -> None:
    from stgeo_kd.pipeline import _save_weights

    report, arts, o, pt = result.report, result.artifacts, cfg.outputs, result.patches
    if o.geotiff:
        arts["geotiff"] = write_class_geotiff(result.predictions["student"], pt, out / "class_map_student.tif",
                                              f"class code predicted by the student ({cfg.student.name})")
        arts["geotiff_teacher"] = write_class_geotiff(result.predictions["teacher"], pt, out / "class_map_teacher.tif",
                                                      f"class code predicted by the teacher ({teacher_name(cfg)})")
        for role, maps in result.saliency.items():
            arts[f"saliency_{role}"] = write_saliency_geotiff(maps, pt, out / f"saliency_{role}.tif")
    if o.gpkg:
        from stgeo_kd.export.vector import write_gpkg

        arts["gpkg"] = write_gpkg(class_polygons(result.predictions, pt, ("student", "teacher")),
                                  out / "class_polygons.gpkg", layer="classes")
    if o.map:
        from stgeo_kd.export.maps import save_map
        from stgeo_kd.landcover.maps import class_map

        layers = [(f"Student ({cfg.student.name}): predicted classes", result.predictions["student"]),
                  (f"Teacher ({teacher_name(cfg)}): predicted classes", result.predictions["teacher"]),
                  ("Labels (rasterised polygons)", pt.labels)]
        m = class_map(layers, pt.names, pt.colors, pt.crs, pt.transform, split=result.split.labels,
                      title=f"stgeo_kd: {pt.name} land cover")
        arts["map"] = save_map(m, out / "map.html")
    if "metrics" in report["models"]["student"]:
        from stgeo_kd.landcover.png import confusion_png

        panels = [(f"{role} (test, {report['models'][role]['name']})", report["models"][role]["metrics"]["confusion_matrix"])
                  for role in ROLES]
        arts["confusion_png"] = confusion_png(panels, pt.names, out / "confusion_matrix.png")
    if o.onnx:
        if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
            warnings.warn("outputs.onnx: the onnx extra is not installed (pip install 'stgeo_kd[onnx]'); no student.onnx.",
                          stacklevel=2)
            report["artifacts_skipped"] = {"onnx": "the onnx extra is not installed"}
        else:
            arts["onnx"], diff = export_student_onnx(result, out / "student.onnx")
            report["models"]["student"]["onnx_max_abs_diff"] = diff
            if diff > 1e-3:
                raise StgeoError(f"ONNX export of the student differs from eager outputs by {diff:.2e}.")
    if o.checkpoints:
        for role, m in result.models.items():
            arts[f"weights_{role}"] = _save_weights(m, out / f"{role}.pt")
        d = result.data
        meta = {
            "task": "classify",
            "data_kind": "patches",
            "classes": [{"index": i, "code": int(c), "name": n, "color": col}
                        for i, (c, n, col) in enumerate(zip(pt.codes, pt.names, pt.colors))],
            "channels": pt.channel_names,
            "bands": pt.bands,
            "band_scaler": {"mean": d.mean.tolist(), "std": d.std.tolist()},
            "gap_filling": "linear in time per pixel, nearest observation at the ends (see docs/landcover.md)",
            "crs": str(pt.crs),
            "transform": list(pt.transform)[:6],
            "teacher": {"name": teacher_name(cfg), "params": [t.params for t in cfg.teachers] if len(cfg.teachers) > 1
                        else cfg.teachers[0].params,
                        "footprint_px": result.models["teacher"].footprint()},
            "student": {"name": cfg.student.name, "params": cfg.student.params,
                        "footprint_px": result.models["student"].footprint()},
            "onnx": "student.onnx takes gap-filled chips (B, C, f, f) of raw values in the order of 'channels' "
                    "(f = the student's footprint) and returns class scores (B, K) in the order of 'classes'",
        }
        arts["model_meta"] = write_text_atomic(out / "model_meta.json", json.dumps(meta, indent=2))
    report["artifacts"] = {key: v.name for key, v in arts.items()}


def summary_text(report: dict[str, Any]) -> str:
    """A small text table of the test metrics and cost, for the CLI."""
    split = report["task"]["split"]
    lines = [(f"test metrics on {split['pixels']['test']} held-out pixels ({split['blocks']['test']} blocks of "
              f"{split['block_size_px']} px):"),
             f"{'model':<20}{'OA':>8}{'macro-F1':>10}{'kappa':>8}{'params':>10}{'ms@1':>8}"]
    m = report["models"]
    rows = [(role, m[role]) for role in ROLES] + list(m["baselines"].items())
    for role, e in rows:
        x = e.get("metrics")
        if x is None:
            lines.append(f"{role:<20}{'(no test pixels)':>26}")
            continue
        cost = f"{e['params']:>10,}{e['latency_ms_batch1']:>8.2f}" if "params" in e else ""
        lines.append(f"{role:<20}{x['overall_accuracy']:>8.3f}{x['macro_f1']:>10.3f}{x['kappa']:>8.3f}{cost}")
    missing = m["student"].get("metrics", {}).get("classes_without_pixels", [])
    if missing:
        lines.append(f"classes without test pixels (F1 not defined): {', '.join(missing)}")
    c = report["comparison"]
    lines.append(f"student is {c['latency_speedup_student_vs_teacher']:.1f}x faster than the teacher for one pixel "
                 f"with {c['param_ratio_teacher_to_student']:.1f}x fewer parameters")
    return "\n".join(lines)
