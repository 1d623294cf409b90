"""The bad-input catalogue: malformed roads, sensors, readings, graphs, configs and output folders.

Each :class:`Case` builds one broken input inside a fresh :class:`Workspace` (a small, valid copy
of the synthetic sample city: 8 sensors, one day of 5-minute readings, the road network) and
says which words the user's error message must contain: the file, column or key at fault and
the action to take. ``kind="error"`` cases must end in :class:`stgeo_kd.errors.StgeoError`
(CLI exit code 2, no traceback, nothing left in the output folder); ``kind="warning"`` cases are
irregular but recoverable data that is repaired with a warning saying what was done.

The list is plain data so that ``make_doc.py`` can print it for docs/reliability.md.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "sample_city"

#: sensors of the small workspace (mid-town, a few hundred metres apart along the roads)
SENSOR_IDS = [f"S{i:03d}" for i in range(1, 9)]
STEPS = 288  # one day of 5-minute steps
START = pd.Timestamp("2024-03-04 00:00")

#: words of which at least one must appear in every error message: it says what to do
ADVICE_WORDS = (
    "add", "check", "choose", "clean", "copy", "create", "did you mean", "download", "export",
    "expected", "fix", "give", "keep", "lower", "make", "must", "open", "pass", "remove",
    "resample", "save", "set", "should", "use", "valid names", "write",
)

BASE_CONFIG: dict[str, Any] = {
    "data": {
        "name": "tiny_city",
        "readings": "speeds.csv",
        "layout": "long",
        "time_column": "timestamp",
        "id_column": "sensor_id",
        "value_column": "speed",
        "missing_values": [0],
        "units": "km/h",
        "sensors": "sensors.csv",
        "name_column": "name",
        "roads": "roads.gpkg",
        "adjacency": {"method": "road_distance", "threshold": 0.1, "max_snap_distance": 100},
    },
    "task": {"history": 12, "horizons": [3, 6, 12], "split": {"train": 0.7, "val": 0.1, "test": 0.2}},
    "teacher": {"name": "graph_wavenet"},
    "student": {"name": "mlp"},
    "train": {"epochs": 1, "student_epochs": 1, "progress": False},
    "outputs": {"gpkg": True, "map": True, "onnx": False},
}


RASTER_CONFIG: dict[str, Any] = {
    "data": {"kind": "raster_stack", "name": "tiny_rain", "path": "frames", "pattern": r"rain_(?P<date>\d{8}_\d{4})"},
    "task": {"history": 3, "horizons": [1, 2], "split": {"train": 0.6, "val": 0.2, "test": 0.2},
             "patches": {"size": 16, "count": 8, "eval_size": 16}},
    "teacher": {"name": "st_cnn", "params": {"hidden": 4, "spatial_layers": 1, "fusion_layers": 1}},
    "student": {"name": "ds_cnn", "params": {"width": 4, "blocks": 1}},
    "train": {"epochs": 1, "progress": False},
    "outputs": {"map": True, "geotiff": True, "onnx": False},
}


@lru_cache(maxsize=1)
def _base_readings() -> pd.DataFrame:
    df = pd.read_parquet(SAMPLE / "speeds.parquet")
    df = df[df["sensor_id"].isin(SENSOR_IDS) & (df["timestamp"] < START + pd.Timedelta(minutes=5 * STEPS))]
    df = df.reset_index(drop=True)
    df["sensor_id"] = df["sensor_id"].astype(str)
    df["speed"] = df["speed"].astype("float64").round(1)
    return df


@lru_cache(maxsize=1)
def _base_sensors() -> pd.DataFrame:
    df = pd.read_csv(SAMPLE / "sensors.csv", dtype={"sensor_id": str})
    return df[df["sensor_id"].isin(SENSOR_IDS)].reset_index(drop=True)


def _deep_merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


DROP = object()  #: in config changes: remove this key


@dataclass
class Run:
    """One CLI invocation: ``stgeo-kd run CONFIG --out OUT --set ...``."""

    config: Path
    sets: tuple[str, ...] = ()
    out: Path | None = None


class Workspace:
    """A folder holding a small valid data set and config; cases break one thing in it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.out = self.root / "out"
        self.write_csv(self.readings(), "speeds.csv")
        self.write_csv(self.sensors(), "sensors.csv")
        self.copy_sample("roads.gpkg")
        self.config()

    # -- inputs -------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.root / name

    @staticmethod
    def readings() -> pd.DataFrame:
        """Long readings: sensor_id, timestamp, speed (8 sensors x 288 steps)."""
        return _base_readings().copy()

    def wide_readings(self) -> pd.DataFrame:
        """The same readings as a wide table: timestamp + one column per sensor."""
        wide = self.readings().pivot(index="timestamp", columns="sensor_id", values="speed")
        wide.columns = [str(c) for c in wide.columns]
        return wide.reset_index()

    @staticmethod
    def sensors() -> pd.DataFrame:
        """Sensors: sensor_id, name, lon, lat (WGS84)."""
        return _base_sensors().copy()

    def write_csv(self, df: pd.DataFrame, name: str, **kwargs: Any) -> Path:
        path = self.path(name)
        df.to_csv(path, index=False, **kwargs)
        return path

    def write_text(self, name: str, text: str, encoding: str = "utf-8") -> Path:
        path = self.path(name)
        path.write_text(text, encoding=encoding)
        return path

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.path(name)
        path.write_bytes(data)
        return path

    def copy_sample(self, *names: str) -> None:
        for name in names:
            shutil.copyfile(SAMPLE / name, self.path(name))

    def roads(self):
        import geopandas as gpd

        return gpd.read_file(SAMPLE / "roads.gpkg")

    def sensor_points(self):
        import geopandas as gpd

        s = self.sensors()
        return gpd.GeoDataFrame(s.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(s.lon, s.lat), crs="EPSG:4326")

    # -- config and invocation ----------------------------------------------------------------
    def config(self, changes: dict | None = None, name: str = "config.yaml") -> Path:
        """Write the base config with ``changes`` deep-merged in (``DROP`` removes a key)."""
        raw = _deep_merge(BASE_CONFIG, changes or {})
        return self.write_text(name, yaml.safe_dump(raw, sort_keys=False))

    def run(self, changes: dict | None = None, sets: tuple[str, ...] = (), out: Path | None = None) -> Run:
        cfg = self.config(changes, name="case.yaml") if changes else self.path("config.yaml")
        return Run(cfg, tuple(sets), out)

    # -- raster stacks ------------------------------------------------------------------------
    def frames(self, folder: str = "frames", frames: int = 14, size: int = 24, crs: str = "EPSG:32633") -> Path:
        """A small valid stack of synthetic rain GeoTIFFs ``rain_YYYYMMDD_HHMM.tif``."""
        import sys

        sys.path.insert(0, str(ROOT / "sample_data"))
        from make_sample_rasters import write_stack

        write_stack(self.path(folder), frames=frames, size=size, seed=1, crs=crs)
        return self.path(folder)

    def move_last_frame(self, crs: str, west: float, north: float, folder: str = "frames") -> Path:
        """Write the stack, then put its last frame (same values) on another grid: ``crs`` with
        its top-left corner at (``west``, ``north``)."""
        import rasterio
        from rasterio.transform import from_origin

        last = max(self.frames(folder).glob("*.tif"))
        with rasterio.open(last) as src:
            data, profile = src.read(1), src.profile
        profile.update(crs=crs, transform=from_origin(west, north, 1000, 1000))
        last.unlink()
        with rasterio.open(last, "w", **profile) as dst:
            dst.write(data, 1)
        return last

    def raster_run(self, changes: dict | None = None, folder: str = "frames") -> Run:
        """A raster job on ``folder`` (written first if missing), with ``changes`` merged in."""
        if not self.path(folder).exists():
            self.frames(folder)
        raw = _deep_merge(RASTER_CONFIG, {"data": {"path": folder}})
        raw = _deep_merge(raw, changes or {})
        return Run(self.write_text("raster.yaml", yaml.safe_dump(raw, sort_keys=False)))

    def argv(self, run: Run) -> list[str]:
        argv = ["run", str(run.config), "--out", str(run.out or self.out)]
        for s in run.sets:
            argv += ["--set", s]
        return argv


