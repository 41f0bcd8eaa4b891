# Two set-up commands: `make demo` (main job on the built-in simulated data) and `make test`.
# Both create .venv and install the project; torch 2.13.0 (CPU) is installed first so that pip
# never resolves a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,reference]'
	touch $(STAMP)

install: $(STAMP)

# `make demo` regenerates its own run: --overwrite replaces runs/demo only once the new run has succeeded
demo: $(STAMP)
	$(PY) train.py --out runs/demo --overwrite
	$(PY) evaluate.py runs/demo --baselines --out runs/demo/report --overwrite

test: $(STAMP)
	$(PY) benchmarks/claims.py --check
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

clean:
	rm -rf $(VENV) runs .pytest_cache
