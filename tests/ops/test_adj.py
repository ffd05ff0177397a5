import pytest
import torch

from pyg_diffcl.ops import Adjacency, BipartiteAdj, available_backends, bipartite_gcn_norm, resolve_backend


def random_bipartite(users=7, items=5, p=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = (torch.rand(users, items, generator=g) < p).float()
    dense[0, 0] = 1.0  # at least one edge
    return dense.nonzero().t(), dense


def dense_norm(R):
    du, di = R.sum(1), R.sum(0)
    inv_u = torch.where(du > 0, du.pow(-0.5), torch.zeros_like(du))
    inv_i = torch.where(di > 0, di.pow(-0.5), torch.zeros_like(di))
    return inv_u.view(-1, 1) * R * inv_i.view(1, -1)


def test_bipartite_gcn_norm_matches_dense():
    ei, R = random_bipartite()
    w = bipartite_gcn_norm(ei, *R.shape)
    out = torch.zeros_like(R)
    out[ei[0], ei[1]] = w
    assert torch.allclose(out, dense_norm(R))


def test_hand_worked_norm():
    # user 0 - items {0, 1}; user 1 - item {1}: d_u = (2, 1), d_i = (1, 2)
    ei = torch.tensor([[0, 0, 1], [0, 1, 1]])
    w = bipartite_gcn_norm(ei, 2, 2)
    expect = torch.tensor([1 / (2 ** 0.5 * 1), 1 / (2 ** 0.5 * 2 ** 0.5), 1 / (1 * 2 ** 0.5)])
    assert torch.allclose(w, expect)


@pytest.mark.parametrize('backend', available_backends())
def test_every_backend_matches_dense_with_gradients(backend):
    ei, R = random_bipartite(users=40, items=30, p=0.15, seed=1)
    A = BipartiteAdj(ei, 40, 30, backend=backend)
    N = dense_norm(R)
    assert A.backend == backend
    x_item = torch.randn(30, 16, requires_grad=True)
    x_user = torch.randn(40, 16, requires_grad=True)
    out_u, out_i = A.item_to_user.matmul(x_item), A.user_to_item.matmul(x_user)
    ref_xi, ref_xu = x_item.detach().clone().requires_grad_(), x_user.detach().clone().requires_grad_()
    ref_u, ref_i = N @ ref_xi, N.t() @ ref_xu
    assert torch.allclose(out_u, ref_u, atol=1e-5) and torch.allclose(out_i, ref_i, atol=1e-5)
    g1, g2 = torch.randn_like(out_u), torch.randn_like(out_i)
    ((out_u * g1).sum() + (out_i * g2).sum()).backward()
    ((ref_u * g1).sum() + (ref_i * g2).sum()).backward()
    assert torch.allclose(x_item.grad, ref_xi.grad, atol=1e-5)
    assert torch.allclose(x_user.grad, ref_xu.grad, atol=1e-5)
    assert torch.allclose(A.item_to_user.to_dense(), N, atol=1e-6)


def test_isolated_nodes_get_zero_rows():
    ei = torch.tensor([[0], [0]])
    A = BipartiteAdj(ei, 3, 4)
    out = A.item_to_user.matmul(torch.ones(4, 2))
    assert torch.equal(out, torch.tensor([[1.0, 1.0], [0, 0], [0, 0]]))


def test_backend_resolution_errors():
    assert resolve_backend('auto') in available_backends()
    with pytest.raises(ValueError, match='unknown sparse backend'):
        resolve_backend('magic')
    with pytest.raises(ValueError, match='expected 4 source rows'):
        Adjacency(torch.tensor([[0], [0]]), torch.ones(1), (2, 4)).matmul(torch.ones(3, 1))
    with pytest.raises(ValueError, match='out of range'):
        Adjacency(torch.tensor([[0], [4]]), torch.ones(1), (2, 4))
    with pytest.raises(ValueError, match='index'):
        Adjacency(torch.tensor([[0, 1], [1, 0]]), torch.ones(3), (2, 2))


@pytest.mark.parametrize('backend', available_backends())
def test_rectangular_with_duplicates_and_empty_rows(backend):
    # M (3 x 4) with a repeated entry (0, 2) that sums, and an empty row 1; gradient against the dense M
    index = torch.tensor([[0, 0, 2, 2, 0], [2, 0, 3, 1, 2]])
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5])
    M = torch.tensor([[2.0, 0, 1.5, 0], [0, 0, 0, 0], [0, 4.0, 0, 3.0]])
    A = Adjacency(index, weight, (3, 4), backend)
    assert torch.equal(A.to_dense(), M)
    x = torch.randn(4, 6, dtype=torch.float, requires_grad=True)
    y = A.matmul(x)
    assert torch.allclose(y, M @ x.detach(), atol=1e-6)
    g = torch.randn(3, 6)
    y.backward(g)
    assert torch.allclose(x.grad, M.t() @ g, atol=1e-6)
    assert torch.equal(A.t().to_dense(), M.t()) and A.t().t() is A


def test_bipartite_directions_are_one_pair():
    ei, _ = random_bipartite(users=6, items=4, p=0.5, seed=3)
    A = BipartiteAdj(ei, 6, 4)
    assert A.user_to_item is A.item_to_user.t() and A.user_to_item.t() is A.item_to_user


def test_csr_uses_32_bit_indices():
    A = Adjacency(torch.tensor([[0, 1], [1, 0]]), torch.ones(2), (2, 2), 'csr')
    assert A._mat.col_indices().dtype == torch.int32 and A._mat.crow_indices().dtype == torch.int32


def test_repr():
    A = BipartiteAdj(torch.tensor([[0, 1], [1, 0]]), 2, 2, backend='index_add')
    assert repr(A) == "BipartiteAdj(users=2, items=2, nnz=2, backend='index_add')"
    assert repr(A.item_to_user) == "Adjacency(size=(2, 2), nnz=2, backend='index_add')"


def test_csr_product_without_mkl_path_matches(monkeypatch):
    import pyg_diffcl.ops.adj as adj_mod
    ei, R = random_bipartite(users=12, items=9, p=0.3, seed=7)
    x = torch.randn(9, 5)
    expect = dense_norm(R) @ x
    for mkl in (True, False):
        monkeypatch.setattr(adj_mod, '_MKL', mkl)
        A = BipartiteAdj(ei, 12, 9, backend='csr')
        assert torch.allclose(A.item_to_user.matmul(x), expect, atol=1e-6)


def test_inv_sqrt_degree_counts_occurrences_and_zeroes_absent_nodes():
    from pyg_diffcl.ops.norm import inv_sqrt_degree
    out = inv_sqrt_degree(torch.tensor([0, 2, 2, 2, 3, 0]), 5)
    assert torch.allclose(out, torch.tensor([2 ** -0.5, 0.0, 3 ** -0.5, 1.0, 0.0]))


def test_column_stats_standardise_other_rows_as_prepare_features_does():
    from pyg_diffcl.ops.features import column_stats, prepare_features
    x = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])  # the middle column is constant
    mean, std, mask = column_stats(x)
    assert torch.allclose(mean, torch.tensor([[3.0, 5.0, 5.0]]))
    assert torch.allclose(std, torch.tensor([[2.0, 1.0, 13.0 ** 0.5]]))
    assert torch.equal(mask, torch.tensor([[1.0, 0.0, 1.0]]))
    assert torch.allclose((x - mean) / std * mask, prepare_features(x))
    y = torch.tensor([[7.0, 1.0, 5.0]])  # another row, standardised with x's statistics
    assert torch.allclose((y - mean) / std * mask, torch.tensor([[2.0, 0.0, 0.0]]))
