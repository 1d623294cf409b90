"""The whole job: files -> SensorGraph -> teacher -> distilled student -> evaluation -> outputs."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stgeo_kd._atomic import atomic_path, write_text_atomic
from stgeo_kd.config import RunConfig, config_from_dict, load_config
from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.data.windows import ClassifyData, ForecastData
from stgeo_kd.distill.objective import objective_from_config
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate import baselines
from stgeo_kd.evaluate.cost import cost_summary
from stgeo_kd.evaluate.metrics import (
    horizon_classification,
    horizon_metrics,
    per_node_mae,
)
from stgeo_kd.models import build_model
from stgeo_kd.training import Teaching, fit, predict, seed_everything


def task_data(graph: SensorGraph, task) -> ForecastData:
    """Windows, splits and scaler for ``task`` (a TaskConfig): ForecastData, or ClassifyData
    (with the task's class rule) for ``kind: classify``."""
    split = (task.split.train, task.split.val, task.split.test)
    horizon = max(task.horizons)
    if task.kind == "classify":
        c = task.classes
        return ClassifyData(graph, task.history, horizon, *split, rule=c.rule, thresholds=c.thresholds, band=c.band, names=c.names)
    return ForecastData(graph, task.history, horizon, *split)


def model_factory(graph: SensorGraph, data: ForecastData, task):
    """A function ``make(model_cfg, seed)`` that seeds torch and builds a model for this data."""
    adjacency = graph.adjacency()
    num_classes = data.num_classes if isinstance(data, ClassifyData) else None

    def make(model_cfg, seed: int) -> torch.nn.Module:
        seed_everything(seed)
        return build_model(
            model_cfg.name,
            model_cfg.params,
            num_nodes=graph.num_nodes,
            history=task.history,
            horizon=max(task.horizons),
            steps_per_day=data.steps_per_day,
            adjacency=adjacency,
            head=model_cfg.head,
            num_classes=num_classes,
        )

    return make


@dataclass
class RunResult:
    """What :func:`run` returns: the report, the per-sensor predictions and the trained models.

    Attributes:
        report: the content of report.json.
        predictions: GeoDataFrame, one point per sensor in the input CRS, with observed and
            forecast values at the last test time and test MAE per model.
        graph: the ingested SensorGraph.
        models: ``teacher``, ``student``, ``student_scratch`` (torch modules in eval mode).
        artifacts: output name -> path of what was written (empty without ``out_dir``).
    """

    report: dict[str, Any]
    predictions: Any
    graph: SensorGraph
    models: dict[str, torch.nn.Module]
    data: ForecastData
    artifacts: dict[str, Path] = field(default_factory=dict)


def _log(cfg: RunConfig, msg: str) -> None:
    if cfg.train.progress:
        print(msg, flush=True)


def _as_config(config: RunConfig | dict | str | Path, overrides: list[str] | None) -> RunConfig:
    if isinstance(config, RunConfig):
        if overrides:
            raise StgeoError("overrides can only be applied to a config file or dict, not a RunConfig object.")
        return config
    if isinstance(config, dict):
        from stgeo_kd.config import apply_overrides

        return config_from_dict(apply_overrides(dict(config), overrides))
    return load_config(config, overrides)


def _check_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".stgeo_kd_write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StgeoError(f"Output folder {out_dir} is not writable ({exc.strerror}). Choose another --out folder.") from None


def run(
    config: RunConfig | dict | str | Path,
    out_dir: str | Path | None = None,
    overrides: list[str] | None = None,
    graph: SensorGraph | None = None,
    resume: bool = False,
    callbacks: list | None = None,
) -> RunResult:
    """Run the traffic distillation pipeline end to end.

    Args:
        config: a YAML path, a mapping with the same keys, or a RunConfig.
        out_dir: folder for report.json, predictions.gpkg, map.html, student.onnx and weights;
            None keeps everything in memory (the returned RunResult).
        overrides: ``key.path=value`` strings applied to the config (like ``--set``).
        graph: an already-built SensorGraph (skips reading ``data`` files).
        resume: continue an interrupted run in the same ``out_dir``: finished models are
            loaded from ``out_dir/checkpoints`` and the unfinished one continues from its last
            epoch checkpoint. Without it, a run starts afresh.
        callbacks: extra Lightning callbacks given to every model's trainer, in training
            order (teachers, student, student_scratch): progress reports, or cancellation
            by raising an exception in a hook: it propagates before any output is written
            (the resumable ``checkpoints/`` of ``train.checkpoints`` stay, as after a crash).

    Returns:
        RunResult with the report dict and a GeoDataFrame of per-sensor predictions.

    Raises:
        StgeoError: bad input files, config values or an unwritable output folder.
    """
    t_start = time.perf_counter()
    cfg = _as_config(config, overrides)
    if cfg.data.kind == "points":  # spatial regression on a graph of locations: its own job (stgeo_kd.spatial)
        from stgeo_kd.spatial.pipeline import run_points

        return run_points(cfg, out_dir, resume=resume)
    if cfg.data.kind == "patches":  # land cover from a raster + labelled polygons: its own job (stgeo_kd.landcover)
        from stgeo_kd.landcover.pipeline import run_patches

        return run_patches(cfg, out_dir, resume=resume)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        _check_out_dir(out)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    if cfg.data.kind == "raster_stack":  # grids over time: stgeo_kd.raster
        from stgeo_kd.raster.pipeline import run_raster

        return run_raster(cfg, out, resume=resume, callbacks=callbacks, t_start=t_start)

    if graph is None:
        from stgeo_kd.ingest.build import load_sensor_graph

        _log(cfg, "reading data ...")
        graph = load_sensor_graph(cfg)
    task = cfg.task
    classify = task.kind == "classify"
    data = task_data(graph, task)
    _log(
        cfg,
        f"{graph.name}: {graph.num_nodes} sensors, {graph.num_steps} steps of {graph.step_minutes:g} min, "
        f"{graph.edge_index.shape[1]} edges, {100 * (1 - data.mask.mean()):.1f}% missing; windows "
        + ", ".join(f"{k} {len(s.starts)}" for k, s in data.splits.items()),
    )

    make = model_factory(graph, data, task)

    # build every model and the objective first, so a bad name or parameter fails before training
    tr = cfg.train
    teacher_cfgs = cfg.teachers
    teachers = [make(m, tr.seed + k) for k, m in enumerate(teacher_cfgs)]
    student = make(cfg.student, tr.seed)
    scratch = make(cfg.student, tr.seed)
    peer = make(cfg.student, tr.seed + 1000) if cfg.distill.mutual else None
    objective = objective_from_config(cfg)

    s_epochs = tr.student_epochs or tr.epochs
    s_lr = tr.student_lr or tr.lr
    roles = _teacher_roles(len(teachers))
    stages = _Stages(out / "checkpoints" if (out is not None and tr.checkpoints) else None, resume, cfg)
    fits = {}
    for role, teacher in zip(roles, teachers):
        fits[role] = stages.fit(role, teacher, data, tr, epochs=tr.epochs, lr=tr.lr, kind=task.kind, role=role,
                                callbacks=callbacks or ())
    teaching = Teaching(teachers=teachers, online=cfg.distill.online, online_lr=cfg.distill.online_lr, peer=peer)
    fits["student"] = stages.fit("student", student, data, tr, epochs=s_epochs, lr=s_lr, objective=objective,
                                 teaching=teaching, kind=task.kind, role="student (distilled)", callbacks=callbacks or ())
    fits["student_scratch"] = stages.fit("student_scratch", scratch, data, tr, epochs=s_epochs, lr=s_lr, kind=task.kind,
                                         role="student_scratch (labels only)", callbacks=callbacks or ())
    models = dict(zip(roles, teachers)) | {"student": student, "student_scratch": scratch}

    _log(cfg, "evaluating on the test split ...")
    test_x = data.window_inputs("test")
    base_raw = {"persistence": baselines.persistence(data, "test"), "historical_average": baselines.historical_average(data, "test")}
    if classify:
        truth, mask = data.window_labels("test")
        preds = {role: predict(m, test_x).argmax(-1).numpy() for role, m in models.items()}
        last = data.last_inputs(data.splits["test"].starts)
        base_preds = {name: data.classify_values(p, last) for name, p in base_raw.items()}

        def score(p):
            return horizon_classification(p, truth, mask, task.horizons, data.num_classes)
    else:
        truth, mask = data.window_targets_raw("test")
        preds = {role: data.scaler.inverse(predict(m, test_x).numpy()) for role, m in models.items()}
        base_preds = base_raw

        def score(p):
            return horizon_metrics(p, truth, mask, task.horizons)

    example1 = test_x[-1:].contiguous()
    batch = test_x[: min(64, len(test_x))].contiguous()
    model_reports: dict[str, Any] = {}
    for role, m in models.items():
        mcfg = teacher_cfgs[roles.index(role)] if role in roles else cfg.student
        entry = {"name": mcfg.name, "params_config": mcfg.params, "head": mcfg.head}
        entry.update(cost_summary(m, example1, batch, repeats=tr.latency_repeats))
        entry["train_seconds"] = fits[role]["train_seconds"]
        entry["epochs"] = fits[role]["epochs"]
        entry["best_epoch"] = fits[role]["best_epoch"]
        entry["training_curve"] = fits[role]["history"]
        entry["metrics"] = score(preds[role])
        model_reports[role] = entry
    model_reports["baselines"] = {name: {"metrics": score(p)} for name, p in base_preds.items()}

    if classify:
        names = np.asarray(data.class_names, dtype=object)
        predictions = _classes_frame(graph, data, preds | base_preds, truth, mask, task.horizons, names)
    else:
        predictions = _predictions_frame(graph, data, preds | base_preds, truth, mask, task.horizons)
    task_report = {
        "kind": task.kind,
        "history": task.history,
        "horizons": list(task.horizons),
        "horizon_minutes": [k * graph.step_minutes for k in task.horizons],
        "split": {"train": task.split.train, "val": task.split.val, "test": task.split.test},
        "windows": {k: len(s.starts) for k, s in data.splits.items()},
        "units": graph.units,
    }
    if classify:
        task_report["classes"] = {
            "rule": data.rule, "names": data.class_names, "thresholds": data.thresholds.tolist(), "band": data.band,
            "counts": {k: data.class_counts(k) for k in data.splits if len(data.splits[k].starts)},
        }
    report: dict[str, Any] = {
        "dataset": graph.summary() | {"name": graph.name},
        "task": task_report,
        "models": model_reports,
        "distill": _distill_report(cfg, objective),
        "comparison": _comparison(model_reports, task.horizons, classify),
        "artifacts": {},
        "versions": _versions(),
        "config": cfg.to_dict(),
    }
    result = RunResult(report=report, predictions=predictions, graph=graph, models=models, data=data)
    if out is not None:
        try:
            _write_outputs(cfg, out, result, test_x)
        except StgeoError:
            # a failed check (e.g. the ONNX comparison) must not leave a partial set of outputs
            for path in result.artifacts.values():
                Path(path).unlink(missing_ok=True)
            raise
    report["wall_seconds"] = time.perf_counter() - t_start
    if out is not None:
        result.artifacts["report"] = write_text_atomic(out / "report.json", json.dumps(_jsonable(report), indent=2))
        stages.clear()  # the run is complete: its resumable checkpoints are no longer needed
    return result


class _Stages:
    """Crash safety for the pipeline's training stages (teachers, student, scratch student).

    Each stage writes a resumable checkpoint after every epoch to ``checkpoints/<role>.ckpt``
    and, when finished, its best weights and summary to ``<role>.done.pt`` / ``.done.json``
    (atomically). With ``resume``, finished stages are loaded (``weights_only``) instead of
    trained and the interrupted one continues from its last epoch.
    """

    def __init__(self, folder: Path | None, resume: bool, cfg: RunConfig):
        self.folder, self.resume = folder, resume
        if folder is None:
            return
        fingerprint = json.dumps(_jsonable(cfg.to_dict() | {"outputs": None}), sort_keys=True)
        stamp = folder / "config.json"
        if resume and stamp.exists() and stamp.read_text() != fingerprint:
            raise StgeoError(
                f"--resume: the checkpoints in {folder} were made with a different config; run without --resume "
                "to start afresh, or resume with the original config."
            )
        if not resume and folder.exists():
            self.clear()
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stamp, fingerprint)

    def fit(self, key: str, model: torch.nn.Module, *args, **kwargs) -> dict:
        if self.folder is None:
            return fit(model, *args, **kwargs)
        done_w, done_j = self.folder / f"{key}.done.pt", self.folder / f"{key}.done.json"
        if self.resume and done_w.exists() and done_j.exists():
            from stgeo_kd.export.weights import load_weights

            load_weights(done_w, model)
            teaching = kwargs.get("teaching")
            for i, t in enumerate(teaching.teachers if teaching is not None and teaching.online else []):
                load_weights(self.folder / f"{key}.done.teacher{i}.pt", t)
            model.eval()
            return json.loads(done_j.read_text())
        summary = fit(model, *args, checkpoint=self.folder / f"{key}.ckpt", resume=self.resume, **kwargs)
        teaching = kwargs.get("teaching")
        for i, t in enumerate(teaching.teachers if teaching is not None and teaching.online else []):
            _save_weights(t, self.folder / f"{key}.done.teacher{i}.pt")
        _save_weights(model, done_w)
        write_text_atomic(done_j, json.dumps(_jsonable(summary)))
        return summary

    def clear(self) -> None:
        if self.folder is None or not self.folder.exists():
            return
        for p in self.folder.iterdir():
            if p.is_file():
                p.unlink()
        self.folder.rmdir()


