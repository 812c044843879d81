# The two commands: `make run` starts the whole service, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# honcho sets PORT for each process it starts, so the web port travels as WEB_PORT.
WEB_PORT := $(PORT)
export HOST WEB_PORT

.PHONY: run test install lint format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed; $(PYTHON) is $$($(PYTHON) --version 2>&1)."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py train_models --if-none-active
	$(BIN)/python manage.py bootstrap --base-url http://$(HOST):$(PORT)
	rm -rf var/prometheus && mkdir -p var/prometheus
	$(BIN)/honcho start --procfile Procfile.dev

# Tests keep their database, broker folder and cache apart from a local `make run`.
test: install
	VAR_DIR=$${VAR_DIR:-$(CURDIR)/var/test} $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
