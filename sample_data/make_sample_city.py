"""Generate the small, fully SYNTHETIC ``sample_city`` traffic dataset.

The dataset exists so that examples, tests and tutorials of ``stgeo_kd`` have a
realistic spatio-temporal graph problem that ships with the repository, needs
no download and is reproducible bit for bit from a seed::

    python sample_data/make_sample_city.py --seed 7            # (re)generate
    python sample_data/make_sample_city.py --seed 7 --check    # + sanity check

Outputs (in ``--out``, default ``sample_data/sample_city``):

* ``roads.gpkg`` (layer ``roads``) and the same lines as ``roads.shp``: a
  ~6 x 6 km fictional town (UTM 33N, EPSG:32633, near 15E 48N) made of a
  jittered street grid plus a ring road and a diagonal boulevard, split at every
  intersection so that the lines share endpoints exactly.
* ``sensors.csv``: 50 loop detectors in WGS84, each a few metres off its road,
  as real survey coordinates are, so consumers must snap them to the network.
* ``speeds.parquet``: 3 weeks of 5-minute speeds in long form, with outages
  (NaN) and the ``0.0`` "no data" code of real loop detectors.

The speed simulation is built so that a *graph* model has something to learn
that a per-sensor model cannot: besides rush hours, random congestion events
start at one sensor and spread along the road network with a delay and a
decay that depend on the shortest network distance. ``--check`` verifies this
by comparing least-squares forecasters with and without the neighbours' past.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point

CRS = "EPSG:32633"  # WGS 84 / UTM zone 33N: metric, so lengths are metres.
CENTER = (503_500.0, 5_319_500.0)  # town centre, about 15.05E 48.03N
HALF_SIZE = 3_000.0  # half the side of the square town, metres

START = pd.Timestamp("2024-03-04 00:00")  # a Monday
STEP_MIN = 5
N_DAYS = 21
STEPS_PER_HOUR = 60 // STEP_MIN
STEPS_PER_DAY = 24 * STEPS_PER_HOUR
N_STEPS = N_DAYS * STEPS_PER_DAY

# Sensors per road class: detectors are usually installed on the arterials, so
# they are over-represented relative to their share of the network.
SENSOR_QUOTA = {"primary": 16, "secondary": 14, "residential": 20}
MIN_SENSOR_SPACING_M = 300.0  # keeps the 50 sensors spread over the whole town
FREE_FLOW_KMH = {"primary": (55.0, 70.0), "secondary": (42.0, 55.0), "residential": (30.0, 40.0)}
RUSH_SENSITIVITY = {"primary": (0.35, 0.65), "secondary": (0.25, 0.55), "residential": (0.15, 0.40)}
CLASS_RANK = {"primary": 0, "secondary": 1, "residential": 2}

# Congestion events (incidents, deliveries, road works ...). These are the part
# of the signal that is unpredictable from the clock and only visible early at
# the sensors the jam reaches first, which is what a graph model can exploit.
EVENTS_PER_DAY = 10.0
EVENT_INTENSITY = (0.35, 0.80)  # fractional speed loss at the origin sensor
EVENT_DURATION_MIN = (20.0, 120.0)
# Speed at which the tail of the queue grows upstream. By shock-wave theory it
# is (excess inflow) / (density jump), e.g. 300 veh/h / 85 veh/km ~ 3.5 km/h
# on an urban lane, far slower than the 15-20 km/h of stop-and-go waves inside
# a jam. This slowness is what gives a sensor 10-30 min of warning from its
# neighbours; with 12-20 km/h the 30-min gain of the --check drops to ~4 %.
EVENT_WAVE_KMH = (2.0, 5.0)
EVENT_DECAY_M = 2_500.0  # intensity falls as exp(-network distance / this)
EVENT_RAMP_MIN = 15.0  # speed falls / recovers over this as the queue edge passes
RUSH_WAVE_KMH = 15.0  # rush hour starts in the centre and spreads outward

# Rush-hour shape per weekday (Mon=0): amplitudes of the AM, midday and PM
# peaks. Fridays have the worst PM, weekends hardly any commute.
RUSH_AMPLITUDE = np.array(
    [
        [1.00, 0.15, 0.90],
        [1.00, 0.15, 0.95],
        [1.00, 0.15, 0.95],
        [1.00, 0.15, 0.95],
        [0.90, 0.20, 1.25],
        [0.15, 0.45, 0.30],
        [0.05, 0.25, 0.15],
    ]
)
# (centre, rise sigma, fall sigma) in minutes after midnight for each peak;
# asymmetric because congestion builds faster than it clears.
RUSH_SHAPE = [(8 * 60, 40.0, 55.0), (12 * 60 + 30, 90.0, 90.0), (17 * 60 + 30, 60.0, 75.0)]

MISSING_SENSORS = 5
ZERO_RATE = 0.003

HORIZON_STEPS = 6  # the 30-minute forecast the check is judged on
N_LAGS = 12
N_NEIGHBOURS = 3
REQUIRED_GAIN = 0.10


# --------------------------------------------------------------------------
# Road network
# --------------------------------------------------------------------------

AVENUES = [f"{n} Ave" for n in ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th")]
STREETS = [
    "Mill Rd",
    "Church St",
    "Station Rd",
    "Main St",
    "St. Mary's Rd",
    "Market St",
    "Linden St",
    "Brook St",
    "Hill St",
]


def _grid_positions(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    """Jittered, sorted street positions spanning [low, high] (~600-850 m apart)."""
    gaps = rng.uniform(620.0, 880.0, size=n - 1)
    positions = low + np.concatenate([[0.0], np.cumsum(gaps / gaps.sum() * (high - low))])
    positions[-1] = high  # exactly, so the cross streets really end on the boundary street
    return positions


def _named_roads(rng: np.random.Generator) -> list[tuple[str, str, LineString]]:
    """Whole streets before noding: (name, highway, line)."""
    cx, cy = CENTER
    x0, x1, y0, y1 = cx - HALF_SIZE, cx + HALF_SIZE, cy - HALF_SIZE, cy + HALF_SIZE
    xs = _grid_positions(rng, x0, x1, len(AVENUES))
    ys = _grid_positions(rng, y0, y1, len(STREETS))
    middle = len(AVENUES) // 2
    roads = []
    for i, x in enumerate(xs):
        cls = "secondary" if i in (middle - 1, middle + 1) else "residential"
        roads.append((AVENUES[i], cls, LineString([(x, y0), (x, y1)])))
    for j, y in enumerate(ys):
        cls = "secondary" if j in (middle - 1, middle + 1) else "residential"
        roads.append((STREETS[j], cls, LineString([(x0, y), (x1, y)])))

    # A slightly elliptic ring road; its start angle is chosen away from the
    # axes so the closing vertex is not an intersection.
    angles = np.linspace(0.3, 0.3 + 2 * np.pi, 73)
    ring = np.column_stack([cx + 2_050.0 * np.cos(angles), cy + 1_850.0 * np.sin(angles)])
    ring[-1] = ring[0]
    roads.append(("Ring Rd", "primary", LineString(ring)))
    # The diagonal runs from the west edge to the north edge, so both of its
    # ends are junctions on the boundary streets rather than dead ends.
    diagonal = LineString([(x0, y0 + 0.15 * (y1 - y0)), (x0 + 0.85 * (x1 - x0), y1)])
    roads.append(("Danube Blvd", "primary", diagonal))
    return roads


def _round_xy(x: float, y: float) -> tuple[float, float]:
    """Centimetre coordinates: shared endpoints must compare equal bit for bit."""
    return (round(x, 2), round(y, 2))


def _split_at(line: LineString, cuts: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Split ``line`` at the given on-line points, returning coordinate lists.

    The cut coordinates are used verbatim as segment endpoints, which is what
    makes both crossing roads end at exactly the same point.
    """
    coords = np.asarray(line.coords)
    seg_len = np.hypot(*np.diff(coords, axis=0).T)
    vertex_pos = np.concatenate([[0.0], np.cumsum(seg_len)])
    closed = line.is_closed
    points = [(float(p), _round_xy(*c), False) for p, c in zip(vertex_pos, coords)]
    points += [(line.project(Point(c)), c, True) for c in cuts]
    points.sort(key=lambda item: (item[0], not item[2]))

    # A cut that lands on a vertex replaces it (the cut coordinate wins).
    merged: list[tuple[float, tuple[float, float], bool]] = []
    for pos, xy, is_cut in points:
        if merged and pos - merged[-1][0] < 0.05:
            if is_cut or not merged[-1][2]:
                merged[-1] = (merged[-1][0], xy, is_cut or merged[-1][2])
            continue
        merged.append((pos, xy, is_cut))
    if closed and merged[-1][0] >= line.length - 0.05:
        merged[-1] = (merged[-1][0], merged[0][1], merged[0][2])

    pieces: list[list[tuple[float, float]]] = [[merged[0][1]]]
    for i, (_, xy, is_cut) in enumerate(merged[1:], start=1):
        pieces[-1].append(xy)
        if is_cut and i < len(merged) - 1:
            pieces.append([xy])
    if closed and len(pieces) > 1 and not merged[0][2]:
        # The ring's start vertex is not a junction: glue the wrap-around piece.
        pieces[0] = pieces.pop() + pieces[0][1:]
    return pieces