def _frame_start(graph, data) -> dict:
    """The columns every per-sensor table starts with: id, name, forecast origin."""
    nodes = graph.nodes
    frame = {"sensor_id": nodes["sensor_id"].to_numpy()}
    if "name" in nodes.columns:
        frame["name"] = nodes["name"].to_numpy()
    origin = data.times[data.splits["test"].starts[-1] + data.history - 1]
    frame["forecast_origin"] = np.repeat(str(np.datetime_as_string(origin, unit="m")), graph.num_nodes)
    return frame


def _frame_end(graph, frame: dict):
    import geopandas as gpd

    return gpd.GeoDataFrame(frame, geometry=graph.nodes.geometry.to_numpy(), crs=graph.nodes.crs)


def _predictions_frame(graph, data, preds, truth, mask, horizons):
    """One row per sensor: forecasts at the last test window and test MAE per model."""
    frame = _frame_start(graph, data)
    for k in horizons:
        frame[f"observed_h{k}"] = np.where(mask[-1, k - 1], truth[-1, k - 1], np.nan)
        for role in ("teacher", "student"):
            frame[f"{role}_h{k}"] = preds[role][-1, k - 1]
    for role, p in preds.items():
        frame[f"mae_{role}"] = per_node_mae(p, truth, mask)
    frame["observed_fraction_test"] = mask.mean(axis=(0, 1))
    return _frame_end(graph, frame)


