"""A raster (time stack) and labelled polygons -> a :class:`PatchSet`: gap-filled model inputs
for every pixel and the polygons' classes rasterised on the raster's grid.

Cloud gaps: frames with less than ``min_clear`` valid pixels are dropped; in the others every
pixel's missing values are filled by linear interpolation in time between its nearest valid
observations (the nearest one at either end). A pixel never observed keeps no input and is
left out of the class map (nodata).

Labels: polygons in another CRS than the raster are reprojected (with a warning); each
polygon burns its class into the pixels whose centre it contains (``rasterio.features.rasterize``),
a later polygon over an earlier one. Codes in ``ignore_classes`` mean "no label".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine

from stgeo_kd.data.raster_stack import RasterStack
from stgeo_kd.errors import StgeoError, did_you_mean

#: colours for classes without one in ``data.patches.colors`` (colour-blind-safe categorical)
PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
           "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6")
UNLABELLED = -1


@dataclass
class PatchSet:
    """Model-ready pixels of a raster and their labels.

    Attributes:
        x: (C, H, W) float32 inputs, gap-filled (no NaN), in the raster's units; channels are
            time-major: ``channel_names[i]`` is ``band@date``.
        valid: (H, W) bool, pixels with at least one observation.
        labels: (H, W) int64 class index 0..K-1, or -1 where unlabelled.
        codes: (K,) the classes' codes (as in the polygons, or 1.. for text classes).
        names: K class names; colors: K ``#rrggbb``.
        crs, transform, height, width: the input grid.
        times: the frames kept; bands: band names; clear: share of valid pixels per kept frame.
        dropped: times of the frames dropped for clouds (fewer valid pixels than ``min_clear``).
        info: what ingest found (polygons read / outside the raster, reprojection ...).
    """

    x: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    codes: np.ndarray
    names: list[str]
    colors: list[str]
    crs: Any
    transform: Affine
    times: pd.DatetimeIndex
    bands: list[str]
    clear: np.ndarray
    dropped: list[str] = field(default_factory=list)
    name: str = "patches"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.x.shape[1])

    @property
    def width(self) -> int:
        return int(self.x.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.codes)

    @property
    def num_channels(self) -> int:
        return int(self.x.shape[0])

    @property
    def channel_names(self) -> list[str]:
        return [f"{b}@{t.isoformat()}" for t in self.times for b in self.bands]

    def class_counts(self, mask: np.ndarray | None = None) -> np.ndarray:
        lab = self.labels if mask is None else self.labels[mask]
        lab = lab[lab >= 0]
        return np.bincount(lab, minlength=self.num_classes)

    def summary(self) -> dict[str, Any]:
        counts = self.class_counts()
        return {
            "name": self.name,
            "grid": {"height": self.height, "width": self.width, "crs": str(self.crs),
                     "transform": list(self.transform)[:6],
                     "pixel_size": [abs(self.transform.a), abs(self.transform.e)]},
            "bands": list(self.bands),
            "frames_kept": len(self.times),
            "frames_dropped": len(self.dropped),
            "dropped_times": list(self.dropped),
            "first_time": self.times[0].isoformat() if len(self.times) else None,
            "last_time": self.times[-1].isoformat() if len(self.times) else None,
            "mean_clear_share_kept": float(np.mean(self.clear)) if len(self.clear) else None,
            "channels": self.num_channels,
            "labelled_pixels": int(counts.sum()),
            "pixels_without_input": int((~self.valid).sum()),
            "classes": [{"index": i, "code": _py(c), "name": n, "color": col, "pixels": int(k)}
                        for i, (c, n, col, k) in enumerate(zip(self.codes, self.names, self.colors, counts))],
        } | self.info


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------------------------------------
# reading


def load_patches(cfg: Any) -> PatchSet:
    """Read the raster and the polygons of a ``data.kind: patches`` RunConfig into a PatchSet."""
    d, p = cfg.data, cfg.data.patches
    stack = load_stack(cfg)
    path = _resolve(cfg, p.labels, "data.patches.labels")
    frame = read_polygons(path, p.labels_layer)
    return patches_from(stack, frame, class_column=p.class_column, name_column=p.name_column,
                        ignore_classes=p.ignore_classes, labels_crs=p.labels_crs, colors=p.colors,
                        min_clear=p.min_clear, name=d.name or stack.name, source=str(path))


def _resolve(cfg: Any, value: str, key: str) -> Path:
    path = cfg.resolve(value)
    if path is None or not path.exists():
        raise StgeoError(f"{key}: {path} does not exist. Give the path of the file, relative to the config file.")
    return path


def load_stack(cfg: Any) -> RasterStack:
    """The raster (time stack) of ``data``: GeoTIFF / NetCDF file(s) through
    :func:`~stgeo_kd.ingest.rasters.open_raster_stack` (irregular times kept), or an EOPatch
    folder with ``data.patches.loader: eopatch_slovenia``."""
    d = cfg.data
    path = _resolve(cfg, d.path, "data.path")
    if d.patches.loader == "eopatch_slovenia":
        from stgeo_kd.datasets import eopatch_slovenia

        stack = eopatch_slovenia(path)
    else:
        from stgeo_kd.ingest.rasters import open_raster_stack

        stack = open_raster_stack(path, pattern=d.pattern, variable=d.variable, band_as=d.band_as,
                                  time_format=d.time_format, start=d.start, freq=d.freq, reproject=d.reproject,
                                  crs=d.crs, chunks=d.chunks, name=d.name, units=d.units or None,
                                  base_dir=cfg.base_dir, regular=False)
    return stack


def read_polygons(path: Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer (GPKG, SHP, GeoJSON ...).

    Raises:
        StgeoError: the file cannot be read, or ``layer`` is not in it.
    """
    import pyogrio
    import pyogrio.errors

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, OSError, ValueError) as exc:
        raise StgeoError(f"Cannot read the label polygons {path}: {str(exc).rstrip('.')}. Give a GeoPackage, "
                         "Shapefile or GeoJSON file (data.patches.labels).") from None
    if layer is not None and layer not in layers:
        raise StgeoError(f"{path} has no layer {layer!r} (data.patches.labels_layer). {did_you_mean(layer, layers)}")
    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError, ValueError) as exc:
        raise StgeoError(f"Cannot read the label polygons {path}: {str(exc).rstrip('.')}.") from None


