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
    # The worst seed of each row: the lower of the two runs' test recall@20, and its seed.
    for name, runs in dirs.items():
        ms = [json.loads((d / 'metrics.json').read_text()) for d in runs]
        low = min((m['test']['recall@20'], m['seed']) for m in ms)
        row = next(line for line in text.splitlines() if line.startswith(f'| {name} |'))
        assert f'| {low[0]:.4f} (seed {low[1]}) |' in row
    assert '| worst seed: recall@20 |' in text
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
    assert name == 'tiktok' and spec['seeds'] == [0, 1, 2, 3, 4]
    assert [r['model'] for r in spec['rows']] == ['lightgcn', 'diffcl', 'ld4mrec']


def test_a_table_without_seeds_runs_five(tmp_path):
    from pyg_diffcl.training.reproduce import check_spec
    spec = {'rows': [{'name': 'A', 'model': 'mf'}]}
    check_spec(spec, 'x')
    assert spec['seeds'] == [0, 1, 2, 3, 4]
    for bad in ([], [0, -1], 'all', [True]):
        with pytest.raises(Exception, match='seeds must be a non-empty list'):
            check_spec({'rows': [{'name': 'A', 'model': 'mf'}], 'seeds': bad}, 'x')


def test_unknown_table(tmp_path):
    res = run_cli('reproduce', 'nope')
    assert res.returncode == 2 and 'no such table' in res.stderr and 'tiktok' in res.stderr


def test_tables_share_runs_and_choose_their_columns(tmp_path):
    """A second table reuses (copies) the first table's finished run of an identical configuration and trains
    only the new one; its `metrics` key picks the test columns."""
    data = write_dataset(tmp_path / 'toy', num_users=30, num_items=25, modalities={})
    base = f'data: {data}\nseeds: [0]\n'
    mf = '  - name: {name}\n    model: mf\n    set: [train.epochs=2, model.embedding_dim={d}]\n'
    (tmp_path / 'a.yaml').write_text(base + 'rows:\n' + mf.format(name='MF', d=8))
    (tmp_path / 'b.yaml').write_text(base + 'metrics: [recall@10, ndcg@10]\nrows:\n'
                                     + mf.format(name='MF again', d=8) + mf.format(name='MF wider', d=16))
    runs = tmp_path / 'runs'
    res = run_cli('reproduce', str(tmp_path / 'a.yaml'), '--out', str(runs / 'reproduce-a'), '--readme',
                  str(tmp_path / 'none.md'))
    assert res.returncode == 0, res.stderr
    res = run_cli('reproduce', str(tmp_path / 'b.yaml'), '--out', str(runs / 'reproduce-b'), '--readme',
                  str(tmp_path / 'none.md'))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count('(the same configuration)') == 1 and res.stderr.count('training ->') == 1
    first = json.loads((runs / 'reproduce-a' / 'mf-s0' / 'metrics.json').read_text())
    copied = json.loads((runs / 'reproduce-b' / 'mf-again-s0' / 'metrics.json').read_text())
    assert copied == first
    header = next(line for line in res.stdout.splitlines() if line.startswith('| model |'))
    assert 'test recall@10 | test ndcg@10 | worst seed: recall@10 | valid recall@20' in header and 'recall@50' not in header
    wider = json.loads((runs / 'reproduce-b' / 'mf-wider-s0' / 'metrics.json').read_text())
    row = next(line for line in res.stdout.splitlines() if line.startswith('| MF wider |'))
    assert f"| {wider['test']['recall@10']:.4f} |" in row and '±' not in row  # one seed: no spread shown
    # the README block of a one-seed table reads back as (figure, std 0)
    readme = tmp_path / 'R.md'
    readme.write_text('<!-- reproduce:b -->\n<!-- /reproduce:b -->\n')
    res = run_cli('reproduce', str(tmp_path / 'b.yaml'), '--out', str(runs / 'reproduce-b'), '--readme', str(readme),
                  '--write-readme')
    assert res.returncode == 0, res.stderr
    got = stated(readme, 'b')['MF wider']['recall@10']
    assert got == (pytest.approx(wider['test']['recall@10'], abs=5e-5), 0.0)


