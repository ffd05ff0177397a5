import pytest
import torch
import torch_geometric.typing
from torch_geometric import EdgeIndex
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
    # already normalised: normalize=False uses the values as they are
    assert torch.allclose(BipartiteLightGCNConv(normalize=False)((x_i, x_u), N.to_sparse_csr()), N @ x_i,
                          atol=1e-5)
    # raw 0/1 matrices in every sparse layout: normalize=True normalises them, as LGConv does
    conv = BipartiteLightGCNConv()
    raw = [R.to_sparse(), R.to_sparse_csr(), R.to_sparse_csc()]
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor
        raw += [SparseTensor.from_dense(R), SparseTensor.from_dense(R, has_value=False)]
    for adj_t in raw:
        assert torch.allclose(conv((x_i, x_u), adj_t), N @ x_i, atol=1e-5), type(adj_t)
    with pytest.raises(ValueError, match='edge_weight'):
        conv((x_i, x_u), R.to_sparse(), edge_weight=torch.ones(int(R.sum())))


def test_weighted_sparse_input_is_normalised_by_weighted_degrees():
    # hand-worked: M = [[2, 1], [0, 3]] (dst x src); row sums 3, 3; column sums 2, 4
    M = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    x = torch.tensor([[1.0], [10.0]])
    expect = torch.tensor([[2 / (3 ** 0.5 * 2 ** 0.5) * 1 + 1 / (3 ** 0.5 * 2) * 10], [3 / (3 ** 0.5 * 2) * 10]])
    assert torch.allclose(BipartiteLightGCNConv()((x, x), M.to_sparse()), expect, atol=1e-6)
    # the same through an edge_index (source, destination) with edge_weight
    ei = torch.tensor([[0, 1, 1], [0, 0, 1]])
    out = BipartiteLightGCNConv()((x, x), ei, edge_weight=torch.tensor([2.0, 1.0, 3.0]))
    assert torch.allclose(out, expect, atol=1e-6)


@pytest.mark.parametrize('sort', ['row', 'col', None])
def test_edge_index_type_in_pyg_convention(sort):
    # An EdgeIndex is (source, destination), as PyG's layers read it; sorted by column it takes the fused path.
    ei, R = random_bipartite(users=8, items=6, p=0.35, seed=5)
    N = dense_norm(R)
    x_i, x_u = torch.randn(6, 3, requires_grad=True), torch.randn(8, 3)
    src_dst = ei.flip(0)  # (item, user)
    if sort is not None:
        key = src_dst[0] * 8 + src_dst[1] if sort == 'row' else src_dst[1] * 6 + src_dst[0]
        src_dst = src_dst[:, key.argsort()]
    e = EdgeIndex(src_dst, sparse_size=(6, 8), sort_order=sort)
    out = BipartiteLightGCNConv()((x_i, x_u), e)
    assert torch.allclose(out, N @ x_i, atol=1e-5)
    g, = torch.autograd.grad(out.sum(), x_i)
    assert torch.allclose(g, N.t() @ torch.ones(8, 3), atol=1e-5)


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
