"""stgeo_kd inside QGIS: a Processing provider and console helpers.

In the QGIS Python console::

    from stgeo_kd.qgis import distill_layers
    run = distill_layers(roads_layer, sensors_layer, "/data/speeds.parquet", epochs=5, add_to_project=True)
    run.layer, run.map_path, run.report["comparison"]

``distill_layers``, ``forecast_layers`` and ``forecast_raster_layers`` run the algorithms of
:class:`StgeoKdProvider` (``stgeo_kd:distill_traffic``, ``stgeo_kd:forecast_student`` and
``stgeo_kd:forecast_raster``), registering it first when needed. Importing this package imports nothing from QGIS or torch; its names load on use, so
``import stgeo_kd`` (and this package) work outside QGIS too. See docs/qgis.md.
"""

from __future__ import annotations

__all__ = [
    "DistillRun",
    "RasterRun",
    "StgeoKdProvider",
    "distill_layers",
    "forecast_layers",
    "forecast_raster_layers",
    "register_provider",
]


def __getattr__(name: str):
    if name in ("distill_layers", "forecast_layers", "forecast_raster_layers", "DistillRun", "RasterRun"):
        from stgeo_kd.qgis import console

        return getattr(console, name)
    if name in ("StgeoKdProvider", "register_provider"):
        from stgeo_kd.qgis import provider

        return getattr(provider, name)
    raise AttributeError(f"module 'stgeo_kd.qgis' has no attribute {name!r}")