def _classes_frame(graph, data, preds, truth, mask, horizons, names):
    """One row per sensor: predicted classes at the last test window and test error rate
    (1 - accuracy) per model."""
    frame = _frame_start(graph, data)
    for k in horizons:
        frame[f"observed_h{k}"] = np.where(mask[-1, k - 1], names[np.clip(truth[-1, k - 1], 0, None)], None)
        for role in ("teacher", "student"):
            frame[f"{role}_h{k}"] = names[preds[role][-1, k - 1]]
    sel = [k - 1 for k in horizons]
    for role, p in preds.items():
        right = ((p[:, sel] == truth[:, sel]) & mask[:, sel]).sum(axis=(0, 1))
        count = mask[:, sel].sum(axis=(0, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"errorrate_{role}"] = np.where(count > 0, 1.0 - right / np.maximum(count, 1), np.nan)
    frame["labelled_fraction_test"] = mask[:, sel].mean(axis=(0, 1))
    return _frame_end(graph, frame)


def _teacher_roles(k: int) -> list[str]:
    return ["teacher"] + [f"teacher_{i + 1}" for i in range(1, k)]


def _distill_report(cfg: RunConfig, objective) -> dict:
    d = cfg.distill
    return objective.summary() | {
        "teachers": len(cfg.teachers),
        "combine": d.combine,
        "combine_on": d.combine_on,
        "online": d.online,
        "mutual": d.mutual,
        # kept from the first report layout: the default objective is this blend
        "method": "soft_targets_regression" if d.terms is None and cfg.task.kind == "forecast" else "terms",
        "loss": d.loss,
        "teacher_fills_missing": d.teacher_fills_missing,
    }


def _comparison(models: dict, horizons, classify: bool = False) -> dict:
    t, s, c = models["teacher"], models["student"], models["student_scratch"]
    out = {
        "latency_speedup_student_vs_teacher": t["latency_ms_batch1"] / max(s["latency_ms_batch1"], 1e-9),
        "param_ratio_teacher_to_student": t["params"] / max(s["params"], 1),
        "mac_ratio_teacher_to_student": t["macs"] / max(s["macs"], 1),
    }
    if classify:
        for metric in ("accuracy", "macro_f1"):
            out[f"student_{metric}_minus_teacher"] = {f"h{k}": s["metrics"][f"h{k}"][metric] - t["metrics"][f"h{k}"][metric] for k in horizons}
            out[f"student_{metric}_minus_scratch"] = {f"h{k}": s["metrics"][f"h{k}"][metric] - c["metrics"][f"h{k}"][metric] for k in horizons}
        return out
    out["student_mae_vs_teacher_pct"] = {}
    out["student_mae_vs_scratch_pct"] = {}
    for k in horizons:
        key = f"h{k}"
        tm, sm, cm = (m["metrics"][key]["mae"] for m in (t, s, c))
        out["student_mae_vs_teacher_pct"][key] = 100.0 * (sm - tm) / tm
        out["student_mae_vs_scratch_pct"][key] = 100.0 * (sm - cm) / cm
    return out


def _versions() -> dict:
    import stgeo_kd

    return {"stgeo_kd": stgeo_kd.__version__, "torch": torch.__version__, "python": platform.python_version()}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _save_weights(model: torch.nn.Module, path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return path


def _write_outputs(cfg: RunConfig, out: Path, result: RunResult, test_x: torch.Tensor) -> None:
    report, arts = result.report, result.artifacts
    o = cfg.outputs
    located = bool(result.predictions.geometry.notna().any())
    if not located and (o.gpkg or o.map):
        # e.g. a graph given without sensor locations: nothing to put on a map
        report["artifacts_skipped"] = {"gpkg": "no sensor locations", "map": "no sensor locations"}
    if o.gpkg and located:
        from stgeo_kd.export.vector import write_gpkg

        arts["gpkg"] = write_gpkg(result.predictions, out / "predictions.gpkg", layer="predictions")
    if o.map and located:
        from stgeo_kd.export.maps import forecast_map, save_map

        m = forecast_map(
            result.predictions,
            result.graph.roads,
            error_column="errorrate_student" if cfg.task.kind == "classify" else "mae_student",
            title=f"stgeo_kd: {result.graph.name}",
            units="" if cfg.task.kind == "classify" else result.graph.units,
            name_column="name" if "name" in result.predictions.columns else None,
        )
        arts["map"] = save_map(m, out / "map.html")
    if o.onnx:
        from stgeo_kd.export.onnx import check_onnx, export_onnx

        student = result.models["student"]
        arts["onnx"] = export_onnx(student, test_x[-1:].contiguous(), out / "student.onnx")
        diff = check_onnx(arts["onnx"], student, test_x[-8:].contiguous())
        report["models"]["student"]["onnx_max_abs_diff"] = diff
        if diff > 1e-4:
            raise StgeoError(f"ONNX export of the student differs from eager outputs by {diff:.2e} (> 1e-4).")
    if o.checkpoints:
        for role, m in result.models.items():
            arts[f"weights_{role}"] = _save_weights(m, out / f"{role}.pt")
        meta = {
            "task": cfg.task.kind,
            "student": {"name": cfg.student.name, "params": cfg.student.params, "head": cfg.student.head},
            "teachers": [{"name": m.name, "params": m.params, "head": m.head} for m in cfg.teachers],
            "num_nodes": result.graph.num_nodes,
            "history": cfg.task.history,
            "horizon": max(cfg.task.horizons),
            "steps_per_day": result.data.steps_per_day,
            "scaler": {"mean": result.data.scaler.mean, "std": result.data.scaler.std},
            "sensor_ids": result.graph.sensor_ids,
            "step_minutes": result.graph.step_minutes,
        }
        arts["model_meta"] = write_text_atomic(out / "model_meta.json", json.dumps(meta, indent=2))
    report["artifacts"] = {k: v.name for k, v in arts.items()}
