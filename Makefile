# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: test demo setup-run setup-test lint clean

$(VENV)/.installed-%: pyproject.toml
	scripts/install-system-packages.sh $*
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,postgres]'
	touch $@

setup-test: $(VENV)/.installed-test
setup-demo: $(VENV)/.installed-demo

test: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

demo: setup-demo
	$(PY) scripts/demo.py

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache
