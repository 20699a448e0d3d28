# Every target installs what it needs first, and does nothing the second time.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := chromium chromium-headless-shell fonts-noto-cjk xvfb xauth postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: system-packages install demo test bench bench-full chaos lint sandbox clean

install: $(STAMP) system-packages

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium (Playwright cannot download its own here), CJK fonts for readable
# Japanese screenshots, Xvfb for headed runs, PostgreSQL (the tests start a throwaway cluster with
# its initdb/pg_ctl from /usr/lib/postgresql/*/bin). apt-get runs only when something is missing.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

demo: install
	$(BIN)/kuroko demo

# Two workers (this machine has two cores; the tests wait on browsers and subprocesses much of the
# time); a file's tests stay on one worker, so module-scoped setups are built once.
TEST_WORKERS ?= 2
test: install
	$(BIN)/pytest -m "not chaos_full" -n $(TEST_WORKERS) --dist loadfile

# About 10 minutes: the 40-order procedure-A day, the floor, every site, 1 vs 2 robots on PostgreSQL.
bench: install
	$(BIN)/python -m kuroko.ops.bench

# The same and the 1,000-order day (about an hour here): memory flat with the size of the day.
bench-full: install
	$(BIN)/python -m kuroko.ops.bench --full

chaos: install
	$(BIN)/pytest -m chaos_full tests/test_crash_safety.py -s

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

sandbox: install
	$(BIN)/kuroko sandbox

clean:
	rm -rf $(VENV) test-results data
