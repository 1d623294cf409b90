"""Property-based fuzzing of the readers, the graph builders and the windowing.

Random tables (wide and long, CSV and Parquet), sensor tables, adjacency matrices (CSV, .npy
and in memory), distance matrices, point sets and reading arrays, full of NaN, infinities,
empty cells, huge values, text and repeated or shuffled time stamps: every call either works
(and then its result is sound: finite numbers, regular time axis, unique ids ...) or raises
StgeoError. Any other exception is a bug.

The runs are reproducible (``derandomize=True``, no example database) and sized to take well
under a minute on 2 cores; ``FUZZ_COUNTS`` counts the examples really run (see
``test_fuzz_case_count`` and ``make_doc.py``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stgeo_kd.data.sensor_graph import SensorGraph
from stgeo_kd.data.windows import ForecastData
from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.roads import (
    adjacency_to_edges,
    gaussian_kernel_adjacency,
    knn_adjacency,
    read_adjacency_matrix,
)
from stgeo_kd.ingest.sensors import read_readings, read_sensor_locations

#: examples run per fuzz test (counted as the code under test is called), and how many of them
#: the code accepted (the others ended in StgeoError)
FUZZ_COUNTS: Counter[str] = Counter()
FUZZ_ACCEPTED: Counter[str] = Counter()

#: examples per test in the default run: 2,720 in all
EXAMPLES = {
    "wide": 450,
    "long": 450,
    "sensors": 250,
    "matrix_csv": 300,
    "matrix_npy": 200,
    "kernel": 250,
    "knn": 150,
    "windows": 550,
    "raster_stack": 120,
}


#: longer or fresh runs by hand: STGEO_KD_FUZZ_SCALE=10 (ten times the examples) and
#: STGEO_KD_FUZZ_RANDOM=1 (new random examples instead of the fixed, reproducible ones)
_SCALE = float(os.environ.get("STGEO_KD_FUZZ_SCALE", "1"))
_FIXED = not os.environ.get("STGEO_KD_FUZZ_RANDOM")


def fuzz_settings(name: str) -> settings:
    return settings(
        max_examples=max(1, round(EXAMPLES[name] * _SCALE)),
        deadline=None,
        derandomize=_FIXED,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


_DIR = Path(tempfile.mkdtemp(prefix="stgeo_kd_fuzz_"))
START = pd.Timestamp("2024-03-04 00:00")
STEPS = [pd.Timedelta(seconds=1), pd.Timedelta(minutes=5), pd.Timedelta(hours=1), pd.Timedelta(days=7)]

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-200, max_value=200),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 3.5e38, -3.5e38, 3.4e38, 1e38, 5e-324, 1e-45]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
TEXT = st.sampled_from(
    ["", " ", "abc", "nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "1,5", " 3 ", "NULL",
     "None", "n/a", "\u2014", "\U0001f4a5", "0x10", "1_000", "true", '"', "a\nb"]
)
DISTANCES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1e4),
    st.sampled_from([0.0, float("inf"), 1e308, 1e-300, -1.0]),
)
CELLS = st.one_of(st.none(), NUMBERS, NUMBERS, TEXT)
IDS = st.sampled_from(["S1", "S2", "S3", " S1", "S2 ", "", "0101", "101", "nan", "x,y", "\u00e9t\u00e9", "None"])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


@st.composite
def time_stamps(draw, n: int, clean: bool = False) -> list[object]:
    """n time stamps: regular, with gaps, repeats, shuffles, far-off typos or text.

    ``clean``: distinct stamps on one grid (maybe with gaps or in another order), rarely a typo.
    """
    step = draw(st.sampled_from(STEPS))
    if draw(st.booleans()):
        ks = list(range(n))
    elif clean:
        ks = sorted(draw(st.sets(st.integers(0, 2 * n + 2), min_size=n, max_size=n)))
    else:
        ks = draw(st.lists(st.integers(0, 3 * n + 3), min_size=n, max_size=n))
    if n > 1 and draw(st.integers(0, 4)) == 0:
        ks = draw(st.permutations(ks))
    if n and draw(st.integers(0, 29 if clean else 9)) == 0:
        far = min(10**7, pd.Timedelta(days=365 * 90) // step)  # a typo far away, within 90 years
        ks[draw(st.integers(0, n - 1))] = draw(st.integers(min(10**4, far), far))
    stamps: list[object] = [(START + k * step).strftime("%Y-%m-%d %H:%M:%S") for k in ks]
    if n and not clean and draw(st.integers(0, 7)) == 0:
        stamps[draw(st.integers(0, n - 1))] = draw(st.one_of(st.none(), TEXT, NUMBERS))
    return stamps


def _check_readings(da: xr.DataArray) -> None:
    assert da.dims == ("time", "node")
    assert da.dtype == np.float32
    v = da.values
    assert not np.isinf(v).any()
    assert not np.isnan(v).all()
    t = da["time"].values
    assert len(t) >= 2
    steps = np.diff(t)
    assert (steps > np.timedelta64(0)).all() and (steps == steps[0]).all()
    assert steps[0] >= np.timedelta64(1, "s")
    nodes = [str(n) for n in da["node"].values]
    assert len(set(nodes)) == len(nodes) and all(n.strip() for n in nodes)


@contextlib.contextmanager
def _quiet():
    """Warnings (repaired data, numpy overflow) are expected here; only exceptions count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ----------------------------------------------------------------------------------------------
