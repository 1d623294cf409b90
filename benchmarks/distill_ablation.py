"""Distillation ablation: every method, the same student and budget, several seeds.

For each data set and seed, the teacher(s) are trained once; then the same student
architecture is trained once per method (same epochs, learning rate, early stopping on the
validation split and initial weights) and scored on the test split. ``student_scratch`` (labels
only) is in every table. Nothing is tuned on the test split.

Suites:
  los_loop        Los-loop speeds (../shared/data/los_loop), Graph WaveNet teacher with a
                  Gaussian head -> MLP student, MAE per horizon (mph).
  los_loop_gnn    The same data, split and Graph WaveNet teacher (cached teachers are shared
                  with los_loop) -> a small GNN student (one diffusion hop over the road graph),
                  the methods that need only the Graph WaveNet teacher.
  chickenpox      Hungarian chickenpox counts (../shared/data/chickenpox_hu), LSTM teacher with a
                  Gaussian head -> GRU student (the classic station pairing), MAE per horizon.
  los_loop_cls    Los-loop congestion class in 30 minutes (speed < 40 / < 55 / >= 55 mph),
                  LSTM teacher -> MLP student, accuracy / macro-F1 / kappa.
  chickenpox_cls  Next week's trend (fall / flat / rise), LSTM teacher -> MLP student.

Run (results go to benchmarks/results/distill_<suite>.json, appended per finished seed):
  python benchmarks/distill_ablation.py los_loop --seeds 0 1 2
  python benchmarks/distill_ablation.py los_loop_gnn --seeds 0 1 2 --threads 1
  python benchmarks/distill_ablation.py chickenpox chickenpox_cls los_loop_cls --seeds 0 1 2
  python benchmarks/distill_ablation.py --table          # print the markdown tables
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stgeo_kd.config import config_from_dict, load_config
from stgeo_kd.distill.objective import objective_from_config
from stgeo_kd.evaluate.cost import latency_ms, parameter_count
from stgeo_kd.evaluate.metrics import horizon_classification, horizon_metrics
from stgeo_kd.pipeline import model_factory, task_data
from stgeo_kd.training import Teaching, fit, predict

SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"

REG_METHODS: dict[str, dict] = {
    "student_scratch": {},
    "blended_targets": {"alpha": 0.5},
    "soft_targets": {"alpha": 0.5, "terms": ["labels", "soft_targets"]},
    "error_weighted": {"alpha": 0.5, "terms": ["labels", "error_weighted"]},
    "gaussian_kl": {"alpha": 0.5, "terms": ["labels", "gaussian_kl"], "teachers": "GAUSSIAN"},
    "alpha_linear_0.9_to_0.1": {"alpha": {"kind": "linear", "start": 0.9, "end": 0.1}, "terms": ["labels", "soft_targets"]},
    "hint": {"alpha": 0.5, "terms": ["labels", "soft_targets", {"name": "hint", "weight": 1.0, "params": "HINT"}]},
    "relation": {"alpha": 0.5, "terms": ["labels", "soft_targets", {"name": "relation", "weight": 1.0, "params": "HINT"}]},
    "ensemble_mean": {"alpha": 0.5, "terms": ["labels", "soft_targets"], "combine": "mean", "teachers": "ALL"},
    "ensemble_uncertainty": {"alpha": 0.5, "terms": ["labels", "soft_targets"], "combine": "uncertainty", "teachers": "ALL"},
    "mutual_no_teacher": {"alpha": 0.5, "terms": ["labels", "peer"], "mutual": True, "teachers": []},
    "online": {"alpha": 0.5, "terms": ["labels", "soft_targets"], "online": True},
}
CLS_METHODS: dict[str, dict] = {
    "student_scratch": {},
    "hinton_T4": {"alpha": 0.5, "temperature": 4.0, "terms": ["labels", "hinton"]},
    "hinton_T_cosine_4_to_1": {"alpha": 0.5, "temperature": {"kind": "cosine", "start": 4.0, "end": 1.0}, "terms": ["labels", "hinton"]},
    "probability_mse": {"alpha": 0.5, "terms": ["labels", "probability_mse"]},
}


def suite_config(suite: str) -> tuple[dict, object, list[str], dict]:
    """Base config dict, graph, method names and per-suite settings."""
    if suite.startswith("los_loop"):
        from stgeo_kd.ingest.build import load_sensor_graph

        cfg = load_config(ROOT / "examples" / "los_loop.yaml")
        graph = load_sensor_graph(cfg)
        raw = cfg.to_dict()
        raw["data"]["readings"] = str(cfg.resolve(cfg.data.readings))
        raw["train"].update(epochs=25, student_epochs=40, patience=8, max_minutes=None, progress=False)
        if suite == "los_loop":
            gwn = raw["teacher"]
            lstm = {"name": "lstm", "params": {"hidden": 64, "layers": 2}, "head": "gaussian"}
            hint = {"student_layer": "body", "teacher_layer": "end1"}
            methods = [m for m in REG_METHODS if m != "online"]  # online retrains Graph WaveNet each step: too slow here
            return raw, graph, methods, {"teachers": [gwn, lstm], "gaussian": [1], "hint": hint}
        if suite == "los_loop_gnn":
            # Student size and budget chosen on validation MAE only (seed 0, scratch training with
            # benchmarks/val_trial.py; see docs/benchmarks.md): the default GNNStudent is well
            # behind the teacher there, so there is room to transfer. Teacher and all other
            # training settings as in los_loop, so that suite's cached teachers are reused
            # (the students' epoch budget is not part of the teacher's cache key).
            raw["student"] = {"name": "gnn", "params": {"hidden": 32, "node_dim": 8, "time_dim": 8, "dropout": 0.1}}
            raw["train"]["student_epochs"] = 100  # early stopping (patience 8) ended 17 of the 18 runs before this
            # the graph-aware layer (its output is added to the node encoding before the head)
            hint = {"student_layer": "mix", "teacher_layer": "end1"}
            # left out to fit a 2-hour, one-core budget: the LSTM teacher (gaussian_kl, ensembles)
            # is far worse than Graph WaveNet and costs ~15 min per seed; online retrains Graph
            # WaveNet at every step; error_weighted and mutual_no_teacher (the two slowest of the
            # rest per epoch) were both worse than scratch with the MLP student
            methods = ["student_scratch", "blended_targets", "soft_targets", "alpha_linear_0.9_to_0.1", "hint", "relation"]
            return raw, graph, methods, {"teachers": [raw["teacher"]], "hint": hint, "cache_as": "los_loop"}
        raw["task"].update(kind="classify", horizons=[6], classes={"rule": "thresholds", "thresholds": [40.0, 55.0],
                                                                  "names": ["congested", "slow", "free_flow"]})
        raw["teacher"] = {"name": "lstm", "params": {"hidden": 64, "layers": 2}}
        return raw, graph, list(CLS_METHODS), {}
    from stgeo_kd.datasets import chickenpox_hungary

    graph = chickenpox_hungary(SHARED / "chickenpox_hu")
    raw = {
        "data": {"readings": "unused: graph given in Python", "missing_values": []},
        "task": {"kind": "forecast", "history": 8, "horizons": [1, 2, 4], "split": {"train": 0.7, "val": 0.1, "test": 0.2}},
        "teacher": {"name": "lstm", "params": {"hidden": 64, "layers": 2, "dropout": 0.2}, "head": "gaussian"},
        "student": {"name": "gru", "params": {"hidden": 16, "layers": 1}},
        "train": {"epochs": 100, "student_epochs": 100, "batch_size": 16, "lr": 0.002, "patience": 15,
                  "progress": False, "loss": "mae"},
    }
    if suite == "chickenpox":
        gwn = {"name": "graph_wavenet", "params": {"channels": 32, "dilations": [1, 2, 4], "output_graph_layers": 2, "skip_channels": 64,
                                                  "end_channels": 64, "embedding_dim": 8}}
        lstm = {"name": "lstm", "params": {"hidden": 64, "layers": 2, "dropout": 0.2}}
        raw["teacher"] = lstm
        hint = {"student_layer": "readout", "teacher_layer": "readout"}
        return raw, graph, list(REG_METHODS), {"teachers": [lstm, gwn, dict(lstm, head="gaussian")], "gaussian": [2], "hint": hint}
    raw["task"].update(kind="classify", horizons=[1], classes={"rule": "trend", "band": 0.25})
    raw["teacher"] = {"name": "lstm", "params": {"hidden": 64, "layers": 2, "dropout": 0.2}}
    raw["student"] = {"name": "mlp", "params": {"hidden": 32, "layers": 1, "node_dim": 8, "time_dim": 2}}
    return raw, graph, list(CLS_METHODS), {}


def method_config(raw: dict, spec: dict, extra: dict):
    raw = copy.deepcopy(raw)
    spec = copy.deepcopy(spec)
    pool = extra.get("teachers", [raw["teacher"]])
    which = spec.pop("teachers", [0])  # indices into the suite's teacher pool, or ALL / GAUSSIAN
    if which == "ALL":
        which = list(range(len(pool)))
    elif which == "GAUSSIAN":
        which = extra.get("gaussian", [0])
    if which:
        raw["teacher"] = [pool[i] for i in which] if len(which) > 1 else pool[which[0]]
    for term in spec.get("terms", []):
        if isinstance(term, dict) and term.get("params") == "HINT":
            term["params"] = extra["hint"]
    raw["distill"] = spec
    return config_from_dict(raw), which


def run_seed(suite: str, seed: int, methods: list[str] | None) -> dict:
    raw, graph, all_methods, extra = suite_config(suite)
    raw["train"]["seed"] = seed
    methods = [m for m in (methods or all_methods) if m in all_methods]
    base = config_from_dict(raw)
    task = base.task
    classify = task.kind == "classify"
    data = task_data(graph, task)
    make = model_factory(graph, data, task)

    test_x = data.window_inputs("test")
    if classify:
        truth, mask = data.window_labels("test")

        def score(model):
            return horizon_classification(predict(model, test_x).argmax(-1).numpy(), truth, mask, task.horizons, data.num_classes)
    else:
        truth, mask = data.window_targets_raw("test")

        def score(model):
            return horizon_metrics(data.scaler.inverse(predict(model, test_x).numpy()), truth, mask, task.horizons)

    tr = base.train
    out = {"suite": suite, "seed": seed, "methods": {}, "teachers": {}}
    teachers: dict[int, torch.nn.Module] = {}

    def get_teacher(k: int, mcfg) -> torch.nn.Module:
        if k not in teachers:
            model = make(mcfg, seed + k)
            # trained teachers are kept (gitignored) so that re-running methods does not retrain them;
            # the file name holds a hash of everything that shapes the teacher (not the students'
            # epoch budget); suites with the same data and teacher pool share them ("cache_as")
            group = extra.get("cache_as", suite)
            shaping = {key: v for key, v in raw["train"].items() if key != "student_epochs"}
            key = hashlib.sha256(json.dumps([group, seed, k, mcfg.name, mcfg.params, mcfg.head, raw["task"], shaping],
                                            sort_keys=True, default=str).encode()).hexdigest()[:16]
            cached = CACHE / f"{group}_seed{seed}_teacher{k}_{key}.pt"
            if cached.exists():
                model.load_state_dict(torch.load(cached, weights_only=True))
                model.eval()
                f = json.loads(cached.with_suffix(".json").read_text())
            else:
                f = fit(model, data, tr, epochs=tr.epochs, lr=tr.lr, kind=task.kind, role=f"teacher {k}")
                CACHE.mkdir(parents=True, exist_ok=True)
                torch.save(model.state_dict(), cached.with_suffix(".tmp"))
                cached.with_suffix(".tmp").replace(cached)
                cached.with_suffix(".json").write_text(json.dumps({key: f[key] for key in ("train_seconds", "epochs", "best_val")}))
            teachers[k] = model
            out["teachers"][str(k)] = {"name": mcfg.name, "head": mcfg.head, "params": parameter_count(model),
                                        "train_seconds": f["train_seconds"], "epochs": f["epochs"], "best_val": f.get("best_val"),
                                        "metrics": score(model)}
            print(f"  teacher {k} ({mcfg.name}): {f['train_seconds']:.0f}s, {f['epochs']} epochs", flush=True)
        return teachers[k]

    for name in methods:
        t0 = time.perf_counter()
        cfg, which = method_config(raw, REG_METHODS.get(name) or CLS_METHODS.get(name) or {}, extra)
        student = make(cfg.student, seed)
        if name == "student_scratch":
            f = fit(student, data, tr, epochs=tr.student_epochs, lr=tr.lr, kind=task.kind, role=name)
        else:
            ts = [get_teacher(k, m) for k, m in zip(which, cfg.teachers)] if which else []
            if cfg.distill.online:  # the online teacher keeps training: start it from a copy
                ts = [copy.deepcopy(t) for t in ts]
            peer = make(cfg.student, seed + 1000) if cfg.distill.mutual else None
            teaching = Teaching(teachers=ts, online=cfg.distill.online, online_lr=cfg.distill.online_lr, peer=peer)
            f = fit(student, data, tr, epochs=tr.student_epochs, lr=tr.lr, objective=objective_from_config(cfg),
                    teaching=teaching, kind=task.kind, role=name)
        out["methods"][name] = {"metrics": score(student), "best_val": f["best_val"], "train_seconds": f["train_seconds"], "epochs": f["epochs"],
                                "best_epoch": f["best_epoch"]}
        print(f"  {name}: {time.perf_counter() - t0:.0f}s ({f['epochs']} epochs)", flush=True)
    ex = test_x[-1:].contiguous()
    student = make(base.student, seed)
    out["student_cost"] = {"name": base.student.name, "params": parameter_count(student), "latency_ms_batch1": latency_ms(student, ex, repeats=30)}
    if 0 in teachers:
        out["teacher_cost"] = {"params": parameter_count(teachers[0]), "latency_ms_batch1": latency_ms(teachers[0], ex, repeats=30)}
    return out


# ---------------------------------------------------------------------------------------------
# tables


def _fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    v = np.asarray(values, dtype=float) * scale
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def table(suite: str) -> str:
    path = RESULTS / f"distill_{suite}.json"
    if not path.exists():
        return f"(no results for {suite})"
    runs = json.loads(path.read_text())["runs"]
    seeds = sorted({r["seed"] for r in runs})
    first = runs[0]
    classify = "accuracy" in next(iter(first["methods"].values()))["metrics"]["all" if "all" in next(iter(first["methods"].values()))["metrics"] else next(iter(next(iter(first["methods"].values()))["metrics"]))]
    methods = list(first["methods"])
    keys = [k for k in next(iter(first["methods"].values()))["metrics"] if not k.startswith("upto") and k != "all"]
    rows = []

    def collect(name, key, metric):
        return [r["methods"][name]["metrics"][key][metric] for r in runs if name in r["methods"]]

    def teacher_vals(key, metric):
        return [r["teachers"]["0"]["metrics"][key][metric] for r in runs if "0" in r["teachers"]]

    if classify:
        key = keys[0]
        header = f"| method | accuracy ({key}) | macro-F1 | Cohen's kappa | vs scratch (F1) |\n|---|---|---|---|---|"
        scratch = np.asarray(collect("student_scratch", key, "macro_f1"))
        rows.append(f"| teacher ({first['teachers']['0']['name']}) | {_fmt(teacher_vals(key, 'accuracy'))} | "
                    f"{_fmt(teacher_vals(key, 'macro_f1'))} | {_fmt(teacher_vals(key, 'kappa'))} | |")
        for m in methods:
            f1 = np.asarray(collect(m, key, "macro_f1"))
            verdict = "" if m == "student_scratch" else _verdict(f1, scratch, higher_better=True)
            rows.append(f"| {m} | {_fmt(collect(m, key, 'accuracy'))} | {_fmt(f1)} | {_fmt(collect(m, key, 'kappa'))} | {verdict} |")
    else:
        header = ("| method | " + " | ".join(f"MAE {k}" for k in keys) + " | Δ vs scratch (" + " / ".join(keys) + ") |\n"
                  + "|---" * (len(keys) + 2) + "|")
        head = ", Gaussian head" if first["teachers"]["0"].get("head") == "gaussian" else ""
        rows.append(f"| teacher ({first['teachers']['0']['name']}{head}) | " + " | ".join(_fmt(teacher_vals(k, "mae")) for k in keys) + " | |")
        for m in methods:
            deltas = []
            for k in keys:
                scratch = np.asarray(collect("student_scratch", k, "mae"))
                deltas.append(_delta(np.asarray(collect(m, k, "mae")), scratch))
            cell = "" if m == "student_scratch" else " / ".join(deltas)
            rows.append(f"| {m} | " + " | ".join(_fmt(collect(m, k, "mae")) for k in keys) + f" | {cell} |")
    sc = first["student_cost"]
    tc = first.get("teacher_cost", {})
    lat_s = np.median([r["student_cost"]["latency_ms_batch1"] for r in runs])
    lat_t = np.median([r["teacher_cost"]["latency_ms_batch1"] for r in runs if "teacher_cost" in r]) if tc else float("nan")
    foot = (f"\nSeeds {seeds} (mean ± sample std over seeds). Student `{sc['name']}`: {sc['params']:,} parameters, "
            f"median batch-1 CPU latency {lat_s:.2f} ms; teacher: {tc.get('params', 0):,} parameters, {lat_t:.2f} ms.")
    return header + "\n" + "\n".join(rows) + foot


def _delta(values: np.ndarray, scratch: np.ndarray) -> str:
    """Mean MAE reduction against scratch; bold when larger than scratch's std over seeds."""
    if len(values) != len(scratch) or len(values) < 2:
        return "n/a"
    gain = float(np.mean(scratch - values))
    text = f"{gain:+.3f}"
    return f"**{text}**" if gain > float(np.std(scratch, ddof=1)) else text


