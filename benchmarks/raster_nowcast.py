"""Raster nowcasting on real stacks: ST-CNN teacher vs distilled DS-CNN student vs the same
student without a teacher vs persistence, per lead time, with cost per 256 x 256 tile.

Each suite runs an example config end to end (`stgeo_kd.run`, exactly what
`stgeo-kd run CONFIG --out DIR` does) once per seed, keeps the run folder under
benchmarks/.cache/raster/ and appends the figures to benchmarks/results/raster_<suite>.json.

Suites:
  radar   examples/radar_melbourne.yaml (BoM Rainfields, Melbourne, 61 x 512 x 512, 6 min)
  era5    examples/era5_t2m_uk.yaml (ERA5 2 m temperature, UK, 744 x 33 x 49, hourly)

Run:
  python benchmarks/raster_nowcast.py radar era5 --seeds 0 1 2 --threads 1
  python benchmarks/raster_nowcast.py radar era5 --table     # markdown tables of the results
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache" / "raster"
SUITES = {"radar": ROOT / "examples" / "radar_melbourne.yaml", "era5": ROOT / "examples" / "era5_t2m_uk.yaml"}
ROLES = ("teacher", "student", "student_scratch")


def run_suite(suite: str, seed: int, threads: int | None) -> dict:
    import stgeo_kd

    sets = [f"train.seed={seed}", "train.progress=false"]
    if threads:
        sets.append(f"train.num_threads={threads}")
    out = CACHE / f"{suite}_seed{seed}"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stgeo_kd.run(SUITES[suite], out_dir=out, overrides=sets)
    rep = result.report
    keep = ("params", "size_bytes", "macs", "latency_ms_batch1", "throughput_mpix_per_s", "train_seconds",
            "epochs", "best_epoch")
    row = {
        "suite": suite, "seed": seed, "wall_seconds": time.perf_counter() - t0,
        "horizons": rep["task"]["horizons"], "horizon_minutes": rep["task"]["horizon_minutes"],
        "units": rep["task"]["units"], "dataset": rep["dataset"],
        "models": {r: {k: rep["models"][r][k] for k in keep} | {"mae": _mae(rep["models"][r])} for r in ROLES},
        "persistence": {"mae": _mae(rep["models"]["baselines"]["persistence"])},
        "beats_persistence": rep["comparison"]["beats_persistence"],
        "forecast_grid_equals_input": _grid_check(out / "forecast.tif", result.graph),
    }
    return row


def _mae(entry: dict) -> dict:
    return {k: v["mae"] for k, v in entry["metrics"].items() if k.startswith("h")}


def _grid_check(path: Path, stack) -> bool:
    import rasterio

    with rasterio.open(path) as src:
        return bool(src.crs == stack.crs and src.transform == stack.transform and src.shape == (stack.height, stack.width))


def _save(suite: str, row: dict) -> None:
    path = RESULTS / f"raster_{suite}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    runs = [r for r in runs if r["seed"] != row["seed"]] + [row]
    path.write_text(json.dumps({"runs": sorted(runs, key=lambda r: r["seed"])}, indent=2))


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(suite: str) -> str:
    runs = json.loads((RESULTS / f"raster_{suite}.json").read_text())["runs"]
    hs = runs[0]["horizons"]
    mins = runs[0]["horizon_minutes"]
    lines = ["| model | " + " | ".join(f"MAE +{m:g} min" for m in mins) + " | params | MACs / 256² tile | ms / tile | Mpx/s |",
             "|---" * (len(hs) + 5) + "|"]
    for role in (*ROLES, "persistence"):
        cells = []
        for k in hs:
            vals = [(r["models"][role] if role in r["models"] else r[role])["mae"][f"h{k}"] for r in runs]
            better = role != "persistence" and all(r["beats_persistence"][role][f"h{k}"] for r in runs)
            cells.append(_ms(vals) + (" ✓" if better else ""))
        if role == "persistence":
            lines.append(f"| {role} | " + " | ".join(cells) + " | | | | |")
            continue
        m = [r["models"][role] for r in runs]
        lat = statistics.median(x["latency_ms_batch1"] for x in m)
        mpx = statistics.median(x["throughput_mpix_per_s"] for x in m)
        lines.append(f"| {role} | " + " | ".join(cells) + f" | {m[0]['params']:,} | {m[0]['macs'] / 1e6:,.0f} M | {lat:.1f} | {mpx:.2f} |")
    ratio = [r["models"]["teacher"]["macs"] / r["models"]["student"]["macs"] for r in runs]
    seeds = [r["seed"] for r in runs]
    lines.append(f"\nSeeds {seeds} (mean ± sample std); ✓ = lower MAE than persistence in every seed. "
                 f"MAE in {runs[0]['units'] or 'data units'}. Teacher/student MACs: {ratio[0]:.1f}x. "
                 f"Forecast GeoTIFF grid equals the input's: {all(r['forecast_grid_equals_input'] for r in runs)}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="+", choices=sorted(SUITES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--table", action="store_true", help="print the markdown tables of saved results")
    args = ap.parse_args(argv)
    if args.table:
        for suite in args.suites:
            print(f"### {suite}\n\n{table(suite)}\n")
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suite in args.suites:
        for seed in args.seeds:
            row = run_suite(suite, seed, args.threads)
            _save(suite, row)
            print(f"{suite} seed {seed}: {row['wall_seconds']:.0f} s, student MAE {row['models']['student']['mae']}, "
                  f"persistence {row['persistence']['mae']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
