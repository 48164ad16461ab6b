# The two contract commands: `make demo` and `make test`. Each does the whole set-up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.trajet-installed
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, from the CPU build: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -e ".[dev,onnx]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/trajet demo

test: setup
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check trajet flows tests bench infra
	$(BIN)/lint-imports --no-logo

clean:
	rm -rf .trajet .pytest_cache .hypothesis .import_linter_cache
