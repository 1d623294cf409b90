"""Tiled prediction of a raster of any size, written as a Cloud-Optimised GeoTIFF.

A raster model here maps an input window ``(T, C, h, w)`` (T frames, C channels) to an output
``(K, h, w)`` (one band per predicted step) with zero-padded convolutions only, so each output
pixel depends on the input pixels within its *receptive radius* and nothing else
(see :mod:`stgeo_kd.models.raster`). That makes tiling exact:

* The output raster is cut into square tile *cores* on a regular grid. Each tile is read with
  a *halo* of ``halo`` pixels on every side (default: the measured receptive radius), so the
  model sees everything the core pixels depend on; only core pixels get weight.
* Neighbouring cores overlap by ``blend`` pixels. Across the overlap the two tiles' weights ramp
  linearly (``(j + 0.5) / blend`` up, ``1 - (j + 0.5) / blend`` down); along every axis the
  weights of the tiles covering a pixel sum to 1, so the output is their weighted average. The
  raster's outer edges get no ramp.
* Tiles are read clipped to the raster: at the raster's edges the window ends where the raster
  ends, so the model pads there exactly as it does on the whole raster. (Filling the outside
  with zeros would not do: zero *input* is not zero *features* -- after a layer with a bias the
  next layer would see non-zero values where the untiled model pads with zeros.) Hence the
  tiled prediction equals the untiled one everywhere, borders included, to float rounding.

Memory stays bounded by the tile size and the raster *width*, never its height: one row of
tiles is predicted at a time (``batch_tiles`` tiles per forward pass) into an accumulation
buffer of ``K x (core + 16) x width`` float32; finished rows are written out (16-row strips of
a DEFLATE-compressed staging GeoTIFF) and the ``blend`` overlap rows carried over to the next
tile row. The staging file is then converted to a COG (512 x 512 tiles, DEFLATE with the
floating-point predictor, overviews averaged) by GDAL under a small block cache, and renamed
onto the final path: no partial file is ever left under ``out_path``. Disk: the staging file,
the COG and GDAL's temporary overview file exist together for a moment (for incompressible
output, about 2.3x the raw size ``K x height x width x 4`` bytes).
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stgeo_kd._atomic import atomic_path
from stgeo_kd.errors import Cancelled, StgeoError

ReadFn = Callable[[int, int, int, int], np.ndarray]
"""``read(row0, col0, h, w) -> float32 (T, C, h, w)``: the model input for that window.

