"""The example scripts run (on a small generated data set, a few epochs)."""
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / 'examples'


def run(script, *args, timeout=600):
    res = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_ablation_prints_all_eight_variants(tmp_path):
    data = write_dataset(tmp_path / 'mm', num_users=20, num_items=25, modalities={'v': 4, 't': 3})
    out = run('ablation.py', str(data), '--epochs', '1', '--out', str(tmp_path / 'abl'),
              '--set', 'model.embedding_dim=8', '--set', 'model.denoiser_hidden=[8]')
    names = ['DiffCL_baseline', 'DiffCL_diff', 'DiffCL_align', 'DiffCL_h', 'DiffCL_diff+align', 'DiffCL_diff+h',
             'DiffCL_align+h']
    table = out.split('R@10')[-1]
    assert all(f'\n{n} ' in table for n in names) and '\nDiffCL ' in table


def test_ablation_only_trains_the_named_variants(tmp_path):
    data = write_dataset(tmp_path / 'mm', num_users=20, num_items=25, modalities={'v': 4})
    args = ['--epochs', '1', '--out', str(tmp_path / 'abl'), '--set', 'model.embedding_dim=8',
            '--set', 'model.denoiser_hidden=[8]']
    out = run('ablation.py', str(data), *args, '--only', 'DiffCL_h')
    assert sorted(p.name for p in (tmp_path / 'abl').iterdir()) == ['DiffCL_h']
    assert '\nDiffCL_h ' in out and '\nDiffCL_baseline ' not in out
    out = run('ablation.py', str(data), *args, '--only', 'DiffCL_baseline')  # the table shows both now
    assert '\nDiffCL_h ' in out and '\nDiffCL_baseline ' in out


def test_grid_search_selects_on_validation(tmp_path):
    data = write_dataset(tmp_path / 'd', num_users=20, num_items=25, modalities={})
    out = run('grid_search.py', '--model', 'lightgcn', '--data', str(data), '--grid', 'model.num_layers=1,2',
              '--set', 'train.epochs=2', '--out', str(tmp_path / 'g'))
    lines = [l for l in out.split('\n') if l.startswith('num_layers=')]
    valid = [float(l.split()[1]) for l in lines[-2:]]  # the sorted table
    assert valid == sorted(valid, reverse=True)
    assert out.strip().endswith(lines[-2].split()[0])


def test_train_speed_benchmark_runs(tmp_path):
    import json
    data = write_dataset(tmp_path / 'mm', num_users=30, num_items=25, modalities={'v': 4})
    script = EXAMPLES.parent / 'benchmarks' / 'train_speed.py'
    res = subprocess.run([sys.executable, str(script), '--data', str(data), '--epochs', '1', '--diffcl',
                          '--json', str(tmp_path / 'b.json')], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / 'b.json').read_text())
    assert out['ours_epoch_s'] > 0 and out['pyg_lightgcn_epoch_s'] > 0 and out['diffcl_epoch_s'] > 0
    assert out['diffcl_peak_rss_mib'] > 0 and out['lightgcn_peak_rss_mib'] > 0
    assert 'speed-up per training epoch' in res.stdout
