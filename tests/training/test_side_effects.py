"""Calling the training API from Python leaves process-wide settings alone; only the CLI entry point sets
them."""
import json
import platform
import subprocess
import sys

import pytest

from tests.helpers import write_dataset

PROBE = """
import sys, warnings
import torch
import matplotlib
matplotlib.use('svg')  # a caller's own backend choice
torch.set_num_threads(1)
import torch_geometric, torch_geometric.nn  # third-party imports add filters of their own: not ours to judge
try:
    import torch_sparse, torch_scatter
except ImportError:
    pass
filters, threads = list(warnings.filters), torch.get_num_threads()
import pyg_diffcl, pyg_diffcl.nn, pyg_diffcl.models, pyg_diffcl.datasets, pyg_diffcl.evaluation
from pyg_diffcl.ops import allocator
from pyg_diffcl.training.config import resolve_config
from pyg_diffcl.training.run import train_run
cfg = resolve_config('mf', [{'data': {'name': sys.argv[1]}, 'train': {'epochs': 2, 'batch_size': 64}}])
train_run(cfg, sys.argv[2], quiet=True, log=lambda *a, **k: None)
import json
print(json.dumps({'backend': matplotlib.get_backend(), 'allocator_tuned': allocator._done,
                  'pyplot_imported': 'matplotlib.pyplot' in sys.modules,
                  'filters_kept': list(warnings.filters) == filters, 'threads': torch.get_num_threads()}))
"""


def test_train_run_changes_no_process_setting(tmp_path):
    data = write_dataset(tmp_path / 'd', modalities={})
    res = subprocess.run([sys.executable, '-c', PROBE, str(data), str(tmp_path / 'run')], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    state = json.loads(res.stdout.strip().splitlines()[-1])
    assert (tmp_path / 'run' / 'curves.png').stat().st_size > 0  # the plot was still drawn
    assert state == {'backend': 'svg', 'allocator_tuned': False, 'pyplot_imported': False, 'filters_kept': True,
                     'threads': 1}


DENORMAL = """
import sys, torch
import pyg_diffcl.cli, pyg_diffcl.models, pyg_diffcl.training.run
before = float(torch.tensor([1e-39]) * 1.0)
if sys.argv[1] == 'cli':
    pyg_diffcl.cli.main(['evaluate', sys.argv[2]])
print(before, float(torch.tensor([1e-39]) * 1.0))
"""


@pytest.mark.skipif(platform.machine().lower() not in ('x86_64', 'amd64'), reason='FTZ/DAZ checked on x86 only')
def test_only_the_command_flushes_denormals(tmp_path):
    out = {}
    for mode in ('import', 'cli'):
        res = subprocess.run([sys.executable, '-c', DENORMAL, mode, str(tmp_path / 'missing')], capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        out[mode] = [float(v) for v in res.stdout.split()]
    assert out['import'][0] > 0 and out['import'][1] > 0  # importing the package leaves float handling alone
    assert out['cli'][0] > 0 and out['cli'][1] == 0.0  # the command treats denormals as zero
