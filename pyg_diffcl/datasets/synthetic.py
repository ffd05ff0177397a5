r"""Synthetic power-law interaction graphs of a given size, for benchmarks and scale tests: popularity alone
(:func:`powerlaw_interactions`), or with planted preferences and features that carry them
(:func:`planted_interactions`)."""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def _zipf_weights(n: int, exponent: float, g: torch.Generator) -> Tensor:
    """Zipf weights :math:`r^{-a}` of a random rank :math:`r` per id (popular ids scattered over the range)."""
    rank = torch.randperm(n, generator=g).double() + 1.0
    return rank.pow(-exponent)


def _distinct_pairs(draw_pairs, num_interactions: int, num_items: int, g: torch.Generator) -> Tensor:
    """Draw batches of (user, item) pairs with :obj:`draw_pairs(count)` until :obj:`num_interactions`
    distinct ones exist; keep exactly that many (a seeded choice), sorted by user then item: ``[2, n]``."""
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < num_interactions:
        u, i = draw_pairs(max(1024, int(1.3 * (num_interactions - keys.numel()))))
        keys = torch.unique(torch.cat([keys, u * num_items + i]))
    keep = torch.randperm(keys.numel(), generator=g)[:num_interactions]
    keys = keys[keep].sort().values
    return torch.stack([keys // num_items, keys % num_items])


def powerlaw_interactions(num_users: int, num_items: int, num_interactions: int, seed: int = 0,
                          user_exponent: float = 1.0, item_exponent: float = 0.8) -> Tensor:
    r"""Distinct (user, item) pairs whose user activity and item popularity follow power laws, as in real
    recommendation logs.

    User :math:`u` and item :math:`i` get Zipf weights :math:`w_u \propto r_u^{-a}` and
    :math:`w_i \propto r_i^{-b}` of a random rank :math:`r` (so that popular ids are scattered over the id
    range, as in real data, not packed at its start); pairs are drawn with probability
    :math:`\propto w_u w_i`, duplicates are dropped and drawing repeats until
    :obj:`num_interactions` distinct pairs exist, of which exactly that many are kept. Deterministic for a
    :obj:`seed`.

    Args:
        num_users (int): Users :math:`|\mathcal{U}|`.
        num_items (int): Items :math:`|\mathcal{I}|`.
        num_interactions (int): Distinct pairs to return, at most :math:`|\mathcal{U}||\mathcal{I}|/2`.
        seed (int, optional): Random seed. (default: :obj:`0`)
        user_exponent (float, optional): :math:`a`. (default: :obj:`1.0`)
        item_exponent (float, optional): :math:`b`. (default: :obj:`0.8`)

    Returns:
        Tensor: ``[2, num_interactions]`` (user, item) pairs, sorted by user then item.
    """
    if min(num_users, num_items) < 1 or num_interactions < 0:
        raise ValueError(f'need at least one user and item and a non-negative count, got {num_users} users, '
                         f'{num_items} items, {num_interactions} interactions')
    if num_interactions > num_users * num_items // 2:
        raise ValueError(f'{num_interactions} interactions is more than half of the {num_users} x {num_items} '
                         f'matrix: not a sparse interaction log')
    g = torch.Generator().manual_seed(seed)
    wu, wi = _zipf_weights(num_users, user_exponent, g), _zipf_weights(num_items, item_exponent, g)

    def draw(count: int) -> Tuple[Tensor, Tensor]:
        u = torch.multinomial(wu, count, replacement=True, generator=g)
        return u, torch.multinomial(wi, count, replacement=True, generator=g)
    return _distinct_pairs(draw, num_interactions, num_items, g)


def planted_interactions(num_users: int, num_items: int, num_interactions: int, num_topics: int = 32,
                         concentration: float = 0.1, noise: float = 0.05, seed: int = 0,
                         user_exponent: float = 1.0, item_exponent: float = 0.8,
                         feature_dims: Sequence[int] = (), feature_noise: float = 1.0
                         ) -> Tuple[Tensor, Dict[str, Tensor]]:
    r"""A power-law interaction log with planted preferences: what a model can learn beyond popularity.

    A latent-topic model (the mixed-membership reading of a latent-factor model). Each item belongs to one of
    :math:`T` topics, uniformly at random, and keeps a power-law popularity :math:`w_i \propto r_i^{-b}` of a
    random rank, as in :func:`powerlaw_interactions`. Each user has an activity :math:`w_u \propto r_u^{-a}`
    and a taste :math:`\boldsymbol{\theta}_u \sim \mathrm{Dirichlet}(\gamma \mathbf{1}_T)` (a small
    concentration :math:`\gamma` gives each user a few topics). An interaction draws

    .. math::
        u \sim w_u, \qquad t \sim \boldsymbol{\theta}_u, \qquad
        i \sim w_i \,\mathbb{1}[\mathrm{topic}(i) = t],

    except that with probability :math:`\epsilon` (:obj:`noise`) the item is drawn from the whole catalogue by
    popularity alone. So :math:`P(i \mid u) = (1 - \epsilon)\,\theta_{u,t(i)}\, w_i / W_{t(i)} + \epsilon\,
    w_i / W`, with :math:`W_t` the popularity mass of topic :math:`t`: popularity still orders items, but
    which items a user sees is told by the other users of the same topics, which is what a collaborative
    model learns. Duplicate pairs are dropped and drawing repeats until :obj:`num_interactions` distinct pairs
    exist.

    With :obj:`feature_dims`, every modality :math:`m` gets item features that carry the topics:
    :math:`\mathbf{x}_i = \mathbf{c}_{\mathrm{topic}(i)} + \sigma \boldsymbol{\varepsilon}_i`, a random
    centroid per topic (standard normal, :math:`F_m` entries) plus Gaussian noise of scale :math:`\sigma`
    (:obj:`feature_noise`).

    Args:
        num_users (int): Users :math:`|\mathcal{U}|`.
        num_items (int): Items :math:`|\mathcal{I}|`.
        num_interactions (int): Distinct pairs to return, at most :math:`|\mathcal{U}||\mathcal{I}|/2`.
        num_topics (int, optional): :math:`T`. (default: :obj:`32`)
        concentration (float, optional): :math:`\gamma`. (default: :obj:`0.1`)
        noise (float, optional): :math:`\epsilon`. (default: :obj:`0.05`)
        seed (int, optional): Random seed. (default: :obj:`0`)
        user_exponent (float, optional): :math:`a`. (default: :obj:`1.0`)
        item_exponent (float, optional): :math:`b`. (default: :obj:`0.8`)
        feature_dims (Sequence[int], optional): :math:`F_m` of each modality, named ``m0``, ``m1``, ...
            (default: none)
        feature_noise (float, optional): :math:`\sigma`. (default: :obj:`1.0`)

    Returns:
        ``([2, num_interactions]`` (user, item) pairs sorted by user then item, ``{name: [num_items, F_m]}``
        item features).
    """
    if min(num_users, num_items, num_topics) < 1 or num_interactions < 0:
        raise ValueError(f'num_users, num_items, num_topics, num_interactions: need at least one user, item and '
                         f'topic and a non-negative count, got {num_users}, {num_items}, {num_topics}, '
                         f'{num_interactions}')
    if num_interactions > num_users * num_items // 2:
        raise ValueError(f'num_interactions: {num_interactions} is more than half of the {num_users} x '
                         f'{num_items} matrix: not a sparse interaction log')
    if not concentration > 0 or not 0 <= noise <= 1:
        raise ValueError(f'concentration, noise: need concentration > 0 and noise in [0, 1], got {concentration}, '
                         f'{noise}')
    g = torch.Generator().manual_seed(seed)
    wu, wi = _zipf_weights(num_users, user_exponent, g), _zipf_weights(num_items, item_exponent, g)
    topic = torch.randint(num_topics, (num_items,), generator=g)
    # Dirichlet tastes from numpy's seeded generator (torch's Dirichlet sampler takes no generator).
    taste = torch.from_numpy(np.random.default_rng([seed, 1]).dirichlet([float(concentration)] * num_topics,
                                                                        size=num_users))
    taste = torch.nan_to_num(taste).clamp(min=1e-30)
    taste = taste / taste.sum(1, keepdim=True)
    members = [torch.nonzero(topic == t).flatten() for t in range(num_topics)]

    def draw(count: int) -> Tuple[Tensor, Tensor]:
        u = torch.multinomial(wu, count, replacement=True, generator=g)
        t = torch.multinomial(taste[u], 1, generator=g).flatten()
        i = torch.empty(count, dtype=torch.long)
        for k, items in enumerate(members):
            where = torch.nonzero(t == k).flatten()
            if not where.numel():
                continue
            if not items.numel():  # an empty topic: popularity alone
                i[where] = torch.multinomial(wi, where.numel(), replacement=True, generator=g)
                continue
            i[where] = items[torch.multinomial(wi[items], where.numel(), replacement=True, generator=g)]
        flip = torch.rand(count, generator=g) < noise
        if bool(flip.any()):
            i[flip] = torch.multinomial(wi, int(flip.sum()), replacement=True, generator=g)
        return u, i
    edge_index = _distinct_pairs(draw, num_interactions, num_items, g)
    features = {}
    for m, dim in enumerate(feature_dims):
        centroids = torch.randn(num_topics, int(dim), generator=g)
        features[f'm{m}'] = centroids[topic] + feature_noise * torch.randn(num_items, int(dim), generator=g)
    return edge_index, features
