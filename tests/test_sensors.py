"""Tests for stgeo_kd.ingest.sensors: readings tables (wide/long, CSV/Parquet) and sensor points."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point

from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.sensors import read_readings, read_sensor_locations

NAN = np.nan


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def assert_values(da, expected) -> None:
    np.testing.assert_array_equal(da.values, np.array(expected, dtype=np.float32))


def times(*stamps: str) -> np.ndarray:
    return pd.to_datetime(list(stamps)).values


# ----------------------------------------------------------------------------------------------
# read_readings: good files
# ----------------------------------------------------------------------------------------------


def test_wide_csv_with_time_column(tmp_path):
    path = write_csv(
        tmp_path / "wide.csv",
        """
timestamp,A,B
2024-03-04 00:00,10,0
2024-03-04 00:05,,20
2024-03-04 00:10,30.5,40
""",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file must not warn
        da = read_readings(path)
    assert da.dims == ("time", "node")
    assert da.dtype == np.float32
    assert list(da["node"].values) == ["A", "B"]
    np.testing.assert_array_equal(da["time"].values, times("2024-03-04 00:00", "2024-03-04 00:05", "2024-03-04 00:10"))
    # the 0 at (00:00, B) is the default missing code; the empty cell is NaN
    assert_values(da, [[10, NAN], [NAN, 20], [30.5, 40]])


def test_zeros_stay_when_missing_values_empty_but_nan_stays_nan(tmp_path):
    path = write_csv(
        tmp_path / "wide.csv",
        """
timestamp,A,B
2024-03-04 00:00,10,0
2024-03-04 00:05,,20
""",
    )
    da = read_readings(path, missing_values=[])
    assert_values(da, [[10, 0], [NAN, 20]])


def test_custom_missing_code(tmp_path):
    path = write_csv(
        tmp_path / "wide.csv",
        """
timestamp,A,B
2024-03-04 00:00,-1,0
2024-03-04 00:05,7,-1
""",
    )
    da = read_readings(path, missing_values=[-1])
    assert_values(da, [[NAN, 0], [7, NAN]])


def test_wide_csv_without_time_column_uses_start_and_freq(tmp_path):
    path = write_csv(
        tmp_path / "wide_notime.csv",
        """
101,102,103
1,2,3
4,5,6
""",
    )
    da = read_readings(path, time_column=None, start="2012-03-01 00:00", freq="15min")
    assert list(da["node"].values) == ["101", "102", "103"]
    np.testing.assert_array_equal(da["time"].values, times("2012-03-01 00:00", "2012-03-01 00:15"))
    assert_values(da, [[1, 2, 3], [4, 5, 6]])
    # the default time_column 'timestamp' is absent, so start/freq are used as well
    da2 = read_readings(path, start="2012-03-01 00:00", freq="15min")
    np.testing.assert_array_equal(da2.values, da.values)


def test_long_csv(tmp_path):
    path = write_csv(
        tmp_path / "long.csv",
        """
sensor_id,timestamp,speed
S2,2024-03-04 00:00,50
S1,2024-03-04 00:00,60
S1,2024-03-04 01:00,61
S2,2024-03-04 01:00,0
S1,2024-03-04 02:00,62
""",
    )
    da = read_readings(path)  # layout auto -> long, because sensor_id is a column
    assert da.name == "speed"  # the only other column is the value column
    assert list(da["node"].values) == ["S2", "S1"]  # order of first appearance
    np.testing.assert_array_equal(
        da["time"].values, times("2024-03-04 00:00", "2024-03-04 01:00", "2024-03-04 02:00")
    )
    # S2 at 01:00 is a 0 (missing code), S2 at 02:00 has no row at all
    assert_values(da, [[50, 60], [NAN, 61], [NAN, 62]])


def test_long_parquet(tmp_path):
    df = pd.DataFrame(
        {
            "station": [7, 7, 9, 9],
            "when": pd.to_datetime(["2024-03-04 00:10", "2024-03-04 00:00", "2024-03-04 00:00", "2024-03-04 00:10"]),
            "flow": [1.5, 2.5, 3.5, 4.5],
            "quality": [1, 1, 1, 1],
        }
    )
    path = tmp_path / "long.parquet"
    df.to_parquet(path)
    da = read_readings(path, layout="long", id_column="station", time_column="when", value_column="flow")
    assert list(da["node"].values) == ["7", "9"]
    np.testing.assert_array_equal(da["time"].values, times("2024-03-04 00:00", "2024-03-04 00:10"))
    assert_values(da, [[2.5, 3.5], [1.5, 4.5]])


def test_unsorted_rows_are_sorted_with_warning(tmp_path):
    path = write_csv(
        tmp_path / "unsorted.csv",
        """