def _verdict(values: np.ndarray, scratch: np.ndarray, higher_better: bool) -> str:
    if len(values) != len(scratch) or len(values) < 2:
        return "n/a"
    diff = (values - scratch) if higher_better else (scratch - values)
    mean = float(np.mean(diff))
    sd_scratch = float(np.std(scratch, ddof=1))
    if mean > sd_scratch and mean > 0:
        return f"**helps** ({mean:+.3f}, > 1 sd of scratch {sd_scratch:.3f})"
    if mean > 0:
        return f"slightly better ({mean:+.3f}, within 1 sd {sd_scratch:.3f})"
    return f"does not help ({mean:+.3f})"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="*", choices=["los_loop", "los_loop_gnn", "chickenpox", "los_loop_cls", "chickenpox_cls"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--table", action="store_true", help="print the markdown tables of the saved results")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.table:
        for suite in args.suites or ["los_loop", "los_loop_gnn", "chickenpox", "los_loop_cls", "chickenpox_cls"]:
            print(f"\n### {suite}\n\n{table(suite)}")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suite in args.suites:
        path = RESULTS / f"distill_{suite}.json"
        for seed in args.seeds:
            print(f"{suite} seed {seed}", flush=True)
            t0 = time.perf_counter()
            result = run_seed(suite, seed, args.methods)
            result["wall_seconds"] = time.perf_counter() - t0
            result["command"] = "python benchmarks/distill_ablation.py " + " ".join(sys.argv[1:] if argv is None else argv)
            result["torch_threads"] = torch.get_num_threads()
            # read again before writing: another process may have added other seeds meanwhile
            saved = json.loads(path.read_text()) if path.exists() else {"runs": []}
            saved["runs"] = sorted([r for r in saved["runs"] if r["seed"] != seed] + [result], key=lambda r: r["seed"])
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(saved, indent=1))
            tmp.replace(path)
            print(f"{suite} seed {seed} done in {result['wall_seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
