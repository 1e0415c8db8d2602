# The two commands a newcomer needs: `make lab` and `make test` (README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8888
# Jupyter refuses to run as root without this flag (containers, CI machines).
LAB_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: lab test demo lint bench clean browser-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# Stamp files: reinstall only when pyproject.toml changes.
# The tests also install the example plug-in (examples/fphlib-eager): its entry points put
# mechanism "eager" and policy "toggle" in the registries, so the contract tests cover them.
$(VENV)/.stamp-test: pyproject.toml examples/fphlib-eager/pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[test,notebooks,browser]"
	$(PY) -m pip install --no-deps -e examples/fphlib-eager
	touch $@

$(VENV)/.stamp-lab: pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[notebooks]"
	touch $@

# The browser test drives Debian's chromium (Playwright cannot download browsers here).
# As root, install it; otherwise tests/test_browser.py skips and names what is missing.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "not root: cannot install Debian's chromium; the browser test will skip" >&2; fi; }

test: $(VENV)/.stamp-test browser-deps
	$(PY) -m ruff check fphlib tests benchmarks
	$(PY) -m pytest

# Headless use: `make lab LAB_ARGS="--no-browser --ip=127.0.0.1"`, then open the printed URL.
# Port: `make lab PORT=9000` (the recipe passes --port=$(PORT); do not put --port in LAB_ARGS).
# Sizes of the notebooks' runs: `make lab FPHLIB_PROFILE=full` (smoke, demo or full; default
# demo, as every notebook without it). Sweep cache of notebook 05: FPHLIB_CACHE=DIR.
FPHLIB_PROFILE ?= demo
lab: export FPHLIB_PROFILE := $(FPHLIB_PROFILE)
lab: $(VENV)/.stamp-lab
	@echo "fphlib: notebooks sized by FPHLIB_PROFILE=$(FPHLIB_PROFILE)"
	$(PY) -m fphlib.api.warmup
	$(PY) -m jupyter lab --notebook-dir=notebooks --port=$(PORT) $(LAB_ROOT) $(LAB_ARGS)

demo: $(VENV)/.stamp-test
	$(PY) -m fphlib demo --out out --overwrite

bench: $(VENV)/.stamp-test
	$(PY) benchmarks/buddy_replay.py

lint: $(VENV)/.stamp-test
	$(PY) -m ruff check fphlib tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache
