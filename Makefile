# Two commands for users: `make demo` and `make test`. Everything they need installs from here.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mirada-installed
PYTHON ?= python3
# On our offline build machines pip is capped to the torch build on local disk (/etc/xdg/pip);
# that pair is the one whose torchvision imports. Elsewhere pyproject's ranges decide.
TORCH_PIN ?= $(shell [ -e /etc/xdg/pip ] && echo "torch==2.14.1 torchvision==0.29.1")
# PyPI's torch for Linux bundles CUDA (about 3 GB of the ~6.6 GB venv). A CPU-only machine can
# take PyTorch's CPU wheels on the first set-up: make demo TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
# make demo PORT=8502: serve the demo dashboard on another port.
PORT ?=
# pytest processes (pytest-xdist): one per core. Whole modules go to a process (--dist
# loadscope), so a module's shared fixture (the demo home, a local Ray) is built once, in the
# order tests/conftest.py sorts them, longest first (--no-loadscope-reorder keeps it). On a
# 2-core Intel machine: 204 s with 2 processes, 231 s with 3 (Ray's own processes starve).
# TEST_WORKERS=0 runs everything in this process (for --pdb or -s).
TEST_WORKERS ?= auto
PYTEST := $(VENV)/bin/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

.PHONY: setup setup-demo demo test test-fast test-deps bench lint typecheck clean

# Two install levels: the demo needs Mirada alone (SQLite, CPU); the tests also need the
# PostgreSQL driver, Ray and the test tools. A full install satisfies the demo too.
DEMO_STAMP := $(VENV)/.mirada-demo-installed
TORCH_INSTALL = @if [ -n "$(TORCH_PIN)$(TORCH_INDEX_URL)" ]; then \
	   $(PY) -m pip install -q $(or $(TORCH_PIN),torch torchvision) \
	     $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL)); fi

setup: $(STAMP)

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(TORCH_INSTALL)
	$(PY) -m pip install -q -e '.[postgres,test,ray]'
	@touch $(STAMP) $(DEMO_STAMP)

setup-demo: $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(TORCH_INSTALL)
	$(PY) -m pip install -q -e .
	@touch $(DEMO_STAMP)

# System tools some tests use: Debian's chromium (browser test), docker-compose (compose
# validation). Installed only when missing and when we can (root + apt); tests skip otherwise.
test-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	 command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	 if [ -n "$$missing" ]; then \
	   if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	     echo "installing$$missing"; (apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null || echo "could not install$$missing; those tests will skip"; \
	   else echo "not installing$$missing (needs root + apt); those tests will skip"; fi; \
	 fi

# ruff and mypy first (mypy needs a core for about a minute when its cache is cold), then
# pytest on every core.
test: setup test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PYTEST)

# Everything but the tests marked slow or browser: the quick loop while changing code.
test-fast: setup
	$(PYTEST) -m "not slow and not browser"

demo: setup-demo
	$(VENV)/bin/mirada demo$(if $(PORT), --port $(PORT))

bench: setup
	$(PY) -m benchmarks.run_all

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# mypy over the whole package (mirada.*): files and source roots come from pyproject's [tool.mypy].
typecheck: setup
	$(VENV)/bin/mypy

clean:
	@# never user data: MIRADA_HOME, or a ./mirada-data someone still points it at
	rm -rf $(VENV) .pytest_cache .mypy_cache build
