import math

import pytest
import torch
import torch.nn.functional as F

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


def test_alignment_every_pair_hand_worked():
    x_id = torch.tensor([[0.0, 2.0], [2.0, 0.0]])   # mean 1, std 1
    x_v = torch.tensor([[1.0, 1.0], [1.0, 1.0]])    # mean 1, std 0
    x_t = torch.tensor([[3.0, 3.0], [3.0, 3.0]])    # mean 3, std 0
    # pairs (id, v) 0 + 1, (id, t) 2 + 1, (v, t) 2 + 0: MENTOR's all-pairs form
    assert IDGuidedAlignment(pairs='all')(x_id, x_v, x_t).item() == pytest.approx(6.0, abs=1e-5)
    assert IDGuidedAlignment(pairs='all')(x_id, x_v).item() == pytest.approx(
        IDGuidedAlignment()(x_id, x_v).item())  # two matrices: one pair either way
    with pytest.raises(ValueError, match='pairs'):
        IDGuidedAlignment(pairs='some')


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


def test_info_nce_gradient_matches_cross_entropy_autograd():
    """The hand-written backward against autograd through normalize + cross-entropy, and a finite-difference
    check; a second backward through the same graph works."""
    torch.manual_seed(1)
    z1 = torch.randn(9, 4, dtype=torch.double, requires_grad=True)
    z2 = torch.randn(9, 4, dtype=torch.double, requires_grad=True)
    loss = InfoNCE(0.3)(z1, z2)
    g1, g2 = torch.autograd.grad(loss, (z1, z2), retain_graph=True)
    n1, n2 = torch.nn.functional.normalize(z1, dim=-1), torch.nn.functional.normalize(z2, dim=-1)
    ref = torch.nn.functional.cross_entropy(n1 @ n2.t() / 0.3, torch.arange(9))
    r1, r2 = torch.autograd.grad(ref, (z1, z2))
    assert float(loss) == pytest.approx(float(ref), abs=1e-12)
    assert torch.allclose(g1, r1, atol=1e-12) and torch.allclose(g2, r2, atol=1e-12)
    again = torch.autograd.grad(loss, (z1, z2))
    assert torch.equal(again[0], g1) and torch.equal(again[1], g2)
    small = (torch.randn(4, 3, dtype=torch.double, requires_grad=True),
             torch.randn(4, 3, dtype=torch.double, requires_grad=True))
    assert torch.autograd.gradcheck(lambda a, b: InfoNCE(0.5)(a, b), small)


def test_alignment_of_row_blocks_equals_alignment_of_the_concatenation():
    """Statistics combined from (users, items) blocks against numpy's mean and population std of the stacked
    matrix, per entry and per column, with their gradients against the concatenated input's."""
    import numpy as np
    torch.manual_seed(2)
    blocks = [(torch.randn(7, 3, dtype=torch.double) * s + m).requires_grad_() for s, m in ((1.0, 2.0), (3.0, -1.0))]
    other = [(torch.randn(7, 3, dtype=torch.double)).requires_grad_(), torch.randn(5, 3, dtype=torch.double)]
    blocks[1] = blocks[1][:5].detach().requires_grad_()
    for axis in ('all', 'dim'):
        al = IDGuidedAlignment(axis=axis)
        full_id = np.concatenate([b.detach().numpy() for b in blocks])
        full_m = np.concatenate([b.detach().numpy() for b in other])
        ax = None if axis == 'all' else 0
        expect = (np.abs(full_id.mean(axis=ax) - full_m.mean(axis=ax))
                  + np.abs(full_id.std(axis=ax) - full_m.std(axis=ax))).mean()
        got = al(blocks, other)
        assert float(got) == pytest.approx(float(expect), rel=1e-12)
        grads = torch.autograd.grad(got, [blocks[0], blocks[1], other[0]])
        cat = [torch.cat([b.detach() for b in blocks]).requires_grad_(),
               torch.cat([b.detach() for b in other]).requires_grad_()]
        ref = torch.autograd.grad(al(*cat), cat)
        assert torch.allclose(torch.cat(grads[:2]), ref[0], atol=1e-12)
        assert torch.allclose(grads[2], ref[1][:7], atol=1e-12)


def test_fixed_fusion_learns_nothing():
    f = ModalityFusion(2, init=0.3, mode='fixed')
    assert list(f.parameters()) == []
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(f([a, b]), 0.3 * a + 0.7 * b)
    g = ModalityFusion(3, mode='fixed')
    assert torch.allclose(g([a, b, a]), (2 * a + b) / 3)


def test_info_nce_against_every_row_hand_computed():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 3), torch.randn(6, 3)
    index = torch.tensor([4, 1, 4])  # repeats kept, as DiffMM's batch nodes
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    expect = 0.0
    for n in index.tolist():
        logits = [(a[n] @ b[j]).item() / 0.5 for j in range(6)]
        expect += -(logits[n] - math.log(sum(math.exp(v) for v in logits)))
    assert InfoNCE(0.5)(z1, z2, index).item() == pytest.approx(expect / 3, rel=1e-5)
    # with every row as an anchor it is the plain form
    assert InfoNCE(0.5)(z1, z2, torch.arange(6)).item() == pytest.approx(InfoNCE(0.5)(z1, z2).item(), rel=1e-5)
