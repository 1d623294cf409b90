"""Sensor readings (wide or long tables, CSV or Parquet) and sensor locations -> xarray / GeoDataFrame.

Missing readings stay missing: NaN and the configured missing codes (default ``0``) become NaN,
which the rest of the package turns into a mask. Nothing is interpolated or filled here.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stgeo_kd.errors import StgeoError

_TABLE_SUFFIXES = {".csv", ".txt", ".tsv", ".gz", ".parquet", ".pq"}

# Filling gaps may make a table at most this many times longer: a single wrong time stamp (a
# typo in the year) would otherwise add millions of empty steps and exhaust the memory.
_MAX_FILL_FACTOR = 10


def read_table(path: str | Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file into a DataFrame.

    Raises:
        StgeoError: the file is missing, empty, has an unknown suffix or cannot be parsed.
    """
    path = Path(path)
    if not path.exists():
        raise StgeoError(f"File {path} does not exist. Check the path in your config (paths are relative to the config file).")
    if path.is_dir():
        raise StgeoError(f"{path} is a folder; give the CSV or Parquet file inside it.")
    if path.stat().st_size == 0:
        raise StgeoError(f"File {path} is empty (0 bytes); the export or copy probably failed. Export it again.")
    suffixes = [s.lower() for s in path.suffixes]
    sep = None
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffixes and (suffixes[-1] in (".csv", ".txt", ".tsv") or suffixes[-2:] in ([".csv", ".gz"], [".tsv", ".gz"])):
            sep = "\t" if ".tsv" in suffixes else ","
            # ids such as '0101' must stay text, or they stop matching the other file
            df = pd.read_csv(path, sep=sep, dtype={c: str for c in text_columns})
        else:
            raise StgeoError(f"File {path}: unknown table format {path.suffix!r}; use .csv, .csv.gz or .parquet.")
    except StgeoError:
        raise
    except pd.errors.EmptyDataError:
        raise StgeoError(f"File {path} has no rows or columns; export it again with a header row and the data.") from None
    except UnicodeDecodeError as exc:
        raise StgeoError(
            f"File {path} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at position {exc.start}); "
            "save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet program)."
        ) from None
    except Exception as exc:  # noqa: BLE001 -- parser errors from pandas/pyarrow come in many types
        raise StgeoError(
            f"File {path} could not be read as a table ({exc}). Check that it is a complete CSV (comma-separated, "
            "UTF-8), CSV.gz or Parquet file; export it again if it was cut off or damaged."
        ) from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise StgeoError(f"File {path} has no data rows (only a header); add the data or point the config to the right file.")
    if sep is not None:
        # pandas renames a repeated header 'a' to 'a.1' without a word; read the header as written
        header = [str(c) for c in pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]]
        _refuse_repeated_columns(header, path)
        if len(header) == df.shape[1]:
            # spreadsheets export trailing empty columns ("a,b,,"): nameless and without data
            empty = [i for i, name in enumerate(header) if not name.strip() and df.iloc[:, i].isna().all()]
            if empty:
                warnings.warn(f"{path}: dropped {len(empty)} empty column(s) without a name.", stacklevel=2)
                df = df.drop(columns=df.columns[empty])
    df.columns = [str(c).strip() for c in df.columns]
    _refuse_repeated_columns(list(df.columns), path)
    return df


def _refuse_repeated_columns(columns: list[str], path: Path) -> None:
    names = pd.Index([c.strip() for c in columns if c.strip()])
    repeated = sorted(set(names[names.duplicated()]))
    if repeated:
        raise StgeoError(
            f"File {path}: column name(s) {repeated[:10]} appear more than once in the header; each sensor or "
            "column must appear once. Remove or rename the repeated columns."
        )


