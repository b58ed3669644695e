# Every entry point of the workbook. Each target builds .venv first when it is missing or when
# the lock changed, so a fresh machine needs only python3 (3.11+) and make. The environment holds
# exactly the versions in the lock: uv.lock, through `uv sync` when uv is on the PATH, else the
# same versions with their hashes from requirements.lock, through pip.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Material for MkDocs 9.8 prints an end-of-life banner on every build; the pinned version is fine.
export NO_MKDOCS_2_WARNING := 1

.PHONY: help install lock drill drill-publish hosts hosts-publish test test-long test-fresh test-all lint exercises-verify docs docs-build clean

help:
	@echo "make drill       the outage drill: every stage while Twitter hangs, measured, into drill-results/ (about 6 min)"
	@echo "make hosts       stages 04 and 05 on eight hosts, every fault in its quick form, a verdict each (Linux, about 10 min)"
	@echo "make test        run the test suite: every stage and the lab, in parallel (a few minutes)"
	@echo "make test-long   the long end-to-end checks: the drill's scenarios, benchmarks, the lab of hosts (CI runs both)"
	@echo "make test-all    both in one run"
	@echo "make test-fresh  make test in a fresh Debian root with no services and no network (root, debootstrap)"
	@echo "make lint        ruff over the whole workbook (the rules are in pyproject.toml)"
	@echo "make exercises-verify  every exercise's starter and wrong answers fail its check, every stage passes it"
	@echo "make docs        serve the site on http://127.0.0.1:8001"
	@echo "make docs-build  build the site with mkdocs build --strict"
	@echo "make install     only create .venv and install the workbook into it (the locked versions)"
	@echo "make drill-publish  for the maintainers: a full drill written over the site's committed results"
	@echo "make hosts-publish  for the maintainers: the lab of hosts' full committed set, written over docs/results/hosts.*"
	@echo "make lock        update uv.lock and requirements.lock to the newest versions pyproject.toml allows (needs uv)"
	@echo "make clean       remove .venv and the built site"

install: $(INSTALLED)

$(INSTALLED): pyproject.toml uv.lock requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "The workbook needs Python 3.11 or newer, found " + sys.version.split()[0] + ". Try: make PYTHON=python3.12 ...")'
	@if command -v uv >/dev/null 2>&1; then \
		echo "uv sync --frozen (the versions in uv.lock)"; \
		uv sync --frozen --python "$$(command -v $(PYTHON))"; \
	else \
		echo "pip install --require-hashes -r requirements.lock (the versions in the lock; uv would be faster)"; \
		$(PYTHON) -m venv $(VENV) && \
		$(BIN)/python -m pip install --quiet --upgrade pip && \
		$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock && \
		$(BIN)/python -m pip install --quiet --no-deps -e .; \
	fi
	@touch $(INSTALLED)

# The newest versions pyproject.toml allows, into both locks; then run the tests before committing.
lock:
	@command -v uv >/dev/null 2>&1 || { echo "make lock needs uv: python3 -m pip install --user uv"; exit 1; }
	uv lock --upgrade
	uv export --frozen --format requirements-txt --no-emit-project --quiet --output-file requirements.lock

drill: $(INSTALLED)
	$(BIN)/workbook drill --out drill-results $(DRILL_ARGS)

# For the maintainers: a full run of every stage, written over the site's committed results.
drill-publish: $(INSTALLED)
	$(BIN)/workbook drill --out drill-results --publish

hosts: $(INSTALLED)
	$(BIN)/workbook hosts --scenario all --quick $(HOSTS_ARGS)

# For the maintainers: the lab of hosts' committed set, full runs, written over the site's results.
hosts-publish: $(INSTALLED)
	$(BIN)/workbook hosts --publish

# Every test run records each stage's invariants; `workbook matrix` makes the site's table from it.
INVARIANTS_REPORT ?= test-results/invariants.json

test: $(INSTALLED)
	$(BIN)/pytest --invariants-report $(INVARIANTS_REPORT) $(PYTEST_ARGS)

# The checks marked `long`, each a run of its own (a drill, a benchmark): spread one test at a time
# over three workers, since one file holds several.
test-long: $(INSTALLED)
	$(BIN)/pytest -m long -n 3 --dist load $(PYTEST_ARGS)

# The README's commands on a fresh Debian with nothing but python3, python3-venv, make and git, as
# a user, the tests with no network: `make test-fresh FRESH_ARGS="--suite bookworm"` for 3.11.
# Needs root and debootstrap (lab/fresh_machine.py).
test-fresh: $(INSTALLED)
	$(BIN)/workbook fresh-machine $(FRESH_ARGS)

test-all: $(INSTALLED)
	$(BIN)/pytest -m "long or not long" --invariants-report $(INVARIANTS_REPORT) $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .

exercises-verify: $(INSTALLED)
	$(BIN)/workbook exercise verify

docs: $(INSTALLED)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

docs-build: $(INSTALLED)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site
