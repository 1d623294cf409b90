"""Raster time stacks from files: a folder of GeoTIFF / NetCDF frames, a multi-band GeoTIFF, or
a NetCDF / Zarr cube, into a :class:`~stgeo_kd.data.raster_stack.RasterStack`.

Everything is read lazily through rioxarray / xarray with dask chunks: opening a stack reads
only headers and coordinates; values are read window by window when they are used. The CRS,
transform, nodata and units are kept; nodata / _FillValue become NaN (a mask, never filled).
Frames on a different grid than the first are refused with a message, or reprojected to the
first frame's grid (``reproject="first"``) or to the grid of a given raster
(``reproject="<path>"``) with a warning.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stgeo_kd.data.raster_stack import RasterStack
from stgeo_kd.errors import StgeoError

#: File name endings read as rasters in a folder.
RASTER_SUFFIXES = (".tif", ".tiff", ".nc", ".nc4", ".cdf", ".h5", ".vrt", ".img", ".jp2")
#: Date layouts tried, in order, for a file name's ``date`` group when no format is given.
DATE_FORMATS = ("%Y%m%d_%H%M%S", "%Y%m%dT%H%M%S", "%Y%m%d%H%M%S", "%Y%m%d_%H%M", "%Y%m%dT%H%M", "%Y%m%d%H%M",
                "%Y-%m-%dT%H-%M-%S", "%Y-%m-%d_%H%M", "%Y%m%d", "%Y-%m-%d")
DEFAULT_PATTERN = r"(?P<date>\d{8}(?:[T_]?\d{4,6})?)"
_KM = {"km", "kilometre", "kilometer", "kilometres", "kilometers"}
_LONLAT = {"lon", "longitude", "lat", "latitude"}
#: notes gathered while reading many files, warned once per stack
_NOTES: set[str] = set()
_CORRUPT = (OSError, ValueError, RuntimeError, KeyError, IndexError)


@dataclass
class _Frame:
    """One opened frame file: its values (band, y, x) lazily, and where it came from."""

    path: Path
    time: pd.Timestamp | None
    band: str | None
    array: xr.DataArray


def parse_time(text: str, fmt: str | None, where: str) -> pd.Timestamp:
    """A timestamp from a file name's date text: with ``fmt`` (strftime codes), else the first
    of :data:`DATE_FORMATS` that reads all of it."""
    sample = pd.Timestamp(2000, 11, 22, 13, 44, 55)
    # %H, %M and %S also read one digit: only layouts that spell exactly this many characters
    formats = [fmt] if fmt else [f for f in DATE_FORMATS if len(sample.strftime(f)) == len(text)]
    for f in formats:
        try:
            return pd.Timestamp(pd.to_datetime(text, format=f))
        except (ValueError, TypeError):
            continue
    hint = (f"it does not match data.time_format {fmt!r}" if fmt else
            "set data.time_format to its layout in strftime codes, e.g. '%Y%m%d_%H%M%S'")
    raise StgeoError(f"{where}: the date {text!r} taken from the file name does not parse: {hint}.")


def _open_file(path: Path, variable, chunks: int) -> xr.DataArray:
    """A file's values as (band, y, x) with its CRS, lazily; NetCDF variables become bands."""
    import rioxarray

    suffix = path.suffix.lower()
    try:
        if suffix in (".nc", ".nc4", ".cdf", ".h5") or path.is_dir():
            return _from_dataset(_open_dataset(path, chunks), variable, path)
        da = rioxarray.open_rasterio(path, masked=True, chunks={"band": 1, "y": chunks, "x": chunks})
    except StgeoError:
        raise
    except _CORRUPT as exc:
        raise StgeoError(f"{path}: cannot be read as a raster ({type(exc).__name__}: {exc}). "
                         "Check that the file is complete and is a GeoTIFF or NetCDF file; replace it, or remove it from the folder.") from None
    names = da.attrs.get("long_name")
    names = [names] if isinstance(names, str) else names
    if isinstance(names, (tuple, list)) and len(names) == da.sizes["band"] and len(set(names)) == len(names):
        da = da.assign_coords(band=[str(n) for n in names])
    else:
        da = da.assign_coords(band=[f"band{int(b)}" for b in da["band"].values])
    return da