def test_bad_tables(tmp_path):
    data = write_dataset(tmp_path / 'toy', num_users=10, num_items=8, modalities={})
    cases = {
        'metrics: [recall@x]\nrows:\n  - {name: A, model: mf}\n': 'metrics must be a non-empty list',
        'rows:\n  - {name: A b, model: mf}\n  - {name: a-B, model: mf}\n': 'row names must differ',
        'rows:\n  - {name: A}\n': 'needs a name and a model',
        'timing: 3\nrows:\n  - {name: A, model: mf}\n': 'timing must be true or false',
    }
    for n, (body, message) in enumerate(cases.items()):
        path = tmp_path / f't{n}.yaml'
        path.write_text(f'data: {data}\n' + body)
        res = run_cli('reproduce', str(path), '--out', str(tmp_path / 'r'))
        assert res.returncode == 2 and message in res.stderr, res.stderr


def test_every_packaged_table_runs_at_least_five_seeds():
    """Every results table is a mean over five seeds or more (a spread and a worst seed to show)."""
    from pyg_diffcl.training.reproduce import TABLES_DIR
    names = sorted(p.stem for p in TABLES_DIR.glob('*.yaml'))
    assert {'tiktok', 'tiktok-variants', 'tiktok-ablation', 'tiktok-baselines'} <= set(names)
    for name in names:
        seeds = load_table(name)[1]['seeds']
        assert len(set(seeds)) >= 5 and set(range(5)) <= set(seeds), (name, seeds)


def test_packaged_variant_and_ablation_tables():
    """The ablation table's rows are the 8 switch combinations, each once; every packaged row resolves."""
    from pyg_diffcl.training.reproduce import row_config
    _, spec = load_table('tiktok-ablation')
    switches = set()
    for row in spec['rows']:
        m = row_config(spec, row, 0).model
        switches.add((m.use_diffusion, m.use_alignment, m.use_item_graph))
    assert len(switches) == 8 and spec['metrics'] == ['recall@10', 'recall@20', 'ndcg@10', 'ndcg@20']
    _, spec = load_table('tiktok-variants')
    for row in spec['rows']:
        assert row_config(spec, row, 1).train.seed == 1


def test_write_readme_with_rows_keeps_the_other_rows(table, tmp_path):
    """Regenerating one row (--rows) leaves the README's other rows as they were, in the table's order."""
    out, readme = tmp_path / 'runs', tmp_path / 'README.md'
    readme.write_text('<!-- reproduce:small -->\n<!-- /reproduce:small -->\n')
    assert run_cli('reproduce', str(table), '--out', str(out), '--readme', str(readme), '--write-readme',
                   '--rows', 'lightgcn-1-layer').returncode == 0
    first = readme.read_text()
    assert '| LightGCN, 1 layer |' in first and '| MF |' not in first
    res = run_cli('reproduce', str(table), '--out', str(out), '--readme', str(readme), '--write-readme',
                  '--rows', 'MF')
    assert res.returncode == 0, res.stderr
    lines = [line for line in readme.read_text().splitlines() if line.startswith('| ')]
    assert [line.split('|')[1].strip() for line in lines[2:]] == ['MF', 'LightGCN, 1 layer']
    kept = next(line for line in first.splitlines() if line.startswith('| LightGCN, 1 layer |'))
    assert kept in lines  # untouched


def test_packaged_baselines_table():
    """Every baseline row resolves to its model over seeds 0-4; DiffCL's row is the packaged DiffCL."""
    from pyg_diffcl.training.reproduce import row_config
    _, spec = load_table('tiktok-baselines')
    assert spec['seeds'] == [0, 1, 2, 3, 4]
    names = {row['name']: row_config(spec, row, 0).model_name for row in spec['rows']}
    assert names == {'LightGCN': 'lightgcn', 'VBPR': 'vbpr', 'FREEDOM': 'freedom', 'BM3': 'bm3',
                     'DiffMM': 'diffmm', 'DiffCL': 'diffcl'}
    _, main = load_table('tiktok')
    diffcl = next(r for r in spec['rows'] if r['model'] == 'diffcl')
    assert row_config(spec, diffcl, 0).to_dict() == row_config(main, next(r for r in main['rows']
                                                                         if r['model'] == 'diffcl'), 0).to_dict()


