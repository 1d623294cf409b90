"""Make pyproj, shapely and pyogrio use the system PROJ, GEOS and GDAL that QGIS uses (Linux).

The ``qgis`` and ``qgis_process`` programs load the system GDAL, PROJ and GEOS into the
process's global symbol scope. PyPI wheels of pyproj, shapely and pyogrio bring their own
copies, and inside QGIS their calls land in QGIS's older ones: crashes (docs/qgis.md, "Why the
source builds"). Run with the Python of the environment QGIS uses::

    python qgis_plugin/system_geo_libs.py            # report: which ones do not match
    python qgis_plugin/system_geo_libs.py --build    # rebuild those from source (needs libgdal-dev,
                                                     # libproj-dev, libgeos-dev and a C compiler)

Packages already built against the system libraries are left alone, so ``make qgis-venv``
stays fast when only the project's other dependencies change.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: package -> (how to get its library version, the system tool that prints the system version,
#: pip requirement to build). pyproj 3.7 needs PROJ >= 9.2 (Debian 12 has 9.1): 3.6 is built
#: with the Cython/setuptools pinned in linux-build-constraints.txt.
PACKAGES = {
    "pyproj": ("import pyproj; print(pyproj.proj_version_str)", ["pkg-config", "--modversion", "proj"], "pyproj>=3.3,<3.7"),
    "shapely": ("import shapely; print(shapely.geos_version_string)", ["geos-config", "--version"], "shapely>=2.0"),
    "pyogrio": ("import pyogrio; print(pyogrio.__gdal_version_string__)", ["gdal-config", "--version"], "pyogrio>=0.7"),
}


def _output(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def mismatched() -> dict[str, tuple[str | None, str | None]]:
    """package -> (version it uses, system version) for each that does not use the system's."""
    out = {}
    for name, (code, tool, _) in PACKAGES.items():
        used = _output([sys.executable, "-c", code])
        system = _output(tool)
        if system is None:
            raise SystemExit(f"{tool[0]} not found: apt-get install -y libgdal-dev libproj-dev libgeos-dev")
        if used != system:
            out[name] = (used, system)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="rebuild the mismatched packages from source")
    args = parser.parse_args(argv)
    bad = mismatched()
    for name, (used, system) in bad.items():
        print(f"{name}: uses {used or 'nothing (not installed)'}, the system has {system}")
    if not bad:
        print("pyproj, shapely and pyogrio use the system PROJ, GEOS and GDAL")
        return 0
    if not args.build:
        return 1
    pip = [sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps"]
    for name in bad:
        env = dict(os.environ)
        if name == "pyproj":
            env["PIP_CONSTRAINT"] = str(HERE / "linux-build-constraints.txt")
        print(f"building {PACKAGES[name][2]} from source ...", flush=True)
        subprocess.run([*pip, "--no-binary", name, PACKAGES[name][2]], env=env, check=True)
    still = mismatched()
    if still:
        print(f"still not matching: {sorted(still)}", file=sys.stderr)
        return 1
    print("pyproj, shapely and pyogrio now use the system PROJ, GEOS and GDAL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