timestamp,A
2024-03-04 00:10,3
2024-03-04 00:00,1
2024-03-04 00:05,2
""",
    )
    with pytest.warns(UserWarning, match="not in time order"):
        da = read_readings(path)
    np.testing.assert_array_equal(da["time"].values, times("2024-03-04 00:00", "2024-03-04 00:05", "2024-03-04 00:10"))
    assert_values(da, [[1], [2], [3]])


def test_missing_time_step_added_as_nan_row_with_warning(tmp_path):
    path = write_csv(
        tmp_path / "gap.csv",
        """
timestamp,A,B
2024-03-04 00:00,1,2
2024-03-04 00:05,3,4
2024-03-04 00:15,5,6
""",
    )
    with pytest.warns(UserWarning, match="1 missing time step"):
        da = read_readings(path)
    np.testing.assert_array_equal(
        da["time"].values,
        times("2024-03-04 00:00", "2024-03-04 00:05", "2024-03-04 00:10", "2024-03-04 00:15"),
    )
    assert_values(da, [[1, 2], [3, 4], [NAN, NAN], [5, 6]])


# ----------------------------------------------------------------------------------------------
# read_readings: bad files -> StgeoError naming the file (and the column)
# ----------------------------------------------------------------------------------------------


def raises_naming(path: Path, *fragments: str):
    """Context manager: StgeoError whose message holds the file path and every fragment."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(StgeoError)
            self.info = self._cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._cm.__exit__(*exc)
            msg = str(self.info.value)
            assert str(path) in msg, msg
            for f in fragments:
                assert f in msg, (f, msg)
            return handled

    return _Ctx()


def test_duplicated_timestamps(tmp_path):
    path = write_csv(
        tmp_path / "dup.csv",
        """
timestamp,A
2024-03-04 00:00,1
2024-03-04 00:05,2
2024-03-04 00:05,3
""",
    )
    with raises_naming(path, "duplicated time stamp"):
        read_readings(path)


def test_duplicated_sensor_time_rows(tmp_path):
    path = write_csv(
        tmp_path / "duplong.csv",
        """
sensor_id,timestamp,speed
S1,2024-03-04 00:00,1
S1,2024-03-04 00:05,2
S1,2024-03-04 00:05,3
""",
    )
    with raises_naming(path, "duplicated (sensor, time)", "'S1'"):
        read_readings(path)


def test_irregular_steps(tmp_path):
    path = write_csv(
        tmp_path / "irregular.csv",
        """
timestamp,A
2024-03-04 00:00,1
2024-03-04 00:05,2
2024-03-04 00:10,3
2024-03-04 00:17,4
""",
    )
    with raises_naming(path, "irregular", "2024-03-04 00:17"):
        read_readings(path)


def test_non_numeric_value_names_column(tmp_path):
    path = write_csv(
        tmp_path / "text.csv",
        """
timestamp,A,B
2024-03-04 00:00,1,2
2024-03-04 00:05,3,fast
""",
    )
    with raises_naming(path, "not numbers", "'fast'", "column 'B'"):
        read_readings(path)


def test_non_numeric_value_long(tmp_path):
    path = write_csv(
        tmp_path / "textlong.csv",
        """
sensor_id,timestamp,speed
S1,2024-03-04 00:00,1
S1,2024-03-04 00:05,n/a!
""",
    )
    with raises_naming(path, "'speed'"):
        read_readings(path)


def test_missing_value_column(tmp_path):
    path = write_csv(
        tmp_path / "long.csv",
        """
sensor_id,timestamp,speed
S1,2024-03-04 00:00,1
S1,2024-03-04 00:05,2
""",
    )
    with raises_naming(path, "'flow'", "not found"):
        read_readings(path, value_column="flow")


