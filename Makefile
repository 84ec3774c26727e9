# The two commands of the README: `make demo` and `make test`. Each sets everything up first:
# a virtualenv, the package with its compiled Cython extension, mosquitto and Debian's chromium
# for the browser tests (apt-get when missing; Playwright drives that chromium, it never downloads
# a browser), and the models from the mirror (MAIX_AGENT_MODELS_MIRROR, default ../shared/models).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
MIRROR ?= $(or $(MAIX_AGENT_MODELS_MIRROR),../shared/models)
PYTEST_ARGS ?=

.PHONY: setup venv build broker browser models demo test lint unit bench clean

setup: build broker browser models

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet "Cython>=3.0" "numpy>=1.26"
	$(PY) -m pip install --quiet -e ".[dev]" --no-build-isolation
	touch $@

venv: $(VENV)/.deps

# Compile the fastpath extension in place; a failed compile fails the build.
build: venv
	$(PY) setup.py --quiet build_ext --inplace
	$(PY) -c "import fastpath; fastpath.set_implementation('cython'); print('fastpath:', fastpath.implementation())"

broker:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
	  { echo "installing mosquitto with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients; }
	@{ command -v mosquitto || ls /usr/sbin/mosquitto; } >/dev/null
	@command -v openssl >/dev/null 2>&1 || \
	  { echo "installing openssl with apt-get (the TLS tests make throwaway certificates)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl; }

# The browser tests drive Debian's chromium through Playwright's executable_path.
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
	  { echo "installing chromium with apt-get (the console's browser tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@{ command -v chromium || ls /usr/bin/chromium; } >/dev/null

models: venv
	$(PY) -m agent models fetch --from "$(MIRROR)"

demo: setup
	$(VENV)/bin/maix-agent demo

lint: venv
	$(VENV)/bin/ruff check agent fastpath tests tools benchmarks
	$(VENV)/bin/ruff format --check agent fastpath tests tools benchmarks
	$(VENV)/bin/mypy

# pytest exit code 5 (no tests collected) is a failure here, not a pass.
test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

unit: build
	$(PY) -m pytest tests/unit tests/fastpath -q

# The results table against the named peers (benchmarks/run.py; BENCH_ARGS=--quick for a smoke
# run), then the fleet sync benchmark. JSON goes to benchmarks/results/ (git-ignored).
BENCH_ARGS ?=
bench: setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_fleet.py

# Opt-in, not part of `make test`: a real Home Assistant (2024.3.3, the newest release for Python
# 3.11, ~400 MB in its own venv) creates every entity from the agent's MQTT discovery, drives the
# camera and its log must stay clean (tools/ha_check.py). About 15 s once HA's first start has
# installed its own dependencies.
HA_VENV ?= .ha-venv
HA_VERSION ?= 2024.3.3

$(HA_VENV)/.deps:
	$(PYTHON) -m venv $(HA_VENV)
	$(HA_VENV)/bin/pip install --quiet --upgrade pip wheel
	$(HA_VENV)/bin/pip install --quiet "homeassistant==$(HA_VERSION)" "paho-mqtt==1.6.1"
	touch $@

.PHONY: test-ha
test-ha: setup $(HA_VENV)/.deps
	$(PY) tools/ha_check.py --hass $(HA_VENV)/bin/hass

clean:
	rm -rf build $(VENV) *.egg-info fastpath/*.so fastpath/*.c
