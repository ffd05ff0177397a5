import pytest
import torch

from pyg_diffcl.nn import LightGCNPropagation
from pyg_diffcl.ops import BipartiteAdj, available_backends

from tests.ops.test_adj import dense_norm, random_bipartite


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('backend', available_backends())
@pytest.mark.parametrize('combine,alpha', [('mean', None), ('sum', None), ('mean', [0.5, 0.3, 0.2, 0.1])])
def test_layer_combination_matches_dense_powers(combine, alpha, backend, fused):
    ei, R = random_bipartite(users=9, items=7, p=0.35, seed=4)
    N = dense_norm(R)
    A = torch.zeros(16, 16)
    A[:9, 9:], A[9:, :9] = N, N.t()
    x = torch.randn(16, 5, requires_grad=True)
    prop = LightGCNPropagation(3, combine, alpha, fused=fused)
    out_u, out_i = prop(BipartiteAdj(ei, 9, 7, backend=backend), x[:9], x[9:])
    w = alpha or ([0.25] * 4 if combine == 'mean' else [1.0] * 4)
    ref, h = w[0] * x, x
    for k in range(1, 4):
        h = A @ h
        ref = ref + w[k] * h
    assert torch.allclose(torch.cat([out_u, out_i]), ref, atol=1e-5)
    g = torch.randn(16, 5)
    grad, = torch.autograd.grad((torch.cat([out_u, out_i]) * g).sum(), x)
    grad_ref, = torch.autograd.grad((ref * g).sum(), x)
    assert torch.allclose(grad, grad_ref, atol=1e-5)


def test_validation():
    with pytest.raises(ValueError, match='combine'):
        LightGCNPropagation(2, 'max')
    with pytest.raises(ValueError, match='alpha'):
        LightGCNPropagation(2, alpha=[1.0, 1.0])


def test_fused_backward_keeps_no_layer_and_leaves_inputs_untouched():
    ei, R = random_bipartite(users=9, items=7, p=0.35, seed=5)
    adj = BipartiteAdj(ei, 9, 7)
    xu, xi = torch.randn(9, 4, requires_grad=True), torch.randn(7, 4, requires_grad=True)
    before = xu.detach().clone(), xi.detach().clone()
    out_u, out_i = LightGCNPropagation(3, 'sum')(adj, xu, xi)
    assert type(out_u.grad_fn).__name__ == '_FusedPropagationBackward'
    with torch.no_grad():  # the no-grad path accumulates in place, on its own copies
        LightGCNPropagation(3, 'sum')(adj, xu, xi)
    assert torch.equal(xu.detach(), before[0]) and torch.equal(xi.detach(), before[1])
    # only one input needing a gradient still gets the right one (dense reference)
    N = dense_norm(R)
    xi2 = torch.randn(7, 4, requires_grad=True)
    out_u, _ = LightGCNPropagation(1, 'sum')(adj, torch.zeros(9, 4), xi2)
    out_u.sum().backward()
    assert torch.allclose(xi2.grad, N.t() @ torch.ones(9, 4), atol=1e-6)


def test_zero_layers_is_the_input():
    adj = BipartiteAdj(torch.tensor([[0], [0]]), 2, 2)
    xu, xi = torch.randn(2, 3, requires_grad=True), torch.randn(2, 3, requires_grad=True)
    out_u, out_i = LightGCNPropagation(0)(adj, xu, xi)
    assert torch.equal(out_u, xu) and torch.equal(out_i, xi)


def _adjacency_forms(ei, R):
    """The same users x items graph in every form PyG knows, plus the prepared one."""
    import torch_geometric.typing
    from torch_geometric import EdgeIndex
    U, I = R.shape
    forms = {'edge_index': ei, 'EdgeIndex': EdgeIndex(ei, sparse_size=(U, I)),
             'torch.sparse_coo': R.to_sparse(), 'torch.sparse_csr': R.to_sparse_csr(),
             'BipartiteAdj': BipartiteAdj(ei, U, I)}
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor
        forms['SparseTensor'] = SparseTensor.from_dense(R, has_value=False)
        forms['SparseTensor(values)'] = SparseTensor.from_dense(R)
    return forms


@pytest.mark.parametrize('fused', [True, False])
def test_every_adjacency_form_gives_the_dense_reference(fused):
    ei, R = random_bipartite(users=11, items=8, p=0.3, seed=6)
    N = dense_norm(R)
    A = torch.zeros(19, 19)
    A[:11, 11:], A[11:, :11] = N, N.t()
    x = torch.randn(19, 4)
    ref, h = x.clone(), x
    for _ in range(2):
        h = A @ h
        ref = ref + h
    ref = ref / 3
    g = torch.randn(19, 4)
    grad_ref = sum(torch.linalg.matrix_power(A, k) for k in range(3)) @ g / 3  # A is symmetric
    for name, adj in _adjacency_forms(ei, R).items():
        prop = LightGCNPropagation(2, fused=fused)
        xx = x.clone().requires_grad_()
        for _ in range(2):  # the second call reuses the prepared adjacency
            u, i = prop(adj, xx[:11], xx[11:])
            assert torch.allclose(torch.cat([u, i]), ref, atol=1e-5), name
            grad, = torch.autograd.grad((torch.cat([u, i]) * g).sum(), xx)
            assert torch.allclose(grad, grad_ref, atol=1e-5), name


def test_weighted_adjacency_and_sizes():
    # A weighted (U, I) matrix is normalised by its weighted degrees: one user, two items, r = (1, 3):
    # d_u = 4, d_i = (1, 3); e_u' = (1 * e_0 / sqrt(4 * 1) + 3 * e_1 / sqrt(4 * 3)) for one layer, sum
    R = torch.tensor([[1.0, 3.0]])
    prop = LightGCNPropagation(1, combine='sum')
    x_u, x_i = torch.zeros(1, 1), torch.tensor([[2.0], [4.0]])
    u, _ = prop(R.to_sparse(), x_u, x_i)
    assert torch.allclose(u, torch.tensor([[2.0 / 2 + 3 * 4.0 / 12 ** 0.5]]))
    # sizes are checked against the embeddings
    from torch_geometric import EdgeIndex
    with pytest.raises(ValueError, match='num_items'):
        prop(EdgeIndex(torch.tensor([[0], [1]]), sparse_size=(1, 5)), x_u, x_i)
    with pytest.raises(ValueError, match='items ids'):
        prop(torch.tensor([[0], [2]]), x_u, x_i)
    with pytest.raises(TypeError, match='adj'):
        prop([[0], [1]], x_u, x_i)


def test_cache_follows_the_graph():
    ei = torch.tensor([[0, 1, 2, 4], [0, 1, 2, 2]])
    prop = LightGCNPropagation(1)
    x_u, x_i = torch.randn(5, 2), torch.randn(4, 2)
    first = prop(ei, x_u, x_i)[0]
    prepared = prop.adj_cache._entry[2]
    prop(ei, x_u, x_i)
    assert prop.adj_cache._entry[2] is prepared  # same object, unchanged: reused
    ei[1, 0] = 3  # modified in place (user 0 now has item 3): prepared anew
    R2 = torch.zeros(5, 4)
    R2[ei[0], ei[1]] = 1.0
    out = prop(ei, x_u, x_i)[0]
    assert prop.adj_cache._entry[2] is not prepared
    N2 = dense_norm(R2)
    assert torch.allclose(out, (x_u + N2 @ x_i) / 2, atol=1e-5)
    assert not torch.allclose(out, first)
