"""Load saved model weights without running anything stored in the file.

Weights files are state dicts (parameter name -> tensor), as the pipeline writes them
(``torch.save(model.state_dict(), path)``):

- ``.pt`` / ``.pth`` / ``.bin`` (any suffix other than ``.safetensors``) are read with
  ``torch.load(path, weights_only=True, map_location="cpu")``. PyTorch then uses a restricted
  unpickler that builds tensors and plain containers only, so a file planted with a pickle that
  would run code when opened (a ``__reduce__`` calling ``os.system``, say) is refused before
  anything runs. Nothing in stgeo_kd calls ``torch.load`` without ``weights_only=True`` or
  ``pickle.load`` (tests/bad_inputs/test_security.py checks the sources).
- ``.safetensors`` files hold raw tensors and a JSON header, nothing executable; they are read
  with the ``safetensors`` package when it is installed (``pip install safetensors``).

Typical use::

    model = build_model(meta["student"]["name"], meta["student"]["params"], ...)
    load_weights("out/city/student.pt", model)
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from stgeo_kd.errors import StgeoError

__all__ = ["load_state_dict", "load_weights"]


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict (name -> tensor, on the CPU) from a weights file, safely.

    Raises:
        StgeoError: the file is missing or empty; holds Python objects other than tensors and
            plain containers (refused, never run); is damaged; or is not a state dict.
    """
    path = Path(path)
    if not path.exists():
        raise StgeoError(f"Weights file {path} not found. Check the path (relative paths start at {Path.cwd()}).")
    if not path.is_file():
        raise StgeoError(f"Weights file {path} is a folder; give the .pt or .safetensors file inside it.")
    if path.stat().st_size == 0:
        raise StgeoError(f"Weights file {path} is empty (0 bytes); save the weights again.")
    if path.suffix.lower() == ".safetensors":
        state = _load_safetensors(path)
    else:
        state = _load_torch(path)
    if not isinstance(state, Mapping) or not state:
        raise StgeoError(
            f"{path} does not hold a state dict (parameter names -> tensors) but a {type(state).__name__}; save "
            "the weights with torch.save(model.state_dict(), path)."
        )
    bad = [str(k) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise StgeoError(
            f"{path} is not a state dict: entries {bad[:5]} are not named tensors; save the weights with "
            "torch.save(model.state_dict(), path)."
        )
    return dict(state)


def load_weights(path: str | os.PathLike[str], model: torch.nn.Module) -> torch.nn.Module:
    """Load the weights in ``path`` into ``model`` (every parameter must match) and return it.

    Raises:
        StgeoError: the file is refused or unreadable (see :func:`load_state_dict`), or its
            parameters do not fit ``model`` (other model, settings or number of sensors).
    """
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise StgeoError(
            f"The weights in {path} do not fit the {type(model).__name__} model: "
            f"{' '.join(line.strip() for line in first[:4])}. Build the model with the settings the weights "
            "were trained with (model_meta.json next to them: model name, parameters, number of sensors)."
        ) from None
    return model


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()
        detail = next((line.strip() for line in reason if "Unsupported global" in line or "GLOBAL" in line), "")
        raise StgeoError(
            f"Weights file {path} was refused: it holds Python objects other than tensors"
            f"{' (' + detail + ')' if detail else ''}, which could run code when loaded, so it was not opened. "
            "Only state dicts saved with torch.save(model.state_dict(), path) (or .safetensors files) are "
            "loaded; get the file again from a source you trust."
        ) from None
    except Exception as exc:  # noqa: BLE001 -- damaged zips and pickles fail in many ways
        raise StgeoError(
            f"Weights file {path} cannot be read as PyTorch weights ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); it may be damaged or "
            "not a weights file. Save the weights again with torch.save(model.state_dict(), path)."
        ) from None


def _load_safetensors(path: Path) -> object:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise StgeoError(
            f"Reading {path} needs the safetensors package: pip install safetensors (or save the weights "
            "with torch.save(model.state_dict(), path) as a .pt file)."
        ) from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 -- SafetensorError, OSError, ...
        raise StgeoError(
            f"Weights file {path} is not a readable safetensors file ({exc}); it may be damaged. Save the "
            "weights again with safetensors.torch.save_file(model.state_dict(), path)."
        ) from None
