"""Seconds per LightGCN training epoch and per full evaluation on a data set (default: the embedded tiktok),
ours vs PyG's stock ``torch_geometric.nn.models.LightGCN`` trained with the same data, batches and BPR loss,
measured in the same run.

    python benchmarks/train_speed.py [--data tiktok|DIR] [--epochs 3] [--backend auto] [--diffcl] [--json out.json]
    python benchmarks/train_speed.py --diffcl --compare-backend edge_index   # what the kernel gain buys an epoch
    python benchmarks/train_speed.py --diffcl --ld4mrec                      # the three models side by side
    python benchmarks/train_speed.py --diffcl --diffcl-parts                 # where the DiffCL epoch goes

With ``--diffcl`` it also times a DiffCL epoch (the packaged settings for the data set when there are any, else
the defaults; with ``--layers`` propagation layers, like the LightGCN it is compared with) and reports the
peak resident memory of a fresh process that loads the data and trains one DiffCL epoch, and of one that
trains one LightGCN epoch. With ``--diffcl-parts`` it also times DiffCL epochs with Table III's three
components all off and each alone, and the :math:`1 + M` propagations of its graph encoders alone (every
batch, forward and backward): the floor under the DiffCL epoch with this design, against which the 3x goal
can be read.

With ``--ld4mrec`` it also times an LD4MRec epoch (the packaged settings and batch size for the data set when
there are any) and LD4MRec's inference over the validation and test users with both strategies in the same
run: forward-free (one C-Net call per user block) and the common corrupt-then-denoise strategy with
:math:`T` reverse steps (the paper's Fig. 3 / Table 5 baseline), and the peak RSS of a fresh process that
trains one LD4MRec epoch.

With ``--compare-backend B`` it also trains our LightGCN (and DiffCL) epochs on backend ``B`` and times the
propagation alone (:class:`~pyg_diffcl.nn.LightGCNPropagation`, forward+backward, the run's ``d`` and layers)
on both backends. A training step propagates :math:`P` graphs (LightGCN 1; DiffCL the ID graph and one per
modality), so the kernel gain promises an epoch of
:math:`t_B - n_\text{batches} P (p_B - p)` seconds, :math:`p_B` and :math:`p` the propagation times; the
script prints that promise beside the measured epoch.

PyG's model is driven as in PyG's own ``examples/lightgcn.py``: users and items in one node numbering,
``model(edge_index, edge_label_index)`` for the positive and negative pairs of a batch, and
``model.recommendation_loss(...)``; the full graph is propagated for every batch, as ours is.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict
from pathlib import Path

import torch
import torch_geometric.typing
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from pyg_diffcl.datasets import BPRSampler, MMRecDataset
from pyg_diffcl.datasets.mmrec import EDGE_TYPE
from pyg_diffcl.evaluation import FullRankingEvaluator
from pyg_diffcl.models import DiffCL, DiffCLConfig, LD4MRec, LD4MRecConfig, LightGCN
from pyg_diffcl.nn import LightGCN as DropInLightGCN
from pyg_diffcl.ops import BipartiteAdj, format_host, host_description, tune_allocator
from pyg_diffcl.training.config import packaged_config
from pyg_diffcl.training.trainer import Trainer, model_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from propagation import homogeneous, make_runner, median_ms  # noqa: E402  (shared benchmark helpers)


def time_calls(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn(-1)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def propagation_s(adj: BipartiteAdj, dim: int, layers: int, repeats: int = 20) -> float:
    """Median seconds of one forward+backward of the layer stack alone on :obj:`adj`'s graph and backend."""
    _, fwdbwd = make_runner(adj.backend, adj.edge_index, adj.num_users, adj.num_items, dim, layers,
                            torch.device('cpu'), seed=0)
    return median_ms(fwdbwd, repeats, torch.device('cpu')) / 1e3


def diffcl_config(data: str, dim: int, layers: int, **switches: bool) -> DiffCLConfig:
    values = dict(packaged_config(data, 'diffcl').get('model', {}))
    values.update(embedding_dim=dim, num_layers=layers, **switches)
    return DiffCLConfig(**values)


