"""Tests for stgeo_kd.export: folium forecast maps and GeoPackage writing."""

from __future__ import annotations

import re
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString

from stgeo_kd.errors import StgeoError
from stgeo_kd.export.maps import forecast_map, save_map
from stgeo_kd.export.vector import write_gpkg

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG_ESCAPED = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"

XS = [500_000.0 + 700.0 * i for i in range(5)]
YS = [5_000_000.0 + 400.0 * i for i in range(5)]


def _predictions(sensor_ids=None, names=None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "sensor_id": sensor_ids or ["s100", "s101", "s102", "s103", "s104"],
            "name": names or ["Ring A", "Ring B", "Bridge", None, "Tunnel"],
            "mae_teacher": [1.10, 2.20, np.nan, 3.30, 4.40],
            "mae_student": [1.50, np.nan, 2.50, 3.50, 9.00],
            "mae_student_scratch": [1.9, 2.9, 3.9, 4.9, 9.9],
            "mae_persistence": [5.0, 5.1, 5.2, 5.3, 5.4],
            "mae_historical_average": [6.0, 6.1, 6.2, 6.3, 6.4],
            "observed_h3": [60.0, 61.0, 62.0, np.nan, 64.0],
            "teacher_h3": [59.0, 60.0, 61.0, 62.0, 63.0],
            "student_h3": [58.0, 59.0, 60.0, 61.0, 62.0],
            "observed_h12": [50.0, 51.0, 52.0, 53.0, 54.0],
            "teacher_h12": [49.0, 50.0, 51.0, 52.0, 53.0],
            "student_h12": [48.0, 49.0, 50.0, 51.0, 52.0],
        },
        geometry=gpd.points_from_xy(XS, YS),
        crs="EPSG:32633",
    )


def _roads(names=None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": names or ["Main street", None]},
        geometry=[
            LineString([(XS[0], YS[0]), (XS[2], YS[2]), (XS[4], YS[4])]),
            LineString([(XS[1], YS[1]), (XS[3], YS[0])]),
        ],
        crs="EPSG:32633",
    )


def _html(tmp_path, m: folium.Map) -> str:
    path = save_map(m, tmp_path / "maps" / "forecast.html")
    assert path.exists()
    return path.read_text(encoding="utf-8")


def _marker_locations(page: str) -> list[tuple[float, float]]:
    found = re.findall(r"L\.circleMarker\(\s*\[([-0-9.eE]+),\s*([-0-9.eE]+)\]", page)
    return [(float(lat), float(lon)) for lat, lon in found]


# --- maps ---------------------------------------------------------------------------------


def test_map_has_ids_legend_layers_and_tiles(tmp_path):
    page = _html(tmp_path, forecast_map(_predictions(), _roads(), units="km/h"))
    for sensor_id in ["s100", "s101", "s102", "s103", "s104"]:
        assert sensor_id in page
    assert "Student test MAE (km/h)" in page  # legend caption
    assert "L.control.layers" in page
    assert "Sensors: Teacher test MAE (km/h) (same colour scale)" in page
    assert '"Roads"' in page
    assert "openstreetmap" in page.lower()
    assert "basemaps.cartocdn.com/light_all" in page
    assert "fitBounds" in page
    assert "stgeo_kd forecast" in page
    # Teacher and student tables, both horizons.
    assert "Teacher" in page and "Student from scratch" in page and "Historical average" in page
    assert "<td>h3</td>" in page and "<td>h12</td>" in page


def test_markers_are_in_lat_lon(tmp_path):
    preds = _predictions()
    page = _html(tmp_path, forecast_map(preds))
    expected = preds.to_crs(4326).geometry.iloc[2]
    locations = _marker_locations(page)
    # Two sensor layers (student and teacher colouring), one marker per sensor each.
    assert len(locations) == 10
    assert any(
        abs(lat - expected.y) < 1e-6 and abs(lon - expected.x) < 1e-6 for lat, lon in locations
    )
    assert all(40 < lat < 50 and 10 < lon < 20 for lat, lon in locations)


def test_teacher_layer_hidden_by_default():
    m = forecast_map(_predictions())
    groups = [c for c in m._children.values() if isinstance(c, folium.FeatureGroup)]
    shown = {g.layer_name: g.show for g in groups}
    assert shown["Sensors: Student test MAE"] is True
    assert shown["Sensors: Teacher test MAE (same colour scale)"] is False


def test_nan_reads_na_and_is_grey(tmp_path):
    page = _html(tmp_path, forecast_map(_predictions()))
    assert "<td>n/a</td>" in page
    assert "<b>n/a</b>" in page  # the student's own NaN error, shown in bold
    assert "#9e9e9e" in page
    assert "nan</td>" not in page.lower()


def test_all_nan_errors_still_map(tmp_path):
    preds = _predictions()
    preds["mae_student"] = np.nan
    preds["mae_teacher"] = np.nan
    page = _html(tmp_path, forecast_map(preds))
    assert len(_marker_locations(page)) == 10


