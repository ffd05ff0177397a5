import numpy as np
import pytest
import torch

from pyg_diffcl.datasets import BPRSampler


def make_edges(seed=0, users=50, items=40, per_user=8):
    rng = np.random.default_rng(seed)
    pairs = [(u, int(i)) for u in range(users) for i in rng.choice(items, per_user, replace=False)]
    return torch.tensor(pairs).t()


def test_each_positive_once_per_epoch_and_negatives_valid():
    ei = make_edges()
    s = BPRSampler(ei, 40, batch_size=64, seed=3)
    batches = list(s.epoch(0))
    assert len(batches) == len(s) == -(-ei.size(1) // 64)
    users = torch.cat([b.user for b in batches])
    pos = torch.cat([b.pos_item for b in batches])
    neg = torch.cat([b.neg_item for b in batches])
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(map(tuple, ei.t().tolist()))
    train = set(map(tuple, ei.t().tolist()))
    assert all((u, j) not in train for u, j in zip(users.tolist(), neg.tolist()))
    assert neg.min() >= 0 and neg.max() < 40


def test_negatives_are_uniform_over_non_interacted_items():
    # One user who interacted with items 0..4 of 10: negatives uniform over 5..9.
    ei = torch.tensor([[0] * 5, [0, 1, 2, 3, 4]])
    s = BPRSampler(ei, 10, batch_size=5, seed=0)
    rng = np.random.default_rng(1)
    neg = s.sample_negatives(np.zeros(50000, dtype=np.int64), rng)
    counts = np.bincount(neg, minlength=10)
    assert counts[:5].sum() == 0
    assert np.allclose(counts[5:] / 50000, 0.2, atol=0.01)


def test_deterministic_per_seed_and_epoch():
    ei = make_edges()
    a = [b.neg_item for b in BPRSampler(ei, 40, 100, seed=7).epoch(2)]
    b = [b.neg_item for b in BPRSampler(ei, 40, 100, seed=7).epoch(2)]
    c = [b.neg_item for b in BPRSampler(ei, 40, 100, seed=7).epoch(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    # Resuming mid-epoch yields the remaining batches of the same epoch.
    rest = [b.neg_item for b in BPRSampler(ei, 40, 100, seed=7).epoch(2, start_batch=2)]
    assert all(torch.equal(x, y) for x, y in zip(a[2:], rest))


def test_user_with_every_item_rejected():
    with pytest.raises(ValueError, match='every item'):
        BPRSampler(torch.tensor([[0, 0], [0, 1]]), 2)


def test_user_sampler_covers_each_training_user_once_per_epoch():
    from pyg_diffcl.datasets import UserSampler
    ei = torch.tensor([[0, 0, 2, 5, 5, 7], [1, 2, 0, 3, 4, 1]])
    s = UserSampler(ei, batch_size=3, seed=4)
    assert len(s) == 2
    batches = [b.user for b in s.epoch(0)]
    assert [b.numel() for b in batches] == [3, 1]
    assert sorted(torch.cat(batches).tolist()) == [0, 2, 5, 7]  # users without interactions never appear
    again = [b.user for b in s.epoch(0)]
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not all(torch.equal(a, b) for a, b in zip(batches, (b.user for b in s.epoch(1))))
    assert [b.user.tolist() for b in s.epoch(0, start_batch=1)] == [batches[1].tolist()]
    with pytest.raises(ValueError):
        UserSampler(ei, batch_size=0)
