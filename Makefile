# `make run` and `make test` do all the set-up on a fresh machine.
#
# DJANGO picks the Django the venv gets: 6.1 (the project's, on Python 3.12)
# or 5.2 (the LTS, on Python 3.11), each in a venv of its own; PYTHON_VERSION
# and VENV pick another Python (CI also runs Django 6.1 on 3.13). STACK picks how
# the tests serve the app: fast (the project's opt-in handler and middleware)
# or stock (Django's own, as a project that installs the app would).
DJANGO ?= 6.1
STACK ?= fast
ifeq ($(DJANGO),6.1)
VENV ?= .venv
# 3.12, not 3.13: under bench.soak the web process's memory grew ~14 % a
# minute on this machine's Python 3.13.0 and stayed flat on 3.12 (docs/benchmarks.md).
PYTHON_VERSION ?= 3.12
else
VENV ?= .venv-django-$(DJANGO)
PYTHON_VERSION ?= 3.11
endif
PYTHON ?= $(shell scripts/find-python.sh $(PYTHON_VERSION))
PY := $(VENV)/bin/python
PORT ?= 8000
# The browser tests drive Debian's Chromium (never a downloaded one).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUNTIME := requirements/base.txt requirements/django-$(DJANGO).txt

.PHONY: run test lint docs bench clean

# uv installs the pinned requirements: a venv with everything the tests
# need took 43 s with pip and 8 s with uv here (CI makes three). pip stays
# in the venv, current, for what runs it (tests/test_install.py).
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.10
PIP_VERSION := 26.3

$(VENV)/.installed-run: $(RUNTIME)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(UV) pip install --quiet --python $(PY) pip==$(PIP_VERSION) $(addprefix -r ,$(RUNTIME))
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run requirements-dev.txt
	$(UV) pip install --quiet --python $(PY) -r requirements-dev.txt
	touch $@

# A development .env on first run: DEBUG on and a secret key of its own, so
# every manage.py command works in any shell. Never overwritten.
.env:
	printf '# Written by `make run` for development; see .env.example.\nDEBUG=true\nSECRET_KEY=%s\n' \
		"$$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > $@

# Development server: daphne's ASGI runserver, so answers stream token by
# token, and beside it the task worker that keeps conversations' memory.
# Ctrl-C (or the server exiting) stops both.
run: $(VENV)/.installed-run .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_account --url http://127.0.0.1:$(PORT)/
	$(PY) manage.py db_worker --interval 0.5 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# The AI SDK's own client code, which tests/test_ai_sdk.py drives with Node,
# installed from its lock file.
AISDK := tests/aisdk/node_modules/.package-lock.json
$(AISDK): tests/aisdk/package-lock.json
	npm ci --prefix tests/aisdk --no-audit --no-fund --loglevel=error

# The whole suite, on DATABASE_URL (SQLite by default), browser tests included,
# in one process. PYTEST_ARGS narrows or spreads it, e.g.
# PYTEST_ARGS='-n 2 -m "not e2e"': all but the end-to-end tests on two
# pytest-xdist workers, as CI runs them (docs/development.md).
PYTEST_ARGS ?=
test: $(VENV)/.installed-dev $(CHROMIUM) $(AISDK)
	CHATSTREAM_STACK=$(STACK) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SECRET_KEY=lint $(VENV)/bin/mypy conversations chatstream

# The settings table of docs/configuration.md and the app's part of
# .env.example, from conversations/conf.py (a test checks they are current).
docs: $(VENV)/.installed-run
	$(PY) scripts/settings-docs.py

bench: $(VENV)/.installed-dev
	$(PY) -m bench

clean:
	rm -rf .venv .venv-* db.sqlite3 test-db.sqlite3* staticfiles build *.egg-info