def test_xss_payloads_are_escaped(tmp_path):
    preds = _predictions(
        sensor_ids=["s100", SCRIPT, "s102", "s103", IMG],
        names=["Ring A", IMG, SCRIPT, None, "`${alert(1)}`\\u003cimg src=x onerror=alert(1)\\u003e"],
    )
    roads = _roads(names=[SCRIPT, IMG])
    m = forecast_map(preds, roads, units=SCRIPT, title=IMG)
    page = _html(tmp_path, m)
    assert SCRIPT not in page
    assert "<img src=x onerror" not in page
    assert "${alert(1)}" not in page
    assert "\\u003cimg" not in page
    assert SCRIPT_ESCAPED in page
    assert IMG_ESCAPED in page
    assert f"<title>{IMG_ESCAPED}</title>" in page


def test_compare_columns_limit_the_table(tmp_path):
    m = forecast_map(_predictions(), compare_columns=["mae_teacher", "mae_student", "observed_h3", "student_h3"])
    page = _html(tmp_path, m)
    assert "Persistence" not in page
    assert "<td>h3</td>" in page
    assert "<td>h12</td>" not in page


def test_bad_inputs_raise_stgeo_error():
    with pytest.raises(StgeoError, match="mae_studnet"):
        forecast_map(_predictions(), error_column="mae_studnet")
    with pytest.raises(StgeoError, match="CRS"):
        forecast_map(_predictions().set_crs(None, allow_override=True))
    with pytest.raises(StgeoError, match="roads"):
        forecast_map(_predictions(), _roads().set_crs(None, allow_override=True))
    with pytest.raises(StgeoError, match="nope"):
        forecast_map(_predictions(), compare_columns=["nope"])
    with pytest.raises(StgeoError, match="numeric"):
        forecast_map(_predictions().assign(mae_student="bad"))
    with pytest.raises(StgeoError, match="no column"):
        forecast_map(_predictions(), name_column="label")


def test_save_map_unwritable_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(StgeoError, match="file.txt"):
        save_map(forecast_map(_predictions()), blocker / "map.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# --- GeoPackage ---------------------------------------------------------------------------


def test_gpkg_round_trip(tmp_path):
    preds = _predictions()
    preds["time"] = pd.to_datetime(["2024-01-01 00:05"] * 5)
    path = write_gpkg(preds, tmp_path / "out" / "pred.gpkg", layer="predictions")
    assert path == tmp_path / "out" / "pred.gpkg"
    back = gpd.read_file(path, layer="predictions", engine="pyogrio")
    assert back.crs == preds.crs
    assert len(back) == len(preds)
    assert back["sensor_id"].tolist() == preds["sensor_id"].tolist()
    np.testing.assert_allclose(back["mae_student"], preds["mae_student"])  # NaN in the same place
    assert (back["time"] == preds["time"]).all()
    assert back.geometry.geom_equals(preds.geometry).all()
    assert [p.name for p in path.parent.iterdir()] == ["pred.gpkg"]


def test_gpkg_converts_types_gpkg_cannot_hold(tmp_path):
    gdf = _predictions()[["sensor_id", "geometry"]].copy()
    gdf["lead"] = pd.to_timedelta(range(5), unit="min")
    gdf["t_local"] = pd.date_range("2024-01-01", periods=5, freq="5min", tz="Europe/Berlin")
    path = write_gpkg(gdf, tmp_path / "t.gpkg")
    back = gpd.read_file(path, engine="pyogrio")
    assert back["lead"].tolist()[1] == "P0DT0H1M0S"
    assert (back["t_local"] == gdf["t_local"]).all()
    assert "lead" in gdf and pd.api.types.is_timedelta64_dtype(gdf["lead"])  # input untouched


def test_gpkg_overwrites_existing_file(tmp_path):
    path = tmp_path / "pred.gpkg"
    write_gpkg(_predictions(), path)
    write_gpkg(_predictions().iloc[:2], path)
    assert len(gpd.read_file(path, engine="pyogrio")) == 2


def test_gpkg_refuses_missing_crs(tmp_path):
    gdf = _predictions().set_crs(None, allow_override=True)
    with pytest.raises(StgeoError, match="no CRS"):
        write_gpkg(gdf, tmp_path / "x.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_gpkg_unwritable_folder(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(StgeoError, match="not_a_folder"):
        write_gpkg(_predictions(), blocker / "sub" / "pred.gpkg")
    assert [p.name for p in tmp_path.iterdir()] == ["not_a_folder"]


def test_gpkg_failed_write_leaves_no_temp(tmp_path):
    gdf = _predictions()
    gdf["z"] = np.array([1 + 2j] * 5)  # GDAL has no complex field type; fails mid-write
    with pytest.raises(StgeoError, match="pred.gpkg"):
        write_gpkg(gdf, tmp_path / "pred.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_gpkg_crash_keeps_previous_file(tmp_path, monkeypatch):
    path = write_gpkg(_predictions(), tmp_path / "pred.gpkg")
    before = path.read_bytes()

    def crash(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_gpkg(_predictions().iloc[:1], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["pred.gpkg"]


def test_gpkg_bad_arguments(tmp_path):
    with pytest.raises(StgeoError, match="GeoDataFrame"):
        write_gpkg(pd.DataFrame({"a": [1]}), tmp_path / "x.gpkg")
    with pytest.raises(StgeoError, match=".gpkg"):
        write_gpkg(_predictions(), tmp_path / "x.shp")
    with pytest.raises(StgeoError, match="layer"):
        write_gpkg(_predictions(), tmp_path / "x.gpkg", layer="")
