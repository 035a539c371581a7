# Two set-up commands for a newcomer: `make demo` and `make test`. Each creates .venv, installs
# what is missing (skipping work already done) and uses configured or local services, else starts
# private/embedded ones (tests/services.py; the demo says which it uses).
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install test demo lint bench clean mysql-server

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# A MySQL-protocol server for the store tests: the one on :3306, TEST_MYSQL_DSN, or a private
# mariadbd the tests start — installed from Debian's packages when the machine has none.
mysql-server:
	@if [ -z "$$TEST_MYSQL_DSN" ] && ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null \
	    && ! command -v mariadbd >/dev/null && ! command -v mysqld >/dev/null; then \
	  echo "installing mariadb-server for the store tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) \
	    || { echo "cannot install mariadb-server: set TEST_MYSQL_DSN to a MySQL-protocol server"; exit 1; }; \
	fi

test: $(STAMP) mysql-server
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m scripts.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app handlers.py features.py bom.py settings.py store tests scripts bench

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