:func:`predict_tiled` only asks for windows inside the raster; :func:`array_reader` also
accepts windows sticking out of it and fills the outside with zeros."""

STRIP_ROWS = 16
"""Rows per strip of the staging GeoTIFF; writes are aligned to it so no strip is rewritten."""

COG_BLOCKSIZE = 512
GDAL_CACHE_BYTES = 128 * 2**20
"""GDAL block cache while writing (and while ``read`` runs). In bytes: rasterio.Env passes small
numbers through as *bytes* (``GDAL_CACHEMAX=128`` would mean 128 bytes), not megabytes."""


# --------------------------------------------------------------------------------------------
# readers


def array_reader(array: np.ndarray) -> ReadFn:
    """Wrap an in-memory array ``(T, C, H, W)`` as a ``read`` callable for :func:`predict_tiled`.

    Windows may stick out of the array; the part outside is zero-filled.
    """
    array = np.asarray(array)
    if array.ndim != 4:
        raise StgeoError(f"array_reader needs an array of shape (T, C, H, W); got shape {array.shape}.")
    t, c, height, width = array.shape

    def read(row0: int, col0: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((t, c, h, w), dtype=np.float32)
        r0, r1 = max(row0, 0), min(row0 + h, height)
        c0, c1 = max(col0, 0), min(col0 + w, width)
        if r0 < r1 and c0 < c1:
            out[:, :, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = array[:, :, r0:r1, c0:c1]
        return out

    return read


# --------------------------------------------------------------------------------------------
# receptive radius


def _model_device_dtype(model: Any) -> tuple[Any, Any]:
    import torch

    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else torch.float32
    return device, dtype


def receptive_radius(
    model: Any,
    example_shape: Sequence[int],
    *,
    trials: int = 4,
    seed: int = 0,
    max_side: int = 257,
) -> int:
    """Measure how far (in pixels, Chebyshev distance) an output pixel's inputs reach.

    The model is copied to float64 in eval mode and called on a random input of shape
    ``(trials, *example_shape)`` -- ``example_shape`` is one sample's input shape ending in
    ``(H, W)``, e.g. ``(T, C, 65, 65)``; the output must end in the same ``(H, W)``. A random
    combination of the output bands at the centre pixel is back-propagated, and the radius is
    the distance from the centre to the farthest input pixel with a non-zero gradient in any
    frame or channel of any of the ``trials`` random samples (so a ReLU that happens to be off
    for one sample does not hide a path). If the gradient reaches the edge of the example, the
    example is grown (up to ``max_side`` pixels, so radii up to ``max_side // 2 - 1`` are
    measured: raise it for models with a wider field, at some memory cost); a model whose output depends on pixels
    farther than that (global pooling, attention over the image, ...) is not local and gets a
    :class:`StgeoError`: tiled prediction could not reproduce it.
    """
    import torch

    shape = tuple(int(s) for s in example_shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise StgeoError(f"example_shape must be one sample's input shape ending in (H, W); got {tuple(example_shape)}.")
    lead = shape[:-2]
    side = max(shape[-2], shape[-1], 9) | 1  # odd, so there is a centre pixel
    probe = copy.deepcopy(model).double().eval()
    device, _ = _model_device_dtype(probe)
    gen = torch.Generator().manual_seed(seed)
    while True:
        centre = side // 2
        # a batch of random inputs: samples do not interact in eval mode, so one backward pass
        # gives every sample's own input gradient
        x = torch.randn((max(1, trials), *lead, side, side), generator=gen, dtype=torch.float64).to(device)
        x.requires_grad_(True)
        y = probe(x)
        if not isinstance(y, torch.Tensor) or y.dim() < 3 or tuple(y.shape[-2:]) != (side, side) or (
            y.shape[0] != x.shape[0]
        ):  # fmt: skip
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise StgeoError(
                f"receptive_radius: the model must map {tuple(x.shape)} to (B, ..., {side}, {side}); got {got}."
            )
        if not y.requires_grad:
            raise StgeoError("receptive_radius: the model's output does not depend on its input (no gradient).")
        at_centre = y[..., centre, centre]
        mix = torch.randn(at_centre.shape, generator=gen, dtype=torch.float64).to(device)
        (at_centre * mix).sum().backward()
        reach = x.grad.detach().abs().reshape(-1, side, side).amax(0) > 0
        rows = torch.nonzero(reach.any(1)).flatten()
        cols = torch.nonzero(reach.any(0)).flatten()
        radius = 0
        if rows.numel():
            radius = max(
                int(centre - rows.min()), int(rows.max() - centre), int(centre - cols.min()), int(cols.max() - centre)
            )
        if radius < centre:
            return radius
        if side >= max_side:
            raise StgeoError(
                f"The model's output at a pixel depends on inputs at least {centre} pixels away (the whole "
                f"{side}x{side} test input): it is not a local convolutional model, so it cannot be predicted "
                "tile by tile exactly. Predict it whole, or pass an explicit halo if you accept seams."
            )
        side = min(2 * side + 1, max_side | 1)


# --------------------------------------------------------------------------------------------
# tile grid and blend weights


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of a ``height x width`` raster go, and their blend weights.

    A tile is a ``tile x tile`` model input whose inner ``core = tile - 2 * halo`` pixels are
    used; cores start every ``stride = core - blend`` pixels from (0, 0), so neighbours overlap by
    ``blend``. Along one axis, core ``i`` covers ``[i * stride, i * stride + core)`` and the tile
    is read from ``i * stride - halo``.
    """

    height: int
    width: int
    tile: int
    halo: int
    blend: int

    def __post_init__(self) -> None:
        for name in ("height", "width", "tile"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise StgeoError(f"{name} must be a positive integer; got {value!r}.")
        for name in ("halo", "blend"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise StgeoError(f"{name} must be a non-negative integer; got {value!r}.")
        need = 2 * self.halo + max(2 * self.blend, 1)
        if self.tile < need:
            raise StgeoError(
                f"tile={self.tile} is too small for halo={self.halo} and blend={self.blend}: a tile must be at least "
                f"2*halo + 2*blend = {need} pixels (and bigger is faster: only tile - 2*halo = core pixels of each "
                "tile are used). Raise tile or lower blend."
            )

    @property
    def core(self) -> int:
        return self.tile - 2 * self.halo

    @property
    def stride(self) -> int:
        return self.core - self.blend

    def count(self, length: int) -> int:
        """Number of tiles along an axis of ``length`` pixels."""
        return 1 if length <= self.core else math.ceil((length - self.core) / self.stride) + 1

    def starts(self, length: int) -> list[int]:
        """Core starts along an axis of ``length`` pixels (the tile is read from ``start - halo``)."""
        return [i * self.stride for i in range(self.count(length))]

    def core_weights(self, length: int, index: int) -> np.ndarray:
        """1-D weights (float64, length ``core``) of core ``index`` along an axis of ``length``."""
        n = self.count(length)
        w = np.ones(self.core, dtype=np.float64)
        if self.blend:
            ramp = (np.arange(self.blend, dtype=np.float64) + 0.5) / self.blend
            if index > 0:
                w[: self.blend] = ramp
            if index < n - 1:
                w[self.core - self.blend :] = 1.0 - ramp
        return w

    def tile_weights(self, length: int, index: int) -> np.ndarray:
        """1-D weights over the whole tile (length ``tile``): zero in the halo, ``core_weights`` inside."""
        w = np.zeros(self.tile, dtype=np.float64)
        w[self.halo : self.halo + self.core] = self.core_weights(length, index)
        return w

    @property
    def tiles(self) -> int:
        return self.count(self.height) * self.count(self.width)


# --------------------------------------------------------------------------------------------
# prediction


def _check_window(x: Any, window: tuple[int, int, int, int], expect: tuple[int, int] | None) -> np.ndarray:
    row0, col0, h, w = window
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[2:] != (h, w):
        raise StgeoError(
            f"read({row0}, {col0}, {h}, {w}) must return an array of shape (T, C, {h}, {w}); got shape {arr.shape}."
        )
    if expect is not None and arr.shape[:2] != expect:
        raise StgeoError(
            f"read({row0}, {col0}, {h}, {w}) returned (T, C) = {arr.shape[:2]}, but earlier windows had {expect}."
        )
    return arr


def _cog_available() -> bool:
    import rasterio

    with rasterio.Env() as env:
        return "COG" in env.drivers()


def predict_tiled(
    model: Any,
    read: ReadFn,
    height: int,
    width: int,
    out_path: str | os.PathLike[str],
    *,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    band_descriptions: Sequence[str] | None = None,
    tile: int = 256,
    halo: int | None = None,
    blend: int = 16,
    batch_tiles: int = 4,
    postprocess: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    units: str | Sequence[str] | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Predict a ``height x width`` raster tile by tile and write it as a COG at ``out_path``.

    Args:
        model: a torch module mapping ``(B, T, C, h, w)`` to ``(B, K, h, w)`` with local
            (zero-padded convolution) layers. It is put in eval mode for the call (every
            module's previous mode is restored) and run on the device and dtype of its
            parameters.
        read: ``read(row0, col0, h, w) -> (T, C, h, w)`` float32 model input for that window
            (see :func:`array_reader`). Only windows inside ``[0, height) x [0, width)`` are
            requested: at most ``tile x tile``, smaller where clipped at the raster's edges.
        height, width: the raster's size in pixels.
        out_path: the GeoTIFF to write (replaced atomically; untouched on error or cancel).
        crs, transform, nodata: written as they are (the input grid's); ``crs`` may be None.
        band_descriptions: one per output band (e.g. the predicted timestamps), or None.
        tile: model input size in pixels (square), halo included.
        halo: pixels read around each core; default the measured :func:`receptive_radius`.
            Smaller than the receptive radius gives seams (not exact).
        blend: overlap in pixels between neighbouring cores, blended linearly.
        batch_tiles: tiles per forward pass.
        postprocess: ``postprocess(pred, window) -> array`` applied to each block of finished
            rows before it is written: ``pred`` is float32 ``(K, h, width)``, ``window`` a
            :class:`rasterio.windows.Window` of the output (full width); return an array of the
            same shape (e.g. inverse scaling, nodata where the input had no observation).
        units: a unit for every band, or one per band (GDAL band unit type).
        progress: called with the fraction done in ``[0, 1]``: up to 0.95 during prediction
            (after each row of tiles), 1.0 once the COG is in place.
        cancel: polled before each row of tiles and before the COG conversion; when it returns
            True, temporary files are removed and :class:`stgeo_kd.errors.Cancelled` is raised.

    Returns:
        ``Path(out_path)``.
    """
    import rasterio
    from rasterio.windows import Window

    height, width = _positive("height", height), _positive("width", width)
    batch_tiles = _positive("batch_tiles", batch_tiles)
    if not callable(read):
        raise StgeoError("read must be a callable read(row0, col0, h, w) -> (T, C, h, w) array.")
    if postprocess is not None and not callable(postprocess):
        raise StgeoError("postprocess must be a callable postprocess(pred, window) -> array, or None.")
    frames_channels = _check_window(read(0, 0, 1, 1), (0, 0, 1, 1), None).shape[:2]
    if halo is None:
        halo = receptive_radius(model, (*frames_channels, 65, 65))
    grid = TileGrid(height, width, _positive("tile", tile), halo, blend)  # validates tile, halo, blend
    core, strip = grid.core, STRIP_ROWS
    row_starts, col_starts = grid.starts(height), grid.starts(width)
    col_weights = [grid.core_weights(width, j) for j in range(len(col_starts))]

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, stage_name = tempfile.mkstemp(prefix=f".{out_path.stem}.", suffix=".stage.tif", dir=out_path.parent)
    os.close(fd)
    stage = Path(stage_name)
    leftovers = [stage, Path(f"{stage}.aux.xml")]
    modes = [(m, m.training) for m in model.modules()]  # restored afterwards, module by module
    model.eval()

    def check_cancel() -> None:
        if cancel is not None and cancel():
            raise Cancelled(f"Tiled prediction of {out_path.name} was cancelled; nothing was written.")

    try:
        with atomic_path(out_path) as tmp_out, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            leftovers += [Path(f"{tmp_out}.ovr.tmp"), Path(f"{tmp_out}.aux.xml")]
            dst = None
            acc = np.zeros((0, 0, 0), dtype=np.float32)  # output rows [buf0, buf0 + core + strip), full width
            buf0 = 0
            try:
                for i, r_start in enumerate(row_starts):
                    check_cancel()
                    row0, nrows, r_off, r_n = _span(r_start, core, halo, height)
                    w_rows = grid.core_weights(height, i)[:r_n, None]
                    for batch in _batches(col_starts, core, halo, width, batch_tiles):
                        ncols = batch[0][2]
                        x = np.stack(
                            [_check_window(read(row0, c0, nrows, ncols), (row0, c0, nrows, ncols), frames_channels)
                             for _, c0, _, _, _ in batch]
                        )  # fmt: skip
                        pred = _forward(model, x)
                        if dst is None:
                            acc = np.zeros((pred.shape[1], core + strip, width), dtype=np.float32)
                            dst = _open_stage(
                                stage, height, width, pred.shape[1], crs, transform, nodata, band_descriptions, units
                            )
                        for k, (j, _, _, c_off, c_n) in enumerate(batch):
                            c0 = col_starts[j]
                            weight = (w_rows * col_weights[j][None, :c_n]).astype(np.float32)
                            acc[:, r_start - buf0 : r_start - buf0 + r_n, c0 : c0 + c_n] += (
                                pred[k, :, r_off : r_off + r_n, c_off : c_off + c_n] * weight
                            )
                    # rows above the next tile row's first core row are final; write whole strips of them
                    last = i == len(row_starts) - 1
                    done = height if last else (min(row_starts[i + 1], height) // strip) * strip
                    if done > buf0:
                        n = done - buf0
                        window = Window(0, buf0, width, n)
                        block = acc[:, :n]
                        if postprocess is not None:
                            block = np.asarray(postprocess(block.copy(), window), dtype=np.float32)
                            if block.shape != (acc.shape[0], n, width):
                                raise StgeoError(
                                    f"postprocess must return an array of shape {(acc.shape[0], n, width)}; "
                                    f"got {block.shape}."
                                )
                        dst.write(block, window=window)
                        acc[:, : acc.shape[1] - n] = acc[:, n:].copy()  # carry the unfinished rows up
                        acc[:, acc.shape[1] - n :] = 0.0
                        buf0 = done
                    if progress is not None:
                        progress(0.95 * (i + 1) / len(row_starts))
            finally:
                if dst is not None:
                    dst.close()
            check_cancel()
            _to_cog(stage, tmp_out)
        if progress is not None:
            progress(1.0)
        return out_path
    finally:
        for module, training in modes:
            module.training = training
        for path in leftovers:
            if path.exists():
                path.unlink()


def _forward(model: Any, x: np.ndarray) -> np.ndarray:
    """One batch of tiles through the model: float32 ``(B, T, C, h, w)`` -> float32 ``(B, K, h, w)``."""
    import torch

    device, dtype = _model_device_dtype(model)
    with torch.inference_mode():
        pred = model(torch.from_numpy(x).to(device=device, dtype=dtype))
    if not isinstance(pred, torch.Tensor) or pred.dim() != 4 or (pred.shape[0], *pred.shape[2:]) != (
        x.shape[0], *x.shape[3:]
    ):  # fmt: skip
        got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise StgeoError(f"The model must map (B, T, C, h, w) to (B, K, h, w); for input {x.shape} it returned {got}.")
    return pred.detach().to(device="cpu", dtype=torch.float32).numpy()


def _open_stage(
    path: Path,
    height: int,
    width: int,
    bands: int,
    crs: Any,
    transform: Any,
    nodata: float | None,
    band_descriptions: Sequence[str] | None,
    units: str | Sequence[str] | None,
) -> Any:
    """The staging GeoTIFF: striped (16 rows), DEFLATE level 1 with the floating-point predictor,
    written strip by strip (so no compressed strip is ever rewritten)."""
    import rasterio

    descriptions = _per_band("band_descriptions", band_descriptions, bands)
    band_units = _per_band("units", units, bands)
    dst = rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=bands, dtype="float32",
        crs=crs, transform=transform, nodata=nodata,
        tiled=False, blockysize=STRIP_ROWS, compress="deflate", zlevel=1, predictor=3, bigtiff="IF_SAFER",
    )  # fmt: skip
    for band in range(bands):
        if descriptions[band] is not None:
            dst.set_band_description(band + 1, str(descriptions[band]))
        if band_units[band] is not None:
            dst.set_band_unit(band + 1, str(band_units[band]))
    return dst

def _span(start: int, core: int, halo: int, length: int) -> tuple[int, int, int, int]:
    """The read window of the core starting at ``start``, clipped to ``[0, length)``:
    ``(read_start, read_length, core_offset_in_window, core_length_inside_raster)``."""
    lo, hi = max(start - halo, 0), min(start + core + halo, length)
    return lo, hi - lo, start - lo, min(start + core, length) - start


def _batches(
    starts: list[int], core: int, halo: int, length: int, size: int
) -> list[list[tuple[int, int, int, int, int]]]:
    """Group the tiles of one row into batches of at most ``size`` tiles of equal window width:
    each entry is ``(index, read_start, read_length, core_offset, core_length)``."""
    batches: list[list[tuple[int, int, int, int, int]]] = []
    for j, start in enumerate(starts):
        entry = (j, *_span(start, core, halo, length))
        if batches and len(batches[-1]) < size and batches[-1][-1][2] == entry[2]:
            batches[-1].append(entry)
        else:
            batches.append([entry])
    return batches


def _to_cog(src: Path, dst: Path) -> None:
    """Convert the staging GeoTIFF to a COG (or, without GDAL's COG driver, a tiled GeoTIFF)."""
    import rasterio.shutil

    if _cog_available():
        rasterio.shutil.copy(
            src, dst, driver="COG", compress="DEFLATE", predictor="YES", blocksize=COG_BLOCKSIZE,
            overview_resampling="AVERAGE", bigtiff="IF_SAFER",
        )  # fmt: skip
    else:  # GDAL < 3.1: a tiled, compressed GeoTIFF without the COG layout
        rasterio.shutil.copy(
            src, dst, driver="GTiff", tiled=True, blockxsize=COG_BLOCKSIZE, blockysize=COG_BLOCKSIZE,
            compress="DEFLATE", predictor=3, bigtiff="IF_SAFER",
        )  # fmt: skip


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise StgeoError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _per_band(name: str, value: str | Sequence[str] | None, bands: int) -> list[str | None]:
    if value is None:
        return [None] * bands
    if isinstance(value, str):
        return [value] * bands if name == "units" else _per_band(name, [value], bands)
    values = list(value)
    if len(values) != bands:
        raise StgeoError(f"{name} has {len(values)} entries but the model predicts {bands} bands; give one per band.")
    return values
