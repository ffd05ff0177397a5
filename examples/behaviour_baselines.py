"""Training-free baselines that score items from a user's own training row, selected on validation: what the
family LD4MRec belongs to (models of behaviour rows: DiffRec, Mult-DAE) reaches on a data set without graph
propagation, as a yardstick for LD4MRec's figures.

* **EASE** (Steck, WWW 2019): the item-item weights
  :math:`\\mathbf{B} = \\arg\\min \\|\\mathbf{X} - \\mathbf{X}\\mathbf{B}\\|^2 + \\lambda\\|\\mathbf{B}\\|^2` with
  :math:`\\mathrm{diag}(\\mathbf{B}) = 0`, in closed form :math:`\\mathbf{B} = \\mathbf{I} - \\mathbf{P}\\,
  \\mathrm{diag}(1 / \\mathrm{diag}\\,\\mathbf{P})`, :math:`\\mathbf{P} = (\\mathbf{X}^\\top\\mathbf{X} +
  \\lambda\\mathbf{I})^{-1}`; scores :math:`\\mathbf{x}_u \\mathbf{B}`.
* **Spectral filter** (GF-CF, Shen et al., CIKM 2021): with :math:`\\tilde{\\mathbf{R}} =
  \\mathbf{D}_\\mathcal{U}^{-1/2}\\mathbf{X}\\mathbf{D}_\\mathcal{I}^{-1/2}` and :math:`\\mathbf{V}_k` its top-:math:`k`
  right singular vectors, scores :math:`\\mathbf{x}_u \\tilde{\\mathbf{R}}^\\top\\tilde{\\mathbf{R}} + \\alpha\\,
  \\mathbf{x}_u \\mathbf{D}_\\mathcal{I}^{-1/2}\\mathbf{V}_k\\mathbf{V}_k^\\top\\mathbf{D}_\\mathcal{I}^{1/2}`.

Every setting of the grid is scored on validation; the best by validation Recall@20 is reported on test
(test is printed for every row for the record, never used to choose). Dense items x items matrices: meant
for data sets up to a few ten thousand items.

    python examples/behaviour_baselines.py [--data tiktok] [--lambdas 5,20,50,100,200] [--ranks 64,256,512]
"""
import argparse
from typing import Callable, Dict, List, Tuple

import torch

from pyg_diffcl.datasets.mmrec import EDGE_TYPE
from pyg_diffcl.training import parse_set, prepare, resolve_config
from pyg_diffcl.training.config import packaged_config

MAX_ITEMS = 40_000


def floats(text: str) -> List[float]:
    return [float(v) for v in text.split(',') if v]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default='tiktok')
    p.add_argument('--lambdas', type=floats, default=floats('5,20,50,100,200'), help='EASE regularisation')
    p.add_argument('--ranks', type=floats, default=floats('64,256,512'), help='spectral filter ranks k')
    p.add_argument('--alphas', type=floats, default=floats('0,0.3,1,3'), help='spectral filter weights')
    p.add_argument('--threads', type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # The data set's packaged settings (on tiktok: its cold users are kept and counted, as for every model).
    config = resolve_config('lightgcn', [packaged_config(args.data, 'lightgcn'), parse_set([f'data.name={args.data}'])])
    prep = prepare(config)
    U, I = prep.dataset.num_users, prep.dataset.num_items
    if I > MAX_ITEMS:
        raise SystemExit(f'{args.data}: {I} items; this script builds dense items x items matrices '
                         f'(at most {MAX_ITEMS} items)')
    ei = prep.dataset[0][EDGE_TYPE].edge_index
    X = torch.zeros(U, I)
    X[ei[0], ei[1]] = 1.0
    evaluators = {split: prep.evaluator(split) for split in ('valid', 'test')}

    rows: List[Tuple[str, Dict[str, Dict[str, float]]]] = []

    def score(name: str, item_item: torch.Tensor) -> None:
        fn: Callable[[torch.Tensor], torch.Tensor] = lambda users: X[users] @ item_item
        rows.append((name, {s: ev.evaluate(fn) for s, ev in evaluators.items()}))
        r = rows[-1][1]
        print(f"{name:34s} valid {r['valid']['recall@20']:.4f} / {r['valid']['ndcg@20']:.4f}   "
              f"test {r['test']['recall@20']:.4f} / {r['test']['ndcg@20']:.4f}", flush=True)

    G = X.t() @ X
    for lam in args.lambdas:
        P = torch.linalg.inv(G + lam * torch.eye(I))
        B = -P / torch.diag(P)
        B.fill_diagonal_(0.0)
        score(f'EASE lambda={lam:g}', B)
    du, di = X.sum(1), X.sum(0)
    dui = torch.where(du > 0, du.clamp(min=1).rsqrt(), torch.zeros_like(du))
    dii = torch.where(di > 0, di.clamp(min=1).rsqrt(), torch.zeros_like(di))
    Rt = X * dui[:, None] * dii[None, :]
    linear = Rt.t() @ Rt
    kmax = int(min(max(args.ranks), U, I))
    torch.manual_seed(0)
    _, _, V = torch.svd_lowrank(Rt, q=kmax, niter=8)
    if 0.0 in args.alphas:
        score('spectral alpha=0 (linear filter)', linear)
    for k in args.ranks:
        Vk = V[:, :int(min(k, kmax))]
        ideal = (dii[:, None] * Vk) @ (Vk.t() * torch.where(dii > 0, di.sqrt(), torch.zeros_like(di))[None, :])
        for a in args.alphas:
            if a != 0.0:
                score(f'spectral k={int(k)} alpha={a:g}', linear + a * ideal)
    name, best = max(rows, key=lambda r: r[1]['valid']['recall@20'])
    print(f"\nselected on validation Recall@20: {name}: test Recall@20 {best['test']['recall@20']:.4f}, "
          f"NDCG@20 {best['test']['ndcg@20']:.4f} (valid {best['valid']['recall@20']:.4f})")


if __name__ == '__main__':
    main()
