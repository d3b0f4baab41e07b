# Every target creates .venv and installs the project into it on first use (Python >= 3.11 on PATH as python3).
# The install uses the exact versions the tests passed with (constraints.txt); setup.cfg keeps lower bounds.
# It is setuptools' default editable install; setup.cfg's `package_dir = =.` makes it a .pth file putting this checkout
# on sys.path (the packages, tests/ and benchmarks/ import from it, new modules need no reinstall, no warning).
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed-stamp
CONSTRAINTS := constraints.txt

.PHONY: demo test test-multihost test-notebooks test-all mutants lint format bench clean venv

# A venv whose python or pip no longer works is reinstalled even though its stamp survived.
ifneq ($(wildcard $(STAMP)),)
ifneq ($(shell '$(BIN)/python' -m pip --version >/dev/null 2>&1 && echo ok),ok)
$(shell rm -f '$(STAMP)')
endif
endif

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@$(MAKE) --no-print-directory venv PYTHON='$(PYTHON)' VENV='$(VENV)'
	$(BIN)/python -m pip install -q --upgrade -c $(CONSTRAINTS) pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) --build-constraint $(CONSTRAINTS) -e '.[test,dev]'
	@touch $(STAMP)

## A working virtual environment in $(VENV): one left broken (no python, or no pip: a failed first attempt) is
## recreated; when venv creation fails, says which package to install.
venv:
	@if [ -e '$(VENV)' ] && ! { '$(BIN)/python' -c 'import sys' && '$(BIN)/python' -m pip --version; } >/dev/null 2>&1; \
	then echo "$(VENV) is broken (no working python or pip, e.g. left by a failed first attempt): recreating it"; \
	     rm -rf '$(VENV)'; fi
	@if [ ! -e '$(VENV)' ]; then \
	  '$(PYTHON)' -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	    echo "error: '$(PYTHON)' is not Python >= 3.11; run make PYTHON=python3.11 (or newer)" >&2; exit 1; }; \
	  log=$$(mktemp); \
	  if ! '$(PYTHON)' -m venv '$(VENV)' >"$$log" 2>&1; then \
	    rm -rf '$(VENV)'; \
	    if grep -qi 'ensurepip\|venv' "$$log"; then \
	      pkg=$$('$(PYTHON)' -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])'); \
	      echo "error: '$(PYTHON) -m venv' failed: the venv module or ensurepip is missing; install it (Debian/Ubuntu: sudo apt install python3-venv, or $$pkg) and run make again" >&2; \
	    else cat "$$log" >&2; echo "error: '$(PYTHON) -m venv $(VENV)' failed (output above)" >&2; fi; \
	    rm -f "$$log"; exit 1; \
	  fi; \
	  rm -f "$$log"; \
	fi

## Runs every built package's default config and writes runs/REPORT.md (measured runtimes: docs/runtimes.json).
demo: $(STAMP)
	$(BIN)/python -m common.reproduce

## The test suite CI runs: everything except tests marked slow (and the notebooks: make test-notebooks), in
## TEST_WORKERS processes (pytest-xdist; one test file stays on one worker, so module fixtures are built once).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not notebooks and not multihost" -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

## Every training package on two processes joined by jax.distributed on 127.0.0.1 against one process (results
## equal), and packages killed after their first checkpoint and resumed (the tests marked multihost).
test-multihost: $(STAMP)
	$(BIN)/python -m pytest -m multihost -q -p no:cacheprovider --durations=0 tests/multihost

## The notebooks in notebooks/ executed at smoke scale, each in its own Jupyter kernel (the tests marked
## notebooks), two at a time.
test-notebooks: $(STAMP)
	$(BIN)/python -m pytest -m notebooks -q -p no:cacheprovider -n 2 --durations=0 tests/notebooks

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

## The mutation suite: each one-line bug listed in tests/mutants/<pkg>.py is applied to a temporary copy of the
## repository and its tests (slow ones included) must fail; prints killed / survived per mutant, fails if any
## survived. MUTANTS_ARGS="--only icl,spectra" runs some packages.
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants.run $(MUTANTS_ARGS)

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
