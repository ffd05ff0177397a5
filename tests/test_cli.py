"""End-to-end: the CLI contract (train / evaluate / recommend), through real subprocesses."""
import csv
import json

import numpy as np
import pytest
import torch

from tests.helpers import run_cli, write_dataset

METRIC_KEYS = {f'{n}@{k}' for n in ('recall', 'ndcg', 'precision', 'map', 'hitrate') for k in (10, 20, 50)}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp('cli')
    data = write_dataset(base / 'toy', num_users=40, num_items=60, per_user=8, modalities={'img': 6, 'snd': 3})
    run = base / 'run'
    res = run_cli('train', '--model', 'lightgcn', '--data', str(data), '--epochs', '4', '--patience', '10',
                  '--seed', '3', '--set', 'train.batch_size=64', '--out', str(run), '--quiet')
    assert res.returncode == 0, res.stderr
    return data, run


def test_run_directory_contract(trained):
    data, run = trained
    for name in ('metrics.json', 'config.yaml', 'log.csv', 'best.pt', 'curves.png'):
        assert (run / name).is_file(), name
    m = json.loads((run / 'metrics.json').read_text())
    assert m['model'] == 'lightgcn' and m['dataset'] == 'toy' and m['seed'] == 3
    assert m['selection'] == 'valid' and m['epochs_run'] == 4 and 1 <= m['best_epoch'] <= 4
    assert m['seconds_per_epoch'] > 0 and m['peak_rss_mib'] > 0
    assert set(m['valid']) == METRIC_KEYS and set(m['test']) == METRIC_KEYS
    d = m['data']
    assert d['users'] == 40 and d['items'] == 60 and d['modalities'] == {'img': 6, 'snd': 3}
    assert set(d['sha256']) == {'toy.inter', 'img_feat.npy', 'snd_feat.npy'}
    rows = list(csv.DictReader(open(run / 'log.csv')))
    assert [int(r['epoch']) for r in rows] == [1, 2, 3, 4]
    assert all(0 < float(r['grad_norm']) <= float(r['grad_norm_max']) for r in rows)
    # The reported speed is the median epoch of the log (robust to a paused epoch), not the mean.
    assert m['seconds_per_epoch'] == pytest.approx(np.median([float(r['train_seconds']) for r in rows]), abs=1e-4)
    best = max(rows, key=lambda r: float(r['valid_recall@20']))
    assert int(best['epoch']) == m['best_epoch']  # selected on validation
    # The log holds validation values in full: the selected one is the value metrics.json records, exactly.
    assert float(best['valid_recall@20']) == m['valid']['recall@20']
    ckpt = torch.load(run / 'best.pt', weights_only=True)
    assert ckpt['epoch'] == m['best_epoch']


def test_evaluate_reproduces_metrics(trained):
    _, run = trained
    m = json.loads((run / 'metrics.json').read_text())
    for split in ('valid', 'test'):
        res = run_cli('evaluate', str(run), '--split', split)
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got == pytest.approx(m[split], abs=1e-6)


def test_recommend_recall_equals_metrics(trained, tmp_path):
    data, run = trained
    out = tmp_path / 'recs.tsv'
    res = run_cli('recommend', str(run), '--k', '20', '--out', str(out))
    assert res.returncode == 0, res.stderr
    lines = out.read_text().strip().split('\n')
    assert lines[0] == 'userID\titemID\trank'
    recs = {}
    for line in lines[1:]:
        u, i, r = map(int, line.split('\t'))
        recs.setdefault(u, []).append((r, i))
    inter = [tuple(map(int, l.split('\t'))) for l in (data / 'toy.inter').read_text().split('\n')[1:] if l]
    train = {(u, i) for u, i, x in inter if x == 0}
    test = {}
    for u, i, x in inter:
        if x == 2:
            test.setdefault(u, set()).add(i)
    assert len(recs) == 40 and all([r for r, _ in v] == list(range(1, 21)) for v in recs.values())
    assert not any((u, i) in train for u, v in recs.items() for _, i in v)
    recall = np.mean([len({i for _, i in recs[u]} & t) / len(t) for u, t in test.items()])
    m = json.loads((run / 'metrics.json').read_text())
    assert recall == pytest.approx(m['test']['recall@20'], abs=1e-6)


def test_same_seed_same_metrics(trained, tmp_path):
    data, run = trained
    res = run_cli('train', '--model', 'lightgcn', '--data', str(data), '--epochs', '4', '--patience', '10',
                  '--seed', '3', '--set', 'train.batch_size=64', '--out', str(tmp_path / 'again'), '--quiet')
    assert res.returncode == 0, res.stderr
    timing = {'seconds_per_epoch', 'eval_seconds_per_epoch', 'test_eval_seconds', 'peak_rss_mib'}
    a, b = ({k: v for k, v in json.loads((d / 'metrics.json').read_text()).items() if k not in timing}
            for d in (run, tmp_path / 'again'))
    assert a == b  # every figure but the timings, exactly
    rows = [[{k: v for k, v in r.items() if not k.endswith('seconds')} for r in csv.DictReader(open(d / 'log.csv'))]
            for d in (run, tmp_path / 'again')]
    assert rows[0] == rows[1]