def test_a_timed_table_shows_each_rows_seconds_per_epoch(table, tmp_path):
    """``timing: true``: a last column with the median (and range) of the seeds' seconds per epoch, read from
    each run's metrics.json; the stated block still reads back as its test figures."""
    timed = tmp_path / 'timed.yaml'
    timed.write_text(table.read_text().replace('seeds: [0, 1]', 'seeds: [0, 1]\ntiming: true'))
    out, readme = tmp_path / 'runs', tmp_path / 'R.md'
    readme.write_text('<!-- reproduce:timed -->\n<!-- /reproduce:timed -->\n')
    res = run_cli('reproduce', str(timed), '--out', str(out), '--readme', str(readme), '--write-readme')
    assert res.returncode == 0, res.stderr
    lines = readme.read_text().splitlines()
    assert lines[1].endswith('| selected epochs | s / epoch |')
    for name, key in (('MF', 'mf'), ('LightGCN, 1 layer', 'lightgcn-1-layer')):
        secs = sorted(json.loads((out / f'{key}-s{s}' / 'metrics.json').read_text())['seconds_per_epoch']
                      for s in (0, 1))
        mid = (secs[0] + secs[1]) / 2  # the median of two
        assert secs[0] < 10  # a toy run: two decimals
        cell = f'{mid:.2f}' if f'{secs[0]:.2f}' == f'{secs[1]:.2f}' else f'{mid:.2f} ({secs[0]:.2f}-{secs[1]:.2f})'
        row = next(line for line in lines if line.startswith(f'| {name} |'))
        assert row.endswith(f'| {cell} |')
        assert row.count('|') == lines[1].count('|')
    assert set(stated(readme, 'timed')['MF']) == set(TEST_KEYS)
    from pyg_diffcl.training.reproduce import seconds_cell
    assert seconds_cell([4.51, 4.93, 4.7]) == '4.70 (4.51-4.93)' and seconds_cell([121.4, 119.6]) == '120 (120-121)'
    assert seconds_cell([33.3]) == '33.3'


def assert_main_rows_but_sampled(spec, free) -> None:
    """Each row of :obj:`spec` (five seeds, timed) is the main tiktok table's row of its model, except in the
    ``train`` keys :obj:`free` of its sampled rows (named so), which train on ``loader: neighbor`` with unseen
    negatives and, where they set a fan-out, one per hop (the layers, and DiffCL's item-graph hop)."""
    from pyg_diffcl.training.reproduce import row_config
    _, main = load_table('tiktok')
    assert spec['seeds'] == [0, 1, 2, 3, 4] and spec['timing'] is True
    ref = {r['model']: row_config(main, r, 0).to_dict() for r in main['rows']}
    for row in spec['rows']:
        got = row_config(spec, row, 0).to_dict()
        want = ref[row['model']]
        if 'sampled' in row['name']:
            train = got['train']
            assert train['loader'] == 'neighbor' and train['neighbor_negatives'] == 'unseen', row['name']
            if train['num_neighbors'] is not None:
                hops = want['model']['num_layers'] + (row['model'] == 'diffcl')
                assert len(train['num_neighbors']) == hops, row['name']
            for key in free:
                train[key] = want['train'][key]
        assert got == want, row['name']


def test_packaged_sampled_table():
    """The sampled rows are the main table's LightGCN and DiffCL with ``train.loader=neighbor`` and nothing
    else; the whole-graph rows are the main table's."""
    _, spec = load_table('tiktok-sampled')
    assert_main_rows_but_sampled(spec, ('loader',))


def test_benchmark_table_of_cheaper_sampled_settings():
    """``benchmarks/tables/tiktok-sampled-cheap.yaml`` (docs/scaling.md) changes the main table's LightGCN and
    DiffCL in the sampled loader's settings only, so that its rows compare with the whole-graph rows."""
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / 'benchmarks' / 'tables' / 'tiktok-sampled-cheap.yaml'
    _, spec = load_table(str(path))
    assert all('sampled' in row['name'] for row in spec['rows'])
    assert_main_rows_but_sampled(spec, ('loader', 'num_neighbors', 'batch_size', 'item_graph_neighbors'))


def test_the_stated_table_is_found_in_the_readme_and_the_results_pages(tmp_path):
    from pyg_diffcl.training.reproduce import find_pages
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'README.md').write_text('<!-- reproduce:head -->\n<!-- /reproduce:head -->\n')
    (tmp_path / 'docs' / 'results.md').write_text('# R\n<!-- reproduce:more -->\n<!-- /reproduce:more -->\n'
                                                  '<!-- reproduce:head -->\n<!-- /reproduce:head -->\n')
    (tmp_path / 'docs' / 'seeds.md').write_text('<!-- reproduce:more -->\n<!-- /reproduce:more -->\n')
    assert find_pages('head', tmp_path) == [tmp_path / 'README.md', tmp_path / 'docs' / 'results.md']
    assert find_pages('more', tmp_path) == [tmp_path / 'docs' / 'results.md']  # other pages only when named
    assert find_pages('none', tmp_path) == [tmp_path / 'README.md']


