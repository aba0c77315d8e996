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

# The central store's tests run on SQLite and on PostgreSQL: start one on 127.0.0.1 (skipped with
# the reason when it cannot start; as root, as in CI, it must start or the tests fail).
test: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	url=$$(scripts/start-test-postgres.sh) || url=""; \
	if [ "$$(id -u)" -eq 0 ]; then export CADRE_REQUIRE_POSTGRES=1; fi; \
	CADRE_TEST_POSTGRES_URL="$${CADRE_TEST_POSTGRES_URL:-$$url}" $(VENV)/bin/python -m pytest -q

# The centre and a kiosk on 127.0.0.1:8000 and :8080 until Ctrl-C; e.g. DEMO_ARGS="--no-browser".
demo: setup-demo
	$(PY) scripts/demo.py $(DEMO_ARGS)

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache

# The kiosk on Debian 12 arm64 under qemu-user-static, as root: the installer, the kiosk-side
# tests, `kiosk decode` against x86 and a short `kiosk run` (scripts/test-arm64.sh says more).
# test-arm64-ci (run by .ci/run) makes its root with mmdebstrap and installs the venv from wheels
# fetched on x86 instead of running the installer: fast enough from nothing for CI.
# The arm64 roots are kept in /var/cache/cadre-kiosk between runs.
.PHONY: test-arm64 test-arm64-ci
test-arm64: setup-test
	scripts/test-arm64.sh
test-arm64-ci: setup-test
	scripts/test-arm64.sh --ci
