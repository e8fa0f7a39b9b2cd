# One venv, made by the first target that needs it. Python 3.11+ from the base image is all that is required.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cat pyproject.toml requirements.lock 2>/dev/null | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(SUM)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: install demo test serve bench layers synth clean

# Everything: tests, lint, type checks, the CDK stack.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[ml,local,infra,dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP) $(RUN_STAMP)

# What running the product locally needs (demo, serve, bench): a fresh clone's `make demo` installs no more.
$(RUN_STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[ml,local]'
	touch $(RUN_STAMP)

install: $(STAMP)

## The product's main job on the embedded local default (moto in-process, no AWS account).
demo: $(RUN_STAMP)
	$(BIN)/cdp demo

## Lint, type-check and run the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

serve: $(RUN_STAMP)
	$(BIN)/cdp serve

bench: $(RUN_STAMP)
	$(BIN)/cdp bench

## Lambda layers built without Docker (domain code, third-party deps, ML deps) into .build/layers.
layers: $(STAMP)
	$(BIN)/python -m infra.layers

synth: layers
	cd infra && ../$(BIN)/python app.py --outdir cdk.out

clean:
	rm -rf .build cdk.out demo-output bench-output .pytest_cache .mypy_cache .ruff_cache
