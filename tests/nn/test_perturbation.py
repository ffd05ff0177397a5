import pytest
import torch

from pyg_diffcl.nn import LightGCNPropagation, SimGCLNoise

from tests.ops.test_adj import dense_norm, random_bipartite


def test_noise_moves_every_row_by_eps_inside_its_orthant():
    h = torch.randn(500, 8)
    out = SimGCLNoise(0.3)(h, generator=torch.Generator().manual_seed(0))
    delta = out - h
    assert torch.allclose(delta.norm(dim=1), torch.full((500,), 0.3), atol=1e-6)
    assert bool((delta * h >= 0).all())  # each coordinate moves away from zero, along sign(h)
    assert torch.equal(torch.sign(out), torch.sign(h))
    assert torch.equal(SimGCLNoise(0.0)(h), h)
    with pytest.raises(ValueError, match='eps'):
        SimGCLNoise(-0.1)


def test_noise_passes_gradients_through_unchanged():
    h = torch.randn(6, 4, requires_grad=True)
    SimGCLNoise(0.1)(h).sum().backward()
    assert torch.equal(h.grad, torch.ones(6, 4))


def test_perturbed_propagation_matches_a_dense_reference():
    ei, R = random_bipartite(users=7, items=5, p=0.5, seed=2)
    N = dense_norm(R)
    A = torch.zeros(12, 12)
    A[:7, 7:], A[7:, :7] = N, N.t()
    xu, xi = torch.randn(7, 3), torch.randn(5, 3)
    phi = lambda h: 2.0 * h + 1.0  # any map; applied after every layer, before the sum and the next layer
    for combine, scale in (('sum', 1.0), ('mean', 1.0 / 4)):
        x = torch.cat([xu, xi])
        out, h = x.clone(), x
        for _ in range(3):
            h = phi(A @ h)
            out = out + h
        u, i = LightGCNPropagation(3, combine)(ei, xu, xi, perturb=phi)
        assert torch.allclose(torch.cat([u, i]), scale * out, atol=1e-5)
