"""Export results for people, GIS tools and runtimes: GeoPackage layers, HTML maps, ONNX.

Submodules (import them directly; this package imports nothing heavy on purpose so that
``import stgeo_kd.export`` stays cheap for the CLI):

- :mod:`stgeo_kd.export.vector`: ``write_gpkg`` writes a GeoDataFrame to a GeoPackage layer
  atomically, keeping its CRS.
- :mod:`stgeo_kd.export.maps`: ``forecast_map`` builds a folium map comparing teacher and
  student per sensor; ``save_map`` writes it to an HTML file atomically.
- :mod:`stgeo_kd.export.onnx`: ``export_onnx`` / ``check_onnx`` for student models (needs the
  ``onnx`` extra).
- :mod:`stgeo_kd.export.weights`: ``load_weights`` / ``load_state_dict`` read saved weights
  (``.pt`` with ``torch.load(..., weights_only=True)``, or ``.safetensors``) and refuse files
  that carry Python objects which could run code.
"""
