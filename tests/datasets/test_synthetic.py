import pytest
import torch

from pyg_diffcl.datasets import powerlaw_interactions


def test_exact_count_distinct_in_range_and_deterministic():
    ei = powerlaw_interactions(300, 120, 2500, seed=3)
    assert ei.shape == (2, 2500)
    assert int(ei[0].min()) >= 0 and int(ei[0].max()) < 300 and int(ei[1].min()) >= 0 and int(ei[1].max()) < 120
    assert torch.unique(ei[0] * 120 + ei[1]).numel() == 2500
    assert torch.equal(ei, powerlaw_interactions(300, 120, 2500, seed=3))
    assert not torch.equal(ei, powerlaw_interactions(300, 120, 2500, seed=4))


def test_degrees_are_skewed():
    ei = powerlaw_interactions(2000, 1000, 20000, seed=0)
    deg = torch.bincount(ei[1], minlength=1000).float().sort(descending=True).values
    # the top 10% of items hold far more than 10% of the interactions (uniform would give ~10%)
    assert deg[:100].sum() / deg.sum() > 0.3
    # and popular ids are not packed at the start of the id range
    top = torch.bincount(ei[1], minlength=1000).topk(20).indices
    assert int(top.max()) > 200


def test_rejects_dense_or_empty_requests():
    with pytest.raises(ValueError, match='more than half'):
        powerlaw_interactions(10, 10, 60)
    with pytest.raises(ValueError, match='at least one user'):
        powerlaw_interactions(0, 10, 1)
