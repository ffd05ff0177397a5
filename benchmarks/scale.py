r"""How training and evaluation grow with the size of the data: synthetic power-law interaction logs
(:func:`pyg_diffcl.datasets.synthetic.powerlaw_interactions`) at four sizes, each 4x the one before, up to
1M users, 200k items and 20M interactions; LightGCN and DiffCL.

    python benchmarks/scale.py [--sizes xs,s,m,l] [--models lightgcn,diffcl] [--batches 3] [--eval-blocks 2]
                               [--modalities 64,32] [--out benchmarks/results/scale]
    python benchmarks/scale.py --loader neighbor [--num-neighbors 10,10] [--sampled-batches 500]
                               [--batch-size 2048]

Each (model, size) runs in a fresh process, so that its peak resident memory (``ru_maxrss``) is its own; the
interaction logs are generated once by another process and cached under ``--out`` (``.pt``), so generation
does not count. Per run it reports:

* ``epoch_s``: seconds per training epoch, **estimated** as (seconds of one BPR step of ``--batch-size``, the
  median of ``--batches`` timed steps) x (steps per epoch) + the epoch's set-up (shuffle and
  negative sampling, timed); the timed steps follow three untimed ones. At 20M interactions an epoch is 8.8k steps, each propagating the whole graph:
  hours, which is why it is estimated from timed steps rather than run;
* ``eval_s``: seconds of one full-ranking evaluation of every test user, **estimated** as the embedding pass
  (timed) + seconds per user of ``--eval-blocks`` timed blocks of 2048 users x the test users;
* ``peak_rss_mib`` and ``predicted_mib``, the memory formula below evaluated for the run's sizes.

With ``--loader neighbor`` each run also trains on sampled subgraphs (``train.loader=neighbor``:
:class:`~pyg_diffcl.datasets.NeighborBPRSampler`, PyG's ``LinkNeighborLoader`` with triplet negatives,
``--num-neighbors`` per layer, ``--optimizer`` for the step, row-sparse Adam by default) and times it: the
first ``--sampled-batches`` consecutive batches of an epoch,
sampling included, from the first one on (``sampled_epoch_s`` is then measured in full when the epoch has no
more batches, else their mean x the batches per epoch; ``sampled_timed_batches`` says which), beside the
full-graph estimate above from the same process. It also records the mean subgraph size. Those rows go to
``scale-neighbor.json`` (a run replaces the rows of its own model, size and fan-out and keeps the others), and
the plot draws each sampled fan-out as a dashed line beside the full one. DiffCL samples its item-item graphs
as edge types of the same graph, one hop more (:meth:`~pyg_diffcl.models.DiffCL.make_neighbor_sampler`), at
the last user-item fan-out given or at a fan-out of its own for that hop (``--num-neighbors 5,5,2``), taking
all of an item's k item-graph neighbours or ``--item-neighbors`` of them (reweighted,
``train.item_graph_neighbors``). A model that cannot train sampled is reported as such and
skipped.

**Memory formula** (bytes; :math:`U` users, :math:`I` items, :math:`E` training and :math:`E_t` test
interactions, :math:`d` the embedding size, :math:`L` layers, :math:`B` the evaluation block; float32 values,
int64 indices unless said), derived from what the code allocates, not fitted:

* interactions: :math:`16E + 16E_t`;
* BPR sampler: user, item and sorted-key arrays :math:`24E`; per epoch a permutation and the negatives
  :math:`16E`, and the negative-sampling temporaries :math:`33E` while the epoch is set up;
* normalised adjacency (``csr`` backend, both directions): sorted int64 pairs, int32 columns and values
  :math:`2 \times 24E`, plus the edge weights :math:`4E`;
* evaluator: the excluded training items by user, :math:`8E + 8U`;
* parameters with their gradients and Adam's two moments: :math:`16 P`, with :math:`P = (U + I) d` for
  LightGCN and :math:`P = (U + I) d + M U d + \sum_m F_m d` for DiffCL with :math:`M` modalities of
  :math:`F_m` features;
* training step, the larger of: the epoch set-up above, and the propagation's working set. The propagation
  is fused (:class:`~pyg_diffcl.nn.LightGCNPropagation`: it saves no layer for backward, whose gradient is
  the same propagation of the incoming gradient), so whatever :math:`L` it holds the layer sum, the current
  and the next layer, the output and the incoming gradient: :math:`4 \times 5 (U+I) d` per propagated
  width :math:`d` (LightGCN one; DiffCL :math:`1 + M`, propagated together as one concatenated matrix, plus
  the concatenated and normalised layer-0 copies, :math:`4 \times 7 (U + I) d` per width);
* evaluation: the no-gradient propagation's sum, current and next layer, :math:`4 \times 3 (U + I) d` per
  width, and one block of scores :math:`4 B I`;
* DiffCL's item side: the features :math:`4 I \sum_m F_m` (twice: raw and normalised) and the top-:math:`k`
  item graphs, :math:`48 k I` per modality;
* the interpreter with torch and PyG imported, :math:`R_0`, measured in the same process.

* with ``--loader neighbor``, the sampler's own graph (:class:`~pyg_diffcl.datasets.NeighborBPRSampler`): the
  reversed edge list :math:`16E`, the edge weights :math:`4E`, the degrees, and PyG's CSC copy of each
  direction for sampling (column pointers, rows and the permutation, :math:`2 \times 16E`), plus the seed
  edges of the loader :math:`16E`, and with ``--negatives unseen`` the sorted keys of the training pairs
  :math:`8E`: about :math:`76E + 16(U + I)`; a sampled step's working set is that of
  its subgraph, small beside the terms above.

The prediction is :math:`R_0` + the persistent terms + the largest transient term (training or evaluation).
Writes ``scale.json`` and ``scale.png`` (log-log: epoch and evaluation seconds and peak memory against the
number of interactions, one line per model) to ``--out``, and prints the growth between consecutive sizes as
exponents: :math:`\log(t_{n+1}/t_n) / \log(E_{n+1}/E_n)` (1 = linear in the interactions).
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

SIZES = {  # name: (users, items, interactions)
    'xs': (15_625, 3_125, 312_500),
    's': (62_500, 12_500, 1_250_000),
    'm': (250_000, 50_000, 5_000_000),
    'l': (1_000_000, 200_000, 20_000_000),
}
DIM, LAYERS, BLOCK, TEST_SHARE, KNN_K = 64, 2, 2048, 0.1, 10
#: The BPR batch of both loaders, unless ``--batch-size`` says otherwise.
BATCH = 2048
#: Untimed steps first: DiffCL's first two steps take about ten times a steady one (one-time set-up).
WARMUP = 3


def rss_now_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data_path(out: Path, size: str) -> Path:
    u, i, e = SIZES[size]
    return out / f'powerlaw_{u}_{i}_{e}.pt'


def generate(out: Path, size: str) -> None:
    """Draw the interactions of a size, split off a random 10% as the test split, save."""
    import torch

    from pyg_diffcl.datasets.synthetic import powerlaw_interactions
    u, i, e = SIZES[size]
    t0 = time.perf_counter()
    ei = powerlaw_interactions(u, i, e, seed=0)
    g = torch.Generator().manual_seed(1)
    test = torch.rand(e, generator=g) < TEST_SHARE
    torch.save({'train': ei[:, ~test].clone(), 'test': ei[:, test].clone()}, data_path(out, size))
    print(f'[scale] generated {size}: {u} users, {i} items, {e} interactions in {time.perf_counter() - t0:.1f} s',
          file=sys.stderr)


def predicted_bytes(model: str, U: int, I: int, E: int, Et: int, feats: list, r0_mib: float,
                    loader: str = 'full', negatives: str = 'unseen') -> dict:
    """The memory formula of the module docstring, term by term (bytes)."""
    d, M = DIM, len(feats) if model == 'diffcl' else 0
    nodes = (U + I) * d
    params = nodes + (M * U * d + sum(f * d for f in feats) if model == 'diffcl' else 0)
    graphs = 1 + M
    persistent = {
        'interactions': 16 * E + 16 * Et,
        'sampler': 24 * E + 16 * E,
        'adjacency': 48 * E + 4 * E,
        'evaluator': 8 * E + 8 * U,
        'parameters_adam': 16 * params,
        'item_side': (4 * 2 * I * sum(feats) + 48 * KNN_K * I * M) if model == 'diffcl' else 0,
    }
    if loader == 'neighbor':  # the sampled path's own structures, beside the full path's in the same process
        persistent['neighbor_sampler'] = (68 + (8 if negatives == 'unseen' else 0)) * E + 16 * (U + I)
    transient = {
        'epoch_setup': 33 * E,
        'training_step': graphs * 4 * (7 if model == 'diffcl' else 5) * nodes,
        'evaluation': graphs * 4 * 3 * nodes + 4 * BLOCK * I,
    }
    total = r0_mib * 2**20 + sum(persistent.values()) + max(transient.values())
    return {'persistent': persistent, 'transient': transient, 'r0_mib': r0_mib, 'total': total}


def variant(row: dict) -> tuple:
    """What tells a row's set-up apart: its fan-out per hop, its item-graph fan-out (-1: all), its batch
    (rows written before ``--batch-size`` existed used 2048) and its negatives (rows written before
    ``--negatives`` existed drew PyG's single negative, ``any``)."""
    return (tuple(row.get('num_neighbors') or ()), row.get('item_graph_neighbors', -1), row.get('batch_size', 2048),
            row_negatives(row))


def row_negatives(row: dict) -> str:
    """A sampled row's negatives (``any`` for rows written before ``--negatives``); '' for a full-graph row."""
    return row.get('negatives', 'any') if row.get('loader') == 'neighbor' else ''


def variant_label(key: tuple) -> str:
    fanout, item, batch, negatives = key
    return ((str(list(fanout)) if fanout else '') + (f', item graph {item}' if item != -1 else '')
            + (f', batch {batch}' if batch != 2048 else '') + (f', {negatives} negatives' if negatives else ''))


def sampled_epoch(net, train, U: int, I: int, fanout: list, timed: int, res: dict,
                  optimizer: str = 'sparse_adam', item_fanout: int = -1, batch_size: int = BATCH,
                  negatives: str = 'unseen') -> None:
    """Time consecutive batches of a sampled epoch (sampling, forward, backward, step) from the first one."""
    from pyg_diffcl.training.trainer import make_optimizer
    c = getattr(net, 'config', None)
    if getattr(c, 'use_item_graph', False) and len(fanout) == LAYERS:
        # DiffCL given one fan-out per user-item layer: the hops its item graph adds take the last of them
        fanout = list(fanout) + [fanout[-1]] * c.item_graph_layers
    t0 = time.perf_counter()
    try:
        sampler = net.make_neighbor_sampler(train, fanout, batch_size, 0, item_graph_neighbors=item_fanout,
                                            negatives=negatives)
    except NotImplementedError as e:
        res['sampled_skipped'] = str(e)
        return
    res['sampler_build_s'] = time.perf_counter() - t0
    opt = make_optimizer(net, optimizer, lr=1e-3)
    res['sampled_optimizer'] = optimizer
    res['negatives'] = negatives
    n = min(len(sampler), timed)
    times, users, items = [], [], []
    it = sampler.epoch(0)
    for _ in range(n):
        t0 = time.perf_counter()
        batch = next(it)
        opt.zero_grad(set_to_none=True)
        net.loss(None, batch).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        users.append(batch.user_id.numel())
        items.append(batch.item_id.numel())
    res['num_neighbors'] = fanout
    res['item_graph_neighbors'] = item_fanout
    res['sampled_timed_batches'] = n
    res['sampled_batches_per_epoch'] = len(sampler)
    res['sampled_step_s'] = statistics.median(times)
    res['sampled_epoch_s'] = sum(times) if n == len(sampler) else statistics.mean(times) * len(sampler)
    res['sampled_epoch_measured_in_full'] = n == len(sampler)
    res['subgraph_users_share'] = statistics.mean(users) / U
    res['subgraph_items_share'] = statistics.mean(items) / I


def child(model: str, size: str, out: Path, batches: int, eval_blocks: int, feats: list,
          loader: str = 'full', fanout: Optional[list] = None, sampled_batches: int = 500,
          optimizer: str = 'sparse_adam', item_fanout: int = -1, batch_size: int = BATCH,
          negatives: str = 'unseen') -> None:
    import torch
    r0 = rss_now_mib()  # the interpreter with torch, PyG and this package imported

    from pyg_diffcl.datasets import BPRSampler
    from pyg_diffcl.evaluation import FullRankingEvaluator, top_k
    from pyg_diffcl.models import DiffCL, DiffCLConfig, LightGCN
    from pyg_diffcl.ops import BipartiteAdj, item_knn_graph, tune_allocator
    tune_allocator()
    r0 = max(r0, rss_now_mib())
    U, I, _ = SIZES[size]
    data = torch.load(data_path(out, size), weights_only=True)
    train, test = data['train'], data['test']
    E, Et = train.size(1), test.size(1)
    res = {'model': model, 'size': size, 'users': U, 'items': I, 'train_interactions': E,
           'test_interactions': Et, 'threads': torch.get_num_threads(), 'batch_size': batch_size}
    t0 = time.perf_counter()
    sampler = BPRSampler(train, I, batch_size, seed=0)
    adj = BipartiteAdj(train, U, I)
    res['graph_s'] = time.perf_counter() - t0
    if model == 'diffcl':
        g = torch.Generator().manual_seed(2)
        features = {f'm{j}': torch.randn(I, f, generator=g) for j, f in enumerate(feats)}
        t0 = time.perf_counter()
        graphs = {m: item_knn_graph(x, KNN_K) for m, x in features.items()}
        res['knn_s'] = time.perf_counter() - t0
        net = DiffCL(U, I, features, graphs, DiffCLConfig(embedding_dim=DIM, num_layers=LAYERS))
    else:
        net = LightGCN(U, I, DIM, LAYERS)
    evaluator = FullRankingEvaluator(test, train, U, I, ks=[20], block_size=BLOCK)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    t0 = time.perf_counter()
    it = iter(sampler.epoch(0))
    first = next(it)
    res['epoch_setup_s'] = time.perf_counter() - t0
    times = []
    batch = first
    for b in range(WARMUP + batches):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        net.loss(adj, batch).backward()
        opt.step()
        if b >= WARMUP:
            times.append(time.perf_counter() - t0)
        batch = next(it)
    res['step_s'] = statistics.median(times)
    res['steps_per_epoch'] = len(sampler)
    res['epoch_s'] = res['step_s'] * len(sampler) + res['epoch_setup_s']
    del it, batch, first
    net.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        score = net.scorer(adj)
        score(torch.zeros(1, dtype=torch.long))  # forces the embedding pass
        res['embed_s'] = time.perf_counter() - t0
        metrics = evaluator.make_metrics()
        users, t_blocks = 0, 0.0
        for n, block in enumerate(evaluator.blocks()):
            if n == eval_blocks:
                break
            t0 = time.perf_counter()
            pred = top_k(score(block.users), 20, block.exclude)
            metrics.update(pred, block.labels)
            t_blocks += time.perf_counter() - t0
            users += block.users.numel()
    res['eval_users'] = evaluator.num_eval_users
    res['eval_s'] = res['embed_s'] + t_blocks / users * evaluator.num_eval_users
    res['peak_rss_mib'] = peak_mib()
    pred = predicted_bytes(model, U, I, E, Et, feats if model == 'diffcl' else [], r0, loader, negatives)
    res['predicted_mib'] = pred['total'] / 2**20
    res['formula_terms_mib'] = {k: {n: v / 2**20 for n, v in pred[k].items()} for k in ('persistent', 'transient')}
    res['r0_mib'] = r0
    res['feature_dims'] = feats if model == 'diffcl' else []
    res['loader'] = loader
    if loader == 'neighbor':
        net.train()
        sampled_epoch(net, train, U, I, fanout, sampled_batches, res, optimizer,
                      item_fanout if model == 'diffcl' else -1, batch_size, negatives)
        res['peak_rss_mib'] = peak_mib()
    print(json.dumps(res))


def plot(rows: list, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(axes, ('epoch_s', 'eval_s', 'peak_rss_mib'),
                              ('seconds per epoch (estimated)', 'evaluation seconds (estimated)',
                               'peak RSS (MiB)')):
        for n, model in enumerate(sorted({r['model'] for r in rows})):
            rs = sorted((r for r in rows if r['model'] == model), key=lambda r: r['train_interactions'])
            # the full-graph figures, one row per size, at the default batch where a size has it
            one = list({r['size']: r for r in sorted(rs, key=lambda r: r.get('batch_size', 2048) == BATCH)}.values())
            one.sort(key=lambda r: r['train_interactions'])
            ax.loglog([r['train_interactions'] for r in one], [r[key] for r in one], 'o-', color=f'C{n}',
                      label=f'{model} (full graph)' if key == 'epoch_s' else model)
            fanouts = sorted({variant(r) for r in rs if 'sampled_epoch_s' in r})
            for f, fanout in enumerate(fanouts if key == 'epoch_s' else []):
                sampled = [r for r in rs if 'sampled_epoch_s' in r and variant(r) == fanout]
                ax.loglog([r['train_interactions'] for r in sampled], [r['sampled_epoch_s'] for r in sampled],
                          ('s--', 'd:', '^-.')[f % 3], color=f'C{n}',
                          label=f'{model} (sampled, {variant_label(fanout)})')
            if key == 'peak_rss_mib':
                ax.loglog([r['train_interactions'] for r in one], [r['predicted_mib'] for r in one], 'x--',
                          color=f'C{n}', alpha=0.7, label=f'{model} (formula)')
        ax.set_xlabel('training interactions')
        ax.set_title(label, fontsize=10)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='xs,s,m,l')
    p.add_argument('--models', default='lightgcn,diffcl')
    p.add_argument('--batches', type=int, default=3, help='timed training steps (median), after three warm-up')
    p.add_argument('--eval-blocks', type=int, default=2, help='timed evaluation blocks of 2048 users')
    p.add_argument('--modalities', default='64,32', help="DiffCL's synthetic feature dimensions")
    p.add_argument('--out', default='benchmarks/results/scale')
    p.add_argument('--loader', default='full', choices=['full', 'neighbor'],
                   help='neighbor: also time training on sampled subgraphs (PyG LinkNeighborLoader)')
    p.add_argument('--num-neighbors', default='10,10',
                   help='fan-out per layer of --loader neighbor; DiffCL also takes one per hop, LAYERS + 1 (its item '
                        'graph adds a hop; given per layer, that hop repeats the last fan-out)')
    p.add_argument('--item-neighbors', type=int, default=-1,
                   help="DiffCL's item-graph fan-out with --loader neighbor (-1: all k neighbours)")
    p.add_argument('--sampled-batches', type=int, default=500,
                   help='consecutive sampled batches timed (the whole epoch when it has no more)')
    p.add_argument('--optimizer', default='sparse_adam', choices=['adam', 'sparse_adam'],
                   help='the optimizer of the sampled steps (sparse_adam: a step touches only its rows)')
    p.add_argument('--batch-size', type=int, default=BATCH,
                   help='BPR triplets per step, for the whole-graph and the sampled steps alike')
    p.add_argument('--negatives', default='unseen', choices=['unseen', 'any'],
                   help="the sampled steps' negatives (NeighborBPRSampler's negatives)")
    p.add_argument('--child', nargs=2, metavar=('MODEL', 'SIZE'), help=argparse.SUPPRESS)
    p.add_argument('--generate', metavar='SIZE', help=argparse.SUPPRESS)
    p.add_argument('--report-only', action='store_true',
                   help="re-evaluate the formula on --out's scale.json and print the table and plot again")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    feats = [int(f) for f in args.modalities.split(',') if f]
    if args.generate:
        return generate(out, args.generate)
    fanout = [int(f) for f in args.num_neighbors.split(',') if f]
    if len(fanout) not in (LAYERS, LAYERS + 1):
        p.error(f'--num-neighbors: one fan-out per layer ({LAYERS}), or for DiffCL one per hop ({LAYERS + 1}, its '
                f'item graph adding one), got {fanout}')
    if args.child:
        return child(args.child[0], args.child[1], out, args.batches, args.eval_blocks, feats, args.loader, fanout,
                     args.sampled_batches, args.optimizer, args.item_neighbors, args.batch_size, args.negatives)
    result = out / ('scale-neighbor.json' if args.loader == 'neighbor' else 'scale.json')

    if args.report_only:
        rows = json.loads(result.read_text())
        for r in rows:
            pred = predicted_bytes(r['model'], r['users'], r['items'], r['train_interactions'],
                                   r['test_interactions'], r.get('feature_dims', feats), r['r0_mib'],
                                   r.get('loader', 'full'), row_negatives(r) or 'unseen')
            r['predicted_mib'] = pred['total'] / 2**20
        return report(rows, out, result)
    sizes = [s for s in args.sizes.split(',') if s]
    for s in sizes:
        if s not in SIZES:
            p.error(f'unknown size {s!r} (choose from {", ".join(SIZES)})')
    rows = []
    kept = []  # earlier rows of other models, sizes or fan-outs
    if result.is_file():
        kept = json.loads(result.read_text())

    def same(a: dict, b: dict) -> bool:
        return (a['model'], a['size'], variant(a)) == (b['model'], b['size'], variant(b))
    for s in sizes:
        if not data_path(out, s).is_file():
            subprocess.run([sys.executable, __file__, '--out', str(out), '--generate', s], check=True)
        for model in [m for m in args.models.split(',') if m]:
            cmd = [sys.executable, __file__, '--out', str(out), '--child', model, s, '--batches',
                   str(args.batches), '--eval-blocks', str(args.eval_blocks), '--modalities', args.modalities,
                   '--loader', args.loader, '--num-neighbors', args.num_neighbors,
                   '--sampled-batches', str(args.sampled_batches), '--optimizer', args.optimizer,
                   '--item-neighbors', str(args.item_neighbors), '--batch-size', str(args.batch_size),
                   '--negatives', args.negatives]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f'[scale] {model} {s} failed:\n{done.stderr[-2000:]}', file=sys.stderr)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row['wall_s'] = time.perf_counter() - t0
            rows.append(row)
            kept = [r for r in kept if not same(r, row)]
            print(f"[scale] {model:8s} {s:2s} U={row['users']:>8d} I={row['items']:>7d} E={row['train_interactions']:>9d}"
                  f"  step {row['step_s']:.3f} s x {row['steps_per_epoch']} = epoch {row['epoch_s']:.0f} s"
                  f"  eval {row['eval_s']:.1f} s  peak {row['peak_rss_mib']:.0f} MiB"
                  f" (formula {row['predicted_mib']:.0f}, ratio {row['peak_rss_mib'] / row['predicted_mib']:.2f})"
                  + (f"  sampled: step {row['sampled_step_s']:.3f} s x {row['sampled_batches_per_epoch']} = epoch "
                     f"{row['sampled_epoch_s']:.0f} s ({row['sampled_timed_batches']} batches timed)"
                     if 'sampled_epoch_s' in row else ''), file=sys.stderr)
            result.write_text(json.dumps(kept + rows, indent=2))
    if rows:
        report(kept + rows, out, result)


