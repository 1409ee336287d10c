# Two commands: `make reproduce` (default profile) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PARAMS ?= params/tiny.yaml
KERNEL := slow-thinking

.PHONY: setup reproduce test test-fast test-stage test-smoke lint format publish bench lab notebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-vllm.txt requirements-nodeps.txt pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-vllm.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))" >/dev/null
	touch $@

setup: $(VENV)/.installed

reproduce: setup
	$(BIN)/python -m helpers.run $(PARAMS) $(ARGS)

test: setup   # every tier: unit, stage and smoke (CI runs this)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup   # unit tests only: no model loaded (minutes)
	$(BIN)/python -m pytest tests -m unit $(PYTEST_ARGS)

test-stage: setup   # tests that load the backbone, train, generate or launch
	$(BIN)/python -m pytest tests -m stage $(PYTEST_ARGS)

test-smoke: setup   # the smoke profile end to end, then nbval over the notebooks
	$(BIN)/python -m pytest -m smoke $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

publish: setup   # copy a finished run's report, tables and figures to outputs/reference
	$(BIN)/python -m helpers.analysis.report $(PARAMS)

bench: setup
	$(BIN)/python tools/bench.py

notebooks: setup   # re-execute the committed notebooks in place at their smoke defaults
	$(BIN)/python tools/refresh_notebooks.py

lab: setup
	$(BIN)/jupyter lab notebooks/
