"""The ``data.kind: points`` job: point layer -> kNN graph -> spatial block split -> GNN teacher
-> distilled MLP student (+ the same MLP from scratch, + linear regression) -> test metrics,
cost -> predictions GPKG, map, ONNX student, report.json.

:func:`stgeo_kd.pipeline.run` hands configs with ``data.kind: points`` to :func:`run_points`.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import torch
from torch import nn

from stgeo_kd._atomic import write_bytes_atomic, write_text_atomic
from stgeo_kd.distill.objective import Objective, parse_terms
from stgeo_kd.distill.schedules import Schedule
from stgeo_kd.errors import StgeoError
from stgeo_kd.evaluate.cost import count_macs, latency_ms, parameter_count, size_bytes
from stgeo_kd.spatial.graph import knn_graph
from stgeo_kd.spatial.models import BoundGraph, build_point_model
from stgeo_kd.spatial.points import PointSet, load_points
from stgeo_kd.spatial.split import BlockSplit, block_split
from stgeo_kd.spatial.training import (
    PointData,
    predict_points,
    train_point_model,
)
from stgeo_kd.training import seed_everything

ROLES = ("teacher", "student", "student_scratch")
BASELINES = ("linear_regression", "train_mean")


@dataclass
class PointsRunResult:
    """What :func:`run_points` returns (the fields the CLI and users read, as for sensor runs).

    Attributes:
        report: the content of report.json.
        predictions: GeoDataFrame, one row per point in the layer's CRS: ``split``, ``observed``,
            each model's and baseline's prediction and absolute error.
        points: the PointSet read; split: the BlockSplit; data: the model-ready tensors.
        models: ``teacher``, ``student``, ``student_scratch`` (torch modules in eval mode).
        artifacts: output name -> path of what was written (empty without ``out_dir``).
    """

    report: dict[str, Any]
    predictions: gpd.GeoDataFrame
    points: PointSet
    split: BlockSplit
    data: PointData
    models: dict[str, nn.Module]
    artifacts: dict[str, Path] = field(default_factory=dict)


def regression_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MAE, RMSE (data units) and R^2 (``1 - SSE / SST`` around the mean of ``truth``)."""
    err = pred - truth
    sst = float(((truth - truth.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(1.0 - (err**2).sum() / sst) if sst > 0 else float("nan"),
    }


def linear_regression(data: PointData) -> tuple[np.ndarray, int]:
    """Ordinary least squares on the standardised features of the training points (numpy
    ``lstsq``, with an intercept): (N,) predictions in the target's units and the number of
    coefficients."""
    train = data.idx["train"].numpy()
    x = np.column_stack([np.ones(data.num_points), data.x.double().numpy()])
    coef, *_ = np.linalg.lstsq(x[train], data.y.double().numpy()[train], rcond=None)
    return data.target.inverse(x @ coef), int(coef.size)


def run_points(cfg: Any, out_dir: str | Path | None = None, resume: bool = False) -> PointsRunResult:
    """Run the spatial-regression job of a ``data.kind: points`` RunConfig end to end.

    Args:
        cfg: a validated RunConfig.
        out_dir: folder for report.json, predictions.gpkg, map.html, student.onnx and weights;
            None keeps everything in memory.
        resume: accepted for the CLI's sake; point models train in seconds and keep no
            per-epoch checkpoints, so a resumed run starts afresh (with a warning).

    Raises:
        StgeoError: bad input files, config values or an unwritable output folder.
    """
    from stgeo_kd.pipeline import _check_out_dir

    t_start = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        _check_out_dir(out)
    if resume:
        warnings.warn("--resume has no effect for data.kind: points (no per-epoch checkpoints); the run starts afresh.",
                      stacklevel=2)
    tr, p = cfg.train, cfg.data.points
    if tr.num_threads:
        torch.set_num_threads(tr.num_threads)
    log = print if tr.progress else (lambda *a, **k: None)

    log("reading points ...", flush=True)
    points = load_points(cfg)
    edge_index, edge_dist = knn_graph(points.xy, p.k)
    s = cfg.task.split
    split_seed = tr.seed if p.split_seed is None else p.split_seed
    split = block_split(points.xy, p.block_size, (s.train, s.val, s.test), p.buffer, split_seed)
    data = PointData.build(points, split, edge_index)
    counts = split.counts()
    log(f"{points.name}: {points.num_points} points, {len(points.feature_names)} features, {edge_index.shape[1]} edges "
        f"(k={p.k}); blocks of {p.block_size:g} m: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)

    # build every model and the objective first, so a bad name or parameter fails before training
    n_feat = len(points.feature_names)
    t_cfg = cfg.teachers[0]
    models: dict[str, nn.Module] = {}
    for role, mcfg, seed in (("teacher", t_cfg, tr.seed), ("student", cfg.student, tr.seed),
                             ("student_scratch", cfg.student, tr.seed)):
        seed_everything(seed)  # the distilled and the scratch student start from the same weights
        models[role] = build_point_model(mcfg.name, mcfg.params, n_feat, "teacher" if role == "teacher" else "student")
    objective = _objective(cfg)

    s_epochs, s_lr = tr.student_epochs or tr.epochs, tr.student_lr or tr.lr
    common = {"weight_decay": tr.weight_decay, "patience": tr.patience, "batch_size": tr.batch_size, "seed": tr.seed,
              "loss": tr.loss, "max_minutes": tr.max_minutes, "progress": tr.progress}
    log("training ...", flush=True)
    fits = {
        "teacher": train_point_model(models["teacher"], data, epochs=tr.epochs, lr=tr.lr, role="teacher", **common),
    }
    fits["student"] = train_point_model(models["student"], data, epochs=s_epochs, lr=s_lr, objective=objective,
                                        teacher=models["teacher"], role="student (distilled)", **common)
    fits["student_scratch"] = train_point_model(models["student_scratch"], data, epochs=s_epochs, lr=s_lr,
                                                role="student_scratch (labels only)", **common)

    preds = {role: predict_points(m, data) for role, m in models.items()}
    preds["linear_regression"], n_coef = linear_regression(data)
    preds["train_mean"] = np.full(points.num_points, float(data.target.mean))
    test, val = split.indices("test"), split.indices("val")
    truth = points.target

    def metrics(role: str) -> dict[str, dict[str, float]]:
        out = {"metrics": regression_metrics(preds[role][test], truth[test])}
        if len(val):
            out["val_metrics"] = regression_metrics(preds[role][val], truth[val])
        return out

    model_reports: dict[str, Any] = {}
    for role, m in models.items():
        mcfg = t_cfg if role == "teacher" else cfg.student
        entry = {"name": mcfg.name, "params_config": mcfg.params, "head": mcfg.head}
        entry |= _cost(m, data, int(test[0]), tr.latency_repeats)
        entry |= {k: fits[role][k] for k in ("train_seconds", "epochs", "best_epoch")}
        entry["training_curve"] = fits[role]["history"]
        entry |= metrics(role)
        model_reports[role] = entry
    model_reports["baselines"] = {
        "linear_regression": {"params": n_coef, **metrics("linear_regression")},
        "train_mean": metrics("train_mean"),
    }

    report: dict[str, Any] = {
        "dataset": points.summary() | {"k": p.k, "edges": int(edge_index.shape[1]),
                                       "median_edge_m": float(np.median(edge_dist))},
        "task": {
            "kind": "regress",
            "target": points.target_name,
            "units": points.units,
            "split": {"method": "spatial_blocks", "train": s.train, "val": s.val, "test": s.test,
                      "block_size_m": p.block_size, "buffer_m": p.buffer, "seed": split_seed,
                      "points": counts, "blocks": split.block_counts()},
        },
        "models": model_reports,
        "distill": _distill_report(cfg, objective),
        "comparison": _comparison(model_reports),
        "artifacts": {},
        "versions": _versions(),
        "config": cfg.to_dict(),
    }
    predictions = _predictions_frame(points, split, preds, cfg.data.points.id_column)
    result = PointsRunResult(report=report, predictions=predictions, points=points, split=split, data=data,
                             models=models)
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


def _objective(cfg: Any) -> Objective:
    d = cfg.distill
    specs = parse_terms(d.terms, "forecast", d.loss, d.teacher_fills_missing)
    return Objective(specs, alpha=Schedule.parse(d.alpha, "distill.alpha"),
                     temperature=Schedule.parse(d.temperature, "distill.temperature"))


def _cost(model: nn.Module, data: PointData, point: int, repeats: int) -> dict[str, Any]:
    """Cost of predicting one point, measured alike for every model: an MLP reads one feature
    row; a graph model runs on that point's neighbourhood (as many hops as it has graph
    layers, the graph already built: the neighbour search is not counted). Throughput: every
    point in one pass (the whole graph for a graph model)."""
    if getattr(model, "uses_graph", False):
        from torch_geometric.utils import k_hop_subgraph

        hops = len(model.convs)
        subset, sub_edges, _, _ = k_hop_subgraph(point, hops, data.edge_index, relabel_nodes=True,
                                                 num_nodes=data.num_points)
        one, one_x = BoundGraph(model, sub_edges), data.x[subset]
        full = BoundGraph(model, data.edge_index)
        extra = {"neighbourhood_points_batch1": len(subset)}
    else:
        one, one_x, full, extra = model, data.x[point : point + 1], model, {}
    model.eval()
    ms_all = latency_ms(full, data.x, repeats=max(3, repeats // 5), warmup=2)
    return {
        "params": parameter_count(model),
        "size_bytes": size_bytes(model),
        "macs": count_macs(one, one_x),
        "latency_ms_batch1": latency_ms(one, one_x, repeats=repeats),
        "throughput_samples_per_s": data.num_points / (ms_all / 1000.0),
        "threads": torch.get_num_threads(),
    } | extra


def _comparison(m: dict[str, Any]) -> dict[str, Any]:
    t, s, c = m["teacher"], m["student"], m["student_scratch"]
    lr = m["baselines"]["linear_regression"]

    def pct(a, b):
        return 100.0 * (a - b) / b if b else None

    return {
        "latency_speedup_student_vs_teacher": t["latency_ms_batch1"] / max(s["latency_ms_batch1"], 1e-9),
        "param_ratio_teacher_to_student": t["params"] / max(s["params"], 1),
        "mac_ratio_teacher_to_student": t["macs"] / max(s["macs"], 1),
        "student_mae_vs_teacher_pct": pct(s["metrics"]["mae"], t["metrics"]["mae"]),
        "student_mae_vs_scratch_pct": pct(s["metrics"]["mae"], c["metrics"]["mae"]),
        "student_mae_vs_linear_regression_pct": pct(s["metrics"]["mae"], lr["metrics"]["mae"]),
        "student_r2_minus_scratch": s["metrics"]["r2"] - c["metrics"]["r2"],
    }


def _distill_report(cfg: Any, objective: Objective) -> dict[str, Any]:
    return objective.summary() | {
        "teachers": 1,
        "loss": cfg.distill.loss,
        "student_sees": "training points only (labels and the teacher's predictions there)",
    }


def _versions() -> dict[str, str]:
    from stgeo_kd.pipeline import _versions as versions

    out = versions()
    try:
        import libpysal

        out["libpysal"] = libpysal.__version__
    except ImportError:
        pass
    return out


def _predictions_frame(points: PointSet, split: BlockSplit, preds: dict[str, np.ndarray],
                       id_column: str | None) -> gpd.GeoDataFrame:
    frame: dict[str, Any] = {id_column or "point_id": points.ids, "split": split.labels, "block": split.block,
                             "observed": points.target}
    for role, p in preds.items():
        frame[role] = p
    for role, p in preds.items():
        frame[f"abserr_{role}"] = np.abs(p - points.target)
    return gpd.GeoDataFrame(frame, geometry=points.frame.geometry.to_numpy(), crs=points.frame.crs)


class DeployedStudent(nn.Module):
    """The student with its scalers built in, for export: raw features in, target units out.

    Shapes:
        features: (B, F) in the order of ``model_meta.json``'s ``features`` (coordinates in
        metres of its ``metric_crs``) -> prediction (B,) in the target's units.
    """

    def __init__(self, model: nn.Module, data: PointData):
        super().__init__()
        self.model = model
        f, t = data.features, data.target
        self.register_buffer("f_mean", torch.as_tensor(f.mean, dtype=torch.float32))
        self.register_buffer("f_std", torch.as_tensor(f.std, dtype=torch.float32))
        self.register_buffer("t_mean", torch.as_tensor(float(t.mean), dtype=torch.float32))
        self.register_buffer("t_std", torch.as_tensor(float(t.std), dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model((features - self.f_mean) / self.f_std) * self.t_std + self.t_mean


def export_student_onnx(result: PointsRunResult, path: Path) -> tuple[Path, float]:
    """Write the deployed student as ONNX (opset 17, dynamic batch) and check it with
    onnxruntime against eager on every point: returns the path and the max abs difference."""
    import io

    import onnxruntime as ort

    deployed = DeployedStudent(result.models["student"], result.data).eval()
    raw = torch.as_tensor(result.points.features, dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(deployed, (raw[:1],), buf, input_names=["features"], output_names=["prediction"],
                          dynamic_axes={"features": {0: "batch"}, "prediction": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    write_bytes_atomic(path, buf.getvalue())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"features": raw.numpy()})[0]
    with torch.inference_mode():
        want = deployed(raw).numpy()
    return path, float(np.max(np.abs(got - want)))


def _write_outputs(cfg: Any, out: Path, result: PointsRunResult) -> None:
    from stgeo_kd.pipeline import _save_weights

    report, arts, o = result.report, result.artifacts, cfg.outputs
    if o.gpkg:
        from stgeo_kd.export.vector import write_gpkg

        arts["gpkg"] = write_gpkg(result.predictions, out / "predictions.gpkg", layer="predictions")
    if o.map:
        from stgeo_kd.export.maps import save_map
        from stgeo_kd.spatial.maps import points_map

        m = points_map(result.predictions, ["student", "teacher", "student_scratch", "linear_regression"],
                       id_column=result.predictions.columns[0],
                       title=f"stgeo_kd: {result.points.name} ({result.points.target_name})", units=result.points.units)
        arts["map"] = save_map(m, out / "map.html")
    if o.onnx:
        if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
            warnings.warn("outputs.onnx: the onnx extra is not installed (pip install 'stgeo_kd[onnx]'); no student.onnx.",
                          stacklevel=2)
            report["artifacts_skipped"] = {"onnx": "the onnx extra is not installed"}
        else:
            arts["onnx"], diff = export_student_onnx(result, out / "student.onnx")
            report["models"]["student"]["onnx_max_abs_diff"] = diff
            scale = 1.0 + float(np.abs(result.points.target).max())
            if diff > 1e-5 * scale:
                raise StgeoError(f"ONNX export of the student differs from eager outputs by {diff:.2e}.")
    if o.checkpoints:
        for role, m in result.models.items():
            arts[f"weights_{role}"] = _save_weights(m, out / f"{role}.pt")
        d, pts = result.data, result.points
        meta = {
            "task": "regress",
            "target": pts.target_name,
            "units": pts.units,
            "features": pts.feature_names,
            "metric_crs": pts.metric_crs.to_wkt(),
            "feature_scaler": {"mean": d.features.mean.tolist(), "std": d.features.std.tolist()},
            "target_scaler": {"mean": float(d.target.mean), "std": float(d.target.std)},
            "teacher": {"name": cfg.teachers[0].name, "params": cfg.teachers[0].params, "k": cfg.data.points.k},
            "student": {"name": cfg.student.name, "params": cfg.student.params},
            "onnx": "student.onnx takes raw features in this order and returns the target in its units",
        }
        arts["model_meta"] = write_text_atomic(out / "model_meta.json", json.dumps(meta, indent=2))
    report["artifacts"] = {k: v.name for k, v in arts.items()}


def summary_text(report: dict[str, Any]) -> str:
    """A small text table of the test metrics and cost, for the CLI."""
    units = report["task"].get("units") or "data units"
    n_test = report["task"]["split"]["points"]["test"]
    lines = [f"test metrics on {n_test} held-out points (MAE and RMSE in {units}):",
             f"{'model':<20}{'MAE':>9}{'RMSE':>9}{'R^2':>8}{'params':>10}{'ms@1':>8}"]
    m = report["models"]
    for role in ROLES:
        e, x = m[role], m[role]["metrics"]
        lines.append(f"{role:<20}{x['mae']:>9.3f}{x['rmse']:>9.3f}{x['r2']:>8.3f}{e['params']:>10,}"
                     f"{e['latency_ms_batch1']:>8.2f}")
    for name, e in m["baselines"].items():
        x = e["metrics"]
        lines.append(f"{name:<20}{x['mae']:>9.3f}{x['rmse']:>9.3f}{x['r2']:>8.3f}")
    c = report["comparison"]
    lines.append(f"student is {c['latency_speedup_student_vs_teacher']:.1f}x faster than the teacher for one point "
                 f"with {c['param_ratio_teacher_to_student']:.1f}x fewer parameters")
    return "\n".join(lines)
