"""Raster time stacks: tiled prediction (see :mod:`stgeo_kd.raster.tiling`)."""
