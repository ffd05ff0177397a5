"""The example scripts run (on a small generated data set, a few epochs)."""
import sys
from pathlib import Path

from tests.forkserver import run_python
from tests.helpers import write_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / 'examples'


def run(script, *args, timeout=600):
    res = run_python([str(EXAMPLES / script), *args], timeout=timeout)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_ablation_prints_all_eight_variants(tmp_path):
    import json
    data = write_dataset(tmp_path / 'mm', num_users=20, num_items=25, modalities={'v': 4, 't': 3})
    out = run('ablation.py', str(data), '--epochs', '1', '--out', str(tmp_path / 'abl'),
              '--set', 'model.embedding_dim=8', '--set', 'model.denoiser_hidden=[8]')
    names = ['DiffCL_baseline', 'DiffCL_h', 'DiffCL_align', 'DiffCL_align+h', 'DiffCL_diff', 'DiffCL_diff+h',
             'DiffCL_diff+align', 'DiffCL']
    rows = [line.split('|')[1].strip() for line in out.splitlines() if line.startswith('| DiffCL')]
    assert rows == names
    # Each variant ran with its own switches (read back from the run directory, not from the table).
    flags = {}
    for name in names:
        key = name.lower().replace('_', '-').replace('+', '-')
        cfg = (tmp_path / 'abl' / f'{key}-s0' / 'config.yaml').read_text()
        flags[name] = tuple(f'{k}: true' in cfg for k in ('use_diffusion', 'use_alignment', 'use_item_graph'))
        assert json.loads((tmp_path / 'abl' / f'{key}-s0' / 'metrics.json').read_text())['epochs_run'] == 1
    assert flags['DiffCL_baseline'] == (False, False, False) and flags['DiffCL'] == (True, True, True)
    assert flags['DiffCL_diff+h'] == (True, False, True) and flags['DiffCL_align'] == (False, True, False)
    assert len(set(flags.values())) == 8


def test_ablation_only_trains_the_named_variants(tmp_path):
    data = write_dataset(tmp_path / 'mm', num_users=20, num_items=25, modalities={'v': 4})
    args = ['--epochs', '1', '--out', str(tmp_path / 'abl'), '--set', 'model.embedding_dim=8',
            '--set', 'model.denoiser_hidden=[8]']
    out = run('ablation.py', str(data), *args, '--only', 'DiffCL_h')
    assert sorted(p.name for p in (tmp_path / 'abl').iterdir()) == ['diffcl-h-s0']
    assert '| DiffCL_h |' in out and '| DiffCL_baseline |' not in out


def test_grid_search_trains_every_combination_and_selects_on_validation(tmp_path):
    import csv
    import json
    import yaml
    data = write_dataset(tmp_path / 'd', num_users=20, num_items=25, modalities={})
    run('grid_search.py', '--model', 'lightgcn', '--data', str(data), '--grid', 'model.num_layers=1,2',
        '--grid', 'model.reg_weight=1e-4,1e-2', '--set', 'train.epochs=2', '--out', str(tmp_path / 'g'))
    with open(tmp_path / 'g' / 'trials.csv') as f:
        rows = list(csv.DictReader(f))
    assert sorted((int(r['model.num_layers']), float(r['model.reg_weight'])) for r in rows) == [
        (1, 1e-4), (1, 1e-2), (2, 1e-4), (2, 1e-2)]
    valid = {int(r['number']): json.loads((tmp_path / 'g' / 'trials' / 'lightgcn-d' / f"{int(r['number']):04d}" / 'seed-0'
                                           / 'metrics.json').read_text())['valid']['recall@20'] for r in rows}
    best = yaml.safe_load((tmp_path / 'g' / 'best.yaml').read_text())['model']
    winner = next(r for r in rows if valid[int(r['number'])] == max(valid.values()))
    assert best['num_layers'] == int(winner['model.num_layers'])