def report(rows: list, out: Path, result: Path) -> None:
    print(f"\n{'model':9s} {'size':4s} {'users':>9s} {'items':>8s} {'train E':>10s} {'step s':>7s} {'epoch s':>9s} "
          f"{'eval s':>8s} {'peak MiB':>9s} {'formula':>8s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['model']:9s} {r['size']:4s} {r['users']:9d} {r['items']:8d} {r['train_interactions']:10d} "
              f"{r['step_s']:7.3f} {r['epoch_s']:9.0f} {r['eval_s']:8.1f} {r['peak_rss_mib']:9.0f} "
              f"{r['predicted_mib']:8.0f} {r['peak_rss_mib'] / r['predicted_mib']:6.2f}")
    print('\ngrowth exponents between consecutive sizes (d log y / d log E; 1 = linear):')
    for model, fanout in sorted({(r['model'], variant(r)) for r in rows}):
        rs = sorted((r for r in rows if r['model'] == model and variant(r) == fanout),
                    key=lambda r: r['train_interactions'])
        for a, b in zip(rs, rs[1:]):
            x = math.log(b['train_interactions'] / a['train_interactions'])
            print(f"  {model:9s} {variant_label(fanout)} {a['size']}->{b['size']}: epoch {math.log(b['epoch_s'] / a['epoch_s']) / x:.2f}, "
                  f"eval {math.log(b['eval_s'] / a['eval_s']) / x:.2f}, "
                  f"peak RSS {math.log(b['peak_rss_mib'] / a['peak_rss_mib']) / x:.2f}"
                  + (f", sampled epoch {math.log(b['sampled_epoch_s'] / a['sampled_epoch_s']) / x:.2f}"
                     if 'sampled_epoch_s' in a and 'sampled_epoch_s' in b else ''))
    sampled = [r for r in rows if 'sampled_epoch_s' in r]
    if sampled:
        print('\nsampled epochs (fan-out, batches timed, subgraph share of users / items, speed-up over the '
              'full-graph estimate of the same run):')
        for r in sampled:
            print(f"  {r['model']:9s} {r['size']:3s} {variant_label(variant(r))}  {r['sampled_timed_batches']:5d} of "
                  f"{r['sampled_batches_per_epoch']:5d}  {100 * r['subgraph_users_share']:5.1f}% / "
                  f"{100 * r['subgraph_items_share']:5.1f}%  epoch {r['sampled_epoch_s']:.1f} s vs "
                  f"{r['epoch_s']:.1f} s: {r['epoch_s'] / r['sampled_epoch_s']:.1f}x")
    for r in rows:
        if 'sampled_skipped' in r:
            print(f"  {r['model']:9s} {r['size']:3s} not sampled: {r['sampled_skipped']}")
    png = result.with_suffix('.png')
    plot(rows, png)
    print(f'\nwrote {result} and {png}')


if __name__ == '__main__':
    main()
