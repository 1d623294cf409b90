"""Train one model on Los-loop and print its best validation MAE: for choosing architectures
without touching the test split.

    python benchmarks/val_trial.py MODEL 'JSON_PARAMS' [key.path=value ...]

e.g. the trials quoted in docs/benchmarks.md:

    python benchmarks/val_trial.py graph_wavenet '{"dilations":[1,2,4,4],"graph_layers":[2],"output_graph_layers":2,"embedding_dim":16,"skip_channels":128,"end_channels":256}' train.epochs=30 train.max_minutes=20
    python benchmarks/val_trial.py graph_wavenet '{"dilations":[1,2,4,4],"graph_layers":[],"output_graph_layers":2,"embedding_dim":16,"skip_channels":128,"end_channels":256}' train.epochs=60 train.max_minutes=20
    python benchmarks/val_trial.py mlp '{"hidden":64,"layers":2,"node_dim":16,"time_dim":16}' train.epochs=150

Prints the best validation MAE in scaled units and in mph, and the per-epoch curve.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from stgeo_kd.config import load_config
from stgeo_kd.data.windows import ForecastData
from stgeo_kd.ingest.build import load_sensor_graph
from stgeo_kd.models import build_model
from stgeo_kd.training import fit

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    name, params = sys.argv[1], json.loads(sys.argv[2])
    cfg = load_config(ROOT / "examples" / "los_loop.yaml", ["train.progress=false", *sys.argv[3:]])
    graph = load_sensor_graph(cfg)
    t = cfg.task
    data = ForecastData(graph, t.history, max(t.horizons), t.split.train, t.split.val, t.split.test)
    torch.manual_seed(cfg.train.seed)
    model = build_model(
        name, params, num_nodes=graph.num_nodes, history=t.history, horizon=max(t.horizons),
        steps_per_day=data.steps_per_day, adjacency=graph.adjacency(),
    )
    r = fit(model, data, cfg.train, epochs=cfg.train.epochs, lr=cfg.train.lr, role=name)
    best = r["best_val"]
    print(json.dumps(params), "best val MAE (scaled)", best, "(mph)", best * data.scaler.std,
          "epochs", r["epochs"], "seconds", round(r["train_seconds"]))
    print([(h["epoch"], h.get("val_mae"), h["seconds"]) for h in r["history"]])


if __name__ == "__main__":
    main()
