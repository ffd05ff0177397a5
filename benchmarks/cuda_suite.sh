#!/usr/bin/env bash
# The CUDA checks as one script, for a machine with a GPU: the CUDA-marked tests, then the benchmarks with
# --device cuda, each under its own time limit, every log and JSON written to OUT (default runs/cuda-suite).
#
#   bash benchmarks/cuda_suite.sh [OUT]
#
# Runs from a source tree (PYTHONPATH=.), so the machine needs torch with CUDA, torch-geometric, numpy,
# pandas, PyYAML and pytest; torch-scatter and torch-sparse are optional (their backends are skipped without
# them). Nothing here trains a full model: tables are trained with `pyg-diffcl reproduce ... --set
# train.device=cuda`.
set -u
OUT=${1:-${OUT:-runs/cuda-suite}}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
step() {  # step NAME SECONDS CMD...: run CMD with a limit, its output in OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s"
  tail -n 40 "$OUT/$name.txt"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
$PY - >> "$OUT/gpu.txt" 2>&1 <<'PYEOF'
import importlib, torch, torch_geometric
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())
print('torch_geometric', torch_geometric.__version__)
for m in ('torch_scatter', 'torch_sparse', 'pyg_lib', 'faiss', 'optuna'):
    try:
        importlib.import_module(m)
        print(m, 'present')
    except Exception as e:
        print(m, 'absent:', type(e).__name__)
from pyg_diffcl.ops import available_backends
print('backends', available_backends())
PYEOF
cat "$OUT/gpu.txt"
step pytest-cuda "${TEST_LIMIT:-240}" $PY -m pytest -q -p no:cacheprovider -m cuda -rs tests/ops/test_cuda.py \
  tests/training/test_run_policies.py
step propagation "${PROP_LIMIT:-150}" $PY benchmarks/propagation.py --device cuda --graphs baby,tiktok --dims 64 \
  --layers 1,2,4 --json "$OUT/propagation-cuda.json"
step knn "${KNN_LIMIT:-90}" $PY benchmarks/knn.py --device cuda --cases 7000:4096,50000:384,200000:128 \
  --metrics cosine --repeats 3 --json "$OUT/knn-cuda.json"
step reliability "${REL_LIMIT:-120}" $PY benchmarks/reliability_cost.py --device cuda --epochs 3 \
  --json "$OUT/reliability-cuda.json"
