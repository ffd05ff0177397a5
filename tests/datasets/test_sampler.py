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


def test_trained_pool_draws_only_items_with_a_training_interaction():
    # Items 0..9; only 0..5 appear in training. User 0 trained on 0, 1, 2: with the 'trained' pool its
    # negatives are uniform over 3, 4, 5 (never an item seen only outside training); with 'all', over 3..9.
    ei = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 4, 5]])
    trained = BPRSampler(ei, 10, batch_size=4, seed=0, negative_pool='trained')
    neg = trained.sample_negatives(np.zeros(60000, dtype=np.int64), np.random.default_rng(2))
    counts = np.bincount(neg, minlength=10)
    assert counts[[0, 1, 2, 6, 7, 8, 9]].sum() == 0
    assert np.allclose(counts[3:6] / 60000, 1 / 3, atol=0.01)
    every = BPRSampler(ei, 10, batch_size=4, seed=0).sample_negatives(np.zeros(70000, dtype=np.int64),
                                                                     np.random.default_rng(2))
    assert np.allclose(np.bincount(every, minlength=10)[3:] / 70000, 1 / 7, atol=0.01)
    # A whole epoch: every triple's negative is a trained item the user has not trained on.
    train = set(map(tuple, ei.t().tolist()))
    for b in trained.epoch(0):
        assert all(j in range(6) and (u, j) not in train for u, j in zip(b.user.tolist(), b.neg_item.tolist()))


def test_negative_pool_checked():
    with pytest.raises(ValueError, match='negative_pool'):
        BPRSampler(make_edges(), 40, negative_pool='seen')
    # User 0 trained on both of the two trained items: no negative in the 'trained' pool (there is in 'all').
    ei = torch.tensor([[0, 0, 1], [0, 1, 0]])
    BPRSampler(ei, 5)
    with pytest.raises(ValueError, match="every item of the negative pool \\('trained'\\)"):
        BPRSampler(ei, 5, negative_pool='trained')


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