def diffcl_parts(args: argparse.Namespace, ds: MMRecDataset, adj: BipartiteAdj, sampler: BPRSampler
                 ) -> Dict[str, float]:
    """Epoch seconds of DiffCL with the three Table III components all off, each alone, and the time of
    its ``1 + M`` graph encoders' propagations alone (forward and backward, every batch)."""
    out: Dict[str, float] = {}
    names = ('use_diffusion', 'use_alignment', 'use_item_graph')
    for label, on in (('all off', ()), ('+ diffusion contrast', names[:1]), ('+ alignment', names[1:2]),
                      ('+ item graph', names[2:])):
        torch.manual_seed(0)
        model = DiffCL.from_config(diffcl_config(args.data, args.dim, args.layers,
                                                 **{n: n in on for n in names}), ds)
        trainer = Trainer(model, adj, sampler, None, show_progress=False, fused_adam=args.fused_adam)
        out[label] = time_calls(lambda e: trainer.train_epoch(max(e, 0)), args.epochs)
    out['propagations alone'] = (1 + len(ds.modalities)) * len(sampler) * propagation_s(adj, args.dim, args.layers)
    return out


def ld4mrec_setup(data: str):
    """The packaged LD4MRec config of a data set (else the defaults) and its training batch size."""
    packaged = packaged_config(data, 'ld4mrec')
    return LD4MRecConfig(**packaged.get('model', {})), int(packaged.get('train', {}).get('batch_size', 400))


