"""Training throughput of data-parallel ``torchrun`` runs against one process, measured in one run on the same
machine: seconds per epoch of ``pyg-diffcl train`` with 1 process (all threads; and 1 thread), and with N
processes of 1 thread each under both ways of sharing the batches (``train.ddp_split=batches``: every N-th
batch per rank; ``examples``: 1/N of every batch per rank).

    python benchmarks/ddp_throughput.py [--model lightgcn] [--data tiktok] [--nproc 2] [--epochs 15]

Each configuration is a fresh ``pyg-diffcl train`` (packaged settings of an embedded data set) writing to a
temporary directory; its ``metrics.json`` gives ``seconds_per_epoch`` (training only, evaluation apart) and
the selected validation Recall@20, printed beside each other so that what a faster epoch costs in accuracy
shows too (``batches`` trains with N times larger effective batches).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(cmd, env, out: Path) -> dict:
    done = subprocess.run(cmd + ['--out', str(out), '--quiet'], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f'failed: {" ".join(cmd)}\n{done.stderr[-3000:]}')
    return json.loads((out / 'metrics.json').read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='lightgcn')
    p.add_argument('--data', default='tiktok')
    p.add_argument('--nproc', type=int, default=2)
    p.add_argument('--epochs', type=int, default=15)
    args = p.parse_args()
    base = ['train', '--model', args.model, '--data', args.data, '--epochs', str(args.epochs),
            '--patience', str(10 * args.epochs)]
    single = [sys.executable, '-m', 'pyg_diffcl'] + base
    multi = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={args.nproc}',
             '-m', 'pyg_diffcl'] + base
    env = dict(os.environ)
    env.pop('OMP_NUM_THREADS', None)
    one_thread = dict(env, OMP_NUM_THREADS='1')
    configs = [
        ('1 process, all threads', single, env),
        ('1 process, 1 thread', single, one_thread),
        (f'{args.nproc} processes x 1 thread, ddp_split=batches', multi + ['--set', 'train.ddp_split=batches'],
         one_thread),
        (f'{args.nproc} processes x 1 thread, ddp_split=examples', multi + ['--set', 'train.ddp_split=examples'],
         one_thread),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, cmd, e) in enumerate(configs):
            m = run(cmd, e, Path(tmp) / f'r{n}')
            rows.append((name, m['seconds_per_epoch'], m['valid']['recall@20'], m['world_size']))
    ref = rows[0][1]
    print(f'{args.model} on {args.data}, {args.epochs} epochs, {os.cpu_count()} CPUs')
    print(f"{'configuration':48s} {'s/epoch':>8s} {'throughput vs 1 process':>24s} {'valid R@20':>10s}")
    for name, sec, recall, _ in rows:
        print(f'{name:48s} {sec:8.3f} {ref / sec:24.2f} {recall:10.4f}')


if __name__ == '__main__':
    main()