# ---------------------------------------------------------------------------------------------
# checks and arrays


def patches_from(
    stack: RasterStack,
    frame: gpd.GeoDataFrame,
    *,
    class_column: str,
    name_column: str | None = None,
    ignore_classes: list[Any] | None = None,
    labels_crs: str | None = None,
    colors: dict | None = None,
    min_clear: float = 0.5,
    name: str = "patches",
    source: str = "the label layer",
) -> PatchSet:
    """Check the polygons against the raster and build the PatchSet (module docstring).

    Raises:
        StgeoError: a missing class or name column, polygons without a CRS (and no
            ``labels_crs``), non-polygon geometries, class codes that are not whole numbers,
            polygons that all lie outside the raster or cover no pixel centre, or a stack
            whose frames are all too cloudy.
    """
    info: dict[str, Any] = {"labels_source": source}
    frame = _check_columns(frame, class_column, name_column, source)
    frame = _with_crs(frame, stack, labels_crs, source, info)
    codes_per_polygon, names_by_code, code_kind = _class_codes(frame, class_column, name_column, source)
    ignore = {_norm_code(c) for c in (ignore_classes or [])}
    labels_codes = _rasterise(frame, codes_per_polygon, stack, source, info)
    labelled = labels_codes != _NONE
    for c in ignore:
        if code_kind == "text":
            hits = [k for k, v in names_by_code.items() if v == str(c)]
            c = hits[0] if hits else None
        if c is not None:
            labelled &= labels_codes != c
    codes = np.unique(labels_codes[labelled])
    if codes.size == 0:
        raise StgeoError(f"{source}: every labelled pixel has a class in data.patches.ignore_classes "
                         f"({sorted(map(str, ignore))}); nothing is left to learn from.")
    labels = np.full(labels_codes.shape, UNLABELLED, dtype=np.int64)
    labels[labelled] = np.searchsorted(codes, labels_codes[labelled])
    names = [names_by_code.get(int(c), f"class {int(c)}") or f"class {int(c)}" for c in codes]
    palette = {str(k): v for k, v in (colors or {}).items()}
    cols = [palette.get(str(int(c)), palette.get(n, PALETTE[i % len(PALETTE)])) for i, (c, n) in enumerate(zip(codes, names))]
    info["class_codes_from"] = "text classes coded 1.. in sorted order" if code_kind == "text" else class_column
    x, valid, kept, clear, dropped = fill_gaps(stack, min_clear)
    times = stack.times[kept]
    return PatchSet(x=x, valid=valid, labels=labels, codes=codes, names=names, colors=cols, crs=stack.crs,
                    transform=stack.transform, times=pd.DatetimeIndex(times), bands=stack.bands, clear=clear,
                    dropped=[t.isoformat() for t in dropped], name=name, info=info)


