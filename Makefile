# Two commands on a fresh clone: `make demo` and `make test`. Both bootstrap .venv
# in the repo root from the project's own files (only python3 and make assumed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint models baseline bench serve protos clean-venv image

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,serve,bench,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rps-infer demo

# Unit, property and parity tests (each benchmark body runs once), then the timed suite
# with the regression gate: A/B against the commit the baseline names, in the same run.
test: $(STAMP)
	$(BIN)/ruff check rps_infer tests scripts examples
	$(BIN)/python -m pytest tests --pyargs rps_infer.benchmarks --benchmark-disable --durations=25
	$(BIN)/rps-infer gate

# Rewrite benchmarks/baselines/<runner-class>.json from 5 fresh runs (medians) of this
# commit; refuses a dirty tree (the file names the commit it measured).
baseline: $(STAMP)
	$(BIN)/rps-infer baseline --repetitions 5

bench: $(STAMP)
	$(BIN)/rps-infer bench

serve: $(STAMP)
	$(BIN)/rps-infer serve

# Regenerate the committed protobuf/gRPC modules from rps_infer/serving/protos/*.proto.
protos: $(STAMP)
	$(BIN)/python -m rps_infer.serving.protos.generate

lint: $(STAMP)
	$(BIN)/ruff check rps_infer tests scripts examples

models: $(STAMP)
	$(BIN)/rps-infer models build

# The server image (deploy/Containerfile) with docker, podman or buildah, whichever works here;
# prints the image size. IMAGE, TARGET=gpu and PYTHON_IMAGE are passed on (deploy/README.md).
image:
	IMAGE='$(IMAGE)' TARGET='$(TARGET)' PYTHON_IMAGE='$(PYTHON_IMAGE)' sh deploy/build-image.sh

clean-venv:
	rm -rf $(VENV)
