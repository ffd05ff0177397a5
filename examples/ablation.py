"""DiffCL's Table III on a data set: the 8 combinations of diffusion contrast, ID-guided alignment and
item-graph enhancement, each validation-selected, printed as a table of test metrics.

    python examples/ablation.py tiktok [--epochs 1000] [--seed 0] [--out runs/ablation] [--set k=v ...]
        [--only DiffCL_diff,DiffCL_h]

Each variant is a run directory under --out (finished ones are reused, so an interrupted table resumes).
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from pyg_diffcl.training import parse_set, resolve_config, train_run
from pyg_diffcl.training.config import packaged_config

NAMES = {(0, 0, 0): 'DiffCL_baseline', (1, 0, 0): 'DiffCL_diff', (0, 1, 0): 'DiffCL_align', (0, 0, 1): 'DiffCL_h',
         (1, 1, 0): 'DiffCL_diff+align', (1, 0, 1): 'DiffCL_diff+h', (0, 1, 1): 'DiffCL_align+h',
         (1, 1, 1): 'DiffCL'}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data', help="an embedded data set's name or a data set directory")
    p.add_argument('--epochs', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='runs/ablation')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
    p.add_argument('--only', default=None, metavar='NAME,...',
                   help='train only these variants (e.g. to split the table over processes); the table shows '
                        'the finished ones')
    args = p.parse_args()
    only = set(args.only.split(',')) if args.only else None

    rows = []
    for flags in itertools.product([0, 1], repeat=3):
        name = NAMES[flags]
        run = Path(args.out) / name
        if only is not None and name not in only:
            if (run / 'metrics.json').exists():
                rows.append((name, json.loads((run / 'metrics.json').read_text())))
            continue
        if not (run / 'metrics.json').exists():
            switches = {'use_diffusion': bool(flags[0]), 'use_alignment': bool(flags[1]),
                        'use_item_graph': bool(flags[2])}
            layers = [packaged_config(str(args.data), 'diffcl'), parse_set(args.set),
                      {'model': {'name': 'diffcl', **switches}, 'data': {'name': args.data},
                       'train': {'epochs': args.epochs, 'seed': args.seed}}]
            print(f'training {name} ...', flush=True)
            train_run(resolve_config(layers=layers), run, overwrite=True, quiet=True)
        rows.append((name, json.loads((run / 'metrics.json').read_text())))

    print(f"\n{'variant':20s} {'diff':>5s} {'align':>6s} {'h':>3s} {'R@10':>8s} {'R@20':>8s} {'N@10':>8s} {'N@20':>8s}"
          f" {'valid R@20':>11s} {'epoch':>6s}")
    flags_of = {v: k for k, v in NAMES.items()}
    for name, m in rows:
        flags, t = flags_of[name], m['test']
        print(f"{name:20s} {flags[0]:5d} {flags[1]:6d} {flags[2]:3d} {t['recall@10']:8.4f} {t['recall@20']:8.4f} "
              f"{t['ndcg@10']:8.4f} {t['ndcg@20']:8.4f} {m['valid']['recall@20']:11.4f} {m['best_epoch']:6d}")
    print('(test metrics of the validation-selected epoch of each variant)')


if __name__ == '__main__':
    main()