def _open_dataset(path: Path, chunks: int) -> xr.Dataset:
    if path.is_dir() or path.suffix.lower() == ".zarr":
        try:
            import zarr  # noqa: F401
        except ImportError:
            raise StgeoError(f"{path}: reading a Zarr store needs the zarr package; install it with "
                             "'pip install zarr', or give a NetCDF file or a folder of GeoTIFFs.") from None
        return xr.open_zarr(path, decode_coords="all")
    return xr.open_dataset(path, decode_coords="all", chunks={})


def _from_dataset(ds: xr.Dataset, variable, path: Path) -> xr.DataArray:
    """Pick the variable(s) of a dataset and stack them as bands (time kept when present)."""
    import rioxarray  # noqa: F401

    gridded = [str(n) for n, v in ds.data_vars.items() if v.ndim >= 2]
    if variable is None:
        if len(gridded) != 1:
            raise StgeoError(f"{path} has {len(gridded)} gridded variables ({', '.join(gridded) or 'none'}); "
                             "set data.variable to the one(s) to use.")
        names = gridded
    else:
        names = [variable] if isinstance(variable, str) else list(variable)
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise StgeoError(f"{path} has no variable {missing[0]!r}. Gridded variables: {', '.join(gridded) or 'none'}.")
    arrays = []
    for n in names:
        da = _cached_crs(ds, ds[n])
        units = da.attrs.get("units", "")
        da = _spatial(da, path)
        da.attrs["units"] = units
        arrays.append(da.expand_dims(band=[n]) if "band" not in da.dims else da)
    out = xr.concat(arrays, dim="band") if len(arrays) > 1 else arrays[0]
    out.attrs["units"] = {n: ds[n].attrs.get("units", "") for n in names}
    crs = arrays[0].rio.crs
    if crs is not None:
        out = out.rio.write_crs(crs)
    return out


#: CRS parsed from CF grid-mapping attributes, by their text: pyproj takes ~0.25 s per parse,
#: and a folder of frames repeats the same grid mapping in every file
_CRS_CACHE: dict[str, object] = {}


def _cached_crs(ds: xr.Dataset, da: xr.DataArray) -> xr.DataArray:
    gm = da.encoding.get("grid_mapping") or da.attrs.get("grid_mapping")
    if not gm or gm not in ds.variables:
        return da
    key = repr(sorted((k, repr(v)) for k, v in ds[gm].attrs.items()))
    if key not in _CRS_CACHE:
        _CRS_CACHE[key] = da.rio.crs
    crs = _CRS_CACHE[key]
    return da if crs is None else da.rio.write_crs(crs)


def _spatial(da: xr.DataArray, path: Path) -> xr.DataArray:
    """Name the spatial dims for rioxarray, fix km coordinates and give lon/lat grids a CRS."""
    import rioxarray.exceptions
    try:
        x_dim, y_dim = da.rio.x_dim, da.rio.y_dim
    except rioxarray.exceptions.MissingSpatialDimensionError:
        raise StgeoError(f"{path}: variable {da.name!r} has dims {tuple(da.dims)} and no x/y (or lon/lat) "
                         "dimension; it is not a grid.") from None
    if da.rio.crs is None and {str(x_dim).lower(), str(y_dim).lower()} <= _LONLAT:
        warnings.warn(f"{path}: no CRS given; longitude/latitude coordinates, so EPSG:4326 is assumed.", stacklevel=4)
        da = da.rio.write_crs("EPSG:4326")
    crs = da.rio.crs
    units = str(da[x_dim].attrs.get("units", "")).lower()
    if units in _KM and crs is not None and crs.is_projected and (crs.linear_units or "").lower() in ("metre", "meter", "m"):
        # e.g. BoM Rainfields: coordinates in km, CRS in metres
        da = da.assign_coords({x_dim: da[x_dim] * 1000.0, y_dim: da[y_dim] * 1000.0})
        _NOTES.add("x/y coordinates are in km but the CRS is in metres; they were multiplied by 1000")
    return da


