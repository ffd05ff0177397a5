"""DiffCL on your own data set directory (MMRec layout: one *.inter file, <modality>_feat.npy files).

    python examples/diffcl_own_data.py /path/to/data [--modalities image,text] [--epochs 300]

Nothing here assumes TikTok: the modalities and their dimensions are read from the directory. The same run
from the shell: pyg-diffcl train --model diffcl --data /path/to/data --out runs/mine
"""
import argparse

from pyg_diffcl.training import resolve_config, train_run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('data')
    p.add_argument('--modalities', default=None, help='comma-separated (default: every *_feat.npy)')
    p.add_argument('--epochs', type=int, default=300)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='runs/diffcl-own-data')
    args = p.parse_args()
    data = {'name': args.data}
    if args.modalities:
        data['modalities'] = args.modalities.split(',')
    config = resolve_config('diffcl', [{'data': data, 'train': {'epochs': args.epochs, 'seed': args.seed}}])
    metrics = train_run(config, args.out, overwrite=True)
    print({k: round(v, 4) for k, v in metrics['test'].items() if k.endswith('@20')})


if __name__ == '__main__':
    main()
