"""Train LightGCN on the embedded TikTok data with the library's parts, in plain Python.

    python examples/lightgcn_tiktok.py [--epochs 300] [--seed 0]

The same run as ``pyg-diffcl train --model lightgcn --data tiktok``, spelled out: data set -> graph ->
model -> sampler -> trainer (validation selects the epoch) -> one test evaluation of the selected weights.
"""
import argparse

import torch

from pyg_diffcl.datasets import BPRSampler, MMRecDataset
from pyg_diffcl.evaluation import FullRankingEvaluator
from pyg_diffcl.models import LightGCN
from pyg_diffcl.ops import BipartiteAdj
from pyg_diffcl.training import Trainer, model_scores


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=300)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)

    dataset = MMRecDataset('tiktok')
    print(dataset)
    data = dataset[0]
    store = data['user', 'rates', 'item']
    U, I = dataset.num_users, dataset.num_items

    adj = BipartiteAdj(store.edge_index, U, I)  # normalised once, both directions
    model = LightGCN(U, I, embedding_dim=64, num_layers=2, reg_weight=1e-4)
    valid = FullRankingEvaluator(store.valid_edge_label_index, store.edge_index, U, I)
    test = FullRankingEvaluator(store.test_edge_label_index, store.edge_index, U, I)

    trainer = Trainer(model, adj, BPRSampler(store.edge_index, I, 2048, seed=args.seed), valid,
                      lr=1e-3, epochs=args.epochs, patience=20, metric='recall@20',
                      on_epoch=lambda r, best: print(f"epoch {r.epoch:3d} loss {r.loss:.4f} "
                                                      f"valid recall@20 {r.valid['recall@20']:.4f}"
                                                      f"{' *' if best else ''}"))
    result = trainer.fit()
    model.load_state_dict(result.best_state)
    model.eval()
    with torch.no_grad():
        metrics = test.evaluate(model_scores(model, adj))
    print(f"selected epoch {result.best_epoch} (validation); test recall@20 {metrics['recall@20']:.4f} "
          f"ndcg@20 {metrics['ndcg@20']:.4f}")


if __name__ == '__main__':
    main()