def build_roads(rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Topologically clean road network: one feature per junction-to-junction edge."""
    roads = _named_roads(rng)
    cuts: list[list[tuple[float, float]]] = [[] for _ in roads]
    for i in range(len(roads)):
        for j in range(i + 1, len(roads)):
            hit = roads[i][2].intersection(roads[j][2])
            if hit.is_empty:
                continue
            for p in shapely.get_parts(hit):
                xy = _round_xy(p.x, p.y)
                cuts[i].append(xy)
                cuts[j].append(xy)

    rows = []
    for (name, cls, line), road_cuts in zip(roads, cuts):
        for coords in _split_at(line, road_cuts):
            rows.append({"name": name, "highway": cls, "geometry": LineString(coords)})
    edges = gpd.GeoDataFrame(rows, crs=CRS)
    endpoints = {xy for line in edges.geometry for xy in _ends(line)}
    missed = {xy for road_cuts in cuts for xy in road_cuts} - endpoints
    if missed:
        raise RuntimeError(f"intersections not turned into junctions: {sorted(missed)[:3]}")

    # Real grids have gaps (parks, rail lines, pedestrian zones); removing a
    # few residential blocks makes network distance differ from straight-line
    # distance, which is the point of routing over the graph.
    graph = _road_graph(edges)
    removable = rng.permutation(np.flatnonzero((edges["highway"] == "residential").to_numpy()))
    dropped: list[int] = []
    for idx in removable:
        if len(dropped) == 8:
            break
        u, v = _ends(edges.geometry.iloc[idx])
        graph.remove_edge(u, v)
        if nx.is_connected(graph) and graph.degree(u) > 1 and graph.degree(v) > 1:
            dropped.append(int(idx))
        else:
            graph.add_edge(u, v)
    edges = edges.drop(index=edges.index[dropped]).reset_index(drop=True)
    edges.insert(0, "road_id", np.arange(1, len(edges) + 1, dtype=np.int64))
    edges["oneway"] = "no"
    return edges[["road_id", "name", "highway", "oneway", "geometry"]]


def _ends(line: LineString) -> tuple[tuple[float, float], tuple[float, float]]:
    """First and last vertex: the junctions an edge connects, used as graph node keys."""
    coords = line.coords
    return tuple(coords[0]), tuple(coords[-1])


def _road_graph(roads: gpd.GeoDataFrame) -> nx.Graph:
    """Undirected graph whose nodes are the (exactly shared) line endpoints."""
    graph = nx.Graph()
    for idx, line in enumerate(roads.geometry):
        u, v = _ends(line)
        graph.add_edge(u, v, length=line.length, edge=idx)
    return graph


# --------------------------------------------------------------------------
# Sensors and network distances
# --------------------------------------------------------------------------


def sensor_graph(roads: gpd.GeoDataFrame, sensor_xy: np.ndarray) -> nx.Graph:
    """Road graph with every sensor inserted as node ``("sensor", i)``.

    Each sensor is snapped to its nearest road line and splices that edge at
    the projected point, so distances are measured along the roads from the
    sensor's actual position rather than from the closest junction.
    """
    graph = _road_graph(roads)
    lines = roads.geometry.to_numpy()
    nearest = shapely.STRtree(lines).nearest(shapely.points(sensor_xy))
    for edge_idx in np.unique(nearest):
        line = lines[edge_idx]
        on_edge = np.flatnonzero(nearest == edge_idx)
        pos = [line.project(Point(sensor_xy[i])) for i in on_edge]
        order = np.argsort(pos)
        u, v = _ends(line)
        graph.remove_edge(u, v)
        prev_node, prev_pos = u, 0.0
        for k in order:
            node = ("sensor", int(on_edge[k]))
            graph.add_edge(prev_node, node, length=pos[k] - prev_pos)
            prev_node, prev_pos = node, pos[k]
        graph.add_edge(prev_node, v, length=line.length - prev_pos)
    return graph


def network_distances(graph: nx.Graph, n_sensors: int, source) -> np.ndarray:
    """Shortest road distance (m) from ``source`` to every sensor."""
    lengths = nx.single_source_dijkstra_path_length(graph, source, weight="length")
    return np.array([lengths[("sensor", i)] for i in range(n_sensors)])


def sensor_distance_matrix(graph: nx.Graph, n_sensors: int) -> np.ndarray:
    """Symmetric (n, n) matrix of shortest road distances between sensors, in metres."""
    return np.stack([network_distances(graph, n_sensors, ("sensor", i)) for i in range(n_sensors)])


def _cross_street(roads: gpd.GeoDataFrame, node_roads: dict, node, own_name: str) -> str | None:
    """Most important differently named street meeting at ``node``."""
    others = sorted(
        (CLASS_RANK[roads.at[e, "highway"]], roads.at[e, "name"])
        for e in node_roads[node]
        if roads.at[e, "name"] != own_name
    )
    return others[0][1] if others else None


def place_sensors(roads: gpd.GeoDataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Put detectors mid-block, 3-15 m to one side of their road.

    Candidates are rejected when the offset point would snap to a different
    road (near acute junctions), so the true edge is recoverable by snapping.
    """
    lines = roads.geometry.to_numpy()
    tree = shapely.STRtree(lines)
    node_roads: dict = {}
    for idx, line in enumerate(lines):
        for node in _ends(line):
            node_roads.setdefault(node, []).append(idx)

    placed: list[dict] = []
    for cls, quota in SENSOR_QUOTA.items():
        candidates = np.flatnonzero((roads["highway"] == cls).to_numpy() & (roads.length.to_numpy() >= 150.0))
        n_before = len(placed)
        for edge_idx in rng.permutation(candidates):
            if len(placed) - n_before == quota:
                break
            line = lines[edge_idx]
            pos = rng.uniform(0.25, 0.75) * line.length
            a, b = line.interpolate(pos - 1.0), line.interpolate(pos + 1.0)
            normal = np.array([a.y - b.y, b.x - a.x]) / np.hypot(b.x - a.x, b.y - a.y)
            on_road = line.interpolate(pos)
            xy = np.array([on_road.x, on_road.y]) + normal * rng.uniform(3.0, 15.0) * rng.choice([-1.0, 1.0])
            if tree.nearest(Point(xy)) != edge_idx:
                continue
            if any(np.hypot(*(xy - p["xy"])) < MIN_SENSOR_SPACING_M for p in placed):
                continue
            placed.append({"xy": xy, "edge": int(edge_idx), "highway": cls, "pos": pos})
        if len(placed) - n_before < quota:
            raise RuntimeError(f"could only place {len(placed) - n_before}/{quota} {cls} sensors")

    # Readable names like a traffic department's: the cross street at the
    # nearer junction; arterials between junctions are named by both ends.
    names = []
    for p in placed:
        line = lines[p["edge"]]
        own = roads.at[p["edge"], "name"]
        near, far = _ends(line) if p["pos"] < line.length / 2 else _ends(line)[::-1]
        a = _cross_street(roads, node_roads, near, own)
        b = _cross_street(roads, node_roads, far, own)
        if p["highway"] == "primary" and a and b and a != b:
            names.append(f"{own} between {a} & {b}")
        else:
            names.append(f"{own} @ {a or b}")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} ({seen[name]})"

    xy = np.stack([p["xy"] for p in placed])
    # IDs run north-west to south-east so neighbouring IDs are roughly near.
    order = np.lexsort((xy[:, 0], -np.round(xy[:, 1], -2)))
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(xy[order, 0], xy[order, 1])
    return pd.DataFrame(
        {
            "sensor_id": [f"S{i + 1:03d}" for i in range(len(order))],
            "name": [names[i] for i in order],
            "lon": np.round(lon, 6),
            "lat": np.round(lat, 6),
            "highway": [placed[i]["highway"] for i in order],
        }
    )


