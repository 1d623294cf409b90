"""Runs the tests in tests/qgis INSIDE QGIS, in a subprocess with QGIS's Python.

The main suite runs on the project's own Python, which cannot load QGIS. When QGIS is
installed (Debian: apt-get install -y qgis python3-qgis qgis-providers, plus libgdal-dev
libproj-dev libgeos-dev to build the venv), this test makes or reuses .venv-qgis
(`make qgis-venv`: Debian's Python with QGIS's modules, torch and stgeo_kd) and runs
tests/qgis/inqgis_*.py there; their failures fail this test with their output. Without QGIS
it is skipped, saying so. STGEO_KD_SKIP_QGIS=1 skips it on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT

QGIS_PYTHON = Path(os.environ.get("QGIS_PYTHON", "/usr/bin/python3"))
QGIS_PROCESS = Path(os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin"))
VENV_PYTHON = ROOT / ".venv-qgis" / "bin" / "python"
INSTALL = "apt-get install -y qgis python3-qgis qgis-providers"


def _skip_reason() -> str | None:
    if os.environ.get("STGEO_KD_SKIP_QGIS"):
        return "QGIS tests skipped: STGEO_KD_SKIP_QGIS is set"
    if not QGIS_PROCESS.exists() or not QGIS_PYTHON.exists():
        return f"QGIS not installed: {INSTALL}"
    probe = subprocess.run([str(QGIS_PYTHON), "-c", "import qgis.core"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"QGIS not installed ({QGIS_PYTHON} cannot import qgis.core): {INSTALL}"
    if shutil.which("make") is None:
        return "QGIS tests skipped: `make` is needed to build .venv-qgis"
    return None


def _tail(text: str, n: int = 12000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def test_inside_qgis():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    made = subprocess.run(["make", "qgis-venv", f"QGIS_PYTHON={QGIS_PYTHON}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=3600, check=False)
    if made.returncode != 0:
        pytest.fail(f"`make qgis-venv` failed (exit {made.returncode}):\n{_tail(made.stdout + made.stderr)}")
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
                        "QGIS_PROCESS": str(QGIS_PROCESS)}
    proc = subprocess.run(
        [str(VENV_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "python_files=inqgis_*.py",
         "-o", "addopts=", "-ra", "--durations=0",
         # Debian's mpl_toolkits beside the venv's matplotlib: harmless, and not ours
         "-W", "ignore:Unable to import Axes3D", "tests/qgis"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, env=env, check=False,
    )
    output = proc.stdout + proc.stderr
    print(_tail(output, 4000))  # shown with -rP / on failure: what ran inside QGIS, and how long
    if proc.returncode != 0:
        pytest.fail(f"the tests inside QGIS failed (exit {proc.returncode}, {time.monotonic() - t0:.0f} s):\n{_tail(output)}")
    assert " passed" in proc.stdout and " skipped" not in proc.stdout.splitlines()[-1], _tail(output)
