"""Interactive HTML maps comparing teacher and student forecasts per sensor.

Everything user-supplied (sensor ids, names, column names, units, title, road names) is
HTML-escaped before it reaches the page: folium pastes tooltip HTML and layer names into
the page unescaped, and Leaflet renders them with ``innerHTML``.
"""

from __future__ import annotations

import html
import math
import numbers
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import branca.colormap
import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from stgeo_kd._atomic import write_text_atomic
from stgeo_kd.errors import StgeoError, did_you_mean

__all__ = ["forecast_map", "save_map"]

# Display names and order for the models stgeo_kd evaluates; other suffixes keep their name.
_MODEL_LABELS = {
    "teacher": "Teacher",
    "student": "Student",
    "student_scratch": "Student from scratch",
    "persistence": "Persistence",
    "historical_average": "Historical average",
}
_FORECAST_KINDS = ("observed", "teacher", "student")
_FORECAST_RE = re.compile(r"^(observed|teacher|student)_h(\d+)$")
_METRIC_RE = re.compile(r"^([A-Za-z0-9]+)_(.+)$")

_COLORS = ("#1a9850", "#fee08b", "#d73027")  # green -> yellow -> red
_NAN_COLOR = "#9e9e9e"
_ROAD_STYLE = {"color": "#707070", "weight": 1.2, "opacity": 0.7, "fill": False}
# Tolerance in degrees (~1 m): drops redundant vertices of dense road lines without a visible change.
_ROAD_SIMPLIFY_DEG = 1e-5
# Six decimals of a degree is ~0.1 m: ample for display, and it keeps the HTML small.
_COORD_DECIMALS = 6
_MISSING = "n/a"

_TOOLTIP_CSS = """
<style>
.stgeo-tip table { border-collapse: collapse; margin-top: 4px; }
.stgeo-tip th, .stgeo-tip td { padding: 1px 6px; text-align: right; }
.stgeo-tip th:first-child, .stgeo-tip td:first-child { text-align: left; }
.stgeo-tip thead th { border-bottom: 1px solid #999; }
.stgeo-tip .stgeo-id { color: #555; }
.stgeo-title { position: fixed; top: 10px; left: 50%; transform: translateX(-50%);
  z-index: 1000; background: rgba(255, 255, 255, 0.85); padding: 4px 12px;
  border-radius: 4px; font: bold 15px sans-serif; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); }
</style>
"""


