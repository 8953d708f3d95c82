# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app shop
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test bench lint install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	@echo
	@echo "  Storefront: http://$(HOST):$(PORT)/   Till: /till   Co-op portal: /coop"
	@echo "  API docs:  http://$(HOST):$(PORT)/api/v1/docs"
	@echo "  OpenAPI:   http://$(HOST):$(PORT)/api/v1/openapi.json"
	@echo "  Pairings:  http://$(HOST):$(PORT)/api/v1/pairings?donor=440606"
	@echo
	$(FLASK) run --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python -m bench

lint: install-dev
	$(BIN)/ruff check .
