# Developer entry points. Everything runs from the project's own virtualenv (.venv), which is
# created and (re)installed on demand: `make run` on a fresh clone is all it takes.
# Three distributions, installed editable: the server (.), the SDK and CLI (clients/python) and the
# dev tools (devtools: mlsp-dev). `run` and `services` install those only; `test`, `lint` and
# `bench` add the test tools (devtools' `test` extra).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
DEPENDENCY_FILES := setup.cfg pyproject.toml clients/python/pyproject.toml devtools/pyproject.toml

# The web pages' browser assets (htmx, Chart.js): installed from npm and copied into
# web/ui/static/vendor (git-ignored) by web/ui/build.mjs; redone when the lock file changes.
UI_DIR := web/ui
ASSETS_STAMP := $(UI_DIR)/static/vendor/.built

.PHONY: run test lint services bench clean web-assets

run: $(RUN_STAMP) $(ASSETS_STAMP)
	$(BIN)/mlsp-dev run

# Extra pytest arguments: make test ARGS='-k predict -x'
test: $(TEST_STAMP) $(ASSETS_STAMP)
	$(BIN)/mlsp-dev test $(ARGS)

web-assets: $(ASSETS_STAMP)

$(ASSETS_STAMP): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json $(UI_DIR)/build.mjs
	cd $(UI_DIR) && npm ci --no-audit --no-fund && npm run build

services: $(RUN_STAMP)
	$(BIN)/mlsp-dev services

# The serving benchmark (needs wrk); not part of `make test` or CI.
bench: $(TEST_STAMP)
	$(BIN)/python -m bench.serving $(ARGS)

# Ours against Seldon MLServer 1.7 (needs wrk), which runs from a virtualenv of its own, made here
# and ignored by git; uvloop after 0.21 breaks it, and its scikit-learn must be ours to unpickle
# our models. Not part of `make test` or CI.
PEERS_VENV := .venv-peers
.PHONY: bench-peers
bench-peers: $(TEST_STAMP) $(PEERS_VENV)/.installed
	$(BIN)/python -m bench.peers $(ARGS)

$(PEERS_VENV)/.installed: $(TEST_STAMP)
	$(PYTHON) -m venv $(PEERS_VENV)
	printf '*\n' > $(PEERS_VENV)/.gitignore
	$(PEERS_VENV)/bin/python -m pip install mlserver==1.7.1 mlserver-sklearn==1.7.1 uvloop==0.21.0 \
		scikit-learn==$$($(BIN)/python -c 'import sklearn; print(sklearn.__version__)')
	touch $@

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pyvenv.cfg marks a created venv (bin/python is a symlink: make would see its target's date).
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the declared dependencies change; a stamp is touched only on success. The test
# set builds on the run set, so a change to any dependency file redoes both.
# The dev tools go in last, on their own: in a .venv made before the split, replacing the old
# all-in-one `mlsp` deletes bin/mlsp-dev, which must then be written again.
$(RUN_STAMP): $(VENV)/pyvenv.cfg $(DEPENDENCY_FILES)
	$(BIN)/python -m pip install -e . -e ./clients/python
	$(BIN)/python -m pip install -e ./devtools
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install -e './devtools[test]'
	touch $@

# Embedded database and broker data (stop `make run` first). Not the virtualenv.
clean:
	rm -rf .mlsp
