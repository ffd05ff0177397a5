r"""Where the accuracy of sampled LightGCN training goes: the forward sums against the backward pass.

    python benchmarks/sampled_variance.py --size xs --fan-out 3,3 --estimator history --refresh 0 [--epochs 6]
                                          [--seed 0] [--reg 1e-4] [--out benchmarks/results/planted]

A probe, not a training path of the library. On the planted data of ``benchmarks/planted.py`` (written there
once, ``OUT/data-<size>/``), it trains LightGCN with the configuration of that script's sampled rows (2
layers, d = 64, lr 1e-2, batch 2,048; ``--reg`` for the L2 weight) and plain dense Adam on the
sampled subgraphs of :class:`~pyg_diffcl.datasets.NeighborBPRSampler` (``unseen`` negatives, degree scaling),
and prints one JSON line per epoch: the mean training loss, validation Recall@20 (whole graph, every user) and
the training seconds. ``--estimator`` picks how a layer's sum is estimated on the subgraph:

* ``plain``: the library's sampled path (:meth:`~pyg_diffcl.models.LightGCN.loss` on a
  :class:`~pyg_diffcl.datasets.SubgraphBatch`), :math:`\hat{\mathbf{h}}^{(k)}_v = \tfrac{d_v}{s_v}
  \sum_{u \in S_v} \hat r_{vu} \hat{\mathbf{h}}^{(k-1)}_u`;
* ``history``: a control variate on stored layers (VR-GCN, `Chen, Zhu and Song, 2018
  <https://arxiv.org/abs/1710.10568>`_). Every ``--refresh`` batches (``0``: at the start of each epoch) the
  whole graph is propagated once without gradient and its layers :math:`\bar{\mathbf{H}}^{(k)}` are kept; a
  batch then computes

  .. math::
      \hat{\mathbf{h}}^{(k)}_v = \bar{\mathbf{h}}^{(k)}_v + \frac{d_v}{s_v} \sum_{u \in S_v} \hat r_{vu}
      \bigl(\hat{\mathbf{h}}^{(k-1)}_u - \bar{\mathbf{h}}^{(k-1)}_u\bigr),

  which is exact when the stored layers are current (``--refresh 1``: the forward values of every batch are
  the whole graph's) and otherwise samples only the drift since the refresh. Its gradient with respect to the
  embeddings is the plain estimator's Jacobian (the stored term is constant), so the two differ only in the
  forward values that the loss, and the gradient through the other side of each score, see.

Comparing ``plain`` with ``history --refresh 1`` separates the two sources of the sampled path's noise: the
forward sums (removed by the exact forward) and the backward pass, which reaches only the sampled neighbours,
each :math:`d_v / s_v` times as hard. The findings are on the dated page
``docs/experiments/2026-12-06-sampled-variance.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@torch.no_grad()
def stored_layers(model, adj):
    """The layers :math:`\\bar{\\mathbf{H}}^{(0..K)}` of a :class:`~pyg_diffcl.models.LightGCN` on the whole graph
    (a prepared :class:`~pyg_diffcl.ops.BipartiteAdj`), as ``[(users, items), ...]``."""
    prop = model.propagation
    hu, hi = model.user_emb.weight.detach().clone(), model.item_emb.weight.detach().clone()
    layers = [(hu, hi)]
    for _ in range(model.num_layers):
        hu, hi = prop.conv((hi, hu), adj.item_to_user), prop.conv((hu, hi), adj.user_to_item)
        layers.append((hu, hi))
    return layers


def history_embeddings(model, batch, stored):
    """The propagated (user, item) embeddings of a :class:`~pyg_diffcl.datasets.SubgraphBatch`'s nodes with the
    control variate on :obj:`stored` (:func:`stored_layers`), LightGCN's layer mean."""
    prop, K = model.propagation, model.num_layers
    uid, iid, adj = batch.user_id, batch.item_id, batch.adj
    hu, hi = model.user_emb(uid), model.item_emb(iid)
    sum_u, sum_i = hu, hi
    for k in range(1, K + 1):
        du, di = hu - stored[k - 1][0][uid], hi - stored[k - 1][1][iid]
        hu, hi = (stored[k][0][uid] + prop.conv((di, du), adj.item_to_user),
                  stored[k][1][iid] + prop.conv((du, di), adj.user_to_item))
        sum_u, sum_i = sum_u + hu, sum_i + hi
    return sum_u / (K + 1), sum_i / (K + 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', default='xs', help="a size of benchmarks/scale.py, or USERS,ITEMS,INTERACTIONS")
    p.add_argument('--fan-out', default='10,10', help='comma-separated, one entry per layer (PyG convention)')
    p.add_argument('--estimator', choices=('plain', 'history'), default='plain')
    p.add_argument('--refresh', type=int, default=0, help='history: refresh every N batches (0: once per epoch)')
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--reg', type=float, default=1e-4, help="LightGCN's L2 weight")
    p.add_argument('--out', default='benchmarks/results/planted')
    args = p.parse_args()
    if args.refresh < 0:
        raise SystemExit(f'--refresh: expected 0 or more batches, got {args.refresh}')
    if args.epochs < 1:
        raise SystemExit(f'--epochs: expected at least 1, got {args.epochs}')
    try:
        fan_out = [int(x) for x in args.fan_out.split(',')]
    except ValueError:
        raise SystemExit(f'--fan-out: expected comma-separated integers, got {args.fan_out!r}') from None
    from planted import COMMON, FEATURE_DIMS, parse_size, write_data
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    from pyg_diffcl.training.reproduce import row_config
    from pyg_diffcl.training.run import prepare
    from pyg_diffcl.training.trainer import model_scores

    name, (u, i, e) = parse_size(args.size)
    data = Path(args.out) / f'data-{name}'
    # The configuration of benchmarks/planted.py's sampled LightGCN row, with --reg.
    config = row_config({'data': str(data)}, {'model': 'lightgcn', 'set': ['train.loader=neighbor']}, args.seed,
                        list(COMMON) + [f'model.reg_weight={args.reg}'])
    if len(fan_out) != config.model.num_layers:
        raise SystemExit(f'--fan-out: the probe trains {config.model.num_layers} layers, so it needs as many '
                         f'entries, got {args.fan_out!r}')
    write_data(data, u, i, e, list(FEATURE_DIMS))
    prep = prepare(config)
    model, ds = prep.model, prep.dataset
    sampler = model.make_neighbor_sampler(ds[0][EDGE_TYPE].edge_index, fan_out, config.train.batch_size, args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    evaluator = prep.evaluator('valid')
    whole = model.propagation.adj_cache(prep.adj, ds.num_users, ds.num_items)

    def history_loss(batch, stored):
        user_out, item_out = history_embeddings(model, batch, stored)
        return model.bpr(user_out, item_out, batch, batch.user_id, batch.item_id)

    print(json.dumps({'size': name, 'fan_out': fan_out, 'estimator': args.estimator, 'refresh': args.refresh,
                      'seed': args.seed, 'reg': args.reg}), flush=True)
    stored = None
    for epoch in range(args.epochs):
        model.train()
        t0, total, count = time.perf_counter(), 0.0, 0
        for b, batch in enumerate(sampler.epoch(epoch)):
            if args.estimator == 'history' and (b == 0 or (args.refresh and b % args.refresh == 0)):
                stored = stored_layers(model, whole)
            optimizer.zero_grad()
            loss = history_loss(batch, stored) if args.estimator == 'history' else model.loss(None, batch)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.user.numel()
            count += batch.user.numel()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            metrics = evaluator.evaluate(model_scores(model, prep.adj))
        print(json.dumps({'epoch': epoch + 1, 'loss': round(total / count, 4),
                          'valid_recall@20': round(metrics['recall@20'], 4), 'seconds': round(seconds, 1)}),
              flush=True)


if __name__ == '__main__':
    main()