def sensors_xy(sensors: pd.DataFrame) -> np.ndarray:
    """Sensor lon/lat projected to the roads' metric CRS, as an (n, 2) array."""
    x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(sensors["lon"], sensors["lat"])
    return np.column_stack([x, y])


# --------------------------------------------------------------------------
# Speeds
# --------------------------------------------------------------------------


def _rush_profile(local_min: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """City-wide rush intensity (~1 at a weekday peak) at each local time.

    Each day's peaks get their own random shift and strength, so the rush hour
    is only approximately predictable from the clock; ``local_min`` already
    contains each sensor's delay behind the centre.
    """
    out = np.zeros_like(local_min)
    for day in range(N_DAYS):
        weekday = (START + pd.Timedelta(days=day)).day_of_week
        for peak, (centre, rise, fall) in enumerate(RUSH_SHAPE):
            amp = RUSH_AMPLITUDE[weekday, peak] * rng.uniform(0.8, 1.2)
            dt = local_min - (day * 1440 + centre + rng.normal(0.0, 15.0))
            sigma = np.where(dt < 0, rise, fall)
            out += amp * np.exp(-0.5 * (dt / sigma) ** 2)
    return out


def _event_loss(dist: np.ndarray, t_min: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Fractional speed loss from random congestion events spreading upstream.

    A jam starts at a random sensor at a random time and reaches every other
    sensor after (network distance / queue growth speed), weakened by
    exp(-distance / EVENT_DECAY_M); it lasts the same time everywhere, so it
    also clears first where it began. Streets are two-way, so "upstream"
    covers every direction. Overlapping jams compound multiplicatively.
    """
    n = dist.shape[0]
    keep = np.ones((len(t_min), n))  # product of (1 - loss) over events
    n_events = rng.poisson(EVENTS_PER_DAY * N_DAYS)
    for _ in range(n_events):
        origin = rng.integers(n)
        t0 = rng.uniform(-60.0, t_min[-1])  # may already be running when the record starts
        duration = rng.uniform(*EVENT_DURATION_MIN)
        intensity = rng.uniform(*EVENT_INTENSITY)
        wave_m_per_min = rng.uniform(*EVENT_WAVE_KMH) * 1000.0 / 60.0
        for j in range(n):
            loss = intensity * np.exp(-dist[origin, j] / EVENT_DECAY_M)
            if loss < 0.03:
                continue
            onset = t0 + dist[origin, j] / wave_m_per_min
            end = onset + duration
            lo = np.searchsorted(t_min, onset)
            hi = np.searchsorted(t_min, end + EVENT_RAMP_MIN)
            t = t_min[lo:hi]
            rise = np.clip((t - onset) / EVENT_RAMP_MIN, 0, 1)
            shape = rise * np.clip(1 - (t - end) / EVENT_RAMP_MIN, 0, 1)
            keep[lo:hi, j] *= 1.0 - loss * shape
    return 1.0 - keep, n_events


def _rain_loss(t_min: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few city-wide rain spells, each slowing all traffic by 5-15 %."""
    loss = np.zeros_like(t_min)
    for _ in range(rng.integers(3, 6)):
        start = rng.uniform(0, t_min[-1])
        end = start + rng.uniform(2 * 60, 8 * 60)
        edge = np.clip((t_min - start) / 30.0, 0, 1) * np.clip((end - t_min) / 30.0, 0, 1)
        loss = np.maximum(loss, rng.uniform(0.05, 0.15) * edge)
    return loss


def simulate_speeds(
    sensors: pd.DataFrame, dist: np.ndarray, dist_center: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """(time, sensor) array of speeds in km/h, missing readings included."""
    n = len(sensors)
    cls = sensors["highway"].to_numpy()
    free_flow = np.array([rng.uniform(*FREE_FLOW_KMH[c]) for c in cls])
    rush_sens = np.array([rng.uniform(*RUSH_SENSITIVITY[c]) for c in cls])
    noise_sd = rng.uniform(1.0, 1.5, size=n)
    t_min = np.arange(N_STEPS, dtype=float) * STEP_MIN

    rush_delay = dist_center / (RUSH_WAVE_KMH * 1000.0 / 60.0)
    rush = np.clip(rush_sens * _rush_profile(t_min[:, None] - rush_delay[None, :], rng), 0, 0.85)
    events, n_events = _event_loss(dist, t_min, rng)
    rain = _rain_loss(t_min, rng)

    # Slow local fluctuations (AR(1), ~30 min memory) that no neighbour knows about.
    phi = np.exp(-STEP_MIN / 30.0)
    shocks = rng.normal(0.0, 0.5 * np.sqrt(1 - phi**2), size=(N_STEPS, n))
    drift = np.zeros((N_STEPS, n))
    for t in range(1, N_STEPS):
        drift[t] = phi * drift[t - 1] + shocks[t]

    speed = free_flow * (1 - rush) * (1 - events) * (1 - rain[:, None]) + drift
    speed += rng.normal(0.0, 1.0, size=(N_STEPS, n)) * noise_sd
    speed = np.round(np.clip(speed, 3.0, free_flow + 5.0), 1)

    # Outages: whole blocks of NaN on a few sensors ...
    outage_sensors = rng.choice(n, size=MISSING_SENSORS, replace=False)
    n_blocks = 0
    for j in outage_sensors:
        for _ in range(rng.integers(1, 4)):
            length = rng.integers(2 * STEPS_PER_HOUR, 24 * STEPS_PER_HOUR + 1)
            start = rng.integers(0, N_STEPS - length)
            speed[start : start + length, j] = np.nan
            n_blocks += 1
    # ... and isolated 0.0 readings, the usual "no data" code of loop detectors.
    zeros = (rng.random(speed.shape) < ZERO_RATE) & ~np.isnan(speed)
    speed[zeros] = 0.0
    stats = {
        "events": n_events,
        "outage_sensors": sorted(sensors["sensor_id"].iloc[outage_sensors]),
        "outage_blocks": n_blocks,
        "zeros": int(zeros.sum()),
        "nan": int(np.isnan(speed).sum()),
    }
    return speed.astype(np.float32), stats


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _fixed_gdal_date() -> Iterator[None]:
    """Pin the timestamp GDAL writes into the GeoPackage, for byte-identical reruns."""
    old = os.environ.get("OGR_CURRENT_DATE")
    os.environ["OGR_CURRENT_DATE"] = "2024-03-04T00:00:00.000Z"
    try:
        yield
    finally:
        if old is None:
            del os.environ["OGR_CURRENT_DATE"]
        else:
            os.environ["OGR_CURRENT_DATE"] = old


def write_dataset(out: Path, seed: int) -> dict:
    """Generate everything from ``seed`` and write it to ``out``; returns summary statistics.

    One generator drives all randomness in a fixed order, so a seed fully
    determines the files (the GeoPackage and DBF dates are pinned as well).
    """
    rng = np.random.default_rng(seed)
    roads = build_roads(rng)
    sensors = place_sensors(roads, rng)
    graph = sensor_graph(roads, sensors_xy(sensors))
    n = len(sensors)
    dist = sensor_distance_matrix(graph, n)
    junctions = [node for node in graph if node[0] != "sensor"]
    centre_node = min(junctions, key=lambda p: np.hypot(p[0] - CENTER[0], p[1] - CENTER[1]))
    dist_center = network_distances(graph, n, centre_node)
    speed, stats = simulate_speeds(sensors, dist, dist_center, rng)

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("roads.gpkg", *(f"roads.{ext}" for ext in ("shp", "shx", "dbf", "prj", "cpg"))):
        (out / stale).unlink(missing_ok=True)
    with _fixed_gdal_date():
        roads.to_file(out / "roads.gpkg", layer="roads", driver="GPKG")
    # The DBF header carries a date too; pin it for the same reason.
    roads.to_file(
        out / "roads.shp", driver="ESRI Shapefile", encoding="UTF-8", DBF_DATE_LAST_UPDATE="2024-03-04"
    )
    sensors[["sensor_id", "name", "lon", "lat"]].to_csv(out / "sensors.csv", index=False, float_format="%.6f")

    timestamps = pd.date_range(START, periods=N_STEPS, freq=f"{STEP_MIN}min", unit="us")
    long = pd.DataFrame(
        {
            "sensor_id": np.repeat(sensors["sensor_id"].to_numpy(), N_STEPS),
            "timestamp": np.tile(timestamps.to_numpy(), n),
            "speed": speed.T.reshape(-1),
        }
    )
    long.to_parquet(out / "speeds.parquet", index=False, compression="zstd")

    lengths = roads.length
    stats.update(
        roads=len(roads),
        network_km=round(lengths.sum() / 1000, 1),
        shortest_edge_m=round(lengths.min(), 1),
        by_class=roads["highway"].value_counts().to_dict(),
        rows=len(long),
    )
    return stats


# --------------------------------------------------------------------------
# Check
# --------------------------------------------------------------------------


def _fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(x_train, y_train, rcond=None)
    return x_test @ coef


def run_check(out: Path) -> bool:
    """Per-sensor linear forecasts with and without network neighbours.

    Everything is re-read from the written files, so this also checks that
    the snapping pipeline a consumer would use recovers a usable graph.
    """
    roads = gpd.read_file(out / "roads.gpkg", layer="roads")
    sensors = pd.read_csv(out / "sensors.csv")
    speeds = pd.read_parquet(out / "speeds.parquet")
    ids = sensors["sensor_id"].tolist()
    wide = speeds.pivot(index="timestamp", columns="sensor_id", values="speed")[ids]
    y = wide.to_numpy(dtype=float, copy=True)
    y[y == 0.0] = np.nan  # 0.0 is a missing code, not a standstill
    n_steps, n = y.shape

    dist = sensor_distance_matrix(sensor_graph(roads, sensors_xy(sensors)), n)
    neighbours = np.argsort(dist, axis=1, kind="stable")[:, 1 : 1 + N_NEIGHBOURS]

    # lags[t, k, j] = y[t - k, j] for k < N_LAGS; rows t < N_LAGS-1 are unusable.
    lags = np.full((n_steps, N_LAGS, n), np.nan)
    for k in range(N_LAGS):
        lags[k:, k] = y[: n_steps - k]
    tod = 2 * np.pi * (wide.index.hour * 60 + wide.index.minute).to_numpy() / 1440.0
    clock = np.column_stack([np.ones(n_steps), np.sin(tod), np.cos(tod)])

    print(f"check: {n} sensors, {n_steps} steps; train = first 70 %, test = last 20 %")
    print(f"{'horizon':>8} {'persistence':>12} {'(a) own':>9} {'(b) +nbrs':>10} {'b vs a':>7}")
    passed = True
    for horizon in (3, HORIZON_STEPS, 12):
        origin = np.arange(N_LAGS - 1, n_steps - horizon)
        train = origin + horizon < int(0.7 * n_steps)
        test = origin >= int(0.8 * n_steps)
        abs_err = {"persistence": [], "a": [], "b": []}
        lagged = lags[origin]
        for j in range(n):
            own = lagged[:, :, j]
            nbr = lagged[:, :, neighbours[j]].reshape(len(origin), -1)
            x_a = np.hstack([clock[origin], own])
            x_b = np.hstack([x_a, nbr])
            target = y[origin + horizon, j]
            valid = np.isfinite(x_b).all(axis=1) & np.isfinite(target)
            fit, ev = valid & train, valid & test
            abs_err["a"].append(np.abs(_fit_predict(x_a[fit], target[fit], x_a[ev]) - target[ev]))
            abs_err["b"].append(np.abs(_fit_predict(x_b[fit], target[fit], x_b[ev]) - target[ev]))
            abs_err["persistence"].append(np.abs(own[ev, 0] - target[ev]))
        mae = {k: float(np.concatenate(v).mean()) for k, v in abs_err.items()}
        gain = 1 - mae["b"] / mae["a"]
        print(
            f"{horizon * STEP_MIN:>5} min {mae['persistence']:>12.3f} {mae['a']:>9.3f}"
            f" {mae['b']:>10.3f} {-gain:>+7.1%}"
        )
        if horizon == HORIZON_STEPS:
            passed = gain >= REQUIRED_GAIN
    verdict = "PASS" if passed else "FAIL"
    print(f"{verdict}: neighbours must cut the {HORIZON_STEPS * STEP_MIN}-min MAE by >= {REQUIRED_GAIN:.0%}")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "sample_city")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--check", action="store_true", help="fit per-sensor vs neighbour forecasts on the result"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    stats = write_dataset(args.out, args.seed)
    print(f"generated seed={args.seed} in {time.perf_counter() - started:.1f} s -> {args.out}")
    for key, value in stats.items():
        print(f"  {key}: {value}")
    for path in sorted(args.out.iterdir()):
        print(f"  {path.name:<16} {path.stat().st_size:>10,d} bytes")
    if args.check and not run_check(args.out):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