def forecast_map(
    predictions: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None = None,
    *,
    error_column: str = "mae_student",
    compare_columns: Sequence[str] | None = None,
    title: str = "stgeo_kd forecast",
    units: str = "",
    id_column: str = "sensor_id",
    name_column: str | None = None,
) -> folium.Map:
    """Build an interactive map of per-sensor errors and forecasts, teacher vs student.

    The map has OpenStreetMap and a light CartoDB positron base layer (CARTO now asks for an
    API key and may not serve keyless tiles; OpenStreetMap is the default), an optional roads
    layer (thin grey lines), a sensors layer coloured by ``error_column`` (green = low,
    red = high, grey = missing) with its colour legend, and, when the data has it, a
    second sensors layer coloured by the teacher's error on the same colour scale (hidden
    at first; switch it on in the layer control). Hovering a sensor shows a table of the
    error of every model and the observed / teacher / student values per horizon; missing
    values read "n/a".

    Args:
        predictions: One row per sensor, in any CRS (reprojected to EPSG:4326). Point
            geometries (other geometries are represented by an interior point). Typical
            columns: ``sensor_id``, ``name``, ``mae_teacher``, ``mae_student``,
            ``mae_student_scratch``, ``mae_persistence``, ``mae_historical_average`` and
            forecast columns ``observed_h3``, ``teacher_h3``, ``student_h3``, ... NaN is
            allowed anywhere.
        roads: Optional road network (lines, any CRS) drawn under the sensors. A ``name``
            column, if present, becomes the road tooltip.
        error_column: Numeric column that colours the sensors. Its prefix up to the first
            underscore (``mae`` in ``mae_student``) names the metric; the other columns
            with that prefix fill the error table and the teacher layer uses
            ``<metric>_teacher`` (or ``<metric>_student`` when ``error_column`` is the
            teacher's).
        compare_columns: Columns for the tooltip table, in this order. Default: all
            ``<metric>_*`` columns and all ``{observed,teacher,student}_h<N>`` columns.
        title: Title shown on top of the map and as the page title.
        units: Units of errors and forecasts, e.g. ``"km/h"``; shown in the legend and table.
        id_column: Column with the sensor id.
        name_column: Column with a readable sensor name; defaults to ``name`` when present.

    Returns:
        The folium map; write it with :func:`save_map`.

    Raises:
        StgeoError: if ``predictions`` or ``roads`` is not a GeoDataFrame or has no CRS, a
            named column is missing, ``error_column`` is not numeric, or no sensor has a
            geometry.
    """
    _check_gdf(predictions, "predictions")
    metric, model = _split_metric(error_column)
    _require_columns(predictions, [id_column, error_column], "predictions")
    if name_column is None:
        name_column = "name" if "name" in predictions.columns else None
    else:
        _require_columns(predictions, [name_column], "predictions")
    if compare_columns is None:
        compare = _detect_compare_columns(predictions, metric)
    else:
        if isinstance(compare_columns, str):
            raise StgeoError(
                f"compare_columns must be a list of column names, got the string {compare_columns!r}."
            )
        compare = list(compare_columns)
        _require_columns(predictions, compare, "predictions")

    alt_column = _alternative_error_column(predictions, metric, error_column)
    errors = _numeric(predictions, error_column)
    alt_errors = _numeric(predictions, alt_column) if alt_column else None

    points = _sensor_points(predictions)
    valid = ~(points.is_empty | points.isna())
    if not valid.any():
        raise StgeoError(
            "None of the sensors in predictions has a geometry, so there is nothing to map."
        )

    m = folium.Map(tiles=None, control_scale=True)
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap").add_to(m)
    with warnings.catch_warnings():
        # xyzservices now warns on every build that CARTO tiles want an API key, then returns
        # the keyless URL folium has always used. Keep the option quiet; OSM stays the default.
        warnings.filterwarnings("ignore", message="CartoDB tiles now require an API key")
        folium.TileLayer("CartoDB positron", name="Light (CartoDB positron)").add_to(m)
    root = m.get_root()
    root.header.add_child(folium.Element(_TOOLTIP_CSS), name="stgeo_tooltip_css")
    if title:
        safe_title = _esc(title)
        root.title = safe_title
        root.html.add_child(folium.Element(f'<div class="stgeo-title">{safe_title}</div>'))

    if roads is not None:
        _roads_layer(roads).add_to(m)

    scale_values = [errors] if alt_errors is None else [errors, alt_errors]
    colormap = _colormap(scale_values, _caption(metric, model, units))

    tooltips = [
        _tooltip_html(row, id_column, name_column, compare, metric, error_column, units)
        for _, row in predictions.iterrows()
    ]
    layers = [(error_column, errors, True)]
    if alt_column is not None:
        layers.append((alt_column, alt_errors, False))
    for column, values, show in layers:
        _, layer_model = _split_metric(column)
        name = f"Sensors: {_caption(metric, layer_model, units)}"
        if column != error_column:
            name += " (same colour scale)"
        group = folium.FeatureGroup(name=name, show=show)
        _add_markers(group, points, valid, values, tooltips, colormap)
        group.add_to(m)

    colormap.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)

    minx, miny, maxx, maxy = points[valid].total_bounds
    m.fit_bounds([[miny, minx], [maxy, maxx]], padding=(30, 30), max_zoom=16)
    return m


def save_map(m: folium.Map, path: str | os.PathLike[str]) -> Path:
    """Write the map to one HTML file, atomically (Leaflet and folium load from CDNs on opening).

    Args:
        m: Map from :func:`forecast_map` (any folium map works).
        path: Destination ``.html`` file; missing parent folders are created.

    Returns:
        The destination path as a :class:`pathlib.Path`.

    Raises:
        StgeoError: if ``m`` is not a folium map or the destination cannot be written.
    """
    if not isinstance(m, folium.Map):
        raise StgeoError(f"save_map needs a folium.Map, got {type(m).__name__}.")
    path = Path(path)
    if path.is_dir():
        raise StgeoError(f"{path} is a folder; give a file name ending in .html.")
    page = m.get_root().render()
    try:
        return write_text_atomic(path, page)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StgeoError(
            f"Cannot write {path}: the folder {path.parent} cannot be created or written ({reason}). "
            "Choose another output folder or fix its permissions."
        ) from exc


