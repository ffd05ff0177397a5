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


def test_planted_interactions_shape_determinism_and_topics():
    from pyg_diffcl.datasets.synthetic import planted_interactions
    torch.manual_seed(0)
    state = torch.get_rng_state()
    ei, feats = planted_interactions(400, 150, 4000, num_topics=6, seed=3, feature_dims=[5, 3])
    assert torch.equal(torch.get_rng_state(), state)  # its own generators only
    assert ei.shape == (2, 4000) and set(feats) == {'m0', 'm1'} and feats['m0'].shape == (150, 5)
    assert len(set(map(tuple, ei.t().tolist()))) == 4000
    again, feats2 = planted_interactions(400, 150, 4000, num_topics=6, seed=3, feature_dims=[5, 3])
    assert torch.equal(ei, again) and torch.equal(feats['m1'], feats2['m1'])
    assert not torch.equal(ei, planted_interactions(400, 150, 4000, num_topics=6, seed=4)[0])
    # The features carry the topics: items of one topic are closer to each other than to the rest.
    x = feats['m0']
    sim = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(x, dim=1).t()
    nearest = sim.fill_diagonal_(-2).argmax(1)
    same_topic = (x[nearest] - x).norm(dim=1) < (x[torch.randperm(150)] - x).norm(dim=1)
    assert same_topic.float().mean() > 0.7
    with pytest.raises(ValueError, match='num_interactions'):
        planted_interactions(10, 10, 60)


def test_a_trained_lightgcn_beats_popularity_on_planted_preferences():
    """Recall@20 on held-out interactions: LightGCN trained on the planted log ranks them better than
    popularity does (here about 0.54 against 0.28)."""
    from pyg_diffcl.datasets import BPRSampler
    from pyg_diffcl.datasets.synthetic import planted_interactions
    from pyg_diffcl.evaluation import FullRankingEvaluator
    from pyg_diffcl.models import LightGCN
    from pyg_diffcl.ops import BipartiteAdj
    U, I = 600, 300
    ei, _ = planted_interactions(U, I, 9000, num_topics=8, concentration=0.1, seed=0)
    test = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(1)) < 0.2
    train, held = ei[:, ~test], ei[:, test]
    torch.manual_seed(0)
    model = LightGCN(U, I, embedding_dim=32, num_layers=2, reg_weight=1e-4)
    adj = BipartiteAdj(train, U, I)
    sampler = BPRSampler(train, I, batch_size=1024, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(30):
        for batch in sampler.epoch(epoch):
            opt.zero_grad()
            model.loss(adj, batch).backward()
            opt.step()
    evaluator = FullRankingEvaluator(held, [train], U, I, ks=[20])
    model.eval()
    with torch.no_grad():
        lightgcn = evaluator.evaluate(model.scorer(adj))['recall@20']
        popularity = torch.bincount(train[1], minlength=I).float()
        pop = evaluator.evaluate(lambda users: popularity.expand(users.numel(), I).clone())['recall@20']
    assert lightgcn > 1.3 * pop, (lightgcn, pop)
