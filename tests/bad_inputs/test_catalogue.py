"""Every malformed input of the catalogue ends in a clear StgeoError: exit code 2, no traceback,
a message naming the file/column/key and what to do, and nothing left behind in the output folder.
Recoverable irregularities are repaired with a warning that says what was done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import stgeo_kd
from stgeo_kd.cli import main
from stgeo_kd.config import load_config
from stgeo_kd.data.windows import ForecastData
from stgeo_kd.errors import StgeoError
from stgeo_kd.ingest.build import load_sensor_graph

from .catalogue import (
    ADVICE_WORDS,
    CASES,
    ERROR_CASES,
    SENSOR_IDS,
    STEPS,
    WARNING_CASES,
    Workspace,
)

ROOT = Path(__file__).resolve().parents[2]

# a representative subset also runs as a user would: a separate process, the real console
SUBPROCESS_CASES = [
    "roads-shp-missing-shx",
    "sensors-unknown-crs",
    "readings-time-typo-huge-gap",
    "graph-matrix-wrong-size",
    "config-python-tag",
    "raster-corrupt-file",
    "output-parent-is-file",
]


def _norm(text: str) -> str:
    """Whitespace-normalised text (the CLI wraps long messages at 100 columns)."""
    return " ".join(text.split())


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _check_message(case, err: str) -> None:
    assert err.startswith("stgeo-kd: error: "), err
    low = err.lower()
    missing = [w for w in case.expect if w.lower() not in low]
    assert not missing, f"{case.id}: message lacks {missing}: {err}"
    assert any(w in low for w in ADVICE_WORDS), f"{case.id}: message does not say what to do: {err}"


@pytest.fixture()
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def test_the_catalogue_covers_every_kind_of_input():
    assert len(ERROR_CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    areas = {c.area for c in ERROR_CASES}
    assert {"roads", "sensors", "readings", "graph", "config", "rasters", "output"} <= areas
    for area in areas - {"output"}:
        assert sum(c.area == area for c in ERROR_CASES) >= 5, area
    assert all(c.kind in ("error", "warning") for c in CASES)


def test_the_base_workspace_is_valid(ws):
    """The cases break one thing each: without it, the same files load cleanly."""
    cfg = load_config(ws.path("config.yaml"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning
        graph = load_sensor_graph(cfg)
    assert graph.sensor_ids == SENSOR_IDS and graph.num_steps == STEPS
    assert graph.info["adjacency_method"] == "road_distance" and graph.edge_index.shape[1] > 0
    ForecastData(graph, cfg.task.history, max(cfg.task.horizons), 0.7, 0.1, 0.2)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_bad_input_gets_a_clear_error_and_leaves_nothing(case, ws, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. pyogrio warning while writing a file without CRS
        run = case.build(ws)
    before = _snapshot(ws.root)
    code = main(ws.argv(run))
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err + captured.out
    _check_message(case, _norm(captured.err))
    # nothing partial: no file was added, changed or removed, and no output folder was created
    assert _snapshot(ws.root) == before
    out = run.out or ws.out
    assert not (out.is_dir() and any(out.iterdir()))
    if run.out is None:
        assert not ws.out.exists()


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_bad_input_raises_stgeo_error_from_python(case, ws):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = case.build(ws)
        with pytest.raises(StgeoError) as info:
            stgeo_kd.run(run.config, out_dir=run.out or ws.out, overrides=list(run.sets))
    assert type(info.value) is StgeoError
    assert str(info.value).strip()


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_through_the_console(case_id, ws):
    case = next(c for c in ERROR_CASES if c.id == case_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = case.build(ws)
    script = Path(sys.executable).with_name("stgeo-kd")
    # the installed entry point once, `python -m` (this checkout) otherwise
    use_script = case_id == SUBPROCESS_CASES[0] and script.exists() and Path(stgeo_kd.__file__).parent == ROOT / "stgeo_kd"
    command = [str(script)] if use_script else [sys.executable, "-m", "stgeo_kd.cli"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [*command, *ws.argv(run)], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    _check_message(case, _norm(proc.stderr))
    assert not ws.out.exists() or run.out is not None
    assert not ws.path("PWNED").exists()


@pytest.mark.parametrize("case", WARNING_CASES, ids=lambda c: c.id)
def test_recoverable_input_is_repaired_with_a_warning(case, ws):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = case.build(ws)
    cfg = load_config(run.config, list(run.sets))
    if case.area == "rasters":
        from stgeo_kd.ingest.rasters import check_frames, load_raster_stack

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stack = load_raster_stack(cfg)
            check_frames(stack)
        messages = [_norm(str(w.message)) for w in caught]
        assert any(all(word.lower() in m.lower() for word in case.expect) for m in messages), messages
        # repaired, not dropped: 14 frames of 10 minutes on the first frame's 24 x 24 grid
        assert stack.num_steps == 14 and stack.step_minutes == 10 and (stack.height, stack.width) == (24, 24)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = load_sensor_graph(cfg)
        data = ForecastData(graph, cfg.task.history, max(cfg.task.horizons), 0.7, 0.1, 0.2)
    messages = [_norm(str(w.message)) for w in caught]
    assert any(all(word.lower() in m.lower() for word in case.expect) for m in messages), messages
    # repaired, not dropped: every sensor and every time step of the day is there, in order
    assert graph.sensor_ids == SENSOR_IDS
    assert graph.num_steps == STEPS and graph.step_minutes == 5
    assert data.features.shape == (STEPS, len(SENSOR_IDS), 4)


def test_unsorted_rows_are_sorted_not_shuffled(ws):
    """The repaired table equals the original one."""
    reference = load_sensor_graph(load_config(ws.path("config.yaml")))
    run = next(c for c in WARNING_CASES if c.id == "warn-unsorted-rows").build(ws)
    with pytest.warns(UserWarning, match="sorted"):
        repaired = load_sensor_graph(load_config(run.config))
    assert repaired.values.equals(reference.values)


def test_a_failed_run_keeps_an_existing_output_folder_and_its_files(ws, capsys):
    ws.out.mkdir()
    (ws.out / "notes.txt").write_text("mine")
    run = next(c for c in ERROR_CASES if c.id == "readings-non-numeric-value").build(ws)
    assert main(ws.argv(run)) == 2
    capsys.readouterr()
    assert [p.name for p in ws.out.iterdir()] == ["notes.txt"]


def test_the_workspace_is_removable(tmp_path):
    """Sanity: a workspace is plain files (the catalogue never writes outside it)."""
    ws = Workspace(tmp_path / "w")
    assert {p.name for p in ws.root.iterdir()} == {"speeds.csv", "sensors.csv", "roads.gpkg", "config.yaml"}
    shutil.rmtree(ws.root)


def test_docs_list_every_case():
    """docs/reliability.md is generated from this catalogue (make_doc.py); it must be current."""
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"run tests/bad_inputs/make_doc.py --write; not in the docs: {missing}"
