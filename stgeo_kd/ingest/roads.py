"""Road networks: read road lines, build a metric road graph, snap sensors to it, derive sensor adjacency.

Typical use::

    roads = read_roads("roads.gpkg")
    dist = network_distances(roads, sensors)           # (N, N) metres along the roads
    adj = gaussian_kernel_adjacency(dist)               # DCRNN-style weights in [0, 1]
    edge_index, edge_weight = adjacency_to_edges(adj)   # for torch_geometric

All lengths and distances are metres, measured in a projected metric CRS (see ``metric_crs``).
"""

from __future__ import annotations

import os
import pickle
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from scipy.spatial import cKDTree

from stgeo_kd.errors import StgeoError, did_you_mean

PathLike = str | os.PathLike[str]

# Endpoints are rounded to 1 cm before they become graph nodes: lines that touch in a GIS rarely
# share bit-identical coordinates, and 1 cm is far below the accuracy of any road data set.
_NODE_DECIMALS = 2

# A metre-based CRS is only used as-is if its scale error at the data is below this; Web Mercator
# (EPSG:3857) is metre-based too but stretches lengths by 1/cos(latitude), e.g. +56 % at 50 degrees.
_MAX_SCALE_ERROR = 0.01

_OSM_SUFFIXES = {".osm", ".xml"}
_ONEWAY_FORWARD = {"yes", "true", "1"}
_ONEWAY_REVERSE = {"-1", "reverse"}
# OSM semantics: these ways are one-way even without an explicit oneway tag.
_IMPLIED_ONEWAY_JUNCTIONS = {"roundabout", "circular"}
_IMPLIED_ONEWAY_HIGHWAYS = {"motorway"}

_MAX_IDS_IN_MESSAGE = 10


# ----------------------------------------------------------------------------------------------
# Reading road files
# ----------------------------------------------------------------------------------------------


