"""Spatial block split with a buffer: neighbouring points never sit on both sides of a split.

The points' extent is cut into square blocks of ``block_size`` metres (a grid anchored at the
smallest x and y). The non-empty blocks are shuffled with ``seed`` and dealt out one by one,
each to the split (train, val, test) that is furthest below its share of the points, so the
splits get about ``fractions`` of the points and every block lies wholly in one split. Then
every training point closer than ``buffer`` metres to a validation or test point is taken out
of training (split ``buffer``): it still lends its attributes to its neighbours in the
teacher's graph, but no loss and no metric uses its value. Validation and test points are not
trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from stgeo_kd.errors import StgeoError

SPLITS = ("train", "val", "test")
BUFFER = "buffer"


@dataclass
class BlockSplit:
    """Which split each point is in.

    Attributes:
        labels: (N,) ``train``, ``val``, ``test`` or ``buffer`` per point.
        block: (N,) index of each point's block.
        block_labels: (B,) the split of each block (buffer points keep their block's ``train``).
        block_size, buffer: metres; seed: the shuffle's seed.
    """

    labels: np.ndarray
    block: np.ndarray
    block_labels: np.ndarray
    block_size: float
    buffer: float
    seed: int

    def mask(self, name: str) -> np.ndarray:
        return self.labels == name

    def indices(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.labels == name)

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == name).sum()) for name in (*SPLITS, BUFFER)}

    def block_counts(self) -> dict[str, int]:
        return {name: int((self.block_labels == name).sum()) for name in SPLITS}


def block_split(
    xy: np.ndarray,
    block_size: float,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    buffer: float = 0.0,
    seed: int = 0,
) -> BlockSplit:
    """Split points into spatial blocks for train / val / test, with a buffer (module docstring).

    Args:
        xy: (N, 2) coordinates in metres.
        block_size: side of the square blocks, metres.
        fractions: shares of the points for train, val, test (val may be 0).
        buffer: metres; training points closer than this to a val or test point are dropped
            from training (so every remaining training point is at least ``buffer`` away).
        seed: seeds the order in which blocks are dealt out.

    Returns:
        A :class:`BlockSplit`; the same inputs always give the same split.

    Raises:
        StgeoError: too few blocks for the splits (make ``block_size`` smaller), or the buffer
            leaves fewer than 2 training points (make ``buffer`` smaller).
    """
    xy = np.asarray(xy, dtype=np.float64)
    n = len(xy)
    if not block_size > 0:
        raise StgeoError(f"data.points.block_size must be positive, got {block_size}.")
    cells = np.floor((xy - xy.min(axis=0)) / block_size).astype(np.int64)
    _, block = np.unique(cells, axis=0, return_inverse=True)
    block = block.reshape(-1)
    n_blocks = int(block.max()) + 1
    sizes = np.bincount(block, minlength=n_blocks)
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n_blocks < len(wanted):
        raise StgeoError(
            f"The points fall into only {n_blocks} block(s) of {block_size:g} m, too few for "
            f"{', '.join(SPLITS[i] for i in wanted)}. Make data.points.block_size smaller."
        )
    target = np.asarray(fractions, dtype=np.float64) * n
    count = np.zeros(3)
    block_labels = np.empty(n_blocks, dtype=object)
    for b in np.random.default_rng(seed).permutation(n_blocks):
        deficit = [(target[i] - count[i], -i) for i in wanted]  # ties go to train, then val
        s = -max(deficit)[1]
        block_labels[b] = SPLITS[s]
        count[s] += sizes[b]
    for i in wanted:
        if count[i] == 0:  # a huge first block can starve a split
            raise StgeoError(
                f"No block of {block_size:g} m went to {SPLITS[i]} (the blocks are too large for the "
                f"{n} points). Make data.points.block_size smaller."
            )
    labels = block_labels[block].astype(object)
    if buffer > 0:
        held_out = np.flatnonzero(labels != "train")
        train = np.flatnonzero(labels == "train")
        dist, _ = cKDTree(xy[held_out]).query(xy[train], k=1)
        labels[train[dist < buffer]] = BUFFER
    if (labels == "train").sum() < 2:
        raise StgeoError(
            f"The buffer of {buffer:g} m leaves {int((labels == 'train').sum())} training point(s). Make "
            "data.points.buffer smaller, or data.points.block_size larger (fewer block edges)."
        )
    return BlockSplit(labels=labels.astype(str), block=block, block_labels=block_labels.astype(str),
                      block_size=float(block_size), buffer=float(buffer), seed=int(seed))
