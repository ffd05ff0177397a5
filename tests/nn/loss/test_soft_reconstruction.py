import pytest
import torch

from pyg_diffcl.nn import SoftReconstructionLoss, soft_labels


def test_soft_labels_hand_worked_and_frequencies():
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert torch.equal(soft_labels(x, 1.0, 0.1), torch.tensor([[0.9, 0.1, 0.9, 0.1]]))
    assert soft_labels(x, 0.0, 0.1) is x and soft_labels(x, 0.5, 0.0) is x
    g = torch.Generator().manual_seed(0)
    big = (torch.rand(400, 500, generator=g) < 0.1).float()
    y = soft_labels(big, 0.3, 0.05, generator=torch.Generator().manual_seed(1))
    pos, neg = big == 1, big == 0
    assert torch.all((y[pos] == 1.0) | torch.isclose(y[pos], torch.tensor(0.95)))
    assert torch.all((y[neg] == 0.0) | torch.isclose(y[neg], torch.tensor(0.05)))
    # Each entry is picked with probability rho, independently of its label.
    assert abs(float((y[pos] != 1.0).float().mean()) - 0.3) < 0.02
    assert abs(float((y[neg] != 0.0).float().mean()) - 0.3) < 0.01


def test_loss_is_per_user_mean_squared_error_to_the_soft_labels():
    pred = torch.tensor([[0.5, 0.2, 0.0], [1.0, 1.0, 1.0]])
    x0 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    crit = SoftReconstructionLoss(prob=1.0, smooth=0.25)
    target = torch.tensor([[0.75, 0.25, 0.25], [0.25, 0.75, 0.25]])
    assert torch.allclose(crit(pred, x0), ((pred - target) ** 2).mean(dim=1))
    crit.eval()  # plain labels outside training
    assert torch.allclose(crit(pred, x0), ((pred - x0) ** 2).mean(dim=1))
    with pytest.raises(ValueError):
        SoftReconstructionLoss(prob=1.5)
    with pytest.raises(ValueError):
        crit(pred, x0[:, :2])


def test_multinomial_option_is_the_soft_label_cross_entropy():
    pred = torch.tensor([[2.0, 0.0, -1.0]])
    x0 = torch.tensor([[1.0, 0.0, 1.0]])
    crit = SoftReconstructionLoss(prob=0.0, kind='multinomial')
    logp = pred - torch.logsumexp(pred, dim=1, keepdim=True)
    assert torch.allclose(crit(pred, x0), -(logp[0, 0] + logp[0, 2]).view(1))
    with pytest.raises(ValueError):
        SoftReconstructionLoss(kind='bce')