def test_stopping_rules_replays_the_trainer_rule(tmp_path):
    # Two hand-written validation curves. Curve a: a lucky epoch 2, a dip, a climb to 0.5 at epoch 7.
    curves = {'a': [0.1, 0.4, 0.2, 0.3, 0.3, 0.35, 0.5, 0.3, 0.3, 0.3],
              'b': [0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]}
    runs = []
    for name, curve in curves.items():
        (tmp_path / name).mkdir()
        lines = ['epoch,loss,valid_recall@20'] + [f'{i + 1},0.5,{v}' for i, v in enumerate(curve)]
        (tmp_path / name / 'log.csv').write_text('\n'.join(lines) + '\n')
        runs.append(str(tmp_path / name))
    out = run('stopping_rules.py', *runs, '--patience', '2,5', '--window', '1', '--min-epochs', '0')
    rows = {tuple(c.strip() for c in line.split('|')[1:4]): [c.strip() for c in line.split('|')[4:9]]
            for line in out.splitlines() if line.startswith('| ') and line[2].isdigit()}
    # By hand. Patience 2: a stops at 4 (kept 0.4), b stops at 5 (best epoch 3, kept 0.3): mean 0.35, min 0.3,
    # worst shortfall 0.5 - 0.4 = 0.1, mean epochs 4.5 (printed rounded). Patience 5: a reaches 7 (kept 0.5,
    # would stop at 12 > 10: censored), b stops at 8: mean 0.4, shortfall 0, mean epochs 9.
    assert rows[('2', '1', '0')] == ['0.3500', '0.3000', '0.1000', '4', '']
    assert rows[('5', '1', '0')] == ['0.4000', '0.3000', '0.0000', '9', '1']


def test_behaviour_baselines_select_on_validation(tmp_path):
    data = write_dataset(tmp_path / 'd', num_users=30, num_items=25, modalities={})
    out = run('behaviour_baselines.py', '--data', str(data), '--lambdas', '1,10', '--ranks', '4,8',
              '--alphas', '0,1')
    rows = {}
    for line in out.splitlines():
        if ' valid ' in line:
            name, rest = line.split(' valid ')
            rows[name.strip()] = float(rest.split()[0])
    assert len(rows) == 2 + 1 + 2  # EASE x 2, the linear filter, rank 4 and 8 at alpha 1
    best = max(rows, key=rows.get)
    assert f'selected on validation Recall@20: {best}:' in out


def test_train_speed_benchmark_runs(tmp_path):
    import json
    data = write_dataset(tmp_path / 'mm', num_users=30, num_items=25, modalities={'v': 4})
    script = EXAMPLES.parent / 'benchmarks' / 'train_speed.py'
    res = run_python([str(script), '--data', str(data), '--epochs', '1', '--diffcl', '--ld4mrec', '--diffcl-parts',
                      '--compare-backend', 'index_add', '--json', str(tmp_path / 'b.json')], timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / 'b.json').read_text())
    assert out['ours_epoch_s'] > 0 and out['pyg_lightgcn_epoch_s'] > 0 and out['diffcl_epoch_s'] > 0
    assert out['diffcl_peak_rss_mib'] > 0 and out['lightgcn_peak_rss_mib'] > 0
    assert 'speed-up per training epoch' in res.stdout and out['host']['blas'] in res.stdout
    parts = out['diffcl_parts_epoch_s']
    assert set(parts) == {'all off', '+ diffusion contrast', '+ alignment', '+ item graph', 'propagations alone'}
    assert all(v > 0 for v in parts.values())
    cmp = out['compare_backend']
    assert cmp['backend'] == 'index_add' and cmp['propagation_b_s'] > 0 and cmp['diffcl_epoch_s'] > 0
    assert 'promised gain' in res.stdout
    ld = out['ld4mrec']
    assert ld['epoch_s'] > 0 and ld['forward_free_eval_s'] > 0 and ld['common_eval_s'] > 0
    assert ld['peak_rss_mib'] > 0 and 'forward-free' in res.stdout


