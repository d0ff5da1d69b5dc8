# Two commands for a newcomer:  `make lab` (install, then start JupyterLab)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and only when missing, so you can put the build that fits your
# hardware into the venv yourself. The default is the CPU build these machines carry;
# on a CUDA machine use e.g.  make lab TORCH="torch --index-url https://download.pytorch.org/whl/cu126"
TORCH ?= torch==2.13.0

.PHONY: lab test lint bench-cpu bench-inline clean chromium bubblewrap labextension test-frontend hub-proxy

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	touch $@

# The package's build backend and its labextension hook, in the venv: `pip install -e` then builds
# without an isolated environment (which would install jupyterlab and ~80 packages every time);
# hatchling needs editables for `-e`; llama-cpp-python (a test extra, built from source) needs scikit-build-core.
$(VENV)/.build-backend: | $(BIN)/python
	$(BIN)/python -m pip install -q "hatchling>=1.21" "hatch-jupyter-builder>=0.9" editables "scikit-build-core>=0.9"
	touch $@

# The JupyterLab extension (TypeScript in labextension/) is built by npm and @jupyterlab/builder into
# tutor/labextension, which the install then copies to share/jupyter/labextensions. The wheel's build
# does this too (hatch-jupyter-builder, pyproject.toml); here it is a convenience that rebuilds when
# the sources change (the build hook skips a tree that has a build). Without npm it is skipped.
LABEXT_SRC := $(wildcard labextension/src/*.ts labextension/schema/*.json labextension/style/*.css) labextension/package.json labextension/build.js

labextension: tutor/labextension/package.json

labextension/node_modules/.package-lock.json: labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund --loglevel=error

tutor/labextension/package.json: $(LABEXT_SRC) | $(BIN)/python
	@command -v npm >/dev/null || { echo "note: no npm: the JupyterLab extension is not built (inline completion off)"; exit 0; } ; \
	$(BIN)/python -c "import jupyterlab" 2>/dev/null || $(BIN)/python -m pip install -q "jupyterlab>=4.3"; \
	$(MAKE) --no-print-directory labextension/node_modules/.package-lock.json && \
	cd labextension && PYTHON=$(abspath $(BIN))/python npm run --silent build >/dev/null

test-frontend: labextension/node_modules/.package-lock.json
	cd labextension && npm test --silent >/dev/null && echo "frontend unit tests passed"

# Jupyter refuses to start as root (containers, many class servers) unless told: --allow-root is
# added only then. LAB_ARGS passes more, e.g.  make lab LAB_ARGS="--ip=0.0.0.0 --no-browser"
USER_ID ?= $(shell id -u)
LAB_ARGS ?=
LAB_ROOT := $(if $(filter 0,$(USER_ID)),--allow-root)

lab: $(VENV)/.torch $(VENV)/.build-backend labextension
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=. $(LAB_ROOT) $(LAB_ARGS) notebooks/getting-started.ipynb

# The browser tests drive Debian's chromium; as root the test target installs it when missing.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "note: no chromium (apt-get install chromium); the browser tests will be skipped"

# The grading sandbox uses Debian's bubblewrap where installed (an allow-list view of the filesystem);
# as root the test target installs it when missing, otherwise the sandbox falls back and says so.
bubblewrap:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
		echo "note: no bubblewrap (apt-get install bubblewrap); grading falls back to weaker isolation"

# JupyterHub's proxy (node), for tests/test_hub.py only: configurable-http-proxy pinned in tests/hub. Without
# npm it is skipped with a note, and so is that test.
hub-proxy:
	@command -v npm >/dev/null || { echo "note: no npm: the JupyterHub test will be skipped"; exit 0; } ; \
	$(MAKE) --no-print-directory tests/hub/node_modules/.package-lock.json

tests/hub/node_modules/.package-lock.json: tests/hub/package-lock.json
	cd tests/hub && npm ci --no-audit --no-fund --loglevel=error

test: $(VENV)/.torch $(VENV)/.build-backend chromium bubblewrap labextension hub-proxy
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[test]"
	$(BIN)/ruff check tutor tests benchmarks
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory test-frontend; fi
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check tutor tests benchmarks

bench-cpu: $(VENV)/.torch $(VENV)/.build-backend
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[bench]"
	$(BIN)/python benchmarks/bench_engine.py --shapes 2b --device cpu --prompt 512 --new 32

bench-inline: $(VENV)/.torch $(VENV)/.build-backend
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[test]"
	$(BIN)/python benchmarks/bench_inline.py

clean:
	rm -rf $(VENV) .bench .pytest_cache tutor/labextension labextension/node_modules labextension/lib \
		tests/hub/node_modules
