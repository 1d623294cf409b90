"""Interactive HTML map of per-point predictions: errors of the student and the teacher, and
which split each point is in.

Every user-supplied string (ids, column names, units, title) is HTML-escaped with the same
helper as the sensor maps (:func:`stgeo_kd.export.maps._esc`): folium pastes tooltip HTML and
layer names into the page unescaped.
"""

from __future__ import annotations

import folium
import geopandas as gpd
import numpy as np

from stgeo_kd.export.maps import (
    _TOOLTIP_CSS,
    _colormap,
    _esc,
    _fmt,
    _label,
    _model_label,
    _sensor_points,
)
from stgeo_kd.spatial.split import BUFFER, SPLITS

_SPLIT_COLORS = {"train": "#4575b4", "val": "#fdae61", "test": "#d73027", BUFFER: "#9e9e9e"}
_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test", BUFFER: "buffer (dropped from training)"}


def points_map(
    predictions: gpd.GeoDataFrame,
    models: list[str],
    *,
    id_column: str = "point_id",
    title: str = "stgeo_kd points",
    units: str = "",
) -> folium.Map:
    """Map one point per row: layers coloured by each model's absolute error on the test
    points (student shown first), and a layer coloured by split. Hovering a point shows its
    observed value, every model's prediction and absolute error, and its split.

    Args:
        predictions: the per-point GeoDataFrame of :func:`stgeo_kd.spatial.pipeline.run_points`,
            with ``split``, ``observed``, ``<model>`` and ``abserr_<model>`` columns; any CRS.
        models: the models to show, in table order; the first one colours the visible layer.
        id_column: the point id column.
        title, units: page title and units of values and errors.
    """
    points = _sensor_points(predictions)
    m = folium.Map(tiles=None, control_scale=True)
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap").add_to(m)
    root = m.get_root()
    root.header.add_child(folium.Element(_TOOLTIP_CSS), name="stgeo_tooltip_css")
    safe_title = _esc(title)
    root.title = safe_title
    root.html.add_child(folium.Element(f'<div class="stgeo-title">{safe_title}</div>'))
    unit_suffix = f" ({_esc(units)})" if units else ""

    tips = [_tooltip(row, models, id_column, unit_suffix) for _, row in predictions.iterrows()]
    test = (predictions["split"] == "test").to_numpy()
    error_models = [r for r in ("student", "teacher") if r in models]
    colormap = _colormap([predictions.loc[test, f"abserr_{r}"] for r in error_models],
                         _esc(f"absolute error on the test points{(' (' + units + ')') if units else ''}"))
    for i, role in enumerate(error_models):
        values = predictions[f"abserr_{role}"].to_numpy(dtype=float)
        group = folium.FeatureGroup(name=_esc(f"{_model_label(role)}: absolute error, test points"), show=i == 0)
        for j in np.argsort(np.where(test, values, -np.inf), kind="stable"):
            if not test[j]:
                continue
            _marker(points.iloc[j], colormap.rgb_hex_str(values[j]), tips[j]).add_to(group)
        group.add_to(m)
    split_group = folium.FeatureGroup(name="Split (train / validation / test / buffer)", show=not error_models)
    for j, split in enumerate(predictions["split"]):
        _marker(points.iloc[j], _SPLIT_COLORS.get(split, "#000000"), tips[j], radius=4).add_to(split_group)
    split_group.add_to(m)
    colormap.add_to(m)
    legend = "".join(f'<span style="color:{_SPLIT_COLORS[s]}">&#9679;</span> {_esc(_SPLIT_NAMES[s])}<br>'
                     for s in (*SPLITS, BUFFER))
    root.html.add_child(folium.Element(
        '<div style="position: fixed; bottom: 20px; left: 10px; z-index: 1000; background: rgba(255,255,255,0.85); '
        f'padding: 4px 8px; border-radius: 4px; font: 12px sans-serif;"><b>Split</b><br>{legend}</div>'))
    folium.LayerControl(collapsed=False).add_to(m)
    minx, miny, maxx, maxy = points.total_bounds
    m.fit_bounds([[miny, minx], [maxy, maxx]], padding=(30, 30), max_zoom=16)
    return m


def _marker(point, color: str, tip: str, radius: int = 7) -> folium.CircleMarker:
    return folium.CircleMarker(
        location=[round(point.y, 6), round(point.x, 6)], radius=radius, color="#333333", weight=1,
        fill=True, fill_color=color, fill_opacity=0.9, tooltip=folium.Tooltip(tip, sticky=True),
    )


def _tooltip(row, models: list[str], id_column: str, unit_suffix: str) -> str:
    split = _esc(_SPLIT_NAMES.get(row["split"], row["split"]))
    parts = ['<div class="stgeo-tip">', f'<b>Point {_label(row[id_column])}</b> <span class="stgeo-id">({split})</span>',
             f"<table><thead><tr><th>Model</th><th>Prediction{unit_suffix}</th><th>|error|</th></tr></thead><tbody>",
             f"<tr><td>Observed</td><td>{_fmt(row['observed'])}</td><td></td></tr>"]
    for role in models:
        parts.append(f"<tr><td>{_esc(_model_label(role))}</td><td>{_fmt(row[role])}</td>"
                     f"<td>{_fmt(row[f'abserr_{role}'])}</td></tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)