BENCH = EXAMPLES.parent / 'benchmarks'
CONTRACT_KEYS = {'backend', 'graph', 'n_nodes', 'nnz', 'dim', 'layers', 'fwd_ms', 'fwdbwd_ms', 'bound_fwdbwd_ms',
                 'peak_mib'}


def load_benchmark(script: str):
    """A script of ``benchmarks/`` imported as a module (its own directory on the path while it loads)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(Path(script).stem + '_bench', BENCH / script)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


def test_propagation_benchmark_json_contract(tmp_path):
    import json
    from pyg_diffcl.ops import available_backends
    res = run_python([str(BENCH / 'propagation.py'), '--graphs', '300x200x2000', '--dims', '8',
                      '--layers', '1,2', '--repeats', '1', '--json', str(tmp_path / 'p.json')], timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / 'p.json').read_text())
    assert set(out) == {'device', 'host', 'bandwidth_gbs', 'results'} and out['bandwidth_gbs'] > 0
    assert {'cpu', 'blas', 'logical_cores', 'torch_threads'} <= set(out['host']) and res.stdout.startswith('host: ')
    rows = out['results']
    assert all(set(r) == CONTRACT_KEYS for r in rows)
    names = {r['backend'] for r in rows}
    import torch_geometric.typing
    baselines = {'pyg-lgconv', 'pyg-lightgcn', 'pyg-dropin-lightgcn'}
    baselines |= {'pyg-lgconv-cached'} if torch_geometric.typing.WITH_TORCH_SPARSE else set()
    assert names == set(available_backends()) | baselines
    r = rows[0]
    assert (r['graph'], r['n_nodes'], r['nnz'], r['dim']) == ('300x200x2000', 500, 4000, 8)
    assert {x['layers'] for x in rows} == {1, 2} and all(x['fwdbwd_ms'] > 0 and x['bound_fwdbwd_ms'] > 0 for x in rows)
    # the bound is 2 K products of 8 nnz + 4 (n + 1) + 8 n d bytes at the measured bandwidth
    r2 = next(x for x in rows if x['layers'] == 2)
    expect = 2 * 2 * (8 * 4000 + 4 * 501 + 8 * 500 * 8) / (out['bandwidth_gbs'] * 1e9) * 1e3
    assert abs(r2['bound_fwdbwd_ms'] - expect) / expect < 1e-2


def test_knn_benchmark_is_exact(tmp_path):
    import json
    res = run_python([str(BENCH / 'knn.py'), '--cases', '400:16', '--repeats', '1',
                      '--json', str(tmp_path / 'k.json')], timeout=300)
    assert res.returncode == 0, res.stderr
    rows = json.loads((tmp_path / 'k.json').read_text())['results']
    assert {r['metric'] for r in rows} == {'cosine', 'euclidean'}
    assert all(r['recall'] == 1.0 for r in rows if r['impl'] in ('ours', 'brute'))


def test_benchmarks_refuse_cuda_without_a_gpu():
    import torch
    if torch.cuda.is_available():
        return
    for script in ('propagation.py', 'knn.py', 'reliability_cost.py'):
        res = run_python([str(BENCH / script), '--device', 'cuda'], timeout=120)
        assert res.returncode == 2 and 'no CUDA device' in res.stderr


def test_propagation_benchmark_rows_compute_the_same_propagation():
    """The timed rows are the same computation: our backends, LGConv per call and LGConv on a cached adj_t."""
    import torch
    import torch_geometric.typing
    mod = load_benchmark('propagation.py')
    g = torch.Generator().manual_seed(0)
    ei = torch.stack([torch.randint(0, 30, (120,), generator=g), torch.randint(0, 20, (120,), generator=g)])
    ei = torch.unique(ei, dim=1)
    out = {}
    names = ['csr', 'pyg-lgconv'] + (['pyg-lgconv-cached'] if torch_geometric.typing.WITH_TORCH_SPARSE else [])
    for name in names:
        fwd, _ = mod.make_runner(name, ei, 30, 20, 4, 2, torch.device('cpu'), seed=1)
        res = fwd()
        out[name] = torch.cat(res) if isinstance(res, tuple) else res
    for name in names[1:]:
        assert torch.allclose(out[name], out['csr'], atol=1e-5), name


def test_multimodal_heterodata_selects_on_validation():
    out = run('multimodal_heterodata.py', '--epochs', '2', '--max-users', '300')
    epochs = [l for l in out.splitlines() if l.startswith('epoch ')]
    assert len(epochs) == 2
    best = max(float(l.split()[-1] if not l.endswith('*') else l.split()[-2]) for l in epochs)
    assert f'valid recall@20 {best:.4f}, test recall@20' in out


def test_planted_benchmark_compares_loaders_on_a_planted_data_set(tmp_path):
    """``benchmarks/planted.py`` writes the planted data set in the library's layout, trains each (model,
    loader) and reports the relative difference of the means; the popularity baseline against a count by
    hand from the written files."""
    import json
    from collections import Counter

    import numpy as np
    res = run_python([str(BENCH / 'planted.py'), '--size', '300,90,4000', '--models', 'lightgcn', '--seeds', '0,1',
                      '--set', 'train.epochs=2', '--out', str(tmp_path)], timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / 'planted-300-90-4000.json').read_text())
    rows = {r['loader']: r for r in out['rows']}
    assert set(rows) == {'full', 'neighbor'} and all(r['seeds'] == [0, 1] for r in rows.values())
    for loader, r in rows.items():
        runs = [json.loads((tmp_path / 'runs-300-90-4000' / f'lightgcn-{loader}-s{s}' / 'metrics.json').read_text())
                for s in (0, 1)]
        assert r['test_recall@20'][0] == np.mean([m['test']['recall@20'] for m in runs])
        assert r['valid_recall@20'][0] == np.mean([m['valid']['recall@20'] for m in runs])
    gap = out['relative_difference']['lightgcn']['test_recall@20']
    full, sampled = rows['full']['test_recall@20'][0], rows['neighbor']['test_recall@20'][0]
    assert abs(gap - (sampled - full) / full) < 1e-12
    data = tmp_path / 'data-300-90-4000'
    assert np.load(data / 'm0_feat.npy').shape[1] == 64 and np.load(data / 'm1_feat.npy').shape[1] == 32
    # Popularity by hand: each test user's items outside training, ranked by training degree. Ties at the cut
    # may be broken otherwise by the evaluator's top-k, hence the tolerance; not excluding the training items,
    # or ranking by anything but degree, moves the figure far more.
    lines = [line.split('\t') for line in (data / 'data-300-90-4000.inter').read_text().splitlines()[1:]]
    train = [(int(u), int(i)) for u, i, x in lines if x == '0']
    test = [(int(u), int(i)) for u, i, x in lines if x == '2']
    degree = Counter(i for _, i in train)
    seen, held = {}, {}
    for u, i in train:
        seen.setdefault(u, set()).add(i)
    for u, i in test:
        held.setdefault(u, set()).add(i)
    num_items = 1 + max(i for _, i in train + test)
    recalls = []
    for u, items in held.items():
        ranked = sorted((i for i in range(num_items) if i not in seen.get(u, ())), key=lambda i: -degree[i])
        recalls.append(len(set(ranked[:20]) & items) / len(items))
    assert abs(out['popularity_test_recall@20'] - np.mean(recalls)) < 0.02
    # A later invocation for one loader, with settings of its own, keeps the other row, and compares the two
    # only when their settings agree.
    res = run_python([str(BENCH / 'planted.py'), '--size', '300,90,4000', '--models', 'lightgcn', '--loaders', 'full',
                      '--seeds', '0', '--set', 'train.epochs=1', '--out', str(tmp_path)], timeout=600)
    assert res.returncode == 0, res.stderr
    again = json.loads((tmp_path / 'planted-300-90-4000.json').read_text())
    by = {r['loader']: r for r in again['rows']}
    assert by['neighbor'] == rows['neighbor'] and by['full']['seeds'] == [0]
    assert by['full']['settings'][-1] == 'train.epochs=1' and by['neighbor']['settings'][-1] == 'train.epochs=2'
    assert 'lightgcn' not in again['relative_difference']


def pairs_by_label(inter):
    """The (user, item) pairs of an MMRec ``.inter`` file by its split label, read by hand."""
    by_label = {0: set(), 1: set(), 2: set()}
    for line in inter.read_text().splitlines()[1:]:
        u, i, x = (int(v) for v in line.split('\t'))
        by_label[x].add((u, i))
    return by_label


def test_official_diffmm_harness_writes_the_library_split_in_the_released_layout(tmp_path):
    """``benchmarks/official_diffmm.py`` hands the released DiffMM code the library's own split: its three
    pickles hold exactly the train / validation / test pairs of the ``.inter`` file (read here by hand), and
    its two feature files the chosen modalities."""
    import pickle

    import numpy as np
    import pytest

    mod = load_benchmark('official_diffmm.py')
    data = write_dataset(tmp_path / 'toy', modalities={'image': 6, 'audio': 4, 'text': 3})
    by_label = pairs_by_label(data / 'toy.inter')
    out = tmp_path / 'layout'
    info = mod.write_split(str(data), 'image', 'audio', out)
    assert (info['users'], info['items']) == (30, 25)
    for fname, label in (('trnMat.pkl', 0), ('valMat.pkl', 1), ('tstMat.pkl', 2)):
        with open(out / fname, 'rb') as f:
            mat = pickle.load(f)
        assert mat.shape == (30, 25)
        assert set(zip(mat.row.tolist(), mat.col.tolist())) == by_label[label], fname
        assert (mat.data == 1).all()
    np.testing.assert_array_equal(np.load(out / 'image_feat.npy'),
                                  np.load(data / 'image_feat.npy').astype(np.float32))
    np.testing.assert_array_equal(np.load(out / 'text_feat.npy'),
                                  np.load(data / 'audio_feat.npy').astype(np.float32))
    with pytest.raises(SystemExit, match="--text: no modality 'video'"):
        mod.write_split(str(data), 'image', 'video', tmp_path / 'other')


def test_official_diffmm_harness_refuses_a_directory_without_the_released_code(tmp_path):
    res = run_python([str(BENCH / 'official_diffmm.py'), '--repo', str(tmp_path), '--out', str(tmp_path / 'o')])
    assert res.returncode != 0
    assert 'has no Main.py' in res.stderr


def test_official_mentor_harness_writes_the_library_split_in_mmrec_layout(tmp_path):
    """``benchmarks/official_mentor.py`` hands MENTOR's code the library's own split: its ``.inter`` file holds
    exactly the train / validation / test pairs of the toy's file (read here by hand) under MMRec's labels 0 / 1
    / 2, its two feature files the chosen modalities, and its user-user graph an empty list per user."""
    import numpy as np
    import pandas as pd
    import pytest

    mod = load_benchmark('official_mentor.py')
    data = write_dataset(tmp_path / 'toy', modalities={'image': 6, 'audio': 4, 'text': 3})
    by_label = pairs_by_label(data / 'toy.inter')
    out = tmp_path / 'layout'
    info = mod.write_split(str(data), 'image', 'audio', out, 'name')
    assert (info['users'], info['items']) == (30, 25)
    inter = pd.read_csv(out / 'name.inter', sep='\t')
    assert list(inter.columns) == ['userID', 'itemID', 'x_label']
    for label in (0, 1, 2):
        rows = inter[inter.x_label == label]
        assert set(zip(rows.userID.tolist(), rows.itemID.tolist())) == by_label[label], label
        assert len(rows) == len(by_label[label])
    np.testing.assert_array_equal(np.load(out / 'image_feat.npy'),
                                  np.load(data / 'image_feat.npy').astype(np.float32))
    np.testing.assert_array_equal(np.load(out / 'text_feat.npy'),
                                  np.load(data / 'audio_feat.npy').astype(np.float32))
    graph = np.load(out / 'user_graph_dict.npy', allow_pickle=True).item()
    assert graph == {u: [[], []] for u in range(30)}
    with pytest.raises(SystemExit, match="--image: no modality 'video'"):
        mod.write_split(str(data), 'video', 'audio', tmp_path / 'other', 'name')


def test_official_mentor_harness_refuses_a_directory_without_the_released_code(tmp_path):
    res = run_python([str(BENCH / 'official_mentor.py'), '--repo', str(tmp_path), '--out', str(tmp_path / 'o')])
    assert res.returncode != 0
    assert 'has no src/models/mentor.py' in res.stderr


def test_sampled_variance_probe_history_estimator_is_exact_where_it_should_be():
    """The probe's control variate against a dense LightGCN: with the stored layers current, any fan-out gives the
    whole graph's embeddings at the subgraph's nodes; with stale layers, taking every neighbour does too."""
    import torch
    from pyg_diffcl.models import LightGCN
    from pyg_diffcl.ops import BipartiteAdj
    mod = load_benchmark('sampled_variance.py')
    g = torch.Generator().manual_seed(0)
    U, I = 40, 30
    ei = torch.unique(torch.stack([torch.randint(0, U, (300,), generator=g),
                                   torch.randint(0, I, (300,), generator=g)]), dim=1)
    torch.manual_seed(0)
    model = LightGCN(U, I, embedding_dim=8, num_layers=2)

    def dense():  # LightGCN by hand: A = [[0, R], [R^T, 0]] normalised by the degrees, mean of 3 layers
        R = torch.zeros(U, I)
        R[ei[0], ei[1]] = 1.0
        du, di = R.sum(1).clamp(min=1), R.sum(0).clamp(min=1)
        Rn = R / du.sqrt()[:, None] / di.sqrt()[None, :]
        A = torch.zeros(U + I, U + I)
        A[:U, U:], A[U:, :U] = Rn, Rn.t()
        x = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
        out = (x + A @ x + A @ (A @ x)) / 3
        return out[:U], out[U:]

    adj = model.propagation.adj_cache(BipartiteAdj(ei, U, I), U, I)
    stored = mod.stored_layers(model, adj)
    ref_u, ref_i = dense()
    batch = model.make_neighbor_sampler(ei, [2, 2], batch_size=8, seed=0).batch(0, 0)
    out_u, out_i = mod.history_embeddings(model, batch, stored)
    assert torch.allclose(out_u, ref_u[batch.user_id], atol=1e-5)
    assert torch.allclose(out_i, ref_i[batch.item_id], atol=1e-5)
    with torch.no_grad():  # the parameters move; the stored layers are now stale
        model.user_emb.weight.add_(torch.randn(U, 8, generator=g))
        model.item_emb.weight.add_(torch.randn(I, 8, generator=g))
    ref_u, ref_i = dense()
    full = model.make_neighbor_sampler(ei, [-1, -1], batch_size=8, seed=0).batch(0, 0)
    out_u, out_i = mod.history_embeddings(model, full, stored)
    seeds_u, seeds_i = full.user, torch.cat([full.pos_item, full.neg_item])
    assert torch.allclose(out_u[seeds_u], ref_u[full.user_id[seeds_u]], atol=1e-5)
    assert torch.allclose(out_i[seeds_i], ref_i[full.item_id[seeds_i]], atol=1e-5)
    stale_u, _ = mod.history_embeddings(model, batch, stored)  # fan-out 2 with stale layers: an estimate only
    assert not torch.allclose(stale_u, ref_u[batch.user_id], atol=1e-3)
