"""Los-loop benchmark: the full pipeline for several seeds, summarised as mean +- std.

Runs ``stgeo_kd.run(examples/los_loop.yaml)`` once per seed (sequentially, so timings do not
compete), keeps each run's report.json under ``--out``, and writes a Markdown table and a JSON
summary to ``benchmarks/results/``. Accuracy figures are means (+- std) over seeds; latency
and its teacher/student ratio are medians over seeds of figures measured in the same run.

    python benchmarks/los_loop_seeds.py --seeds 0 1 2 --out out/bench_los_loop
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("teacher", "student", "student_scratch")


def summarise(reports: list[dict], config: str, command: str) -> tuple[str, dict]:
    hs = reports[0]["task"]["horizons"]
    keys = [f"h{k}" for k in hs] + [f"upto_h{k}" for k in hs]

    def stat(values):
        return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)

    rows = {}
    for role in ROLES + ("persistence", "historical_average"):
        get = (lambda r, role=role: r["models"][role]) if role in ROLES else (lambda r, role=role: r["models"]["baselines"][role])
        rows[role] = {
            k: {m: stat([get(r)["metrics"][k][m] for r in reports]) for m in ("mae", "rmse", "mape")} for k in keys
        }
    cost = {
        role: {
            "params": reports[0]["models"][role]["params"],
            "size_bytes": reports[0]["models"][role]["size_bytes"],
            "macs": reports[0]["models"][role]["macs"],
            "latency_ms_batch1_median": statistics.median(r["models"][role]["latency_ms_batch1"] for r in reports),
            "throughput_median": statistics.median(r["models"][role]["throughput_samples_per_s"] for r in reports),
            "train_seconds_mean": statistics.fmean(r["models"][role]["train_seconds"] for r in reports),
            "epochs": [r["models"][role]["epochs"] for r in reports],
        }
        for role in ROLES
    }
    speedup = statistics.median(r["comparison"]["latency_speedup_student_vs_teacher"] for r in reports)
    wall = [r.get("wall_seconds", float("nan")) for r in reports]

    units = reports[0]["task"].get("units", "")
    lines = [f"Config `{config}`, seeds {[r['config']['train']['seed'] for r in reports]}; command:", "", f"    {command}", ""]
    for metric in ("mae", "rmse"):
        lines.append(f"**{metric.upper()} ({units}), mean +- std over {len(reports)} seeds**")
        lines.append("")
        lines.append("| model | " + " | ".join(keys) + " |")
        lines.append("| --- |" + " --- |" * len(keys))
        for role, by_key in rows.items():
            cells = [f"{by_key[k][metric][0]:.3f} +- {by_key[k][metric][1]:.3f}" for k in keys]
            lines.append(f"| {role} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("**Cost** (latency: median over seeds of each run's median of batch-1 forwards, whole network, CPU)")
    lines.append("")
    lines.append("| model | params | bytes | MACs (batch 1) | latency ms | throughput windows/s | train s (mean) | epochs run |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for role, c in cost.items():
        lines.append(
            f"| {role} | {c['params']:,} | {c['size_bytes']:,} | {c['macs']:,} | {c['latency_ms_batch1_median']:.3f} | "
            f"{c['throughput_median']:.0f} | {c['train_seconds_mean']:.0f} | {c['epochs']} |"
        )
    lines.append("")
    lines.append(f"Student batch-1 speed-up over the teacher (median of per-run ratios): **{speedup:.1f}x**. "
                 f"Whole run wall time per seed: {', '.join(f'{w:.0f}' for w in wall)} s.")
    summary = {"config": config, "command": command, "metrics": rows, "cost": cost, "latency_speedup_median": speedup, "wall_seconds": wall}
    return "\n".join(lines), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "los_loop.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_los_loop"))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--name", default="los_loop")
    args = ap.parse_args()

    import stgeo_kd

    reports = []
    for seed in args.seeds:
        out = Path(args.out) / f"seed{seed}"
        t0 = time.perf_counter()
        stgeo_kd.run(args.config, out_dir=out, overrides=[f"train.seed={seed}", "train.progress=false", *args.overrides])
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s -> {out / 'report.json'}", flush=True)
        reports.append(json.loads((out / "report.json").read_text()))
    config = Path(args.config).resolve().relative_to(ROOT) if Path(args.config).resolve().is_relative_to(ROOT) else args.config
    command = "python benchmarks/los_loop_seeds.py --seeds " + " ".join(map(str, args.seeds)) + "".join(
        f" --set {o}" for o in args.overrides
    ) + (f" --config {config}" if str(config) != "examples/los_loop.yaml" else "") + (f" --name {args.name}" if args.name != "los_loop" else "")
    text, summary = summarise(reports, str(config), command)
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{args.name}.md").write_text(text + "\n")
    (res / f"{args.name}.json").write_text(json.dumps(summary, indent=2))
    print(text)


if __name__ == "__main__":
    main()
