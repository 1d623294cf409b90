"""Point layers with a value to predict: reading, checking and turning them into arrays.

A :class:`PointSet` holds one row per location: the target value, the input features (the
attribute columns, plus the projected coordinates in metres with ``coordinates``), and the
coordinates in metres that the kNN graph and the spatial block split use.
"""

from __future__ import annotations

import importlib.resources
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from stgeo_kd.errors import StgeoError, did_you_mean

#: a data set shipped by a Python package, read offline: ``libpysal:<example folder>/<file>``
PACKAGE_SCHEME = "libpysal:"
#: fewer points than this cannot be split into train, validation and test blocks meaningfully
MIN_POINTS = 10
#: names of the coordinate features appended with ``coordinates: true``
COORD_FEATURES = ("x_m", "y_m")


@dataclass
class PointSet:
    """Locations with a target value and attributes.

    Attributes:
        frame: the layer as read, one row per point, in its own CRS (the CRS set from the
            config when the file had none).
        ids: (N,) point identifiers (``id_column``, else the row number from 0).
        target: (N,) float64 values to predict, in the data's units.
        features: (N, F) float64 model inputs, in their own units (coordinates in metres).
        feature_names: F names, the attribute columns then ``x_m``, ``y_m``.
        xy: (N, 2) float64 coordinates in metres (see ``metric_crs``).
        metric_crs: the CRS of ``xy``: the layer's own when it is projected (its units turned
            into metres), else the UTM zone of the points.
        name, target_name, units: for reports and maps.
    """

    frame: gpd.GeoDataFrame
    ids: np.ndarray
    target: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    xy: np.ndarray
    metric_crs: pyproj.CRS
    name: str
    target_name: str
    units: str = ""

    @property
    def num_points(self) -> int:
        return len(self.target)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "points": self.num_points,
            "target": self.target_name,
            "units": self.units,
            "features": list(self.feature_names),
            "crs": self.frame.crs.to_string() if self.frame.crs is not None else None,
            "metric_crs": self.metric_crs.name,
        }


def resolve_layer_path(path: str, base_dir: str | Path = ".") -> Path:
    """A ``data.points.path`` as a file path: relative to ``base_dir``, or inside the
    ``libpysal`` package for ``libpysal:<example>/<file>`` (read from disk, never downloaded).

    Raises:
        StgeoError: libpysal is not installed, or the file does not exist.
    """
    if path.startswith(PACKAGE_SCHEME):
        rest = path[len(PACKAGE_SCHEME):].strip("/")
        try:
            root = importlib.resources.files("libpysal") / "examples"
        except ModuleNotFoundError:
            raise StgeoError(
                f"data.points.path {path!r} reads a data set shipped by the libpysal package, which is not installed. "
                "Install it with: pip install 'stgeo_kd[spatial]'."
            ) from None
        file = Path(str(root)) / rest
        if not file.is_file():
            shipped = sorted(p.name for p in Path(str(root)).iterdir() if p.is_dir() and not p.name.startswith("_"))
            raise StgeoError(
                f"data.points.path {path!r}: libpysal ships no file {rest!r} (looked in {file.parent}). "
                f"Its example folders: {', '.join(shipped)}."
            )
        return file
    p = Path(path).expanduser()
    p = p if p.is_absolute() else Path(base_dir) / p
    if not p.exists():
        raise StgeoError(f"Point layer {p} does not exist. Check data.points.path (relative to the config file).")
    return p