# Readings
# ----------------------------------------------------------------------------------------------


def _messy(data) -> bool:
    """One example in three is messy (anything goes); the others are plausible data with at most a
    few flaws, so that the code paths that accept data are fuzzed as hard as those that refuse it."""
    return data.draw(st.integers(0, 2), label="messy") == 0


GOOD_VALUES = st.one_of(st.none(), st.floats(-200, 200), st.floats(0, 130), st.integers(0, 130))
SPECIAL = st.sampled_from([float("inf"), -float("inf"), 1e308, -1e308, 3.5e38, 1e38, float("nan"), 0.0])


@fuzz_settings("wide")
@given(data=st.data())
def test_wide_readings(data):
    messy = _messy(data)
    n_rows = data.draw(st.integers(0, 14), label="rows")
    if messy:
        names = data.draw(st.lists(IDS, min_size=0, max_size=4), label="sensor columns")
    else:
        names = data.draw(st.lists(st.sampled_from(["S1", "S2", "S3", "0101", "x y"]), min_size=1, max_size=4, unique=True))
    stamps = data.draw(time_stamps(n_rows, clean=not messy), label="times")
    cells = data.draw(
        st.lists(st.lists(CELLS if messy else GOOD_VALUES, min_size=len(names), max_size=len(names)), min_size=n_rows, max_size=n_rows),
        label="cells",
    )
    if not messy and cells and data.draw(st.booleans(), label="a few special values"):
        for _ in range(data.draw(st.integers(1, 2))):
            cells[data.draw(st.integers(0, n_rows - 1))][data.draw(st.integers(0, len(names) - 1))] = data.draw(SPECIAL)
    missing = data.draw(st.lists(st.sampled_from([0.0, -1.0, 1e308, float("nan")]), max_size=2), label="missing codes")
    freq = data.draw(st.sampled_from([None, None, None, "5min", "1h", "7min", "often", "1M"]), label="freq")
    as_parquet = data.draw(st.booleans(), label="parquet")
    numeric = all(v is None or isinstance(v, (int, float)) for row in cells for v in row)
    texts = all(isinstance(t, str) for t in stamps)
    if as_parquet and numeric and texts and len(set(names)) == len(names) and "timestamp" not in names:
        path = _DIR / "wide.parquet"
        times = pd.Series(stamps, dtype=object)
        try:  # a datetime column when every stamp is a date, else the text as written
            times = pd.to_datetime(times, format="%Y-%m-%d %H:%M:%S")
        except (ValueError, TypeError):
            pass
        frame = pd.DataFrame({"timestamp": times})
        for j, name in enumerate(names):
            frame[name] = pd.Series([row[j] for row in cells], dtype="float64")
        frame.to_parquet(path)
    else:
        path = _write_csv(_DIR / "wide.csv", ["timestamp", *names], [[t, *row] for t, row in zip(stamps, cells)])
    FUZZ_COUNTS["wide"] += 1
    with _quiet():
        try:
            da = read_readings(path, layout="wide", freq=freq, missing_values=missing)
        except StgeoError:
            return
    _check_readings(da)
    FUZZ_ACCEPTED["wide"] += 1