def _as_stack_array(da: xr.DataArray, path: Path, time_dim_wanted: bool) -> xr.DataArray:
    """(band, y, x) or (time, band, y, x) with dims renamed to y/x, north up, float32."""
    x_dim, y_dim = da.rio.x_dim, da.rio.y_dim
    crs = da.rio.crs
    extra = [d for d in da.dims if d not in (x_dim, y_dim, "band") and not (time_dim_wanted and d == "time")]
    for d in extra:
        if da.sizes[d] != 1:
            raise StgeoError(f"{path}: dimension {d!r} has {da.sizes[d]} entries; only time, band and the grid "
                             "can have more than one. Select one (e.g. a level) before using the file.")
    da = da.squeeze(extra, drop=True) if extra else da
    if time_dim_wanted and "time" not in da.dims:
        raise StgeoError(f"{path}: no 'time' dimension; for a folder of single frames give data.pattern with a "
                         "(?P<date>...) group instead.")
    da = da.rename({x_dim: "x", y_dim: "y"})
    if da.sizes["y"] > 1 and float(da["y"][1] - da["y"][0]) > 0:
        da = da.isel(y=slice(None, None, -1))  # north up, like every GeoTIFF
    order = ("time", "band", "y", "x") if "time" in da.dims else ("band", "y", "x")
    da = da.transpose(*order).astype(np.float32)
    keep = {c for c in da.coords if c in order}
    da = da.drop_vars([c for c in da.coords if c not in keep])
    if crs is not None:
        da = da.rio.write_crs(crs)
    return da


def _grid(da: xr.DataArray):
    return da.rio.crs, da.rio.transform(recalc=True), (da.sizes["y"], da.sizes["x"])


def _same_grid(a, b) -> bool:
    (ca, ta, sa), (cb, tb, sb) = a, b
    return sa == sb and ca == cb and ta.almost_equals(tb, precision=1e-6 * max(abs(ta.a), abs(ta.e), 1e-12))


def _describe(grid) -> str:
    crs, t, (h, w) = grid
    name = crs.to_string() if crs is not None else "no CRS"
    if len(name) > 60:
        name = (crs.to_dict().get("proj", "custom") + " (custom WKT)") if crs is not None else name
    return f"{name}, {w}x{h} pixels of {abs(t.a):g} x {abs(t.e):g} at ({t.c:g}, {t.f:g})"


def _reproject_to(da: xr.DataArray, grid, where: str) -> xr.DataArray:
    from rasterio.enums import Resampling

    crs, transform, (h, w) = grid
    if da.rio.crs is None:
        raise StgeoError(f"{where} has no CRS, so it cannot be reprojected; set data.crs.")
    out = da.rio.reproject(crs, shape=(h, w), transform=transform, resampling=Resampling.bilinear, nodata=np.nan)
    return out.rename({out.rio.x_dim: "x", out.rio.y_dim: "y"})


