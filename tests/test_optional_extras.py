"""The library imports and trains without torch-scatter / torch-sparse (torch's own kernels instead)."""
import json
import subprocess
import sys

from tests.helpers import write_dataset

BLOCK = ("import sys; sys.modules['torch_sparse'] = None; sys.modules['torch_scatter'] = None; "
         "import torch_geometric.typing as t; assert not t.WITH_TORCH_SPARSE and not t.WITH_TORCH_SCATTER; ")


def test_trains_without_torch_scatter_and_torch_sparse(tmp_path):
    data = write_dataset(tmp_path / 'toy', num_users=20, num_items=15)
    run = tmp_path / 'run'
    code = BLOCK + ("from pyg_diffcl.ops import available_backends; "
                    "assert 'torch_sparse' not in available_backends(), available_backends(); "
                    "from pyg_diffcl.cli import main; "
                    f"sys.exit(main(['train', '--model', 'lightgcn', '--data', {str(data)!r}, '--epochs', '2', "
                    f"'--out', {str(run)!r}, '--quiet']))")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    m = json.loads((run / 'metrics.json').read_text())
    assert m['epochs_run'] == 2 and m['backend'] not in ('torch_sparse', 'torch_scatter')


def test_torch_sparse_backend_reports_missing_package():
    code = BLOCK + ("import torch; from pyg_diffcl.ops import BipartiteAdj\n"
                    "try:\n    BipartiteAdj(torch.tensor([[0], [0]]), 1, 1, backend='torch_sparse')\n"
                    "except ValueError as e:\n    print(e)")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert 'needs the torch-sparse package' in res.stdout, res.stderr
