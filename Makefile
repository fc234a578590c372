# Quick start:  make demo   |   make test
# Each target creates .venv/ with the pinned stack (requirements/pinned.txt)
# on first use, then runs. PYTHON picks the interpreter for the venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stan_installed

.PHONY: venv test demo clean-venv

$(STAMP): requirements/pinned.txt requirements/runtime.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/pinned.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# transformers beside our stack, for tests/test_transformers_compat.py only
# (an install test; fetched from the package registry once, kept in .venv).
TRANSFORMERS_DIR := $(VENV)/transformers-4.57.6
$(TRANSFORMERS_DIR)/.complete: $(STAMP)
	rm -rf $(TRANSFORMERS_DIR)
	$(PY) -m pip install -q --target $(TRANSFORMERS_DIR) transformers==4.57.6
	touch $@

# Lint first (flake8 + isort, settings in setup.cfg), then the tests.
# pytest exits 5 when it collected nothing: that is a failure here.
test: $(STAMP) $(TRANSFORMERS_DIR)/.complete
	$(PY) -m flake8 .
	$(PY) -m isort --check-only --diff .
	$(PY) -m pytest tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; \
	exit $$rc

demo: $(STAMP)
	$(PY) tools/synthetic_demo.py

clean-venv:
	rm -rf $(VENV)
