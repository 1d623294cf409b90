"""Land-cover classification from a raster (time stack) and labelled polygons: a chip CNN or
per-pixel temporal CNN teacher distilled into a small chip CNN or a per-pixel MLP.

``data.kind: patches`` in a run config selects this pipeline (see docs/landcover.md). The
modules, in the order data flows through them: :mod:`~stgeo_kd.landcover.patches` (raster +
polygons -> PatchSet: model inputs per pixel, rasterised labels), :mod:`~stgeo_kd.landcover.split`
(spatial block split with a buffer), :mod:`~stgeo_kd.landcover.models`,
:mod:`~stgeo_kd.landcover.training`, :mod:`~stgeo_kd.landcover.saliency`,
:mod:`~stgeo_kd.landcover.pipeline` (evaluation and outputs), :mod:`~stgeo_kd.landcover.maps`
and :mod:`~stgeo_kd.landcover.png` (the map and the confusion-matrix picture).

Importing this package is cheap (no torch); the submodules load what they need.
"""
