"""Models for raster time stacks: an ST-CNN teacher and a depthwise-separable CNN student.

Both take the same input and return the same output, so they are interchangeable in training,
evaluation, tiled prediction and export:

Shapes:
    input: (B, T, C, H, W) -- T past frames, C channels per frame (for each variable its
        scaled value with 0 where missing and an observed flag, then the sine and cosine of
        the frame's time of day; see :mod:`stgeo_kd.data.raster_windows`)
    output: (B, K, H, W) -- scaled values of the target variable for lead times 1..K

Every layer is a convolution with zero padding and no normalisation that depends on the
batch or the image (no GroupNorm / InstanceNorm), so a pixel's output depends only on the
inputs within the model's receptive field: predicting a large raster tile by tile with a halo
at least that wide gives the same values as predicting it whole
(:func:`stgeo_kd.raster.tiling.receptive_radius` measures it).

With ``residual`` (the default) the head predicts the change from the last observed frame
of the target variable, so an untrained model starts at persistence.
"""

from __future__ import annotations

import torch
from torch import nn


def _dilations(layers: int) -> list[int]:
    """1, 2, 4, ... : the receptive field grows exponentially with depth at the same cost."""
    return [2 ** min(i, 4) for i in range(layers)]


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class STCNN(nn.Module):
    """Spatio-temporal CNN teacher: spatial convolutions on every frame (weights shared over
    time), temporal convolutions over the frame axis at every pixel, a fusion layer that joins
    the temporal summary with the last frame's spatial features, and a 1x1 head giving one
    output frame per lead time.

    Args:
        history: T, frames in.
        channels: C, channels per frame.
        horizon: K, frames out.
        hidden: feature width.
        spatial_layers: dilated 3x3 convolutions per frame (dilations 1, 2, 4, ...).
        temporal_kernel: kernel of the temporal convolutions (applied until one frame is left).
        fusion_layers: dilated 3x3 convolutions after the fusion.
        residual: predict the change from the last frame of ``target_channel``.
        target_channel: the channel of the scaled target value in each frame.
    """

    def __init__(
        self,
        history: int,
        channels: int,
        horizon: int,
        hidden: int = 32,
        spatial_layers: int = 3,
        temporal_kernel: int = 3,
        fusion_layers: int = 2,
        residual: bool = True,
        target_channel: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.history, self.horizon, self.residual, self.target_channel = history, horizon, residual, target_channel
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU()]
        for d in _dilations(spatial_layers)[1:]:
            layers.append(_Residual(nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d), nn.ReLU())))
        self.spatial = nn.Sequential(*layers)
        temporal: list[nn.Module] = []
        t = history
        while t > 1:
            k = min(temporal_kernel, t)
            temporal += [nn.Conv3d(hidden, hidden, (k, 1, 1)), nn.ReLU()]
            t -= k - 1
        self.temporal = nn.Sequential(*temporal) if temporal else nn.Identity()
        fusion: list[nn.Module] = [nn.Conv2d(2 * hidden, hidden, 1), nn.ReLU()]
        for d in _dilations(fusion_layers + 1)[1:]:
            fusion.append(_Residual(nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d), nn.ReLU())))
        self.fusion = nn.Sequential(*fusion)
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(hidden, horizon, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        s = self.spatial(x.reshape(b * t, c, h, w)).reshape(b, t, -1, h, w)
        last = s[:, -1]
        z = self.temporal(s.transpose(1, 2))  # (B, hidden, T', H, W)
        z = z[:, :, -1] if z.dim() == 5 else z
        f = self.fusion(torch.cat([z, last], dim=1))
        out = self.head(self.dropout(f))
        if self.residual:
            out = out + x[:, -1, self.target_channel : self.target_channel + 1]
        return out


class DSConvBlock(nn.Module):
    """MobileNet-style block: depthwise (dilated) 3x3 convolution, ReLU, pointwise 1x1
    convolution, ReLU, with a skip connection."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, groups=width)
        self.pointwise = nn.Conv2d(width, width, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.pointwise(self.act(self.depthwise(x))))


class DSCNNStudent(nn.Module):
    """Compact student: the T frames stacked as channels, a 1x1 stem, depthwise-separable
    blocks with dilations 1, 2, 4, ... and a 1x1 head.

    Args:
        history, channels, horizon, residual, target_channel: as :class:`STCNN`.
        width: feature width of the blocks.
        blocks: number of depthwise-separable blocks.
    """

    def __init__(
        self,
        history: int,
        channels: int,
        horizon: int,
        width: int = 16,
        blocks: int = 4,
        residual: bool = True,
        target_channel: int = 0,
    ):
        super().__init__()
        self.history, self.horizon, self.residual, self.target_channel = history, horizon, residual, target_channel
        self.stem = nn.Sequential(nn.Conv2d(history * channels, width, 1), nn.ReLU())
        self.blocks = nn.Sequential(*[DSConvBlock(width, d) for d in _dilations(blocks)])
        self.head = nn.Conv2d(width, horizon, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        out = self.head(self.blocks(self.stem(x.reshape(b, t * c, h, w))))
        if self.residual:
            out = out + x[:, -1, self.target_channel : self.target_channel + 1]
        return out


RASTER_MODELS = {"st_cnn": STCNN, "ds_cnn": DSCNNStudent}


def build_raster_model(name: str, params: dict, *, history: int, channels: int, horizon: int,
                       target_channel: int = 0) -> nn.Module:
    """Build a registered raster model; unknown names or parameters get a message listing the
    valid ones."""
    import inspect

    from stgeo_kd.errors import StgeoError, did_you_mean

    if name not in RASTER_MODELS:
        raise StgeoError(f"Unknown raster model {name!r}. {did_you_mean(name, list(RASTER_MODELS))}")
    cls = RASTER_MODELS[name]
    fixed = {"self", "history", "channels", "horizon", "target_channel"}
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in fixed]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise StgeoError(f"Model {name!r} has no parameter {unknown[0]!r}. {did_you_mean(unknown[0], allowed)}")
    try:
        return cls(history=history, channels=channels, horizon=horizon, target_channel=target_channel, **params)
    except (TypeError, ValueError) as exc:
        raise StgeoError(f"Model {name!r}: bad parameters {params}: {exc}") from None