def peak_rss_child(args: argparse.Namespace, model: str) -> float:
    """Peak RSS (MiB) of a fresh process that loads the data and trains one epoch of :obj:`model`."""
    cmd = [sys.executable, __file__, '--data', args.data, '--dim', str(args.dim), '--layers', str(args.layers),
           '--batch-size', str(args.batch_size), '--backend', args.backend, '--rss-of', model]
    if args.default_malloc:
        cmd.append('--default-malloc')
    if args.fused_adam:
        cmd.append('--fused-adam')
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def rss_of(args: argparse.Namespace) -> None:
    ds = MMRecDataset(args.data, modalities=None if args.rss_of in ('diffcl', 'ld4mrec') else [])
    train_ei = ds[0][EDGE_TYPE].edge_index
    sampler = BPRSampler(train_ei, ds.num_items, args.batch_size, seed=0)
    adj = BipartiteAdj(train_ei, ds.num_users, ds.num_items, backend=args.backend)
    if args.rss_of == 'ld4mrec':
        cfg, batch_size = ld4mrec_setup(args.data)
        model = LD4MRec.from_config(cfg, ds)
        sampler = model.make_sampler(train_ei, batch_size, 0)
    elif args.rss_of == 'diffcl':
        model = DiffCL.from_config(diffcl_config(args.data, args.dim, args.layers), ds)
    else:
        model = LightGCN(ds.num_users, ds.num_items, args.dim, args.layers)
    Trainer(model, adj, sampler, None, show_progress=False, fused_adam=args.fused_adam).train_epoch(0)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='tiktok')
    p.add_argument('--epochs', type=int, default=3, help='timed epochs (median), after one warm-up')
    p.add_argument('--backend', default='auto')
    p.add_argument('--dim', type=int, default=64)
    p.add_argument('--layers', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=2048)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--diffcl', action='store_true', help='also time a DiffCL epoch (default config)')
    p.add_argument('--diffcl-parts', action='store_true',
                   help="also time DiffCL with Table III's components all off and each alone, and the floor "
                        "that its 1 + M propagations set (where the DiffCL epoch goes)")
    p.add_argument('--ld4mrec', action='store_true',
                   help='also time an LD4MRec epoch and its forward-free vs common inference')
    p.add_argument('--compare-backend', default=None, metavar='B',
                   help='also train on sparse backend B and compare the measured epochs with the promise of '
                        'the propagation kernels alone')
    p.add_argument('--fused-adam', action='store_true',
                   help="every model's Adam with the fused kernel (train.fused_adam), on both sides of each ratio")
    p.add_argument('--json', default=None, help='write the figures to this JSON file')
    p.add_argument('--default-malloc', action='store_true', help="keep glibc's default malloc thresholds")
    p.add_argument('--rss-of', choices=['diffcl', 'lightgcn', 'ld4mrec'], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_malloc:
        tune_allocator()  # for both sides of every comparison
    if args.rss_of:
        return rss_of(args)

    ds = MMRecDataset(args.data, modalities=None if args.diffcl or args.ld4mrec else [])
    data = ds[0]
    U, I = ds.num_users, ds.num_items
    train_ei = data[EDGE_TYPE].edge_index
    sampler = BPRSampler(train_ei, I, args.batch_size, seed=0)
    reg = 1e-4

    # ---- ours
    torch.manual_seed(0)
    model = LightGCN(U, I, args.dim, args.layers, reg_weight=reg)
    adj = BipartiteAdj(train_ei, U, I, backend=args.backend)
    ev_valid = FullRankingEvaluator(data[EDGE_TYPE].valid_edge_label_index, train_ei, U, I)
    ev_test = FullRankingEvaluator(data[EDGE_TYPE].test_edge_label_index, train_ei, U, I)
    trainer = Trainer(model, adj, sampler, ev_valid, show_progress=False, fused_adam=args.fused_adam)
    ours_epoch = time_calls(lambda e: trainer.train_epoch(max(e, 0)), args.epochs)

    def full_eval(_):
        with torch.no_grad():
            model.eval()
            fn = model_scores(model, adj)
            ev_valid.evaluate(fn)
            ev_test.evaluate(fn)
    ours_eval = time_calls(full_eval, args.epochs)

    # ---- PyG's stock LightGCN, same batches and loss; then at PyG's best practice for a fixed graph (the
    # adjacency normalised once, a SparseTensor adj_t, normalize=False); then our drop-in class
    # (pyg_diffcl.nn.LightGCN) driven exactly as PyG's example drives PyG's, a raw edge_index every step.
    homo = homogeneous(train_ei, U)

    def pyg_style(model_cls, graph, **kw):
        torch.manual_seed(0)
        m = model_cls(U + I, args.dim, args.layers, **kw)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True if args.fused_adam else None)  # as Trainer

        def epoch(e):
            m.train()
            for batch in sampler.epoch(max(e, 0)):
                u = batch.user
                eli = torch.stack([torch.cat([u, u]), torch.cat([batch.pos_item, batch.neg_item]) + U])
                opt.zero_grad()
                pos, neg = m(graph, eli).chunk(2)
                loss = m.recommendation_loss(pos, neg, node_id=eli.unique(), lambda_reg=reg)
                loss.backward()
                opt.step()

        def evaluate(_):
            with torch.no_grad():
                emb = m.get_embedding(graph)
                fn = lambda users: emb[users] @ emb[U:].t()
                ev_valid.evaluate(fn)
                ev_test.evaluate(fn)
        return time_calls(epoch, args.epochs), time_calls(evaluate, args.epochs)

    pyg_time, pyg_eval_time = pyg_style(PyGLightGCN, homo)
    pyg_cached = None
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_geometric.nn.conv.gcn_conv import gcn_norm
        from torch_sparse import SparseTensor
        adj_t = gcn_norm(SparseTensor(row=homo[1], col=homo[0], sparse_sizes=(U + I, U + I)),
                         add_self_loops=False)
        pyg_cached = pyg_style(PyGLightGCN, adj_t, normalize=False)
    dropin_time, dropin_eval = pyg_style(DropInLightGCN, homo)

    diffcl_epoch = diffcl_rss = lightgcn_rss = None
    if args.diffcl:
        torch.manual_seed(0)
        dmodel = DiffCL.from_config(diffcl_config(args.data, args.dim, args.layers), ds)
        dtrainer = Trainer(dmodel, adj, sampler, ev_valid, show_progress=False, fused_adam=args.fused_adam)
        diffcl_epoch = time_calls(lambda e: dtrainer.train_epoch(max(e, 0)), args.epochs)
        diffcl_rss, lightgcn_rss = peak_rss_child(args, 'diffcl'), peak_rss_child(args, 'lightgcn')

    parts = diffcl_parts(args, ds, adj, sampler) if args.diffcl_parts else None

    ld = None
    if args.ld4mrec:
        cfg, ld_batch = ld4mrec_setup(args.data)
        torch.manual_seed(0)
        lmodel = LD4MRec.from_config(cfg, ds)
        ltrainer = Trainer(lmodel, adj, lmodel.make_sampler(train_ei, ld_batch, 0), ev_valid, show_progress=False,
                           fused_adam=args.fused_adam)
        ld = {'batch_size': ld_batch, 'steps': cfg.diffusion_steps,
              'epoch_s': time_calls(lambda e: ltrainer.train_epoch(max(e, 0)), args.epochs)}
        lmodel.eval()

        def ld_eval(strategy):
            def run(_):
                with torch.no_grad():
                    fn = lambda users: lmodel.generate(users, strategy, cfg.diffusion_steps if strategy == 'common'
                                                       else None)
                    ev_valid.evaluate(fn)
                    ev_test.evaluate(fn)
            return run
        ld['forward_free_eval_s'] = time_calls(ld_eval('forward_free'), args.epochs)
        ld['common_eval_s'] = time_calls(ld_eval('common'), args.epochs)
        ld['peak_rss_mib'] = peak_rss_child(args, 'ld4mrec')

    cmp = None
    if args.compare_backend:
        adj_b = BipartiteAdj(train_ei, U, I, backend=args.compare_backend)
        torch.manual_seed(0)
        trainer_b = Trainer(LightGCN(U, I, args.dim, args.layers, reg_weight=reg), adj_b, sampler, None,
                            show_progress=False, fused_adam=args.fused_adam)
        cmp = {'backend': adj_b.backend, 'lightgcn_epoch_s': time_calls(lambda e: trainer_b.train_epoch(max(e, 0)),
                                                                          args.epochs)}
        p_new, p_old = propagation_s(adj, args.dim, args.layers), propagation_s(adj_b, args.dim, args.layers)
        cmp.update(propagation_s=p_new, propagation_b_s=p_old, batches=len(sampler))
        saved = len(sampler) * (p_old - p_new)
        cmp['lightgcn_promised_s'] = cmp['lightgcn_epoch_s'] - saved
        if diffcl_epoch is not None:
            torch.manual_seed(0)
            dtrainer_b = Trainer(DiffCL.from_config(diffcl_config(args.data, args.dim, args.layers), ds), adj_b,
                                 sampler, None, show_progress=False, fused_adam=args.fused_adam)
            cmp['diffcl_epoch_s'] = time_calls(lambda e: dtrainer_b.train_epoch(max(e, 0)), args.epochs)
            graphs = 1 + len(ds.modalities)
            cmp['diffcl_promised_s'] = cmp['diffcl_epoch_s'] - graphs * saved

    res = {
        'data': ds.name, 'users': U, 'items': I, 'train_interactions': int(train_ei.size(1)),
        'dim': args.dim, 'layers': args.layers, 'batch_size': args.batch_size, 'backend': adj.backend,
        'threads': torch.get_num_threads(), 'fused_adam': args.fused_adam, 'host': host_description(),
        'ours_epoch_s': ours_epoch, 'pyg_lightgcn_epoch_s': pyg_time, 'epoch_speedup': pyg_time / ours_epoch,
        'ours_eval_s': ours_eval, 'pyg_lightgcn_eval_s': pyg_eval_time,
        'pyg_lightgcn_cached_epoch_s': None if pyg_cached is None else pyg_cached[0],
        'pyg_lightgcn_cached_eval_s': None if pyg_cached is None else pyg_cached[1],
        'dropin_lightgcn_epoch_s': dropin_time, 'dropin_lightgcn_eval_s': dropin_eval,
        'dropin_speedup': pyg_time / dropin_time,
        'diffcl_epoch_s': diffcl_epoch,
        'diffcl_vs_lightgcn': None if diffcl_epoch is None else diffcl_epoch / ours_epoch,
        'diffcl_peak_rss_mib': diffcl_rss, 'lightgcn_peak_rss_mib': lightgcn_rss,
        'diffcl_parts_epoch_s': parts,
        'ld4mrec': ld,
        'compare_backend': cmp,
    }
    print(format_host(res['host']))
    print(f"{ds.name}: {U} users, {I} items, {res['train_interactions']} training interactions; d={args.dim}, "
          f"{args.layers} layers, batch {args.batch_size}, {res['threads']} threads, backend {adj.backend}"
          + (', fused Adam' if args.fused_adam else ''))
    print(f"{'':28s}{'train epoch (s)':>16s}{'full eval (s)':>15s}")
    print(f"{'pyg_diffcl LightGCN':28s}{ours_epoch:16.3f}{ours_eval:15.3f}")
    print(f"{'PyG stock LightGCN':28s}{pyg_time:16.3f}{pyg_eval_time:15.3f}")
    if pyg_cached is not None:
        print(f"{'PyG LightGCN, adj_t cached':28s}{pyg_cached[0]:16.3f}{pyg_cached[1]:15.3f}  (pyg-lgconv-cached: "
              f"normalised once, SparseTensor)")
    print(f"{'pyg_diffcl.nn.LightGCN':28s}{dropin_time:16.3f}{dropin_eval:15.3f}  (the drop-in, called as PyG's "
          f"example calls PyG's)")
    print(f"speed-up per training epoch: {pyg_time / ours_epoch:.2f}x (ours) and {pyg_time / dropin_time:.2f}x "
          f"(drop-in) over PyG's stock class"
          + ('' if pyg_cached is None else f"; {pyg_cached[0] / ours_epoch:.2f}x and "
             f"{pyg_cached[0] / dropin_time:.2f}x over PyG with a cached adj_t"))
    if diffcl_epoch is not None:
        print(f"{'pyg_diffcl DiffCL':28s}{diffcl_epoch:16.3f}  ({diffcl_epoch / ours_epoch:.2f}x our LightGCN epoch)")
        print(f"peak RSS of one training epoch in a fresh process: DiffCL {diffcl_rss:.0f} MiB, "
              f"LightGCN {lightgcn_rss:.0f} MiB")
    if parts is not None:
        print(f"DiffCL's epoch by component (s, and x our LightGCN epoch); the floor is its "
              f"{1 + len(ds.modalities)} graph encoders' propagations alone:")
        for label, sec in list(parts.items()) + ([('full model', diffcl_epoch)] if diffcl_epoch else []):
            print(f'  {label:26s}{sec:10.3f}  ({sec / ours_epoch:.2f}x)')
    if ld is not None:
        rel = f"{ld['epoch_s'] / ours_epoch:.2f}x our LightGCN epoch"
        if diffcl_epoch is not None:
            rel += f", {ld['epoch_s'] / diffcl_epoch:.2f}x DiffCL's"
        print(f"{'pyg_diffcl LD4MRec':28s}{ld['epoch_s']:16.3f}{ld['forward_free_eval_s']:15.3f}  ({rel}; "
              f"batches of {ld['batch_size']} users)")
        print(f"LD4MRec inference, valid+test users: forward-free {ld['forward_free_eval_s']:.3f} s, common "
              f"strategy with T={ld['steps']} reverse steps {ld['common_eval_s']:.3f} s "
              f"({ld['common_eval_s'] / ld['forward_free_eval_s']:.2f}x); peak RSS of one training epoch "
              f"{ld['peak_rss_mib']:.0f} MiB")
    if cmp is not None:
        b = cmp['backend']
        print(f"\npropagation alone (forward+backward): {adj.backend} {cmp['propagation_s'] * 1e3:.2f} ms, "
              f"{b} {cmp['propagation_b_s'] * 1e3:.2f} ms ({cmp['propagation_b_s'] / cmp['propagation_s']:.2f}x), "
              f"{cmp['batches']} batches per epoch")
        print(f"{'epoch (s)':28s}{b:>12s}{adj.backend:>12s}{'promised':>10s}{'measured gain':>15s}"
              f"{'promised gain':>15s}")
        rows = [('LightGCN', cmp['lightgcn_epoch_s'], ours_epoch, cmp['lightgcn_promised_s'])]
        if diffcl_epoch is not None:
            rows.append(('DiffCL', cmp['diffcl_epoch_s'], diffcl_epoch, cmp['diffcl_promised_s']))
        for name, old_s, new_s, promised in rows:
            print(f'{name:28s}{old_s:12.3f}{new_s:12.3f}{promised:10.3f}{old_s / new_s:14.2f}x'
                  f'{old_s / promised:14.2f}x')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
