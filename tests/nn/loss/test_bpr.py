import math

import pytest
import torch

from pyg_diffcl.nn import BPRLoss


def test_hand_worked():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])
    expect = -(math.log(1 / (1 + math.exp(-1))) + math.log(0.5)) / 2
    assert BPRLoss()(pos, neg).item() == pytest.approx(expect, rel=1e-6)
    e = torch.tensor([[1.0, 2.0], [0.0, 3.0]])  # squared norms 5 and 9
    assert BPRLoss(0.1)(pos, neg, (e,)).item() == pytest.approx(expect + 0.1 * 14 / 4, rel=1e-6)


def test_gradient_matches_autograd_of_formula():
    pos = torch.randn(6, requires_grad=True)
    neg = torch.randn(6)
    BPRLoss()(pos, neg).backward()
    expect = -torch.sigmoid(-(pos.detach() - neg)) / 6
    assert torch.allclose(pos.grad, expect, atol=1e-6)


def test_rejects_negative_weight_and_repr():
    with pytest.raises(ValueError):
        BPRLoss(-1.0)
    assert repr(BPRLoss(0.5)) == 'BPRLoss(reg_weight=0.5)'