def _esc(value: object) -> str:
    """Escape ``value`` for HTML that folium pastes into a JavaScript template literal.

    Args:
        value: Any value; converted with ``str``.

    Returns:
        HTML-escaped text that is also inert inside a JS template literal.
    """
    text = html.escape(str(value), quote=True)
    # Tooltip HTML lands inside `...` in the page script: a backslash could spell "<" as
    # \u003c, "${" would run code, and a backtick would end the literal. Entities render
    # the same characters as text.
    return text.replace("\\", "&#92;").replace("`", "&#96;").replace("$", "&#36;")


def _check_gdf(gdf: object, what: str) -> None:
    """Raise StgeoError unless ``gdf`` is a GeoDataFrame with a CRS."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise StgeoError(f"{what} must be a GeoDataFrame, got {type(gdf).__name__}.")
    if gdf.crs is None:
        raise StgeoError(
            f"{what} has no CRS, so it cannot be placed on the map. "
            "Set it first, e.g. gdf.set_crs('EPSG:4326') for longitude/latitude."
        )


def _require_columns(gdf: gpd.GeoDataFrame, columns: Sequence[str], what: str) -> None:
    """Raise StgeoError naming the first of ``columns`` missing from ``gdf``."""
    present = [str(c) for c in gdf.columns if c != gdf.geometry.name]
    for column in columns:
        if column not in gdf.columns:
            raise StgeoError(f"{what} has no column {column!r}. {did_you_mean(str(column), present)}")


def _split_metric(column: str) -> tuple[str, str]:
    """Split ``mae_student`` into (``mae``, ``student``); a name without ``_`` is (name, "")."""
    match = _METRIC_RE.match(str(column))
    if match is None:
        return str(column), ""
    return match.group(1), match.group(2)


def _model_label(model: str) -> str:
    """Readable model name (not escaped)."""
    return _MODEL_LABELS.get(model, model.replace("_", " ").capitalize())


def _caption(metric: str, model: str, units: str) -> str:
    """Escaped legend/layer caption such as ``Student test MAE (km/h)``."""
    text = f"{_model_label(model)} test {metric.upper()}" if model else metric
    if units:
        text += f" ({units})"
    # The legend is drawn with d3 .text(), which would be safe unescaped, but layer names go
    # through innerHTML; escape both alike so the project rule holds everywhere.
    return _esc(text)


def _numeric(gdf: gpd.GeoDataFrame, column: str) -> pd.Series:
    """Return ``column`` as float with NaN for missing or infinite values.

    Raises:
        StgeoError: if the column holds non-numeric values.
    """
    raw = gdf[column]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = values.isna() & raw.notna()
    if bad.any():
        example = raw[bad].iloc[0]
        raise StgeoError(
            f"Column {column!r} must be numeric to colour the map, but holds {example!r}."
        )
    return values.where(np.isfinite(values))


def _detect_compare_columns(gdf: gpd.GeoDataFrame, metric: str) -> list[str]:
    """Return the ``<metric>_*`` columns (known models first) and the forecast columns."""
    prefix = f"{metric}_"
    metric_cols = [c for c in gdf.columns if isinstance(c, str) and c.startswith(prefix)]
    order = list(_MODEL_LABELS)
    metric_cols.sort(
        key=lambda c: order.index(c[len(prefix):]) if c[len(prefix):] in order else len(order)
    )
    forecast_cols = [c for c in gdf.columns if isinstance(c, str) and _FORECAST_RE.match(c)]
    return metric_cols + forecast_cols


def _alternative_error_column(gdf: gpd.GeoDataFrame, metric: str, error_column: str) -> str | None:
    """Return the column for the second (teacher) sensors layer, or None if there is none."""
    for model in ("teacher", "student"):
        column = f"{metric}_{model}"
        if column != error_column and column in gdf.columns:
            return column
    return None


def _sensor_points(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Return one EPSG:4326 point per row (empty where the geometry is missing)."""
    geoms = gdf.geometry
    missing = geoms.isna() | geoms.is_empty
    # representative_point needs a geometry; an empty point keeps rows aligned with the data.
    filled = geoms.where(~missing, shapely.Point())
    points = filled.representative_point().to_crs(4326)
    return points.where(~missing, shapely.Point())


