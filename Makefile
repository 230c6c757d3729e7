# Two commands do all set-up on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: quickstart test test-slow lint clean install analysis-pictures

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/sdk quickstart --out runs/quickstart

# The README's `sdk analyze` pictures, from the quickstart's model (run `make quickstart` first).
analysis-pictures: $(STAMP)
	$(BIN)/python scripts/analysis_pictures.py --quickstart runs/quickstart --out docs/images/analysis

test: $(STAMP)
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q tests

# ruff (lint rules only, no reformatting) and the import-layering contracts of
# pyproject.toml, checked on the installed layout (.ci/import_view.py says why).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python .ci/import_view.py
	cd build/import-view && $(abspath $(BIN))/lint-imports --no-cache

test-slow: $(STAMP)
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -m slow tests

clean:
	rm -rf runs .pytest_cache build *.egg-info