@fuzz_settings("long")
@given(data=st.data())
def test_long_readings(data):
    messy = _messy(data)
    if messy:
        n_rows = data.draw(st.integers(0, 16), label="rows")
        stamps = data.draw(time_stamps(n_rows), label="times")
        ids = data.draw(st.lists(st.one_of(st.none(), IDS), min_size=n_rows, max_size=n_rows), label="ids")
        values = data.draw(st.lists(CELLS, min_size=n_rows, max_size=n_rows), label="values")
    else:  # every sensor at every time, then rows dropped, shuffled, or one repeated
        sensors = data.draw(st.lists(st.sampled_from(["S1", "S2", "S3", "0101"]), min_size=1, max_size=3, unique=True))
        times = data.draw(time_stamps(data.draw(st.integers(0, 8)), clean=True), label="times")
        pairs = [(i, t) for i in sensors for t in times]
        pairs = data.draw(st.permutations(pairs)) if data.draw(st.booleans(), label="shuffle") else pairs
        keep = data.draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)), label="keep")
        pairs = [p for p, k in zip(pairs, keep) if k or data.draw(st.integers(0, 3)) > 0]
        if pairs and data.draw(st.integers(0, 5)) == 0:
            pairs.append(pairs[0])
        ids, stamps = [i for i, _ in pairs], [t for _, t in pairs]
        values = data.draw(st.lists(GOOD_VALUES, min_size=len(pairs), max_size=len(pairs)), label="values")
    extra = data.draw(st.booleans(), label="extra column")
    value_column = data.draw(st.sampled_from([None, "speed", "speed", "flow"]), label="value_column")
    layout = data.draw(st.sampled_from(["long", "auto"]), label="layout")
    header = ["sensor_id", "timestamp", "speed"] + (["flow"] if extra else [])
    rows = [[i, t, v] + ([1.0] if extra else []) for i, t, v in zip(ids, stamps, values)]
    path = _write_csv(_DIR / "long.csv", header, rows)
    FUZZ_COUNTS["long"] += 1
    with _quiet():
        try:
            da = read_readings(path, layout=layout, value_column=value_column)
        except StgeoError:
            return
    _check_readings(da)
    FUZZ_ACCEPTED["long"] += 1


@fuzz_settings("sensors")
@given(data=st.data())
def test_sensor_tables(data):
    messy = _messy(data)
    n = data.draw(st.integers(0, 6), label="sensors")
    if messy:
        coordinate = st.one_of(st.floats(-200, 200), CELLS)
        ids = [data.draw(st.one_of(st.none(), IDS)) for _ in range(n)]
        lons = [data.draw(coordinate) for _ in range(n)]
        lats = [data.draw(coordinate) for _ in range(n)]
        header = data.draw(st.sampled_from([["sensor_id", "name", "lon", "lat"], ["sensor_id", "name", "x", "lat"]]))
        crs = data.draw(st.sampled_from(["EPSG:4326", "EPSG:32633", "EPSG:3857", "EPSG:999999", "not a crs", "+proj=longlat"]))
    else:
        ids = [f"S{i:02d}" for i in range(n)]
        lons = data.draw(st.lists(st.floats(-180, 180), min_size=n, max_size=n), label="lon")
        lats = data.draw(st.lists(st.floats(-90, 90), min_size=n, max_size=n), label="lat")
        header = ["sensor_id", "name", "lon", "lat"]
        crs = data.draw(st.sampled_from(["EPSG:4326", "EPSG:4326", "EPSG:32633", "OGC:CRS84"]))
    rows = [[i, "name", x, y] for i, x, y in zip(ids, lons, lats)]
    path = _write_csv(_DIR / "sensors.csv", header, rows)
    FUZZ_COUNTS["sensors"] += 1
    with _quiet():
        try:
            gdf = read_sensor_locations(path, crs=crs, name_column="name")
        except StgeoError:
            return
    assert isinstance(gdf, gpd.GeoDataFrame) and gdf.crs is not None and len(gdf) >= 1
    ids = gdf["sensor_id"].tolist()
    assert len(set(ids)) == len(ids) and all(i.strip() for i in ids)
    xy = np.column_stack([gdf.geometry.x, gdf.geometry.y])
    assert np.isfinite(xy).all()
    FUZZ_ACCEPTED["sensors"] += 1