def _colormap(series: list[pd.Series], caption: str) -> branca.colormap.LinearColormap:
    """Green-yellow-red colour scale spanning all finite values in ``series``."""
    values = pd.concat(series).dropna()
    if values.empty:
        vmin, vmax = 0.0, 1.0
    else:
        vmin, vmax = float(values.min()), float(values.max())
        if vmax <= vmin:
            # A single value would make a zero-width scale (division by zero in branca).
            vmin, vmax = vmin - 0.5, vmax + 0.5
    return branca.colormap.LinearColormap(list(_COLORS), vmin=vmin, vmax=vmax, caption=caption)


def _add_markers(
    group: folium.FeatureGroup,
    points: gpd.GeoSeries,
    valid: pd.Series,
    values: pd.Series,
    tooltips: list[str],
    colormap: branca.colormap.LinearColormap,
) -> None:
    """Add one CircleMarker per sensor to ``group``, worst errors drawn last (on top)."""
    order = np.argsort(values.fillna(-np.inf).to_numpy(), kind="stable")
    for i in order:
        if not valid.iloc[i]:
            continue
        value = values.iloc[i]
        fill = _NAN_COLOR if pd.isna(value) else colormap.rgb_hex_str(value)
        point = points.iloc[i]
        folium.CircleMarker(
            location=[round(point.y, _COORD_DECIMALS), round(point.x, _COORD_DECIMALS)],
            radius=7,
            color="#333333",
            weight=1,
            fill=True,
            fill_color=fill,
            fill_opacity=0.9,
            tooltip=folium.Tooltip(tooltips[i], sticky=True),
        ).add_to(group)


