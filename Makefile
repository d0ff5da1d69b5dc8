# Two commands for a newcomer:  `make lab` (install, then start JupyterLab)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and only when missing, so you can put the build that fits your
# hardware into the venv yourself. The default is the CPU build these machines carry;
# on a CUDA machine use e.g.  make lab TORCH="torch --index-url https://download.pytorch.org/whl/cu126"
TORCH ?= torch==2.13.0

.PHONY: lab test lint bench-cpu clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	touch $@

lab: $(VENV)/.torch
	$(BIN)/python -m pip install -q -e ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=. notebooks/getting-started.ipynb

# The browser tests drive Debian's chromium; as root the test target installs it when missing.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "note: no chromium (apt-get install chromium); the browser tests will be skipped"

test: $(VENV)/.torch chromium
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/ruff check tutor tests benchmarks
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check tutor tests benchmarks

bench-cpu: $(VENV)/.torch
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_engine.py --shapes 2b --device cpu --prompt 512 --new 32

clean:
	rm -rf $(VENV) .bench .pytest_cache
