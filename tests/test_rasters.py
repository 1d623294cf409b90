"""Raster time stacks: ingest (GeoTIFF folders, multi-band GeoTIFF, NetCDF), patches and
evaluation tiles, models, and the whole `stgeo-kd run` job writing a GeoTIFF on the input grid."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import xarray as xr
from rasterio.transform import from_origin

from stgeo_kd.cli import main
from stgeo_kd.data.raster_windows import RasterForecastData
from stgeo_kd.distill.hooks import FeatureTap
from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.rasters import check_frames, open_raster_stack, parse_time
from stgeo_kd.models.raster import STCNN, DSCNNStudent, build_raster_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "raster_stacks"
sys.path.insert(0, str(ROOT / "sample_data"))
from make_sample_rasters import NODATA, rain_frames, write_stack

PATTERN = r"rain_(?P<date>\d{8}_\d{4})"


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rain")
    write_stack(folder, frames=30, size=32, seed=5)
    return folder


def test_geotiff_folder_keeps_grid_nodata_units_and_reads_lazily(frames):
    stack = open_raster_stack(frames, pattern=PATTERN)
    assert stack.data.dims == ("time", "band", "y", "x") and stack.data.shape == (30, 1, 32, 32)
    assert stack.data.chunks is not None  # dask: nothing read yet
    assert stack.crs.to_epsg() == 32633
    assert stack.transform == from_origin(500_000.0, 5_300_000.0, 1000.0, 1000.0)
    assert stack.nodata == NODATA and stack.units == {"rain_rate": "mm/h"} and stack.bands == ["rain_rate"]
    assert stack.step_minutes == 10 and stack.times[0] == pd.Timestamp("2024-06-01 12:00")
    values = stack.data.values
    truth = rain_frames(30, 32, 5)
    blind = np.zeros((32, 32), bool)
    blind[-8:, :6] = True
    assert np.isnan(values[:, 0][:, blind]).all()  # nodata is a mask ...
    np.testing.assert_array_equal(values[:, 0][:, ~blind], truth[:, ~blind])  # ... and nothing else changed
    window = stack.read_window([0, 3], -2, 30, 5, 5)  # sticks out of the grid: NaN there
    assert window.shape == (2, 1, 5, 5) and np.isnan(window[:, :, :2]).all() and np.isnan(window[:, :, :, 2:]).all()
    assert np.isfinite(window[:, :, 2:, :2]).all()
    assert check_frames(stack).min() > 0.9


def test_time_parsing_is_strict_about_digits():
    assert parse_time("20240601_1200", None, "f") == pd.Timestamp("2024-06-01 12:00")
    assert parse_time("20180616_100600", None, "f") == pd.Timestamp("2018-06-16 10:06")
    assert parse_time("2024-06-01", None, "f") == pd.Timestamp("2024-06-01")
    with pytest.raises(StgeoError, match="does not parse"):
        parse_time("20241345_1200", None, "f")
    with pytest.raises(StgeoError, match="time_format"):
        parse_time("01/06/2024", "%Y%m%d", "f")


def test_multiband_geotiff_bands_as_time(tmp_path):
    path = tmp_path / "stack.tif"
    data = np.random.default_rng(0).random((6, 10, 12), dtype=np.float32)
    with rasterio.open(path, "w", driver="GTiff", height=10, width=12, count=6, dtype="float32", crs="EPSG:3035",
                       transform=from_origin(4e6, 3e6, 100, 100)) as dst:
        dst.write(data)
    stack = open_raster_stack(path, start="2024-01-01", freq="1h")
    assert stack.data.shape == (6, 1, 10, 12) and stack.step_minutes == 60
    np.testing.assert_array_equal(stack.data.values[:, 0], data)
    with rasterio.open(path, "r+") as dst:  # dates in the band descriptions win
        for i in range(6):
            dst.set_band_description(i + 1, f"2023-05-0{i + 1}")
    stack = open_raster_stack(path)
    assert stack.times[0] == pd.Timestamp("2023-05-01") and stack.step_minutes == 24 * 60


def test_netcdf_cube_with_cf_time_lat_ascending_and_km_coordinates(tmp_path):
    t = pd.date_range("2019-03-01", periods=5, freq="1h")
    lat = np.array([50.0, 50.25, 50.5])  # south first: flipped to north-up
    lon = np.array([-1.0, -0.75, -0.5, -0.25])
    values = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
                    coords={"time": t, "latitude": lat, "longitude": lon})
    ds.rio.write_crs("EPSG:4326").to_netcdf(tmp_path / "cube.nc")
    stack = open_raster_stack(tmp_path / "cube.nc")
    assert stack.crs.to_epsg() == 4326 and stack.units == {"t2m": "K"}
    assert stack.transform.e < 0 and stack.transform.f == pytest.approx(50.625)
    np.testing.assert_array_equal(stack.data.values[:, 0], values[:, ::-1])

    # BoM-style: projected CRS in metres, coordinates in km
    x = xr.DataArray(np.array([-1.0, -0.5, 0.0]), dims="x", attrs={"units": "km"})
    y = xr.DataArray(np.array([1.0, 0.5]), dims="y", attrs={"units": "km"})
    km = xr.Dataset({"p": (("time", "y", "x"), np.ones((2, 2, 3), np.float32))}, coords={"time": t[:2], "x": x, "y": y})
    km.rio.write_crs("EPSG:32633").to_netcdf(tmp_path / "km.nc")
    with pytest.warns(UserWarning, match="in km"):
        stack = open_raster_stack(tmp_path / "km.nc")
    assert stack.transform.a == pytest.approx(500.0) and stack.transform.c == pytest.approx(-1250.0)


def test_frames_on_another_grid_are_refused_or_reprojected(tmp_path):
    folder = tmp_path / "mixed"
    write_stack(folder, frames=4, size=16, seed=2)
    last = max(folder.glob("*.tif"))
    with rasterio.open(last) as src:
        data = src.read(1)
    last.unlink()
    with rasterio.open(last, "w", driver="GTiff", height=16, width=16, count=1, dtype="float32", crs="EPSG:32633",
                       transform=from_origin(501_000, 5_300_000, 1000, 1000), nodata=NODATA) as dst:
        dst.write(data, 1)  # shifted one pixel east
    with pytest.raises(StgeoError, match="data.reproject"):
        open_raster_stack(folder, pattern=PATTERN)
    with pytest.warns(UserWarning, match="reprojected"):
        stack = open_raster_stack(folder, pattern=PATTERN, reproject="first")
    moved = stack.data.values[-1, 0]
    np.testing.assert_allclose(moved[:, 1:][:-8], np.where(data == NODATA, np.nan, data)[:, :-1][:-8], equal_nan=True)
    assert np.isnan(moved[:, 0]).all()  # west of the shifted frame: no data


def test_frames_are_reprojected_to_the_grid_of_a_given_raster(tmp_path, frames):
    ref = tmp_path / "grid.tif"
    with rasterio.open(ref, "w", driver="GTiff", height=20, width=20, count=1, dtype="float32", crs="EPSG:32633",
                       transform=from_origin(502_000, 5_298_000, 1200, 1200)) as dst:
        dst.write(np.zeros((20, 20), "float32"), 1)
    with pytest.warns(UserWarning, match="reprojected"):
        stack = open_raster_stack(frames, pattern=PATTERN, reproject=str(ref))
    assert (stack.height, stack.width) == (20, 20) and stack.transform == from_origin(502_000, 5_298_000, 1200, 1200)
    assert np.isfinite(stack.data.values[0, 0, :5, :5]).all()


def test_zarr_without_the_zarr_package_gets_a_clear_message(tmp_path):
    pytest.importorskip("xarray")
    try:
        import zarr  # noqa: F401

        pytest.skip("zarr is installed")
    except ImportError:
        pass
    (tmp_path / "cube.zarr").mkdir()
    with pytest.raises(StgeoError, match="pip install zarr"):
        open_raster_stack(tmp_path / "cube.zarr")


@pytest.fixture(scope="module")
def data(frames) -> RasterForecastData:
    stack = open_raster_stack(frames, pattern=PATTERN)
    return RasterForecastData(stack, 3, 2, 0.6, 0.2, 0.2, patch=12, patches=20, margin=2, eval_patch=10, halo=6)


def test_splits_are_chronological_and_the_scaler_sees_train_only(data):
    s = data.splits
    assert (s["train"].start, s["train"].stop, s["val"].stop, s["test"].stop) == (0, 18, 24, 30)
    for split in s.values():
        assert (split.windows >= split.start).all() and (split.windows + 5 <= split.stop).all()
    train = data.stack.data.values[:18, 0]
    assert data.scaler.mean[0] == pytest.approx(np.nanmean(train), rel=1e-5)
    x, y, m, i = data.sample("train", 3)
    assert x.shape == (3, 4, 12, 12) and y.shape == (2, 12, 12) and m.shape == (2, 12, 12) and i == 3
    assert not m[:, :2].any() and not m[:, :, -2:].any()  # the margin is out of the loss


def test_evaluation_tiles_cover_every_pixel_once_and_equal_whole_frame_prediction(data):
    split = data.splits["test"]
    cover = np.zeros((len(split.windows), 32, 32), int)
    for i in range(len(split.starts)):
        kr, kc, kh, kw = split.core[i]
        k = list(split.windows).index(split.starts[i])
        r, c = split.rows[i] + kr, split.cols[i] + kc
        cover[k, r : r + kh, c : c + kw] += 1
        assert 0 <= split.rows[i] and split.rows[i] + split.size[0] <= 32  # windows stay on the raster
    assert (cover == 1).all()
    from stgeo_kd.raster.tiling import receptive_radius

    torch.manual_seed(0)
    model = DSCNNStudent(3, 4, 2, width=6, blocks=2).eval()  # dilations 1 and 2: radius 3
    assert receptive_radius(model, (3, 4, 33, 33)) == 3 <= data.halo
    with torch.inference_mode():
        tiles = np.concatenate([model(torch.stack([data.sample("test", i)[0] for i in range(len(split.starts))])).numpy()])
        assembled = data.assemble("test", tiles)
        for k, start in enumerate(split.windows):
            times = np.arange(start, start + 3)
            whole = data.features(data.read(times, 0, 0, 32, 32), times)
            full = model(torch.from_numpy(whole)[None]).numpy()[0]
            np.testing.assert_allclose(assembled[k], full, atol=1e-5)


def test_models_shapes_residual_start_and_cost():
    x = torch.randn(2, 4, 6, 20, 24)
    for model in (STCNN(4, 6, 3, hidden=8), DSCNNStudent(4, 6, 3, width=8)):
        assert model(x).shape == (2, 3, 20, 24)
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
        out = model(x)  # an untrained head starts at persistence of channel 0
        torch.testing.assert_close(out, x[:, -1, :1].expand_as(out))
    from stgeo_kd.evaluate.cost import count_macs

    example = torch.zeros(1, 4, 6, 64, 64)
    assert count_macs(STCNN(4, 6, 5), example) > 10 * count_macs(DSCNNStudent(4, 6, 5), example)
    with pytest.raises(StgeoError, match="Did you mean 'st_cnn'"):
        build_raster_model("stcnn", {}, history=4, channels=6, horizon=5)
    with pytest.raises(StgeoError, match="no parameter 'hiden'"):
        build_raster_model("st_cnn", {"hiden": 3}, history=4, channels=6, horizon=5)


def test_feature_tap_reads_pixels_of_conv_layers():
    model = STCNN(3, 4, 2, hidden=12)
    tap = FeatureTap(model, ["fusion"], (10, 10))
    tap.probe(torch.randn(1, 3, 4, 10, 10))
    model(torch.randn(5, 3, 4, 10, 10))
    assert tap["fusion"].shape == (5, 100, 12) and tap.width("fusion") == 12
    tap.remove()
    student = DSCNNStudent(3, 4, 2, width=6)
    tap = FeatureTap(student, ["blocks"], (10, 10))
    tap.probe(torch.randn(1, 3, 4, 10, 10))
    student(torch.randn(5, 3, 4, 10, 10))
    assert tap["blocks"].shape == (5, 100, 6)
    tap.remove()
    # the per-frame layer folds time into the batch axis: refused with a clear message
    with pytest.raises(StgeoError, match="batch and node axes of layer 'spatial'"):
        FeatureTap(model, ["spatial"], (10, 10)).probe(torch.randn(1, 3, 4, 10, 10))


def _tiny_config(tmp_path: Path, frames: Path) -> Path:
    import yaml

    cfg = {
        "data": {"kind": "raster_stack", "name": "tiny <rain>", "path": str(frames), "pattern": PATTERN},
        "task": {"history": 3, "horizons": [1, 2], "split": {"train": 0.6, "val": 0.2, "test": 0.2},
                 "patches": {"size": 16, "count": 32, "margin": 2, "eval_size": 16}},
        "teacher": {"name": "st_cnn", "params": {"hidden": 6, "spatial_layers": 2, "fusion_layers": 1}},
        "student": {"name": "ds_cnn", "params": {"width": 4, "blocks": 2}},
        "distill": {"terms": ["labels", "soft_targets", {"name": "hint", "weight": 0.5,
                                                         "params": {"student_layer": "blocks", "teacher_layer": "fusion"}}]},
        "train": {"epochs": 2, "batch_size": 8, "progress": False, "latency_repeats": 3},
        "outputs": {"map": True, "geotiff": True, "onnx": False},
    }
    path = tmp_path / "rain.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_writes_a_forecast_geotiff_on_the_input_grid_a_map_and_a_report(tmp_path, frames, capsys):
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", str(_tiny_config(tmp_path, frames)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forecast.tif" in printed and "persistence" in printed
    first = min(frames.glob("*.tif"))
    with rasterio.open(first) as src, rasterio.open(out / "forecast.tif") as dst:
        assert dst.crs == src.crs and dst.transform == src.transform and dst.shape == src.shape
        assert dst.count == 2 and dst.nodata == src.nodata and dst.profile["tiled"]
        assert dst.descriptions[0].startswith("2024-06-01T17:00:00")  # 10 min after the last frame
        assert dst.units[0] == "mm/h"
        pred = dst.read(1)
        assert np.all(pred[-8:, :6] == NODATA) and np.isfinite(pred).all()  # blind spot stays nodata
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["kind"] == "raster_stack" and report["dataset"]["crs"] == "EPSG:32633"
    models = report["models"]
    for role in ("teacher", "student", "student_scratch"):
        assert set(models[role]["metrics"]) >= {"h1", "h2"} and models[role]["macs"] > 0
        assert models[role]["throughput_mpix_per_s"] > 0
    assert models["teacher"]["macs"] > models["student"]["macs"]
    assert set(models["baselines"]) == {"persistence"}
    assert set(report["comparison"]["beats_persistence"]["student"]) == {"h1", "h2"}
    assert [t["name"] for t in report["distill"]["terms"]] == ["labels", "soft_targets", "hint"]
    page = (out / "map.html").read_text()
    assert "tiny &lt;rain&gt;" in page and "tiny <rain>" not in page
    assert page.count("L.imageOverlay") == 6  # observed, student, teacher x 2 lead times


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/raster_stacks is absent")
def test_real_stacks_open_with_their_grids():
    with pytest.warns(UserWarning, match="in km"):
        bom = open_raster_stack(SHARED / "bom_radar_melbourne_20180616", pattern=r"2_(?P<date>\d{8}_\d{6})")
    assert bom.data.shape == (61, 1, 512, 512) and bom.step_minutes == 6
    assert bom.transform.a == pytest.approx(500.0) and bom.crs.is_projected
    assert bom.units == {"precipitation": "kg m-2"}
    era5 = open_raster_stack(SHARED / "era5_t2m_uk_2019_03" / "era5_t2m_uk_2019-03.nc")
    assert era5.data.shape == (744, 1, 33, 49) and era5.step_minutes == 60 and era5.crs.to_epsg() == 4326
    assert era5.transform.c == pytest.approx(-10.125) and era5.transform.f == pytest.approx(58.125)
