"""A multimodal recommender of your own, built from pyg_diffcl's layers, on a HeteroData of your own naming.

The graph here is ('viewer', 'watched', 'video') with the videos' features stored as node attributes
``visual`` and ``acoustic`` (any names, any number, any widths work), not MMRec's files. The model mixes
pieces of the baselines: ID embeddings plus projected features (FREEDOM, BM3), LightGCN propagation, a
frozen multimodal item graph (FREEDOM, MENTOR), InfoNCE between SimGCL-perturbed views (MENTOR) and the
mean/variance alignment of the modalities to the IDs (MENTOR, DiffCL). It follows the library's small
model contract (``get_embedding`` and ``loss``), so the library's trainer runs it: validation selects the
epoch (early stopping on the smoothed curve), and test is reported once, for that epoch.

    python examples/multimodal_heterodata.py [--epochs 10] [--max-users 4000]
"""
import argparse

import torch
from torch_geometric.data import HeteroData

from pyg_diffcl.datasets import BPRSampler, MMRecDataset
from pyg_diffcl.evaluation import FullRankingEvaluator
from pyg_diffcl.models import Recommender
from pyg_diffcl.nn import (BPRLoss, IDGuidedAlignment, InfoNCE, ItemFeatureProjection, LightGCNPropagation,
                           SimGCLNoise)
from pyg_diffcl.ops import Adjacency, BipartiteAdj, item_knn_graph, user_item_edge_type, weighted_graph_sum
from pyg_diffcl.training import Trainer


def build_graph(max_users):
    """The embedded TikTok data, renamed: a graph a user might build from their own tables."""
    ds = MMRecDataset('tiktok')
    src = ds[0]['user', 'rates', 'item']
    feats = ds.features()
    data = HeteroData()
    keep = lambda ei: ei[:, ei[0] < max_users]  # a smaller graph for a quick run
    data['viewer'].num_nodes = min(ds.num_users, max_users)
    data['video'].num_nodes = ds.num_items
    data['video'].visual, data['video'].acoustic = feats['image'], feats['audio']
    store = data['viewer', 'watched', 'video']
    store.edge_index = keep(src.edge_index)
    store.valid_index, store.test_index = keep(src.valid_edge_label_index), keep(src.test_edge_label_index)
    return data


class MyMultimodalRec(Recommender):
    def __init__(self, num_users, num_items, features, dim=64, cl_weight=0.05, align_weight=0.1):
        super().__init__(num_users, num_items)
        self.user = torch.nn.Embedding(num_users, dim)
        self.item = torch.nn.Embedding(num_items, dim)
        self.features = ItemFeatureProjection(features, dim, trainable=False)
        self.prop = LightGCNPropagation(num_layers=2)
        ei, w = weighted_graph_sum([item_knn_graph(features[m], k=10) for m in self.features.modalities],
                                   [1.0 / len(features)] * len(features), num_items)
        self.item_graph = Adjacency(ei, w, (num_items, num_items))
        self.noise, self.cl = SimGCLNoise(eps=0.1), InfoNCE(tau=0.2)
        self.align, self.bpr = IDGuidedAlignment(), BPRLoss(1e-4)
        self.cl_weight, self.align_weight = cl_weight, align_weight
        torch.nn.init.xavier_uniform_(self.user.weight)
        torch.nn.init.xavier_uniform_(self.item.weight)

    def get_embedding(self, adj, perturb=None):
        mods = [self.features(m) for m in self.features.modalities]
        items0 = self.item.weight + sum(mods) / len(mods)
        u, i = self.prop(adj, self.user.weight, items0, perturb=perturb)
        return u, i + self.item_graph.matmul(i)

    def loss(self, adj, batch):
        u, i = self.get_embedding(adj)
        eu, ep, en = u[batch.user], i[batch.pos_item], i[batch.neg_item]
        loss = self.bpr((eu * ep).sum(-1), (eu * en).sum(-1), (self.user(batch.user), self.item(batch.pos_item)))
        (u1, i1), (u2, i2) = self.get_embedding(adj, self.noise), self.get_embedding(adj, self.noise)
        users, items = torch.unique(batch.user), torch.unique(batch.pos_item)
        loss = loss + self.cl_weight * (self.cl(u1[users], u2[users]) + self.cl(i1[items], i2[items]))
        mods = [self.features(m) for m in self.features.modalities]
        return loss + self.align_weight * self.align(self.item.weight, *mods)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--max-users', type=int, default=4000)
    args = p.parse_args()
    torch.manual_seed(0)
    data = build_graph(args.max_users)
    edge_type = user_item_edge_type(data)  # ('viewer', 'watched', 'video'): found, not assumed
    store = data[edge_type]
    U, I = data[edge_type[0]].num_nodes, data[edge_type[2]].num_nodes
    adj = BipartiteAdj.from_data(data)
    features = {name: data['video'][name] for name in ('visual', 'acoustic')}
    model = MyMultimodalRec(U, I, features)
    sampler = BPRSampler(store.edge_index, I, 1024)
    valid = FullRankingEvaluator(store.valid_index, store.edge_index, U, I, ks=[20])
    result = Trainer(model, adj, sampler, valid, lr=1e-3, epochs=args.epochs, show_progress=False,
                     handle_sigint=False,
                     on_epoch=lambda rec, best: print(f"epoch {rec.epoch}: valid recall@20 "
                                                      f"{rec.valid['recall@20']:.4f}" + ('  *' if best else ''))
                     ).fit()
    model.load_state_dict(result.best_state)
    model.eval()
    test = FullRankingEvaluator(store.test_index, store.edge_index, U, I, ks=[20])  # as MMRec: train masked
    with torch.no_grad():
        recall = test.evaluate(model.scorer(adj))['recall@20']
    print(f"selected on validation: valid recall@20 {result.best_valid['recall@20']:.4f}, "
          f"test recall@20 {recall:.4f}")


if __name__ == '__main__':
    main()
