"""Land cover from a raster + labelled polygons (data.kind: patches): rasterisation, gap
filling, the spatial block split with buffer, class weights, models, saliency, the CLI run end
to end on a synthetic scene, bad inputs, and the real EOPatch when ../shared/data has it."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import yaml
from conftest import ROOT, SHARED_DATA
from rasterio.transform import from_origin
from shapely.geometry import box

from stgeo_kd.cli import main
from stgeo_kd.config import config_from_dict, load_config
from stgeo_kd.distill.losses import cross_entropy
from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.rasters import open_raster_stack
from stgeo_kd.landcover.models import STUDENTS, TEACHERS, build_patch_model
from stgeo_kd.landcover.patches import _interpolate, patches_from
from stgeo_kd.landcover.split import class_weights, pixel_block_split

EOPATCH = SHARED_DATA / "raster_stacks" / "eopatch_slovenia_s2"
needs_eopatch = pytest.mark.skipif(not (EOPATCH / "NDVI.npy").exists(), reason=f"real data not found at {EOPATCH}")

# ---------------------------------------------------------------------------------------------
# a synthetic scene: 3 classes with distinct seasonal NDVI curves, clouds, irregular dates

SIZE, PX, X0, Y0 = 40, 10.0, 500000.0, 5000000.0
TRANSFORM = from_origin(X0, Y0, PX, PX)
DATES = pd.DatetimeIndex(["2020-01-05", "2020-02-14", "2020-03-01", "2020-04-20", "2020-05-02", "2020-06-30",
                          "2020-07-15", "2020-08-01", "2020-09-09", "2020-10-30", "2020-11-11", "2020-12-24"])
# polygons in pixel units (col0, row0, col1, row1) and their class code; class 9 is "no data"
RECTS = [((0, 0, 20, 20), 1), ((20, 0, 40, 20), 2), ((0, 20, 20, 40), 3), ((20, 20, 40, 40), 1),
         ((5, 25, 12, 32), 2), ((30, 5, 36, 11), 9), ((16, 12, 19, 15), 4)]
NAMES = {1: "forest", 2: "grass <b>&'\"", 3: "water", 4: "rare", 9: "no data"}


def _pixel_box(c0, r0, c1, r1):
    return box(X0 + c0 * PX, Y0 - r1 * PX, X0 + c1 * PX, Y0 - r0 * PX)


def _truth() -> np.ndarray:
    lab = np.zeros((SIZE, SIZE), dtype=np.int64)
    for (c0, r0, c1, r1), code in RECTS:
        lab[r0:r1, c0:c1] = code
    return lab


def make_scene(folder, crs="EPSG:32633", labels_crs=None, column="lc"):
    """Write stack.tif (one band per date, cloudy pixels nodata) and labels.gpkg; return paths."""
    rng = np.random.default_rng(0)
    doy = DATES.dayofyear.to_numpy()[:, None, None] / 365.0
    lab = _truth()
    curves = {1: 0.75 + 0.1 * np.sin(2 * np.pi * doy), 2: 0.3 + 0.4 * np.sin(np.pi * doy) ** 2,
              3: -0.1 + 0.02 * doy, 4: 0.1 + 0.6 * doy, 9: 0.5 + 0 * doy, 0: 0.5 + 0 * doy}
    values = np.zeros((len(DATES), SIZE, SIZE), dtype=np.float32)
    for code, curve in curves.items():
        values = np.where(lab[None] == code, curve + rng.normal(0, 0.03, values.shape), values)
    clouds = rng.random(values.shape) < 0.15
    clouds[3] = True  # one frame fully cloudy: dropped by min_clear
    values = np.where(clouds, -9999.0, values).astype(np.float32)
    tif = folder / "stack.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=SIZE, width=SIZE, count=len(DATES), dtype="float32",
                       crs=crs, transform=TRANSFORM, nodata=-9999.0) as dst:
        dst.write(values)
        for i, d in enumerate(DATES, start=1):
            dst.set_band_description(i, d.strftime("%Y-%m-%d"))
    frame = gpd.GeoDataFrame({column: [code for _, code in RECTS], "name": [NAMES[code] for _, code in RECTS]},
                             geometry=[_pixel_box(*r) for r, _ in RECTS], crs=crs)
    if labels_crs is not None:
        frame = frame.to_crs(labels_crs)
    gpkg = folder / "labels.gpkg"
    frame.to_file(gpkg, layer="labels", driver="GPKG")
    return tif, gpkg


def scene_config(tmp_path, **patches) -> dict:
    tif, gpkg = make_scene(tmp_path)
    return {
        "data": {"kind": "patches", "name": "synthetic <scene>", "path": str(tif),
                 "patches": {"labels": str(gpkg), "class_column": "lc", "name_column": "name", "ignore_classes": [9],
                             "block_size": 10, "crop": 16, "min_clear": 0.5} | patches},
        "task": {"kind": "classify", "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "teacher": {"name": "resnet_chip", "params": {"width": 16, "blocks": 1, "bottleneck": 8}},
        "student": {"name": "mlp", "params": {"hidden": 8}},
        "train": {"epochs": 3, "student_epochs": 3, "batches_per_epoch": 3, "lr": 0.01, "progress": False,
                  "latency_repeats": 2, "num_threads": 1},
    }


def _stack(tif):
    return open_raster_stack(tif, regular=False)


def _polygons(gpkg):
    return gpd.read_file(gpkg)


# ---------------------------------------------------------------------------------------------
# ingest


def test_rasterise_labels_on_the_raster_grid(tmp_path):
    tif, gpkg = make_scene(tmp_path)
    ps = patches_from(_stack(tif), _polygons(gpkg), class_column="lc", name_column="name", ignore_classes=[9])
    truth = _truth()
    assert list(ps.codes) == [1, 2, 3, 4] and ps.names == ["forest", NAMES[2], "water", "rare"]
    expect = np.where(truth == 9, -1, np.searchsorted([1, 2, 3, 4], truth))
    np.testing.assert_array_equal(ps.labels, expect)  # later polygons win (the class-2 patch inside class 3)
    assert ps.height == ps.width == SIZE and ps.transform == TRANSFORM
    assert len(ps.times) == len(DATES) - 1 and len(ps.dropped) == 1  # the fully cloudy frame
    assert np.isfinite(ps.x).all() and ps.valid.all()


def test_text_classes_get_codes_in_sorted_order(tmp_path):
    tif, gpkg = make_scene(tmp_path)
    frame = _polygons(gpkg)
    frame["lc"] = frame["name"]
    ps = patches_from(_stack(tif), frame, class_column="lc", ignore_classes=["no data"])
    assert ps.names == sorted({NAMES[c] for c in (1, 2, 3, 4)})
    assert list(ps.codes) == [1, 2, 4, 5]  # 'no data' (code 3 of the sorted names) is ignored


def test_gap_filling_is_linear_in_time():
    days = np.array([0.0, 10.0, 30.0, 40.0])
    v = np.array([[np.nan, 1.0, np.nan], [2.0, np.nan, np.nan], [np.nan, 3.0, np.nan], [6.0, np.nan, np.nan]])
    out = _interpolate(v, days)
    np.testing.assert_allclose(out[:, 0], [2.0, 2.0, 2.0 + (6.0 - 2.0) * 20 / 30, 6.0])
    np.testing.assert_allclose(out[:, 1], [1.0, 1.0 + 2.0 * 10 / 30, 3.0, 3.0])
    assert np.isnan(out[:, 2]).all()  # never observed


def test_labels_in_another_crs_are_reprojected_with_a_warning(tmp_path):
    tif, gpkg = make_scene(tmp_path, labels_crs="EPSG:4326")
    with pytest.warns(UserWarning, match="reprojected"):
        ps = patches_from(_stack(tif), _polygons(gpkg), class_column="lc", ignore_classes=[9])
    truth = np.where(_truth() == 9, -1, np.searchsorted([1, 2, 3, 4], _truth()))
    assert (ps.labels == truth).mean() > 0.98


@pytest.mark.parametrize("case, match", [
    ("outside", "none of its 7 polygons overlaps the raster"),
    ("column", r"has no column 'landcover' \(data.patches.class_column\). Valid names: lc, name"),
    ("no_crs", "has no CRS.*labels_crs"),
    ("points", "labels must be polygons"),
    ("fractional", "whole numbers"),
])
def test_bad_labels_get_clear_errors(tmp_path, case, match):
    tif, gpkg = make_scene(tmp_path)
    frame = _polygons(gpkg)
    column = "lc"
    if case == "outside":
        frame = frame.set_geometry(frame.translate(xoff=1e5))
    elif case == "column":
        column = "landcover"
    elif case == "no_crs":
        frame = frame.set_crs(None, allow_override=True)
    elif case == "points":
        frame = frame.set_geometry(frame.centroid)
    elif case == "fractional":
        frame["lc"] = frame["lc"] + 0.5
    with pytest.raises(StgeoError, match=match):
        patches_from(_stack(tif), frame, class_column=column, ignore_classes=[9])


# ---------------------------------------------------------------------------------------------
# split and class weights


def test_block_split_buffer_keeps_training_chips_off_held_out_pixels():
    from scipy.ndimage import distance_transform_cdt

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(57, 63))
    labels[rng.random(labels.shape) < 0.2] = -1
    for buffer in (0, 2, 3):
        split = pixel_block_split(labels, 9, (0.6, 0.2, 0.2), buffer, seed=4)
        held = np.isin(split.labels, ("val", "test"))
        train = split.labels == "train"
        assert train.any() and held.any()
        # Chebyshev distance from every training pixel to the nearest held-out pixel exceeds the buffer
        dist = distance_transform_cdt(~held, metric="chessboard")
        assert dist[train].min() > buffer
        # every block lies wholly in one split; buffer pixels come only from training blocks
        for b in np.unique(split.block):
            assert len(set(split.region[split.block == b])) == 1
        assert (split.region[split.labels == "buffer"] == "train").all()
        assert ((split.labels == "") == (labels < 0)).all()
        again = pixel_block_split(labels, 9, (0.6, 0.2, 0.2), buffer, seed=4)
        np.testing.assert_array_equal(split.labels, again.labels)
    # a class held by one block goes to training (every class is dealt out alike)
    rare = np.zeros((40, 40), dtype=np.int64)
    rare[2:5, 2:5] = 1
    for seed in range(10):
        assert (pixel_block_split(rare, 10, (0.6, 0.2, 0.2), 0, seed=seed).labels[2:5, 2:5] == "train").all()


def test_class_weights():
    counts = np.array([80, 15, 5, 0])
    w = class_weights(counts, "balanced")
    raw = 100 / (3 * counts[:3])
    np.testing.assert_allclose(w[:3], raw / ((raw * counts[:3]).sum() / 100))
    assert w[3] == 0.0
    assert (w * counts).sum() / counts.sum() == pytest.approx(1.0)
    s = class_weights(counts, "sqrt")
    assert s[2] / s[0] == pytest.approx(np.sqrt(w[2] / w[0]))
    np.testing.assert_allclose(class_weights(counts, "none"), [1, 1, 1, 0])


def test_cross_entropy_takes_class_weights():
    torch.manual_seed(0)
    logits, labels = torch.randn(30, 4), torch.randint(0, 4, (30,))
    cw = torch.tensor([0.5, 2.0, 1.0, 3.0])
    got = cross_entropy(logits, labels, cw[labels])
    want = torch.nn.functional.cross_entropy(logits, labels, weight=cw)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    mask = torch.rand(30) > 0.3
    assert float(cross_entropy(logits, labels, mask)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[mask], labels[mask])), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# models and saliency


@pytest.mark.parametrize("name", [*TEACHERS, *STUDENTS])
def test_models_classify_chips_and_whole_scenes_alike(name):
    c, k = 12, 3
    params = {"width": 8} if name != "mlp" else {"hidden": 8}
    if name == "temporal_cnn":
        params = {"width": 8, "layers": 2}
    model = build_patch_model(name, params, c, k, 2, "teacher" if name in TEACHERS else "student").eval()
    r = model.radius
    torch.manual_seed(0)
    scene = torch.randn(1, c, 11 + 2 * r, 9 + 2 * r)
    with torch.no_grad():
        out = model(scene)
        assert out.shape == (1, k, 11, 9)
        chip = scene[:, :, 4 : 4 + 2 * r + 1, 6 : 6 + 2 * r + 1]  # the chip of pixel (4, 6)
        one = model(chip)
    assert one.shape == (1, k, 1, 1)
    torch.testing.assert_close(one[0, :, 0, 0], out[0, :, 4, 6], rtol=1e-4, atol=1e-5)


def test_teacher_ensemble_averages_member_probabilities():
    from stgeo_kd.landcover.models import TeacherEnsemble

    c, k = 12, 3
    torch.manual_seed(0)
    chip = build_patch_model("resnet_chip", {"width": 8, "blocks": 1, "bottleneck": 4}, c, k, 2, "teacher").eval()
    pixel = build_patch_model("temporal_cnn", {"width": 8, "layers": 2}, c, k, 2, "teacher").eval()
    ens = TeacherEnsemble([chip, pixel], weights=[3.0, 1.0]).eval()
    assert ens.radius == 1 and ens.input_kind == "chip"
    scene = torch.randn(1, c, 9 + 2, 7 + 2)
    with torch.no_grad():
        out = ens(scene)
        want = 0.75 * torch.softmax(chip(scene), 1) + 0.25 * torch.softmax(pixel(scene[:, :, 1:-1, 1:-1]), 1)
        torch.testing.assert_close(out.exp(), want, rtol=1e-5, atol=1e-6)  # each member reads its own footprint
        one = ens(scene[:, :, 2:5, 3:6])  # the chip of pixel (2, 3)
    torch.testing.assert_close(one[0, :, 0, 0], out[0, :, 2, 3], rtol=1e-4, atol=1e-5)
    with pytest.raises(StgeoError, match="one positive number per teacher"):
        TeacherEnsemble([chip, pixel], weights=[1.0])


def test_run_with_an_ensemble_of_teachers(tmp_path):
    from stgeo_kd.landcover.models import TeacherEnsemble
    from stgeo_kd.landcover.pipeline import run_patches

    raw = scene_config(tmp_path)
    raw["teacher"] = [raw["teacher"], raw["teacher"], {"name": "temporal_cnn", "params": {"width": 8, "layers": 2}}]
    raw["distill"] = {"combine": "mean", "combine_on": "losses"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_patches(config_from_dict(raw))
    teacher = result.models["teacher"]
    assert isinstance(teacher, TeacherEnsemble) and len(teacher.members) == 3
    # members of the same architecture start from different seeds (train.seed + i)
    a, b = (dict(m.named_parameters())["stem.0.weight"] for m in teacher.members[:2])
    assert not torch.equal(a, b)
    t = result.report["models"]["teacher"]
    assert t["name"] == "ensemble(resnet_chip, resnet_chip, temporal_cnn)"
    assert [e["seed"] for e in t["members"]] == [0, 1, 2]
    assert t["params"] == sum(e["params"] for e in t["members"])
    assert all({"metrics", "val_metrics"} <= set(e) for e in t["members"])
    assert result.report["distill"]["teachers"] == 3 and result.report["distill"]["combine_on"] == "losses"


def test_class_weighted_hinton_gets_the_pixel_class_weights(tmp_path, monkeypatch):
    from stgeo_kd.distill import losses
    from stgeo_kd.landcover.pipeline import run_patches

    seen = []
    real = losses.hinton_kd

    def spy(student, teacher, temperature, mask=None):
        seen.append(mask)
        return real(student, teacher, temperature, mask)

    monkeypatch.setattr(losses, "hinton_kd", spy)
    raw = scene_config(tmp_path)
    raw["distill"] = {"terms": ["labels", {"name": "hinton", "params": {"class_weighted": True}}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_patches(config_from_dict(raw))
    assert seen and all(m is not None and m.is_floating_point() for m in seen)
    # the weights are the training pixels' class weights (0 where a training-block pixel has no label)
    w = {round(float(v), 4) for m in seen for v in m.unique()}
    weights = {round(v, 4) for v in result.report["task"]["class_weights"]["values"]}
    assert len(w - {0.0}) > 1 and w - {0.0} <= weights


def test_unknown_model_parameter_is_named():
    with pytest.raises(StgeoError, match="no parameter 'depth'.*"):
        build_patch_model("resnet_chip", {"depth": 3}, 4, 2, 1, "teacher")


def test_saliency_shapes(tmp_path):
    from stgeo_kd.landcover.saliency import input_gradcam
    from stgeo_kd.landcover.training import PatchData

    tif, gpkg = make_scene(tmp_path)
    ps = patches_from(_stack(tif), _polygons(gpkg), class_column="lc", ignore_classes=[9])
    split = pixel_block_split(ps.labels, 10, (0.5, 0.25, 0.25), 2, 0)
    data = PatchData.build(ps, split, class_weights(ps.class_counts(split.mask("train"))), 2)
    chip = build_patch_model("mobilenet_chip", {"width": 8}, ps.num_channels, 4, 1, "student")
    pixel = build_patch_model("mlp", {"hidden": 8}, ps.num_channels, 4, 1, "student")
    for model in (chip, pixel):
        maps = input_gradcam(model, data, batch=300)
        assert maps["saliency"].shape == maps["own_pixel_share"].shape == (SIZE, SIZE)
        assert maps["per_time"].shape == (len(ps.times),)
        assert (maps["saliency"] >= 0).all()
    own = input_gradcam(pixel, data)["own_pixel_share"]
    assert np.nanmin(own) == pytest.approx(1.0)  # a per-pixel model looks only at its own pixel


# ---------------------------------------------------------------------------------------------
# config checks


def test_config_checks(tmp_path):
    raw = scene_config(tmp_path)
    cfg = config_from_dict(raw)
    assert cfg.data.patches.class_column == "lc"
    bad = [
        (("data", "patches", "loader"), "eopatch", "loader 'eopatch' is unknown"),
        (("data", "patches", "class_weights"), "inverse", "class_weights 'inverse'"),
        (("data", "patches", "colors"), {1: "green"}, "#rrggbb"),
        (("student", "name"), "lstm", "not a model for data.kind: patches"),
        (("distill", "terms"), ["labels", {"name": "hint", "params": {"student_layer": "a", "teacher_layer": "b"}}],
         "cannot be used with data.kind: patches"),
        (("task", "kind"), "regress", "does not apply to data.kind: patches"),
        (("teacher",), [], "teacher is an empty list"),
        (("teacher",), [{"name": "resnet_chip"}, {"name": "temporal_cnn", "weight": 0}],
         "teacher\\[1\\].weight must be a positive number"),
        (("teacher",), [{"name": "resnet_chip"}, {"name": "gru"}], "teacher\\[1\\].name 'gru' is not a model"),
        (("distill", "combine"), "median", "distill.combine 'median' is unknown"),
    ]
    for keys, value, match in bad:
        r = json.loads(json.dumps(raw))
        node = r
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        with pytest.raises(StgeoError, match=match):
            config_from_dict(r)


# ---------------------------------------------------------------------------------------------
# end to end


def test_cli_run_writes_class_map_on_the_input_grid(tmp_path, capsys):
    raw = scene_config(tmp_path)
    raw["data"]["patches"]["colors"] = {1: "#1a9641", 3: "#2b83ba"}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and "majority_class" in printed
    tif = tmp_path / "stack.tif"
    with rasterio.open(tif) as src, rasterio.open(out / "class_map_student.tif") as cls:
        assert (cls.crs, cls.transform, cls.shape) == (src.crs, src.transform, src.shape)
        assert cls.dtypes[0] == "uint8" and cls.nodata == 0
        values = set(np.unique(cls.read(1)).tolist())
        assert values <= {1, 2, 3, 4}
        assert cls.colormap(1)[1][:3] == (0x1a, 0x96, 0x41)
        assert cls.tags(1)["class_3"] == "water"
    for name in ("class_map_teacher.tif", "saliency_teacher.tif", "saliency_student.tif"):
        with rasterio.open(tif) as src, rasterio.open(out / name) as r:
            assert (r.crs, r.transform, r.shape) == (src.crs, src.transform, src.shape)
    with rasterio.open(out / "saliency_student.tif") as r:
        assert r.count == 2 and r.descriptions == ("saliency", "own_pixel_share")
    polys = gpd.read_file(out / "class_polygons.gpkg")
    assert set(polys["model"]) == {"student", "teacher"} and polys.crs == "EPSG:32633"
    # the polygons of a model cover the grid once
    assert polys[polys["model"] == "student"].area.sum() == pytest.approx(SIZE * SIZE * PX * PX)
    page = (out / "map.html").read_text()
    assert "grass &lt;b&gt;&amp;&#x27;&quot;" in page and "<b>&'" not in page
    assert "synthetic &lt;scene&gt;" in page
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = json.loads((out / "report.json").read_text())
    m = rep["models"]
    for role in ("teacher", "student", "student_scratch"):
        x = m[role]["metrics"]
        assert {"overall_accuracy", "macro_f1", "kappa", "per_class", "confusion_matrix"} <= set(x)
        assert len(x["per_class"]) == 4 and np.array(x["confusion_matrix"]).shape == (4, 4)
    assert m["baselines"]["majority_class"]["metrics"]["kappa"] == pytest.approx(0.0)
    assert rep["task"]["split"]["buffer_px"] == 1  # null: the largest footprint radius
    assert rep["comparison"]["param_ratio_teacher_to_student"] > 1
    meta = json.loads((out / "model_meta.json").read_text())
    assert [c["code"] for c in meta["classes"]] == [1, 2, 3, 4]
    if (out / "student.onnx").exists():
        assert m["student"]["onnx_max_abs_diff"] < 1e-3


def test_a_class_without_training_pixels_is_an_error(tmp_path):
    raw = scene_config(tmp_path)
    cfg = config_from_dict(raw)
    from stgeo_kd.landcover.patches import load_patches

    ps = load_patches(cfg)
    # a seed whose split leaves the small class-4 patch (on a block edge) out of training
    rare = ps.labels == 3
    for seed in range(200):
        split = pixel_block_split(ps.labels, 6, (0.5, 0.25, 0.25), 2, seed)
        if not (split.labels[rare] == "train").any() and (split.labels == "train").any():
            break
    else:
        pytest.skip("no seed starves the class")
    raw["data"]["patches"] |= {"block_size": 6, "buffer": 2, "split_seed": seed}
    with pytest.raises(StgeoError, match="No training pixel of class 'rare' \\(code 4: 9 labelled px.*ignore_classes"):
        from stgeo_kd.pipeline import run

        run(raw)


def test_buffer_smaller_than_the_chip_is_refused(tmp_path):
    raw = scene_config(tmp_path, buffer=0)
    from stgeo_kd.pipeline import run

    with pytest.raises(StgeoError, match="buffer is 0 px but the models read chips of radius 1"):
        run(raw)


# ---------------------------------------------------------------------------------------------
# the real EOPatch


@pytest.mark.realdata
@needs_eopatch
def test_eopatch_loader_and_rasterised_labels_match_the_shipped_raster():
    from stgeo_kd.landcover.patches import load_patches

    cfg = load_config(ROOT / "examples" / "landcover_slovenia.yaml")
    ps = load_patches(cfg)
    lulc = np.load(EOPATCH / "LULC.npy")[..., 0]
    codes = np.where(ps.labels >= 0, ps.codes[np.clip(ps.labels, 0, None)], 0)
    np.testing.assert_array_equal(codes, lulc)  # the polygons rasterised on the bbox grid give LULC.npy exactly
    assert list(ps.codes) == [1, 2, 3, 4, 8] and ps.names[1] == "forest"
    assert (ps.height, ps.width) == (101, 100) and str(ps.crs) == "EPSG:32633"
    assert 0 < len(ps.dropped) < 68 and np.isfinite(ps.x).all()
