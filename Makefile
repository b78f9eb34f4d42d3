# The two set-up commands: `make run` and `make test`. Both set themselves up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench lint format install clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip > $(VENV)/pip.log 2>&1
	@$(PY) -m pip install --quiet -e . >> $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@$(PY) -m pip install --quiet -e '.[dev]' >> $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	@touch $@

install: $(VENV)/.installed

# `make run` is the embedded profile, whatever the shell has set for the services profile.
EMBEDDED := env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL -u CELERY_TASK_ALWAYS_EAGER -u EMBEDDED_SCHEDULER

run: $(VENV)/.installed
	@$(PY) scripts/packages.py run
	@$(EMBEDDED) $(PY) manage.py migrate --noinput -v0
	@$(EMBEDDED) $(PY) manage.py seed_demo
	@echo ""
	@echo "TrustGate is starting on http://$(HOST):$(PORT)/  (operations console: http://$(HOST):$(PORT)/admin/)"
	@echo "Embedded profile: SQLite in var/, tasks and the periodic schedule run in this process."
	@echo "Mail to platform mailboxes: a private Dovecot under var/mail/; other mail: var/outbox/."
	@exec $(EMBEDDED) $(VENV)/bin/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --lifespan off

# make test ARGS="tests/reputation -k scoring" runs a subset (pytest arguments, no static checks).
test: $(VENV)/.installed-dev
	@$(PY) scripts/testrun.py $(ARGS)

bench: $(VENV)/.installed-dev
	@$(PY) scripts/testrun.py --bench

lint: $(VENV)/.installed-dev
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .ruff_cache