def test_long_with_two_candidate_value_columns(tmp_path):
    path = write_csv(
        tmp_path / "long2.csv",
        """
sensor_id,timestamp,speed,flow
S1,2024-03-04 00:00,1,2
S1,2024-03-04 00:05,2,3
""",
    )
    with raises_naming(path, "data.value_column"):
        read_readings(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with raises_naming(path, "empty"):
        read_readings(path)


def test_header_only_file(tmp_path):
    path = write_csv(tmp_path / "header.csv", "timestamp,A,B")
    with raises_naming(path, "no data rows"):
        read_readings(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with raises_naming(path, "does not exist"):
        read_readings(path)


def test_unparseable_date_names_column(tmp_path):
    path = write_csv(
        tmp_path / "baddate.csv",
        """
timestamp,A
2024-03-04 00:00,1
yesterday at noon,2
""",
    )
    with raises_naming(path, "'timestamp'", "not a date"):
        read_readings(path)


def test_wide_without_time_or_start_freq(tmp_path):
    path = write_csv(tmp_path / "notime.csv", "A,B\n1,2\n3,4")
    with raises_naming(path, "data.start", "data.freq"):
        read_readings(path)


# ----------------------------------------------------------------------------------------------
# read_sensor_locations
# ----------------------------------------------------------------------------------------------


def test_sensor_locations_from_csv(tmp_path):
    path = write_csv(
        tmp_path / "sensors.csv",
        """
sensor_id,lon,lat,label
101,-118.25,34.05,First
102,-118.20,34.10,Second
""",
    )
    gdf = read_sensor_locations(path, name_column="label")
    assert isinstance(gdf, gpd.GeoDataFrame)
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf["sensor_id"]) == ["101", "102"]
    assert list(gdf["name"]) == ["First", "Second"]
    np.testing.assert_allclose(gdf.geometry.x.to_numpy(), [-118.25, -118.20])
    np.testing.assert_allclose(gdf.geometry.y.to_numpy(), [34.05, 34.10])


def test_sensor_locations_projected_csv_with_crs(tmp_path):
    path = write_csv(tmp_path / "utm.csv", "id,x,y\nA,500000,5000000\nB,500100,5000000")
    gdf = read_sensor_locations(path, id_column="id", lon_column="x", lat_column="y", crs="EPSG:32633")
    assert gdf.crs.to_epsg() == 32633
    assert list(gdf["sensor_id"]) == ["A", "B"]
    np.testing.assert_allclose(gdf.geometry.x.to_numpy(), [500000, 500100])


def test_sensor_locations_from_geopackage(tmp_path):
    path = tmp_path / "sensors.gpkg"
    pts = gpd.GeoDataFrame(
        {"station": [5, 6, 7], "label": ["a", "b", "c"]},
        geometry=[Point(500000, 5000000), Point(500100, 5000000), Point(500200, 5000050)],
        crs="EPSG:32633",
    )
    pts.to_file(path, layer="sensors", driver="GPKG")
    roads = gpd.GeoDataFrame({"r": [1]}, geometry=[LineString([(500000, 5000000), (500200, 5000000)])], crs="EPSG:32633")
    roads.to_file(path, layer="roads", driver="GPKG")
    gdf = read_sensor_locations(path, id_column="station", layer="sensors", name_column="label")
    assert gdf.crs.to_epsg() == 32633
    assert list(gdf["sensor_id"]) == ["5", "6", "7"]
    assert list(gdf["name"]) == ["a", "b", "c"]
    np.testing.assert_allclose(gdf.geometry.x.to_numpy(), [500000, 500100, 500200])
    np.testing.assert_allclose(gdf.geometry.y.to_numpy(), [5000000, 5000000, 5000050])
    # the line layer is not a sensor layer
    with raises_naming(path, "points", "LineString"):
        read_sensor_locations(path, id_column="r", layer="roads")
    with pytest.raises(StgeoError, match="nolayer"):
        read_sensor_locations(path, id_column="station", layer="nolayer")
    with raises_naming(path, "'sensor_id'", "not found"):
        read_sensor_locations(path, layer="sensors")


def test_sensor_locations_duplicated_ids(tmp_path):
    path = write_csv(tmp_path / "dup.csv", "sensor_id,lon,lat\nA,1,2\nB,1,3\nA,2,2")
    with raises_naming(path, "duplicated sensor id", "'A'"):
        read_sensor_locations(path)


def test_sensor_locations_missing_coordinate_column(tmp_path):
    path = write_csv(tmp_path / "nolat.csv", "sensor_id,lon,latitude\nA,1,2")
    with raises_naming(path, "'lat'", "not found"):
        read_sensor_locations(path)


def test_sensor_locations_empty_coordinate(tmp_path):
    path = write_csv(tmp_path / "gap.csv", "sensor_id,lon,lat\nA,1,2\nB,,3")
    with raises_naming(path, "'B'", "no coordinates"):
        read_sensor_locations(path)


@pytest.mark.parametrize("lon,lat", [(500000.0, 40.0), (10.0, 95.0), (-181.0, 0.0)])
def test_sensor_locations_out_of_range(tmp_path, lon, lat):
    path = write_csv(tmp_path / "range.csv", f"sensor_id,lon,lat\nA,1,2\nB,{lon},{lat}")
    with raises_naming(path, "outside longitude/latitude", "data.sensors_crs"):
        read_sensor_locations(path)
