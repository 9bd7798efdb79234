# `make demo` and `make test` do all the set-up on a fresh machine (they create .venv/).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The pinned torch installs the local CPU wheel on the development machines and the normal build elsewhere.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test test-all demo clean

setup: $(VENV)/.installed

# Re-runs only when the package metadata or this file change; otherwise `make setup` is a no-op.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,ui,pretrained,ray]"
	touch $@

# `make test` skips the tests marked slow (about 4.5 minutes on 2 cores for 793 tests: 4:20 to 4:25 measured on 2026-12-05,
# nothing else running); CI and `make test-all` run them too (806 tests in 5:41).
test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	QMRA_SLOW_TESTS=1 $(BIN)/python -m pytest -q

demo: setup
	$(BIN)/qmra demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