# ----------------------------------------------------------------------------------------------
# Graphs
# ----------------------------------------------------------------------------------------------


def _check_matrix(matrix: np.ndarray, ids: list[str] | None, n_expected: int | None) -> None:
    assert matrix.dtype == np.float64 and matrix.ndim == 2 and matrix.shape[0] == matrix.shape[1]
    assert np.isfinite(matrix).all() and (matrix >= 0).all()
    if n_expected is not None:
        assert matrix.shape[0] == n_expected
    if ids is not None:
        assert len(ids) == matrix.shape[0] and len(set(ids)) == len(ids)


@fuzz_settings("matrix_csv")
@given(data=st.data())
def test_adjacency_matrix_csv(data):
    messy = _messy(data)
    n = data.draw(st.integers(0 if messy else 1, 5), label="rows")
    m = data.draw(st.integers(1, 5), label="columns") if messy else n
    weight = CELLS if messy else st.one_of(st.floats(0, 1), st.integers(0, 3), st.floats(0, 1e30))
    rows = data.draw(st.lists(st.lists(weight, min_size=m, max_size=m), min_size=n, max_size=n), label="cells")
    if not messy and data.draw(st.integers(0, 3)) == 0:
        rows[data.draw(st.integers(0, n - 1))][data.draw(st.integers(0, m - 1))] = data.draw(st.one_of(SPECIAL, TEXT))
    ids = [f"S{i}" for i in range(n)] if not messy else None
    labelled = data.draw(st.booleans(), label="row labels")
    if labelled:
        rows = [[data.draw(IDS) if messy else ids[r], *row] for r, row in enumerate(rows)]
    width = len(rows[0]) if rows else m
    if messy:
        header = data.draw(st.one_of(st.none(), st.lists(IDS, min_size=width, max_size=width)), label="header")
    else:
        header = data.draw(st.sampled_from([None, ([""] if labelled else []) + ids, ([""] if labelled else []) + [str(400001 + i) for i in range(n)]]))
    path = _DIR / "adj.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    path.write_text(buf.getvalue(), encoding="utf-8")
    n_expected = data.draw(st.one_of(st.none(), st.integers(0, 5)), label="n_expected")
    FUZZ_COUNTS["matrix_csv"] += 1
    try:
        matrix, ids = read_adjacency_matrix(path, n_expected=n_expected)
    except StgeoError:
        return
    _check_matrix(matrix, ids, n_expected)
    FUZZ_ACCEPTED["matrix_csv"] += 1


@fuzz_settings("matrix_npy")
@given(data=st.data())
def test_adjacency_matrix_npy(data):
    path = _DIR / "adj.npy"
    kind = data.draw(st.sampled_from(["square", "square", "array", "object", "bytes"]), label="kind")
    if kind == "square":
        n = data.draw(st.integers(0, 5))
        dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.uint8]))
        np.save(path, data.draw(hnp.arrays(dtype, (n, n))))
    elif kind == "array":
        dtype = data.draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128, np.uint8, "<U3", "<M8[s]"]))
        shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        np.save(path, data.draw(hnp.arrays(dtype, shape)))
    elif kind == "object":
        np.save(path, np.array([[None, 1], ["x", 2.0]], dtype=object), allow_pickle=True)
    else:
        prefix = data.draw(st.sampled_from([b"", b"\x93NUMPY", b"PK\x03\x04", b"\x80\x04"]))
        path.write_bytes(prefix + data.draw(st.binary(max_size=64)))
    FUZZ_COUNTS["matrix_npy"] += 1
    try:
        with _quiet():
            matrix, ids = read_adjacency_matrix(path)
    except StgeoError:
        return
    _check_matrix(matrix, ids, None)
    FUZZ_ACCEPTED["matrix_npy"] += 1


