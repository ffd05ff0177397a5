#!/usr/bin/env bash
# Create or reuse the virtual environment at $VENV (default .venv) and install what is missing.
#
#   TORCH_SPEC   the torch requirement (default "torch==2.13.0", the CPU build on this project's machines).
#                CUDA users, for example:
#                  make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
#   PYG_SPEC     the torch-geometric requirement installed and tested here (default "torch-geometric==2.8.1";
#                pyproject.toml itself only asks for >= 2.6)
#   PYTHON       the interpreter that creates the venv (default python3)
#
# torch-scatter and torch-sparse are compiled against the installed torch with --no-build-isolation
# (several minutes the first time; pip caches the built wheels, so later installs take seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYG_SPEC=${PYG_SPEC:-torch-geometric==2.8.1}
STAMP="$VENV/.pyg_diffcl-installed"

# Fast path: everything was installed after the last change to the project's dependencies.
if [ -f "$STAMP" ] && [ -x "$VENV/bin/python" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt "$0" ]; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_q() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "[setup] installing $TORCH_SPEC"
    # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options such as --index-url
    pip_q $TORCH_SPEC
fi
"$PY" -c "import setuptools, wheel" 2>/dev/null || pip_q "setuptools>=64" wheel
for pkg in torch_scatter:torch-scatter==2.1.2 torch_sparse:torch-sparse==0.6.18; do
    mod=${pkg%%:*}; req=${pkg#*:}
    if ! "$PY" -c "import $mod" 2>/dev/null; then
        echo "[setup] installing $req (compiled against the installed torch the first time: minutes)"
        # torch-sparse needs scipy at run time; install it first so the build is the only slow step.
        [ "$mod" = torch_sparse ] && pip_q scipy
        pip_q --no-build-isolation "$req"
    fi
done
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "[setup] installing pyg_diffcl (editable) and its dependencies"
    # shellcheck disable=SC2086
    pip_q --no-build-isolation $PYG_SPEC -e ".[test,tune]"
    touch "$STAMP"
fi
