"""Models that give every pixel a class: chip CNNs that read a square footprint around the pixel,
and per-pixel models that read only the pixel's own time series.

Every model is fully convolutional with *valid* (unpadded) convolutions, so a model of footprint
radius ``r`` maps inputs (B, C, h + 2r, w + 2r) to class scores (B, K, h, w): on one chip of
(2r + 1) x (2r + 1) pixels it gives that chip's centre pixel's scores, and on a padded scene
it gives every pixel's scores at once, exactly as chip by chip (and far faster). Inputs are the
time stack with time steps and bands as channels, time-major (``C = T * bands``).

Every model ends in a layer named ``embedding`` (the last hidden features per pixel) and a
1x1 ``head``.

Teachers: ``resnet_chip`` (ResNet-style: a 1x1 temporal stem then residual 3x3 blocks) and
``temporal_cnn`` (a per-pixel 1-D CNN over time). Students: ``mobilenet_chip`` (depthwise
separable blocks, Howard et al. 2017), ``shufflenet_chip`` (grouped 1x1 convolutions with a
channel shuffle around a depthwise 3x3, Zhang et al. 2018) and ``mlp`` (per pixel).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from stgeo_kd.errors import StgeoError, did_you_mean


def _crop(x: torch.Tensor, by: int) -> torch.Tensor:
    return x[..., by : x.shape[-2] - by, by : x.shape[-1] - by] if by else x


class _PatchModel(nn.Module):
    """Common attributes: ``radius`` (footprint half-width, pixels) and ``input_kind``."""

    radius = 0
    input_kind = "pixel"

    def footprint(self) -> int:
        return 2 * self.radius + 1


class ResNetChip(_PatchModel):
    """ResNet-style CNN over chips (He et al., CVPR 2016): a 1x1 stem (``stem_layers`` deep)
    mixes the time steps and bands of each pixel (a learned temporal filter bank), then
    ``blocks`` residual blocks of two 3x3 convolutions with batch norm read the neighbourhood;
    footprint radius ``2 * blocks``.

    Args:
        in_channels: C (time steps x bands); num_classes: K.
        width: channels of the stem and the blocks; blocks: residual blocks (radius 2 each).
        dropout: channel dropout inside the blocks and dropout before the head, while training.

    Shapes:
        x: (B, C, h + 4 blocks, w + 4 blocks) standardised -> logits (B, K, h, w).
    """

    input_kind = "chip"

    def __init__(self, in_channels: int, num_classes: int, bands: int = 1, width: int = 48, blocks: int = 2,
                 stem_layers: int = 1, bottleneck: int | None = None, dropout: float = 0.1):
        super().__init__()
        if width < 1 or blocks < 1 or stem_layers < 1 or (bottleneck is not None and bottleneck < 1):
            raise StgeoError(f"resnet_chip: width, blocks, stem_layers and bottleneck must be at least 1, got "
                             f"width={width}, blocks={blocks}, stem_layers={stem_layers}, bottleneck={bottleneck}.")
        stem: list[nn.Module] = []
        for i in range(stem_layers):
            stem += [nn.Conv2d(in_channels if i == 0 else width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        self.stem = nn.Sequential(*stem)
        if bottleneck is None:  # basic blocks: two 3x3 convolutions (radius 2 each)
            self.shrink = 2
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Conv2d(width, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                              nn.Dropout2d(dropout), nn.Conv2d(width, width, 3, bias=False), nn.BatchNorm2d(width))
                for _ in range(blocks))
        else:  # bottleneck blocks: 1x1 down to ``bottleneck`` channels, 3x3, 1x1 up (radius 1 each)
            self.shrink = 1
            b = bottleneck
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Conv2d(width, b, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                              nn.Conv2d(b, b, 3, bias=False), nn.BatchNorm2d(b), nn.ReLU(), nn.Dropout2d(dropout),
                              nn.Conv2d(b, width, 1, bias=False), nn.BatchNorm2d(width))
                for _ in range(blocks))
        self.radius = self.shrink * blocks
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Identity()
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = torch.relu(block(h) + _crop(h, self.shrink))
        return self.head(self.dropout(self.embedding(h)))


class TemporalCNN(_PatchModel):
    """Per-pixel 1-D CNN over time (e.g. Pelletier et al. 2019, TempCNN): ``layers`` temporal
    convolutions (kernel ``kernel``, same padding, residual after the first) with batch norm,
    then average and max pooling over time -> head. Reads only the pixel's own series.

    Shapes:
        x: (B, C, h, w) with C = T * bands, time-major -> logits (B, K, h, w).
    """

    def __init__(self, in_channels: int, num_classes: int, bands: int = 1, width: int = 32, layers: int = 3,
                 kernel: int = 5, dropout: float = 0.1):
        super().__init__()
        if width < 1 or layers < 1 or kernel < 1 or kernel % 2 == 0:
            raise StgeoError(f"temporal_cnn: width and layers must be at least 1 and kernel odd, got width={width}, "
                             f"layers={layers}, kernel={kernel}.")
        if in_channels % bands:
            raise StgeoError(f"temporal_cnn: {in_channels} input channels are not a whole number of time steps of "
                             f"{bands} band(s).")
        self.bands = bands
        convs = []
        for i in range(layers):
            convs.append(nn.Sequential(nn.Conv1d(bands if i == 0 else width, width, kernel, padding=kernel // 2,
                                                 bias=False), nn.BatchNorm1d(width), nn.ReLU()))
        self.convs = nn.ModuleList(convs)
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Identity()
        self.head = nn.Conv2d(2 * width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = x.permute(0, 2, 3, 1).reshape(b * h * w, c // self.bands, self.bands).transpose(1, 2)  # (P, bands, T)
        z = self.convs[0](seq)
        for conv in self.convs[1:]:
            z = z + conv(z)
        pooled = torch.cat([z.mean(-1), z.amax(-1)], dim=-1)  # (P, 2 width)
        feat = pooled.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return self.head(self.dropout(self.embedding(feat)))


class MobileNetChip(_PatchModel):
    """MobileNet-style chip CNN: a 1x1 stem, then ``blocks`` depthwise-separable blocks
    (depthwise 3x3 + pointwise 1x1, batch norm, ReLU6, residual); footprint radius ``blocks``.

    Shapes:
        x: (B, C, h + 2 blocks, w + 2 blocks) -> logits (B, K, h, w).
    """

    input_kind = "chip"

    def __init__(self, in_channels: int, num_classes: int, bands: int = 1, width: int = 16, blocks: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        if width < 1 or blocks < 1:
            raise StgeoError(f"mobilenet_chip: width and blocks must be at least 1, got width={width}, blocks={blocks}.")
        self.radius = blocks
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, groups=width, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
                          nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width))
            for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Identity()
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = torch.clamp(block(h) + _crop(h, 1), 0.0, 6.0)
        return self.head(self.dropout(self.embedding(h)))


class _ShuffleBlock(nn.Module):
    def __init__(self, width: int, groups: int):
        super().__init__()
        self.groups = groups
        self.reduce = nn.Sequential(nn.Conv2d(width, width, 1, groups=groups, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.depthwise = nn.Sequential(nn.Conv2d(width, width, 3, groups=width, bias=False), nn.BatchNorm2d(width))
        self.expand = nn.Sequential(nn.Conv2d(width, width, 1, groups=groups, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(x)
        b, c, hh, ww = h.shape
        h = h.view(b, self.groups, c // self.groups, hh, ww).transpose(1, 2).reshape(b, c, hh, ww)  # channel shuffle
        h = self.expand(self.depthwise(h))
        return torch.relu(h + _crop(x, 1))


class ShuffleNetChip(_PatchModel):
    """ShuffleNet-style chip CNN: a 1x1 stem, then ``blocks`` units of grouped 1x1 convolution,
    channel shuffle, depthwise 3x3 and grouped 1x1 (residual); footprint radius ``blocks``.

    Shapes:
        x: (B, C, h + 2 blocks, w + 2 blocks) -> logits (B, K, h, w).
    """

    input_kind = "chip"

    def __init__(self, in_channels: int, num_classes: int, bands: int = 1, width: int = 16, blocks: int = 2,
                 groups: int = 4, dropout: float = 0.0):
        super().__init__()
        if width < 1 or blocks < 1 or groups < 1 or width % groups:
            raise StgeoError(f"shufflenet_chip: width, blocks and groups must be at least 1 and width a multiple of "
                             f"groups, got width={width}, blocks={blocks}, groups={groups}.")
        self.radius = blocks
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(_ShuffleBlock(width, groups) for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Identity()
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.dropout(self.embedding(h)))


class PixelMLP(_PatchModel):
    """Multi-layer perceptron on one pixel's time series (1x1 convolutions over the grid).

    Shapes:
        x: (B, C, h, w) -> logits (B, K, h, w).
    """

    def __init__(self, in_channels: int, num_classes: int, bands: int = 1, hidden: int = 32, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        if hidden < 1 or layers < 1:
            raise StgeoError(f"mlp: hidden and layers must be at least 1, got hidden={hidden}, layers={layers}.")
        body: list[nn.Module] = []
        width = in_channels
        for _ in range(layers):
            body += [nn.Conv2d(width, hidden, 1), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*body)
        self.embedding = nn.Identity()
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(self.body(x)))


class TeacherEnsemble(_PatchModel):
    """Several trained patch teachers as one: class scores are the log of the weighted mean of
    the members' class probabilities (an ensemble of models with different seeds or
    architectures is usually better calibrated and more accurate than any one of them).
    Footprint: the largest member's; each member reads its own footprint of the chip.

    Args:
        members: trained patch models with the same classes; weights: one per member (any
            positive numbers, normalised), equal when None.

    Shapes:
        x: (B, C, h + 2r, w + 2r) with r the largest member radius -> log-probabilities (B, K, h, w).
    """

    def __init__(self, members: list[nn.Module], weights: list[float] | None = None):
        super().__init__()
        if not members:
            raise StgeoError("A teacher ensemble needs at least one member.")
        w = torch.ones(len(members)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(members),) or not bool((w > 0).all()):
            raise StgeoError(f"Teacher weights must be one positive number per teacher, got {weights!r}.")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", w / w.sum())
        self.radius = max(m.radius for m in members)
        self.input_kind = "chip" if any(m.input_kind == "chip" for m in members) else "pixel"

    def member_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's class scores (B, K, h, w) for inputs of the ensemble's footprint."""
        return [m(_crop(x, self.radius - m.radius)) for m in self.members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(z, dim=1) for z in self.member_logits(x)])  # (M, B, K, h, w)
        mean = (self.weights.view(-1, 1, 1, 1, 1) * probs).sum(0)
        return torch.log(mean.clamp_min(1e-12))


TEACHERS: dict[str, type[nn.Module]] = {"resnet_chip": ResNetChip, "temporal_cnn": TemporalCNN}
STUDENTS: dict[str, type[nn.Module]] = {"mobilenet_chip": MobileNetChip, "shufflenet_chip": ShuffleNetChip,
                                        "mlp": PixelMLP}


def build_patch_model(name: str, params: dict, in_channels: int, num_classes: int, bands: int = 1,
                      where: str = "model") -> nn.Module:
    """A registered patch model; a wrong name or parameter gets a message with the valid ones."""
    registry = TEACHERS if where.startswith("teacher") else STUDENTS
    if name not in registry:
        raise StgeoError(f"{where}.name {name!r} is not a model for data.kind: patches. {did_you_mean(name, list(registry))}")
    cls = registry[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters
               if p not in ("self", "in_channels", "num_classes", "bands")]
    for key in params:
        if key not in allowed:
            raise StgeoError(f"{where}.params: {name} has no parameter {key!r}. {did_you_mean(str(key), allowed)}")
    try:
        return cls(in_channels, num_classes, bands=bands, **params)
    except TypeError as exc:
        raise StgeoError(f"{where}.params for {name}: {exc}") from None
