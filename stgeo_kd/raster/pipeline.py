"""The raster job: stack files -> RasterStack -> ST-CNN teacher -> distilled compact CNN ->
evaluation against persistence -> forecast GeoTIFF, map and report.json.

Called by :func:`stgeo_kd.pipeline.run` for ``data.kind: raster_stack``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stgeo_kd._atomic import write_text_atomic
from stgeo_kd.data.raster_windows import RasterForecastData
from stgeo_kd.distill.objective import objective_from_config
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.cost import count_macs, latency_ms, parameter_count, size_bytes
from stgeo_kd.evaluate.metrics import horizon_metrics
from stgeo_kd.models.raster import build_raster_model
from stgeo_kd.training import Teaching, seed_everything

#: cost figures are measured on one square tile of this many pixels per side
COST_TILE = 256


def run_raster(cfg, out: Path | None, *, resume: bool = False, callbacks=None, t_start: float | None = None):
    """Run the raster pipeline for a validated config; returns a :class:`RunResult`."""
    from stgeo_kd.ingest.rasters import check_frames, load_raster_stack
    from stgeo_kd.pipeline import (
        RunResult,
        _comparison,
        _distill_report,
        _jsonable,
        _log,
        _Stages,
        _teacher_roles,
        _versions,
    )
    from stgeo_kd.raster.tiling import receptive_radius

    t_start = time.perf_counter() if t_start is None else t_start
    task, tr = cfg.task, cfg.train
    _log(cfg, "reading raster stack ...")
    stack = load_raster_stack(cfg)
    observed = check_frames(stack)
    horizon = max(task.horizons)
    channels = 2 * len(stack.bands) + (2 if task.time_features else 0)
    target = task.target or stack.bands[0]
    if target not in stack.bands:
        raise StgeoError(f"task.target {target!r} is not a band of the stack; bands: {', '.join(stack.bands)}.")
    target_channel = stack.bands.index(target)

    def make(model_cfg, seed):
        seed_everything(seed)
        return build_raster_model(model_cfg.name, model_cfg.params, history=task.history, channels=channels,
                                  horizon=horizon, target_channel=target_channel)

    teacher_cfgs = cfg.teachers
    teachers = [make(m, tr.seed + k) for k, m in enumerate(teacher_cfgs)]
    student = make(cfg.student, tr.seed)
    scratch = make(cfg.student, tr.seed)
    peer = make(cfg.student, tr.seed + 1000) if cfg.distill.mutual else None
    objective = objective_from_config(cfg)
    halo = task.patches.halo
    if halo is None:
        probe_shape = (task.history, channels, 33, 33)
        halo = max(receptive_radius(m, probe_shape) for m in [*teachers, student])
    p = task.patches
    data = RasterForecastData(
        stack, task.history, horizon, task.split.train, task.split.val, task.split.test, target=target,
        patch=p.size, patches=p.count, margin=p.margin, eval_patch=p.eval_size, halo=halo,
        time_features=task.time_features, seed=tr.seed,
    )
    _log(cfg, f"{stack.name}: {stack.num_steps} frames of {stack.height}x{stack.width} px every "
              f"{stack.step_minutes or 0:g} min, bands {', '.join(stack.bands)}, "
              f"{100 * (1 - observed.mean()):.1f}% missing; samples "
              + ", ".join(f"{k} {len(s.starts)}" for k, s in data.splits.items()) + f"; halo {halo} px")

    s_epochs, s_lr = tr.student_epochs or tr.epochs, tr.student_lr or tr.lr
    roles = _teacher_roles(len(teachers))
    stages = _Stages(out / "checkpoints" if (out is not None and tr.checkpoints) else None, resume, cfg)
    extra = {"callbacks": callbacks or ()}
    fits = {}
    for role, teacher in zip(roles, teachers):
        fits[role] = stages.fit(role, teacher, data, tr, epochs=tr.epochs, lr=tr.lr, role=role, **extra)
    teaching = Teaching(teachers=teachers, online=cfg.distill.online, online_lr=cfg.distill.online_lr, peer=peer)
    fits["student"] = stages.fit("student", student, data, tr, epochs=s_epochs, lr=s_lr, objective=objective,
                                 teaching=teaching, role="student (distilled)", **extra)
    fits["student_scratch"] = stages.fit("student_scratch", scratch, data, tr, epochs=s_epochs, lr=s_lr,
                                         role="student_scratch (labels only)", **extra)
    models = dict(zip(roles, teachers)) | {"student": student, "student_scratch": scratch}

    _log(cfg, "evaluating on the test split ...")
    truth, last = data.frames_raw("test")
    # every model and persistence is scored on the same pixels: observed target, observed last frame
    mask = np.isfinite(truth) & np.isfinite(last)[:, None]
    preds = {role: test_frames(m, data) for role, m in models.items()}
    preds["persistence"] = np.repeat(last[:, None], horizon, axis=1)

    def score(pred):
        w, k = pred.shape[:2]
        return horizon_metrics(pred.reshape(w, k, -1), truth.reshape(w, k, -1), mask.reshape(w, k, -1), task.horizons)

    example = torch.zeros(1, task.history, channels, COST_TILE, COST_TILE)
    model_reports: dict[str, Any] = {}
    for role, m in models.items():
        mcfg = teacher_cfgs[roles.index(role)] if role in roles else cfg.student
        entry = {"name": mcfg.name, "params_config": mcfg.params}
        entry.update(raster_cost(m, example, repeats=max(3, min(tr.latency_repeats, 20))))
        entry.update({k: fits[role][k] for k in ("train_seconds", "epochs", "best_epoch")})
        entry["training_curve"] = fits[role]["history"]
        entry["metrics"] = score(preds[role])
        model_reports[role] = entry
    model_reports["baselines"] = {"persistence": {"metrics": score(preds["persistence"])}}
    comparison = _comparison(model_reports, task.horizons)
    pers = model_reports["baselines"]["persistence"]["metrics"]
    comparison["beats_persistence"] = {
        role: {f"h{k}": bool(model_reports[role]["metrics"][f"h{k}"]["mae"] < pers[f"h{k}"]["mae"]) for k in task.horizons}
        for role in models
    }
    step = stack.step_minutes or 0.0
    report: dict[str, Any] = {
        "dataset": {
            "name": stack.name, "kind": "raster_stack", "frames": stack.num_steps, "height": stack.height,
            "width": stack.width, "bands": stack.bands, "step_minutes": step, "crs": stack.crs.to_string(),
            "transform": list(stack.transform)[:6], "nodata": stack.nodata, "units": stack.units,
            "start": str(stack.times[0]), "end": str(stack.times[-1]),
            "missing_fraction": float(1 - observed.mean()),
        },
        "task": {
            "kind": "forecast", "target": target, "history": task.history, "horizons": list(task.horizons),
            "horizon_minutes": [k * step for k in task.horizons],
            "split": {"train": task.split.train, "val": task.split.val, "test": task.split.test},
            "windows": {k: len(s.windows) for k, s in data.splits.items()},
            "samples": {k: len(s.starts) for k, s in data.splits.items()},
            "patch": {"size": data.patch, "count": p.count, "margin": data.margin, "eval_size": data.eval_patch,
                      "halo": halo},
            "units": stack.units.get(target, ""),
            "metric_pixels": "test pixels with an observed target and an observed last input frame",
        },
        "models": model_reports,
        "distill": _distill_report(cfg, objective),
        "comparison": comparison,
        "artifacts": {},
        "versions": _versions(),
        "config": cfg.to_dict(),
    }
    result = RunResult(report=report, predictions=None, graph=stack, models=models, data=data)
    if out is not None:
        try:
            _write_outputs(cfg, out, result, preds, truth, last, callbacks)
        except StgeoError:
            for path in result.artifacts.values():
                Path(path).unlink(missing_ok=True)
            raise
    report["wall_seconds"] = time.perf_counter() - t_start
    if out is not None:
        result.artifacts["report"] = write_text_atomic(out / "report.json", json.dumps(_jsonable(report), indent=2))
        stages.clear()
    return result


@torch.inference_mode()
def test_frames(model: torch.nn.Module, data: RasterForecastData, split: str = "test") -> np.ndarray:
    """A model's forecasts for every window of a split as whole frames (windows, K, H, W), in
    data units (the evaluation tiles' cores, assembled)."""
    from stgeo_kd.training import _loader

    model.eval()
    outs = [model(x).numpy() for x, _, _, _ in _loader(data, split)]
    pred = np.concatenate(outs) if outs else np.zeros((0, data.horizon, *data.splits[split].size), np.float32)
    return data.scaler.inverse_band(data.assemble(split, pred), data.target_band)


def raster_cost(model: torch.nn.Module, example: torch.Tensor, repeats: int = 10) -> dict:
    """Cost fields for a raster model on one ``example`` tile (1, T, C, h, w): parameters, bytes,
    MACs, batch-1 latency and throughput in megapixels per second (batch of 4 tiles)."""
    pixels = example.shape[-1] * example.shape[-2]
    lat = latency_ms(model, example, repeats=repeats, warmup=2)
    batch = example.expand(4, *example.shape[1:]).contiguous()
    lat4 = latency_ms(model, batch, repeats=max(2, repeats // 2), warmup=1)
    return {
        "params": parameter_count(model),
        "size_bytes": size_bytes(model),
        "macs": count_macs(model, example),
        "cost_tile": f"{example.shape[-2]}x{example.shape[-1]}",
        "latency_ms_batch1": lat,
        "latency_ms_tile": lat,
        "throughput_samples_per_s": 4 * 1000.0 / lat4,
        "throughput_mpix_per_s": 4 * pixels / 1e6 / (lat4 / 1000.0),
    }


def _write_outputs(cfg, out: Path, result, preds, truth, last, callbacks) -> None:
    """forecast.tif (the student's forecast beyond the last frame), map.html, student.onnx,
    weights and model_meta.json."""
    from stgeo_kd.pipeline import _save_weights

    report, arts, data = result.report, result.artifacts, result.data
    stack, o = data.stack, cfg.outputs
    student = result.models["student"]
    if o.geotiff:
        # a callback may follow the tiled prediction too: optional raster_progress(fraction), raster_cancel()
        callbacks = list(callbacks or ())
        arts["geotiff"] = write_forecast_geotiff(
            student, data, out / "forecast.tif",
            progress=next((c.raster_progress for c in callbacks if hasattr(c, "raster_progress")), None),
            cancel=next((c.raster_cancel for c in callbacks if hasattr(c, "raster_cancel")), None))
        report["forecast"] = {"from_frames": [str(t) for t in stack.times[-data.history:]],
                              "times": [str(t) for t in data.forecast_times(stack.num_steps - data.history)]}
    if o.map:
        from stgeo_kd.export.maps import save_map

        arts["map"] = save_map(forecast_raster_map(data, preds, truth, report), out / "map.html")
    if o.onnx:
        from stgeo_kd.export.onnx import check_onnx, export_onnx

        x = data.sample("test", 0)[0].unsqueeze(0)
        axes = {0: "batch", 3: "height", 4: "width"}
        arts["onnx"] = export_onnx(student, x, out / "student.onnx", dynamic_axes=(axes, {0: "batch", 2: "height", 3: "width"}))
        diff = check_onnx(arts["onnx"], student, x)
        report["models"]["student"]["onnx_max_abs_diff"] = diff
        if diff > 1e-4:
            raise StgeoError(f"ONNX export of the student differs from eager outputs by {diff:.2e} (> 1e-4).")
    if o.checkpoints:
        for role, m in result.models.items():
            arts[f"weights_{role}"] = _save_weights(m, out / f"{role}.pt")
        meta = {
            "kind": "raster_stack",
            "student": {"name": cfg.student.name, "params": cfg.student.params},
            "teachers": [{"name": m.name, "params": m.params} for m in cfg.teachers],
            "history": data.history, "horizon": data.horizon, "channels": data.channels,
            "bands": stack.bands, "target": data.target, "time_features": data.time_features,
            "scaler": {"mean": data.scaler.mean.tolist(), "std": data.scaler.std.tolist()},
            "step_minutes": stack.step_minutes, "halo": report["task"]["patch"]["halo"],
        }
        arts["model_meta"] = write_text_atomic(out / "model_meta.json", json.dumps(meta, indent=2))
    report["artifacts"] = {k: Path(v).name for k, v in arts.items()}


def write_forecast_geotiff(model: torch.nn.Module, data: RasterForecastData, path: Path, *, tile: int = 256,
                           progress=None, cancel=None) -> Path:
    """The model's forecast of the K frames after the stack's last frame, predicted tile by
    tile from the stack (read window by window), as a COG on the stack's grid: one band per
    lead time, described by its timestamp, in data units; nodata where the target was never
    observed in the input frames."""
    from stgeo_kd.raster.tiling import predict_tiled

    stack = data.stack
    start = stack.num_steps - data.history
    times = np.arange(start, stack.num_steps)
    nodata = stack.nodata if stack.nodata is not None else float("nan")

    def read(row0, col0, h, w):
        return data.features(data.read(times, row0, col0, h, w), times)

    def postprocess(pred, window):
        values = data.scaler.inverse_band(pred, data.target_band)
        raw = data.read(times, int(window.row_off), int(window.col_off), int(window.height), int(window.width))
        seen = np.isfinite(raw[:, data.target_band]).any(axis=0)
        return np.where(seen[None], values, nodata).astype(np.float32)

    halo = data.halo
    tile = max(tile, 2 * halo + 64)
    labels = [f"{t:%Y-%m-%dT%H:%M:%S} (+{(k + 1) * (stack.step_minutes or 0):g} min)"
              for k, t in enumerate(data.forecast_times(start))]
    return predict_tiled(model, read, stack.height, stack.width, path, crs=stack.crs, transform=stack.transform,
                         nodata=nodata, band_descriptions=labels, tile=tile, halo=halo,
                         blend=min(16, halo) if halo else 0, postprocess=postprocess,
                         units=stack.units.get(data.target, "") or None, progress=progress, cancel=cancel)


def forecast_raster_map(data: RasterForecastData, preds: dict, truth: np.ndarray, report: dict):
    """Observed, teacher and student frames of the last test window, one layer per lead time."""
    from stgeo_kd.export.raster_maps import raster_map

    stack = data.stack
    k_last = len(data.splits["test"].windows) - 1
    start = int(data.splits["test"].windows[k_last])
    times = data.forecast_times(start)
    layers = []
    for k in report["task"]["horizons"]:
        label = f"{times[k - 1]:%Y-%m-%d %H:%M}"
        layers.append((f"observed {label}", truth[k_last, k - 1]))
        layers.append((f"student {label}", preds["student"][k_last, k - 1]))
        layers.append((f"teacher {label}", preds["teacher"][k_last, k - 1]))
    units = stack.units.get(data.target, "")
    values = np.concatenate([f[np.isfinite(f)].ravel() for _, f in layers])
    positive = values[values > 0]
    vmax = float(np.percentile(positive, 99)) if positive.size else None
    return raster_map(layers, stack.crs, stack.transform, title=f"stgeo_kd: {stack.name} ({data.target})",
                      variable=data.target, units=units, vmin=float(np.percentile(values, 1)), vmax=vmax,
                      transparent_below=1e-6 if values.min() >= 0 else None, shown=2)