_NONE = np.iinfo(np.int64).min


def _norm_code(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_columns(frame: gpd.GeoDataFrame, class_column: str, name_column: str | None, source: str) -> gpd.GeoDataFrame:
    columns = [str(c) for c in frame.columns if c != frame.geometry.name]
    for key, col in (("class_column", class_column), ("name_column", name_column)):
        if col is not None and col not in frame.columns:
            raise StgeoError(f"{source} has no column {col!r} (data.patches.{key}). {did_you_mean(col, columns)}")
    geom = frame.geometry
    empty = geom.isna() | geom.is_empty
    if empty.any():
        warnings.warn(f"{source}: {int(empty.sum())} polygon(s) without a geometry were left out.", stacklevel=3)
        frame = frame[~empty]
    missing = frame[class_column].isna()
    if missing.any():
        warnings.warn(f"{source}: {int(missing.sum())} polygon(s) without a value in {class_column!r} were left out.",
                      stacklevel=3)
        frame = frame[~missing]
    if len(frame) == 0:
        raise StgeoError(f"{source} holds no polygon with a geometry and a class in {class_column!r}.")
    kinds = set(frame.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise StgeoError(f"{source} holds {', '.join(sorted(kinds - {'Polygon', 'MultiPolygon'}))} geometries; the "
                         "labels must be polygons (areas of one class). Buffer points or lines first, or give another "
                         "layer (data.patches.labels_layer).")
    return frame


def _with_crs(frame: gpd.GeoDataFrame, stack: RasterStack, labels_crs: str | None, source: str,
              info: dict) -> gpd.GeoDataFrame:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if labels_crs is not None:
        try:
            given = CRS.from_user_input(labels_crs)
        except (CRSError, TypeError, ValueError) as exc:
            raise StgeoError(f"data.patches.labels_crs {labels_crs!r} is not a CRS pyproj knows ({exc}).") from None
        if frame.crs is None:
            frame = frame.set_crs(given)
        elif not CRS.from_user_input(frame.crs).equals(given):
            raise StgeoError(f"{source} says its CRS is {frame.crs.to_string()}, but data.patches.labels_crs is "
                             f"{labels_crs}. Remove labels_crs (it is only for files without a CRS) or fix the file.")
    if frame.crs is None:
        raise StgeoError(f"{source} has no CRS, so its polygons cannot be placed on the raster (whose CRS is "
                         f"{stack.crs}). Set data.patches.labels_crs to the polygons' CRS, e.g. 'EPSG:32633'.")
    raster_crs = CRS.from_user_input(stack.crs.to_wkt() if hasattr(stack.crs, "to_wkt") else stack.crs)
    if not CRS.from_user_input(frame.crs).equals(raster_crs):
        warnings.warn(f"{source} is in {frame.crs.to_string()} and the raster in {stack.crs}; the polygons were "
                      "reprojected to the raster's CRS.", stacklevel=3)
        info["labels_reprojected_from"] = frame.crs.to_string()
        frame = frame.to_crs(raster_crs)
    return frame


def _class_codes(frame: gpd.GeoDataFrame, class_column: str, name_column: str | None,
                 source: str) -> tuple[np.ndarray, dict[int, str], str]:
    """Per polygon its class code (int64), the name of each code, and ``int`` or ``text``."""
    values = frame[class_column]
    names: dict[int, str] = {}
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
            bad = values[~(np.isfinite(v) & (v == np.round(v)))].iloc[0]
            raise StgeoError(f"{source}: column {class_column!r} holds {bad!r}; class codes must be whole numbers "
                             "(or text class names).")
        codes = v.astype(np.int64)
        kind = "int"
        if name_column is not None:
            for c, n in zip(codes, frame[name_column]):
                if pd.notna(n) and str(n).strip():
                    names.setdefault(int(c), str(n).strip())
    else:
        text = values.astype(str).str.strip()
        uniq = sorted(text.unique())
        lookup = {t: i + 1 for i, t in enumerate(uniq)}
        codes = text.map(lookup).to_numpy(dtype=np.int64)
        names = {i: t for t, i in lookup.items()}
        kind = "text"
    return codes, names, kind


def _rasterise(frame: gpd.GeoDataFrame, codes: np.ndarray, stack: RasterStack, source: str,
               info: dict) -> np.ndarray:
    """(H, W) int64 class code per pixel, ``_NONE`` where no polygon covers its centre."""
    from rasterio.features import rasterize
    from shapely.geometry import box

    left, bottom, right, top = stack.bounds
    footprint = box(left, bottom, right, top)
    inside = frame.geometry.intersects(footprint).to_numpy()
    if not inside.any():
        fb = frame.total_bounds
        raise StgeoError(
            f"{source}: none of its {len(frame)} polygons overlaps the raster. The polygons span x {fb[0]:.6g}..{fb[2]:.6g}, "
            f"y {fb[1]:.6g}..{fb[3]:.6g} and the raster x {left:.6g}..{right:.6g}, y {bottom:.6g}..{top:.6g} (both in "
            f"{stack.crs}). Check that the labels belong to this raster, and their CRS (data.patches.labels_crs).")
    info["polygons"] = len(frame)
    info["polygons_outside_raster"] = int((~inside).sum())
    if (~inside).any():
        warnings.warn(f"{source}: {int((~inside).sum())} of {len(frame)} polygons lie outside the raster and were "
                      "ignored.", stacklevel=3)
    # burn the polygon's row number (1..M), so any class code (0 included) survives
    shapes = ((geom, i + 1) for i, (geom, ok) in enumerate(zip(frame.geometry.to_numpy(), inside)) if ok)
    index = rasterize(shapes, out_shape=(stack.height, stack.width), transform=stack.transform, fill=0,
                      dtype="int32")
    if not (index > 0).any():
        raise StgeoError(f"{source}: its polygons overlap the raster but cover no pixel centre (they are smaller "
                         f"than the raster's pixels of {abs(stack.transform.a):.6g} x {abs(stack.transform.e):.6g}). "
                         "Label larger areas, or use a finer raster.")
    table = np.concatenate([[_NONE], codes.astype(np.int64)])
    return table[index]


def fill_gaps(stack: RasterStack, min_clear: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """Drop frames with less than ``min_clear`` valid pixels and fill the others' gaps per pixel
    by linear interpolation in time (module docstring).

    Returns:
        x (T' * bands, H, W) float32 time-major, valid (H, W) bool, the kept frame indices,
        their clear shares, and the dropped frames' times.

    Raises:
        StgeoError: no frame has enough valid pixels.
    """
    values = np.asarray(stack.data.values, dtype=np.float32)  # (T, B, H, W)
    t, b, h, w = values.shape
    observed = np.isfinite(values)
    clear = observed.reshape(t, -1).mean(axis=1)
    kept = np.flatnonzero(clear >= min_clear)
    if kept.size == 0:
        raise StgeoError(f"{stack.name}: no frame has at least {min_clear:.0%} valid (cloud-free) pixels; the clearest "
                         f"has {clear.max():.0%}. Lower data.patches.min_clear.")
    dropped = list(stack.times[np.setdiff1d(np.arange(t), kept)])
    v = values[kept]
    days = (stack.times[kept] - stack.times[kept][0]).total_seconds().to_numpy() / 86400.0
    filled = _interpolate(v.reshape(len(kept), -1), days).reshape(len(kept), b, h, w)
    valid = np.isfinite(v).any(axis=(0, 1))
    # never-observed pixels: the frame's median, only so the models get finite numbers (masked in outputs)
    if not valid.all():
        med = np.nanmedian(np.where(valid, filled, np.nan).reshape(len(kept), b, -1), axis=2)
        filled = np.where(np.isfinite(filled), filled, med[:, :, None, None])
    return filled.reshape(len(kept) * b, h, w).astype(np.float32), valid, kept, clear[kept], dropped


def _interpolate(v: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Fill NaN along axis 0 of (T, P) linearly in ``days``; ends take the nearest observation;
    columns without any observation stay NaN."""
    t = v.shape[0]
    ok = np.isfinite(v)
    idx = np.arange(t)[:, None]
    prev = np.maximum.accumulate(np.where(ok, idx, -1), axis=0)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(ok, idx, t), axis=0), axis=0), axis=0)
    has_prev, has_next = prev >= 0, nxt < t
    p, n = np.clip(prev, 0, t - 1), np.clip(nxt, 0, t - 1)
    cols = np.arange(v.shape[1])[None, :]
    vp, vn = v[p, cols], v[n, cols]
    dp, dn = days[p], days[n]
    span = np.where(dn > dp, dn - dp, 1.0)
    frac = np.clip((days[:, None] - dp) / span, 0.0, 1.0)
    both = vp + (vn - vp) * frac
    out = np.where(has_prev & has_next, both, np.where(has_prev, vp, vn))
    return np.where(ok, v, out)
