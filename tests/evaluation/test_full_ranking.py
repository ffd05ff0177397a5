import math

import numpy as np
import pytest
import torch

from pyg_diffcl.evaluation import FullRankingEvaluator, check_ks

SCORES = torch.tensor([[0.9, 0.8, 0.1, 0.5, 0.3],
                       [0.1, 0.2, 0.3, 0.4, 0.5]])
TRAIN = torch.tensor([[0, 1], [0, 4]])          # user 0 - item 0, user 1 - item 4
HELD = torch.tensor([[0, 0, 1], [3, 4, 0]])     # user 0 - {3, 4}, user 1 - {0}


def test_hand_worked_example():
    ev = FullRankingEvaluator(HELD, TRAIN, num_users=2, num_items=5, ks=[2, 4])
    m = ev.evaluate(lambda users: SCORES[users].clone())
    # user 0 ranks 1, 3, 4, 2 (item 0 excluded); user 1 ranks 3, 2, 1, 0 (item 4 excluded)
    l2, l3, l5 = math.log2(3), math.log2(4), math.log2(5)
    assert m['recall@2'] == pytest.approx((0.5 + 0) / 2)
    assert m['precision@2'] == pytest.approx((0.5 + 0) / 2)
    assert m['hitrate@2'] == pytest.approx(0.5)
    assert m['ndcg@2'] == pytest.approx(((1 / l2) / (1 + 1 / l2)) / 2, rel=1e-5)
    assert m['map@2'] == pytest.approx((0.5 / 2) / 2)
    assert m['recall@4'] == pytest.approx(1.0)
    assert m['precision@4'] == pytest.approx((0.5 + 0.25) / 2)
    assert m['ndcg@4'] == pytest.approx(((1 / l2 + 1 / l3) / (1 + 1 / l2) + 1 / l5) / 2, rel=1e-5)
    assert m['map@4'] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 4) / 2, rel=1e-5)


def brute_force(scores, train, held, ks):
    """Per-user Python loops over a full sort: the MMRec definitions."""
    out = {f'{n}@{k}': [] for n in ('recall', 'ndcg', 'precision', 'map', 'hitrate') for k in ks}
    for u, truth in held.items():
        s = scores[u].copy()
        s[list(train.get(u, ()))] = -np.inf
        ranked = list(np.argsort(-s, kind='stable'))
        for k in ks:
            top = ranked[:k]
            rel = [1 if i in truth else 0 for i in top]
            hits = sum(rel)
            out[f'recall@{k}'].append(hits / len(truth))
            out[f'precision@{k}'].append(hits / k)
            out[f'hitrate@{k}'].append(float(hits > 0))
            dcg = sum(r / math.log2(p + 2) for p, r in enumerate(rel))
            idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(truth))))
            out[f'ndcg@{k}'].append(dcg / idcg)
            ap = sum(rel[p] * sum(rel[:p + 1]) / (p + 1) for p in range(len(rel)))
            out[f'map@{k}'].append(ap / min(k, len(truth)))
    return {key: float(np.mean(v)) for key, v in out.items()}


def random_problem(seed, users=60, items=45):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(users, items)).astype(np.float32)
    train, held = {}, {}
    for u in range(users):
        perm = rng.permutation(items)
        train[u] = set(perm[:rng.integers(1, 10)].tolist())
        if rng.random() < 0.7:  # some users have nothing held out and are skipped
            held[u] = set(perm[10:10 + rng.integers(1, 6)].tolist())
    to_ei = lambda d: torch.tensor([(u, i) for u, s in d.items() for i in sorted(s)]).t()
    return scores, train, held, to_ei(train), to_ei(held)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_brute_force_numpy(seed):
    scores, train, held, train_ei, held_ei = random_problem(seed)
    ks = [1, 5, 10, 20]
    expect = brute_force(scores, train, held, ks)
    t = torch.from_numpy(scores)
    got = FullRankingEvaluator(held_ei, train_ei, 60, 45, ks=ks, block_size=7).evaluate(
        lambda u: t[u].clone())
    for key, value in expect.items():
        assert got[key] == pytest.approx(value, abs=1e-5), key


@pytest.mark.parametrize('block_size', [1, 3, 16, 1000])
def test_independent_of_block_size(block_size):
    scores, train, held, train_ei, held_ei = random_problem(5)
    t = torch.from_numpy(scores)
    ref = FullRankingEvaluator(held_ei, train_ei, 60, 45, block_size=60).evaluate(lambda u: t[u].clone())
    got = FullRankingEvaluator(held_ei, train_ei, 60, 45, block_size=block_size).evaluate(
        lambda u: t[u].clone())
    assert got == pytest.approx(ref, abs=1e-6)


def test_extra_exclusion_masks_more_items():
    # Excluding validation items at test time: user 0's top item 1 becomes excluded, so item 3 ranks first.
    ev = FullRankingEvaluator(HELD[:, :1], [TRAIN, torch.tensor([[0], [1]])], 2, 5, ks=[1])
    m = ev.evaluate(lambda users: SCORES[users].clone())
    assert m['recall@1'] == 1.0


def test_users_are_those_with_held_out_items_and_ks_checked():
    ev = FullRankingEvaluator(HELD, TRAIN, num_users=10, num_items=5)
    assert ev.users.tolist() == [0, 1] and ev.num_eval_users == 2
    for bad in ([], [0], [-5], [2.5], [True]):
        with pytest.raises(ValueError, match='ks must be'):
            check_ks(bad)
    with pytest.raises(ValueError, match='score_fn returned shape'):
        ev.evaluate(lambda u: torch.zeros(len(u), 3))


def test_a_score_view_is_not_written_through():
    """A score function may return a view: one popularity row expanded to every user, or rows sliced from a
    cached matrix. Each user's exclusions stay their own, and the caller's tensor keeps its values."""
    pop = torch.tensor([0.5, 0.4, 0.3, 0.2, 0.1])
    # By hand: user 0 (item 0 excluded) ranks 1, 2, 3, 4; user 1 (item 4 excluded) ranks 0, 1, 2, 3.
    ev = FullRankingEvaluator(HELD, TRAIN, num_users=2, num_items=5, ks=[1])
    m = ev.evaluate(lambda users: pop.expand(users.numel(), -1))
    assert m['hitrate@1'] == pytest.approx(0.5)   # user 0's top item 1 is not held out; user 1's item 0 is
    assert pop.tolist() == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    cached = SCORES.clone()
    expected = ev.evaluate(lambda users: SCORES[users].clone())
    assert ev.evaluate(lambda users: cached[:users.numel()]) == expected   # users are 0, 1: the rows as a view
    assert torch.equal(cached, SCORES)
