# Every target creates .venv and installs the project into it on first use (Python >= 3.11 on PATH as python3).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-all lint format bench clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

## Runs every built package's default config and writes runs/REPORT.md (about 15 minutes per package on 2 cores).
demo: $(STAMP)
	$(BIN)/python -m common.reproduce

## The test suite CI runs: everything except tests marked slow.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -p no:cacheprovider

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Every benchmark; each prints a side-by-side table and ends with a RESULT line.
bench: $(STAMP)
	@set -e; for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf $(VENV) runs build *.egg-info
