"""Station-style regression: an LSTM teacher distilled into a GRU student on the Hungarian
chickenpox counties (weekly cases, 20 counties, 2005-2014; Rozemberczki et al. 2021).

The data ships without coordinates, so the graph is built in Python and passed to
``stgeo_kd.run``; the report and the student's ONNX file are written, the map is skipped.

    python examples/chickenpox.py [DATA_FOLDER] [OUT_FOLDER]

DATA_FOLDER defaults to ../shared/data/chickenpox_hu (hungary_chickenpox.csv + chickenpox.json).
"""

from __future__ import annotations

import sys
from pathlib import Path

import stgeo_kd
from stgeo_kd.datasets import chickenpox_hungary

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "data": {"readings": "hungary_chickenpox.csv (read by stgeo_kd.datasets.chickenpox_hungary)"},
    "task": {"kind": "forecast", "history": 8, "horizons": [1, 2, 4], "split": {"train": 0.7, "val": 0.1, "test": 0.2}},
    "teacher": {"name": "lstm", "params": {"hidden": 64, "layers": 2, "dropout": 0.2}},
    "student": {"name": "gru", "params": {"hidden": 16, "layers": 1}},
    # the blend of teacher and labels, the objective that beat the scratch student in docs/benchmarks.md
    "distill": {"alpha": 0.5},
    "train": {"epochs": 100, "student_epochs": 100, "batch_size": 16, "lr": 0.002, "patience": 15},
}


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "chickenpox_hu"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "out" / "chickenpox"
    result = stgeo_kd.run(CONFIG, out_dir=out, graph=chickenpox_hungary(data))
    models = result.report["models"]
    for role in ("teacher", "student", "student_scratch"):
        m = models[role]
        print(f"{role:16s} MAE h1 {m['metrics']['h1']['mae']:.2f}  h4 {m['metrics']['h4']['mae']:.2f} cases/week, "
              f"{m['params']:,} parameters, {m['latency_ms_batch1']:.2f} ms")
    print(f"report: {(out / 'report.json').resolve()}")


if __name__ == "__main__":
    main()