@dataclass(frozen=True)
class Case:
    id: str
    area: str  #: roads, sensors, readings, graph, config, output
    what: str  #: the malformed input, in words
    build: Callable[[Workspace], Run] = field(repr=False)
    expect: tuple[str, ...]  #: words the message must contain (case-insensitive)
    kind: str = "error"  #: "error" (StgeoError, exit 2) or "warning" (repaired with a warning)


CASES: list[Case] = []


def case(id: str, area: str, what: str, expect: tuple[str, ...] | list[str], kind: str = "error"):
    def register(fn: Callable[[Workspace], Run]) -> Callable[[Workspace], Run]:
        if any(c.id == id for c in CASES):
            raise ValueError(f"duplicate case id {id}")
        CASES.append(Case(id, area, what, fn, tuple(expect), kind))
        return fn

    return register


def _shapefile(ws: Workspace, drop: str | None = None) -> Run:
    ws.copy_sample("roads.shp", "roads.shx", "roads.dbf", "roads.prj", "roads.cpg")
    if drop:
        ws.path(f"roads{drop}").unlink()
    return ws.run({"data": {"roads": "roads.shp"}})


def _osm(ws: Workspace, text: str, name: str = "roads.osm") -> Run:
    ws.write_text(name, text)
    return ws.run({"data": {"roads": name}})


_OSM_NODES = (
    '<node id="1" lat="48.050" lon="15.050"/><node id="2" lat="48.051" lon="15.051"/>'
    '<node id="3" lat="48.052" lon="15.052"/>'
)


# ----------------------------------------------------------------------------------------------
# Roads
# ----------------------------------------------------------------------------------------------


@case("roads-shp-missing-shx", "roads", "Shapefile without its .shx index file", ["roads.shp", "roads.shx", "copy"])
def _(ws):
    return _shapefile(ws, ".shx")


@case("roads-shp-missing-dbf", "roads", "Shapefile without its .dbf attribute table", ["roads.shp", "roads.dbf", "copy"])
def _(ws):
    return _shapefile(ws, ".dbf")


@case("roads-shp-no-prj", "roads", "Shapefile without .prj (no CRS)", ["roads.shp", "no CRS", "roads.prj", "set"])
def _(ws):
    return _shapefile(ws, ".prj")


@case("roads-gpkg-no-crs", "roads", "GeoPackage layer without a CRS", ["roads_nocrs.gpkg", "no CRS", "set"])
def _(ws):
    import pyogrio

    roads = ws.roads()
    pyogrio.write_dataframe(roads.set_crs(None, allow_override=True), ws.path("roads_nocrs.gpkg"), layer="roads")
    return ws.run({"data": {"roads": "roads_nocrs.gpkg"}})


@case("roads-empty-layer", "roads", "GeoPackage road layer with no features", ["roads_empty.gpkg", "no features", "choose"])
def _(ws):
    ws.roads().iloc[:0].to_file(ws.path("roads_empty.gpkg"), layer="roads")
    return ws.run({"data": {"roads": "roads_empty.gpkg"}})


@case("roads-zero-bytes", "roads", "road file of 0 bytes", ["roads.gpkg", "empty", "0 bytes", "create it again"])
def _(ws):
    ws.write_bytes("roads.gpkg", b"")
    return ws.run()


@case("roads-garbage", "roads", "road file that is not a GIS file (text in a .gpkg)", ["roads.gpkg", "cannot be read", "check"])
def _(ws):
    ws.write_text("roads.gpkg", "this is not a GeoPackage\n" * 20)
    return ws.run()