def read_layer(path: Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a vector layer (GPKG, SHP, GeoJSON ...) as a GeoDataFrame.

    Raises:
        StgeoError: the file cannot be read, or ``layer`` is not in it.
    """
    import pyogrio
    import pyogrio.errors

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, OSError, ValueError) as exc:
        raise StgeoError(f"Cannot read point layer {path}: {str(exc).rstrip('.')}. Give a GeoPackage, Shapefile or GeoJSON file.") from None
    if layer is not None and layer not in layers:
        raise StgeoError(f"{path} has no layer {layer!r}. {did_you_mean(layer, layers)}")
    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError, ValueError) as exc:
        raise StgeoError(f"Cannot read point layer {path}: {str(exc).rstrip('.')}.") from None


def load_points(cfg: Any) -> PointSet:
    """Read ``cfg.data.points`` (a RunConfig with ``data.kind: points``) into a PointSet."""
    p = cfg.data.points
    path = resolve_layer_path(p.path, cfg.base_dir)
    frame = read_layer(path, p.layer)
    return points_from_frame(
        frame,
        target=p.target,
        features=p.features,
        id_column=p.id_column,
        crs=p.crs,
        coordinates=p.coordinates,
        name=cfg.data.name or path.stem,
        units=cfg.data.units,
        source=str(path),
    )


def points_from_frame(
    frame: gpd.GeoDataFrame,
    target: str,
    features: list[str] | None = None,
    id_column: str | None = None,
    crs: str | None = None,
    coordinates: bool = True,
    name: str = "points",
    units: str = "",
    source: str = "the point layer",
) -> PointSet:
    """Check a point GeoDataFrame and turn it into a PointSet.

    Args:
        frame: one row per location, with a geometry (points; other geometries are replaced by
            a point inside them, with a warning).
        target: numeric column to predict (no missing values).
        features: input columns (numeric, no missing values); None: every numeric column but
            ``target`` and ``id_column``.
        id_column: column of unique point ids; None: the row number.
        crs: the CRS of ``frame`` when it has none (EPSG code, WKT or PROJ string).
        coordinates: append the projected x and y in metres to the features.
        name, units: for reports; ``source``: how messages name the data.

    Raises:
        StgeoError: a missing or non-numeric column, missing values, no CRS, a CRS that
            disagrees with ``crs``, missing geometries, duplicate ids, or too few points.
    """
    if not isinstance(frame, gpd.GeoDataFrame):
        raise StgeoError(f"{source} must be a GeoDataFrame (a point layer), got {type(frame).__name__}.")
    frame = _with_crs(frame, crs, source)
    columns = [str(c) for c in frame.columns if c != frame.geometry.name]
    for key, column in (("target", target), ("id_column", id_column)):
        if column is not None and column not in frame.columns:
            raise StgeoError(f"data.points.{key}: {source} has no column {column!r}. {did_you_mean(str(column), columns)}")
    y = _numeric(frame, target, "target", source)

    if id_column is not None:
        ids = frame[id_column].to_numpy()
        if pd.Series(ids).isna().any():
            raise StgeoError(f"data.points.id_column {id_column!r} in {source} has missing ids; every point needs one.")
        dup = pd.Series(ids)[pd.Series(ids).duplicated()]
        if len(dup):
            raise StgeoError(f"data.points.id_column {id_column!r} in {source} repeats ids (e.g. {dup.iloc[0]!r}); "
                             "ids must be unique, or leave id_column out to number the points.")
    else:
        ids = np.arange(len(frame))

    if features is None:
        skip = {target, id_column}
        features = [c for c in columns if c not in skip and _is_numeric_column(frame[c])]
    else:
        for column in features:
            if column not in frame.columns:
                raise StgeoError(f"data.points.features: {source} has no column {column!r}. "
                                 f"{did_you_mean(str(column), columns)}")
            if column == target:
                raise StgeoError(f"data.points.features lists the target {target!r}: a model must not see the value "
                                 "it predicts. Remove it from features.")
        if len(set(features)) != len(features):
            raise StgeoError(f"data.points.features lists a column twice: {features}.")
    x_cols = [_numeric(frame, c, "features", source) for c in features]

    geoms = frame.geometry
    missing = geoms.isna() | geoms.is_empty
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise StgeoError(f"{source}: {int(missing.sum())} row(s) have no geometry (first: row {row}); every point "
                         "needs a location. Remove them or fill in their coordinates.")
    kinds = set(geoms.geom_type)
    if kinds - {"Point"}:
        warnings.warn(f"{source} holds {', '.join(sorted(kinds - {'Point'}))} geometries; each is represented by a point "
                      "inside it (representative_point).", stacklevel=2)
        geoms = geoms.representative_point()
    xy, metric_crs = metric_coordinates(gpd.GeoSeries(geoms, crs=frame.crs), source)

    n = len(frame)
    if n < MIN_POINTS:
        raise StgeoError(f"{source} has {n} point(s); a spatial block split into train, validation and test needs at "
                         f"least {MIN_POINTS}.")
    names = list(features) + (list(COORD_FEATURES) if coordinates else [])
    if not names:
        raise StgeoError(f"{source} has no numeric column besides the target {target!r}, and coordinates is false: "
                         "the models would have no input. Set data.points.coordinates: true or add attribute columns.")
    cols = x_cols + ([xy[:, 0], xy[:, 1]] if coordinates else [])
    x = np.column_stack(cols).astype(np.float64)
    return PointSet(frame=frame, ids=ids, target=y, features=x, feature_names=names, xy=xy,
                    metric_crs=metric_crs, name=name, target_name=target, units=units)


def metric_coordinates(geoms: gpd.GeoSeries, source: str = "the point layer") -> tuple[np.ndarray, pyproj.CRS]:
    """(N, 2) coordinates in metres and the CRS they are in: a projected CRS's own axes scaled
    to metres (feet and other units converted), or the UTM zone of the points for longitude and
    latitude."""
    crs = pyproj.CRS(geoms.crs)
    if crs.is_geographic:
        utm = geoms.estimate_utm_crs()
        pts = geoms.to_crs(utm)
        return np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()]).astype(np.float64), pyproj.CRS(utm)
    if not crs.is_projected:
        raise StgeoError(f"{source} is in {crs.name}, which is neither projected nor longitude/latitude; "
                         "distances cannot be measured. Reproject the layer first.")
    factor = float(crs.axis_info[0].unit_conversion_factor) if crs.axis_info else 1.0
    xy = np.column_stack([geoms.x.to_numpy(), geoms.y.to_numpy()]).astype(np.float64) * factor
    if not np.isfinite(xy).all():
        raise StgeoError(f"{source} has points with infinite or missing coordinates.")
    return xy, crs


def _with_crs(frame: gpd.GeoDataFrame, crs: str | None, source: str) -> gpd.GeoDataFrame:
    if crs is not None:
        try:
            given = pyproj.CRS.from_user_input(crs)
        except pyproj.exceptions.CRSError as exc:
            raise StgeoError(f"data.points.crs {crs!r} is not a CRS pyproj knows ({exc}). Give an EPSG code such as "
                             "EPSG:32618, a WKT or a PROJ string.") from None
        if frame.crs is None:
            return frame.set_crs(given)
        if not pyproj.CRS(frame.crs).equals(given, ignore_axis_order=True):
            raise StgeoError(f"{source} declares its CRS as {frame.crs.to_string()} but data.points.crs says {crs}. "
                             "data.points.crs is only for layers without a CRS: remove it, or fix the file.")
        return frame
    if frame.crs is None:
        raise StgeoError(f"{source} has no CRS, so distances between points cannot be measured. Set data.points.crs "
                         "to the CRS of its coordinates (e.g. EPSG:4326 for longitude/latitude).")
    return frame


def _is_numeric_column(col: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(col.dtype))  # booleans count (as 0/1)


def _numeric(frame: pd.DataFrame, column: str, key: str, source: str) -> np.ndarray:
    col = frame[column]
    if not _is_numeric_column(col):
        converted = pd.to_numeric(col, errors="coerce")
        bad = converted.isna() & col.notna()
        if bad.any():
            example = col[bad].iloc[0]
            raise StgeoError(f"data.points.{key}: column {column!r} of {source} is not numeric (it holds {example!r}). "
                             "Give a numeric column, or convert it first.")
        col = converted
    values = col.astype(float).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise StgeoError(f"data.points.{key}: column {column!r} of {source} has {int(bad.sum())} missing or infinite "
                         f"value(s) (first at row {row}). Fill or drop those rows first.")
    return values
