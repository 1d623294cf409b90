"""Where a model looks: a Grad-CAM-style map taken at the input layer, so that chip CNNs and
per-pixel models are measured alike and on the same grid.

Grad-CAM (Selvaraju et al., ICCV 2017) weighs a feature map ``A`` by the gradient of the
class score and keeps the positive part: ``ReLU(sum_k alpha_k A_k(q))``. With valid
convolutions a chip model's last feature map is a single position, so here ``A`` is the
model's input (the pixel's chip: time steps x bands over its footprint of (2r + 1)^2 pixels),
and the weights are the gradients *at each position* (averaging them over the chip, as
Grad-CAM does for deep layers, would only show where the input resembles the class, not where
the model is sensitive): ``cam(q) = ReLU(sum_k dy_c/dx_k(q) * x_k(q))`` for the pixel's
highest-scoring class c, i.e. the positive part of gradient x input per location. A per-pixel
model (r = 0) so gets one value on its own pixel; a chip model a map over the pixels around
it. Inputs are standardised, so a value counts by how far it is from the training mean.

Each pixel's map is added onto the grid at the pixels it covers (parts that fall on the
mirrored border are dropped): band 1 of the output (``saliency``) is how much evidence for the
predicted classes, summed over all predictions, comes from each location. Band 2
(``own_pixel_share``) is the share of each prediction's map that lies on its own pixel (1 for a
per-pixel model; lower when a chip model leans on its neighbours). The report also keeps the
mean |gradient x input| per time step ("when" the model looks).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stgeo_kd.landcover.training import PatchData


def input_gradcam(model: nn.Module, data: PatchData, batch: int = 512) -> dict[str, np.ndarray]:
    """The input-layer Grad-CAM map of every pixel's predicted class (module docstring).

    Returns:
        ``saliency`` (H, W) float32 (accumulated on the grid), ``own_pixel_share`` (H, W)
        float32, ``per_time`` (T,) float64 mean |gradient x input| per time step over all pixels.
    """
    model.eval()
    r = model.radius
    k = 2 * r + 1
    h, w = data.height, data.width
    acc = torch.zeros(h + 2 * r, w + 2 * r, dtype=torch.float64)
    own = torch.zeros(h * w, dtype=torch.float32)
    t_steps = data.x.shape[0] // data.bands
    per_time = torch.zeros(t_steps, dtype=torch.float64)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    for start in range(0, h * w, batch):
        rr, cc = rows[start : start + batch], cols[start : start + batch]
        chips = data.chips(rr, cc, r).clone().requires_grad_(True)  # (N, C, k, k)
        with torch.enable_grad():
            scores = model(chips)[:, :, 0, 0]  # (N, K)
            top = scores.argmax(1)
            grad = torch.autograd.grad(scores.gather(1, top[:, None]).sum(), chips)[0]
        contrib = grad * chips.detach()  # (N, C, k, k): gradient x input per position
        cam = torch.relu(contrib.sum(1))  # (N, k, k)
        per_time += contrib.abs().sum(dim=(2, 3)).view(len(rr), t_steps, data.bands).sum(dim=(0, 2)).double()
        total = cam.sum(dim=(1, 2))
        own[start : start + len(rr)] = torch.where(total > 0, cam[:, r, r] / total.clamp_min(1e-12), torch.nan)
        # add each map onto the padded grid at its footprint
        off = torch.arange(k)
        ri = (rr[:, None, None] + off[None, :, None]).expand(-1, k, k)
        ci = (cc[:, None, None] + off[None, None, :]).expand(-1, k, k)
        acc.index_put_((ri.reshape(-1), ci.reshape(-1)), cam.reshape(-1).double(), accumulate=True)
    sal = acc[r : r + h, r : r + w].float().numpy() if r else acc.float().numpy()
    return {"saliency": sal, "own_pixel_share": own.view(h, w).numpy(),
            "per_time": (per_time / (h * w)).numpy()}
