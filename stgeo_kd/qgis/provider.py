"""The stgeo_kd Processing provider (toolbox group "stgeo_kd")."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsProcessingProvider

from stgeo_kd import __version__
from stgeo_kd.qgis.algorithms import (
    DistillTrafficAlgorithm,
    ForecastRasterAlgorithm,
    ForecastStudentAlgorithm,
)

PROVIDER_ID = "stgeo_kd"


class StgeoKdProvider(QgsProcessingProvider):
    """Algorithms ``stgeo_kd:distill_traffic``, ``stgeo_kd:forecast_student`` and ``stgeo_kd:forecast_raster``."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "stgeo_kd"

    def longName(self) -> str:
        return f"stgeo_kd {__version__}: knowledge distillation for spatio-temporal forecasting"

    def versionInfo(self) -> str:
        return __version__

    def icon(self):
        return QgsApplication.getThemeIcon("/processingAlgorithm.svg")

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(DistillTrafficAlgorithm())
        self.addAlgorithm(ForecastStudentAlgorithm())
        self.addAlgorithm(ForecastRasterAlgorithm())


#: the registered provider: Python must keep a reference, or its algorithms vanish with it
_registered: list[StgeoKdProvider] = []


def register_provider() -> StgeoKdProvider:
    """Add the provider to QGIS's Processing registry (once) and return it."""
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById(PROVIDER_ID)
    if existing is not None:
        return existing
    provider = StgeoKdProvider()
    if not registry.addProvider(provider):
        raise RuntimeError("QGIS refused to register the stgeo_kd Processing provider.")
    _registered[:] = [provider]
    return provider
