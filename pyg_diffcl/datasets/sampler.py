r"""Training batches: pairwise BPR triples (one positive interaction, one sampled negative item) and batches
of users (for models trained on whole behaviour rows)."""
from __future__ import annotations

from typing import Iterator, NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor


def pair_keys(user: np.ndarray, item: np.ndarray, num_items: int) -> np.ndarray:
    r"""The sorted, unique keys :math:`u \cdot |\mathcal{I}| + i` of (user, item) pairs, for :func:`contains`."""
    return np.unique(np.asarray(user, dtype=np.int64) * int(num_items) + np.asarray(item, dtype=np.int64))


def contains(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    r"""Whether each of :obj:`query` is in the sorted array :obj:`keys` (a binary search per entry); the keys of
    (user, item) pairs are :math:`u \cdot |\mathcal{I}| + i`."""
    if not len(keys):
        return np.zeros(query.shape, dtype=bool)
    pos = np.searchsorted(keys, query)
    pos[pos == len(keys)] = 0
    return keys[pos] == query


class BPRBatch(NamedTuple):
    """A batch of ``(user, positive item, negative item)`` triples, int64 tensors of equal length."""
    user: Tensor
    pos_item: Tensor
    neg_item: Tensor

    def to(self, device: torch.device | str) -> 'BPRBatch':
        return BPRBatch(*(t.to(device, non_blocking=True) for t in self))


#: The candidate negatives of :class:`BPRSampler`: every item, or only the items with a training interaction.
NEGATIVE_POOLS = ('all', 'trained')


class BPRSampler:
    r"""Shuffles the training interactions once per epoch and pairs each with a negative item.

    For every training interaction :math:`(u, i)` one negative item :math:`j` is drawn uniformly from
    :math:`\mathcal{P} \setminus \mathcal{I}_u^{\text{train}}`: the candidate pool :math:`\mathcal{P}` less
    the items the user has interacted with in training. With :obj:`negative_pool='all'` the pool is every
    item. With ``'trained'`` it is the items that have at least one training interaction, as MMRec's sampler
    (and the official code of every model built on it: FREEDOM, BM3, MENTOR) draws them: an item seen only in
    validation or test is then never pushed down as a negative, and its score comes from what the model
    shares with other items (features, an item graph). Sampling is vectorised rejection sampling: draw
    uniformly from the pool, look the pairs up in the sorted array of training keys
    :math:`u \cdot |\mathcal{I}| + i` (binary search), redraw only the collisions.

    The sampler is driven by its own :class:`numpy.random.Generator`, so an epoch's batches depend only on the
    seed and the epoch number (:meth:`epoch` reseeds from both), never on what ran before.

    Args:
        edge_index (Tensor): Training interactions ``[2, E]`` (user, item).
        num_items (int): The number of items.
        batch_size (int): Interactions per batch. (default: :obj:`2048`)
        seed (int): The seed. (default: :obj:`0`)
        drop_last (bool): Drop the last incomplete batch. (default: :obj:`False`)
        negative_pool (str): The candidate negatives: ``'all'`` items or the ``'trained'`` ones (those with a
            training interaction). (default: :obj:`'all'`)
    """
    def __init__(self, edge_index: Tensor, num_items: int, batch_size: int = 2048, seed: int = 0,
                 drop_last: bool = False, negative_pool: str = 'all') -> None:
        if batch_size <= 0:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        if negative_pool not in NEGATIVE_POOLS:
            raise ValueError(f'negative_pool: expected one of {", ".join(NEGATIVE_POOLS)}, got {negative_pool!r}')
        ei = edge_index.cpu().numpy().astype(np.int64)
        self.user = ei[0]
        self.item = ei[1]
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = drop_last
        self.negative_pool = negative_pool
        self._keys = pair_keys(self.user, self.item, self.num_items)
        #: The candidate items (``None``: all of them, drawn directly).
        self._pool: Optional[np.ndarray] = np.unique(self.item) if negative_pool == 'trained' else None
        size = self.num_items if self._pool is None else len(self._pool)
        counts = np.bincount(self.user, minlength=int(self.user.max()) + 1 if self.user.size else 0)
        full = np.flatnonzero(counts >= size)
        if full.size:
            raise ValueError(f'user {int(full[0])} has interacted with every item of the negative pool '
                             f'({negative_pool!r}) in training: no negative item can be sampled')

    def __len__(self) -> int:
        n = len(self.user)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def sample_negatives(self, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform negatives for ``user`` from the candidate pool, never one of the user's training items."""
        pool = self._pool

        def draw(n: int) -> np.ndarray:
            if pool is None:
                return rng.integers(0, self.num_items, size=n, dtype=np.int64)
            return pool[rng.integers(0, len(pool), size=n, dtype=np.int64)]

        neg = draw(len(user))
        todo = np.arange(len(user))
        while todo.size:
            todo = todo[contains(self._keys, user[todo] * self.num_items + neg[todo])]
            neg[todo] = draw(todo.size)
        return neg

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[BPRBatch]:
        """The batches of one epoch, from batch :obj:`start_batch` on (resuming mid-epoch)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        perm = rng.permutation(len(self.user))
        neg = self.sample_negatives(self.user[perm], rng)
        for b in range(start_batch, len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = perm[sl]
            yield BPRBatch(torch.from_numpy(self.user[idx]), torch.from_numpy(self.item[idx]),
                           torch.from_numpy(neg[sl]))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(interactions={len(self.user)}, items={self.num_items}, '
                f'batch_size={self.batch_size}, seed={self.seed}, negative_pool={self.negative_pool!r})')


class UserBatch(NamedTuple):
    """A batch of users (int64), for models trained on whole behaviour rows (LD4MRec)."""
    user: Tensor

    def to(self, device: torch.device | str) -> 'UserBatch':
        return UserBatch(self.user.to(device, non_blocking=True))


class UserSampler:
    r"""Shuffles the users that have training interactions once per epoch and cuts them into batches
    (DiffRec / LD4MRec train on users' whole behaviour vectors, not on single interactions). Like
    :class:`BPRSampler`, an epoch's order depends only on the seed and the epoch number.

    Args:
        edge_index (Tensor): Training interactions ``[2, E]`` (user, item).
        batch_size (int): Users per batch. (default: :obj:`400`)
        seed (int): The seed. (default: :obj:`0`)
        drop_last (bool): Drop the last incomplete batch. (default: :obj:`False`)
    """
    def __init__(self, edge_index: Tensor, batch_size: int = 400, seed: int = 0, drop_last: bool = False) -> None:
        if batch_size <= 0:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        self.users = np.unique(edge_index[0].cpu().numpy().astype(np.int64))
        self.batch_size, self.seed, self.drop_last = int(batch_size), int(seed), drop_last

    def __len__(self) -> int:
        n = len(self.users)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[UserBatch]:
        """The batches of one epoch, from batch :obj:`start_batch` on."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        perm = self.users[rng.permutation(len(self.users))]
        for b in range(start_batch, len(self)):
            yield UserBatch(torch.from_numpy(perm[b * self.batch_size:(b + 1) * self.batch_size]))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(users={len(self.users)}, batch_size={self.batch_size}, seed={self.seed})'