@fuzz_settings("kernel")
@given(data=st.data())
def test_gaussian_kernel_and_edges(data):
    if _messy(data):
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
        dist = data.draw(hnp.arrays(np.float64, shape, elements=DISTANCES), label="distances")
        threshold = data.draw(st.one_of(st.floats(0, 1), st.floats(allow_nan=True, allow_infinity=True)))
        sigma = data.draw(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e-300, 1e300])))
    else:
        n = data.draw(st.integers(1, 5))
        elements = st.one_of(st.floats(0, 5000), st.floats(0, 5000), st.just(float("inf")))
        dist = data.draw(hnp.arrays(np.float64, (n, n), elements=elements), label="distances")
        np.fill_diagonal(dist, 0.0)
        threshold = data.draw(st.floats(0, 1))
        sigma = data.draw(st.one_of(st.none(), st.floats(1, 1e4)))
    FUZZ_COUNTS["kernel"] += 1
    with _quiet():
        try:
            weights = gaussian_kernel_adjacency(dist, threshold=threshold, sigma=sigma)
        except StgeoError:
            weights = None
        if weights is not None:
            assert weights.shape == dist.shape
            assert np.isfinite(weights).all() and (weights >= 0).all() and (weights <= 1).all()
            assert (np.diag(weights) == 1).all()
        try:
            edge_index, edge_weight = adjacency_to_edges(dist if weights is None else weights)
        except StgeoError:
            return
    assert edge_index.shape == (2, edge_weight.shape[0]) and edge_index.dtype == np.int64
    assert np.isfinite(edge_weight).all()
    if edge_index.size:
        assert edge_index.min() >= 0 and edge_index.max() < dist.shape[0]
        assert (edge_index[0] != edge_index[1]).all()
    FUZZ_ACCEPTED["kernel"] += 1


@fuzz_settings("knn")
@given(data=st.data())
def test_knn_adjacency(data):
    if _messy(data):
        coordinate = st.one_of(st.floats(-180, 180), NUMBERS)
        coords = data.draw(st.lists(st.tuples(coordinate, coordinate), max_size=6), label="coordinates")
        crs = data.draw(st.sampled_from(["EPSG:4326", "EPSG:32633", "EPSG:3857"]))
        k = data.draw(st.one_of(st.integers(-1, 8), st.just(True)))
    else:  # sensors within a few km of each other, somewhere on Earth
        lon0, lat0 = data.draw(st.floats(-179, 179)), data.draw(st.floats(-79, 83))
        offset = st.floats(-0.05, 0.05)
        coords = data.draw(st.lists(st.tuples(offset, offset), min_size=2, max_size=6), label="offsets")
        coords = [(lon0 + dx, lat0 + dy) for dx, dy in coords]
        crs, k = "EPSG:4326", data.draw(st.integers(1, 8))
    FUZZ_COUNTS["knn"] += 1
    with _quiet():
        points = gpd.GeoDataFrame(
            geometry=gpd.points_from_xy([float(x) for x, _ in coords], [float(y) for _, y in coords]), crs=crs
        )
        try:
            weights = knn_adjacency(points, k=k)
        except StgeoError:
            return
    assert weights.shape == (len(coords), len(coords))
    assert np.isfinite(weights).all() and (weights >= 0).all() and (weights <= 1).all()
    assert np.array_equal(weights, weights.T)
    FUZZ_ACCEPTED["knn"] += 1


# ----------------------------------------------------------------------------------------------
# Windowing
# ----------------------------------------------------------------------------------------------


