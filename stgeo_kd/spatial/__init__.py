"""Spatial regression on a graph of locations: points with a target value and attributes ->
k-nearest-neighbour graph -> GNN teacher -> MLP student that needs no neighbours at inference.

``data.kind: points`` in a run config selects this pipeline (see docs/spatial.md). The modules,
in the order data flows through them: :mod:`~stgeo_kd.spatial.points` (the point layer),
:mod:`~stgeo_kd.spatial.graph` (kNN graph), :mod:`~stgeo_kd.spatial.split` (spatial block split
with a buffer), :mod:`~stgeo_kd.spatial.models`, :mod:`~stgeo_kd.spatial.training`,
:mod:`~stgeo_kd.spatial.pipeline` (evaluation and outputs).

Importing this package is cheap (no torch); the submodules load what they need.
"""
