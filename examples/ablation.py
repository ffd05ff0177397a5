"""DiffCL's Table III on a data set: the 8 combinations of diffusion contrast, ID-guided alignment and
item-graph enhancement, each validation-selected, printed as a table of test metrics.

    python examples/ablation.py DATA [--seeds 0] [--epochs N] [--out DIR] [--set k=v ...]
        [--only DiffCL_diff,DiffCL_h]

The variants are the rows of the packaged ``tiktok-ablation`` table (``pyg_diffcl/configs/tables/``), run on
DATA (an embedded data set's name or a data set directory) with the packaged settings of an embedded data set
and your ``--set`` overrides, through the same machinery as ``pyg-diffcl reproduce``: each (variant, seed) is
a run directory under --out; finished ones are reused and interrupted ones resumed. On tiktok,
``pyg-diffcl reproduce tiktok-ablation`` is this table as docs/results.md states it.
"""
from __future__ import annotations

import argparse
import sys

from pyg_diffcl.training.reproduce import load_table, markdown, run_spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data', help="an embedded data set's name or a data set directory")
    p.add_argument('--seeds', default='0', help='comma-separated seeds (default: 0)')
    p.add_argument('--epochs', type=int, default=None, help='train.epochs (default: the configured one)')
    p.add_argument('--out', default=None, help='where the run directories go (default: runs/ablation-DATA)')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
    p.add_argument('--only', default=None, metavar='NAME,...',
                   help='run only these variants (e.g. to split the table over processes)')
    args = p.parse_args()

    _, spec = load_table('tiktok-ablation')
    spec['data'] = args.data
    extra = list(args.set) + ([f'train.epochs={args.epochs}'] if args.epochs is not None else [])
    out = args.out or f"runs/ablation-{str(args.data).rstrip('/').split('/')[-1]}"
    seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
    results = run_spec('ablation', spec, out, seeds, args.only.split(',') if args.only else None, extra,
                       log=lambda *a: print(*a, file=sys.stderr))
    print(markdown(results))
    print('(test metrics of the validation-selected epoch of each variant; diff = diffusion contrast, '
          'align = ID-guided alignment, h = item-graph enhancement)')


if __name__ == '__main__':
    main()
