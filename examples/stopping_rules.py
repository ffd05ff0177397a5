"""Choose an early-stopping rule on validation curves, over several seeds, without training again.

    python examples/stopping_rules.py runs/probe/lgcn-lr1e-2-s* \\
        --patience 10,20,30,50 --window 1,3,5 --min-epochs 0,50

Train each seed once with a generous rule (a long patience, a high epoch cap), then replay every candidate
rule on the logged validation curves (``log.csv``) with :func:`pyg_diffcl.training.early_stop`, exactly as
the trainer applies it. For each rule the table gives the validation metric of the epoch it would keep (the
best raw epoch among those run), its mean and minimum over the runs, the *shortfall* (how far the kept
epoch falls below the run's best over the whole log, the worst run) and the mean epochs it trains.

A rule that has not stopped by the end of a log is *censored* there (``cens``): its figures are those of the
whole log, a lower bound on what it would reach. Only validation figures are read; the test split is never
opened, so the rule may be chosen from this table.

The log holds each validation value in full, so the replay sees what the trainer saw. Older logs rounded
them to six decimals; on those, a near-tie of two trailing means can break the other way and a replayed
stop can differ from the run's by a few epochs.
"""
from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path
from typing import Dict, List, Tuple

from pyg_diffcl.training import early_stop


def read_curve(run: Path, metric: str) -> List[float]:
    """The validation metric per epoch from ``run/log.csv`` (epoch 1 first)."""
    path = run / 'log.csv'
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    column = f'valid_{metric}'
    if not rows or column not in rows[0]:
        raise SystemExit(f'{path}: no column {column!r}')
    return [float(r[column]) for r in rows]


def replay(curve: List[float], patience: int, window: int, min_epochs: int) -> Tuple[int, float, bool]:
    """Epochs run, kept validation value, and whether the log ended first (censored)."""
    for last in range(1, len(curve) + 1):
        if early_stop(curve[:last], patience, min_epochs, window):
            return last, max(curve[:last]), False
    return len(curve), max(curve), True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', type=Path, help='run directories (one per seed) with a log.csv')
    p.add_argument('--metric', default='recall@20')
    p.add_argument('--patience', default='10,20,30,50,100')
    p.add_argument('--window', default='1,3,5,10')
    p.add_argument('--min-epochs', default='0')
    args = p.parse_args()
    ints = lambda s: [int(v) for v in s.split(',')]  # noqa: E731

    curves: Dict[str, List[float]] = {str(r): read_curve(r, args.metric) for r in args.runs}
    best = {name: max(c) for name, c in curves.items()}
    print(f'{len(curves)} runs; logged epochs {min(map(len, curves.values()))}-{max(map(len, curves.values()))}; '
          f'best valid {args.metric} over each whole log: mean {statistics.mean(best.values()):.4f}, '
          f'min {min(best.values()):.4f}')
    print(f'| patience | window | min epochs | valid {args.metric} mean | min | worst shortfall | '
          'mean epochs | cens |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for patience in ints(args.patience):
        for window in ints(args.window):
            for floor in ints(args.min_epochs):
                out = [replay(c, patience, window, floor) for c in curves.values()]
                kept = [v for _, v, _ in out]
                short = max(best[name] - v for name, (_, v, _) in zip(curves, out))
                epochs = statistics.mean(e for e, _, _ in out)
                cens = sum(c for _, _, c in out)
                print(f'| {patience} | {window} | {floor} | {statistics.mean(kept):.4f} | {min(kept):.4f} | '
                      f'{short:.4f} | {epochs:.0f} | {cens if cens else ""} |')


if __name__ == '__main__':
    main()