def _grid_coords(transform, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre x and y coordinates of a north-up grid."""
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    return xs, ys


def _reference_grid(reproject: str | None, base_dir: Path):
    if reproject in (None, "", "first"):
        return None
    path = Path(reproject)
    path = path if path.is_absolute() else base_dir / path
    if not path.exists():
        raise StgeoError(f"data.reproject: {path} does not exist; give 'first' or the path of a raster whose grid to use.")
    return _grid(_as_stack_array(_open_file(path, None, 512), path, False))


def open_raster_stack(
    path: str | Path,
    *,
    pattern: str | None = None,
    variable: str | list[str] | None = None,
    band_as: str = "time",
    time_format: str | None = None,
    start: str | None = None,
    freq: str | None = None,
    reproject: str | None = None,
    crs: str | None = None,
    chunks: int = 512,
    name: str | None = None,
    units: str | None = None,
    base_dir: str | Path = ".",
    regular: bool = True,
) -> RasterStack:
    """Open a raster time stack lazily.

    Args:
        path: a folder of frames (GeoTIFF or NetCDF, one time step per file, or one per time
            and band), a multi-band GeoTIFF, or a NetCDF / Zarr cube with a CF ``time``.
        pattern: for a folder, a regular expression searched in each file name, with a named
            group ``date`` (and optionally ``band``); files that do not match are ignored.
            Default: 8 date digits with an optional time (``20180616_100000``).
        variable: NetCDF / Zarr variable name(s) (each becomes a band); needed when a file has
            several gridded variables.
        band_as: for a single multi-band GeoTIFF, ``time`` (each band is a time step, dated by
            band descriptions or ``start`` + ``freq``) or ``variable`` (one time step).
        time_format: strftime layout of the ``date`` group (e.g. ``%Y%m%d_%H%M%S``).
        start, freq: times for GeoTIFF bands without dates (``2024-01-01``, ``1h``).
        reproject: None to refuse frames on another grid, ``first`` to reproject them to the
            first frame's grid, or a raster path whose grid every frame is reprojected to.
        crs: the CRS of files that carry none (e.g. ``EPSG:32633``).
        chunks: dask chunk size in pixels (square) for lazy reading.
        units: the values' units when the files do not say.
        regular: put the frames on a regular time step (missing steps added as all-missing
            frames; irregular steps refused). False keeps the frames' own times, for stacks
            whose time axis is only an order (satellite acquisitions, ``data.kind: patches``).

    Raises:
        StgeoError: a missing path, a pattern matching no file, a date that does not parse,
            frames on different grids without ``reproject``, a file that cannot be read, an
            all-nodata frame, or a stack without a CRS.
    """
    path = Path(path)
    base = Path(base_dir)
    if not path.exists():
        raise StgeoError(f"data.path: {path} does not exist. Give a folder of frames, a GeoTIFF or a NetCDF / Zarr file.")
    if band_as not in ("time", "variable"):
        raise StgeoError(f"data.band_as must be 'time' or 'variable', got {band_as!r}.")
    _NOTES.clear()
    ref = _reference_grid(reproject, base)
    if path.is_dir() and path.suffix.lower() != ".zarr":
        frames = _folder_frames(path, pattern, variable, time_format, chunks)
        da, sources = _stack_frames(frames, ref, reproject)
    else:
        da, sources = _single_file(path, variable, band_as, start, freq, chunks)
        if ref is not None and not _same_grid(_grid(da.isel(time=0)), ref):
            warnings.warn(f"{path} was reprojected to the grid of data.reproject.", stacklevel=2)
            da = _reproject_to(da, ref, str(path))
    for note in sorted(_NOTES):
        warnings.warn(f"{path}: {note}.", stacklevel=2)
    if da.rio.crs is None:
        if crs is None:
            raise StgeoError(f"{path}: the rasters carry no CRS. Set data.crs (e.g. 'EPSG:32633') to the CRS of their grid.")
        da = da.rio.write_crs(crs)
    file_units = da.attrs.get("units", "")
    band_names = [str(b) for b in da["band"].values]
    if isinstance(file_units, dict):
        unit_map = {b: str(file_units.get(b, "") or units or "") for b in band_names}
    else:
        unit_map = {b: str(units or file_units or "") for b in band_names}
    stack_crs = da.rio.crs
    transform = da.rio.transform(recalc=True)
    nodata = _nodata(da)
    data = da.transpose("time", "band", "y", "x")
    data = data.drop_vars([c for c in data.coords if c not in ("time", "band", "y", "x")])
    data.attrs = {}
    order = np.argsort(data["time"].values, kind="stable")
    if np.any(order != np.arange(len(order))):
        data = data.isel(time=order)
        sources = [sources[i] for i in order]
    times = pd.DatetimeIndex(data["time"].values)
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        raise StgeoError(f"{path}: two frames have the same time {dup}; each time step must appear once per band.")
    stack = RasterStack(data, stack_crs, transform, nodata, unit_map, name or path.stem, sources)
    return _regular(stack, path) if regular else stack


def _nodata(da: xr.DataArray) -> float | None:
    for value in (da.attrs.get("source_nodata"), da.rio.encoded_nodata, da.rio.nodata, da.encoding.get("_FillValue")):
        if value is not None and np.isfinite(value):
            return float(value)
    return None


def _folder_frames(folder: Path, pattern, variable, time_format, chunks) -> list[_Frame]:
    try:
        regex = re.compile(pattern or DEFAULT_PATTERN)
    except re.error as exc:
        raise StgeoError(f"data.pattern {pattern!r} is not a valid regular expression: {exc}.") from None
    if "date" not in regex.groupindex:
        raise StgeoError(f"data.pattern {regex.pattern!r} needs a named group for the date: write it as (?P<date>...), e.g. (?P<date>\\d{{8}}_\\d{{6}}).")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES or p.suffix.lower() == ".zarr")
    matched = [(p, m) for p in files if (m := regex.search(p.name))]
    if not matched:
        seen = ", ".join(p.name for p in sorted(folder.iterdir())[:5]) or "nothing"
        raise StgeoError(f"data.pattern {regex.pattern!r} matches no raster file in {folder} (it holds e.g. {seen}). "
                         "Fix the pattern so that its (?P<date>...) group finds the date in the file names.")
    frames = []
    for p, m in matched:
        t = parse_time(m.group("date"), time_format, str(p))
        band = m.group("band") if "band" in regex.groupindex else None
        frames.append(_Frame(p, t, band, _open_file(p, variable, chunks)))
    return frames


def _stack_frames(frames: list[_Frame], ref, reproject) -> tuple[xr.DataArray, list[str]]:
    """Frames (one per time, or per time and band) on one grid -> (time, band, y, x)."""
    arrays, grids = [], []
    for f in frames:
        a = _as_stack_array(f.array, f.path, False) if "time" not in f.array.dims or f.array.sizes["time"] == 1 else None
        if a is None:
            raise StgeoError(f"{f.path} holds {f.array.sizes['time']} time steps; in a folder each file must hold one "
                             "(or open the file itself as data.path).")
        if "time" in a.dims:
            a = a.isel(time=0, drop=True)
        if f.band is not None:
            if a.sizes["band"] != 1:
                raise StgeoError(f"{f.path} has {a.sizes['band']} bands but the pattern's band group names one.")
            a = a.assign_coords(band=[f.band])
        arrays.append(a)
        grids.append(_grid(a))
    target = ref or grids[0]
    for i, (f, g) in enumerate(zip(frames, grids)):
        if _same_grid(g, target):
            continue
        if ref is None and reproject in (None, ""):
            raise StgeoError(
                f"{f.path} is on another grid than {frames[0].path.name}: {_describe(g)} vs {_describe(target)}. "
                "Set data.reproject: first to reproject every frame to the first frame's grid, or give the path of "
                "a raster whose grid to use."
            )
        warnings.warn(f"{f.path.name} was reprojected to the common grid ({_describe(g)} -> {_describe(target)}).",
                      stacklevel=3)
        arrays[i] = _reproject_to(arrays[i], target, str(f.path))
    crs, transform, (h, w) = target
    xs, ys = _grid_coords(transform, h, w)
    times = sorted({f.time for f in frames})
    bands = [f.band for f in frames]
    by_key = {}
    for f, a in zip(frames, arrays):
        a = a.assign_coords(x=xs, y=ys)
        key = (f.time, f.band)
        if key in by_key:
            raise StgeoError(f"{f.path} and {by_key[key][0].path} have the same date {f.time}"
                             + (f" and band {f.band!r}" if f.band else "") + "; each must appear once.")
        by_key[key] = (f, a)
    if any(b is not None for b in bands):
        band_names = sorted({b for b in bands if b is not None})
        per_time = []
        for t in times:
            missing = [b for b in band_names if (t, b) not in by_key]
            if missing:
                raise StgeoError(f"The frame of {t} has no file for band(s) {missing}; every date needs every band.")
            per_time.append(xr.concat([by_key[(t, b)][1] for b in band_names], dim="band"))
        sources = [str(by_key[(t, band_names[0])][0].path) for t in times]
    else:
        per_time = [by_key[(t, None)][1] for t in times]
        sources = [str(by_key[(t, None)][0].path) for t in times]
        nb = {a.sizes["band"] for a in per_time}
        if len(nb) > 1:
            raise StgeoError(f"The frames have different numbers of bands ({sorted(nb)}); every file needs the same bands.")
    da = xr.concat(per_time, dim=pd.Index(times, name="time"), coords="minimal", compat="override", join="override")
    da.attrs["units"] = frames[0].array.attrs.get("units", "")
    da.attrs["source_nodata"] = _nodata(frames[0].array)
    return da.rio.write_crs(crs), sources


def _single_file(path: Path, variable, band_as, start, freq, chunks) -> tuple[xr.DataArray, list[str]]:
    da = _open_file(path, variable, chunks)
    units = da.attrs.get("units", "")
    if "time" in da.dims:
        da = _as_stack_array(da, path, True)
        if not np.issubdtype(da["time"].dtype, np.datetime64):
            raise StgeoError(f"{path}: the time coordinate is not decoded as dates (units or calendar missing); "
                             "give it CF time units such as 'hours since 2019-01-01'.")
    else:
        da = _as_stack_array(da, path, False)
        if band_as == "variable":
            t = pd.Timestamp(start) if start else pd.Timestamp("1970-01-01")
            da = da.expand_dims(time=[t])
        else:
            da = da.rename({"band": "time"}).expand_dims(band=[path.stem], axis=1)
            da = da.assign_coords(time=_band_times(path, da.sizes["time"], start, freq))
    da.attrs["units"] = units
    return da, [str(path)] * da.sizes["time"]


def _band_times(path: Path, n: int, start, freq) -> pd.DatetimeIndex:
    """Dates of a multi-band GeoTIFF's bands: from the band descriptions, else start + freq."""
    import rasterio

    with rasterio.open(path) as src:
        desc = list(src.descriptions)
    if all(desc):
        try:
            return pd.DatetimeIndex([parse_time(d, None, f"{path} band {i + 1}") for i, d in enumerate(desc)])
        except StgeoError:
            pass
    if start and freq:
        try:
            return pd.date_range(pd.Timestamp(start), periods=n, freq=freq)
        except ValueError as exc:
            raise StgeoError(f"data.start {start!r} / data.freq {freq!r} do not make dates: {exc}.") from None
    raise StgeoError(f"{path}: its {n} bands are used as time steps but carry no dates in their descriptions; "
                     "set data.start (first time) and data.freq (e.g. '1h'), or data.band_as: variable.")


def _regular(stack: RasterStack, path: Path) -> RasterStack:
    """Insert all-missing frames for missing time steps (a warning says how many), so that every
    window spans a fixed time; refuse irregular steps that cannot be put on one grid."""
    times = stack.times
    if len(times) < 2:
        return stack
    step = stack.step
    full = pd.date_range(times[0], times[-1], freq=step)
    if len(full) == len(times) and (full == times).all():
        return stack
    if not times.isin(full).all():
        odd = times[~times.isin(full)][0]
        raise StgeoError(f"{path}: the frames are not on a regular time step of {step} (e.g. {odd}); "
                         "a stack needs evenly spaced frames (gaps are allowed).")
    missing = len(full) - len(times)
    warnings.warn(f"{path}: {missing} time step(s) of {step} have no frame; they were added as missing "
                  "(masked, never filled).", stacklevel=3)
    data = stack.data.reindex(time=full)
    src = dict(zip(times, stack.sources))
    return RasterStack(data, stack.crs, stack.transform, stack.nodata, stack.units, stack.name,
                       [src.get(t, "(missing)") for t in full])


def check_frames(stack: RasterStack) -> np.ndarray:
    """Read every frame once (window by window through dask) and return the fraction of observed
    pixels per frame; a frame that cannot be read or holds no observed pixel (and is not a
    time step added as missing) raises StgeoError naming its file."""
    frac = np.zeros(stack.num_steps)
    for i in range(stack.num_steps):
        where = stack.sources[i] if i < len(stack.sources) else f"frame {i}"
        if where == "(missing)":
            continue
        try:
            frac[i] = float(stack.data.isel(time=i).notnull().mean().compute())
        except _CORRUPT as exc:
            raise StgeoError(f"{where}: cannot be read ({type(exc).__name__}: {exc}). The file may be truncated "
                             "or corrupt; replace it or remove it from the folder.") from None
        if frac[i] == 0.0:
            raise StgeoError(f"{where}: the frame of {stack.times[i]} holds no valid pixel (all nodata). "
                             "Remove the file, or check its nodata value.")
    return frac


def load_raster_stack(cfg) -> RasterStack:
    """The RasterStack named by a config's ``data`` section (``kind: raster_stack``)."""
    d = cfg.data
    path = cfg.resolve(d.path)
    if path is None:
        raise StgeoError("data.path is required for data.kind raster_stack: a folder of frames, a GeoTIFF or a NetCDF file.")
    return open_raster_stack(
        path, pattern=d.pattern, variable=d.variable, band_as=d.band_as, time_format=d.time_format, start=d.start,
        freq=d.freq, reproject=d.reproject, crs=d.crs, chunks=d.chunks, name=d.name, units=d.units or None,
        base_dir=cfg.base_dir,
    )
