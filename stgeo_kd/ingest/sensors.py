"""Sensor readings (wide or long tables, CSV or Parquet) and sensor locations -> xarray / GeoDataFrame.

Missing readings stay missing: NaN and the configured missing codes (default ``0``) become NaN,
which the rest of the package turns into a mask. Nothing is interpolated or filled here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from stgeo_kd.errors import StgeoError

_TABLE_SUFFIXES = {".csv", ".txt", ".tsv", ".gz", ".parquet", ".pq"}


def read_table(path: str | Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file into a DataFrame.

    Raises:
        StgeoError: the file is missing, empty, has an unknown suffix or cannot be parsed.
    """
    path = Path(path)
    if not path.exists():
        raise StgeoError(f"File {path} does not exist. Check the path in your config (paths are relative to the config file).")
    if path.is_dir():
        raise StgeoError(f"{path} is a folder; expected a CSV or Parquet file.")
    if path.stat().st_size == 0:
        raise StgeoError(f"File {path} is empty.")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffixes and (suffixes[-1] in (".csv", ".txt", ".tsv") or suffixes[-2:] == [".csv", ".gz"]):
            sep = "\t" if ".tsv" in suffixes else ","
            # ids such as '0101' must stay text, or they stop matching the other file
            df = pd.read_csv(path, sep=sep, dtype={c: str for c in text_columns})
        else:
            raise StgeoError(f"File {path}: unknown table format {path.suffix!r}; use .csv, .csv.gz or .parquet.")
    except StgeoError:
        raise
    except pd.errors.EmptyDataError:
        raise StgeoError(f"File {path} has no rows or columns.") from None
    except Exception as exc:  # parser errors from pandas/pyarrow come in many types
        raise StgeoError(f"File {path} could not be read as a table: {exc}") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise StgeoError(f"File {path} has no data rows.")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _require_columns(df: pd.DataFrame, columns: Sequence[str], path: Path, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StgeoError(
            f"File {path}: {what} column(s) {missing} not found. Columns present: {list(df.columns)[:20]}. "
            f"Set the matching data.*_column key in the config."
        )


def _parse_times(values: pd.Series, path: Path, column: str) -> pd.DatetimeIndex:
    try:
        times = pd.to_datetime(values, errors="raise")
    except (ValueError, TypeError, OverflowError) as exc:
        raise StgeoError(f"File {path}: column {column!r} has a value that is not a date/time ({exc}).") from None
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if times.isna().any():
        raise StgeoError(f"File {path}: column {column!r} has {int(times.isna().sum())} empty time stamps.")
    return pd.DatetimeIndex(times)


def _to_numeric(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = frame.apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & frame.notna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        example = frame.loc[bad[col], col].iloc[0]
        raise StgeoError(
            f"File {path}: {int(bad.to_numpy().sum())} reading(s) are not numbers, e.g. {example!r} in column {col!r}. "
            "Clean them or write them as empty cells (missing)."
        )
    return out.astype("float64")


def _regularize(wide: pd.DataFrame, path: Path, freq: str | None) -> pd.DataFrame:
    """Sort by time, refuse duplicates and irregular steps, add missing steps as missing rows."""
    if not wide.index.is_monotonic_increasing:
        warnings.warn(f"{path}: rows were not in time order; they were sorted.", stacklevel=3)
        wide = wide.sort_index(kind="stable")
    dup = wide.index.duplicated()
    if dup.any():
        raise StgeoError(
            f"File {path}: {int(dup.sum())} duplicated time stamp(s), first {wide.index[dup][0]}. "
            "Remove or aggregate the duplicates so that each sensor has one reading per time step."
        )
    if len(wide) < 2:
        raise StgeoError(f"File {path}: needs at least two time steps, found {len(wide)}.")
    diffs = np.diff(wide.index.values).astype("timedelta64[s]").astype(np.int64)
    if freq is not None:
        try:
            step = int(pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds())
        except (ValueError, TypeError):
            raise StgeoError(f"data.freq {freq!r} is not a time step such as '5min' or '1h'.") from None
    else:
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
    if step <= 0:
        raise StgeoError(f"File {path}: cannot work out the time step.")
    if np.any(diffs % step):
        bad = wide.index[1:][diffs % step != 0][0]
        raise StgeoError(
            f"File {path}: time stamps are irregular (step {step} s expected, off-grid stamp {bad}). "
            "Resample the readings to a regular step first, or set data.freq."
        )
    full = pd.date_range(wide.index[0], wide.index[-1], freq=pd.Timedelta(seconds=step))
    if len(full) != len(wide):
        warnings.warn(
            f"{path}: {len(full) - len(wide)} missing time step(s) were added as missing readings "
            f"(step {step // 60} min).",
            stacklevel=3,
        )
        wide = wide.reindex(full)
    wide.index = full
    return wide


def read_readings(
    path: str | Path,
    *,
    layout: str = "auto",
    time_column: str | None = "timestamp",
    id_column: str = "sensor_id",
    value_column: str | None = None,
    start: str | None = None,
    freq: str | None = None,
    missing_values: Sequence[float] = (0.0,),
) -> xr.DataArray:
    """Read sensor readings into a ``(time, node)`` DataArray with NaN where missing.

    Args:
        path: CSV/CSV.gz/Parquet file.
        layout: ``wide`` (one row per time, one column per sensor), ``long`` (rows of sensor id,
            time, value) or ``auto`` (long when ``id_column`` is a column).
        time_column: column with time stamps; for wide tables without one, give ``start``
            and ``freq`` (e.g. ``"2012-03-01"``, ``"5min"``) instead.
        id_column / value_column: for long tables (value_column defaults to the only other column).
        missing_values: codes that mean "no reading" (loop detectors often report 0).

    Returns:
        float32 DataArray, dims ``(time, node)``, ``node`` = sensor ids as strings, regular time
        steps (missing steps are added as missing readings, with a warning).

    Raises:
        StgeoError: missing columns, unparsable times or values, duplicates, irregular steps.
    """
    path = Path(path)
    df = read_table(path, text_columns=[id_column])
    if layout == "auto":
        layout = "long" if id_column in df.columns else "wide"
    if layout == "long":
        if time_column is None:
            raise StgeoError(f"File {path}: long-form readings need data.time_column.")
        if value_column is None:
            others = [c for c in df.columns if c not in (id_column, time_column)]
            if len(others) != 1:
                raise StgeoError(
                    f"File {path}: cannot tell which column holds the readings among {others}; set data.value_column."
                )
            value_column = others[0]
        _require_columns(df, [id_column, time_column, value_column], path, "long-form")
        times = _parse_times(df[time_column], path, time_column)
        ids = df[id_column].astype(str).str.strip()
        vals = _to_numeric(df[[value_column]], path)[value_column]
        long = pd.DataFrame({"id": ids.to_numpy(), "time": times, "v": vals.to_numpy()})
        dup = long.duplicated(["id", "time"])
        if dup.any():
            first = long[dup].iloc[0]
            raise StgeoError(
                f"File {path}: {int(dup.sum())} duplicated (sensor, time) row(s), first sensor {first['id']!r} at {first['time']}. "
                "Keep one reading per sensor and time step."
            )
        order = list(dict.fromkeys(long["id"]))
        wide = long.pivot(index="time", columns="id", values="v")[order]
    else:
        if time_column is not None and time_column in df.columns:
            index = _parse_times(df[time_column], path, time_column)
            wide = df.drop(columns=[time_column])
            wide.index = index
        elif start is not None and freq is not None:
            try:
                index = pd.date_range(pd.Timestamp(start), periods=len(df), freq=freq)
            except (ValueError, TypeError) as exc:
                raise StgeoError(f"data.start {start!r} / data.freq {freq!r} do not make a time axis: {exc}") from None
            wide = df.copy()
            wide.index = index
        else:
            raise StgeoError(
                f"File {path}: no time column {time_column!r} in a wide table. Set data.time_column to the column "
                "with time stamps, or give data.start and data.freq (e.g. '2012-03-01 00:00' and '5min')."
            )
        wide.columns = [str(c).strip() for c in wide.columns]
        if wide.columns.duplicated().any():
            raise StgeoError(f"File {path}: duplicated sensor column(s) {sorted(set(wide.columns[wide.columns.duplicated()]))}.")
        wide = _to_numeric(wide, path)
    if wide.shape[1] == 0:
        raise StgeoError(f"File {path}: no sensor columns found.")
    wide = _regularize(wide, path, freq)
    arr = wide.to_numpy(dtype=np.float64, copy=True)  # writable: pandas copy-on-write may hand back a read-only view
    if np.isinf(arr).any():
        warnings.warn(f"{path}: {int(np.isinf(arr).sum())} infinite reading(s) treated as missing.", stacklevel=2)
        arr[np.isinf(arr)] = np.nan
    for code in missing_values:
        arr[arr == code] = np.nan
    if np.isnan(arr).all():
        raise StgeoError(f"File {path}: every reading is missing (NaN or one of the missing codes {list(missing_values)}).")
    return xr.DataArray(
        arr.astype(np.float32),
        dims=("time", "node"),
        coords={"time": wide.index.values, "node": np.array(wide.columns, dtype=str)},
        name=value_column or "value",
    )


def read_sensor_locations(
    path: str | Path,
    *,
    id_column: str = "sensor_id",
    lon_column: str = "lon",
    lat_column: str = "lat",
    crs: str = "EPSG:4326",
    layer: str | None = None,
    name_column: str | None = None,
):
    """Read sensor points from a CSV/Parquet table with coordinates, or from a point layer.

    Args:
        path: CSV/Parquet with ``lon_column``/``lat_column`` (in ``crs``; default WGS84 degrees),
            or any vector file GDAL reads (GeoPackage, Shapefile, GeoJSON) holding points.
        id_column: column with sensor ids (matched to the readings as strings).

    Returns:
        GeoDataFrame with ``sensor_id`` (str), optional ``name``, and point geometry, in the
        file's CRS (tables: ``crs``).

    Raises:
        StgeoError: missing file/columns, no CRS, non-point geometry, empty or duplicated ids,
        missing coordinates.
    """
    import geopandas as gpd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        df = read_table(path, text_columns=[id_column])
        _require_columns(df, [id_column, lon_column, lat_column], path, "sensor id/coordinate")
        coords = _to_numeric(df[[lon_column, lat_column]], path)
        if coords.isna().any().any():
            bad = df.loc[coords.isna().any(axis=1), id_column].astype(str).tolist()[:5]
            raise StgeoError(f"File {path}: sensor(s) {bad} have no coordinates in {lon_column!r}/{lat_column!r}.")
        gdf = gpd.GeoDataFrame(
            df.drop(columns=[lon_column, lat_column]),
            geometry=gpd.points_from_xy(coords[lon_column], coords[lat_column]),
            crs=crs,
        )
        if gdf.crs.is_geographic:
            b = coords.to_numpy()
            if (np.abs(b[:, 0]) > 180).any() or (np.abs(b[:, 1]) > 90).any():
                raise StgeoError(
                    f"File {path}: coordinates in {lon_column!r}/{lat_column!r} are outside longitude/latitude ranges, "
                    f"so they are not in {crs}. Set data.sensors_crs to the CRS they are in."
                )
    else:
        from stgeo_kd.ingest.roads import read_vector

        gdf = read_vector(path, layer=layer, prefer="Point")
        if id_column not in gdf.columns:
            raise StgeoError(f"File {path}: sensor id column {id_column!r} not found. Columns: {list(gdf.columns)}.")
        if not (gdf.geometry.geom_type == "Point").all():
            raise StgeoError(f"File {path}: sensors must be points; found {sorted(set(map(str, gdf.geometry.geom_type)))}.")
    if len(gdf) == 0:
        raise StgeoError(f"File {path}: no sensors.")
    ids = gdf[id_column].astype(str).str.strip()
    if ids.duplicated().any():
        raise StgeoError(f"File {path}: duplicated sensor id(s) {sorted(set(ids[ids.duplicated()]))[:5]} in column {id_column!r}.")
    out = gpd.GeoDataFrame({"sensor_id": ids.to_numpy()}, geometry=gdf.geometry.to_numpy(), crs=gdf.crs)
    if name_column is not None:
        if name_column not in gdf.columns:
            raise StgeoError(f"File {path}: name column {name_column!r} not found. Columns: {list(gdf.columns)}.")
        out["name"] = gdf[name_column].astype(str).to_numpy()
    return out