@fuzz_settings("windows")
@given(data=st.data())
def test_forecast_windows(data):
    messy = _messy(data)
    t = data.draw(st.integers(0, 80), label="time steps")
    n = data.draw(st.integers(1, 4), label="sensors")
    raw = data.draw(hnp.arrays(np.float64, (t, n), elements=st.one_of(st.floats(-100, 100), st.just(float("nan")))), label="values")
    if raw.size and (messy or data.draw(st.integers(0, 4)) == 0):
        for _ in range(data.draw(st.integers(1, 3))):
            raw[data.draw(st.integers(0, t - 1)), data.draw(st.integers(0, n - 1))] = data.draw(SPECIAL)
    if raw.size and data.draw(st.integers(0, 5)) == 0:
        raw[:, data.draw(st.integers(0, n - 1))] = data.draw(st.sampled_from([float("nan"), 1e38, -3e38, 7.0]))
    step = data.draw(st.sampled_from(STEPS), label="step")
    times = START + step * np.arange(t)
    if t > 1 and messy and data.draw(st.booleans()):
        times = times[data.draw(st.lists(st.integers(0, t - 1), min_size=t, max_size=t))]  # shuffled or repeated
    if messy:
        history, horizon = data.draw(st.integers(-1, 14), label="history"), data.draw(st.integers(-1, 6), label="horizon")
        train = data.draw(st.floats(0, 1), label="train")
        val = data.draw(st.floats(0, 1 - train), label="val")
        test = data.draw(st.sampled_from([1 - train - val, 0.2, 0.0]), label="test")
    else:
        history, horizon = data.draw(st.integers(1, 6), label="history"), data.draw(st.integers(1, 4), label="horizon")
        train, val = data.draw(st.sampled_from([(0.7, 0.1), (0.6, 0.2), (0.8, 0.0), (0.5, 0.25)]), label="split")
        test = 1.0 - train - val
    ids = [f"s{i}" for i in range(n)]
    values = xr.DataArray(raw, dims=("time", "node"), coords={"time": np.asarray(times), "node": ids})
    nodes = gpd.GeoDataFrame({"sensor_id": ids}, geometry=gpd.points_from_xy(np.arange(n), np.zeros(n)), crs="EPSG:4326")
    FUZZ_COUNTS["windows"] += 1
    with _quiet():
        try:
            graph = SensorGraph(values=values, edge_index=np.zeros((2, 0)), edge_weight=np.zeros(0), nodes=nodes)
            windows = ForecastData(graph, history, horizon, train, val, test)
        except StgeoError:
            return
    assert np.isfinite(windows.features).all() and np.isfinite(windows.target).all()
    assert windows.features.shape == (t, n, 4)
    np.testing.assert_array_equal(windows.mask, np.isfinite(raw))
    assert windows.steps_per_day >= 1
    for split in windows.splits.values():
        if len(split.starts):
            assert split.starts.min() >= split.start
            assert split.starts.max() + windows.history + windows.horizon <= split.stop
    train_set = windows.dataset("train")
    x, y, _, _ = train_set[len(train_set) - 1]
    assert tuple(x.shape) == (windows.history, n, 4) and tuple(y.shape) == (windows.horizon, n)
    raw_targets, _ = windows.window_targets_raw("test")
    assert raw_targets.shape == (len(windows.splits["test"].starts), windows.horizon, n)
    FUZZ_ACCEPTED["windows"] += 1


# ----------------------------------------------------------------------------------------------
# Raster stacks
# ----------------------------------------------------------------------------------------------

RASTER_DATES = st.sampled_from(["20240601_1200", "20240601_1210", "20240601_1220", "20240601_1230", "20240601_1250",
                                "20240601_1215", "20241345_1200", "20240601_9999", "2024060_1200", "20240601_1200"])


