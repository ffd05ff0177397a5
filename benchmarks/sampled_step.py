r"""Where a sampled training step's time goes, and what the fan-out and the optimizer change: LightGCN on the
synthetic power-law graphs of ``benchmarks/scale.py`` (generated there once and cached under ``--out``).

    python benchmarks/sampled_step.py [--sizes m,l] [--fanouts 10,10:10,5:5,5] [--batches 25]

For every (size, fan-out) it times, in one process, ``--batches`` consecutive batches of an epoch (the first
three dropped): the sampling (:class:`~pyg_diffcl.datasets.NeighborBPRSampler`, PyG's ``LinkNeighborLoader``)
and the training step (forward, backward, and ``train.optimizer=sparse_adam``'s
:class:`~pyg_diffcl.training.optim.RowSparseAdam`), with the mean subgraph size. Then, on the first size and
fan-out, the optimizer alone against torch's ``SparseAdam`` over the same gradients (median of the steps,
ratio printed). The step of a quiet machine is what the scale benchmark's ``--loader neighbor`` reports over
500 batches; this script is for comparing settings.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import DIM, LAYERS, SIZES, data_path  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default='m,l')
    p.add_argument('--fanouts', default='10,10:10,5:5,5', help='colon-separated fan-outs, one entry per layer')
    p.add_argument('--batches', type=int, default=25)
    p.add_argument('--batch-size', type=int, default=2048)
    p.add_argument('--out', default='benchmarks/results/scale', help="where scale.py's graphs are cached")
    args = p.parse_args()
    import torch

    from pyg_diffcl.models import LightGCN
    from pyg_diffcl.training.optim import RowSparseAdam
    from pyg_diffcl.training.trainer import make_optimizer
    out = Path(args.out)
    fanouts = [[int(v) for v in f.split(',')] for f in args.fanouts.split(':') if f]
    if any(len(f) != LAYERS for f in fanouts):
        p.error(f'--fanouts: {LAYERS} entries each (one per layer), got {fanouts}')
    if args.batches < 4:
        p.error('--batches: at least 4 (the first three are dropped)')
    print(f"{'size':4s} {'fan-out':10s} {'sampling s':>10s} {'training s':>10s} {'step s':>8s} "
          f"{'users':>8s} {'items':>8s}")
    first = None
    for size in [s for s in args.sizes.split(',') if s]:
        if size not in SIZES:
            p.error(f'--sizes: unknown size {size!r} (choose from {", ".join(SIZES)})')
        path = data_path(out, size)
        if not path.is_file():
            subprocess.run([sys.executable, str(Path(__file__).with_name('scale.py')), '--out', str(out),
                            '--generate', size], check=True)
        train = torch.load(path, weights_only=True)['train']
        users, items, _ = SIZES[size]
        for fan in fanouts:
            torch.manual_seed(0)
            net = LightGCN(users, items, DIM, LAYERS)
            sampler = net.make_neighbor_sampler(train, fan, args.batch_size, 0)
            opt = make_optimizer(net, 'sparse_adam', lr=1e-3)  # what train.optimizer=sparse_adam trains with
            perm = sampler._permutation(0)
            rows = []
            for b in range(min(args.batches, len(sampler))):
                t0 = time.perf_counter()
                batch = sampler.batch(0, b, perm)
                t1 = time.perf_counter()
                opt.zero_grad()
                net.loss(None, batch).backward()
                opt.step()
                rows.append((t1 - t0, time.perf_counter() - t1, batch.user_id.numel(), batch.item_id.numel()))
            rows = rows[3:]
            mean = [statistics.fmean(c) for c in zip(*rows)]
            print(f"{size:4s} {str(fan):10s} {mean[0]:10.3f} {mean[1]:10.3f} {mean[0] + mean[1]:8.3f} "
                  f"{mean[2]:8.0f} {mean[3]:8.0f}", flush=True)
            if first is None:
                first = (net, sampler, perm)
    net, sampler, perm = first
    batches = [sampler.batch(0, b, perm) for b in range(6)]
    params = [t.weight for t in net.sparse_embeddings()]
    times = {'torch SparseAdam': [], 'RowSparseAdam': []}
    opts = {'torch SparseAdam': torch.optim.SparseAdam(params, lr=1e-3), 'RowSparseAdam': RowSparseAdam(params)}
    for _ in range(3):
        for name, opt in opts.items():
            for batch in batches:
                opt.zero_grad()
                net.loss(None, batch).backward()
                t0 = time.perf_counter()
                opt.step()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[len(batches):]) for k, v in times.items()}
    print(f"\noptimizer step (median over {2 * len(batches)} steps): torch SparseAdam {med['torch SparseAdam']:.3f} s, "
          f"RowSparseAdam {med['RowSparseAdam']:.3f} s: {med['torch SparseAdam'] / med['RowSparseAdam']:.1f}x")


if __name__ == '__main__':
    main()