def test_refuses_to_overwrite_completed_run(trained):
    data, run = trained
    res = run_cli('train', '--model', 'mf', '--data', str(data), '--epochs', '1', '--out', str(run), '--quiet')
    assert res.returncode == 2 and 'completed run' in res.stderr and 'Traceback' not in res.stderr


def test_mf_without_modalities(tmp_path):
    data = write_dataset(tmp_path / 'plain', modalities={})
    res = run_cli('train', '--model', 'mf', '--data', str(data), '--epochs', '2', '--modalities', 'none',
                  '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / 'r' / 'metrics.json').read_text())
    assert m['model'] == 'mf' and m['data']['modalities'] == {}


def test_unknown_model_and_missing_run(tmp_path):
    res = run_cli('train', '--model', 'nope', '--out', str(tmp_path / 'r'))
    assert res.returncode == 2 and "invalid choice: 'nope'" in res.stderr
    assert len(res.stderr.strip().split('\n')) == 1
    res = run_cli('evaluate', str(tmp_path / 'missing'))
    assert res.returncode == 2 and 'not a run directory' in res.stderr


def test_diffcl_end_to_end_with_a_preset(tmp_path):
    data = write_dataset(tmp_path / 'mm', num_users=30, num_items=40, per_user=7, modalities={'v': 6, 't': 5})
    run = tmp_path / 'run'
    res = run_cli('train', '--model', 'diffcl', '--config', 'diffcl-video', '--data', str(data), '--epochs', '2',
                  '--set', 'model.embedding_dim=8', '--set', 'model.denoiser_hidden=[8]', '--out', str(run),
                  '--quiet')
    assert res.returncode == 0, res.stderr
    m = json.loads((run / 'metrics.json').read_text())
    assert m['model'] == 'diffcl' and m['epochs_run'] == 2 and set(m['test']) == METRIC_KEYS
    import yaml
    cfg = yaml.safe_load((run / 'config.yaml').read_text())
    assert cfg['model']['cl_weight'] == 0.01 and cfg['model']['align_weight'] == 1.0  # the video preset
    res = run_cli('evaluate', str(run))
    assert json.loads(res.stdout) == pytest.approx(m['test'], abs=1e-6)


def test_diffcl_needs_features_and_checks_values(tmp_path):
    data = write_dataset(tmp_path / 'plain', modalities={})
    res = run_cli('train', '--model', 'diffcl', '--data', str(data), '--out', str(tmp_path / 'r'))
    assert res.returncode == 2 and 'DiffCL needs item features' in res.stderr and 'feat.npy' in res.stderr
    data = write_dataset(tmp_path / 'mm', modalities={'v': 3})
    res = run_cli('train', '--model', 'diffcl', '--data', str(data), '--set', 'model.predict=noise',
                  '--out', str(tmp_path / 'r2'))
    assert res.returncode == 2 and "model.predict: must be one of ['x0', 'eps'], got 'noise'" in res.stderr
    assert len(res.stderr.strip().split('\n')) == 1


def test_config_section_of_the_wrong_type(toy_data, tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('model: [1, 2]\n')
    res = run_cli('train', '--model', 'mf', '--data', str(toy_data), '--config', str(bad), '--out', str(tmp_path / 'r'))
    assert res.returncode == 2 and "config section 'model' must be a mapping" in res.stderr


def test_empty_test_split_gives_null_test_metrics(tmp_path):
    d = tmp_path / 'ev'
    d.mkdir()
    (d / 'a.inter').write_text('userID\titemID\tx_label\n0\t1\t0\n1\t2\t0\n0\t3\t1\n1\t0\t0\n')
    res = run_cli('train', '--model', 'mf', '--data', str(d), '--epochs', '2', '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    assert 'the test split is empty' in res.stderr
    m = json.loads((tmp_path / 'r' / 'metrics.json').read_text())
    assert m['test']['recall@20'] is None and m['valid']['recall@20'] is not None


def test_ld4mrec_end_to_end_same_contract(tmp_path):
    data = write_dataset(tmp_path / 'mm', num_users=30, num_items=40, per_user=7, modalities={'v': 6, 't': 5})
    run = tmp_path / 'run'
    small = ['--set', 'model.fc_dim=16', '--set', 'model.hidden_dim=8', '--set', 'model.svd_rank=4',
             '--set', 'model.item_graph_k=3', '--set', 'train.batch_size=8']
    res = run_cli('train', '--model', 'ld4mrec', '--data', str(data), '--epochs', '3', *small, '--out', str(run),
                  '--quiet')
    assert res.returncode == 0, res.stderr
    m = json.loads((run / 'metrics.json').read_text())
    assert m['model'] == 'ld4mrec' and m['epochs_run'] == 3 and set(m['test']) == METRIC_KEYS
    assert set(m['valid']) == METRIC_KEYS and m['selection'] == 'valid'
    res = run_cli('evaluate', str(run))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == pytest.approx(m['test'], abs=1e-6)  # reloads to the same predictions
    # The common inference strategy is an option of the same run format.
    res = run_cli('train', '--model', 'ld4mrec', '--data', str(data), '--epochs', '1', *small,
                  '--set', 'model.inference=common', '--set', 'model.inference_steps=2', '--out',
                  str(tmp_path / 'run2'), '--quiet')
    assert res.returncode == 0, res.stderr


def test_negative_pool_trained_runs_and_ld4mrec_refuses_it(tmp_path):
    data = write_dataset(tmp_path / 'mm', num_users=30, num_items=40, per_user=7, modalities={'v': 6})
    res = run_cli('train', '--model', 'lightgcn', '--data', str(data), '--epochs', '1', '--set',
                  'train.negative_pool=trained', '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    assert 'negative_pool: trained' in (tmp_path / 'r' / 'config.yaml').read_text()
    res = run_cli('train', '--model', 'ld4mrec', '--data', str(data), '--epochs', '1', '--set',
                  'train.negative_pool=trained', '--out', str(tmp_path / 'r2'))
    assert res.returncode == 2 and 'train.negative_pool=trained: model ld4mrec draws no' in res.stderr
    assert len(res.stderr.strip().split('\n')) == 1


def test_ld4mrec_without_features_needs_use_pg_false(tmp_path):
    data = write_dataset(tmp_path / 'plain', modalities={})
    res = run_cli('train', '--model', 'ld4mrec', '--data', str(data), '--out', str(tmp_path / 'r'))
    assert res.returncode == 2 and 'need item features' in res.stderr and 'model.use_pg=false' in res.stderr
    assert len(res.stderr.strip().split('\n')) == 1
    res = run_cli('train', '--model', 'ld4mrec', '--data', str(data), '--epochs', '1', '--set', 'model.use_pg=false',
                  '--set', 'model.fc_dim=8', '--set', 'model.svd_rank=2', '--out', str(tmp_path / 'r2'), '--quiet')
    assert res.returncode == 0, res.stderr


def test_non_finite_loss_stops_with_one_line_and_keeps_the_checkpoint(tmp_path):
    import re
    data = write_dataset(tmp_path / 'd', num_users=20, num_items=15, modalities={})
    run = tmp_path / 'run'
    res = run_cli('train', '--model', 'mf', '--data', str(data), '--epochs', '5', '--set', 'train.lr=1e30',
                  '--out', str(run), '--quiet')
    assert res.returncode == 1 and 'Traceback' not in res.stderr
    lines = res.stderr.strip().split('\n')
    assert len(lines) == 1
    m = re.search(r'non-finite loss \S+ at epoch (\d+), batch (\d+)', lines[0])
    assert m, lines[0]
    epochs_done = int(m.group(1)) - 1
    assert not (run / 'metrics.json').exists()
    rows = list(csv.DictReader(open(run / 'log.csv')))
    assert len(rows) == epochs_done
    if epochs_done:
        assert (run / 'best.pt').is_file() and 'kept in' in lines[0]
        assert float(rows[0]['grad_norm']) > 0 and float(rows[0]['grad_norm_max']) >= float(rows[0]['grad_norm'])


def test_a_local_folder_named_like_an_embedded_data_set_gets_no_preset(tmp_path):
    """The packaged tiktok settings follow the data directory, not the name: a folder ./tiktok in the working
    directory is the user's data, trained with the defaults."""
    import yaml
    from pyg_diffcl.training.config import packaged_for
    write_dataset(tmp_path / 'tiktok', modalities={})
    res = run_cli('train', '--model', 'lightgcn', '--data', 'tiktok', '--epochs', '1', '--set',
                  'train.batch_size=64', '--out', str(tmp_path / 'r'), '--quiet', cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    cfg = yaml.safe_load((tmp_path / 'r' / 'config.yaml').read_text())
    assert cfg['model']['num_layers'] == 2 and cfg['model']['reg_weight'] == 1e-4  # the defaults
    assert cfg['data']['name'] == 'tiktok' and cfg['data']['cold_users'] == 'error'
    # the embedded directory itself, by name or by path, gets the packaged settings
    from pyg_diffcl.datasets import EMBEDDED_DATASETS
    for data in ('tiktok', str(EMBEDDED_DATASETS['tiktok'])):
        assert packaged_for(data, 'lightgcn')['model']['num_layers'] == 4
    assert packaged_for(str(tmp_path / 'tiktok'), 'lightgcn') == {}
