# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   -- create/reuse .venv, install what is missing, train + evaluate LightGCN on the embedded data
#   make test   -- the same set-up, then the test suite
# CUDA users: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pyg_diffcl-installed
DEMO_OUT ?= runs/demo-lightgcn-tiktok
PYTEST_ARGS ?=

.PHONY: setup demo test bench clean-venv

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) -m pyg_diffcl train --model lightgcn --data tiktok --out $(DEMO_OUT) --overwrite

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/train_speed.py

clean-venv:
	rm -rf $(VENV)
