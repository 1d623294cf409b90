"""stgeo_kd: distil big spatio-temporal geospatial models into small, fast students.

Quick use::

    import stgeo_kd
    result = stgeo_kd.run("examples/sample_city.yaml", out_dir="out")
    result.predictions.explore()          # a GeoDataFrame, one point per sensor
    result.report["models"]["student"]["metrics"]["h12"]
"""

__version__ = "0.1.0"

from stgeo_kd.errors import StgeoError


def __getattr__(name: str):
    # keep `import stgeo_kd` light (QGIS imports it at start-up); load torch-heavy parts on use
    if name in ("run", "RunResult"):
        from stgeo_kd import pipeline

        return getattr(pipeline, name)
    if name in ("load_config", "RunConfig"):
        from stgeo_kd import config

        return getattr(config, name)
    if name == "SensorGraph":
        from stgeo_kd.data.sensor_graph import SensorGraph

        return SensorGraph
    if name == "load_sensor_graph":
        from stgeo_kd.ingest.build import load_sensor_graph

        return load_sensor_graph
    raise AttributeError(f"module 'stgeo_kd' has no attribute {name!r}")


__all__ = ["RunConfig", "RunResult", "SensorGraph", "StgeoError", "__version__", "load_config", "load_sensor_graph", "run"]
