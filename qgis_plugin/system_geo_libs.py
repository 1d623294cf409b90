"""Make pyproj, shapely, pyogrio, rasterio and netCDF4 use the system PROJ, GEOS, GDAL and netCDF
that QGIS uses (Linux).

The ``qgis`` and ``qgis_process`` programs load the system GDAL, PROJ and GEOS (and, through
GDAL, libnetcdf and libhdf5) into the process's global symbol scope. PyPI wheels of these
packages bring their own copies, and inside QGIS their calls land in QGIS's older ones: crashes
(docs/qgis.md, "Why the source builds"). Run with the Python of the environment QGIS uses::

    python qgis_plugin/system_geo_libs.py            # report: which ones do not match
    python qgis_plugin/system_geo_libs.py --build    # rebuild those from source (needs libgdal-dev,
                                                     # libproj-dev, libgeos-dev, libnetcdf-dev
                                                     # and a C compiler)

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
#: with the Cython/setuptools pinned in linux-build-constraints.txt. rasterio 1.4 builds against
#: GDAL >= 3.5 (Debian 12: 3.6); its wheel runs inside qgis_process but calls QGIS's GDAL 3.6
#: with the ABI of its own 3.10. netCDF4's wheel (libnetcdf 4.10, HDF5 2.x) segfaults reading a
#: file inside qgis_process, whose GDAL has loaded libnetcdf 4.9 and HDF5 1.10.
PACKAGES = {
    "pyproj": ("import pyproj; print(pyproj.proj_version_str)", ["pkg-config", "--modversion", "proj"], "pyproj>=3.3,<3.7"),
    "shapely": ("import shapely; print(shapely.geos_version_string)", ["geos-config", "--version"], "shapely>=2.0"),
    "pyogrio": ("import pyogrio; print(pyogrio.__gdal_version_string__)", ["gdal-config", "--version"], "pyogrio>=0.7"),
    "rasterio": ("import rasterio; print(rasterio.__gdal_version__)", ["gdal-config", "--version"], "rasterio>=1.3,<1.5"),
    "netCDF4": ("import netCDF4; print(netCDF4.__netcdf4libversion__)", ["nc-config", "--version"], "netCDF4>=1.6"),
}
#: netCDF4 from source: its bundled nc_complex declares plain C99 ``inline`` functions that GCC 12
#: may leave un-inlined (undefined symbol ``pfnc_inq_vardimid`` at import): gnu89 inline
#: semantics emit them, once per object file, and the linker keeps one
NETCDF4_FLAGS = {"CFLAGS": "-fgnu89-inline", "LDFLAGS": "-Wl,--allow-multiple-definition"}
#: ... and netCDF 4.9.0 (Debian 12) declares nc_def_var_bzip2/blosc without the NC_HAS_BZ2 /
#: NC_HAS_BLOSC macros netCDF4 tests (a compile error), and lacks nc_rc_get/nc_rc_set (4.9.1;
#: used only for the CA path of remote OPeNDAP, which it does not support): shim them
NETCDF_490_CFLAGS = "-DNC_HAS_BZ2=0 -DNC_HAS_BLOSC=0 '-Dnc_rc_set(k,v)=0' '-Dnc_rc_get(k)=NULL'"
#: the Debian package that brings each tool
APT = {"pkg-config": "libproj-dev", "geos-config": "libgeos-dev", "gdal-config": "libgdal-dev", "nc-config": "libnetcdf-dev"}


def _output(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    # nc-config says "netCDF 4.9.0": the version is the last word
    return proc.stdout.strip().split()[-1] if proc.stdout.strip() else None


def mismatched() -> dict[str, tuple[str | None, str | None]]:
    """package -> (version it uses, system version) for each that does not use the system's."""
    out = {}
    for name, (code, tool, _) in PACKAGES.items():
        used = _output([sys.executable, "-c", code])
        system = _output(tool)
        if system is None:
            raise SystemExit(f"{tool[0]} not found: apt-get install -y {APT.get(tool[0], 'libgdal-dev')}")
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
        print(f"{', '.join(PACKAGES)} use the system libraries")
        return 0
    if not args.build:
        return 1
    pip = [sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps"]
    for name in bad:
        env = dict(os.environ)
        if name == "pyproj":
            env["PIP_CONSTRAINT"] = str(HERE / "linux-build-constraints.txt")
        if name == "netCDF4":
            cflags = NETCDF4_FLAGS["CFLAGS"] + (f" {NETCDF_490_CFLAGS}" if bad[name][1] == "4.9.0" else "")
            env["CFLAGS"] = f"{env.get('CFLAGS', '')} {cflags}".strip()
            env["LDFLAGS"] = f"{env.get('LDFLAGS', '')} {NETCDF4_FLAGS['LDFLAGS']}".strip()
        print(f"building {PACKAGES[name][2]} from source ...", flush=True)
        subprocess.run([*pip, "--no-binary", name, PACKAGES[name][2]], env=env, check=True)
    still = mismatched()
    if still:
        print(f"still not matching: {sorted(still)}", file=sys.stderr)
        return 1
    print(f"{', '.join(PACKAGES)} now use the system libraries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
