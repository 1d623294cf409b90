"""Containers (SensorGraph) and the windowing that turns them into torch datasets."""

from stgeo_kd.data.sensor_graph import SensorGraph

__all__ = ["SensorGraph"]
