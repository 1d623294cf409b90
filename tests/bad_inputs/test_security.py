"""Nothing untrusted runs: planted pickles in weights files, YAML tags, pickled .npy arrays, and
script payloads in every user string that reaches the HTML map (checked in headless Chromium)."""

from __future__ import annotations

import html
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch

from stgeo_kd.config import load_config, parse_override
from stgeo_kd.errors import StgeoError
from stgeo_kd.export.maps import forecast_map, save_map
from stgeo_kd.export.weights import load_state_dict, load_weights
from stgeo_kd.ingest.roads import read_adjacency_matrix

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "sample_city"
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless check skipped: /usr/bin/chromium is absent (Debian: apt-get install chromium)"
)


class _Planted:
    """Pickles to a call of os.mkdir(marker): loading it with plain pickle creates the folder."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------


def _plant(kind: str, path: Path, marker: Path) -> None:
    if kind == "raw_pickle":
        path.write_bytes(pickle.dumps(_Planted(marker)))
    elif kind == "pickle_in_state_dict":
        path.write_bytes(pickle.dumps({"weight": torch.zeros(2, 2), "bias": _Planted(marker)}))
    elif kind == "torch_zip":
        torch.save({"weight": torch.zeros(2, 2), "bias": _Planted(marker)}, path)
    else:
        raise ValueError(kind)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
@pytest.mark.parametrize("kind", ["raw_pickle", "pickle_in_state_dict", "torch_zip"])
def test_planted_pickle_in_weights_is_refused_and_never_runs(tmp_path, kind, suffix):
    marker = tmp_path / "PWNED"
    path = tmp_path / f"student{suffix}"
    _plant(kind, path, marker)
    with pytest.raises(StgeoError) as info:
        load_weights(path, torch.nn.Linear(2, 2))
    message = str(info.value)
    assert str(path) in message and "refused" in message and "torch.save(model.state_dict(), path)" in message
    assert not marker.exists(), "the planted payload ran"
    # the payload is live: an unsafe loader would have run it (this is what the refusal prevents)
    if kind == "torch_zip":
        # the pickle inside torch's zip, read by plain pickle with blank tensor storages
        import io
        import zipfile

        with zipfile.ZipFile(path) as archive:
            inner = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            unpickler = pickle.Unpickler(io.BytesIO(archive.read(inner)))
            unpickler.persistent_load = lambda pid: torch.storage.TypedStorage(int(pid[4]), dtype=pid[1].dtype, _internal=True)
            unpickler.load()
    else:
        pickle.loads(path.read_bytes())
    assert marker.is_dir()


def test_saved_weights_load_into_the_same_model(tmp_path):
    torch.manual_seed(0)
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    path = tmp_path / "student.pt"
    torch.save(source.state_dict(), path)
    assert load_weights(path, target) is target
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.pt", b"", ["empty", "save the weights again"]),
        ("cut.pt", "half", ["cannot be read", "damaged"]),
        ("list.pt", "list", ["does not hold a state dict", "torch.save"]),
        ("text.pt", b"not weights at all\n", ["refused"]),
    ],
)
def test_damaged_or_wrong_weights_files(tmp_path, name, content, words):
    path = tmp_path / name
    if content == "half":
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "list":
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(StgeoError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_weights_of_another_model_are_refused_with_a_hint(tmp_path):
    path = tmp_path / "teacher.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(StgeoError, match=r"do not fit the Linear model.*model_meta\.json"):
        load_weights(path, torch.nn.Linear(4, 2))
    with pytest.raises(StgeoError, match="not found"):
        load_weights(tmp_path / "missing.pt", torch.nn.Linear(3, 2))


def test_safetensors_weights(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    path = tmp_path / "student.safetensors"
    safetensors_torch.save_file(source.state_dict(), str(path))
    load_weights(path, target)
    assert torch.equal(source.weight, target.weight)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(StgeoError, match="not a readable safetensors file"):
        load_weights(bad, target)


def test_safetensors_without_the_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    path = tmp_path / "student.safetensors"
    path.write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    with pytest.raises(StgeoError, match="pip install safetensors"):
        load_weights(path, torch.nn.Linear(3, 2))


# ----------------------------------------------------------------------------------------------
# YAML and .npy
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.mkdir ['{marker}']",
        "!!python/object/new:os.mkdir ['{marker}']",
        "!!python/name:os.system",
        "!!python/object/apply:subprocess.check_output [['mkdir', '{marker}']]",
    ],
)
def test_yaml_python_tags_are_refused(tmp_path, tagged):
    marker = tmp_path / "PWNED"
    config = tmp_path / "evil.yaml"
    config.write_text(f"data:\n  readings: x.csv\n  name: {tagged.format(marker=marker)}\n")
    with pytest.raises(StgeoError, match="not valid YAML"):
        load_config(config)
    with pytest.raises(StgeoError, match="cannot read value"):
        parse_override(f"data.name={tagged.format(marker=marker)}")
    assert not marker.exists()


def test_pickled_npy_matrix_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "adj.npy"
    with path.open("wb") as f:  # a valid .npy header followed by a pickle, as np.save writes objects
        np.save(f, np.array([_Planted(marker), None], dtype=object), allow_pickle=True)
    with pytest.raises(StgeoError, match="cannot be loaded as a numeric .npy array"):
        read_adjacency_matrix(path)
    assert not marker.exists()


def _calls(source: str, name: str) -> list[str]:
    """The text of every call ``name(...)`` in ``source`` (balanced parentheses)."""
    out = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\(", source):
        depth, i = 0, match.end() - 1
        while i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(source[match.start() : i + 1])
    return out


def test_the_sources_use_no_unsafe_loader():
    """A policy check over stgeo_kd/: safe YAML, no pickle, torch.load and np.load without code."""
    problems = []
    for path in sorted((ROOT / "stgeo_kd").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        for pattern in (r"\byaml\.(load|unsafe_load|full_load|load_all)\(", r"\bpickle\.loads?\(", r"\bdill\.",
                        r"\bmarshal\.loads?\(", r"(?<![\w.])(eval|exec)\(", r"shell\s*=\s*True"):
            problems += [f"{where}: {m.group(0)}" for m in re.finditer(pattern, source)]
        problems += [f"{where}: {c}" for c in _calls(source, "torch.load") if "weights_only=True" not in c]
        problems += [f"{where}: {c}" for c in _calls(source, "np.load") if "allow_pickle=False" not in c]
    assert not problems, problems


# ----------------------------------------------------------------------------------------------
# HTML maps
# ----------------------------------------------------------------------------------------------

# If any payload ran it would set the page title to XSSED or an attribute on <html>; neither
# word appears in the payloads' text, so finding them in the page proves that script ran.
_TITLE = "document.title='XS'+'SED'"
_ATTR = "document.documentElement.setAttribute('data-xs'+'s','1')"
XSS_PAYLOADS = [
    f"<script>{_TITLE}</script>",
    f'<img src=x onerror="{_ATTR}">',
    f"<img src=x onerror={_TITLE}>",
    f'" onerror="{_TITLE}" x="',
    f"' onfocus='{_TITLE}' autofocus x='",
    f"</script><script>{_TITLE}</script>",
    f"`+({_TITLE})+`",
    "${" + _TITLE + "}",
    "\\u003cimg src=x onerror=" + _TITLE + "\\u003e",
    f'<svg onload="{_ATTR}"></svg>',
    f'<details open ontoggle="{_ATTR}"><summary>x</summary></details>',
    f"<iframe srcdoc=\"<script>parent.{_TITLE}</script>\"></iframe>",
    f"javascript:{_TITLE}",
    f'<a href="javascript:{_TITLE}" id="link">link</a>',
    f"<body onload=\"{_ATTR}\">",
    "{{ 7 * 7 }}<!--",
]


def _payload_map(tmp_path: Path) -> Path:
    """A map of the sample city whose ids, names, column names, units, title and road names
    carry the payloads."""
    sensors = pd.read_csv(SAMPLE / "sensors.csv", dtype={"sensor_id": str})
    rng = np.random.default_rng(0)
    n = len(sensors)
    pred = gpd.GeoDataFrame(
        {
            "sensor_id": sensors["sensor_id"],
            "name": sensors["name"],
            "mae_teacher": rng.uniform(1, 4, n),
            "mae_student": rng.uniform(1, 5, n),
            "mae_student_scratch": rng.uniform(1, 5, n),
            "observed_h3": rng.uniform(20, 60, n),
            "teacher_h3": rng.uniform(20, 60, n),
            "student_h3": rng.uniform(20, 60, n),
        },
        geometry=gpd.points_from_xy(sensors["lon"], sensors["lat"]),
        crs="EPSG:4326",
    )
    k = len(XSS_PAYLOADS)
    pred.loc[: k - 1, "sensor_id"] = XSS_PAYLOADS
    pred.loc[k : 2 * k - 1, "name"] = XSS_PAYLOADS
    pred[f"mae_{XSS_PAYLOADS[1]}"] = rng.uniform(1, 5, n)  # a model whose name is a payload
    pred[f"mae_{XSS_PAYLOADS[7]}"] = rng.uniform(1, 5, n)
    roads = gpd.read_file(SAMPLE / "roads.gpkg")
    roads.loc[: k - 1, "name"] = XSS_PAYLOADS
    m = forecast_map(pred, roads, title=XSS_PAYLOADS[0], units=XSS_PAYLOADS[3])
    return save_map(m, tmp_path / "map.html")


def test_map_html_holds_no_unescaped_payload(tmp_path):
    page = _payload_map(tmp_path).read_text(encoding="utf-8")
    for payload in XSS_PAYLOADS:
        if payload.startswith("{{"):
            assert "{{ 7 * 7 }}&lt;!--" in page or "{{ 7 * 7 }}" not in page  # never re-rendered as a template
            continue
        assert payload not in page, payload
    # ... yet every payload is on the page, as text
    assert html.escape(XSS_PAYLOADS[0]) in page and f"<title>{html.escape(XSS_PAYLOADS[0])}</title>" in page
    assert "XSSED" not in page and "data-xss" not in page


# Stands in for Leaflet, d3 and jQuery (the page loads them from CDNs, out of reach here): every
# string or object key the page hands to them is rendered with innerHTML, as Leaflet does with
# tooltips and layer names; L.DomUtil.create gives real elements (GeoJson tooltips fill them); and
# every function handed over (tooltip builders) is called once per GeoJSON feature seen.
_LEAFLET_STAND_IN = """<script>
(function () {
  var stubs = new WeakSet(), features = [], builders = [], count = 0;
  function sink() {
    var s = document.getElementById('stgeo-sink');
    if (!s) { s = document.createElement('div'); s.id = 'stgeo-sink'; (document.body || document.documentElement).appendChild(s); }
    return s;
  }
  function render(text) { var d = document.createElement('div'); d.innerHTML = String(text); sink().appendChild(d); count++; }
  function look(v, depth) {
    if (v === null || v === undefined || depth > 8 || stubs.has(v)) return;
    if (typeof v === 'string') { render(v); return; }
    if (typeof v === 'function') { builders.push(v); return; }
    if (typeof v !== 'object' || v instanceof Node) return;
    if (Array.isArray(v)) { for (var i = 0; i < v.length; i++) look(v[i], depth + 1); return; }
    if (v.type === 'Feature') features.push(v);
    for (var k in v) { if (Object.prototype.hasOwnProperty.call(v, k)) { render(k); look(v[k], depth + 1); } }
  }
  function stub(extra) {
    var p = new Proxy(function () {}, {
      get: function (t, name) {
        if (extra && name in extra) return extra[name];
        if (name === Symbol.toPrimitive) return function () { return ''; };
        if (name === 'then' || name === 'toJSON') return undefined;
        return stub();
      },
      set: function () { return true; },
      apply: function (t, self, args) { for (var i = 0; i < args.length; i++) look(args[i], 0); return stub(); },
      construct: function (t, args) { for (var i = 0; i < args.length; i++) look(args[i], 0); return stub(); }
    });
    stubs.add(p);
    return p;
  }
  var domUtil = { create: function (tag) { var e = document.createElement(tag); sink().appendChild(e); count++; return e; } };
  window.L = stub({ DomUtil: domUtil });
  window.d3 = stub(); window.$ = window.jQuery = stub();
  window.addEventListener('load', function () {
    var fs = builders.slice();
    for (var i = 0; i < fs.length; i++) {
      for (var j = 0; j < features.length; j++) {
        try { var out = fs[i]({ feature: features[j], options: {} }); if (typeof out === 'string') render(out); } catch (e) {}
      }
    }
    document.documentElement.setAttribute('data-rendered', String(count));
  });
})();
</script>"""


def _with_stand_in(page: str) -> str:
    page = re.sub(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", "", page)
    page = re.sub(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", "", page)
    return page.replace("<head>", "<head>" + _LEAFLET_STAND_IN, 1)


def _dump_dom(page: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="stgeo_chromium_") as profile:
        proc = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
                "--virtual-time-budget=3000", "--dump-dom", page.resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def _executed(dom: str) -> list[str]:
    ran = []
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    if title and "xssed" in title.group(1).lower():  # capitalised labels may lower-case a payload
        ran.append("title set to XSSED")
    if re.search(r"<html[^>]*\bdata-xss=", dom):
        ran.append("data-xss set on <html>")
    return ran


@needs_chromium
def test_no_payload_runs_in_headless_chromium(tmp_path):
    page = _payload_map(tmp_path)
    # 1. the page as saved (its CDN scripts cannot load here; payloads in the HTML itself would run)
    assert _executed(_dump_dom(page)) == []
    # 2. the page with a stand-in for Leaflet that renders every string it is handed with innerHTML
    staged = tmp_path / "map_rendered.html"
    staged.write_text(_with_stand_in(page.read_text(encoding="utf-8")), encoding="utf-8")
    dom = _dump_dom(staged)
    assert _executed(dom) == []
    rendered = re.search(r'<html[^>]*data-rendered="(\d+)"', dom)
    assert rendered and int(rendered.group(1)) > 200, "the stand-in did not render the map's strings"
    # the payloads were rendered, as inert text: tooltips, road labels and layer names alike
    sink = dom[dom.index('id="stgeo-sink"'):]
    assert html.escape(XSS_PAYLOADS[1], quote=False) in sink  # <img ...> shown as text
    assert "Sensor " in sink and "Roads" in sink


@needs_chromium
def test_the_headless_check_catches_an_unescaped_payload(tmp_path):
    """Control: the same check flags a page that does not escape (so a pass above means something)."""
    import folium

    m = folium.Map(location=[48.05, 15.05], zoom_start=13, tiles=None)
    folium.CircleMarker([48.05, 15.05], radius=5, tooltip=folium.Tooltip(XSS_PAYLOADS[1])).add_to(m)
    page = tmp_path / "unsafe.html"
    m.save(str(page))
    staged = tmp_path / "unsafe_rendered.html"
    staged.write_text(_with_stand_in(page.read_text(encoding="utf-8")), encoding="utf-8")
    assert _executed(_dump_dom(staged)) == ["data-xss set on <html>"]
