import math

import pytest
import torch

from pyg_diffcl.nn import IDGuidedAlignment, InfoNCE, ModalityFusion


def test_info_nce_matches_explicit_formula():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 3), torch.randn(5, 3)
    tau = 0.4
    cos = lambda a, b: float(a @ b / (a.norm() * b.norm()))
    expect = 0.0
    for a in range(5):
        num = math.exp(cos(z1[a], z2[a]) / tau)
        den = sum(math.exp(cos(z1[a], z2[b]) / tau) for b in range(5))
        expect += -math.log(num / den) / 5
    assert InfoNCE(tau)(z1, z2).item() == pytest.approx(expect, rel=1e-5)
    sym = InfoNCE(tau, symmetric=True)(z1, z2).item()
    assert sym == pytest.approx(0.5 * (expect + InfoNCE(tau)(z2, z1).item()), rel=1e-5)


def test_info_nce_is_low_for_identical_views_of_distinct_points():
    z = torch.eye(4)
    assert InfoNCE(0.1)(z, z).item() < 1e-3
    with pytest.raises(ValueError):
        InfoNCE(0.0)


def test_alignment_hand_worked():
    x_id = torch.tensor([[0.0, 2.0], [2.0, 0.0]])   # mean 1, std 1
    x_v = torch.tensor([[1.0, 1.0], [1.0, 1.0]])    # mean 1, std 0
    x_t = torch.tensor([[3.0, 3.0], [3.0, 3.0]])    # mean 3, std 0
    assert IDGuidedAlignment()(x_id, x_v, x_t).item() == pytest.approx((0 + 1) + (2 + 1), abs=1e-5)
    assert IDGuidedAlignment(stat='var')(x_id, x_v).item() == pytest.approx(1.0, abs=1e-5)
    # per-dimension: id columns have means (1, 1), stds (1, 1); v: means (1, 1), stds 0 -> mean L1 = 1
    assert IDGuidedAlignment(axis='dim')(x_id, x_v).item() == pytest.approx(1.0, abs=1e-5)


def test_alignment_detach_id():
    x_id = torch.randn(4, 2, requires_grad=True)
    x_v = torch.randn(4, 2, requires_grad=True)
    IDGuidedAlignment(detach_id=True)(x_id, x_v).backward()
    assert x_id.grad is None and x_v.grad is not None


def test_fusion_modes():
    a, b, c = torch.ones(2, 2), 3 * torch.ones(2, 2), 5 * torch.ones(2, 2)
    assert torch.equal(ModalityFusion(1)([a]), a)
    f2 = ModalityFusion(2, mode='free')
    assert torch.allclose(f2([a, b]), 2 * torch.ones(2, 2))
    with torch.no_grad():
        f2.mu.fill_(3.0)  # unconstrained: 3a - 2b
    assert torch.allclose(f2([a, b]), (3 * 1 - 2 * 3) * torch.ones(2, 2))
    fc = ModalityFusion(2, init=0.25)  # convex: mu = sigmoid(theta), starts at init
    assert torch.allclose(fc([a, b]), (0.25 * 1 + 0.75 * 3) * torch.ones(2, 2))
    with torch.no_grad():
        fc.mu.fill_(50.0)
    assert torch.allclose(fc([a, b]), a) and torch.allclose(fc.weights().sum(), torch.tensor(1.0))
    with pytest.raises(ValueError, match='mode'):
        ModalityFusion(2, mode='softplus')
    f3 = ModalityFusion(3)
    assert torch.allclose(f3([a, b, c]), 3 * torch.ones(2, 2))
    assert torch.allclose(f3.weights().sum(), torch.tensor(1.0))
    with pytest.raises(ValueError):
        f3([a, b])
