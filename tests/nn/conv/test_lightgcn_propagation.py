import pytest
import torch

from pyg_diffcl.nn import LightGCNPropagation
from pyg_diffcl.ops import BipartiteAdj

from tests.ops.test_adj import dense_norm, random_bipartite


@pytest.mark.parametrize('combine,alpha', [('mean', None), ('sum', None), ('mean', [0.5, 0.3, 0.2, 0.1])])
def test_layer_combination_matches_dense_powers(combine, alpha):
    ei, R = random_bipartite(users=9, items=7, p=0.35, seed=4)
    N = dense_norm(R)
    A = torch.zeros(16, 16)
    A[:9, 9:], A[9:, :9] = N, N.t()
    x = torch.randn(16, 5, requires_grad=True)
    prop = LightGCNPropagation(3, combine, alpha)
    out_u, out_i = prop(BipartiteAdj(ei, 9, 7), x[:9], x[9:])
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
