# The two set-up commands of the README. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
WORKDIR ?= demo-run

.PHONY: demo test lint venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/rare-ecg demo --workdir $(WORKDIR)

lint: venv
	$(BIN)/ruff check rare_ecg jobs tests benchmarks
	$(BIN)/ruff format --check rare_ecg jobs tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q
