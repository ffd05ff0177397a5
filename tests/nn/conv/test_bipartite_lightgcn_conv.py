import pytest
import torch
from torch_geometric.nn import LGConv

from pyg_diffcl.nn import BipartiteLightGCNConv
from pyg_diffcl.ops import BipartiteAdj, available_backends

from tests.ops.test_adj import dense_norm, random_bipartite


def test_repr():
    assert repr(BipartiteLightGCNConv()) == 'BipartiteLightGCNConv(normalize=True)'


@pytest.mark.parametrize('backend', available_backends())
def test_all_layouts_agree_with_dense(backend):
    ei, R = random_bipartite(users=20, items=15, p=0.2, seed=2)
    N = dense_norm(R)
    conv = BipartiteLightGCNConv()
    x_u, x_i = torch.randn(20, 8), torch.randn(15, 8)
    # edge_index path: (source=item, destination=user)
    out_edge = conv((x_i, x_u), ei.flip(0))
    adj = BipartiteAdj(ei, 20, 15, backend=backend)
    out_fused = conv((x_i, x_u), adj.item_to_user)
    ref = N @ x_i
    assert torch.allclose(out_edge, ref, atol=1e-5)
    assert torch.allclose(out_fused, ref, atol=1e-5)
    assert torch.allclose(conv((x_u, x_i), adj.user_to_item), N.t() @ x_u, atol=1e-5)


def test_pyg_sparse_layouts():
    ei, R = random_bipartite(users=6, items=9, p=0.3, seed=3)
    N = dense_norm(R)
    x_i, x_u = torch.randn(9, 4), torch.randn(6, 4)
    conv = BipartiteLightGCNConv()
    csr = N.to_sparse_csr()
    assert torch.allclose(conv((x_i, x_u), csr), N @ x_i, atol=1e-5)


def test_explicit_weights_and_no_normalisation():
    ei = torch.tensor([[0, 1, 1], [0, 0, 1]])  # (src, dst)
    x = torch.tensor([[1.0], [10.0]])
    conv = BipartiteLightGCNConv(normalize=False)
    out = conv((x, torch.zeros(2, 1)), ei)
    assert out.view(-1).tolist() == [11.0, 10.0]
    out = conv((x, torch.zeros(2, 1)), ei, edge_weight=torch.tensor([2.0, 0.5, 1.0]))
    assert out.view(-1).tolist() == [7.0, 10.0]


def test_matches_pyg_lgconv_on_the_homogeneous_graph():
    ei, R = random_bipartite(users=10, items=8, p=0.3, seed=4)
    U = 10
    homo = torch.cat([torch.stack([ei[0], ei[1] + U]), torch.stack([ei[1] + U, ei[0]])], dim=1)
    x = torch.randn(18, 5)
    ref = LGConv()(x, homo)
    conv = BipartiteLightGCNConv()
    assert torch.allclose(conv((x[U:], x[:U]), ei.flip(0)), ref[:U], atol=1e-5)
    assert torch.allclose(conv((x[:U], x[U:]), ei), ref[U:], atol=1e-5)
