# Two commands: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000
# Every machine installs exactly these versions, checked against these hashes.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
PIP_TOOLS := pip-tools==7.6.2

.PHONY: run test lint translations lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs are stamped so a second `make` does not reinstall; a new lock re-runs them.
# The project itself goes in last, editable, without its own dependency resolution.
$(VENV)/.installed: $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(DEV_LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.installed

translations: $(VENV)/.installed
	$(BIN)/pybabel compile --directory shop/translations --statistics

run: $(VENV)/.installed translations
	$(FLASK) db upgrade
	$(FLASK) demo seed --if-empty
	$(FLASK) boards follow
	$(FLASK) ledger sign-head
	@echo "Lianxin Market is serving on http://$(HOST):$(PORT)/ (gunicorn; Ctrl-C stops it)"
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} HOST=$(HOST) PORT=$(PORT) \
		$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(VENV)/.installed-dev translations
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# After changing dependencies in pyproject.toml: `make lock`, then commit both files.
# Resolved against PyPI only (not this machine's extra indexes), for Python 3.11.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet $(PIP_TOOLS)
	PIP_CONFIG_FILE=/dev/null .venv-lock/bin/pip-compile --quiet --generate-hashes \
		--allow-unsafe --all-build-deps --strip-extras --no-emit-index-url --no-emit-find-links \
		--index-url https://pypi.org/simple --output-file $(LOCK) pyproject.toml
	PIP_CONFIG_FILE=/dev/null .venv-lock/bin/pip-compile --quiet --generate-hashes \
		--allow-unsafe --all-build-deps --strip-extras --no-emit-index-url --no-emit-find-links \
		--index-url https://pypi.org/simple --extra dev --constraint $(LOCK) \
		--output-file $(DEV_LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .venv-lock .pytest_cache .ruff_cache
