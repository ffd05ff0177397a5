"""Validation-only hyper-parameter grid: every combination trained, selected on validation. It is
``pyg-diffcl tune --sampler grid`` (the library's search, on Optuna) with the grid written as a space.

    python examples/grid_search.py --model lightgcn --data tiktok \\
        --grid model.num_layers=1,2,3,4 --grid model.reg_weight=1e-4,1e-3,1e-2,3e-2 \\
        --set train.patience=50 --seeds 0,1,2 --out runs/grid-lightgcn

Each combination is a trial under ``--out`` (``trials/STUDY/NNNN/seed-S``), ranked by its mean validation value
over the seeds in ``trials.csv``; ``best.yaml`` holds the winner. Started again, an interrupted grid goes on
from where it stopped. Test figures are never used to choose.
"""
import argparse
import math
import sys
from pathlib import Path

import yaml

from pyg_diffcl.cli import main

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--model', required=True)
p.add_argument('--data', default='tiktok')
p.add_argument('--grid', action='append', default=[], metavar='SECTION.KEY=V1,V2,...')
p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
p.add_argument('--seeds', '--seed', default='0')
p.add_argument('--out', required=True)
args = p.parse_args()
space = {k: {'choices': [yaml.safe_load(v) for v in vs.split(',')]} for k, vs in (g.split('=', 1) for g in args.grid)}
Path(args.out).mkdir(parents=True, exist_ok=True)
(Path(args.out) / 'grid.yaml').write_text(yaml.safe_dump(space))
sys.exit(main(['tune', '--model', args.model, '--data', args.data, '--space', str(Path(args.out) / 'grid.yaml'),
               '--sampler', 'grid', '--pruner', 'none', '--seeds', args.seeds, '--out', args.out,
               '--trials', str(math.prod(len(v['choices']) for v in space.values())),
               *[a for s in args.set for a in ('--set', s)]]))
