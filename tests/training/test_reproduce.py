"""``pyg-diffcl reproduce``: a small table over two seeds; the aggregate against the run directories' own
metrics, reuse of finished runs, the README block written and then checked."""
import json
import statistics

import pytest

from pyg_diffcl.training.reproduce import TEST_KEYS, load_table, stated
from tests.helpers import run_cli, write_dataset


@pytest.fixture
def table(tmp_path):
    data = write_dataset(tmp_path / 'toy', num_users=30, num_items=25, modalities={})
    path = tmp_path / 'small.yaml'
    path.write_text(f'data: {data}\nseeds: [0, 1]\nrows:\n'
                    '  - name: MF\n    model: mf\n    set: [train.epochs=2, model.embedding_dim=8]\n'
                    '  - name: LightGCN, 1 layer\n    model: lightgcn\n'
                    '    set: [train.epochs=2, model.num_layers=1, model.embedding_dim=8]\n')
    return path


def test_reproduce_runs_aggregates_reuses_and_checks(table, tmp_path):
    out, readme = tmp_path / 'runs', tmp_path / 'README.md'
    readme.write_text('# x\n\n<!-- reproduce:small -->\n<!-- /reproduce:small -->\n\nafter\n')
    res = run_cli('reproduce', str(table), '--out', str(out), '--readme', str(readme), '--write-readme')
    assert res.returncode == 0, res.stderr
    dirs = {name: [out / f'{key}-s{s}' for s in (0, 1)] for name, key in (('MF', 'mf'),
                                                                           ('LightGCN, 1 layer', 'lightgcn-1-layer'))}
    claims = stated(readme, 'small')
    assert set(claims) == set(dirs)
    for name, runs in dirs.items():
        ms = [json.loads((d / 'metrics.json').read_text()) for d in runs]
        assert [m['seed'] for m in ms] == [0, 1]
        for k in TEST_KEYS:
            values = [m['test'][k] for m in ms]
            mean, std = claims[name][k]
            assert mean == pytest.approx(statistics.mean(values), abs=5e-5)
            assert std == pytest.approx(statistics.stdev(values), abs=5e-5)
    text = readme.read_text()
    assert text.startswith('# x\n\n<!-- reproduce:small -->\n| model | seeds |') and text.endswith('\n\nafter\n')
    # A second call reuses every finished run (nothing retrained) and finds the figures within the stated std.
    stamps = {d: (d / 'metrics.json').stat().st_mtime_ns for runs in dirs.values() for d in runs}
    res = run_cli('reproduce', str(table), '--out', str(out), '--readme', str(readme))
    assert res.returncode == 0, res.stderr
    assert all((d / 'metrics.json').stat().st_mtime_ns == t for d, t in stamps.items())
    assert res.stderr.count('reusing') == 4
    verdicts = [line.split()[-1] for line in res.stdout.splitlines() if '±' in line and 'recall@' in line
                or 'ndcg@' in line and '±' in line]
    assert verdicts and set(verdicts) == {'yes'}
    # A stated figure the runs do not reproduce is reported, with exit status 1.
    import re
    text = readme.read_text()
    mf = next(line for line in text.splitlines() if line.startswith('| MF |'))
    readme.write_text(text.replace(mf, re.sub(r'[0-9.]+ ± [0-9.]+', '0.9999 ± 0.0001', mf, count=1)))
    assert stated(readme, 'small')['MF']['recall@20'] == (0.9999, 0.0001)
    res = run_cli('reproduce', str(table), '--out', str(out), '--readme', str(readme))
    assert res.returncode == 1 and '1 of 8 figures outside the stated std' in res.stderr
    assert any(line.startswith('MF') and 'recall@20' in line and line.endswith('NO') for line in res.stdout.splitlines())

def test_packaged_tiktok_table():
    name, spec = load_table('tiktok')
    assert name == 'tiktok' and spec['seeds'] == [0, 1, 2]
    assert [r['model'] for r in spec['rows']] == ['lightgcn', 'diffcl', 'ld4mrec']


def test_unknown_table(tmp_path):
    res = run_cli('reproduce', 'nope')
    assert res.returncode == 2 and 'no such table' in res.stderr and 'tiktok' in res.stderr
