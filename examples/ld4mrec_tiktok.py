"""LD4MRec on the embedded TikTok data (image + audio), validation-selected, with the packaged tiktok
configuration (pyg_diffcl/configs/tiktok.yaml, section ld4mrec), then the paper's Fig. 3 comparison on the
selected model: forward-free inference against the common corrupt-then-denoise strategy at every forward
step T' = 1..T, on the validation split (and test, reported beside it, never used to choose).

    python examples/ld4mrec_tiktok.py [--epochs 1000] [--seed 0] [--out runs/ld4mrec-tiktok] [--set model.KEY=V ...]

(for example ``--set model.noise_scale=1.0 --set model.noise_min=0.01 --set model.noise_max=0.2`` for a
schedule whose corruption is large enough to change rankings).

The training part is the same as: pyg-diffcl train --model ld4mrec --data tiktok --out runs/ld4mrec-tiktok
"""
import argparse
import time

import torch

from pyg_diffcl.training import parse_set, resolve_config, train_run
from pyg_diffcl.training.config import packaged_config
from pyg_diffcl.training.run import load_run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='runs/ld4mrec-tiktok')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE')
    args = p.parse_args()
    config = resolve_config('ld4mrec', [packaged_config('tiktok', 'ld4mrec'), parse_set(args.set),
                                        {'data': {'name': 'tiktok'},
                                         'train': {'epochs': args.epochs, 'seed': args.seed}}])
    metrics = train_run(config, args.out, overwrite=True)
    print(f"test recall@20 {metrics['test']['recall@20']:.4f}  ndcg@20 {metrics['test']['ndcg@20']:.4f}  "
          f"(epoch {metrics['best_epoch']}, selected on validation)")

    prep = load_run(args.out)
    model = prep.model
    print(f"\n{'inference':24s}{'valid R@20':>11s}{'valid N@20':>11s}{'test R@20':>11s}{'test N@20':>11s}"
          f"{'seconds':>9s}")
    valid_eval, test_eval = prep.evaluator('valid'), prep.evaluator('test')
    strategies = [('forward-free', 'forward_free', None)] + \
        [(f"common, T'={s}", 'common', s) for s in range(1, model.diffusion.num_steps + 1)]
    for label, strategy, steps in strategies:
        fn = lambda users: model.generate(users, strategy, steps)  # noqa: E731
        t0 = time.perf_counter()
        with torch.no_grad():
            valid, test = valid_eval.evaluate(fn), test_eval.evaluate(fn)
        print(f"{label:24s}{valid['recall@20']:11.4f}{valid['ndcg@20']:11.4f}{test['recall@20']:11.4f}"
              f"{test['ndcg@20']:11.4f}{time.perf_counter() - t0:9.2f}")


if __name__ == '__main__':
    main()
