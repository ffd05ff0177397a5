r"""Full-ranking top-K evaluation in memory-bounded blocks of users."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMetricCollection,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

#: Metric name in result keys (``f'{name}@{k}'``) -> PyG metric class.
METRICS = {
    'recall': LinkPredRecall,
    'ndcg': LinkPredNDCG,
    'precision': LinkPredPrecision,
    'map': LinkPredMAP,
    'hitrate': LinkPredHitRatio,
}
DEFAULT_KS = (10, 20, 50)

from ..ops.rows import csr_rows, gather_rows

ScoreFn = Callable[[Tensor], Tensor]


def check_ks(ks: Sequence[int]) -> List[int]:
    """Validate cut-offs: a non-empty list of positive integers (returned sorted, unique)."""
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in ks):
        raise ValueError(f'ks must be a non-empty list of positive integers, got {ks!r}')
    return sorted(set(ks))


class UserBlock(NamedTuple):
    """One block of users: their ids, the (row, item) pairs to exclude, and the held-out (row, item) pairs."""
    users: Tensor
    exclude: Tuple[Tensor, Tensor]
    labels: Tensor


def top_k(scores: Tensor, k: int, exclude: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
    r"""Indices of the :obj:`k` highest scores per row after setting the :obj:`exclude` (row, column) pairs
    to :math:`-\infty`. Ties are broken as :func:`torch.topk` does.

    The exclusion is written in place into a :obj:`scores` that owns its memory (a fresh score block, as a
    matrix product returns). A view of another tensor (rows of a caller's cached matrix, or one score row
    expanded to every user) is copied first: written in place, the exclusions of one row would land in the
    caller's tensor, or, through an expanded row, in every row."""
    if exclude is not None and exclude[0].numel():
        if scores._base is not None or 0 in scores.stride():
            scores = scores.clone()
        scores[exclude[0].to(scores.device), exclude[1].to(scores.device)] = float('-inf')
    return scores.topk(min(k, scores.size(1)), dim=1).indices


class FullRankingEvaluator:
    r"""Full-ranking evaluation: for every user with at least one held-out item, score **all** items,
    exclude the user's known items (the training items, the MMRec/DiffMM convention; optionally more, for
    example the validation items at test time), take the top :math:`K` and compare with the held-out items.

    With :math:`R_u` the ranked list (top :math:`K`), :math:`T_u` the held-out items and
    :math:`\mathrm{rel}_u(r) = [R_u(r) \in T_u]`, averaged over the evaluated users:

    .. math::
        \mathrm{Recall@K} = \frac{|R_u \cap T_u|}{|T_u|}, \quad
        \mathrm{Precision@K} = \frac{|R_u \cap T_u|}{K}, \quad
        \mathrm{HitRate@K} = [R_u \cap T_u \neq \emptyset],

        \mathrm{NDCG@K} = \frac{\sum_{r=1}^{K} \mathrm{rel}_u(r) / \log_2(r+1)}
        {\sum_{r=1}^{\min(K, |T_u|)} 1 / \log_2(r+1)}, \quad
        \mathrm{MAP@K} = \frac{1}{\min(K, |T_u|)} \sum_{r=1}^{K} \mathrm{rel}_u(r)\,
        \frac{|R_u[1..r] \cap T_u|}{r}

    (MMRec's definitions), computed by PyG's :mod:`torch_geometric.metrics`. Users are processed in blocks
    of :obj:`block_size`, so memory is :math:`O(\text{block\_size} \cdot |\mathcal{I}|)`; the figures do not
    depend on the block size.

    Args:
        eval_edge_index (Tensor): Held-out ``[2, n]`` (user, item) pairs.
        exclude_edge_index (Tensor or Sequence[Tensor]): ``[2, m]`` pairs never ranked (training items, ...).
        num_users (int): The number of users.
        num_items (int): The number of items.
        ks (Sequence[int], optional): Cut-offs. (default: :obj:`(10, 20, 50)`)
        block_size (int, optional): Users per block. (default: :obj:`2048`)
    """
    def __init__(self, eval_edge_index: Tensor, exclude_edge_index: Tensor | Sequence[Tensor], num_users: int,
                 num_items: int, ks: Sequence[int] = DEFAULT_KS, block_size: int = 2048) -> None:
        if block_size <= 0:
            raise ValueError(f'block_size must be positive, got {block_size}')
        self.ks = check_ks(ks)
        self.num_users, self.num_items, self.block_size = int(num_users), int(num_items), int(block_size)
        if isinstance(exclude_edge_index, Tensor):
            exclude_edge_index = [exclude_edge_index]
        excl = torch.cat([e.cpu().long() for e in exclude_edge_index], dim=1) if exclude_edge_index else \
            torch.empty(2, 0, dtype=torch.long)
        ev = eval_edge_index.cpu().long()
        self.users = torch.unique(ev[0])
        self._excl = csr_rows(excl, self.num_users)
        self._eval = csr_rows(ev, self.num_users)

    @property
    def num_eval_users(self) -> int:
        return int(self.users.numel())

    def blocks(self, users: Optional[Tensor] = None) -> Iterator[UserBlock]:
        """Blocks of users (default: the evaluated users) with their exclusions and held-out items."""
        users = self.users if users is None else users.cpu().long()
        for start in range(0, users.numel(), self.block_size):
            block = users[start:start + self.block_size]
            labels = torch.stack(gather_rows(*self._eval, block))
            yield UserBlock(block, gather_rows(*self._excl, block), labels)

    def make_metrics(self) -> LinkPredMetricCollection:
        return LinkPredMetricCollection({f'{name}@{k}': cls(k) for name, cls in METRICS.items()
                                         for k in self.ks})

    @torch.no_grad()
    def evaluate(self, score_fn: ScoreFn, rank: int = 0, world_size: int = 1) -> Dict[str, float]:
        """Run :obj:`score_fn(users) -> [len(users), num_items]` over all blocks; ``{'recall@20': ...}``.

        With :obj:`world_size` > 1 (inside an initialised ``torch.distributed`` process group) this rank
        ranks every :obj:`world_size`-th evaluated user from :obj:`rank` on, and the per-metric sums and user
        counts are all-reduced, so every rank returns the figures of all users (equal to a single process's up
        to the order of a float sum)."""
        metrics = self.make_metrics()
        max_k = max(self.ks)
        users = self.users if world_size == 1 else self.users[rank::world_size]
        for block in self.blocks(users):
            scores = score_fn(block.users)
            if scores.shape != (block.users.numel(), self.num_items):
                raise ValueError(f'score_fn returned shape {tuple(scores.shape)}, expected '
                                 f'{(block.users.numel(), self.num_items)}')
            pred = top_k(scores, max_k, block.exclude).cpu()
            metrics.update(pred, block.labels)
        if world_size > 1:
            import torch.distributed as dist
            parts = list(metrics.values())
            sums = torch.stack([torch.stack([m.accum.double().cpu(), m.total.double().cpu()]) for m in parts])
            if dist.get_backend() == 'nccl':  # NCCL reduces CUDA tensors only
                sums = sums.cuda()
            dist.all_reduce(sums, op=dist.ReduceOp.SUM)
            sums = sums.cpu()
            for m, (accum, total) in zip(parts, sums):
                m.accum.fill_(float(accum))
                m.total.fill_(int(total))
        return {name: float(value) for name, value in metrics.compute().items()}

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(users={self.num_eval_users}, items={self.num_items}, '
                f'ks={self.ks}, block_size={self.block_size})')
