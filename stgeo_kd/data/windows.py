"""Sliding windows, chronological splits and a train-only scaler for forecasting on a SensorGraph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.errors import StgeoError

#: Input feature channels, in order, of every window tensor.
FEATURES = ("value", "observed", "time_of_day", "day_of_week")


@dataclass
class Scaler:
    """z-score scaler fitted on the observed training readings only (missing values ignored)."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        obs = values[~np.isnan(values)].astype(np.float64)  # float32 sums overflow for large readings
        if obs.size == 0:
            raise StgeoError("The training part of the readings has no observed value; use a larger train split.")
        std = float(obs.std())
        return cls(mean=float(obs.mean()), std=std if std > 1e-8 else 1.0)

    def transform(self, x):
        return (x - self.mean) / self.std

    def inverse(self, x):
        return x * self.std + self.mean


@dataclass
class Split:
    """Window start indices for one split; a window starting at s uses steps s..s+history-1 as
    input and s+history..s+history+horizon-1 as targets, all inside the split's time range."""

    name: str
    start: int
    stop: int
    starts: np.ndarray


class ForecastData:
    """Feature tensor, targets, mask and chronological splits for a SensorGraph.

    The split follows T-GCN's protocol: the time axis is cut chronologically into
    train | val | test (validation taken from the end of the training part), and windows are
    made inside each part, so no target of one split is an input or target of another.

    Shapes:
        features: (T, N, 4) float32 -- scaled value (0 where missing), observed flag,
            time of day in [0, 1), day of week 0..6.
        target: (T, N) float32 scaled values, 0 where missing; mask: (T, N) bool.
        raw: (T, N) float32 readings in data units, NaN where missing.

    Raises:
        StgeoError: a split too short to hold one window of ``history + horizon`` steps.
    """

    def __init__(self, graph: SensorGraph, history: int, horizon: int, train: float, val: float, test: float):
        self.graph = graph
        self.history = int(history)
        self.horizon = int(horizon)
        if self.history < 1 or self.horizon < 1:
            raise StgeoError(
                f"task.history and the horizons must be at least 1 step, got history={self.history}, "
                f"horizon={self.horizon}."
            )
        fractions = (train, val, test)
        if not all(np.isfinite(f) and f >= 0 for f in fractions) or train <= 0 or test <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise StgeoError(
                "task.split fractions must be non-negative and sum to 1 (train and test > 0), got "
                f"train={train}, val={val}, test={test}."
            )
        with np.errstate(over="ignore"):
            raw = graph.values.values.astype(np.float32)
        if np.isinf(raw).any():
            raise StgeoError(
                f"The readings of {graph.name!r} hold {int(np.isinf(raw).sum())} infinite value(s) or values too "
                "large for 32-bit numbers; use NaN for missing readings and check the units."
            )
        self.raw = raw
        self.mask = ~np.isnan(raw)
        t_total = raw.shape[0]
        n_test = round(t_total * test)
        n_val = round(t_total * val)
        n_train = t_total - n_test - n_val
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, t_total)}
        need = self.history + self.horizon
        self.splits: dict[str, Split] = {}
        for name, (a, b) in bounds.items():
            if name == "val" and b - a == 0:
                self.splits[name] = Split(name, a, b, np.zeros(0, dtype=np.int64))
                continue
            if b - a < need:
                raise StgeoError(
                    f"The {name} split has {b - a} time steps but one window needs history + horizon = {need} "
                    f"({self.history} + {self.horizon}). Use more data, a shorter task.history/horizons, "
                    "or change task.split."
                )
            self.splits[name] = Split(name, a, b, np.arange(a, b - need + 1, dtype=np.int64))
        self.scaler = Scaler.fit(raw[:n_train])
        # in float64: (x - mean) / std of readings near the float32 limit would overflow in float32
        with np.errstate(over="ignore"):
            scaled = np.where(self.mask, self.scaler.transform(np.nan_to_num(raw).astype(np.float64)), 0.0).astype(np.float32)
        if not np.isfinite(scaled).all():
            raise StgeoError(
                f"Some readings of {graph.name!r} are so far from the training readings (over 1e38 standard "
                "deviations) that they cannot be scaled; check the units and remove the outliers."
            )
        times = graph.values["time"].values.astype("datetime64[m]")
        minutes = (times - times.astype("datetime64[D]")).astype(np.int64)
        tod = (minutes / 1440.0).astype(np.float32)
        # 1970-01-01 was a Thursday (weekday 3, Monday = 0)
        dow = ((times.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(np.float32)
        n = raw.shape[1]
        self.features = np.stack(
            [scaled, self.mask.astype(np.float32), np.repeat(tod[:, None], n, 1), np.repeat(dow[:, None], n, 1)], axis=-1
        )
        self.target = scaled
        # at least one slot: weekly or monthly data has no time of day to embed
        self.steps_per_day = max(1, round(1440.0 / graph.step_minutes))
        self.times = graph.values["time"].values

    @property
    def num_nodes(self) -> int:
        return self.raw.shape[1]

    def dataset(self, split: str) -> WindowDataset:
        return WindowDataset(self, self.splits[split].starts)

    def labels(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Class labels of windows (classification data only); None for forecasting."""
        return None

    def window_targets_raw(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw targets (W, H, N) in data units (NaN where missing) and their mask."""
        starts = self.splits[split].starts
        idx = starts[:, None] + self.history + np.arange(self.horizon)[None, :]
        return self.raw[idx], self.mask[idx]

    def window_inputs(self, split: str) -> torch.Tensor:
        """All input windows of a split, (W, history, N, 4)."""
        starts = self.splits[split].starts
        idx = starts[:, None] + np.arange(self.history)[None, :]
        return torch.from_numpy(self.features[idx])


class WindowDataset(Dataset):
    """Items are ``(x, y, mask, i)``: x (history, N, 4), y (horizon, N) scaled, mask (horizon, N)
    bool, and the window's position i in this dataset (used to look up teacher predictions)."""

    def __init__(self, data: ForecastData, starts: np.ndarray):
        self.data = data
        self.starts = starts
        self._features = torch.from_numpy(data.features)
        self._target = torch.from_numpy(data.target)
        self._mask = torch.from_numpy(data.mask)
        labelled = data.labels(starts)
        self._labels = None if labelled is None else (torch.from_numpy(labelled[0]), torch.from_numpy(labelled[1]))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int):
        s = int(self.starts[i])
        h, f = self.data.history, self.data.horizon
        if self._labels is not None:
            return self._features[s : s + h], self._labels[0][i], self._labels[1][i], i
        return (
            self._features[s : s + h],
            self._target[s + h : s + h + f],
            self._mask[s + h : s + h + f],
            i,
        )


class ClassifyData(ForecastData):
    """Windows labelled by what happens next: the class of the value ``k`` steps ahead.

    ``rule="thresholds"``: the future value binned by increasing ``thresholds`` (data units):
    class ``j`` when ``thresholds[j-1] <= value < thresholds[j]``.
    ``rule="trend"``: the change from the last input value to the future value, divided by the
    training standard deviation: ``< -band`` fall (0), ``> band`` rise (2), else flat (1).
    A position is unlabelled where the future value (or, for trend, the last input value) is
    missing; such positions count in no loss and no metric.

    Dataset items are ``(x, labels, mask, i)`` with integer labels (horizon, N).
    """

    def __init__(self, graph: SensorGraph, history: int, horizon: int, train: float, val: float, test: float,
                 rule: str = "trend", thresholds: list[float] | None = None, band: float = 0.25,
                 names: list[str] | None = None):
        super().__init__(graph, history, horizon, train, val, test)
        self.rule = rule
        self.thresholds = np.asarray(thresholds or [], dtype=np.float64)
        self.band = float(band)
        if rule == "thresholds":
            if self.thresholds.size == 0:
                raise StgeoError("Classes by thresholds need task.classes.thresholds, e.g. [30, 50] for speeds.")
            self.num_classes = self.thresholds.size + 1
            default = [f"class_{j}" for j in range(self.num_classes)]
        elif rule == "trend":
            self.num_classes = 3
            default = ["fall", "flat", "rise"]
        else:
            raise StgeoError(f"Unknown class rule {rule!r}; use thresholds or trend.")
        self.class_names = list(names) if names else default

    def classify_values(self, future: np.ndarray, last: np.ndarray | None = None) -> np.ndarray:
        """Classes (int64, -1 where undefined) of future values; ``last`` is the value each is
        compared with under the trend rule (broadcast against ``future``)."""
        ok = np.isfinite(future)
        if self.rule == "thresholds":
            cls = np.searchsorted(self.thresholds, np.nan_to_num(future), side="right")
        else:
            ok = ok & np.isfinite(last)
            change = (np.nan_to_num(future) - np.nan_to_num(last)) / self.scaler.std
            cls = np.where(change < -self.band, 0, np.where(change > self.band, 2, 1))
        return np.where(ok, cls, -1).astype(np.int64)

    def last_inputs(self, starts: np.ndarray) -> np.ndarray:
        """The last input value of each window (W, 1, N), NaN where missing."""
        return self.raw[starts + self.history - 1][:, None, :]

    def labels(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = starts[:, None] + self.history + np.arange(self.horizon)[None, :]
        future = np.where(self.mask[idx], self.raw[idx], np.nan)
        cls = self.classify_values(future, self.last_inputs(starts))
        return cls, cls >= 0

    def window_labels(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels (W, H, N) int64 (-1 unlabelled) and their mask for a split."""
        return self.labels(self.splits[split].starts)

    def class_counts(self, split: str) -> list[int]:
        cls, ok = self.window_labels(split)
        return np.bincount(cls[ok], minlength=self.num_classes).tolist()
