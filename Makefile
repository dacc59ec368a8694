# Developer entry points. Everything runs from the project's own virtualenv (.venv), which is
# created and (re)installed on demand: `make run` on a fresh clone is all it takes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint services bench clean

run: $(STAMP)
	$(BIN)/mlsp-dev run

# Extra pytest arguments: make test ARGS='-k predict -x'
test: $(STAMP)
	$(BIN)/mlsp-dev test $(ARGS)

services: $(STAMP)
	$(BIN)/mlsp-dev services

# The serving benchmark (needs wrk); not part of `make test` or CI.
bench: $(STAMP)
	$(BIN)/python -m bench.serving $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pyvenv.cfg marks a created venv (bin/python is a symlink: make would see its target's date).
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the declared dependencies change; the stamp is touched only on success.
$(STAMP): $(VENV)/pyvenv.cfg setup.cfg pyproject.toml clients/python/pyproject.toml
	$(BIN)/python -m pip install -e '.[dev]' -e ./clients/python
	touch $@

# Embedded database and broker data (stop `make run` first). Not the virtualenv.
clean:
	rm -rf .mlsp
