r"""Synthetic power-law interaction graphs of a given size, for benchmarks and scale tests."""
from __future__ import annotations

import torch
from torch import Tensor


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

    def weights(n: int, exponent: float) -> Tensor:
        rank = torch.randperm(n, generator=g).double() + 1.0
        return rank.pow(-exponent)

    wu, wi = weights(num_users, user_exponent), weights(num_items, item_exponent)
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < num_interactions:
        draw = max(1024, int(1.3 * (num_interactions - keys.numel())))
        u = torch.multinomial(wu, draw, replacement=True, generator=g)
        i = torch.multinomial(wi, draw, replacement=True, generator=g)
        keys = torch.unique(torch.cat([keys, u * num_items + i]))
    keep = torch.randperm(keys.numel(), generator=g)[:num_interactions]
    keys = keys[keep].sort().values
    return torch.stack([keys // num_items, keys % num_items])
