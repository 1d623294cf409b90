"""Registers the stgeo_kd Processing provider; works with and without a GUI (``iface`` is
None under qgis_process)."""

from qgis.core import Qgis, QgsApplication, QgsMessageLog

INSTALL_HINT = (
    "The stgeo_kd plugin needs the stgeo_kd Python package (with PyTorch) in the Python that QGIS runs: "
    "python -m pip install torch stgeo_kd[onnx]. See docs/qgis.md of stgeo_kd for Linux, Windows (OSGeo4W) "
    "and macOS."
)


class StgeoKdPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.error = None

    def initProcessing(self):
        if self.provider is not None:
            return
        try:
            from stgeo_kd.qgis.provider import StgeoKdProvider
        except ImportError as exc:
            self.error = f"{INSTALL_HINT} ({exc})"
            QgsMessageLog.logMessage(self.error, "stgeo_kd", Qgis.Critical)
            return
        self.provider = StgeoKdProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        if self.error and self.iface is not None:
            self.iface.messageBar().pushMessage("stgeo_kd", self.error, level=Qgis.Warning, duration=0)

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
