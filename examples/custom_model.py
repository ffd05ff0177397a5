"""Build your own recommender inside your own PyG model from pyg_diffcl's layers.

A small "feature-aware LightGCN": item features through a linear map plus a free item embedding, LightGCN
propagation (shared layer), a cosine item-item graph from the features, and an InfoNCE term between two
diffusion views of the batch's item embeddings. Trained here for a few epochs on the embedded TikTok data.

    python examples/custom_model.py [--epochs 5]
"""
import argparse

import torch

from pyg_diffcl.datasets import BPRSampler, MMRecDataset
from pyg_diffcl.evaluation import FullRankingEvaluator
from pyg_diffcl.nn import BPRLoss, BipartiteLightGCNConv, DiffusionViewGenerator, InfoNCE, LightGCNPropagation
from pyg_diffcl.ops import Adjacency, BipartiteAdj, item_knn_graph


class FeatureLightGCN(torch.nn.Module):
    def __init__(self, num_users, num_items, features, dim=64):
        super().__init__()
        self.user = torch.nn.Embedding(num_users, dim)
        self.item = torch.nn.Embedding(num_items, dim)
        self.feat = features
        self.proj = torch.nn.Linear(features.size(1), dim)
        self.prop = LightGCNPropagation(num_layers=2)           # LightGCN, mean of layers
        self.ii_conv = BipartiteLightGCNConv()                  # reused on an item-item graph
        ei, w = item_knn_graph(features, k=10)
        self.ii_adj = Adjacency(ei, w, (num_items, num_items))
        self.views = DiffusionViewGenerator(dim, hidden=[dim])
        self.cl, self.bpr = InfoNCE(tau=0.2), BPRLoss(1e-4)
        torch.nn.init.xavier_uniform_(self.user.weight)
        torch.nn.init.xavier_uniform_(self.item.weight)

    def embed(self, adj):
        items0 = self.item.weight + self.proj(self.feat)
        u, i = self.prop(adj, self.user.weight, items0)
        return u, i + self.ii_conv((i, i), self.ii_adj)

    def loss(self, adj, batch):
        u, i = self.embed(adj)
        eu, ep, en = u[batch.user], i[batch.pos_item], i[batch.neg_item]
        loss = self.bpr((eu * ep).sum(-1), (eu * en).sum(-1), (self.user(batch.user), self.item(batch.pos_item)))
        items = i[torch.unique(batch.pos_item)]
        return loss + 0.1 * self.cl(self.views(items), self.views(items)) + self.views.loss(items)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    ds = MMRecDataset('tiktok')
    store = ds[0]['user', 'rates', 'item']
    U, I = ds.num_users, ds.num_items
    adj = BipartiteAdj(store.edge_index, U, I)
    model = FeatureLightGCN(U, I, ds.features()['image'])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = BPRSampler(store.edge_index, I, 2048)
    valid = FullRankingEvaluator(store.valid_edge_label_index, store.edge_index, U, I, ks=[20])
    for epoch in range(args.epochs):
        model.train()
        for batch in sampler.epoch(epoch):
            opt.zero_grad()
            model.loss(adj, batch).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            u, i = model.embed(adj)
            m = valid.evaluate(lambda users: u[users] @ i.t())
        print(f"epoch {epoch + 1}: valid recall@20 {m['recall@20']:.4f}")


if __name__ == '__main__':
    main()
