"""What a model costs to keep and to run: parameters, bytes, MACs, latency, throughput."""

from __future__ import annotations

import statistics
import time

import torch


def parameter_count(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def size_bytes(model: torch.nn.Module) -> int:
    """Bytes of every tensor in the state dict (parameters and buffers, e.g. adjacency)."""
    return int(sum(t.numel() * t.element_size() for t in model.state_dict().values()))


@torch.inference_mode()
def count_macs(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (matmuls/convs, via FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(example)
    return int(counter.get_total_flops() // 2)


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, example: torch.Tensor, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall-clock milliseconds of one forward pass on ``example`` (on the CPU threads set)."""
    model.eval()
    for _ in range(warmup):
        model(example)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(example)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(times))


@torch.inference_mode()
def throughput(model: torch.nn.Module, batch: torch.Tensor, repeats: int = 10) -> float:
    """Samples per second: a sample is one whole-network window; median over ``repeats`` batches."""
    ms = latency_ms(model, batch, repeats=repeats, warmup=2)
    return float(batch.shape[0] / (ms / 1000.0))


def cost_summary(model: torch.nn.Module, example1: torch.Tensor, batch: torch.Tensor, repeats: int = 50) -> dict:
    """The cost fields of report.json for one model, measured the same way for every model."""
    return {
        "params": parameter_count(model),
        "size_bytes": size_bytes(model),
        "macs": count_macs(model, example1),
        "latency_ms_batch1": latency_ms(model, example1, repeats=repeats),
        "throughput_samples_per_s": throughput(model, batch),
        "threads": torch.get_num_threads(),
    }
