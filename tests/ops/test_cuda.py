"""CUDA code paths against the CPU and dense references (skipped without a GPU)."""
import pytest
import torch

from pyg_diffcl.nn import LightGCNPropagation
from pyg_diffcl.ops import BipartiteAdj, available_backends, knn_graph

from tests.ops.test_adj import dense_norm, random_bipartite

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize('backend', available_backends())
def test_backends_match_dense_on_cuda(backend):
    ei, R = random_bipartite(users=60, items=40, p=0.1, seed=2)
    N = dense_norm(R).cuda()
    A = BipartiteAdj(ei.cuda(), 60, 40, backend=backend)
    x = torch.randn(40, 16, device='cuda', requires_grad=True)
    y = A.item_to_user.matmul(x)
    assert torch.allclose(y, N @ x.detach(), atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.allclose(x.grad, N.t() @ g, atol=1e-5)


@pytest.mark.parametrize('backend', available_backends())
def test_fused_propagation_on_cuda_matches_cpu(backend):
    ei, _ = random_bipartite(users=50, items=30, p=0.15, seed=3)
    xu, xi = torch.randn(50, 8), torch.randn(30, 8)
    outs = []
    for dev in ('cpu', 'cuda'):
        u, i = xu.to(dev).requires_grad_(), xi.to(dev).requires_grad_()
        out_u, out_i = LightGCNPropagation(3)(BipartiteAdj(ei.to(dev), 50, 30, backend=backend), u, i)
        (out_u.sum() + out_i.pow(2).sum()).backward()
        outs.append([t.detach().cpu() for t in (out_u, out_i, u.grad, i.grad)])
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-5)


def test_knn_graph_on_cuda_matches_cpu():
    x = torch.randn(300, 32)
    for cosine in (False, True):
        cpu = knn_graph(x, 5, cosine=cosine, use_pyg=False)
        gpu = knn_graph(x.cuda(), 5, cosine=cosine, use_pyg=False).cpu()
        assert torch.equal(cpu, gpu)