def read_roads(path: PathLike, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read road centre lines from a Shapefile, GeoPackage (or other GDAL vector file) or OSM XML.

    Args:
        path: ``.shp`` (with its ``.shx`` and ``.dbf`` next to it), ``.gpkg`` or any vector format
            GDAL reads; ``.osm`` / ``.xml`` files are parsed by ``read_osm_xml`` (ways with a
            ``highway`` tag, split at junctions).
        layer: Layer to read. If omitted and the file has several layers, the first layer whose
            geometry type is (Multi)LineString is read and a ``UserWarning`` names it.

    Returns:
        GeoDataFrame with one LineString per row (MultiLineStrings are exploded into their parts,
        null and empty geometries dropped, non-line features dropped with a warning), the file's
        attribute columns, a fresh 0..n-1 index and the file's CRS (EPSG:4326 for OSM XML).

    Raises:
        StgeoError: the file is missing, empty (0 bytes) or unreadable; a Shapefile lacks its
            ``.shx`` or ``.dbf``; the layer does not exist, has no features, has no CRS or holds
            no line features; ``layer`` is given for an OSM XML file.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in _OSM_SUFFIXES:
        if layer is not None:
            raise StgeoError(
                f"{path} is an OSM XML file, which has no layers; call read_roads without layer={layer!r}."
            )
        return read_osm_xml(path)
    return _clean_lines(read_vector(path, layer, prefer="LineString"), f"{path}").reset_index(drop=True)


def read_vector(path: PathLike, layer: str | None = None, prefer: str = "LineString") -> gpd.GeoDataFrame:
    """Read one layer of a GDAL vector file (Shapefile, GeoPackage, GeoJSON ...) with its CRS.

    Args:
        path: the file; a Shapefile needs its ``.shx`` and ``.dbf`` beside it.
        layer: layer name; if omitted in a multi-layer file, the first layer whose geometry type
            contains ``prefer`` (e.g. ``"LineString"``, ``"Point"``) is read, with a warning.

    Raises:
        StgeoError: missing/empty/damaged file, missing sidecar, unknown layer, no features, no CRS.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() == ".shp":
        _check_shapefile_sidecars(path)
    layer = _pick_layer(path, layer, prefer)
    where = f"layer {layer!r} of {path}"
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (DataSourceError, DataLayerError) as exc:
        raise StgeoError(
            f"Cannot read {where}: {exc}. The file may be damaged or incompletely copied; "
            "open it in QGIS to check, or export the layer again."
        ) from exc
    if len(gdf) == 0:
        raise StgeoError(f"{where} has no features; choose the layer or file that holds the data.")
    if gdf.crs is None:
        prj_hint = ""
        if path.suffix.lower() == ".shp" and not _sidecar_exists(path, ".prj"):
            prj_hint = f" (its projection file {path.with_suffix('.prj').name} is missing)"
        raise StgeoError(
            f"{where} has no CRS{prj_hint}; set one, e.g. in QGIS Layer Properties > Source, "
            "or gdf.set_crs(...) and save the file again."
        )
    return gdf


def read_osm_xml(
    path: PathLike,
    highway_types: str | Iterable[str] | None = None,
    split_at_junctions: bool = True,
) -> gpd.GeoDataFrame:
    """Read the roads (ways with a ``highway`` tag) of an OpenStreetMap XML file.

    The file is streamed with ``xml.etree.ElementTree.iterparse`` and each element is freed once
    read, so memory grows with the number of nodes' coordinates, not with the file's text.

    Args:
        path: OSM XML (``.osm``) file, e.g. an export from openstreetmap.org, JOSM or Overpass.
        highway_types: Keep only these ``highway`` values (e.g. ``{"primary", "residential"}``,
            or a single string); ``None`` keeps every way that has a ``highway`` tag.
        split_at_junctions: Split each way at the nodes it shares with other kept ways (and at
            nodes it visits twice). OSM ways often cross at interior nodes, while ``road_graph``
            joins lines only at their ends, so keep this on when the lines feed a road graph.
            Pieces of one way repeat its ``osm_id``.

    Returns:
        GeoDataFrame in EPSG:4326 with columns ``osm_id`` (int64), ``highway``, ``name`` (None
        if untagged), ``oneway`` (the tag value; ``"yes"`` where OSM implies it for roundabouts
        and motorways, else None) and LineString ``geometry``. Ways whose nodes are partly
        missing from the file (clipped extracts) keep their runs of present nodes; a
        ``UserWarning`` says how many were affected.

    Raises:
        StgeoError: the file is missing, empty, not well-formed XML, not OSM XML (root element
            is not ``<osm>``), has invalid ids or coordinates, or contains no (matching) roads.
    """
    path = Path(path)
    _check_file(path)
    wanted = _highway_filter(highway_types)
    coords: dict[int, tuple[float, float]] = {}
    ways: list[tuple[int, list[int], str, str | None, str | None]] = []
    types_seen: Counter[str] = Counter()
    root = None
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            if root is None:
                root = elem
                if elem.tag != "osm":
                    raise StgeoError(
                        f"{path} is XML but not OpenStreetMap XML: its root element is <{elem.tag}>, "
                        "not <osm>. Export the area from openstreetmap.org, JOSM or Overpass as .osm."
                    )
                continue
            # <nd>/<tag> children must survive until their parent's end event, so only whole
            # top-level elements are handled (and freed).
            if event != "end" or elem.tag not in ("node", "way", "relation"):
                continue
            if elem.tag == "node":
                coords[_osm_int(elem, "id", path)] = (_osm_float(elem, "lon", path), _osm_float(elem, "lat", path))
            elif elem.tag == "way":
                tags = {t.get("k"): t.get("v") for t in elem.iter("tag")}
                highway = tags.get("highway")
                if highway is not None:
                    types_seen[highway] += 1
                    if wanted is None or highway in wanted:
                        refs = [_osm_int(nd, "ref", path) for nd in elem.iter("nd")]
                        ways.append((_osm_int(elem, "id", path), refs, highway, tags.get("name"), _osm_oneway(tags)))
            elem.clear()
            root.clear()
    except ET.ParseError as exc:
        raise StgeoError(
            f"{path} is not well-formed XML ({exc}); the file may be truncated or not an OSM XML "
            "export. Download or export it again."
        ) from exc

    if not ways:
        if types_seen:
            present = ", ".join(f"{k} ({v})" for k, v in types_seen.most_common())
            raise StgeoError(
                f"{path} has no roads of the requested highway_types {sorted(wanted or ())}; "
                f"types present: {present}."
            )
        raise StgeoError(
            f"{path} has no roads: no <way> carries a highway tag. Check that the export covers "
            "an area with streets and includes ways, not only nodes."
        )

    runs, clipped = _present_node_runs(ways, coords)
    if clipped:
        warnings.warn(
            f"{clipped} road way(s) in {path} reference nodes missing from the file (a clipped "
            "extract); only their parts made of present nodes are kept.",
            UserWarning,
            stacklevel=2,
        )
    if not runs:
        raise StgeoError(
            f"{path} has {len(ways)} road way(s), but none has two of its nodes in the file; "
            "export the ways together with their nodes (e.g. Overpass 'out body; >; out skel;')."
        )

    usage = Counter(ref for _, run in runs for ref in run)
    records = []
    for way_index, run in runs:
        osm_id, _, highway, name, oneway = ways[way_index]
        for piece in _split_run(run, usage) if split_at_junctions else [run]:
            records.append((osm_id, highway, name, oneway, shapely.LineString([coords[r] for r in piece])))
    frame = pd.DataFrame(records, columns=["osm_id", "highway", "name", "oneway", "geometry"])
    frame["osm_id"] = frame["osm_id"].astype("int64")
    return gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise StgeoError(f"File not found: {path}. Check the path (relative paths start at {Path.cwd()}).")
    if not path.is_file():
        raise StgeoError(f"{path} is a folder, not a file; pass the .shp, .gpkg, .osm, .csv or .npy file inside it.")
    if path.stat().st_size == 0:
        raise StgeoError(f"{path} is empty (0 bytes); the export or copy probably failed. Create it again.")


def _sidecar_exists(path: Path, suffix: str) -> bool:
    return any(path.with_suffix(s).exists() for s in (suffix, suffix.upper()))


def _check_shapefile_sidecars(path: Path) -> None:
    # GDAL fails with a cryptic message without the .shx and silently drops every attribute
    # without the .dbf, so both are checked up front.
    for suffix, role in ((".shx", "index"), (".dbf", "attribute table")):
        if not _sidecar_exists(path, suffix):
            raise StgeoError(
                f"Shapefile {path} is missing its {role} file {path.with_suffix(suffix).name}. A Shapefile "
                "is a set of files with the same name (.shp, .shx, .dbf, .prj); copy all of them into "
                f"{path.parent}, or export the layer as a GeoPackage instead."
            )


def _pick_layer(path: Path, layer: str | None, prefer: str = "LineString") -> str:
    try:
        layers = pyogrio.list_layers(path)
    except DataSourceError as exc:
        raise StgeoError(
            f"{path} cannot be read as a vector file ({exc}). Check that it is a complete Shapefile, "
            "GeoPackage, GeoJSON or OSM XML file and not damaged or still being written; open it in QGIS to "
            "check, or export it again."
        ) from exc
    names = [str(name) for name, _ in layers]
    if not names:
        raise StgeoError(f"{path} contains no layers; export the road lines into it again.")
    if layer is not None:
        if layer not in names:
            raise StgeoError(f"{path} has no layer {layer!r}. {did_you_mean(layer, names)}")
        return layer
    if len(names) == 1:
        return names[0]
    line_layers = [str(name) for name, geom_type in layers if geom_type is not None and prefer in str(geom_type)]
    listing = ", ".join(f"{name} ({geom_type})" for name, geom_type in layers)
    if not line_layers:
        raise StgeoError(
            f"{path} has several layers ({listing}) and none holds {prefer} features; pass layer=... to name one."
        )
    warnings.warn(
        f"{path} has {len(names)} layers ({listing}); reading the first {prefer} layer {line_layers[0]!r}. "
        "Pass layer=... (data.roads_layer or data.sensors_layer in a config) to choose another.",
        UserWarning,
        stacklevel=3,
    )
    return line_layers[0]


def _clean_lines(gdf: gpd.GeoDataFrame, where: str) -> gpd.GeoDataFrame:
    """One LineString per row; keeps the original index labels (repeated for exploded parts)."""
    geom = gdf.geometry
    gdf = gdf[~(geom.isna() | geom.is_empty)]
    if len(gdf) == 0:
        raise StgeoError(f"{where} has no line features: every geometry is missing or empty.")
    gdf = gdf.explode(index_parts=False)
    gdf = gdf[~gdf.geometry.is_empty]
    is_line = (gdf.geom_type == "LineString").to_numpy()
    if not is_line.any():
        found = ", ".join(f"{k}: {v}" for k, v in gdf.geom_type.value_counts().items())
        raise StgeoError(
            f"{where} has no line features (found {found}); roads must be LineString or MultiLineString."
        )
    if not is_line.all():
        found = ", ".join(f"{k}: {v}" for k, v in gdf.geom_type[~is_line].value_counts().items())
        warnings.warn(f"{where}: dropped non-line features ({found}).", UserWarning, stacklevel=3)
    return gdf[is_line]


def _highway_filter(highway_types: str | Iterable[str] | None) -> set[str] | None:
    if highway_types is None:
        return None
    # A bare string is one type; iterating it would yield single letters.
    wanted = {highway_types} if isinstance(highway_types, str) else set(highway_types)
    if not wanted or not all(isinstance(t, str) for t in wanted):
        raise StgeoError(
            f"highway_types must be None, a string or a non-empty collection of strings, got {highway_types!r}."
        )
    return wanted


def _osm_int(elem: ET.Element, attr: str, path: Path) -> int:
    try:
        return int(elem.get(attr))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StgeoError(
            f"A <{elem.tag}> in {path} has a missing or non-integer {attr}={elem.get(attr)!r}; "
            "the file is not valid OSM XML. Download or export it again."
        ) from None


def _osm_float(elem: ET.Element, attr: str, path: Path) -> float:
    try:
        return float(elem.get(attr))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StgeoError(
            f"<{elem.tag} id={elem.get('id')!r}> in {path} has a missing or non-numeric {attr}={elem.get(attr)!r}; "
            "the file is not valid OSM XML. Download or export it again."
        ) from None


def _osm_oneway(tags: dict[str, str]) -> str | None:
    oneway = tags.get("oneway")
    if oneway is None and (
        tags.get("junction") in _IMPLIED_ONEWAY_JUNCTIONS or tags.get("highway") in _IMPLIED_ONEWAY_HIGHWAYS
    ):
        return "yes"
    return oneway


def _present_node_runs(
    ways: Sequence[tuple[int, list[int], str, str | None, str | None]], coords: dict[int, tuple[float, float]]
) -> tuple[list[tuple[int, list[int]]], int]:
    """Split each way's node list into maximal runs of nodes present in the file (>= 2 nodes each).

    Joining the nodes on either side of a missing one would invent a straight road that does not
    exist, so missing nodes break the way instead. Repeated consecutive refs are dropped.
    """
    runs: list[tuple[int, list[int]]] = []
    clipped = 0
    for way_index, (_, refs, *_) in enumerate(ways):
        clipped += any(r not in coords for r in refs)
        run: list[int] = []
        for ref in [*refs, None]:
            if ref is not None and ref in coords:
                if not run or run[-1] != ref:
                    run.append(ref)
                continue
            if len(run) >= 2:
                runs.append((way_index, run))
            run = []
    return runs, clipped


def _split_run(run: list[int], usage: Counter[int]) -> list[list[int]]:
    pieces, start = [], 0
    for i in range(1, len(run) - 1):
        if usage[run[i]] > 1:
            pieces.append(run[start : i + 1])
            start = i
    pieces.append(run[start:])
    return pieces


# ----------------------------------------------------------------------------------------------
# Metric CRS, road graph, snapping, network distances
# ----------------------------------------------------------------------------------------------


def metric_crs(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> pyproj.CRS:
    """Pick a projected CRS in metres in which lengths of ``gdf``'s data are true to about 1 %.

    Args:
        gdf: Geometries with a CRS.

    Returns:
        ``gdf.crs`` if it is projected, has metre axes and its scale error at the centre of the
        data is below 1 %; otherwise the UTM zone of the data (``estimate_utm_crs``). Web Mercator
        (EPSG:3857) is therefore replaced: its metres grow by 1/cos(latitude).

    Raises:
        StgeoError: ``gdf`` has no CRS, or no non-empty geometry to locate a UTM zone from.
    """
    crs = gdf.crs
    if crs is None:
        raise StgeoError(
            "The geometries have no CRS; set one, e.g. gdf.set_crs('EPSG:4326') for longitude/latitude, "
            "or in QGIS Layer Properties > Source."
        )
    bounds = gdf.total_bounds
    if not np.all(np.isfinite(bounds)):
        raise StgeoError("Cannot choose a metric CRS: the geometries are all empty; check the input file.")
    if crs.is_projected and all(axis.unit_name in ("metre", "meter") for axis in crs.axis_info[:2]):
        to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lon, lat = to_lonlat.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
        try:
            factors = pyproj.Proj(crs).get_factors(lon, lat)
            scale_error = max(abs(factors.meridional_scale - 1), abs(factors.parallel_scale - 1))
        except pyproj.exceptions.ProjError:
            # PROJ cannot give scale factors for some CRSs; fall back to UTM, which is always true.
            scale_error = np.inf
        if scale_error < _MAX_SCALE_ERROR:
            return crs
    try:
        return gdf.estimate_utm_crs()
    except (RuntimeError, ValueError, IndexError, pyproj.exceptions.ProjError):
        # outside UTM's latitudes (80 S to 84 N), or coordinates outside the area of their CRS
        raise StgeoError(
            f"Cannot choose a metric CRS for data within {np.round(bounds, 6).tolist()} ({crs.name}): UTM zones "
            "cover latitudes 80 S to 84 N, and the coordinates must lie in the area of their CRS. Check the "
            "coordinates and their CRS, or reproject the data to a projected CRS in metres first."
        ) from None


def road_graph(
    roads: gpd.GeoDataFrame | gpd.GeoSeries,
    crs: pyproj.CRS | str | int | None = None,
    directed: bool = False,
) -> nx.MultiGraph | nx.MultiDiGraph:
    """Build a road graph in a metric CRS whose nodes are line endpoints.

    Lines are joined only where their endpoints coincide (to 1 cm), so the roads must be split
    at junctions (``read_osm_xml`` does this for OSM; most GIS road layers already are).

    Args:
        roads: (Multi)LineStrings with a CRS, e.g. from ``read_roads``. An optional ``oneway``
            column is honoured when ``directed``: ``yes``/``true``/``1``/True -> only along the
            line's drawing direction, ``-1``/``reverse`` -> only against it, anything else -> both.
        crs: Projected metre CRS to build in; default ``metric_crs(roads)``.
        directed: Return a ``MultiDiGraph`` that honours ``oneway`` (two-way roads get an edge in
            each direction); default an undirected ``MultiGraph``.

    Returns:
        Graph with ``graph["crs"]`` (pyproj.CRS); nodes are ``(x, y)`` tuples in that CRS rounded
        to 0.01 m with ``x``/``y`` attributes; each edge's key is the line's row position in the
        exploded roads (equal to the index of ``read_roads`` output) and it carries ``length``
        (m), ``geometry`` (LineString, drawn from the edge's source for directed graphs) and
        ``road`` (the roads' index label).

    Raises:
        StgeoError: roads are not a GeoDataFrame/GeoSeries, have no CRS or no lines; ``crs`` is
            not a projected metre CRS.
    """
    lines, metric = _metric_lines(roads, crs)
    return _graph_from_lines(lines, metric, directed)


def snap_points(
    graph_or_roads: nx.Graph | gpd.GeoDataFrame | gpd.GeoSeries,
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    max_snap_distance: float | None = None,
) -> pd.DataFrame:
    """Snap each point to its nearest road edge.

    Args:
        graph_or_roads: A graph from ``road_graph`` (edges need ``geometry``, the graph a ``crs``
            attribute) or road lines with a CRS (snapped in ``metric_crs(roads)``).
        points: Point geometries with a CRS (any CRS; reprojected). The index is taken as the
            point (sensor) ids, e.g. ``sensors.set_index("sensor_id")``.
        max_snap_distance: Largest allowed distance (m) from a point to its road; ``None`` allows any.

    Returns:
        DataFrame indexed like ``points`` with columns ``u``, ``v`` (nodes at the start and end
        of the edge's geometry), ``key`` (edge key; None for non-multigraphs), ``road`` (index
        label of the source road row), ``position_m`` (metres along the edge's geometry from
        ``u`` to the projected point) and ``distance_m`` (metres from the point to the road).
        On a directed graph a two-way road is two edges; the point lands on one of them.

    Raises:
        StgeoError: invalid roads or graph (no CRS, no geometry), points without CRS or with
            missing / non-Point geometry, or points farther than ``max_snap_distance`` (named).
    """
    if isinstance(graph_or_roads, nx.Graph):
        geoms, starts, ends, keys, road_labels, crs = _graph_edges(graph_or_roads)
    else:
        lines, crs = _metric_lines(graph_or_roads, None)
        geoms = lines.geometry.to_numpy()
        starts, ends = list(lines["u"]), list(lines["v"])
        keys, road_labels = list(range(len(lines))), list(lines["road"])
    xy = _metric_points(points, crs, "points")
    nearest, position, distance = _snap(geoms, xy, max_snap_distance, points.index, "points")
    return pd.DataFrame(
        {
            "u": [starts[i] for i in nearest],
            "v": [ends[i] for i in nearest],
            "key": [keys[i] for i in nearest],
            "road": [road_labels[i] for i in nearest],
            "position_m": position,
            "distance_m": distance,
        },
        index=points.index,
    )


def network_distances(
    roads: gpd.GeoDataFrame | gpd.GeoSeries,
    sensors: gpd.GeoDataFrame | gpd.GeoSeries,
    directed: bool = False,
    cutoff: float | None = None,
    max_snap_distance: float | None = None,
) -> np.ndarray:
    """Shortest distances along the road network between every pair of sensors.

    Each sensor is snapped to its nearest road line and inserted there as a node that splits the
    line, so a trip starts and ends at the sensors' snapped positions; two sensors on the same
    line are linked by the stretch of road between them. The snap offsets (sensor to road) are
    not added. One Dijkstra search per sensor (networkx).

    Args:
        roads: Road lines with a CRS (see ``road_graph``; ``oneway`` is used when ``directed``).
        sensors: N Point geometries with a CRS, which may differ from the roads' CRS; both are
            reprojected to ``metric_crs(roads)``. The index names sensors in error messages.
        directed: Honour ``oneway``; then ``D[i, j]`` is the distance from sensor i to sensor j
            and the matrix need not be symmetric.
        cutoff: Longest distance (m) searched; longer pairs are ``inf``. Speeds up large networks.
        max_snap_distance: Largest allowed distance (m) from a sensor to its road; ``None`` allows any.

    Returns:
        float64 array (N, N) of metres, sensors in the order of ``sensors``; 0 on the diagonal,
        ``inf`` for unreachable pairs (or beyond ``cutoff``).

    Raises:
        StgeoError: invalid roads or sensors (no CRS, no lines, non-Point sensors), or sensors
            farther than ``max_snap_distance`` from every road (named by index).
    """
    lines, crs = _metric_lines(roads, None)
    xy = _metric_points(sensors, crs, "sensors")
    nearest, position, _ = _snap(lines.geometry.to_numpy(), xy, max_snap_distance, sensors.index, "sensors")
    graph = _graph_from_lines(lines, crs, directed)

    order = np.lexsort((position, nearest))
    for key in np.unique(nearest):
        on_line = order[nearest[order] == key]
        u, v, length, direction = lines.loc[key, ["u", "v", "length", "direction"]]
        nodes = [u, *(("sensor", int(s)) for s in on_line), v]
        offsets = np.concatenate([[0.0], position[on_line], [length]])
        # Snapped positions can exceed the line length by rounding error; Dijkstra needs >= 0.
        steps = np.maximum(np.diff(offsets), 0.0)
        if not directed or direction >= 0:
            graph.remove_edge(u, v, key=key)
            for a, b, step in zip(nodes[:-1], nodes[1:], steps):
                graph.add_edge(a, b, key=key, length=float(step))
        if directed and direction <= 0:
            graph.remove_edge(v, u, key=key)
            for a, b, step in zip(nodes[:-1], nodes[1:], steps):
                graph.add_edge(b, a, key=key, length=float(step))

    n = len(xy)
    dist = np.full((n, n), np.inf)
    for i in range(n):
        reached = nx.single_source_dijkstra_path_length(graph, ("sensor", i), cutoff=cutoff, weight="length")
        for j in range(n):
            dist[i, j] = reached.get(("sensor", j), np.inf)
    return dist


def _metric_lines(
    roads: gpd.GeoDataFrame | gpd.GeoSeries, crs: pyproj.CRS | str | int | None
) -> tuple[gpd.GeoDataFrame, pyproj.CRS]:
    """Roads as one non-zero-length LineString per row in a metric CRS, with endpoint nodes.

    Columns: ``road`` (source index label), ``direction`` (1 forward only, -1 reverse only,
    0 both), ``u``/``v`` (rounded start/end node), ``length`` (m), geometry; index 0..n-1.
    """
    if not isinstance(roads, (gpd.GeoDataFrame, gpd.GeoSeries)):
        raise StgeoError(
            f"roads must be a GeoDataFrame of LineStrings (e.g. from read_roads), got {type(roads).__name__}."
        )
    if roads.crs is None:
        raise StgeoError(
            "The roads have no CRS; set one, e.g. in QGIS Layer Properties > Source, or gdf.set_crs(...)."
        )
    frame = roads.to_frame() if isinstance(roads, gpd.GeoSeries) else roads
    lines = _clean_lines(frame, "the roads")
    if crs is None:
        crs = metric_crs(lines)
    else:
        crs = pyproj.CRS.from_user_input(crs)
        if not (crs.is_projected and all(a.unit_name in ("metre", "meter") for a in crs.axis_info[:2])):
            raise StgeoError(
                f"crs={crs.to_string()} is not a projected CRS in metres; pass e.g. a UTM zone, or "
                "crs=None to pick one automatically."
            )
    geoms = lines.geometry.to_crs(crs).to_numpy()
    direction = _oneway_direction(lines["oneway"]) if "oneway" in lines.columns else np.zeros(len(lines), np.int8)
    length = shapely.length(geoms)
    keep = length > 0
    geoms = geoms[keep]
    starts = np.round(shapely.get_coordinates(shapely.get_point(geoms, 0)), _NODE_DECIMALS)
    ends = np.round(shapely.get_coordinates(shapely.get_point(geoms, -1)), _NODE_DECIMALS)
    out = gpd.GeoDataFrame(
        {
            "road": lines.index.to_numpy()[keep],
            "direction": direction[keep],
            "u": [(float(x), float(y)) for x, y in starts],
            "v": [(float(x), float(y)) for x, y in ends],
            "length": length[keep],
        },
        geometry=geoms,
        crs=crs,
    )
    return out, crs


def _oneway_direction(oneway: pd.Series) -> np.ndarray:
    text = oneway.map(lambda value: str(value).strip().lower() if pd.notna(value) else "")
    # bool True prints as "true" and numeric 1 / -1 as "1" / "-1" (or "1.0" / "-1.0" from float columns).
    text = text.replace({"1.0": "1", "-1.0": "-1"})
    forward = text.isin(_ONEWAY_FORWARD).to_numpy()
    reverse = text.isin(_ONEWAY_REVERSE).to_numpy()
    return np.where(forward, 1, np.where(reverse, -1, 0)).astype(np.int8)


def _graph_from_lines(lines: gpd.GeoDataFrame, crs: pyproj.CRS, directed: bool) -> nx.MultiGraph | nx.MultiDiGraph:
    graph: nx.MultiGraph | nx.MultiDiGraph = nx.MultiDiGraph(crs=crs) if directed else nx.MultiGraph(crs=crs)
    for key, (u, v, length, geom, road, direction) in enumerate(
        zip(lines["u"], lines["v"], lines["length"], lines.geometry, lines["road"], lines["direction"])
    ):
        if not directed or direction >= 0:
            graph.add_edge(u, v, key=key, length=float(length), geometry=geom, road=road)
        if directed and direction <= 0:
            graph.add_edge(v, u, key=key, length=float(length), geometry=geom.reverse(), road=road)
    for node, data in graph.nodes(data=True):
        data["x"], data["y"] = node
    return graph


def _graph_edges(graph: nx.Graph) -> tuple[np.ndarray, list, list, list, list, pyproj.CRS]:
    crs = graph.graph.get("crs")
    if crs is None:
        raise StgeoError("The graph has no 'crs' attribute; build it with road_graph(roads).")
    geoms, starts, ends, keys, road_labels = [], [], [], [], []
    if graph.is_multigraph():
        edges = graph.edges(keys=True, data=True)
    else:
        edges = ((u, v, None, data) for u, v, data in graph.edges(data=True))
    for u, v, key, data in edges:
        geom = data.get("geometry")
        if geom is None:
            raise StgeoError(f"Graph edge ({u}, {v}) has no 'geometry'; build the graph with road_graph(roads).")
        first = tuple(np.round(shapely.get_coordinates(shapely.get_point(geom, 0))[0], _NODE_DECIMALS))
        # An undirected graph may list an edge as (v, u); report it in the geometry's direction.
        if not graph.is_directed() and first == v and first != u:
            u, v = v, u
        geoms.append(geom)
        starts.append(u)
        ends.append(v)
        keys.append(key)
        road_labels.append(data.get("road"))
    if not geoms:
        raise StgeoError("The graph has no edges to snap to; build it from road lines with road_graph(roads).")
    return np.asarray(geoms, dtype=object), starts, ends, keys, road_labels, pyproj.CRS.from_user_input(crs)


def _metric_points(points: gpd.GeoDataFrame | gpd.GeoSeries, crs: pyproj.CRS, what: str) -> np.ndarray:
    """Point geometries of ``points`` reprojected to ``crs``, as a shapely array."""
    return _projected(_valid_points(points, what), crs, points.index, what).to_numpy()


def _projected(geom: gpd.GeoSeries, crs: pyproj.CRS, ids: pd.Index, what: str) -> gpd.GeoSeries:
    """``geom`` in ``crs``; StgeoError naming the points that cannot be projected there."""
    out = geom.to_crs(crs)
    bad = ~np.isfinite(shapely.get_coordinates(out.to_numpy())).all(axis=1)
    if bad.any():
        raise StgeoError(
            f"The {what} {_name_ids(ids[bad])} cannot be projected from {geom.crs.name} to {crs.name}: their "
            "coordinates lie outside the area of their CRS. Check the coordinates and the CRS they are given in."
        )
    return out


def _valid_points(points: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> gpd.GeoSeries:
    if not isinstance(points, (gpd.GeoDataFrame, gpd.GeoSeries)):
        raise StgeoError(f"The {what} must be a GeoDataFrame of Points, got {type(points).__name__}.")
    if points.crs is None:
        raise StgeoError(
            f"The {what} have no CRS; set one with gdf.set_crs(...), e.g. 'EPSG:4326' for longitude/latitude."
        )
    if len(points) == 0:
        raise StgeoError(f"The {what} table is empty; there is nothing to place on the roads.")
    geom = points.geometry
    bad = (geom.isna() | geom.is_empty | (geom.geom_type != "Point")).to_numpy()
    if bad.any():
        raise StgeoError(
            f"The {what} {_name_ids(points.index[bad])} have a missing, empty or non-Point geometry; "
            "give each one a Point location."
        )
    bad = ~np.isfinite(shapely.get_coordinates(geom.to_numpy())).all(axis=1)
    if bad.any():
        raise StgeoError(
            f"The {what} {_name_ids(points.index[bad])} have infinite or NaN coordinates; give each one a real location."
        )
    return geom


def _snap(
    lines: np.ndarray, points: np.ndarray, max_snap_distance: float | None, ids: pd.Index, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest line per point: (line position, metres along it, metres from the point)."""
    (point_idx, line_idx), distance = shapely.STRtree(lines).query_nearest(
        points, all_matches=False, return_distance=True
    )
    order = np.argsort(point_idx)
    line_idx, distance = line_idx[order], distance[order]
    if max_snap_distance is not None:
        too_far = distance > max_snap_distance
        if too_far.any():
            raise StgeoError(
                f"The {what} {_name_ids(ids[too_far])} are more than max_snap_distance={max_snap_distance} m "
                f"from every road (farthest {distance.max():.1f} m). Check the {what}' CRS and coordinates, "
                "use a road file that covers them, or raise max_snap_distance."
            )
    position = shapely.line_locate_point(lines[line_idx], points)
    return line_idx, position, distance


def _name_ids(ids: Iterable) -> str:
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:_MAX_IDS_IN_MESSAGE])
    more = f" and {len(ids) - _MAX_IDS_IN_MESSAGE} more" if len(ids) > _MAX_IDS_IN_MESSAGE else ""
    return f"[{shown}{more}]"


# ----------------------------------------------------------------------------------------------
# Adjacency matrices
# ----------------------------------------------------------------------------------------------


def gaussian_kernel_adjacency(dist: np.ndarray, threshold: float = 0.1, sigma: float | None = None) -> np.ndarray:
    """Thresholded Gaussian kernel of distances, as in DCRNN.

    ``W_ij = exp(-(d_ij / sigma)^2)``, entries below ``threshold`` set to 0, diagonal 1, following
    Li, Yu, Shahabi & Liu, "Diffusion Convolutional Recurrent Neural Network: Data-Driven Traffic
    Forecasting", ICLR 2018 (Sec. 4.1; ``gen_adj_mx.py`` of the reference code).

    Args:
        dist: (N, N) non-negative distances (e.g. metres from ``network_distances``); ``inf``
            means unreachable and gives weight 0. May be asymmetric (directed networks).
        threshold: Weights below this become 0 (sparsifies the graph); in [0, 1].
        sigma: Kernel width, same unit as ``dist``. Default: the standard deviation of all finite
            entries of ``dist`` (diagonal included), as the reference code does.

    Returns:
        float64 (N, N) weights in [0, 1].

    Raises:
        StgeoError: ``dist`` not a square numeric matrix, has NaN or negative entries;
            ``threshold`` outside [0, 1]; ``sigma`` not positive, or not estimable because all
            finite distances are equal.
    """
    d = _as_square_matrix(dist, "distance matrix")
    if (d < 0).any():
        raise StgeoError("The distance matrix has negative entries; distances must be >= 0 (use inf for unreachable).")
    if not 0 <= threshold <= 1:
        raise StgeoError(f"threshold={threshold} must be in [0, 1]; DCRNN uses 0.1.")
    if sigma is None:
        finite = d[np.isfinite(d)]
        with np.errstate(over="ignore", invalid="ignore"):
            sigma = float(finite.std()) if finite.size else 0.0
        if not np.isfinite(sigma):
            raise StgeoError(
                "Cannot estimate sigma: the distances are too large (their spread overflows); pass sigma=... in the "
                "distances' unit, or give the distances in a larger unit."
            )
        if not sigma > 0:
            raise StgeoError(
                "Cannot estimate sigma: the finite distances are all equal (or there are none); pass sigma=... in "
                "the distances' unit."
            )
    elif not 0 < sigma < np.inf:
        raise StgeoError(f"sigma={sigma} must be a positive finite number (same unit as the distances).")
    with np.errstate(over="ignore", under="ignore"):
        weights = np.exp(-np.square(d / sigma))
    weights[weights < threshold] = 0.0
    np.fill_diagonal(weights, 1.0)
    return weights


def knn_adjacency(points: gpd.GeoDataFrame | gpd.GeoSeries, k: int = 8, sigma: float | None = None) -> np.ndarray:
    """Symmetric Gaussian-weighted k-nearest-neighbour adjacency by straight-line distance.

    For sensors without a road network. Distances are measured in ``metric_crs(points)``; each
    point links to its k nearest others with weight ``exp(-(d / sigma)^2)``, and the matrix is
    made symmetric with the element-wise maximum (i~j if either is among the other's k nearest).

    Args:
        points: N >= 2 Point geometries with a CRS.
        k: Neighbours per point; clipped to N - 1.
        sigma: Kernel width in metres. Default: the mean of the selected neighbour distances (the
            standard deviation used by ``gaussian_kernel_adjacency`` is 0 on regular layouts).

    Returns:
        float64 (N, N) symmetric weights in [0, 1], diagonal 1, zero outside the kNN pairs.

    Raises:
        StgeoError: points without CRS or with non-Point geometry, fewer than 2 points, k < 1,
            ``sigma`` not positive, or all points at the same place.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise StgeoError(f"k={k!r} must be a positive integer (neighbours per point).")
    geom = _valid_points(points, "points")
    xy = shapely.get_coordinates(_projected(geom, metric_crs(geom), points.index, "points").to_numpy())
    n = len(xy)
    if n < 2:
        raise StgeoError(f"knn_adjacency needs at least 2 points, got {n}.")
    k = min(int(k), n - 1)
    dist, nbr = cKDTree(xy).query(xy, k=k + 1)
    if not np.isfinite(dist).all() or (nbr >= n).any():  # squared distances overflow: absurd coordinates
        raise StgeoError(
            f"The points are too far apart to measure (coordinates up to {np.abs(xy).max():g} m in "
            f"{geom.crs.name}); check the coordinates and the CRS they are given in."
        )
    # The point itself is normally the first hit, but among duplicate points the order of ties is
    # arbitrary, so drop it by index and keep the first k others.
    not_self = nbr != np.arange(n)[:, None]
    keep = not_self & (np.cumsum(not_self, axis=1) <= k)
    rows = np.broadcast_to(np.arange(n)[:, None], nbr.shape)[keep]
    cols, d = nbr[keep], dist[keep]
    if sigma is None:
        sigma = float(d.mean())
        if not sigma > 0:
            raise StgeoError("All points are at the same place; knn_adjacency needs distinct sensor locations.")
    elif not sigma > 0:
        raise StgeoError(f"sigma={sigma} must be positive (metres).")
    weights = np.zeros((n, n))
    weights[rows, cols] = np.exp(-np.square(d / sigma))
    weights = np.maximum(weights, weights.T)
    np.fill_diagonal(weights, 1.0)
    return weights


def read_adjacency_matrix(path: PathLike, n_expected: int | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Read a square adjacency (or distance) matrix from CSV or ``.npy``.

    CSV layout (comma-separated): the first row is a header of node ids if it holds any
    non-numeric cell or the table has one more row than columns (numeric ids); the first column
    is row labels if the remaining table has one more column than rows (a ``pandas.to_csv``
    with index). Row labels must match the header ids; without a header they are the ids.

    Args:
        path: ``.csv`` or ``.npy`` file (``.npy`` loaded with ``allow_pickle=False``).
        n_expected: Number of nodes the matrix must have (e.g. the number of sensors).

    Returns:
        ``(matrix, ids)``: float64 (N, N) with finite, non-negative entries; ``ids`` the node ids
        as strings from the header (or row labels), or None if the file has none.

    Raises:
        StgeoError: file missing, empty, unreadable or of another type; not square; size differs
            from ``n_expected``; non-numeric, NaN, infinite or negative entries; row labels that
            differ from the header; repeated ids.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        matrix, ids = _read_npy_matrix(path), None
    elif suffix == ".csv":
        matrix, ids = _read_csv_matrix(path)
    else:
        raise StgeoError(f"{path}: unsupported adjacency file type {path.suffix!r}; use .csv or .npy.")
    rows, cols = matrix.shape
    if rows != cols:
        raise StgeoError(
            f"The adjacency matrix in {path} is not square: {rows} rows x {cols} columns (after any header "
            "and row labels). It must have one row and one column per node."
        )
    if n_expected is not None and rows != n_expected:
        raise StgeoError(
            f"The adjacency matrix in {path} is {rows} x {cols}, but {n_expected} nodes were expected "
            "(one per sensor); use the matrix made for this sensor set."
        )
    if not np.all(np.isfinite(matrix)):
        raise StgeoError(f"The adjacency matrix in {path} has NaN or infinite entries; use 0 for 'no edge'.")
    if (matrix < 0).any():
        r, c = np.argwhere(matrix < 0)[0]
        raise StgeoError(
            f"The adjacency matrix in {path} has negative entries (first at row {r}, column {c}: "
            f"{matrix[r, c]}); weights must be >= 0."
        )
    return matrix, ids


def _read_npy_matrix(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickle: a .npy must not run code
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise StgeoError(
            f"{path} cannot be loaded as a numeric .npy array ({exc}); save it with np.save(path, matrix) "
            "from a float array."
        ) from exc
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise StgeoError(f"{path} is an .npz archive of several arrays; save the one matrix with np.save(path, matrix).")
    if arr.ndim != 2:
        raise StgeoError(f"The array in {path} has shape {arr.shape}; an adjacency matrix must be 2-D (N, N).")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
        raise StgeoError(f"The array in {path} has dtype {arr.dtype}, not real numbers; save a float matrix.")
    return arr.astype(np.float64)


def _read_csv_matrix(path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StgeoError(
            f"{path} is not a readable CSV matrix ({exc}); every row needs the same number of comma-separated values."
        ) from exc
    cells = table.to_numpy(dtype=object)
    numeric = np.vectorize(_is_number, otypes=[bool])(cells)
    n_rows, n_cols = cells.shape
    header = None
    if _looks_like_header(cells[0], numeric[0], n_rows, n_cols):
        header = [str(c).strip() for c in cells[0]]
        cells, numeric = cells[1:], numeric[1:]
        n_rows -= 1
    ids = header
    if n_cols == n_rows + 1:
        labels = [str(c).strip() for c in cells[:, 0]]
        cells, numeric = cells[:, 1:], numeric[:, 1:]
        if header is not None:
            ids = header[1:]
            if labels != ids:
                raise StgeoError(
                    f"In {path} the row labels (first column) differ from the column ids (header); "
                    "rows and columns must list the nodes in the same order."
                )
        else:
            ids = labels
    if not numeric.all():
        r, c = np.argwhere(~numeric)[0]
        file_row = r + 1 + (header is not None)
        file_col = c + 1 + (cells.shape[1] != n_cols)
        if not str(cells[r, c]).strip():
            raise StgeoError(
                f"{path} has an empty cell (NaN) at line {file_row}, column {file_col}; use 0 for 'no edge' "
                "(matrix cells must be numbers; a header row of ids is allowed)."
            )
        raise StgeoError(
            f"{path} has a non-numeric value {cells[r, c]!r} at line {file_row}, column {file_col}; "
            "matrix cells must be numbers (a header row of ids is allowed)."
        )
    if ids is not None:
        repeated = [i for i, count in Counter(ids).items() if count > 1]
        if repeated:
            raise StgeoError(f"{path} lists node ids more than once: {_name_ids(repeated)}; ids must be unique.")
    return cells.astype(np.float64), ids


def _looks_like_header(first: np.ndarray, numeric: np.ndarray, n_rows: int, n_cols: int) -> bool:
    """Is the first CSV row a header of node ids rather than a row of weights?

    Yes if at least half of its cells (a corner cell may be empty) are words such as 'S001', or
    if they are distinct whole numbers (ids such as 773869) and either the corner cell is empty
    or the table has one more row than columns. A row of numbers with one typo or one empty
    cell is data, so that the typo is reported where it is.
    """
    text = [str(c).strip() for c in first]
    words = sum(1 for t, ok in zip(text, numeric) if t and not ok)
    if words and 2 * words >= len(text) - 1:
        return True
    ids = text[1:] if text and text[0] == "" else text
    integer_ids = bool(ids) and all(t.isdigit() for t in ids) and len(set(ids)) == len(ids)
    return integer_ids and (text[0] == "" or n_rows == n_cols + 1)


def _is_number(cell: object) -> bool:
    try:
        float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def adjacency_to_edges(adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert a dense adjacency matrix to a torch_geometric-style edge list.

    Args:
        adj: (N, N) weights; ``adj[i, j] != 0`` is an edge from node i (source) to node j
            (target). The diagonal (self-loops) is ignored.

    Returns:
        ``(edge_index, edge_weight)``: int64 (2, E) with rows (source, target), in row-major
        order of ``adj``, and float32 (E,) weights.

    Raises:
        StgeoError: ``adj`` is not a square numeric matrix or has NaN or infinite entries.
    """
    a = _as_square_matrix(adj, "adjacency matrix")
    if not np.all(np.isfinite(a)):
        raise StgeoError("The adjacency matrix has infinite entries; weights must be finite (0 = no edge).")
    mask = a != 0
    np.fill_diagonal(mask, False)
    src, dst = np.nonzero(mask)
    weights = a[src, dst]
    if weights.size and np.abs(weights).max() > np.finfo(np.float32).max:
        raise StgeoError(
            f"The adjacency matrix has weights too large for 32-bit numbers (largest {np.abs(weights).max():g}); "
            "scale the weights, e.g. to [0, 1]."
        )
    return np.stack([src, dst]).astype(np.int64), weights.astype(np.float32)


def _as_square_matrix(a: np.ndarray, what: str) -> np.ndarray:
    try:
        m = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StgeoError(f"The {what} must be numeric: {exc}.") from exc
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise StgeoError(f"The {what} must be square (N, N), got shape {m.shape}.")
    if np.isnan(m).any():
        raise StgeoError(f"The {what} has NaN entries; use inf for unreachable distances or 0 for no edge.")
    return m
