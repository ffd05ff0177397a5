r"""Accuracy of sampled-subgraph training against whole-graph training on synthetic data with something to
learn: the planted-preference logs of :func:`pyg_diffcl.datasets.planted_interactions`, at the sizes of
``benchmarks/scale.py``.

    python benchmarks/planted.py --size xs [--models lightgcn,diffcl] [--loaders full,neighbor] [--seeds 0,1,2,3,4]
                                 [--set SECTION.KEY=VALUE ...] [--out benchmarks/results/planted]

``--size`` is a name of ``scale.py`` (``xs``, ``s``, ``m``, ``l``: users, items and interactions) or
``USERS,ITEMS,INTERACTIONS``. The data set is drawn once and written in the library's layout under
``OUT/data-<size>/`` by :func:`pyg_diffcl.datasets.prepare.prepare_dataset`: a random 8:1:1 split of each
user's interactions (seed 0), and two modalities ``m0`` and ``m1`` (64 and 32 features, ``--modalities``)
whose rows are the item's topic centroid plus noise. Its generator: 32 topics, Dirichlet concentration 0.1,
5 % popularity-only noise (the defaults of :func:`~pyg_diffcl.datasets.planted_interactions`), seed 0.

Each (model, loader, seed) is one run of :func:`pyg_diffcl.training.reproduce.run_spec`, so that finished runs
are reused and interrupted ones resumed (``OUT/runs-<size>/``), and each is selected on validation Recall@20
like every table. Both loaders train with the same settings: the library's defaults, then 2 layers, lr 1e-2
(the rate that removed LightGCN's validation plateau on tiktok) and an epoch cap of 300, then ``--set``.
The sampled runs take fan-out 10 per hop (``train.num_neighbors``, PyG's convention) and dense Adam unless
``--set`` says otherwise.

Prints, and writes to ``OUT/planted-<size>.json``, each row's settings (the ``--set`` values above), its
validation and test Recall@20 (mean ± sample std over the seeds), selected epochs and seconds per epoch, and
per model the relative difference of the sampled mean from the whole graph's, :math:`(\bar r_{\text{neighbor}}
- \bar r_{\text{full}}) / \bar r_{\text{full}}`, on validation (which decides) and on test (which is
reported), where both rows ran with the same settings. Rows of other (model, loader) pairs already in the
file are kept, so that models can be run by separate invocations with settings of their own (say a shorter
patience for the costlier model). Also the popularity baseline's test Recall@20 (each user's unseen items
ranked by training degree), to show what the models learn beyond popularity.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Settings of both loaders' runs, under ``--set``.
COMMON = ['model.num_layers=2', 'train.lr=1.0e-2', 'train.epochs=300']
FEATURE_DIMS = (64, 32)


def parse_size(text: str):
    from scale import SIZES
    if text in SIZES:
        return text, SIZES[text]
    try:
        u, i, e = (int(x) for x in text.split(','))
    except ValueError:
        raise SystemExit(f"--size: expected one of {', '.join(SIZES)} or USERS,ITEMS,INTERACTIONS, got {text!r}")
    return f'{u}-{i}-{e}', (u, i, e)


def write_data(root: Path, users: int, items: int, interactions: int, dims) -> Path:
    """The planted data set in the library's layout (once; an existing one is kept)."""
    import numpy as np

    from pyg_diffcl.datasets import planted_interactions
    from pyg_diffcl.datasets.prepare import prepare_dataset
    if (root / 'prepare.json').is_file():
        return root
    ei, feats = planted_interactions(users, items, interactions, feature_dims=dims, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp)
        np.savetxt(raw / 'planted.csv', ei.t().numpy(), fmt='%d', delimiter=',', header='user,item', comments='')
        (raw / 'items.txt').write_text('\n'.join(str(i) for i in range(items)) + '\n')
        specs = {}
        for name, x in feats.items():
            np.save(raw / f'{name}.npy', x.numpy().astype(np.float32))
            specs[name] = f"{raw / f'{name}.npy'}:{raw / 'items.txt'}"
        root.mkdir(parents=True, exist_ok=True)
        report = prepare_dataset(raw / 'planted.csv', root, 'user', 'item', features=specs, split='random',
                                 ratios=(8, 1, 1), seed=0, overwrite=True)
    print(f'[planted] wrote {root}: {report.users} users, {report.items} items, {report.interactions}',
          file=sys.stderr)
    return root


