"""Baltimore house prices: GraphSAGE teacher vs distilled MLP student vs the same MLP from
scratch vs linear regression, over 3 seeds (each seed draws its own spatial block split and
initial weights).

Hyperparameters are chosen on the validation points only: every setting of a small grid runs
on every seed, and each model takes the setting with its lowest mean validation MAE (the
teacher and the scratch student over the loss (MAE or MSE) x ``train.weight_decay``, the distilled
student over those x ``distill.alpha``; it learns from the teacher trained with the same
setting). Test figures are then read from those runs, never used to choose.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/baltimore.py          # writes benchmarks/results/baltimore.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stgeo_kd.config import load_config
from stgeo_kd.spatial.pipeline import run_points

CONFIG = ROOT / "examples" / "baltimore_prices.yaml"
# "loss" sets train.loss (teacher, scratch) and distill.loss (the student's blended targets) alike
GRID = {"loss": ["mae", "mse"], "train.weight_decay": [1e-4, 1e-2], "distill.alpha": [0.5, 0.8]}
ROLES = ("teacher", "student", "student_scratch")
# what each role's choice ranges over (the others do not change that model)
CHOICE_KEYS = {"teacher": ("loss", "train.weight_decay"), "student_scratch": ("loss", "train.weight_decay"),
               "student": tuple(GRID)}


def one_run(setting: dict, seed: int) -> dict:
    overrides = [f"{k}={v}" for k, v in setting.items() if k != "loss"] + [
        f"train.loss={setting['loss']}", f"distill.loss={setting['loss']}",
        f"train.seed={seed}", "train.progress=false", "train.num_threads=1", "train.latency_repeats=20"]
    cfg = load_config(CONFIG, overrides)
    rep = run_points(cfg).report
    m = rep["models"]
    out = {role: {"val": m[role]["val_metrics"], "test": m[role]["metrics"],
                  **{k: m[role][k] for k in ("params", "size_bytes", "macs", "latency_ms_batch1", "train_seconds")}}
           for role in ROLES}
    out["linear_regression"] = {"val": m["baselines"]["linear_regression"]["val_metrics"],
                                "test": m["baselines"]["linear_regression"]["metrics"],
                                "params": m["baselines"]["linear_regression"]["params"]}
    out["split_points"] = rep["task"]["split"]["points"]
    return out


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "baltimore.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    settings = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    runs = {}
    for i, setting in enumerate(settings):
        for seed in args.seeds:
            runs[(i, seed)] = one_run(setting, seed)
        print(f"setting {i + 1}/{len(settings)} {setting}: val MAE "
              + ", ".join(f"{r} {statistics.fmean(runs[(i, s)][r]['val']['mae'] for s in args.seeds):.3f}" for r in ROLES),
              flush=True)

    def key_of(i: int, role: str) -> tuple:
        return tuple(settings[i][k] for k in CHOICE_KEYS[role])

    chosen, selection = {}, {}
    for role in ROLES:
        # settings that differ only in keys this role ignores give the same model: keep the first
        firsts = {}
        for i in range(len(settings)):
            firsts.setdefault(key_of(i, role), i)
        table = {str(dict(zip(CHOICE_KEYS[role], k))): statistics.fmean(runs[(i, s)][role]["val"]["mae"] for s in args.seeds)
                 for k, i in firsts.items()}
        best = min(firsts.values(), key=lambda i: statistics.fmean(runs[(i, s)][role]["val"]["mae"] for s in args.seeds))
        chosen[role] = best
        selection[role] = {"chosen": {k: settings[best][k] for k in CHOICE_KEYS[role]}, "mean_val_mae": table}

    summary, per_seed = {}, {}
    for role in (*ROLES, "linear_regression"):
        i = chosen.get(role, 0)
        rows = [runs[(i, s)][role] for s in args.seeds]
        per_seed[role] = {str(s): r["test"] for s, r in zip(args.seeds, rows)}
        summary[role] = {metric: mean_std([r["test"][metric] for r in rows]) for metric in ("mae", "rmse", "r2")}
        summary[role]["val_mae"] = mean_std([r["val"]["mae"] for r in rows])
        for k in ("params", "size_bytes", "macs"):
            if k in rows[0]:
                summary[role][k] = rows[0][k]
        if "latency_ms_batch1" in rows[0]:
            summary[role]["latency_ms_batch1"] = mean_std([r["latency_ms_batch1"] for r in rows])
    diffs = {metric: mean_std([runs[(chosen["student"], s)]["student"]["test"][metric]
                               - runs[(chosen["student_scratch"], s)]["student_scratch"]["test"][metric] for s in args.seeds])
             for metric in ("mae", "rmse", "r2")}
    result = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/baltimore.py",
        "config": str(CONFIG.relative_to(ROOT)),
        "seeds": args.seeds,
        "grid": GRID,
        "selection": selection,
        "test": summary,
        "test_per_seed": per_seed,
        "student_minus_scratch_test": diffs,
        "split_points_per_seed": {str(s): runs[(0, s)]["split_points"] for s in args.seeds},
        "wall_seconds": time.perf_counter() - t0,
        "torch_threads": 1,
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ntest on {len(args.seeds)} seeds (mean +- std), chosen on validation:")
    for role, s in summary.items():
        print(f"{role:<18} MAE {s['mae']['mean']:6.2f} +- {s['mae']['std']:5.2f}  RMSE {s['rmse']['mean']:6.2f} +- "
              f"{s['rmse']['std']:5.2f}  R2 {s['r2']['mean']:.3f} +- {s['r2']['std']:.3f}  params {s.get('params')}")
    print(f"student - scratch: MAE {diffs['mae']['mean']:+.2f} +- {diffs['mae']['std']:.2f}")
    print(f"wrote {args.out} in {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
