# Two commands on a fresh clone: `make demo` and `make test`. Both bootstrap .venv
# in the repo root from the project's own files (only python3 and make assumed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint models clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rps-infer demo

test: $(STAMP)
	$(BIN)/ruff check rps_infer tests scripts
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check rps_infer tests scripts

models: $(STAMP)
	$(BIN)/rps-infer models build

clean-venv:
	rm -rf $(VENV)
