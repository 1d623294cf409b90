"""Write GeoDataFrames to GeoPackage, atomically and without losing the CRS."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio.errors

from stgeo_kd._atomic import atomic_path
from stgeo_kd.errors import StgeoError

__all__ = ["write_gpkg"]


def write_gpkg(
    gdf: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    layer: str = "predictions",
) -> Path:
    """Write ``gdf`` as one layer of a GeoPackage file, atomically.

    The file is first written under a temporary name in the destination folder and then
    renamed onto ``path``, so readers never see a half-written file and a failed write
    leaves any previous file untouched. An existing file at ``path`` is replaced as a
    whole (its other layers included).

    Column types GeoPackage cannot store faithfully are converted first (the input is not
    modified): time-zone aware datetimes are converted to UTC (the GeoPackage convention);
    datetimes with sub-millisecond parts (GeoPackage keeps milliseconds), timedeltas and
    periods become ISO 8601 strings.

    Args:
        gdf: GeoDataFrame to write. Must have a CRS; it is stored in the file unchanged.
        path: Destination file; must end in ``.gpkg``. Missing parent folders are created.
        layer: Layer name inside the GeoPackage.

    Returns:
        The destination path as a :class:`pathlib.Path`.

    Raises:
        StgeoError: if ``gdf`` is not a GeoDataFrame or has no CRS, ``layer`` is empty,
            ``path`` does not end in ``.gpkg`` or is a folder, the destination folder
            cannot be created or written, or GDAL rejects the data (e.g. an unsupported
            column type such as complex numbers).
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise StgeoError(
            f"write_gpkg needs a GeoDataFrame, got {type(gdf).__name__}. "
            "Build one with geopandas.GeoDataFrame(df, geometry=..., crs=...)."
        )
    if gdf.crs is None:
        raise StgeoError(
            "The GeoDataFrame has no CRS, so GIS tools could not place it. "
            "Set it first, e.g. gdf.set_crs('EPSG:4326') for longitude/latitude."
        )
    if not isinstance(layer, str) or not layer.strip():
        raise StgeoError(f"The GeoPackage layer name must be a non-empty string, got {layer!r}.")
    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise StgeoError(f"{path} does not end in .gpkg; write_gpkg only writes GeoPackage files.")
    if path.is_dir():
        raise StgeoError(f"{path} is a folder; give a file name ending in .gpkg.")

    data = _gpkg_ready(gdf)
    folder = path.parent
    try:
        with atomic_path(path) as tmp:
            data.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")
    except OSError as exc:
        # atomic_path creates the folder and a temporary file there; failing that means the
        # folder is the problem (a file in the way, no permission, read-only disk).
        reason = exc.strerror or str(exc)
        raise StgeoError(
            f"Cannot write {path}: the folder {folder} cannot be created or written ({reason}). "
            "Choose another output folder or fix its permissions."
        ) from exc
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, NotImplementedError) as exc:
        raise StgeoError(f"Could not write layer {layer!r} to {path}: {exc}") from exc
    return path


def _gpkg_ready(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return ``gdf`` (or a converted copy) whose attribute columns GeoPackage stores faithfully.

    Args:
        gdf: The GeoDataFrame to write.

    Returns:
        ``gdf`` itself when nothing needs converting, else a shallow copy with converted
        columns and string column names.
    """
    converted: dict[object, pd.Series] = {}
    geometry_name = gdf.geometry.name
    for name in gdf.columns:
        if name == geometry_name:
            continue
        col = gdf[name]
        dtype = col.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            # GeoPackage datetimes are UTC; other offsets are stored but read back with
            # "non-conformant content" warnings.
            utc = col.dt.tz_convert("UTC")
            converted[name] = _iso_strings(utc) if _has_sub_millisecond(utc) else utc
        elif pd.api.types.is_datetime64_dtype(dtype):
            if _has_sub_millisecond(col):
                converted[name] = _iso_strings(col)
        elif pd.api.types.is_timedelta64_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
            # OGR has no duration or period field type.
            converted[name] = _iso_strings(col)

    needs_rename = any(not isinstance(c, str) for c in gdf.columns)
    if not converted and not needs_rename:
        return gdf
    out = gdf.copy(deep=False)
    for name, values in converted.items():
        out[name] = values
    if needs_rename:
        # OGR field names must be strings.
        out.columns = [str(c) for c in out.columns]
        if len(set(out.columns)) != len(out.columns):
            raise StgeoError(
                "Column names collide once converted to text for GeoPackage: "
                f"{list(gdf.columns)!r}. Rename the columns so they are distinct strings."
            )
    return out


def _has_sub_millisecond(col: pd.Series) -> bool:
    """Return True if any datetime in ``col`` has a part finer than a millisecond."""
    valid = col.dropna()
    if valid.empty:
        return False
    return bool(((valid.dt.microsecond % 1000) != 0).any() or (valid.dt.nanosecond != 0).any())


def _iso_strings(col: pd.Series) -> pd.Series:
    """Return ``col`` as ISO 8601 strings (object dtype), with None where values are missing."""
    return pd.Series(
        [None if pd.isna(v) else v.isoformat() if hasattr(v, "isoformat") else str(v) for v in col],
        index=col.index,
        dtype=object,
    )
