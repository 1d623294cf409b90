"""Tiled prediction: exact against the untiled model, blend weights, COG output, atomic writes,
the measured receptive radius and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch import nn

from stgeo_kd.errors import Cancelled, StgeoError
from stgeo_kd.models.raster import STCNN, DSCNNStudent
from stgeo_kd.raster.tiling import (
    TileGrid,
    array_reader,
    predict_tiled,
    receptive_radius,
)

CRS = "EPSG:32633"
TRANSFORM = from_origin(500_000.0, 6_000_000.0, 100.0, 100.0)
NODATA = -9999.0


@pytest.fixture(autouse=True)
def _one_thread():
    # many small tiles: one intra-op thread is faster than two on a busy 2-core machine
    # (runs after conftest's fixture, which resets the count for the next test)
    torch.set_num_threads(1)
    yield


class Frames(nn.Module):
    """Plain 2-D layers applied to (B, T, C, H, W) with T * C stacked as channels."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        return self.body(x.reshape(b, t * c, h, w))


def dilated(*dilations: int, channels: int = 2) -> nn.Module:
    layers: list[nn.Module] = []
    for i, d in enumerate(dilations):
        layers += [nn.Conv2d(channels if i == 0 else 4, 4, 3, padding=d, dilation=d), nn.ReLU()]
    return Frames(*layers, nn.Conv2d(4, 1, 1))


def stack(t: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, c, h, w)).astype(np.float32)


def untiled(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)[None])[0].numpy()


# ------------------------------------------------------------------------------- radius


@pytest.mark.parametrize(
    ("dilations", "radius"), [((1,), 1), ((1, 2, 4), 7), ((2, 2), 4), ((1, 1, 1, 8), 11)]
)
def test_receptive_radius_of_known_convolutions(dilations, radius):
    torch.manual_seed(0)
    assert receptive_radius(dilated(*dilations, channels=1), (1, 1, 33, 33)) == radius


def test_receptive_radius_of_the_raster_models_and_growth():
    torch.manual_seed(0)
    # STCNN: spatial 1 + 2 + 4, fusion 2 + 4; student: dilations 1 + 2 + 4 + 8
    assert receptive_radius(STCNN(history=3, channels=4, horizon=2), (3, 4, 33, 33)) == 13
    assert receptive_radius(DSCNNStudent(history=3, channels=4, horizon=2), (3, 4, 33, 33)) == 15
    # an example smaller than the field is grown until the field fits
    assert receptive_radius(DSCNNStudent(history=1, channels=2, horizon=1), (1, 2, 9, 9)) == 15


def test_receptive_radius_leaves_the_model_alone():
    model = DSCNNStudent(history=1, channels=2, horizon=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    receptive_radius(model, (1, 2, 33, 33))
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_local_model_is_refused():
    class GlobalMean(nn.Module):
        def forward(self, x):
            return x[:, -1, :1] + x.mean(dim=(-1, -2), keepdim=True)[:, -1, :1]

    with pytest.raises(StgeoError, match="not a local"):
        receptive_radius(GlobalMean(), (1, 1, 17, 17), max_side=65)


# ------------------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("height", "width", "tile", "halo", "blend"),
    [(300, 430, 64, 15, 8), (100, 100, 40, 5, 15), (34, 35, 64, 15, 8), (97, 61, 20, 3, 0), (1, 1, 3, 1, 0)],
)
def test_blend_weights_sum_to_one(height, width, tile, halo, blend):
    grid = TileGrid(height, width, tile, halo, blend)
    total = np.zeros((height + 2 * tile, width + 2 * tile))  # padded so tiles may stick out
    for i, r in enumerate(grid.starts(height)):
        for j, c in enumerate(grid.starts(width)):
            w = np.outer(grid.tile_weights(height, i), grid.tile_weights(width, j))
            total[tile + r - halo : tile + r - halo + tile, tile + c - halo : tile + c - halo + tile] += w
            assert w[:halo].sum() == w[:, :halo].sum() == w[tile - halo :].sum() == w[:, tile - halo :].sum() == 0
    np.testing.assert_allclose(total[tile : tile + height, tile : tile + width], 1.0, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------- equality


@pytest.mark.parametrize(
    ("make", "params"), [(STCNN, {"hidden": 16}), (DSCNNStudent, {})], ids=["st_cnn", "ds_cnn"]
)
def test_tiled_equals_untiled(tmp_path, make, params):
    torch.manual_seed(1)
    model = make(history=3, channels=4, horizon=2, **params).eval()
    x = stack(3, 4, 300, 430)
    out = predict_tiled(
        model, array_reader(x), 300, 430, tmp_path / "pred.tif", crs=CRS, transform=TRANSFORM, tile=64, blend=8
    )
    with rasterio.open(out) as src:
        tiled = src.read()
    diff = np.abs(tiled - untiled(model, x))
    assert diff.max() < 1e-5, diff.max()  # everywhere, borders included


def test_tiled_equals_untiled_with_batches_and_no_blend(tmp_path):
    torch.manual_seed(2)
    model = DSCNNStudent(history=1, channels=2, horizon=3)
    x = stack(1, 2, 77, 131, seed=3)
    out = predict_tiled(
        model, array_reader(x), 77, 131, tmp_path / "p.tif", crs=None, transform=TRANSFORM,
        tile=40, halo=15, blend=0, batch_tiles=3,
    )  # fmt: skip
    with rasterio.open(out) as src:
        assert np.abs(src.read() - untiled(model, x)).max() < 1e-5


def test_array_reader_zero_fills_outside():
    x = stack(2, 1, 5, 6)
    window = array_reader(x)(-2, 3, 4, 5)
    assert window.shape == (2, 1, 4, 5) and window.dtype == np.float32
    assert (window[:, :, :2] == 0).all() and (window[:, :, :, 3:] == 0).all()
    np.testing.assert_array_equal(window[:, :, 2:, :3], x[:, :, :2, 3:6])


# ------------------------------------------------------------------------------- GeoTIFF


def test_output_is_a_cog_with_the_input_grid(tmp_path):
    torch.manual_seed(0)
    model = dilated(1, 2)  # cheap and local (radius 3)
    h, w = 1100, 700  # > 512 so the COG gets overviews
    x = stack(1, 2, h, w)
    fractions: list[float] = []

    def postprocess(pred, window):
        pred[:, :3] = NODATA if window.row_off == 0 else pred[:, :3]
        return pred

    out = predict_tiled(
        model, array_reader(x), h, w, tmp_path / "sub" / "pred.tif", crs=CRS, transform=TRANSFORM, nodata=NODATA,
        band_descriptions=["2018-06-16T10:06:00"], units="mm/h", tile=256, postprocess=postprocess,
        progress=fractions.append,
    )  # fmt: skip
    assert out == tmp_path / "sub" / "pred.tif"
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.tif"]  # no temporary left
    with rasterio.open(out) as src:
        assert (src.height, src.width, src.count) == (h, w, 1)
        assert src.crs == rasterio.crs.CRS.from_string(CRS) and src.transform == TRANSFORM
        assert src.nodata == NODATA and src.dtypes == ("float32",)
        assert src.descriptions == ("2018-06-16T10:06:00",) and src.units == ("mm/h",)
        assert src.profile["tiled"] and src.block_shapes == [(512, 512)]
        assert src.compression == rasterio.enums.Compression.deflate
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1)[:1] == [2]
        data = src.read(1, masked=True)
        assert data.mask[:3].all() and not data.mask[3:].any()
        np.testing.assert_allclose(data[3:], untiled(model, x)[0, 3:], atol=1e-5)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and max(fractions[:-1]) <= 0.95