@fuzz_settings("raster_stack")
@given(data=st.data())
def test_raster_stacks(data):
    """GeoTIFF folders with random sizes, dates (duplicated, irregular, impossible), nodata
    (NaN, a value, whole frames), grids and CRSs: ingest and the patch windows either work and
    are sound, or raise StgeoError."""
    import rasterio
    from rasterio.transform import from_origin

    from stgeo_kd.data.raster_windows import RasterForecastData
    from stgeo_kd.ingest.rasters import check_frames, open_raster_stack

    messy = _messy(data)
    n = data.draw(st.integers(0, 7) if messy else st.integers(10, 16), label="frames")
    h, w = data.draw(st.integers(1, 12), label="rows"), data.draw(st.integers(1, 12), label="cols")
    nodata = data.draw(st.sampled_from([None, -9999.0, 0.0]), label="nodata")
    folder = Path(tempfile.mkdtemp(dir=_DIR))
    if messy:
        dates = data.draw(st.lists(RASTER_DATES, min_size=n, max_size=n), label="dates")
    else:
        dates = [f"20240601_{12 + (10 * k) // 60:02d}{(10 * k) % 60:02d}" for k in range(n)]
    expected_missing = 0
    for k, date in enumerate(dates):
        values = st.one_of(st.floats(-50, 50, width=32), st.just(float("nan"))) if messy else st.floats(-50, 50, width=32)
        arr = data.draw(hnp.arrays(np.float32, (h, w), elements=values), label="frame")
        if not messy and data.draw(st.booleans(), label="some NaN"):
            arr[data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))] = np.nan
        if nodata is not None and data.draw(st.integers(0, 3)) == 0:
            arr[data.draw(st.integers(0, h - 1)), :] = nodata
        crs = data.draw(st.sampled_from(["EPSG:32633", "EPSG:32633", "EPSG:32633", "EPSG:4326"])) if messy else "EPSG:32633"
        x0 = 500_000.0 + (data.draw(st.sampled_from([0.0, 0.0, 1000.0])) if messy else 0.0)
        with rasterio.open(folder / f"f_{date}.tif", "w", driver="GTiff", height=h, width=w, count=1, dtype="float32",
                           crs=crs, transform=from_origin(x0, 5_300_000.0, 1000.0, 1000.0), nodata=nodata) as dst:
            dst.write(arr, 1)
        expected_missing += int((~np.isfinite(arr) | (arr == nodata if nodata is not None else False)).sum())
    FUZZ_COUNTS["raster_stack"] += 1
    with _quiet():
        try:
            stack = open_raster_stack(folder, pattern=r"f_(?P<date>\d+_\d+)\.tif$",
                                      reproject=data.draw(st.sampled_from([None, "first"]), label="reproject"))
            check_frames(stack)
            history, horizon = data.draw(st.integers(1, 2), label="history"), data.draw(st.integers(1, 2), label="horizon")
            windows = RasterForecastData(stack, history, horizon, 0.5, 0.25, 0.25, patch=data.draw(st.integers(1, 8)),
                                         patches=4, margin=1, eval_patch=data.draw(st.integers(1, 8)), halo=2)
        except StgeoError:
            return
    values = stack.data.values
    assert values.shape[1:] == (1, stack.height, stack.width) and values.dtype == np.float32
    assert not np.isinf(values).any()
    assert stack.times.is_monotonic_increasing and not stack.times.has_duplicates
    if values.shape[2:] == (h, w) and len(stack.times) == n:
        assert int(np.isnan(values).sum()) == expected_missing  # nodata is a mask, nothing else is
    assert np.isfinite(windows.scaler.mean).all() and (windows.scaler.std > 0).all()
    for split in windows.splits:
        for i in range(len(windows.splits[split].starts)):
            x, y, m, _ = windows.sample(split, i)
            assert torch_finite(x) and torch_finite(y)
            assert tuple(y.shape) == tuple(m.shape) and x.shape[0] == history
    FUZZ_ACCEPTED["raster_stack"] += 1


def torch_finite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())


def test_fuzz_case_count():
    """The default run fuzzes at least 2,000 cases (counted, not assumed)."""
    if len(FUZZ_COUNTS) < len(EXAMPLES) or _SCALE < 1:
        pytest.skip("only part of the fuzz tests ran in this session")
    total = sum(FUZZ_COUNTS.values())
    print(f"fuzz cases run: {total} ({dict(FUZZ_COUNTS)}); accepted and checked: {dict(FUZZ_ACCEPTED)}")
    assert total >= 2000, dict(FUZZ_COUNTS)
