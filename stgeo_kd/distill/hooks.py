"""Read intermediate features of any model by layer name, without editing the model.

:class:`FeatureTap` registers forward hooks on named submodules (names as in
``model.named_modules()``, e.g. ``body`` or ``end1``) and keeps each one's latest output.
Layers lay out their outputs differently (``(B, N, D)``, node-first ``(N, B, D)``,
``(B, C, T, N)`` ...), so the tap learns each layer's batch and node axes once, from a probe
forward pass whose batch size differs from the node count, and then always returns node
features as ``(B, N, D)`` (every other axis flattened into D). For image models, ``num_nodes``
is the grid shape ``(rows, cols)``: the node axis is then the two adjacent axes of that shape
(the pixels, e.g. of a ``(B, C, H, W)`` convolution output) and D the channels.
"""

from __future__ import annotations

import torch
from torch import nn

from stgeo_kd.errors import StgeoError, did_you_mean


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


class FeatureTap:
    """Forward hooks that capture named layers' outputs as node features.

    Args:
        model: any torch module.
        layers: names from ``model.named_modules()``; an unknown name raises StgeoError with
            the closest valid names.
        num_nodes: N, used to find the node axis; or ``(rows, cols)`` for pixel grids.

    Use :meth:`probe` once with a sample input, then after each forward ``tap[name]`` is a
    ``(B, N, D)`` tensor (with the autograd graph kept, so losses on it train the model).
    """

    def __init__(self, model: nn.Module, layers: list[str], num_nodes: int | tuple[int, int]):
        modules = dict(model.named_modules())
        # a model wrapped in an output head (GaussianHead, ClassifierHead) keeps its layers
        # under "base."; users name them as in the bare model
        layers = [f"base.{n}" if n not in modules and f"base.{n}" in modules else n for n in layers]
        for name in layers:
            if name not in modules or name == "":
                valid = [n.removeprefix("base.") for n in modules if n and n != "base"]
                raise StgeoError(f"Layer {name.removeprefix('base.')!r} is not in this {type(getattr(model, 'base', model)).__name__}. "
                                 f"{did_you_mean(name.removeprefix('base.'), valid)}")
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        self.grid = tuple(int(v) for v in num_nodes) if isinstance(num_nodes, (tuple, list)) else None
        self.num_nodes = self.grid[0] * self.grid[1] if self.grid else int(num_nodes)
        self.raw: dict[str, torch.Tensor] = {}
        self.axes: dict[str, tuple[int, ...]] = {}
        self.widths: dict[str, int] = {}
        self.handles = [modules[name].register_forward_hook(self._hook(name)) for name in self.layers]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            tensor = _first_tensor(output)
            if tensor is None:
                raise StgeoError(f"Layer {name!r} returned no tensor, so it cannot be used for feature distillation.")
            self.raw[name] = tensor

        return hook

    def probe(self, example: torch.Tensor) -> None:
        """Run ``example`` (any batch) through the model with a batch size that differs from the
        node count and every input axis, and record each layer's (batch, node) axes and width."""
        sizes = set(example.shape[1:]) | {self.num_nodes} | set(self.grid or ())
        b = 2
        while b in sizes:
            b += 1
        x = example[:1].expand(b, *example.shape[1:]).contiguous()
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            self.model(x)
        self.model.train(was_training)
        for name in self.layers:
            shape = tuple(self.raw[name].shape)
            batch_axes = [i for i, s in enumerate(shape) if s == b]
            if self.grid:
                # the last pair of adjacent axes shaped like the grid (convolutions put them last)
                pairs = [(i, i + 1) for i in range(len(shape) - 1) if (shape[i], shape[i + 1]) == self.grid]
                node_axes = [pairs[-1]] if pairs else []
            else:
                node_axes = [(i,) for i, s in enumerate(shape) if s == self.num_nodes]
            if len(batch_axes) != 1 or len(node_axes) != 1:
                raise StgeoError(
                    f"Cannot tell the batch and node axes of layer {name!r} (output shape {shape} for a batch of "
                    f"{b} and {self.num_nodes} nodes): it needs exactly one axis of each. Pick a layer whose output "
                    "keeps one vector per node, e.g. the last hidden layer before the head."
                )
            self.axes[name] = (batch_axes[0], *node_axes[0])
            width = 1
            for i, s in enumerate(shape):
                if i not in self.axes[name]:
                    width *= s
            self.widths[name] = width
        self.raw.clear()

    def width(self, name: str) -> int:
        return self.widths[self.resolve(name)]

    def resolve(self, name: str) -> str:
        return name if name in self.axes or name in self.layers else f"base.{name}"

    def __getitem__(self, name: str) -> torch.Tensor:
        name = self.resolve(name)
        t = self.raw[name]
        b_ax, *n_axes = self.axes[name]
        rest = [i for i in range(t.dim()) if i != b_ax and i not in n_axes]
        t = t.permute(b_ax, *n_axes, *rest)
        return t.reshape(t.shape[0], self.num_nodes, -1)

    def clear(self) -> None:
        self.raw.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        self.raw.clear()
