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