# ------------------------------------------------------------------------------- atomic / cancel


class Failing(nn.Module):
    def __init__(self, after: int):
        super().__init__()
        self.inner, self.calls, self.after = DSCNNStudent(history=1, channels=1, horizon=1), 0, after

    def forward(self, x):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("model failed")
        return self.inner(x)


def test_no_file_left_after_a_model_error(tmp_path):
    (tmp_path / "pred.tif").write_bytes(b"previous run")
    with pytest.raises(RuntimeError, match="model failed"):
        predict_tiled(
            Failing(after=5), array_reader(stack(1, 1, 200, 200)), 200, 200, tmp_path / "pred.tif",
            crs=CRS, transform=TRANSFORM, tile=48, halo=15, blend=4,
        )  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["pred.tif"]
    assert (tmp_path / "pred.tif").read_bytes() == b"previous run"


def test_cancel_removes_everything(tmp_path):
    polls = iter([False, False, True])
    model = DSCNNStudent(history=1, channels=1, horizon=1).train()
    with pytest.raises(Cancelled, match="cancelled"):
        predict_tiled(
            model, array_reader(stack(1, 1, 200, 200)), 200, 200, tmp_path / "pred.tif",
            crs=CRS, transform=TRANSFORM, tile=64, cancel=lambda: next(polls, True),
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    assert model.training  # mode restored


# ------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 40, "halo": 15}, "tile=40 is too small"),
        ({"tile": 64, "halo": 15, "blend": 20}, "2\\*halo \\+ 2\\*blend = 70"),
        ({"tile": 0}, "tile must be a positive integer"),
        ({"halo": -1}, "halo must be a non-negative integer"),
        ({"batch_tiles": 0}, "batch_tiles must be"),
        ({"band_descriptions": ["a", "b"]}, "band_descriptions has 2 entries but the model predicts 1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    model = DSCNNStudent(history=1, channels=1, horizon=1)
    with pytest.raises(StgeoError, match=message):
        predict_tiled(
            model, array_reader(stack(1, 1, 50, 50)), 50, 50, tmp_path / "p.tif", crs=CRS, transform=TRANSFORM,
            **kwargs,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_bad_read_is_named(tmp_path):
    with pytest.raises(StgeoError, match=r"must return an array of shape \(T, C, 1, 1\)"):
        predict_tiled(
            DSCNNStudent(history=1, channels=1, horizon=1), lambda r, c, h, w: np.zeros((h, w)), 50, 50,
            tmp_path / "p.tif", crs=CRS, transform=TRANSFORM,
        )  # fmt: skip


# ------------------------------------------------------------------------------- 16384 x 16384


@pytest.mark.slow
def test_tiled_memory_benchmark(tmp_path):
    """Issue 4's bound: the student's tiled prediction of a 16384 x 16384 GeoTIFF peaks under
    1.5 GB of RSS (about 10 minutes on one core; the input is cached, see the script)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "tiled_memory.py"
    results = tmp_path / "tiled_memory.json"
    cmd = [sys.executable, str(script), "--threads", "1", "--teacher-rows", "0", "--results", str(results)]
    subprocess.run(cmd, check=True)
    run = json.loads(results.read_text())["runs"]["ds_cnn"]
    assert run["peak_rss_bytes"] < 1.5e9
    assert run["output"]["grid_equal"] and run["spot_check_max_abs_diff"] < 1e-5
