"""Spatial block split of a labelled grid, with a buffer: neighbouring pixels, and the footprints
of the chips the models read, never sit on both sides of a split.

The grid is cut into square blocks of ``block_size`` pixels. Blocks holding labelled pixels are
shuffled with ``seed`` and dealt out one by one, each to the split (train, val, test) whose
share of each class is furthest below its target, weighing every class alike (a block goes
where the classes it holds are most missing): rare classes so land in training first, and the
splits get about ``fractions`` of every class. Every block lies wholly in one split. Then every
training pixel within ``buffer`` pixels (Chebyshev distance, the square footprint of a chip of
radius ``buffer``) of a validation or test pixel is taken out of training (split ``buffer``):
no loss uses its label and no training chip of that radius covers a held-out pixel. Validation
and test pixels are not trimmed. Unlabelled pixels carry their block's split in ``region``;
``near_held_out`` marks every pixel within the buffer (the student's soft targets are taken on
training-block pixels outside it only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stgeo_kd.errors import StgeoError

SPLITS = ("train", "val", "test")
BUFFER = "buffer"
NONE = ""  # unlabelled pixels in ``labels``


@dataclass
class PixelSplit:
    """Which split each pixel is in.

    Attributes:
        labels: (H, W) ``train``, ``val``, ``test``, ``buffer``, or ``""`` (unlabelled).
        region: (H, W) the split of each pixel's block (``train``/``val``/``test``; ``""`` for
            blocks without labelled pixels).
        block: (H, W) block index of each pixel.
        near_held_out: (H, W) bool, pixels (labelled or not) within ``buffer`` of a validation or
            test pixel.
        block_size, buffer: pixels; seed: the shuffle's seed.
    """

    labels: np.ndarray
    region: np.ndarray
    block: np.ndarray
    near_held_out: np.ndarray
    block_size: int
    buffer: int
    seed: int

    def mask(self, name: str) -> np.ndarray:
        return self.labels == name

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == name).sum()) for name in (*SPLITS, BUFFER)}

    def block_counts(self) -> dict[str, int]:
        out = {}
        for name in SPLITS:
            out[name] = int(np.unique(self.block[self.region == name]).size)
        return out


def pixel_block_split(
    labels: np.ndarray,
    block_size: int,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    buffer: int = 0,
    seed: int = 0,
) -> PixelSplit:
    """Split the labelled pixels of a grid into spatial blocks (module docstring).

    Args:
        labels: (H, W) int class index per pixel, negative where unlabelled.
        block_size: side of the square blocks, pixels.
        fractions: shares of the labelled pixels for train, val, test (val may be 0).
        buffer: pixels; training pixels within this Chebyshev distance of a val or test pixel
            are dropped from training.
        seed: seeds the order in which blocks are dealt out.

    Returns:
        A :class:`PixelSplit`; the same inputs always give the same split.

    Raises:
        StgeoError: too few blocks for the splits (make ``block_size`` smaller), or the buffer
            leaves no training pixel (make ``buffer`` smaller).
    """
    from scipy.ndimage import maximum_filter

    labels = np.asarray(labels)
    h, w = labels.shape
    if block_size < 1:
        raise StgeoError(f"data.patches.block_size must be positive, got {block_size}.")
    rows, cols = np.divmod(np.arange(h * w), w)
    nbx = -(-w // block_size)
    block = ((rows // block_size) * nbx + cols // block_size).reshape(h, w)
    labelled = labels >= 0
    k = int(labels.max()) + 1 if labelled.any() else 0
    n_blocks = int(block.max()) + 1
    # (blocks, classes) labelled pixel counts
    per = np.zeros((n_blocks, max(k, 1)))
    np.add.at(per, (block[labelled], labels[labelled]), 1.0)
    used = np.flatnonzero(per.sum(axis=1) > 0)
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if len(used) < len(wanted):
        raise StgeoError(f"The labelled pixels fall into only {len(used)} block(s) of {block_size} px, too few for "
                         f"{', '.join(SPLITS[i] for i in wanted)}. Make data.patches.block_size smaller.")
    totals = per.sum(axis=0)
    weight = np.where(totals > 0, 1.0 / np.maximum(totals, 1.0), 0.0)  # every class counts alike
    target = np.outer(np.asarray(fractions, dtype=np.float64), totals)  # (3, K)
    count = np.zeros_like(target)
    block_split = np.full(n_blocks, NONE, dtype=object)
    for b in np.random.default_rng(seed).permutation(used):
        present = per[b] > 0
        deficit = [(float(((target[i] - count[i]) * weight)[present].sum()), -i) for i in wanted]  # ties: train first
        s = -max(deficit)[1]
        block_split[b] = SPLITS[s]
        count[s] += per[b]
    for i in wanted:
        if count[i].sum() == 0:
            raise StgeoError(f"No block of {block_size} px went to {SPLITS[i]} (too few, too large blocks). Make "
                             "data.patches.block_size smaller.")
    region = block_split[block].astype(str)
    out = np.where(labelled, region, NONE).astype(object)
    held = labelled & np.isin(region, ("val", "test"))
    near = held.copy()
    if buffer > 0:
        near = maximum_filter(held.astype(np.uint8), size=2 * buffer + 1, mode="constant", cval=0) > 0
        out[(out == "train") & near] = BUFFER
    if not (out == "train").any():
        raise StgeoError(f"The buffer of {buffer} px leaves no training pixel. Make data.patches.buffer smaller, or "
                         "data.patches.block_size larger (fewer block edges).")
    return PixelSplit(labels=out.astype(str), region=region, block=block, near_held_out=near, block_size=int(block_size),
                      buffer=int(buffer), seed=int(seed))


def class_weights(counts: np.ndarray, kind: str = "balanced") -> np.ndarray:
    """Per-class loss weights from training pixel counts: ``balanced`` ``n / (K n_c)`` (as
    scikit-learn's ``class_weight='balanced'``), ``sqrt`` its square root, ``none`` ones. A class
    without training pixels gets 0. Normalised so that the mean weight over the training pixels
    is 1 (the loss keeps its scale)."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    k = int(present.sum())
    if kind == "none":
        w = np.where(present, 1.0, 0.0)
    else:
        w = np.where(present, counts.sum() / (k * np.maximum(counts, 1.0)), 0.0)
        if kind == "sqrt":
            w = np.sqrt(w)
        elif kind != "balanced":
            raise StgeoError(f"Unknown class weighting {kind!r}; use balanced, sqrt or none.")
    mean = (w * counts).sum() / max(counts.sum(), 1.0)
    return w / mean if mean > 0 else w
