"""Patches of a RasterStack for training and evaluation: chronological splits, a train-only
scaler, random space-time patches for training and a grid of haloed tiles for evaluation.

A sample is ``(x, y, mask, index)`` like the sensor-graph windows, so the same training loop
(:func:`stgeo_kd.training.fit`) and distillation objective apply:

Shapes:
    x: (T, C, h, w) float32 -- for each band: scaled value (0 where missing) and observed
        flag; then sin and cos of the frame's time of day (``time_features``)
    y: (K, h, w) float32 -- the target band, scaled, at lead times 1..K (0 where missing)
    mask: (K, h, w) bool -- observed target pixels that count in losses and metrics
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from stgeo_kd.data.raster_stack import RasterStack
from stgeo_kd.errors import StgeoError


@dataclass
class BandScaler:
    """Per-band z-score scaler fitted on the observed pixels of the training frames only."""

    mean: np.ndarray
    std: np.ndarray

    def transform(self, x: np.ndarray, band_axis: int = 1) -> np.ndarray:
        shape = [1] * x.ndim
        shape[band_axis] = -1
        return (x - self.mean.reshape(shape)) / self.std.reshape(shape)

    def inverse_band(self, x, band: int):
        return x * float(self.std[band]) + float(self.mean[band])


@dataclass
class PatchSplit:
    """Samples of one split. Sample ``i`` reads the window starting at frame ``starts[i]``,
    rows ``rows[i] .. rows[i] + size[0]`` and columns ``cols[i] .. cols[i] + size[1]`` (always
    inside the raster); its loss / metric region is the ``core`` box ``(row, col, h, w)``
    given relative to that window."""

    name: str
    start: int
    stop: int
    windows: np.ndarray
    starts: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    size: tuple[int, int]
    core: np.ndarray  # (S, 4): row, col, h, w inside the window


class RasterForecastData:
    """Forecast the next ``horizon`` frames of a band from the last ``history`` frames.

    The time axis is cut chronologically into train | val | test as for sensor graphs;
    windows never cross a cut. Training samples are ``patches`` random (window, row, col)
    patches of ``patch`` x ``patch`` pixels drawn once with ``seed``, with the outer ``margin``
    pixels left out of the loss (their convolutions see zero padding, which whole-raster
    prediction does not). Validation and test samples tile every window's full frame with
    ``eval_patch`` squares read with a ``halo`` of context on each side (shifted inwards at
    the raster's edges), so their predictions equal whole-frame prediction when the halo
    covers the model's receptive field.

    Raises:
        StgeoError: a split too short for one window, a target band not in the stack, or a
            training part without observed pixels.
    """

    eval_batch_size = 8

    def __init__(
        self,
        stack: RasterStack,
        history: int,
        horizon: int,
        train: float,
        val: float,
        test: float,
        *,
        target: str | None = None,
        patch: int = 48,
        patches: int = 512,
        margin: int = 4,
        eval_patch: int = 128,
        halo: int = 16,
        time_features: bool = True,
        seed: int = 0,
        memory_limit_bytes: int = 2 * 1024**3,
    ):
        # stacks that fit are read once; larger ones stay lazy and are read patch by patch
        self.stack = stack = stack.load() if stack.nbytes() <= memory_limit_bytes else stack
        self.history, self.horizon = int(history), int(horizon)
        if self.history < 1 or self.horizon < 1:
            raise StgeoError(f"task.history and the horizons must be at least 1 frame, got {history} and {horizon}.")
        bands = stack.bands
        if target is None:
            target = bands[0]
        if target not in bands:
            raise StgeoError(f"task.target {target!r} is not a band of the stack; bands: {', '.join(bands)}.")
        self.target, self.target_band = target, bands.index(target)
        self.time_features = bool(time_features)
        T = stack.num_steps
        window = self.history + self.horizon
        cuts = [0, round(T * train), round(T * (train + val)), T]
        self.splits: dict[str, PatchSplit] = {}
        h, w = stack.height, stack.width
        p = max(1, min(int(patch), h, w))
        self.patch, self.margin = p, max(0, min(int(margin), (p - 1) // 2))
        self.eval_patch, self.halo = max(1, min(int(eval_patch), max(h, w))), max(0, int(halo))
        rng = np.random.default_rng(seed)
        for k, name in enumerate(("train", "val", "test")):
            lo, hi = cuts[k], cuts[k + 1]
            wins = np.arange(lo, hi - window + 1, dtype=np.int64)
            if name == "train":
                if len(wins) == 0:
                    raise StgeoError(
                        f"The training part ({hi - lo} frames) is shorter than one window of history + horizon = "
                        f"{window} frames; use more frames, a larger train split, or a shorter history / horizon."
                    )
                n = int(patches)
                starts = wins[rng.integers(0, len(wins), n)]
                rows = rng.integers(0, h - p + 1, n)
                cols = rng.integers(0, w - p + 1, n)
                m = self.margin
                core = np.tile(np.array([m, m, p - 2 * m, p - 2 * m], dtype=np.int64), (n, 1))
                self.splits[name] = PatchSplit(name, lo, hi, wins, starts, rows, cols, (p, p), core)
            else:
                if name == "test" and len(wins) == 0:
                    raise StgeoError(
                        f"The test part ({hi - lo} frames) is shorter than one window of {window} frames; "
                        "use a larger test split or a shorter history / horizon."
                    )
                self.splits[name] = self._grid_split(name, lo, hi, wins)
        self.scaler = self._fit_scaler(cuts[1])
        tod = (stack.times - stack.times.normalize()).total_seconds().values / 86400.0
        self.tod = np.stack([np.sin(2 * np.pi * tod), np.cos(2 * np.pi * tod)], axis=1).astype(np.float32)

    def _grid_split(self, name: str, lo: int, hi: int, wins: np.ndarray) -> PatchSplit:
        """Every window's frame cut into ``eval_patch`` cores, each read with ``halo`` pixels
        of context; windows near the raster's edges are shifted inwards (the edge then is the
        raster's own, padded by the model exactly as on the whole raster)."""
        H, W = self.stack.height, self.stack.width
        axes = []
        for n in (H, W):
            size = min(self.eval_patch + 2 * self.halo, n)
            core = n if size == n else self.eval_patch
            starts = np.arange(0, n, core)
            win = np.clip(starts - self.halo, 0, n - size)
            axes.append((size, starts, win, np.minimum(core, n - starts)))
        (sh, r_core, r_win, r_len), (sw, c_core, c_win, c_len) = axes
        rr, cc = np.meshgrid(np.arange(len(r_core)), np.arange(len(c_core)), indexing="ij")
        rr, cc = rr.ravel(), cc.ravel()
        tiles = np.stack([r_core[rr] - r_win[rr], c_core[cc] - c_win[cc], r_len[rr], c_len[cc]], axis=1)
        k = len(wins)
        return PatchSplit(name, lo, hi, wins, np.repeat(wins, len(rr)), np.tile(r_win[rr], k), np.tile(c_win[cc], k),
                          (sh, sw), np.tile(tiles, (k, 1)))

    # -- shapes ------------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return 2 * len(self.stack.bands) + (2 if self.time_features else 0)

    @property
    def num_nodes(self) -> int:
        """Pixels of a training patch (the 'nodes' of feature distillation)."""
        return self.patch * self.patch

    @property
    def node_shape(self) -> tuple[int, int]:
        return (self.patch, self.patch)

    # -- scaling -------------------------------------------------------------------------------
    def _fit_scaler(self, train_stop: int) -> BandScaler:
        part = self.stack.data.isel(time=slice(0, train_stop))
        mean = part.mean(dim=("time", "y", "x"), skipna=True).values.astype(np.float64)
        std = part.std(dim=("time", "y", "x"), skipna=True).values.astype(np.float64)
        if not np.all(np.isfinite(mean)):
            bad = [b for b, m in zip(self.stack.bands, mean) if not np.isfinite(m)]
            raise StgeoError(f"The training frames hold no observed pixel of band(s) {bad}; use a larger train split.")
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        return BandScaler(mean, std)

    # -- samples -------------------------------------------------------------------------------
    def read(self, times: np.ndarray, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        """Raw values (len(times), bands, h, w), NaN outside the raster and where missing."""
        return self.stack.read_window(times, row0, col0, h, w)

    def features(self, raw: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Model input channels (T, C, h, w) from raw frames (T, bands, h, w)."""
        obs = np.isfinite(raw)
        scaled = np.where(obs, self.scaler.transform(np.nan_to_num(raw)), 0.0)
        parts = [scaled.astype(np.float32), obs.astype(np.float32)]
        if self.time_features:
            t, _, h, w = raw.shape
            parts.append(np.broadcast_to(self.tod[times][:, :, None, None], (t, 2, h, w)))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def sample(self, split: str, i: int):
        s = self.splits[split]
        start, r0, c0 = int(s.starts[i]), int(s.rows[i]), int(s.cols[i])
        (sh, sw), (kr, kc, kh, kw) = s.size, (int(v) for v in s.core[i])
        times = np.arange(start, start + self.history + self.horizon)
        raw = self.read(times, r0, c0, sh, sw)
        x = self.features(raw[: self.history], times[: self.history])
        fut = raw[self.history :, self.target_band]
        mask = np.isfinite(fut)
        y = np.where(mask, self.scaler.transform(np.nan_to_num(fut)[:, None], 1)[:, 0], 0.0).astype(np.float32)
        keep = np.zeros((sh, sw), dtype=bool)
        keep[kr : kr + kh, kc : kc + kw] = True
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask & keep[None]), i

    def dataset(self, split: str) -> Dataset:
        return _PatchDataset(self, split)

    # -- whole frames for evaluation ----------------------------------------------------------
    def assemble(self, split: str, preds: np.ndarray) -> np.ndarray:
        """Per-sample predictions (S, K, h, w) of a val/test split -> whole frames
        (windows, K, H, W), each pixel from the core of its tile."""
        s = self.splits[split]
        H, W = self.stack.height, self.stack.width
        out = np.full((len(s.windows), preds.shape[1], H, W), np.nan, dtype=np.float32)
        win_index = {int(v): k for k, v in enumerate(s.windows)}
        for i in range(len(s.starts)):
            k = win_index[int(s.starts[i])]
            kr, kc, kh, kw = (int(v) for v in s.core[i])
            r, c = int(s.rows[i]) + kr, int(s.cols[i]) + kc
            out[k, :, r : r + kh, c : c + kw] = preds[i, :, kr : kr + kh, kc : kc + kw]
        return out

    def frames_raw(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Observed target frames (windows, K, H, W) in data units (NaN where missing) and the
        last input frame of each window (windows, H, W), for persistence."""
        s = self.splits[split]
        H, W = self.stack.height, self.stack.width
        truth = np.stack([self.read(np.arange(t + self.history, t + self.history + self.horizon), 0, 0, H, W)
                          [:, self.target_band] for t in s.windows]) if len(s.windows) else np.zeros((0, self.horizon, H, W))
        last = np.stack([self.read(np.array([t + self.history - 1]), 0, 0, H, W)[0, self.target_band]
                         for t in s.windows]) if len(s.windows) else np.zeros((0, H, W))
        return truth.astype(np.float32), last.astype(np.float32)

    def forecast_times(self, start: int):
        """Timestamps of the K predicted frames of the window starting at ``start``."""
        step = self.stack.step
        last = self.stack.times[start + self.history - 1]
        return [last + (k + 1) * step for k in range(self.horizon)]


class _PatchDataset(Dataset):
    def __init__(self, data: RasterForecastData, split: str):
        self.data, self.split = data, split
        self.n = len(data.splits[split].starts)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.data.sample(self.split, i)
