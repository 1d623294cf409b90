"""Export a student to ONNX and check it against the eager model with onnxruntime."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from stgeo_kd._atomic import write_bytes_atomic
from stgeo_kd.errors import StgeoError


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise StgeoError(
            f"ONNX export needs the optional package {module!r}. Install it with: pip install 'stgeo_kd[onnx]' "
            "(or set outputs.onnx: false)."
        ) from None


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | Path,
                dynamic_axes: tuple[dict, dict] | None = None) -> Path:
    """Write ``model`` as ONNX (opset 17, dynamic batch axis) to ``path``, atomically.

    Shapes:
        example: (B, T, N, 4) -> input ``window``; output ``forecast`` (B, H, N), scaled units.
        Raster models: (B, T, C, H, W) -> (B, K, H, W), with ``dynamic_axes`` naming the
        input's and output's variable axes (e.g. height and width too).
    """
    in_axes, out_axes = dynamic_axes or ({0: "batch"}, {0: "batch"})
    _require("onnx")
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buf,
            input_names=["window"],
            output_names=["forecast"],
            dynamic_axes={"window": in_axes, "forecast": out_axes},
            opset_version=17,
            dynamo=False,
        )
    return write_bytes_atomic(path, buf.getvalue())


def check_onnx(path: str | Path, model: torch.nn.Module, example: torch.Tensor) -> float:
    """Run the ONNX file with onnxruntime on ``example``; return the max abs difference to eager."""
    ort = _require("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"window": example.numpy()})[0]
    with torch.inference_mode():
        want = model(example).numpy()
    return float(np.max(np.abs(got - want)))
