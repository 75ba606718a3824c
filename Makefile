# The two set-up commands of the README. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
WORKDIR ?= demo-run

.PHONY: demo test lint venv typecheck pytest

venv: $(VENV)/.installed

# pip byte-compiles on one core (about 100 of a fresh install's 220 s here): install without it, then
# compile on every core. The dependencies' own test suites are never imported: left out. As with pip, a
# file this Python cannot compile (torch ships Python 3.12-only test helpers) is not an install error.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e ".[dev]"
	$(BIN)/python -m compileall -qq -j 0 -x '/tests/' $(VENV)/lib || true
	touch $@

demo: venv
	$(BIN)/rare-ecg demo --workdir $(WORKDIR)

lint: venv
	$(BIN)/ruff check rare_ecg jobs tests benchmarks
	$(BIN)/ruff format --check rare_ecg jobs tests benchmarks
	$(BIN)/mypy

# ruff first (seconds), then mypy beside the test suite: the suite leaves about a third of the 2 cores
# idle (Ray and subprocess start-ups), which mypy's single-core minute fills. Either failing fails the
# target. (Two pytest-xdist processes were tried: 15 minutes instead of 18, but the extra load made a
# Ray start-up in a CLI test time out, ray-project/ray#65983; kept serial.)
test: venv
	$(BIN)/ruff check rare_ecg jobs tests benchmarks
	$(BIN)/ruff format --check rare_ecg jobs tests benchmarks
	$(MAKE) --no-print-directory -j2 typecheck pytest

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest -q
