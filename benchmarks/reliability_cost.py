"""What reliability costs per epoch, measured in one run: ``--deterministic`` (deterministic kernels) against
the default kernels, and the resume checkpoint written after every epoch (``last.pt``: model, Adam's moments,
random states, the selected weights) against the epoch it protects.

    python benchmarks/reliability_cost.py [--data tiktok|DIR] [--models lightgcn,diffcl,ld4mrec] [--epochs 2]
                                          [--device cpu|cuda] [--json out.json]

Each model uses the run configuration ``pyg-diffcl train --model M --data DATA`` would (the packaged settings
of an embedded data set). Epoch seconds are medians over :obj:`--epochs` timed epochs after one warm-up, the
default and the deterministic mode alternating epoch by epoch on the same model, so that drift in the
machine's speed hits both alike. The checkpoint is written exactly as a run writes it (temporary file, fsync,
rename).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from pyg_diffcl.datasets.mmrec import EDGE_TYPE, EMBEDDED_DATASETS
from pyg_diffcl.ops import tune_allocator
from pyg_diffcl.training import Trainer, prepare
from pyg_diffcl.training.config import packaged_config, parse_set, resolve_config
from pyg_diffcl.datasets.files import atomic_write


def measure(model: str, data: str, epochs: int, device: str) -> dict:
    layers = [packaged_config(data, model)] if data in EMBEDDED_DATASETS else []
    config = resolve_config(model, layers + [parse_set([f'data.name={data}', f'train.device={device}'])])
    prep = prepare(config)
    sampler = prep.model.make_sampler(prep.dataset[0][EDGE_TYPE].edge_index, config.train.batch_size,
                                      config.train.seed)
    trainer = Trainer(prep.model, prep.adj, sampler, None, lr=config.train.lr, show_progress=False,
                      weight_decay=config.train.weight_decay, handle_sigint=False)
    sync = torch.cuda.synchronize if prep.device.type == 'cuda' else (lambda: None)
    times = {False: [], True: []}
    trainer.train_epoch(0)  # warm-up
    for e in range(1, 1 + 2 * epochs):
        mode = bool(e % 2 == 0)
        torch.use_deterministic_algorithms(mode)
        trainer._partial = trainer.empty_partial()
        sync()
        t0 = time.perf_counter()
        trainer.train_epoch(e)
        sync()
        times[mode].append(time.perf_counter() - t0)
    torch.use_deterministic_algorithms(False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'last.pt'
        ckpt_s = []
        for _ in range(3):
            t0 = time.perf_counter()
            state = trainer.state_dict()
            atomic_write(path, lambda f: torch.save({'trainer': state}, f))
            ckpt_s.append(time.perf_counter() - t0)
        size = path.stat().st_size
    epoch = statistics.median(times[False])
    det = statistics.median(times[True])
    return {'model': model, 'device': str(prep.device), 'backend': prep.adj.backend, 'epoch_s': epoch,
            'deterministic_epoch_s': det, 'deterministic_ratio': det / epoch,
            'checkpoint_s': statistics.median(ckpt_s), 'checkpoint_mib': size / 2**20,
            'checkpoint_share': statistics.median(ckpt_s) / epoch}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='tiktok')
    p.add_argument('--models', default='lightgcn,diffcl,ld4mrec')
    p.add_argument('--epochs', type=int, default=2, help='timed epochs per mode (median), after one warm-up')
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', default=None)
    args = p.parse_args()
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda, but torch finds no CUDA device', file=sys.stderr)
        sys.exit(2)
    tune_allocator()
    rows = [measure(m.strip(), args.data, args.epochs, args.device) for m in args.models.split(',') if m.strip()]
    print(f'data {args.data}, {args.epochs} timed epochs per mode, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    print(f"{'model':10s} {'device':6s} {'backend':10s} {'epoch s':>8s} {'determ. s':>9s} {'ratio':>6s} "
          f"{'ckpt s':>7s} {'ckpt MiB':>8s} {'ckpt/epoch':>10s}")
    for r in rows:
        print(f"{r['model']:10s} {r['device']:6s} {r['backend']:10s} {r['epoch_s']:8.3f} "
              f"{r['deterministic_epoch_s']:9.3f} {r['deterministic_ratio']:6.2f} {r['checkpoint_s']:7.3f} "
              f"{r['checkpoint_mib']:8.1f} {r['checkpoint_share']:10.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == '__main__':
    main()
