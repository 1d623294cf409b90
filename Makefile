# Two commands for a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stgeo_kd_installed
OUT    ?= out/sample_city

.PHONY: setup demo test bench sample-data clean

# torch is installed first and pinned, so pip takes the CPU wheel on disk instead of a CUDA build
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/stgeo-kd run examples/sample_city.yaml --out $(OUT)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/los_loop_seeds.py

sample-data: setup
	$(BIN)/python sample_data/make_sample_city.py --out sample_data/sample_city --seed 7

clean:
	rm -rf out .pytest_cache

# QGIS: a venv on Debian's own Python (the one python3-qgis is built for) that sees QGIS's
# modules (--system-site-packages) and holds stgeo_kd (editable) with torch's CPU wheel beside it
QGIS_PYTHON ?= /usr/bin/python3
QGIS_VENV   := .venv-qgis
QGIS_STAMP  := $(QGIS_VENV)/.stgeo_kd_installed

.PHONY: qgis-venv qgis-plugin qgis-test

$(QGIS_STAMP): pyproject.toml qgis_plugin/linux-build-constraints.txt qgis_plugin/system_geo_libs.py
	$(QGIS_PYTHON) -c "import qgis.core" || { echo "QGIS's Python bindings are missing: apt-get install -y qgis python3-qgis qgis-providers" >&2; exit 1; }
	command -v gdal-config >/dev/null && test -f /usr/include/proj.h && test -f /usr/include/geos_c.h || { echo "GDAL/PROJ/GEOS headers are missing: apt-get install -y libgdal-dev libproj-dev libgeos-dev" >&2; exit 1; }
	$(QGIS_PYTHON) -m venv --system-site-packages $(QGIS_VENV)
	$(QGIS_VENV)/bin/pip install -q torch==2.13.0
	$(QGIS_VENV)/bin/pip install -q -e ".[onnx,test]" "geopandas>=1.0,<1.2" "matplotlib>=3.9" "contourpy>=1.3" "attrs>=23.2"
	# qgis and qgis_process load the system GDAL, PROJ and GEOS into the global symbol scope, so
	# wheels that bundle other versions of them crash there: build those three against the
	# system libraries (pyproj < 3.7 and geopandas < 1.2 for Debian 12's PROJ 9.1). Debian's
	# matplotlib/contourpy are built for NumPy 1; the newer wheels above shadow them. affine 3
	# (rasterio) needs attrs >= 23.2 (cached_property in a slotted class), newer than Debian's 22.2.
	# rasterio and netCDF4 are rebuilt against the system GDAL and netCDF too.
	$(QGIS_VENV)/bin/python qgis_plugin/system_geo_libs.py --build
	$(QGIS_VENV)/bin/pip check
	touch $(QGIS_STAMP)

qgis-venv: $(QGIS_STAMP)

# the plugin zip for QGIS's plugin manager ("Install from ZIP"): dist/stgeo_kd_plugin.zip
qgis-plugin:
	$(PYTHON) qgis_plugin/build_zip.py --out dist/stgeo_kd_plugin.zip

# only the tests that run inside QGIS (make test runs them too, when QGIS is installed)
qgis-test: setup
	$(BIN)/python -m pytest tests/test_qgis.py
