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
