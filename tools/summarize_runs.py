"""Mean ± std (sample std, n-1) of the metrics of several run directories, as a Markdown table row.

    python tools/summarize_runs.py runs/lightgcn-s0 runs/lightgcn-s1 runs/lightgcn-s2
"""
import json
import statistics
import sys
from pathlib import Path

KEYS = ('recall@20', 'ndcg@20', 'recall@50', 'ndcg@50')


def main(paths):
    ms = [json.loads((Path(p) / 'metrics.json').read_text()) for p in paths]
    model = ms[0]['model']

    def fmt(values):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f'{statistics.mean(values):.4f} ± {sd:.4f}'

    cells = [fmt([m['test'][k] for m in ms]) for k in KEYS]
    valid = fmt([m['valid']['recall@20'] for m in ms])
    epochs = ', '.join(str(m['best_epoch']) for m in ms)
    spe = statistics.mean(m['seconds_per_epoch'] for m in ms)
    print(f"| model | seeds | test {' | test '.join(KEYS)} | valid recall@20 | selected epochs | s/epoch |")
    print('|' + ' --- |' * (len(KEYS) + 5))
    print(f"| {model} | {', '.join(str(m['seed']) for m in ms)} | {' | '.join(cells)} | {valid} | {epochs} | "
          f"{spe:.2f} |")


if __name__ == '__main__':
    main(sys.argv[1:])
