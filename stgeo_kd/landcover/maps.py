"""Interactive HTML map of class maps: the student's, the teacher's and the labels, each as an
image layer in the classes' colours, a layer of the split, and a legend of the classes.

Class grids are reprojected to Web Mercator with nearest-neighbour resampling (codes are never
blended). Every user-supplied string (class names, title, layer names) is HTML-escaped with
the helper of the sensor maps (:func:`stgeo_kd.export.maps._esc`).
"""

from __future__ import annotations

from collections.abc import Sequence

import folium
import numpy as np
from affine import Affine

from stgeo_kd.export.maps import _esc
from stgeo_kd.export.raster_maps import frame_to_webmercator
from stgeo_kd.landcover.split import BUFFER

SPLIT_COLORS = {"train": "#4575b4", "val": "#fdae61", "test": "#d73027", BUFFER: "#9e9e9e"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test", BUFFER: "buffer (dropped from training)"}


def index_to_webmercator(index: np.ndarray, crs, transform: Affine, max_pixels: int = 1024):
    """Reproject an (H, W) int grid (-1 = nothing) to EPSG:3857 with nearest neighbours, at most
    ``max_pixels`` on its longer side. Returns the grid and ``[[south, west], [north, east]]``."""
    return frame_to_webmercator(index.astype(np.int32), crs, transform, max_pixels, nodata=-1, categorical=True)


def _rgba(index: np.ndarray, colors: Sequence[str]) -> np.ndarray:
    table = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] + [255] for c in colors] + [[0, 0, 0, 0]],
                     dtype=np.uint8)
    return table[np.where(index >= 0, index, len(colors))]


def class_map(
    layers: Sequence[tuple[str, np.ndarray]],
    names: Sequence[str],
    colors: Sequence[str],
    crs,
    transform: Affine,
    *,
    split: np.ndarray | None = None,
    title: str = "stgeo_kd land cover",
    shown: int = 1,
) -> folium.Map:
    """A folium map with one image layer per ``(name, (H, W) class index grid)`` (-1 =
    nothing), drawn in ``colors``; the first ``shown`` are visible. ``split``: (H, W) split
    names per pixel, drawn as one more (hidden) layer. A fixed legend lists the classes."""
    m = folium.Map(tiles=None, control_scale=True)
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap").add_to(m)
    bounds = None
    for i, (name, grid) in enumerate(layers):
        merc, bounds = index_to_webmercator(np.asarray(grid), crs, transform)
        folium.raster_layers.ImageOverlay(_rgba(merc, colors), bounds=bounds, name=_esc(name), opacity=0.8,
                                          show=i < shown, interactive=False, zindex=1).add_to(m)
    if split is not None:
        keys = list(SPLIT_COLORS)
        grid = np.full(split.shape, -1, dtype=np.int32)
        for j, key in enumerate(keys):
            grid[split == key] = j
        merc, bounds = index_to_webmercator(grid, crs, transform)
        folium.raster_layers.ImageOverlay(_rgba(merc, [SPLIT_COLORS[k] for k in keys]), bounds=bounds,
                                          name="Split of the labelled pixels (train / validation / test / buffer)",
                                          opacity=0.8, show=False, interactive=False, zindex=1).add_to(m)
    root = m.get_root()
    safe_title = _esc(title)
    root.title = safe_title
    root.html.add_child(folium.Element(
        '<div style="position: fixed; top: 10px; left: 50%; transform: translateX(-50%); z-index: 1000; '
        'background: rgba(255,255,255,0.85); padding: 4px 12px; border-radius: 4px; font: bold 15px sans-serif;">'
        f"{safe_title}</div>"))
    rows = "".join(f'<span style="color:{_esc(c)}">&#9632;</span> {_esc(n)}<br>' for n, c in zip(names, colors))
    if split is not None:
        rows += "<b>Split</b><br>" + "".join(f'<span style="color:{SPLIT_COLORS[k]}">&#9632;</span> '
                                             f"{_esc(SPLIT_NAMES[k])}<br>" for k in SPLIT_COLORS)
    root.html.add_child(folium.Element(
        '<div style="position: fixed; bottom: 20px; left: 10px; z-index: 1000; background: rgba(255,255,255,0.85); '
        f'padding: 4px 8px; border-radius: 4px; font: 12px sans-serif;"><b>Classes</b><br>{rows}</div>'))
    folium.LayerControl(collapsed=False).add_to(m)
    if bounds is not None:
        m.fit_bounds(bounds)
    return m