def popularity_recall(data: Path, k: int = 20) -> float:
    """Test Recall@k of ranking each user's unseen items by training degree (training items excluded, as in
    the runs' test evaluation)."""
    import torch

    from pyg_diffcl.datasets import MMRecDataset
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    from pyg_diffcl.evaluation import FullRankingEvaluator
    ds = MMRecDataset(str(data))
    store = ds[0][EDGE_TYPE]
    degree = torch.bincount(store.edge_index[1], minlength=ds.num_items).float()
    ev = FullRankingEvaluator(store.test_edge_label_index, store.edge_index, ds.num_users, ds.num_items, ks=(k,))
    return ev.evaluate(lambda users: degree.repeat(users.numel(), 1))[f'recall@{k}']


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--size', default='xs')
    p.add_argument('--models', default='lightgcn,diffcl')
    p.add_argument('--loaders', default='full,neighbor')
    p.add_argument('--seeds', default='0,1,2,3,4', help='comma-separated seeds')
    p.add_argument('--modalities', default=','.join(map(str, FEATURE_DIMS)), help='feature dimensions')
    p.add_argument('--set', dest='sets', action='append', default=[], metavar='SECTION.KEY=VALUE')
    p.add_argument('--out', default='benchmarks/results/planted')
    args = p.parse_args()
    from pyg_diffcl.training.reproduce import run_spec
    name, (u, i, e) = parse_size(args.size)
    out = Path(args.out)
    data = write_data(out / f'data-{name}', u, i, e, [int(x) for x in args.modalities.split(',')])
    models, loaders = args.models.split(','), args.loaders.split(',')
    pairs = [(m, ld) for m in models for ld in loaders]
    rows = [{'name': f'{m}, {ld}', 'model': m, 'set': [f'train.loader={ld}']} for m, ld in pairs]
    seeds = [int(x) for x in args.seeds.split(',')]
    spec = {'data': str(data), 'seeds': seeds, 'metrics': ['recall@20', 'ndcg@20'], 'rows': rows}
    settings = COMMON + args.sets
    results = run_spec(f'planted-{name}', spec, out / f'runs-{name}', extra=settings,
                       log=lambda m: print(m, file=sys.stderr))
    table = []
    for (model, loader), res in zip(pairs, results):
        metrics = [json.loads((Path(d) / 'metrics.json').read_text()) for d in res.run_dirs]
        table.append({'model': model, 'loader': loader, 'settings': settings, 'seeds': res.seeds,
                      'valid_recall@20': res.valid, 'test_recall@20': res.test['recall@20'],
                      'test_ndcg@20': res.test['ndcg@20'], 'selected_epochs': res.epochs,
                      'epochs_run': [m['epochs_run'] for m in metrics],
                      'seconds_per_epoch': statistics.mean(m['seconds_per_epoch'] for m in metrics)})
    path = out / f'planted-{name}.json'
    # An earlier invocation's file: its rows of other (model, loader) pairs are kept, and its popularity figure
    # (of the same data set, which is written once) is not computed again: at size l that is a full evaluation.
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    table = [r for r in earlier.get('rows', []) if (r['model'], r['loader']) not in pairs] + table
    gaps = {}
    for m in dict.fromkeys(r['model'] for r in table):
        by = {r['loader']: r for r in table if r['model'] == m}
        if 'full' in by and 'neighbor' in by and by['full']['settings'] == by['neighbor']['settings']:
            gaps[m] = {key: (by['neighbor'][key][0] - by['full'][key][0]) / by['full'][key][0]
                       for key in ('valid_recall@20', 'test_recall@20')}
    pop = earlier.get('popularity_test_recall@20')
    if pop is None:
        pop = popularity_recall(data)
    result = {'size': name, 'users': u, 'items': i, 'interactions': e, 'rows': table, 'relative_difference': gaps,
              'popularity_test_recall@20': pop}
    path.write_text(json.dumps(result, indent=2))
    print(f'planted {name} ({u} users, {i} items, {e} interactions; popularity test Recall@20 {pop:.4f})')
    print('| model | loader | seeds | valid Recall@20 | test Recall@20 | selected epochs | s / epoch |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for r in table:
        (vm, vs), (tm, ts) = r['valid_recall@20'], r['test_recall@20']
        print(f"| {r['model']} | {r['loader']} | {len(r['seeds'])} | {vm:.4f} ± {vs:.4f} | {tm:.4f} ± {ts:.4f} | "
              f"{', '.join(map(str, r['selected_epochs']))} | {r['seconds_per_epoch']:.2f} |")
    for m, g in gaps.items():
        print(f"{m}: sampled against whole graph, relative: validation {100 * g['valid_recall@20']:+.1f} %, "
              f"test {100 * g['test_recall@20']:+.1f} %")


if __name__ == '__main__':
    main()