def test_seed_ranges():
    from pyg_diffcl.training.reproduce import seed_ranges
    assert seed_ranges([0, 1, 2, 3, 4]) == '0-4'
    assert seed_ranges([4, 0, 1, 2, 3, 9, 7, 8]) == '0-4, 7-9'
    assert seed_ranges([0, 1, 5]) == '0, 1, 5'
    assert seed_ranges([3]) == '3'


def test_an_interrupted_run_of_another_configuration_is_trained_afresh(table, tmp_path):
    """A run directory left interrupted (``last.pt``) by another configuration of the same (row, seed) is not
    resumed: the row is trained afresh to its own configuration."""
    import yaml
    out = tmp_path / 'runs'
    assert run_cli('reproduce', str(table), '--out', str(out), '--rows', 'MF', '--seeds', '0').returncode == 0
    run = out / 'mf-s0'
    want = json.loads((run / 'metrics.json').read_text())
    (run / 'metrics.json').unlink()
    (run / 'last.pt').write_bytes(b'not a checkpoint of this configuration')
    cfg = yaml.safe_load((run / 'config.yaml').read_text())
    cfg['train']['lr'] = cfg['train']['lr'] * 10
    (run / 'config.yaml').write_text(yaml.safe_dump(cfg))
    res = run_cli('reproduce', str(table), '--out', str(out), '--rows', 'MF', '--seeds', '0')
    assert res.returncode == 0, res.stderr
    assert 'another configuration' in res.stderr and 'resuming' not in res.stderr
    got = json.loads((run / 'metrics.json').read_text())
    assert got['test'] == want['test'] and not (run / 'last.pt').exists()


def test_a_finished_run_is_reused_whatever_device_trained_it(table, tmp_path):
    """``train.device`` and ``train.checkpoint_every`` decide nothing a run learns: a finished run recorded as
    trained on CUDA (with another checkpoint interval) is reused on the CPU, in its own table and from a
    sibling table, while a run differing in a learning setting is not."""
    import yaml
    out = tmp_path / 'runs'
    assert run_cli('reproduce', str(table), '--out', str(out), '--rows', 'MF', '--seeds', '0').returncode == 0
    run = out / 'mf-s0'
    cfg = yaml.safe_load((run / 'config.yaml').read_text())
    cfg['train'].update(device='cuda', checkpoint_every=7)
    (run / 'config.yaml').write_text(yaml.safe_dump(cfg))
    stamp = (run / 'metrics.json').stat().st_mtime_ns
    res = run_cli('reproduce', str(table), '--out', str(out), '--rows', 'MF', '--seeds', '0')
    assert res.returncode == 0, res.stderr
    assert f'reusing {run} (trained on cuda)' in res.stderr and 'training ->' not in res.stderr
    assert (run / 'metrics.json').stat().st_mtime_ns == stamp
    # From a sibling table's directory: copied, not retrained.
    other = tmp_path / 'other'
    res = run_cli('reproduce', str(table), '--out', str(other), '--rows', 'MF', '--seeds', '0')
    assert res.returncode == 0, res.stderr
    assert 'the same configuration' in res.stderr and 'training ->' not in res.stderr
    assert (other / 'mf-s0' / 'metrics.json').read_bytes() == (run / 'metrics.json').read_bytes()
    # A learning setting that differs (the lr) makes it another run: trained afresh (the sibling's copy, of the
    # table's own configuration, would be reused, so it goes first).
    import shutil
    shutil.rmtree(other)
    cfg['train']['lr'] = cfg['train']['lr'] * 10
    (run / 'config.yaml').write_text(yaml.safe_dump(cfg))
    res = run_cli('reproduce', str(table), '--out', str(out), '--rows', 'MF', '--seeds', '0')
    assert res.returncode == 0, res.stderr
    assert 'training ->' in res.stderr
    assert yaml.safe_load((run / 'config.yaml').read_text())['train']['device'] == 'cpu'