def _require_columns(df: pd.DataFrame, columns: dict[str, str], path: Path, what: str) -> None:
    """Refuse missing columns; ``columns`` maps each needed column to the config key that names it."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        keys = " / ".join(dict.fromkeys(columns[c] for c in missing))
        raise StgeoError(
            f"File {path}: {what} column(s) {missing} not found. Columns present: {list(df.columns)[:20]}. "
            f"Set {keys} in the config to the column that holds it, or rename the column in the file."
        )


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values)


def _blank(values: pd.Series) -> pd.Series:
    """True where a cell is missing or only white space."""
    blank = values.isna()
    if _is_text(values):
        blank = blank | values.astype(str).str.strip().eq("")
    return blank


def _first_unparsed(values: pd.Series) -> int:
    """Position of the first value that does not parse as a time even on its own (0 if unknown)."""
    try:
        unparsed = pd.to_datetime(values, errors="coerce", format="mixed").isna().to_numpy()
    except (ValueError, TypeError, OverflowError):
        return 0
    return int(np.argmax(unparsed)) if unparsed.any() else 0


def _parse_times(values: pd.Series, path: Path, column: str) -> pd.DatetimeIndex:
    empty = _blank(values)
    if empty.any():
        raise StgeoError(
            f"File {path}: column {column!r} has {int(empty.sum())} empty time stamp(s), the first in data row "
            f"{int(np.argmax(empty.to_numpy())) + 1}. Fill them in or remove those rows."
        )
    try:
        times = pd.to_datetime(values, errors="raise")
        if getattr(times.dt, "tz", None) is not None:
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        if times.isna().any():
            raise ValueError("unparsed time stamps")
    except (ValueError, TypeError, OverflowError, AttributeError):
        pos = _first_unparsed(values)
        raise StgeoError(
            f"File {path}: column {column!r} has a value that is not a date/time: {values.iloc[pos]!r} (data row "
            f"{pos + 1}). Write times as ISO 8601, e.g. 2024-03-04 08:15:00, all in the same format and "
            "time zone."
        ) from None
    return pd.DatetimeIndex(times)


def _to_numeric(
    frame: pd.DataFrame,
    path: Path,
    what: str = "reading(s)",
    advice: str = "Clean them or write them as empty cells (missing).",
) -> pd.DataFrame:
    out = frame.apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & frame.notna()
    if bad.to_numpy().any():
        col = bad.any(axis=0).idxmax()
        example = frame.loc[bad[col], col].iloc[0]
        raise StgeoError(
            f"File {path}: {int(bad.to_numpy().sum())} {what} are not numbers, e.g. {example!r} in column {col!r}. "
            + advice
        )
    return out.astype("float64")


def _refuse_empty_ids(ids: pd.Series, path: Path, column: str, what: str) -> None:
    empty = _blank(ids)
    if empty.any():
        raise StgeoError(
            f"File {path}: {int(empty.sum())} {what} have no sensor id in column {column!r}, the first in data row "
            f"{int(np.argmax(empty.to_numpy())) + 1}. Fill in the ids or remove those rows."
        )


def _step_text(step_us: int) -> str:
    """A time step for people: '5 min', '1 h', '0.1 s', 'under 1 µs'."""
    if step_us <= 0:
        return "under 1 \u00b5s"
    seconds = step_us / 1e6
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds * 1000:g} ms"


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
        raise StgeoError(
            f"File {path}: needs at least two time steps, found {len(wide)}. Add more readings: a forecast "
            "needs a history of many steps."
        )
    # integer microseconds: exact, and 292,000 years fit in int64 (nanoseconds overflow after 292)
    stamps = wide.index.values.astype("datetime64[us]").astype(np.int64)
    diffs = np.diff(stamps)
    if freq is not None:
        try:
            step = int(pd.Timedelta(pd.tseries.frequencies.to_offset(freq)) // pd.Timedelta(microseconds=1))
        except (ValueError, TypeError):
            step = 0
        if step <= 0:
            raise StgeoError(
                f"data.freq {freq!r} is not a fixed time step; set it to one such as '5min' or '1h', or remove it "
                "to use the step of the data."
            )
    else:
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
    if step < 1_000_000:
        raise StgeoError(
            f"File {path}: the time step of the readings is {_step_text(step)}, shorter than one second (were "
            "numbers such as seconds since 1970 read as nanoseconds?). Write the times as dates, e.g. "
            "2024-03-04 08:15:00, or resample the readings to a step of a second or more."
        )
    off_grid = (stamps[1:] - stamps[0]) % step != 0
    if off_grid.any():
        bad = wide.index[1:][off_grid][0]
        raise StgeoError(
            f"File {path}: time stamps are irregular (step {_step_text(step)} expected, off-grid stamp {bad}). "
            "Resample the readings to a regular step first, or set data.freq."
        )
    n_full = int((stamps[-1] - stamps[0]) // step) + 1
    added = n_full - len(wide)
    if added > 1000 and n_full > _MAX_FILL_FACTOR * len(wide):
        gap = int(np.argmax(diffs))
        raise StgeoError(
            f"File {path}: filling the gaps between its time stamps would add {added:,} missing time steps to "
            f"{len(wide):,} present ones (step {_step_text(step)}); the largest gap runs from {wide.index[gap]} "
            f"to {wide.index[gap + 1]}. Check for a wrong time stamp (e.g. a typo in the year), or cut the "
            "readings to a period without long gaps."
        )
    full = pd.date_range(wide.index[0], wide.index[-1], freq=pd.Timedelta(microseconds=step))
    if added:
        warnings.warn(
            f"{path}: {added} missing time step(s) were added as missing readings (step {_step_text(step)}).",
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
            raise StgeoError(f"File {path}: long-form readings need data.time_column; set it to the column with the time stamps.")
        if value_column is None:
            others = [c for c in df.columns if c not in (id_column, time_column)]
            if len(others) != 1:
                raise StgeoError(
                    f"File {path}: cannot tell which column holds the readings among {others}; set data.value_column."
                )
            value_column = others[0]
        _require_columns(
            df,
            {id_column: "data.id_column", time_column: "data.time_column", value_column: "data.value_column"},
            path,
            "long-form",
        )
        _refuse_empty_ids(df[id_column], path, id_column, "row(s)")
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
        in_order = long.groupby("id", sort=False)["time"].is_monotonic_increasing
        if not in_order.all():
            warnings.warn(
                f"{path}: rows of {int((~in_order).sum())} sensor(s) were not in time order; they were sorted.",
                stacklevel=2,
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
            except (ValueError, TypeError, OverflowError) as exc:
                raise StgeoError(
                    f"data.start {start!r} / data.freq {freq!r} do not make a time axis ({exc}); set data.start to a "
                    "date such as '2012-03-01 00:00' and data.freq to a step such as '5min'."
                ) from None
            wide = df.copy()
            wide.index = index
        else:
            raise StgeoError(
                f"File {path}: no time column {time_column!r} in a wide table. Set data.time_column to the column "
                "with time stamps, or give data.start and data.freq (e.g. '2012-03-01 00:00' and '5min')."
            )
        wide.columns = [str(c).strip() for c in wide.columns]
        _refuse_repeated_columns(list(wide.columns), path)
        # pandas names a column without a header "Unnamed: 3"; in a wide table each column is a sensor
        nameless = [i for i, c in enumerate(wide.columns) if not c or re.fullmatch(r"Unnamed: \d+", c)]
        if nameless:
            raise StgeoError(
                f"File {path}: {len(nameless)} sensor column(s) have no name in the header (the first is column "
                f"{nameless[0] + 1} of the readings); in a wide table each column is a sensor and its header is the "
                "sensor id. Write the ids into the header, or remove those columns."
            )
        wide = _to_numeric(
            wide,
            path,
            advice="Clean them or write them as empty cells (missing). If the file is a long table (one row per "
            "sensor and time), set data.layout: long.",
        )
    if wide.shape[1] == 0:
        raise StgeoError(f"File {path}: no sensor columns found; a wide table needs one column per sensor next to the time column.")
    wide = _regularize(wide, path, freq)
    arr = wide.to_numpy(dtype=np.float64, copy=True)  # writable: pandas copy-on-write may hand back a read-only view
    if np.isinf(arr).any():
        warnings.warn(f"{path}: {int(np.isinf(arr).sum())} infinite reading(s) treated as missing.", stacklevel=2)
        arr[np.isinf(arr)] = np.nan
    too_large = np.abs(np.nan_to_num(arr)) > np.finfo(np.float32).max
    if too_large.any():
        t, n = np.argwhere(too_large)[0]
        where = f"column {value_column!r}, sensor {str(wide.columns[n])!r}" if layout == "long" else f"column {str(wide.columns[n])!r}"
        raise StgeoError(
            f"File {path}: {int(too_large.sum())} reading(s) are too large to store as 32-bit numbers, e.g. "
            f"{arr[t, n]:g} in {where} at {wide.index[t]}. Check the units and the missing-value codes "
            "(data.missing_values), or remove those readings."
        )
    for code in missing_values:
        arr[arr == code] = np.nan
    if np.isnan(arr).all():
        raise StgeoError(
            f"File {path}: every reading is missing (NaN or one of the missing codes {list(missing_values)}). "
            "Check data.value_column and data.missing_values, or use the file that holds the readings."
        )
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
        crs = _user_crs(crs)
        df = read_table(path, text_columns=[id_column])
        _require_columns(
            df,
            {id_column: "data.sensors_id_column", lon_column: "data.lon_column", lat_column: "data.lat_column"},
            path,
            "sensor id/coordinate",
        )
        _refuse_empty_ids(df[id_column], path, id_column, "sensor(s)")
        coords = _to_numeric(
            df[[lon_column, lat_column]],
            path,
            what="coordinate(s)",
            advice="Write coordinates as plain numbers with a dot for decimals (decimal degrees for lon/lat, "
            "e.g. 48.0512), or set data.lon_column/data.lat_column to the right columns.",
        )
        if (~np.isfinite(coords.to_numpy())).any():
            bad = df.loc[~np.isfinite(coords.to_numpy()).all(axis=1), id_column].astype(str).tolist()[:5]
            raise StgeoError(
                f"File {path}: sensor(s) {bad} have no coordinates in {lon_column!r}/{lat_column!r}; fill them in "
                "or remove those sensors."
            )
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
                    f"so they are not in {crs.to_string()}. Set data.sensors_crs to the CRS they are in."
                )
    else:
        from stgeo_kd.ingest.roads import read_vector

        try:
            gdf = read_vector(path, layer=layer, prefer="Point")
        except StgeoError as exc:
            raise StgeoError(
                f"{exc} Sensor locations can also be a CSV or Parquet table with columns {id_column!r}, "
                f"{lon_column!r} and {lat_column!r}."
            ) from None
        if id_column not in gdf.columns:
            columns = [str(c) for c in gdf.columns if c != gdf.geometry.name]
            raise StgeoError(
                f"File {path}: sensor id column {id_column!r} not found. Columns: {columns}. Set "
                "data.sensors_id_column to the column with the sensor ids."
            )
        if not (gdf.geometry.geom_type == "Point").all():
            raise StgeoError(
                f"File {path}: sensors must be points; found {sorted(set(map(str, gdf.geometry.geom_type)))}. "
                "Use the layer or file that holds the sensor points (data.sensors, data.sensors_layer)."
            )
        _refuse_empty_ids(gdf[id_column], path, id_column, "sensor(s)")
    if len(gdf) == 0:
        raise StgeoError(f"File {path}: no sensors; add the sensor locations or point data.sensors to the right file.")
    ids = gdf[id_column].astype(str).str.strip()
    if ids.duplicated().any():
        raise StgeoError(
            f"File {path}: duplicated sensor id(s) {sorted(set(ids[ids.duplicated()]))[:5]} in column {id_column!r}; "
            "each sensor must appear once. Remove or rename the duplicates."
        )
    out = gpd.GeoDataFrame({"sensor_id": ids.to_numpy()}, geometry=gdf.geometry.to_numpy(), crs=gdf.crs)
    if name_column is not None:
        if name_column not in gdf.columns:
            columns = [str(c) for c in gdf.columns if c != gdf.geometry.name]
            raise StgeoError(
                f"File {path}: name column {name_column!r} not found. Columns: {columns}. Set data.name_column "
                "to one of them, or remove it."
            )
        out["name"] = gdf[name_column].astype(str).to_numpy()
    return out


def _user_crs(crs: object):
    """``crs`` as a pyproj CRS; StgeoError naming data.sensors_crs when PROJ does not know it."""
    import pyproj

    try:
        return pyproj.CRS.from_user_input(crs)
    except (pyproj.exceptions.CRSError, TypeError, ValueError):
        raise StgeoError(
            f"data.sensors_crs {crs!r} is not a coordinate reference system PROJ knows. Use an EPSG code such as "
            "'EPSG:4326' (longitude/latitude in degrees) or 'EPSG:32633' (UTM zone 33N, metres)."
        ) from None