@case("roads-truncated-gpkg", "roads", "GeoPackage cut off half-way (incomplete copy)", ["roads.gpkg", "damaged"])
def _(ws):
    data = (SAMPLE / "roads.gpkg").read_bytes()
    ws.write_bytes("roads.gpkg", data[: len(data) // 3])
    return ws.run()


@case("roads-points-only", "roads", "road layer holding points instead of lines", ["roads_points.gpkg", "no line features", "LineString"])
def _(ws):
    ws.sensor_points().to_file(ws.path("roads_points.gpkg"), layer="roads")
    return ws.run({"data": {"roads": "roads_points.gpkg"}})


@case("roads-unknown-layer", "roads", "data.roads_layer names a layer that is not in the file", ["roads.gpkg", "streets", "valid names", "roads"])
def _(ws):
    return ws.run({"data": {"roads_layer": "streets"}})


@case("roads-missing-file", "roads", "data.roads points to a file that does not exist", ["nowhere.gpkg", "not found", "check the path"])
def _(ws):
    return ws.run({"data": {"roads": "nowhere.gpkg"}})


@case("roads-is-folder", "roads", "data.roads points to a folder", ["folder", "pass the"])
def _(ws):
    ws.path("roads_dir").mkdir()
    return ws.run({"data": {"roads": "roads_dir"}})


@case("roads-wrong-crs", "roads", "roads in UTM metres labelled as Web Mercator (CRS mismatch with the sensors)", ["roads_3857.gpkg", "sensors.csv", "max_snap_distance", "CRS"])
def _(ws):
    ws.roads().set_crs("EPSG:3857", allow_override=True).to_file(ws.path("roads_3857.gpkg"), layer="roads")
    return ws.run({"data": {"roads": "roads_3857.gpkg"}})


@case("roads-disconnected", "roads", "road lines that touch each sensor but connect none of them", ["roads_pieces.gpkg", "sensors.csv", "connected", "knn"])
def _(ws):
    import geopandas as gpd
    import shapely.ops

    roads = ws.roads()
    pieces = []
    for point in ws.sensor_points().to_crs(roads.crs).geometry:
        line = roads.geometry.iloc[int(np.argmin(roads.distance(point)))]
        along = line.project(point)
        # 60 m of the sensor's own road: sensors are >= 300 m apart, so no two pieces meet
        pieces.append(shapely.ops.substring(line, max(0.0, along - 30), along + 30))
    gpd.GeoDataFrame({"road_id": range(len(pieces))}, geometry=pieces, crs=roads.crs).to_file(
        ws.path("roads_pieces.gpkg"), layer="roads"
    )
    return ws.run({"data": {"roads": "roads_pieces.gpkg"}})


@case("roads-osm-no-roads", "roads", "OSM XML with buildings but no highway ways", ["roads.osm", "no roads", "highway"])
def _(ws):
    return _osm(ws, f'<?xml version="1.0"?><osm version="0.6">{_OSM_NODES}'
                    '<way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="building" v="yes"/></way></osm>')


@case("roads-osm-broken-xml", "roads", "OSM XML cut off mid-element", ["roads.osm", "not well-formed", "again"])
def _(ws):
    return _osm(ws, f'<?xml version="1.0"?><osm version="0.6">{_OSM_NODES}<way id="10"><nd ref="1"/><nd ref=')


@case("roads-osm-not-osm", "roads", "an XML file that is not OpenStreetMap (GPX)", ["roads.osm", "<gpx>", "export"])
def _(ws):
    return _osm(ws, '<?xml version="1.0"?><gpx version="1.1"><trk><name>ride</name></trk></gpx>')


@case("roads-osm-ways-without-nodes", "roads", "OSM ways whose nodes are not in the file", ["roads.osm", "nodes", "export the ways together with their nodes"])
def _(ws):
    return _osm(ws, '<?xml version="1.0"?><osm version="0.6">'
                    '<way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="primary"/></way></osm>')


@case("roads-osm-bad-coordinate", "roads", "OSM node with a non-numeric latitude", ["roads.osm", "lat", "not valid OSM XML", "export"])
def _(ws):
    return _osm(ws, '<?xml version="1.0"?><osm version="0.6"><node id="1" lat="north" lon="15.0"/></osm>')


@case("roads-osm-with-layer", "roads", "data.roads_layer given for an OSM XML file", ["roads.osm", "no layers", "data.roads_layer"])
def _(ws):
    ws.write_text("roads.osm", f'<?xml version="1.0"?><osm version="0.6">{_OSM_NODES}</osm>')
    return ws.run({"data": {"roads": "roads.osm", "roads_layer": "lines"}})


# ----------------------------------------------------------------------------------------------
# Sensors
# ----------------------------------------------------------------------------------------------


@case("sensors-missing-file", "sensors", "data.sensors points to a file that does not exist", ["nowhere.csv", "does not exist", "check the path"])
def _(ws):
    return ws.run({"data": {"sensors": "nowhere.csv"}})


@case("sensors-zero-bytes", "sensors", "sensors file of 0 bytes", ["sensors.csv", "empty", "export"])
def _(ws):
    ws.write_bytes("sensors.csv", b"")
    return ws.run()


@case("sensors-header-only", "sensors", "sensors CSV with a header and no rows", ["sensors.csv", "no data rows", "add"])
def _(ws):
    ws.write_text("sensors.csv", "sensor_id,name,lon,lat\n")
    return ws.run()


@case("sensors-missing-lon-column", "sensors", "sensors CSV without the longitude column", ["sensors.csv", "'lon'", "data.lon_column", "x"])
def _(ws):
    ws.write_csv(ws.sensors().rename(columns={"lon": "x"}), "sensors.csv")
    return ws.run()


@case("sensors-missing-id-column", "sensors", "sensors CSV whose id column has another name", ["sensors.csv", "'sensor_id'", "data.sensors_id_column", "station"])
def _(ws):
    ws.write_csv(ws.sensors().rename(columns={"sensor_id": "station"}), "sensors.csv")
    return ws.run()


@case("sensors-duplicated-ids", "sensors", "the same sensor id on two rows", ["sensors.csv", "duplicated", "S003", "sensor_id", "remove"])
def _(ws):
    s = ws.sensors()
    s.loc[3, "sensor_id"] = "S003"
    ws.write_csv(s, "sensors.csv")
    return ws.run()


@case("sensors-empty-id", "sensors", "a sensor row with an empty id", ["sensors.csv", "no sensor id", "'sensor_id'", "data row 3", "fill in"])
def _(ws):
    s = ws.sensors()
    s.loc[2, "sensor_id"] = None
    ws.write_csv(s, "sensors.csv")
    return ws.run()


@case("sensors-non-numeric-coordinates", "sensors", "a latitude written as text ('48.05N')", ["sensors.csv", "'lat'", "48.05N", "not numbers", "decimal"])
def _(ws):
    s = ws.sensors().astype({"lat": object})
    s.loc[1, "lat"] = "48.05N"
    ws.write_csv(s, "sensors.csv")
    return ws.run()


@case("sensors-empty-coordinate", "sensors", "a sensor without longitude", ["sensors.csv", "S002", "no coordinates", "lon"])
def _(ws):
    s = ws.sensors()
    s.loc[1, "lon"] = np.nan
    ws.write_csv(s, "sensors.csv")
    return ws.run()


@case("sensors-projected-as-lonlat", "sensors", "UTM metres in lon/lat columns (CRS not declared)", ["sensors.csv", "data.sensors_crs", "outside longitude/latitude"])
def _(ws):
    pts = ws.sensor_points().to_crs("EPSG:32633")
    s = ws.sensors()
    s["lon"], s["lat"] = pts.geometry.x.round(2).to_numpy(), pts.geometry.y.round(2).to_numpy()
    ws.write_csv(s, "sensors.csv")
    return ws.run()


@case("sensors-unknown-crs", "sensors", "data.sensors_crs is a code that does not exist", ["data.sensors_crs", "EPSG:999999", "EPSG:4326"])
def _(ws):
    return ws.run({"data": {"sensors_crs": "EPSG:999999"}})


@case("sensors-crs-gibberish", "sensors", "data.sensors_crs is not a CRS at all", ["data.sensors_crs", "wgs-eighty-four", "EPSG"])
def _(ws):
    return ws.run({"data": {"sensors_crs": "wgs-eighty-four"}})


@case("sensors-crs-declared-wrong", "sensors", "lon/lat degrees declared as UTM metres (sensors land far from the roads)", ["sensors.csv", "roads.gpkg", "CRS", "max_snap_distance"])
def _(ws):
    return ws.run({"data": {"sensors_crs": "EPSG:32633"}})


@case("sensors-name-column-missing", "sensors", "data.name_column names a column that is not there", ["sensors.csv", "nickname", "data.name_column"])
def _(ws):
    return ws.run({"data": {"name_column": "nickname"}})


@case("sensors-line-layer", "sensors", "sensors read from a layer of lines", ["roads.gpkg", "points", "LineString"])
def _(ws):
    return ws.run({"data": {"sensors": "roads.gpkg", "sensors_id_column": "road_id", "name_column": None}})


@case("sensors-gpkg-no-crs", "sensors", "sensors GeoPackage layer without a CRS", ["sensors_nocrs.gpkg", "no CRS", "set"])
def _(ws):
    import pyogrio

    pyogrio.write_dataframe(ws.sensor_points().set_crs(None, allow_override=True), ws.path("sensors_nocrs.gpkg"), layer="sensors")
    return ws.run({"data": {"sensors": "sensors_nocrs.gpkg"}})


@case("sensors-unknown-format", "sensors", "sensors given as a spreadsheet (.xlsx)", ["sensors.xlsx", "cannot be read", "CSV"])
def _(ws):
    ws.write_bytes("sensors.xlsx", b"PK\x03\x04 not really a spreadsheet")
    return ws.run({"data": {"sensors": "sensors.xlsx"}})


@case("sensors-no-overlap", "sensors", "sensor ids that match none of the readings (lower case)", ["speeds.csv", "sensors.csv", "matches", "data.id_column"])
def _(ws):
    s = ws.sensors()
    s["sensor_id"] = s["sensor_id"].str.lower()
    ws.write_csv(s, "sensors.csv")
    return ws.run()


@case("sensors-unknown-id-in-readings", "sensors", "readings of a sensor id that is not in the sensors file", ["speeds.csv", "sensors.csv", "S999", "add"])
def _(ws):
    r = ws.readings()
    r.loc[r["sensor_id"] == "S008", "sensor_id"] = "S999"
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("sensors-only-one", "sensors", "a single sensor: no graph can be built", ["speeds.csv", "sensors.csv", "at least 2"])
def _(ws):
    r = ws.readings()
    ws.write_csv(r[r["sensor_id"] == "S001"], "speeds.csv")
    ws.write_csv(ws.sensors().iloc[:1], "sensors.csv")
    return ws.run()


# ----------------------------------------------------------------------------------------------
# Readings
# ----------------------------------------------------------------------------------------------


@case("readings-missing-file", "readings", "data.readings points to a file that does not exist", ["nowhere.csv", "does not exist", "check the path"])
def _(ws):
    return ws.run({"data": {"readings": "nowhere.csv"}})


@case("readings-is-folder", "readings", "data.readings points to a folder", ["readings_dir", "folder", "file"])
def _(ws):
    ws.path("readings_dir").mkdir()
    return ws.run({"data": {"readings": "readings_dir"}})


@case("readings-zero-bytes", "readings", "readings file of 0 bytes", ["speeds.csv", "empty", "export"])
def _(ws):
    ws.write_bytes("speeds.csv", b"")
    return ws.run()


@case("readings-header-only", "readings", "readings CSV with a header and no rows", ["speeds.csv", "no data rows", "add"])
def _(ws):
    ws.write_text("speeds.csv", "sensor_id,timestamp,speed\n")
    return ws.run()


@case("readings-unknown-format", "readings", "readings given as a spreadsheet (.xlsx)", ["speeds.xlsx", "unknown table format", ".csv"])
def _(ws):
    ws.write_bytes("speeds.xlsx", b"PK\x03\x04 not really a spreadsheet")
    return ws.run({"data": {"readings": "speeds.xlsx"}})


@case("readings-truncated-parquet", "readings", "Parquet file cut off half-way", ["speeds.parquet", "could not be read", "check"])
def _(ws):
    ws.readings().to_parquet(ws.path("full.parquet"))
    data = ws.path("full.parquet").read_bytes()
    ws.write_bytes("speeds.parquet", data[: len(data) // 2])
    return ws.run({"data": {"readings": "speeds.parquet"}})


@case("readings-corrupt-gzip", "readings", "a .csv.gz that is not gzip data", ["speeds.csv.gz", "could not be read", "check"])
def _(ws):
    ws.write_bytes("speeds.csv.gz", b"sensor_id,timestamp,speed\nS001,2024-03-04,1\n")
    return ws.run({"data": {"readings": "speeds.csv.gz"}})


@case("readings-truncated-gzip", "readings", "a .csv.gz cut off half-way", ["speeds.csv.gz", "could not be read", "check"])
def _(ws):
    blob = gzip.compress(ws.readings().to_csv(index=False).encode())
    ws.write_bytes("speeds.csv.gz", blob[: len(blob) // 2])
    return ws.run({"data": {"readings": "speeds.csv.gz"}})


@case("readings-not-utf8", "readings", "readings CSV saved in Latin-1 with an accented sensor id", ["speeds.csv", "UTF-8", "save"])
def _(ws):
    r = ws.readings()
    r.loc[r["sensor_id"] == "S008", "sensor_id"] = "S\u00e9008"
    ws.write_csv(r, "speeds.csv", encoding="latin-1")
    return ws.run()


@case("readings-missing-time-column", "readings", "long readings without the time column", ["speeds.csv", "'timestamp'", "data.time_column"])
def _(ws):
    ws.write_csv(ws.readings().rename(columns={"timestamp": "when"}), "speeds.csv")
    return ws.run()


@case("readings-missing-value-column", "readings", "data.value_column names a column that is not there", ["speeds.csv", "'flow'", "data.value_column"])
def _(ws):
    return ws.run({"data": {"value_column": "flow"}})


@case("readings-ambiguous-value-column", "readings", "long readings with two candidate value columns and no data.value_column", ["speeds.csv", "data.value_column", "flow"])
def _(ws):
    r = ws.readings()
    r["flow"] = 1.0
    ws.write_csv(r, "speeds.csv")
    return ws.run({"data": {"value_column": None}})


@case("readings-long-read-as-wide", "readings", "data.layout: wide on a long table (sensor, time, value)", ["speeds.csv", "'sensor_id'", "not numbers", "data.layout"])
def _(ws):
    return ws.run({"data": {"layout": "wide"}})


@case("readings-unparseable-time", "readings", "a time stamp that is not a date", ["speeds.csv", "'timestamp'", "yesterday", "date"])
def _(ws):
    r = ws.readings().astype({"timestamp": object})
    r.loc[5, "timestamp"] = "yesterday"
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-empty-time", "readings", "rows with an empty time stamp", ["speeds.csv", "'timestamp'", "2 empty time stamp", "data row 6", "fill"])
def _(ws):
    r = ws.readings().astype({"timestamp": object})
    r.loc[[5, 6], "timestamp"] = None
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-non-numeric-value", "readings", "a reading written as text ('fast')", ["speeds.csv", "'speed'", "fast", "not numbers"])
def _(ws):
    r = ws.readings().astype({"speed": object})
    r.loc[10, "speed"] = "fast"
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-duplicated-rows", "readings", "the same (sensor, time) twice in long readings", ["speeds.csv", "duplicated", "S001", "keep one"])
def _(ws):
    r = ws.readings()
    ws.write_csv(pd.concat([r, r.iloc[[3]]]), "speeds.csv")
    return ws.run()


@case("readings-wide-duplicated-timestamps", "readings", "a wide table with a repeated time stamp", ["wide.csv", "duplicated time stamp", "remove"])
def _(ws):
    w = ws.wide_readings()
    ws.write_csv(pd.concat([w.iloc[:10], w.iloc[[9]], w.iloc[10:]]), "wide.csv")
    return ws.run({"data": {"readings": "wide.csv", "layout": "wide", "value_column": None}})


@case("readings-wide-duplicated-sensor-column", "readings", "a wide table with the same sensor column twice", ["wide.csv", "S003", "more than once", "header"])
def _(ws):
    w = ws.wide_readings()
    w.insert(4, "S003_copy", w["S003"])
    ws.write_text("wide.csv", w.to_csv(index=False).replace("S003_copy", "S003", 1))
    return ws.run({"data": {"readings": "wide.csv", "layout": "wide", "value_column": None}})


@case("readings-wide-nameless-column", "readings", "a wide table with a sensor column that has no header", ["wide.csv", "no name in the header", "sensor id"])
def _(ws):
    lines = ws.wide_readings().to_csv(index=False).splitlines()
    lines[0] = lines[0].replace("S004", "", 1)
    ws.write_text("wide.csv", "\n".join(lines) + "\n")
    return ws.run({"data": {"readings": "wide.csv", "layout": "wide", "value_column": None}})


@case("readings-irregular-steps", "readings", "a time stamp off the 5-minute grid", ["speeds.csv", "irregular", "resample", "data.freq"])
def _(ws):
    r = ws.readings()
    r.loc[r["timestamp"] == START + pd.Timedelta(minutes=50), "timestamp"] = START + pd.Timedelta(minutes=52)
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-time-typo-huge-gap", "readings", "a time stamp 100 years off (a typo) that would add millions of empty steps", ["speeds.csv", "2124", "missing time steps", "check"])
def _(ws):
    r = ws.readings().astype({"timestamp": object})
    last = r["timestamp"] == r["timestamp"].max()
    r.loc[last, "timestamp"] = "2124-03-04 23:55:00"
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-all-missing-sensor", "readings", "one sensor whose readings are all 0 (the missing code)", ["speeds.csv", "S003", "all missing", "data.missing_values"])
def _(ws):
    r = ws.readings()
    r.loc[r["sensor_id"] == "S003", "speed"] = 0.0
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-all-missing", "readings", "every reading empty", ["speeds.csv", "every reading is missing", "data.missing_values"])
def _(ws):
    r = ws.readings()
    r["speed"] = np.nan
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-single-step", "readings", "readings of a single time step", ["speeds.csv", "at least two time steps", "add"])
def _(ws):
    r = ws.readings()
    ws.write_csv(r[r["timestamp"] == START], "speeds.csv")
    return ws.run()


@case("readings-sub-second-steps", "readings", "time stamps 100 ms apart", ["speeds.csv", "time step", "resample"])
def _(ws):
    r = ws.readings()
    r["timestamp"] = START + (r["timestamp"] - START) / 3000
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-freq-disagrees", "readings", "data.freq 7min for 5-minute data", ["speeds.csv", "irregular", "data.freq"])
def _(ws):
    return ws.run({"data": {"freq": "7min"}})


@case("readings-freq-gibberish", "readings", "data.freq is not a time step", ["data.freq", "often", "5min"])
def _(ws):
    return ws.run({"data": {"freq": "often"}})


@case("readings-wide-without-time", "readings", "a wide table with neither a time column nor data.start/data.freq", ["wide.csv", "data.time_column", "data.start"])
def _(ws):
    ws.write_csv(ws.wide_readings().drop(columns=["timestamp"]), "wide.csv")
    return ws.run({"data": {"readings": "wide.csv", "layout": "wide", "value_column": None}})


@case("readings-huge-values", "readings", "readings of 1e308 (too large for 32-bit floats)", ["speeds.csv", "'speed'", "too large", "units"])
def _(ws):
    r = ws.readings()
    r.loc[7, "speed"] = 1e308
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-missing-sensor-id", "readings", "long rows with an empty sensor id", ["speeds.csv", "no sensor id", "'sensor_id'", "fill"])
def _(ws):
    r = ws.readings()
    r.loc[[3, 4], "sensor_id"] = None
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("readings-epoch-seconds", "readings", "times written as seconds since 1970 (read as nanoseconds)", ["speeds.csv", "shorter than one second", "seconds since 1970", "write the times as dates"])
def _(ws):
    r = ws.readings()
    r["timestamp"] = (r["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    ws.write_csv(r, "speeds.csv")
    return ws.run()


# ----------------------------------------------------------------------------------------------
# Graph
# ----------------------------------------------------------------------------------------------


def _matrix(ws: Workspace, text: str | None = None, name: str = "adj.csv", **config: Any) -> Run:
    if text is not None:
        ws.write_text(name, text)
    return ws.run({"data": {"roads": None, "adjacency": {"method": "matrix", "path": name, **config}}})


def _square(n: int, m: int | None = None, fill: str = "1") -> str:
    m = n if m is None else m
    return "\n".join(",".join("0" if i == j else fill for j in range(m)) for i in range(n)) + "\n"


@case("graph-matrix-wrong-size", "graph", "adjacency matrix 5 x 5 for 8 sensors", ["adj.csv", "5x5", "sensors.csv", "8 sensors"])
def _(ws):
    return _matrix(ws, _square(5))


@case("graph-matrix-not-square", "graph", "adjacency matrix with 8 rows and 7 columns", ["adj.csv", "not square", "one row and one column per node"])
def _(ws):
    return _matrix(ws, _square(8, 7, "0.5"))


@case("graph-matrix-negative", "graph", "adjacency matrix with a negative weight", ["adj.csv", "negative", ">= 0"])
def _(ws):
    return _matrix(ws, _square(8, fill="-0.5"))


@case("graph-matrix-nan", "graph", "adjacency matrix with an empty cell", ["adj.csv", "empty cell", "line 2", "use 0"])
def _(ws):
    rows = _square(8).splitlines()
    rows[1] = rows[1].replace(",1,", ",,", 1)
    return _matrix(ws, "\n".join(rows) + "\n")


@case("graph-matrix-non-numeric", "graph", "adjacency matrix with a word in a cell", ["adj.csv", "non-numeric", "'near'", "line 1, column 2"])
def _(ws):
    return _matrix(ws, _square(8).replace("0,1,1", "0,near,1", 1))


@case("graph-matrix-ids-mismatch", "graph", "adjacency matrix whose header ids miss a sensor", ["adj.csv", "S008", "no row"])
def _(ws):
    header = ",".join([*SENSOR_IDS[:7], "S999"])
    return _matrix(ws, header + "\n" + _square(8))


@case("graph-matrix-object-npy", "graph", "adjacency .npy holding pickled Python objects", ["adj.npy", "np.save", "float"])
def _(ws):
    np.save(ws.path("adj.npy"), np.array([[{"a": 1}, None], [None, {"b": 2}]], dtype=object), allow_pickle=True)
    return _matrix(ws, name="adj.npy")


@case("graph-matrix-3d-npy", "graph", "adjacency .npy of shape (2, 8, 8)", ["adj.npy", "2-D", "(2, 8, 8)"])
def _(ws):
    np.save(ws.path("adj.npy"), np.ones((2, 8, 8)))
    return _matrix(ws, name="adj.npy")


@case("graph-matrix-unsupported-type", "graph", "adjacency matrix as a .txt file", ["adj.txt", "unsupported", ".csv or .npy"])
def _(ws):
    return _matrix(ws, _square(8), name="adj.txt")


@case("graph-matrix-no-path", "graph", "data.adjacency.method matrix without data.adjacency.path", ["data.adjacency.path", "matrix"])
def _(ws):
    return ws.run({"data": {"roads": None, "adjacency": {"method": "matrix"}}})


@case("graph-matrix-missing-file", "graph", "data.adjacency.path points to a file that does not exist", ["nowhere.csv", "not found", "check the path"])
def _(ws):
    return _matrix(ws, name="nowhere.csv")


@case("graph-road-distance-without-roads", "graph", "road_distance adjacency without data.roads", ["road_distance", "data.roads", "knn"])
def _(ws):
    return ws.run({"data": {"roads": None, "adjacency": {"method": "road_distance"}}})


@case("graph-threshold-out-of-range", "graph", "data.adjacency.threshold of 1.5", ["data.adjacency.threshold", "1.5", "between 0 and 1"])
def _(ws):
    return ws.run({"data": {"adjacency": {"threshold": 1.5}}})


@case("graph-knn-zero", "graph", "data.adjacency.k of 0", ["data.adjacency.k", "at least 1"])
def _(ws):
    return ws.run({"data": {"roads": None, "adjacency": {"method": "knn", "k": 0}}})


@case("graph-sigma-negative", "graph", "data.adjacency.sigma of -100", ["data.adjacency.sigma", "positive"])
def _(ws):
    return ws.run({"data": {"adjacency": {"sigma": -100}}})


@case("graph-sensors-same-place", "graph", "all sensors at the same coordinates (knn graph)", ["sensors.csv", "same place", "coordinates"])
def _(ws):
    s = ws.sensors()
    s["lon"], s["lat"] = 15.05, 48.05
    ws.write_csv(s, "sensors.csv")
    return ws.run({"data": {"roads": None, "adjacency": {"method": "knn"}}})


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------


@case("config-missing-file", "config", "the config file does not exist", ["nowhere.yaml", "not found", "examples/sample_city.yaml"])
def _(ws):
    return Run(ws.path("nowhere.yaml"))


@case("config-empty", "config", "an empty YAML file", ["empty.yaml", "empty", "examples/sample_city.yaml"])
def _(ws):
    return Run(ws.write_text("empty.yaml", "# nothing here yet\n"))


@case("config-is-a-list", "config", "a YAML file holding a list", ["list.yaml", "mapping", "data:"])
def _(ws):
    return Run(ws.write_text("list.yaml", "- data\n- task\n"))


@case("config-invalid-yaml", "config", "YAML with an unclosed bracket", ["bad.yaml", "not valid YAML", "line"])
def _(ws):
    return Run(ws.write_text("bad.yaml", "data:\n  readings: speeds.csv\n  missing_values: [0, \n task: {\n"))


@case("config-python-tag", "config", "YAML with a !!python/object/apply tag (code execution attempt)", ["evil.yaml", "not valid YAML", "python/object/apply"])
def _(ws):
    marker = ws.path("PWNED")
    return Run(ws.write_text("evil.yaml", f"data: !!python/object/apply:os.system ['touch {marker}']\n"))


@case("config-unknown-top-key", "config", "a misspelt section (trian:)", ["case.yaml", "'trian'", "did you mean", "train"])
def _(ws):
    return ws.run({"trian": {"epochs": 3}})


@case("config-unknown-nested-key", "config", "a misspelt key (data.sensor)", ["case.yaml", "'data.sensor'", "did you mean", "sensors"])
def _(ws):
    return ws.run({"data": {"sensor": "sensors.csv"}})


@case("config-wrong-type-number", "config", "train.epochs: many", ["case.yaml", "train.epochs", "whole number", "many"])
def _(ws):
    return ws.run({"train": {"epochs": "many"}})


@case("config-wrong-type-section", "config", "data: given as a list", ["case.yaml", "'data'", "mapping"])
def _(ws):
    return ws.run({"data": ["speeds.csv", "sensors.csv"]})


@case("config-wrong-type-bool", "config", "outputs.map: maybe", ["case.yaml", "outputs.map", "true or false"])
def _(ws):
    return ws.run({"outputs": {"map": "maybe"}})


@case("config-wrong-type-list", "config", "data.missing_values: a mapping", ["case.yaml", "data.missing_values", "list"])
def _(ws):
    return ws.run({"data": {"missing_values": {"zero": 0}}})


@case("config-readings-not-set", "config", "no data.readings", ["data.readings", "required"])
def _(ws):
    return ws.run({"data": {"readings": DROP}})


@case("config-sensors-not-set", "config", "no data.sensors", ["data.sensors", "required", "lon/lat"])
def _(ws):
    return ws.run({"data": {"sensors": None}})


@case("config-history-longer-than-data", "config", "task.history of 400 steps for 288 steps of data", ["task.history", "time steps", "use more data"])
def _(ws):
    return ws.run({"task": {"history": 400}})


@case("config-horizon-zero", "config", "task.horizons: [0]", ["task.horizons", "positive"])
def _(ws):
    return ws.run({"task": {"horizons": [0]}})


@case("config-split-sum", "config", "task.split fractions that sum to 1.2", ["task.split", "sum to 1"])
def _(ws):
    return ws.run({"task": {"split": {"train": 0.9}}})


@case("config-layout-unknown", "config", "data.layout: diagonal", ["data.layout", "diagonal", "wide"])
def _(ws):
    return ws.run({"data": {"layout": "diagonal"}})


@case("config-adjacency-method-unknown", "config", "data.adjacency.method: roads", ["data.adjacency.method", "roads", "valid names", "road_distance"])
def _(ws):
    return ws.run({"data": {"adjacency": {"method": "roads"}}})


@case("config-kind-unknown", "config", "data.kind: raster (not available yet)", ["data.kind", "raster", "sensor_graph"])
def _(ws):
    return ws.run({"data": {"kind": "raster"}})


@case("config-model-unknown", "config", "teacher.name: transformer", ["transformer", "valid names", "graph_wavenet"])
def _(ws):
    return ws.run({"teacher": {"name": "transformer"}})


@case("config-override-without-equals", "config", "--set without '='", ["--set", "key.path=value", "train.epochs"])
def _(ws):
    return ws.run(sets=("train.epochs",))


@case("config-override-into-value", "config", "--set into a key that is a value, not a section", ["--set", "data.readings.path", "not a section"])
def _(ws):
    return ws.run(sets=("data.readings.path=x.csv",))


@case("config-override-unknown-key", "config", "--set of a misspelt key", ["train.epochz", "did you mean", "epochs"])
def _(ws):
    return ws.run(sets=("train.epochz=3",))


# ----------------------------------------------------------------------------------------------
# Raster stacks
# ----------------------------------------------------------------------------------------------


@case("raster-frames-different-crs", "rasters", "a GeoTIFF folder whose last frame is in another CRS, no target grid",
      ["rain_20240601_1410.tif", "another grid", "EPSG:3035", "data.reproject"])
def _(ws):
    ws.move_last_frame("EPSG:3035", 4_500_000, 2_800_000)
    return ws.raster_run()


@case("raster-pattern-no-match", "rasters", "data.pattern that matches none of the files", ["radar_", "matches no raster file", "rain_20240601_1200.tif", "fix the pattern"])
def _(ws):
    return ws.raster_run({"data": {"pattern": r"radar_(?P<date>\d{8}_\d{4})"}})


@case("raster-pattern-without-date", "rasters", "data.pattern without a (?P<date>...) group", ["data.pattern", "named group", "date"])
def _(ws):
    return ws.raster_run({"data": {"pattern": r"rain_(\d{8}_\d{4})"}})


@case("raster-date-does-not-parse", "rasters", "a file name whose date group is not a date", ["rain_20241345_1200.tif", "20241345_1200", "does not parse", "data.time_format"])
def _(ws):
    folder = ws.frames()
    first = min(folder.glob("*.tif"))
    first.rename(folder / "rain_20241345_1200.tif")
    return ws.raster_run()


@case("raster-all-nodata-frame", "rasters", "one frame holding only nodata", ["rain_20240601_1230.tif", "no valid pixel", "remove the file"])
def _(ws):
    import rasterio

    folder = ws.frames()
    with rasterio.open(folder / "rain_20240601_1230.tif", "r+") as dst:
        dst.write(np.full((24, 24), -9999.0, dtype="float32"), 1)
    return ws.raster_run()


@case("raster-corrupt-file", "rasters", "a truncated GeoTIFF (half of its bytes)", ["rain_20240601_1300.tif", "cannot be read", "replace"])
def _(ws):
    folder = ws.frames()
    path = folder / "rain_20240601_1300.tif"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return ws.raster_run()


@case("raster-path-missing", "rasters", "data.path that does not exist", ["radar_frames", "does not exist", "give a folder"])
def _(ws):
    return ws.raster_run({"data": {"path": "radar_frames"}})


@case("raster-netcdf-several-variables", "rasters", "a NetCDF cube with two gridded variables and no data.variable", ["cube.nc", "2 gridded variables", "rain", "temp", "set data.variable"])
def _(ws):
    import xarray as xr

    t = pd.date_range("2024-06-01", periods=12, freq="1h")
    ys, xs = np.arange(10)[::-1] + 0.5, np.arange(12) + 0.5
    ds = xr.Dataset({"rain": (("time", "y", "x"), np.zeros((12, 10, 12), "float32")),
                     "temp": (("time", "y", "x"), np.ones((12, 10, 12), "float32"))},
                    coords={"time": t, "y": ys, "x": xs})
    ds.rio.write_crs("EPSG:32633").to_netcdf(ws.path("cube.nc"))
    return ws.raster_run({"data": {"path": "cube.nc", "pattern": None}})


@case("raster-too-few-frames", "rasters", "a stack too short for one window of history + horizon", ["shorter than one window", "history"])
def _(ws):
    ws.frames(frames=6)
    return ws.raster_run()


@case("raster-multiband-no-dates", "rasters", "a multi-band GeoTIFF used as time steps, without dates", ["stack.tif", "no dates", "data.start", "data.freq"])
def _(ws):
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(ws.path("stack.tif"), "w", driver="GTiff", height=16, width=16, count=10, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(500_000, 5_300_000, 1000, 1000)) as dst:
        dst.write(np.random.default_rng(0).random((10, 16, 16), dtype=np.float32))
    return ws.raster_run({"data": {"path": "stack.tif", "pattern": None}})


# ----------------------------------------------------------------------------------------------
# Output folder
# ----------------------------------------------------------------------------------------------


@case("output-parent-is-file", "output", "--out inside a path that is a file", ["a_file", "not writable", "choose another"])
def _(ws):
    ws.write_text("a_file", "not a folder")
    return Run(ws.path("config.yaml"), out=ws.path("a_file") / "out")


@case("output-is-file", "output", "--out is an existing file", ["report.txt", "not writable", "choose another"])
def _(ws):
    ws.write_text("report.txt", "keep me")
    return Run(ws.path("config.yaml"), out=ws.path("report.txt"))


# ----------------------------------------------------------------------------------------------
# Irregular but recoverable: repaired with a warning that says what was done
# ----------------------------------------------------------------------------------------------


@case("warn-unsorted-rows", "readings", "rows not in time order", ["speeds.csv", "not in time order", "sorted"], kind="warning")
def _(ws):
    ws.write_csv(ws.readings().sample(frac=1.0, random_state=0), "speeds.csv")
    return ws.run()


@case("warn-missing-steps", "readings", "a few time steps absent for every sensor", ["speeds.csv", "3 missing time step(s)", "added as missing"], kind="warning")
def _(ws):
    r = ws.readings()
    gone = [START + pd.Timedelta(minutes=5 * k) for k in (40, 41, 100)]
    ws.write_csv(r[~r["timestamp"].isin(gone)], "speeds.csv")
    return ws.run()


@case("warn-infinite-readings", "readings", "'inf' written as a reading", ["speeds.csv", "infinite", "treated as missing"], kind="warning")
def _(ws):
    r = ws.readings()
    r.loc[[5, 9], "speed"] = np.inf
    ws.write_csv(r, "speeds.csv")
    return ws.run()


@case("warn-trailing-empty-columns", "readings", "a spreadsheet export with empty, nameless columns at the end (a,b,,)", ["wide.csv", "dropped 2 empty column(s) without a name"], kind="warning")
def _(ws):
    text = ws.wide_readings().to_csv(index=False)
    ws.write_text("wide.csv", "".join(line + ",,\n" for line in text.splitlines()))
    return ws.run({"data": {"readings": "wide.csv", "layout": "wide", "value_column": None}})


@case("warn-sensor-without-readings", "sensors", "a sensor listed without any reading", ["sensors.csv", "S009", "no readings", "left out"], kind="warning")
def _(ws):
    s = ws.sensors()
    extra = s.iloc[[0]].assign(sensor_id="S009", name="spare detector", lon=s["lon"].iloc[0] + 0.001)
    ws.write_csv(pd.concat([s, extra]), "sensors.csv")
    return ws.run()


@case("warn-isolated-sensor", "graph", "adjacency matrix with a sensor that has no neighbour", ["S008", "no neighbour", "data.adjacency"], kind="warning")
def _(ws):
    rows = [[0.0 if i == j or 7 in (i, j) else 0.5 for j in range(8)] for i in range(8)]
    ws.write_text("adj.csv", "\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return _matrix(ws)


@case("warn-roads-mixed-geometry", "roads", "a road layer with a few points among the lines", ["roads_mixed.gpkg", "dropped non-line features", "Point"], kind="warning")
def _(ws):
    import geopandas as gpd

    roads = ws.roads()
    pts = ws.sensor_points().to_crs(roads.crs).iloc[:2]
    mixed = gpd.GeoDataFrame(pd.concat([roads, pts[["geometry"]]], ignore_index=True), crs=roads.crs)
    mixed.to_file(ws.path("roads_mixed.gpkg"), layer="roads")
    return ws.run({"data": {"roads": "roads_mixed.gpkg"}})


@case("warn-roads-several-layers", "roads", "a GeoPackage with a point layer before the road layer", ["roads_multi.gpkg", "reading the first LineString layer", "roads_layer"], kind="warning")
def _(ws):
    ws.sensor_points().to_crs("EPSG:32633").to_file(ws.path("roads_multi.gpkg"), layer="detectors")
    ws.roads().to_file(ws.path("roads_multi.gpkg"), layer="streets")
    return ws.run({"data": {"roads": "roads_multi.gpkg"}})


@case("warn-raster-missing-frame", "rasters", "a GeoTIFF folder with one 10-minute frame missing", ["1 time step", "no frame", "added as missing"], kind="warning")
def _(ws):
    folder = ws.frames()
    (folder / "rain_20240601_1240.tif").unlink()
    return ws.raster_run()


@case("warn-raster-reproject-first", "rasters", "a frame on another grid, with data.reproject: first", ["rain_20240601_1410.tif", "reprojected"], kind="warning")
def _(ws):
    ws.move_last_frame("EPSG:32633", 500_500, 5_300_000)  # half a pixel east
    return ws.raster_run({"data": {"reproject": "first"}})


ERROR_CASES = [c for c in CASES if c.kind == "error"]
WARNING_CASES = [c for c in CASES if c.kind == "warning"]
