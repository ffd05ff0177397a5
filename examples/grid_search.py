"""Validation-only hyper-parameter search: train every combination of a grid, select on validation.

    python examples/grid_search.py --model lightgcn --data tiktok \\
        --grid model.num_layers=1,2,3,4 --grid model.reg_weight=1e-4,1e-3,1e-2,3e-2 \\
        --set train.patience=50 --seed 0 --out runs/grid-lightgcn

Each combination becomes a run directory under ``--out`` (finished ones are reused, so an interrupted search
resumes). The table is sorted by the validation selection metric, and the winner is chosen by that metric
alone: test figures are printed for the record and never used to choose.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from pyg_diffcl.training import parse_set, resolve_config, train_run
from pyg_diffcl.training.config import packaged_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True)
    p.add_argument('--data', default='tiktok')
    p.add_argument('--grid', action='append', default=[], metavar='SECTION.KEY=V1,V2,...')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    args = p.parse_args()

    axes = []
    for g in args.grid:
        key, values = g.split('=', 1)
        axes.append([(key, v) for v in values.split(',')])
    out = Path(args.out)
    rows = []
    for combo in itertools.product(*axes) if axes else [()]:
        name = '_'.join(f"{k.split('.')[-1]}={v}" for k, v in combo) or 'default'
        run = out / name
        if not (run / 'metrics.json').exists():
            layers = [packaged_config(args.data, args.model),
                      parse_set(args.set + [f'{k}={v}' for k, v in combo]),
                      {'model': {'name': args.model}, 'data': {'name': args.data}, 'train': {'seed': args.seed}}]
            train_run(resolve_config(layers=layers), run, overwrite=True, quiet=True)
        m = json.loads((run / 'metrics.json').read_text())
        rows.append((name, m))
        print(f"{name:40s} valid {m['selection_metric']} {m['valid'][m['selection_metric']]:.4f}  "
              f"(epoch {m['best_epoch']})", flush=True)

    metric = rows[0][1]['selection_metric']
    rows.sort(key=lambda r: -r[1]['valid'][metric])
    print(f"\n{'combination':40s} {'valid ' + metric:>18s} {'valid ndcg@20':>14s} {'test recall@20':>15s} "
          f"{'test ndcg@20':>13s} {'epoch':>6s}")
    for name, m in rows:
        print(f"{name:40s} {m['valid'][metric]:18.4f} {m['valid']['ndcg@20']:14.4f} {m['test']['recall@20']:15.4f} "
              f"{m['test']['ndcg@20']:13.4f} {m['best_epoch']:6d}")
    print(f'\nselected on validation {metric}: {rows[0][0]}')


if __name__ == '__main__':
    main()
