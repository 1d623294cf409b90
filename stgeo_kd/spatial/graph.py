"""The k-nearest-neighbour graph over point locations that the GNN teacher aggregates on."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from stgeo_kd.errors import StgeoError


def knn_graph(xy: np.ndarray, k: int, symmetric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Edges from each point's ``k`` nearest other points to it, by straight-line distance.

    Ties are broken by point order (the KD-tree's), so the graph is deterministic. A point
    is never its own neighbour, even when another point has the same coordinates.

    Args:
        xy: (N, 2) coordinates in metres.
        k: neighbours per point; more than ``N - 1`` is reduced to ``N - 1`` with a warning.
        symmetric: also add the reverse of every edge (i is j's neighbour whenever j is i's),
            without duplicates; every point then has at least ``k`` neighbours.

    Returns:
        ``edge_index`` (2, E) int64 with row 0 the source (neighbour) and row 1 the target
        (the point that aggregates it), sorted by target then source, and ``distance`` (E,)
        float64 in metres.

    Raises:
        StgeoError: fewer than two points, or ``k`` < 1.
    """
    xy = np.asarray(xy, dtype=np.float64)
    n = len(xy)
    if n < 2:
        raise StgeoError(f"A neighbour graph needs at least 2 points, got {n}.")
    if k < 1:
        raise StgeoError(f"data.points.k must be at least 1, got {k}.")
    if k > n - 1:
        warnings.warn(f"data.points.k={k} but there are only {n} points: each point gets its {n - 1} others.", stacklevel=2)
        k = n - 1
    tree = cKDTree(xy)
    # one extra neighbour for the point itself; with duplicate coordinates it may not come first
    _, idx = tree.query(xy, k=min(k + 1, n))
    idx = np.atleast_2d(idx)
    targets, sources = [], []
    for i in range(n):
        others = [j for j in idx[i] if j != i][:k]
        sources.extend(others)
        targets.extend([i] * len(others))
    src = np.asarray(sources, dtype=np.int64)
    dst = np.asarray(targets, dtype=np.int64)
    if symmetric:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    pairs = np.unique(np.stack([dst, src], axis=1), axis=0)  # sorted by target, then source
    edge_index = np.stack([pairs[:, 1], pairs[:, 0]])
    distance = np.linalg.norm(xy[edge_index[0]] - xy[edge_index[1]], axis=1)
    return edge_index, distance
