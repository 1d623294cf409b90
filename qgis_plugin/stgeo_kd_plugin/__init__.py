"""QGIS plugin entry point: the stgeo_kd Processing provider.

The plugin is thin: the algorithms live in the stgeo_kd Python package, which must be
importable in the Python that QGIS runs (see docs/qgis.md). Without it the plugin loads
anyway and says what to install, instead of failing QGIS's start-up.
"""


def classFactory(iface):
    from .plugin import StgeoKdPlugin

    return StgeoKdPlugin(iface)
