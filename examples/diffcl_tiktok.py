"""DiffCL on the embedded TikTok data (image + audio), validation-selected, with the packaged tiktok
configuration (pyg_diffcl/configs/tiktok.yaml, section diffcl).

    python examples/diffcl_tiktok.py [--epochs 1000] [--seed 0] [--out runs/diffcl-tiktok]

The same as: pyg-diffcl train --model diffcl --data tiktok --out runs/diffcl-tiktok
"""
import argparse

from pyg_diffcl.training import resolve_config, train_run
from pyg_diffcl.training.config import packaged_config


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='runs/diffcl-tiktok')
    args = p.parse_args()
    config = resolve_config('diffcl', [packaged_config('tiktok', 'diffcl'),
                                       {'data': {'name': 'tiktok'},
                                        'train': {'epochs': args.epochs, 'seed': args.seed}}])
    metrics = train_run(config, args.out, overwrite=True)
    print(f"test recall@20 {metrics['test']['recall@20']:.4f}  ndcg@20 {metrics['test']['ndcg@20']:.4f}  "
          f"(epoch {metrics['best_epoch']}, selected on validation)")


if __name__ == '__main__':
    main()
