# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   -- create/reuse .venv, install what is missing, train + evaluate LightGCN on the embedded data
#   make test   -- the same set-up, then the test suite
#   make docs   -- the documentation site (Sphinx; warnings are errors) in docs/_build/html
# CUDA users: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pyg_diffcl-installed
DEMO_OUT ?= runs/demo-lightgcn-tiktok
PYTEST_ARGS ?=

.PHONY: setup demo test docs bench clean-venv

setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) -m pyg_diffcl train --model lightgcn --data tiktok --out $(DEMO_OUT) --overwrite

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The documentation site, warnings as errors: docs/_build/html/index.html
docs: setup
	$(PY) -m pip install --disable-pip-version-check -q --no-build-isolation -e ".[docs]" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html

bench: setup
	$(PY) benchmarks/train_speed.py

clean-venv:
	rm -rf $(VENV)
