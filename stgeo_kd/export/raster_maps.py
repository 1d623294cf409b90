"""Interactive map of raster frames: observed and predicted frames as switchable image layers.

Each frame is reprojected to Web Mercator (the projection Leaflet draws in), so the image lines
up with the base map at every zoom; its corners are given to Leaflet in EPSG:4326. All layers
share one colour scale, drawn as a legend with the variable's units. Missing pixels are
transparent. Every user string (title, layer names, units) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

import branca.colormap
import folium
import numpy as np
from affine import Affine

from stgeo_kd.errors import StgeoError
from stgeo_kd.export.maps import _esc

__all__ = ["frame_to_webmercator", "raster_map"]

_COLORS = ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b", "#54278f", "#e7298a")
_TITLE_CSS = (
    "<style>.stgeo-title {{ position: fixed; top: 10px; left: 50%; transform: translateX(-50%); z-index: 1000; "
    "background: rgba(255,255,255,0.85); padding: 4px 12px; border-radius: 4px; font: bold 15px sans-serif; "
    "box-shadow: 0 1px 4px rgba(0,0,0,0.3); }}</style><div class='stgeo-title'>{title}</div>"
)


def frame_to_webmercator(frame: np.ndarray, crs, transform: Affine, max_pixels: int = 1024, *,
                         nodata: float = np.nan, categorical: bool = False):
    """Reproject one (H, W) frame to EPSG:3857, at most ``max_pixels`` on its longer side.

    ``nodata`` marks missing pixels (NaN for values; e.g. -1 for an int grid of class indices).
    Values are resampled bilinearly, ``categorical`` grids (class codes) by nearest neighbour,
    so codes are never blended. Returns the reprojected array (the input's dtype) and its
    bounds ``[[south, west], [north, east]]`` in degrees."""
    from rasterio.crs import CRS
    from rasterio.transform import array_bounds
    from rasterio.warp import (
        Resampling,
        calculate_default_transform,
        reproject,
        transform_bounds,
    )

    h, w = frame.shape
    left, bottom, right, top = array_bounds(h, w, transform)
    dst_crs = CRS.from_epsg(3857)
    dst_t, dw, dh = calculate_default_transform(crs, dst_crs, w, h, left=left, bottom=bottom, right=right, top=top)
    scale = max(dw, dh) / max_pixels
    if scale > 1:
        dst_t = dst_t * Affine.scale(scale)
        dw, dh = max(1, int(np.ceil(dw / scale))), max(1, int(np.ceil(dh / scale)))
    out = np.full((dh, dw), nodata, dtype=frame.dtype)
    reproject(frame, out, src_transform=transform, src_crs=crs, dst_transform=dst_t, dst_crs=dst_crs,
              src_nodata=nodata, dst_nodata=nodata,
              resampling=Resampling.nearest if categorical else Resampling.bilinear)
    west_m, south_m, east_m, north_m = array_bounds(dh, dw, dst_t)
    west, south, east, north = transform_bounds(dst_crs, "EPSG:4326", west_m, south_m, east_m, north_m)
    return out, [[south, west], [north, east]]


def raster_map(
    layers: Sequence[tuple[str, np.ndarray]],
    crs,
    transform: Affine,
    *,
    title: str = "stgeo_kd",
    variable: str = "value",
    units: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    transparent_below: float | None = None,
    shown: int = 1,
    max_pixels: int = 1024,
) -> folium.Map:
    """A folium map with one image layer per ``(name, frame)``; the first ``shown`` are visible.

    Args:
        layers: layer names and (H, W) frames on the grid ``crs`` / ``transform``.
        variable, units: the legend's caption.
        vmin, vmax: colour range (default: the 2nd and 98th percentiles over all layers).
        transparent_below: values below this are drawn transparent (e.g. no rain).

    Raises:
        StgeoError: no layers, or frames that hold no finite value at all.
    """
    if not layers:
        raise StgeoError("raster_map needs at least one (name, frame) layer.")
    projected = [(name, *frame_to_webmercator(np.asarray(f, dtype=np.float32), crs, transform, max_pixels))
                 for name, f in layers]
    finite = np.concatenate([a[np.isfinite(a)].ravel() for _, a, _ in projected])
    if finite.size == 0:
        raise StgeoError("The frames to map hold no valid pixel.")
    lo = float(np.percentile(finite, 2)) if vmin is None else float(vmin)
    hi = float(np.percentile(finite, 98)) if vmax is None else float(vmax)
    hi = hi if hi > lo else lo + 1.0
    cmap = branca.colormap.LinearColormap(list(_COLORS), vmin=lo, vmax=hi)
    cmap.caption = _esc(f"{variable} ({units})" if units else variable)
    bounds = projected[0][2]
    center = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    m = folium.Map(location=center, tiles="OpenStreetMap", control_scale=True)
    for k, (name, arr, b) in enumerate(projected):
        rgba = _colourise(arr, lo, hi, transparent_below)
        folium.raster_layers.ImageOverlay(rgba, bounds=b, name=_esc(name), opacity=0.75, show=k < shown,
                                          interactive=False, zindex=1).add_to(m)
    cmap.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    m.get_root().html.add_child(folium.Element(_TITLE_CSS.format(title=_esc(title))))
    m.fit_bounds(bounds)
    return m


def _colourise(arr: np.ndarray, lo: float, hi: float, transparent_below: float | None) -> np.ndarray:
    """(H, W) values -> (H, W, 4) uint8 RGBA along the map's colour ramp."""
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in _COLORS], dtype=np.float64)
    pos = np.clip((np.nan_to_num(arr, nan=lo) - lo) / (hi - lo), 0.0, 1.0) * (len(_COLORS) - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, len(_COLORS) - 2)
    frac = (pos - i0)[..., None]
    rgb = stops[i0] * (1 - frac) + stops[i0 + 1] * frac
    alpha = np.where(np.isfinite(arr), 255, 0)
    if transparent_below is not None:
        alpha = np.where(np.nan_to_num(arr, nan=-np.inf) < transparent_below, 0, alpha)
    return np.concatenate([rgb, alpha[..., None]], axis=-1).astype(np.uint8)
