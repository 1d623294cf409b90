"""Accuracy (masked metrics per horizon), cost (params, bytes, MACs, latency) and baselines."""
