import pytest
import torch
import torch.nn.functional as F

from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import FREEDOM, FREEDOMConfig
from pyg_diffcl.ops import degree_sensitive_edge_pruning, weighted_graph_sum

from tests.helpers import run_cli, write_dataset
from tests.ops.test_adj import dense_norm, random_bipartite


def dense_knn(x, k):
    """Top-k cosine neighbours (self included), binarised and symmetrically normalised by row degree k."""
    xn = F.normalize(x, dim=1)
    sim = xn @ xn.t()
    S = torch.zeros_like(sim)
    S.scatter_(1, sim.topk(k, dim=1).indices, 1.0)
    return S / k  # every row has k entries: D^-1/2 S D^-1/2 = S / k


def test_weighted_graph_sum_hand_worked():
    a = (torch.tensor([[0, 0, 1], [0, 1, 1]]), torch.tensor([1.0, 2.0, 3.0]))
    b = (torch.tensor([[0, 1], [1, 0]]), torch.tensor([10.0, 20.0]))
    ei, w = weighted_graph_sum([a, b], [0.5, 0.25], num_nodes=2)
    dense = torch.zeros(2, 2)
    dense[ei[0], ei[1]] = w
    assert torch.allclose(dense, torch.tensor([[0.5, 1.0 + 2.5], [5.0, 1.5]]))


def test_degree_sensitive_pruning_keeps_the_share_and_favours_low_degrees():
    # user 0 has 4 items (a hub), users 1-2 one item each: edge weights 1/sqrt(d_u d_i)
    ei = torch.tensor([[0, 0, 0, 0, 1, 2], [0, 1, 2, 3, 4, 5]])
    w = 1 / torch.tensor([2.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    kept = degree_sensitive_edge_pruning(ei, 3, 6, p=0.5, generator=torch.Generator().manual_seed(0))
    assert kept.size(1) == 3 and len({tuple(e) for e in kept.t().tolist()}) == 3  # without replacement
    counts = torch.zeros(6)
    for s in range(4000):  # one edge kept: drawn with probability w / sum(w)
        one = degree_sensitive_edge_pruning(ei, 3, 6, p=0.8, generator=torch.Generator().manual_seed(s))
        counts[one[1, 0]] += 1
    assert torch.allclose(counts / 4000, w / w.sum(), atol=0.025)
    assert torch.equal(degree_sensitive_edge_pruning(ei, 3, 6, 0.0), ei)
    assert degree_sensitive_edge_pruning(ei, 3, 6, 0.9).shape == (2, 0)  # nothing left to keep
    with pytest.raises(ValueError, match='p: must be in'):
        degree_sensitive_edge_pruning(ei, 3, 6, 1.0)


def make(**kw):
    torch.manual_seed(0)
    ei, R = random_bipartite(users=12, items=10, p=0.35, seed=3)
    feats = {'img': torch.randn(10, 5), 'txt': torch.randn(10, 4)}
    cfg = FREEDOMConfig(**{'embedding_dim': 6, 'item_graph_k': 3, **kw})
    return FREEDOM(12, 10, ei, feats, config=cfg), ei, R, feats


def test_embeddings_are_lightgcn_plus_the_frozen_item_graph():
    model, ei, R, feats = make(modality_weights=[0.1, 0.9], num_layers=2, item_graph_layers=2)
    S = 0.1 * dense_knn(feats['img'], 3) + 0.9 * dense_knn(feats['txt'], 3)
    N = dense_norm(R)
    A = torch.zeros(22, 22)
    A[:12, 12:], A[12:, :12] = N, N.t()
    x = torch.cat([model.user_emb.weight, model.item_emb.weight])
    ref = (x + A @ x + A @ A @ x) / 3
    user, item = model.get_embedding(ei)
    assert torch.allclose(user, ref[:12], atol=1e-5)
    assert torch.allclose(item, ref[12:] + S @ S @ model.item_emb.weight, atol=1e-5)


def test_loss_uses_the_pruned_graph_and_the_modality_bpr():
    model, ei, R, feats = make(reg_weight=0.3, edge_dropout=0.5)
    model.pre_epoch(0)
    first = model._pruned.edge_index.clone()
    assert first.size(1) == int(ei.size(1) * 0.5)
    model.pre_epoch(0)
    assert torch.equal(model._pruned.edge_index, first)  # the same epoch prunes the same edges (resume)
    model.pre_epoch(1)
    assert not torch.equal(model._pruned.edge_index, first)
    model.pre_epoch(0)
    batch = BPRBatch(torch.tensor([0, 3, 5]), torch.tensor([1, 2, 4]), torch.tensor([7, 8, 9]))
    user, item = model.get_embedding(first)  # the pruned graph, normalised anew
    u = user[batch.user]

    def bpr(p, n):
        return -F.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
    expect = bpr(item[batch.pos_item], item[batch.neg_item])
    for m in ('img', 'txt'):
        f = feats[m] @ model.features.proj[m].weight.t() + model.features.proj[m].bias
        expect = expect + 0.3 * bpr(f[batch.pos_item], f[batch.neg_item])
    assert torch.allclose(model.loss(ei, batch), expect, atol=1e-6)
    loss = model.loss(ei, batch)
    loss.backward()
    assert model.features.feat['img'].grad is not None  # the feature tables train (official: freeze=False)


def test_config_and_cli(tmp_path):
    with pytest.raises(ValueError, match='^modality_weights'):
        FREEDOMConfig(modality_weights=[0.5, 0.6])
    with pytest.raises(ValueError, match='modality_weights has 1 values'):
        make(modality_weights=[1.0])
    data = write_dataset(tmp_path / 'mm', modalities={'v': 6, 't': 5})
    res = run_cli('train', '--model', 'freedom', '--data', str(data), '--epochs', '2', '--set', 'train.batch_size=64',
                  '--set', 'model.modality_weights=[0.3,0.7]', '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    assert (tmp_path / 'r' / 'metrics.json').is_file()


def test_item_feature_projection_trains_its_tables_and_resets_them():
    from pyg_diffcl.nn import ItemFeatureProjection
    x = {'a': torch.randn(5, 3)}
    layer = ItemFeatureProjection(x, 2, trainable=True)
    assert torch.allclose(layer('a'), x['a'] @ layer.proj['a'].weight.t() + layer.proj['a'].bias)
    with torch.no_grad():
        layer.feat['a'].add_(1.0)
    layer.reset_parameters()
    assert torch.equal(layer.feat['a'], x['a'])  # the given values again
    frozen = ItemFeatureProjection(x, 2, trainable=False, init='xavier_normal')
    assert not frozen.feat['a'].requires_grad and frozen.proj['a'].weight.requires_grad
    with pytest.raises(ValueError, match='init'):
        ItemFeatureProjection(x, 2, init='kaiming')
