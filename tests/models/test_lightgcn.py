import pytest
import torch
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import MF, LightGCN
from pyg_diffcl.ops import BipartiteAdj, available_backends

from tests.ops.test_adj import random_bipartite


@pytest.mark.parametrize('num_layers', [0, 1, 3])
@pytest.mark.parametrize('backend', available_backends())
def test_embeddings_match_pyg_lightgcn(num_layers, backend):
    ei, R = random_bipartite(users=25, items=17, p=0.2, seed=5)
    U, I = R.shape
    ours = LightGCN(U, I, embedding_dim=8, num_layers=num_layers)
    ref = PyGLightGCN(U + I, embedding_dim=8, num_layers=num_layers)
    with torch.no_grad():
        ref.embedding.weight.copy_(torch.cat([ours.user_emb.weight, ours.item_emb.weight]))
    homo = torch.cat([torch.stack([ei[0], ei[1] + U]), torch.stack([ei[1] + U, ei[0]])], dim=1)
    expect = ref.get_embedding(homo)
    users, items = ours.get_embedding(BipartiteAdj(ei, U, I, backend=backend))
    assert torch.allclose(users, expect[:U], atol=1e-5)
    assert torch.allclose(items, expect[U:], atol=1e-5)


def test_loss_gradient_flows_and_scores():
    ei, R = random_bipartite(users=10, items=12, p=0.3, seed=6)
    model = LightGCN(10, 12, embedding_dim=4, num_layers=2, reg_weight=1e-3)
    adj = BipartiteAdj(ei, 10, 12)
    batch = BPRBatch(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3]))
    loss = model.loss(adj, batch)
    loss.backward()
    assert model.user_emb.weight.grad is not None and torch.isfinite(loss)
    u, i = model.get_embedding(adj)
    assert torch.allclose(model.score((u, i), torch.tensor([3])), (u[3:4] @ i.t()), atol=1e-6)


def test_alpha_weights():
    ei, R = random_bipartite(users=5, items=4, p=0.5, seed=7)
    model = LightGCN(5, 4, embedding_dim=3, num_layers=1, alpha=[0.0, 1.0])
    adj = BipartiteAdj(ei, 5, 4)
    u, _ = model.get_embedding(adj)
    assert torch.allclose(u, adj.item_to_user.to_dense() @ model.item_emb.weight, atol=1e-6)
    with pytest.raises(ValueError, match='alpha'):
        LightGCN(5, 4, num_layers=2, alpha=[0.5, 0.5])


def test_mf_loss_is_bpr_of_inner_products():
    model = MF(3, 4, embedding_dim=2, reg_weight=0.0)
    batch = BPRBatch(torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([0, 0]))
    U, I = model.user_emb.weight, model.item_emb.weight
    pos = (U[batch.user] * I[batch.pos_item]).sum(-1)
    neg = (U[batch.user] * I[batch.neg_item]).sum(-1)
    expect = -torch.log(torch.sigmoid(pos - neg)).mean()
    assert torch.allclose(model.loss(None, batch), expect, atol=1e-6)


def test_reprs():
    assert repr(LightGCN(3, 4)) == 'LightGCN(3, 4, embedding_dim=64, num_layers=2, reg_weight=0.0001)'
    assert repr(MF(3, 4, 8)) == 'MF(3, 4, embedding_dim=8, reg_weight=0.0001)'