def _fmt(value: object) -> str:
    """Escaped display text for a table cell; missing values read "n/a"."""
    if value is None or value is pd.NA or value is pd.NaT:
        return _MISSING
    if isinstance(value, bool | np.bool_):
        return _esc(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return f"{number:.2f}" if math.isfinite(number) else _MISSING
    try:
        if pd.isna(value):
            return _MISSING
    except (TypeError, ValueError):
        pass  # lists and arrays are not scalars; show them as text
    return _esc(value)


def _label(value: object) -> str:
    """Escaped id or name; ids stored as floats (a NaN elsewhere in the column) lose ".0"."""
    if isinstance(value, float | np.floating) and math.isfinite(value):
        # Unlike table cells, ids keep every digit rather than two decimals.
        return str(int(value)) if float(value).is_integer() else _esc(value)
    return _fmt(value)


def _tooltip_html(
    row: pd.Series,
    id_column: str,
    name_column: str | None,
    compare: list[str],
    metric: str,
    error_column: str,
    units: str,
) -> str:
    """Escaped HTML table comparing models for one sensor.

    Args:
        row: The sensor's row of ``predictions``.
        id_column: Column with the sensor id.
        name_column: Column with the readable name, or None.
        compare: Columns to show: ``<metric>_*`` columns go to the error table,
            ``{observed,teacher,student}_h<N>`` to the forecast table, others to a third.
        metric: Metric prefix of ``error_column``.
        error_column: Column colouring the map; its row is shown in bold.
        units: Units for the table headers (unescaped).

    Returns:
        HTML for a folium Tooltip; all data is escaped.
    """
    unit_suffix = f" ({_esc(units)})" if units else ""
    sensor_id = _label(row[id_column])
    name = _label(row[name_column]) if name_column is not None else _MISSING
    parts = ['<div class="stgeo-tip">']
    if name != _MISSING:
        parts.append(f'<b>{name}</b><br><span class="stgeo-id">Sensor {sensor_id}</span>')
    else:
        parts.append(f"<b>Sensor {sensor_id}</b>")

    prefix = f"{metric}_"
    error_cols, other_cols = [], []
    horizons: dict[int, dict[str, str]] = {}
    for column in compare:
        match = _FORECAST_RE.match(str(column))
        if match:
            horizons.setdefault(int(match.group(2)), {})[match.group(1)] = column
        elif str(column).startswith(prefix):
            error_cols.append(column)
        else:
            other_cols.append(column)

    if error_cols:
        parts.append(
            f"<table><thead><tr><th>Model</th><th>{_esc(metric.upper())}{unit_suffix}</th></tr></thead><tbody>"
        )
        for column in error_cols:
            label = _esc(_model_label(str(column)[len(prefix):]))
            cell = _fmt(row[column])
            if column == error_column:
                parts.append(f"<tr><td><b>{label}</b></td><td><b>{cell}</b></td></tr>")
            else:
                parts.append(f"<tr><td>{label}</td><td>{cell}</td></tr>")
        parts.append("</tbody></table>")

    if horizons:
        kinds = [k for k in _FORECAST_KINDS if any(k in cols for cols in horizons.values())]
        header = "".join(f"<th>{k.capitalize()}</th>" for k in kinds)
        parts.append(f"<table><thead><tr><th>Horizon{unit_suffix}</th>{header}</tr></thead><tbody>")
        for horizon in sorted(horizons):
            cols = horizons[horizon]
            cells = "".join(
                f"<td>{_fmt(row[cols[k]]) if k in cols else _MISSING}</td>" for k in kinds
            )
            parts.append(f"<tr><td>h{horizon}</td>{cells}</tr>")
        parts.append("</tbody></table>")

    if other_cols:
        parts.append("<table><tbody>")
        for column in other_cols:
            parts.append(f"<tr><td>{_esc(column)}</td><td>{_fmt(row[column])}</td></tr>")
        parts.append("</tbody></table>")

    parts.append("</div>")
    return "".join(parts)


def _roads_layer(roads: gpd.GeoDataFrame) -> folium.FeatureGroup:
    """Return a FeatureGroup drawing ``roads`` as thin grey lines, with escaped name tooltips.

    Raises:
        StgeoError: if ``roads`` is not a GeoDataFrame or has no CRS.
    """
    _check_gdf(roads, "roads")
    geoms = roads.geometry.to_crs(4326)
    keep = ~(geoms.isna() | geoms.is_empty) & ~geoms.geom_type.isin(["Point", "MultiPoint"])
    geoms = geoms[keep]
    geoms = geoms.simplify(_ROAD_SIMPLIFY_DEG, preserve_topology=False)
    geoms = gpd.GeoSeries(
        shapely.transform(geoms.to_numpy(), lambda xy: np.round(xy, _COORD_DECIMALS)), crs=4326
    )
    data = gpd.GeoDataFrame(geometry=geoms.reset_index(drop=True))
    group = folium.FeatureGroup(name="Roads", show=True)
    tooltip = None
    if "name" in roads.columns:
        # GeoJsonTooltip builds its HTML from the raw properties, so store them escaped.
        data["label"] = [_road_label(v) for v in roads.loc[keep, "name"]]
        tooltip = folium.GeoJsonTooltip(fields=["label"], labels=False, sticky=True)
    data = data[~data.geometry.is_empty]
    if data.empty:
        return group
    folium.GeoJson(
        # A plain dict without per-feature bbox/id keeps thousands of roads compact.
        data.to_geo_dict(drop_id=True, show_bbox=False),
        name="Roads",
        style_function=lambda _feature: _ROAD_STYLE,
        tooltip=tooltip,
        smooth_factor=1.0,
    ).add_to(group)
    return group


def _road_label(value: object) -> str:
    """Escaped road name; OSM-derived data may hold lists of names."""
    if isinstance(value, list | tuple | np.ndarray):
        value = ", ".join(str(v) for v in value)
    text = _fmt(value)
    return "Unnamed road" if text == _MISSING else text
