r"""Lazy ("row-sparse") Adam for embedding tables that train on sampled subgraphs."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch
from torch import Tensor


class RowSparseAdam(torch.optim.Optimizer):
    r"""Adam on the rows that have a gradient, the rest left as they are ("lazy" Adam), for embedding tables
    whose gradients are row-sparse (:class:`torch.nn.Embedding` with ``sparse=True``).

    For the rows :math:`R` of a step's gradient :math:`\mathbf{G}` (duplicate rows summed), at step :math:`t`:

    .. math::
        \mathbf{m}_R \leftarrow \beta_1 \mathbf{m}_R + (1 - \beta_1) \mathbf{G}_R, \qquad
        \mathbf{v}_R \leftarrow \beta_2 \mathbf{v}_R + (1 - \beta_2) \mathbf{G}_R^2, \qquad
        \mathbf{W}_R \leftarrow \mathbf{W}_R - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
        \frac{\mathbf{m}_R}{\sqrt{\mathbf{v}_R} + \epsilon}

    with :math:`t` counting the optimizer's steps (not the row's). That is :class:`torch.optim.SparseAdam`'s
    algorithm, operation for operation, with the same state (``step``, ``exp_avg``, ``exp_avg_sq``): the two
    give the same bits and load each other's state. It differs in cost only. ``SparseAdam`` coalesces the
    gradient and reads and writes the moments through ``sparse_mask`` and sparse additions, which on a
    sampled subgraph's rows took longer than its forward and backward passes together
    (``benchmarks/scale.py``). Here the rows are gathered once with :meth:`~torch.Tensor.index_select` and
    written back with :meth:`~torch.Tensor.index_copy_`, a few passes over :math:`|R| \times d` values.

    Args:
        params (iterable): The tables (their gradients must be sparse COO, or ``None``).
        lr (float): :math:`\eta`. (default: :obj:`1e-3`)
        betas (Tuple[float, float]): :math:`\beta_1, \beta_2`. (default: :obj:`(0.9, 0.999)`)
        eps (float): :math:`\epsilon`. (default: :obj:`1e-8`)
        maximize (bool): Ascend instead of descend. (default: :obj:`False`)
    """
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, maximize: bool = False) -> None:
        if not lr > 0.0:
            raise ValueError(f'lr: must be positive, got {lr}')
        if not eps > 0.0:
            raise ValueError(f'eps: must be positive, got {eps}')
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f'betas: each must be in [0, 1), got {betas}')
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for p in group['params']:
                if p.grad is None:
                    continue
                grad = p.grad
                if not grad.is_sparse:
                    raise RuntimeError('RowSparseAdam: expected row-sparse gradients (an Embedding with '
                                       'sparse=True); use torch.optim.Adam for dense ones')
                state: Dict[str, Any] = self.state[p]
                if not state:
                    state['step'] = 0
                    state['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state['step'] += 1
                grad = coalesce_rows(grad)
                rows, values = grad._indices()[0], grad._values()
                if rows.numel() == 0:
                    continue
                if group['maximize']:
                    values = -values
                self._update(p, rows, values, state, beta1, beta2, group['lr'], group['eps'])
        return loss

    @staticmethod
    def _update(p: Tensor, rows: Tensor, g: Tensor, state: Dict[str, Any], beta1: float, beta2: float,
                lr: float, eps: float) -> None:
        exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
        old_avg = exp_avg.index_select(0, rows)
        numer = (g - old_avg).mul_(1 - beta1)          # the increment, then the new first moment
        numer.add_(old_avg)
        exp_avg.index_copy_(0, rows, numer)
        old_sq = exp_avg_sq.index_select(0, rows)
        new_sq = g.pow(2).sub_(old_sq).mul_(1 - beta2)
        new_sq.add_(old_sq)
        exp_avg_sq.index_copy_(0, rows, new_sq)
        denom = new_sq.sqrt_().add_(eps)
        t = state['step']
        step_size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        p.index_add_(0, rows, numer.div_(denom).mul_(-step_size))


def coalesce_rows(grad: Tensor) -> Tensor:
    """A row-sparse gradient with its distinct rows in order and their values summed where a row repeats,
    marked coalesced (so :class:`RowSparseAdam`, and anything else that reads it, does not sort it again).
    Distinct rows (a subgraph's) are only put in order, without :meth:`~torch.Tensor.coalesce`'s copy and
    sum; repeated ones go through :meth:`~torch.Tensor.coalesce`, whose sums ``SparseAdam`` also uses (the
    same bits)."""
    if grad.is_coalesced():
        return grad
    index, values = grad._indices()[0], grad._values()
    rows, inverse = torch.unique(index, return_inverse=True)
    if rows.numel() != index.numel():
        return grad.coalesce()
    order = torch.empty_like(inverse)  # distinct: a permutation of the values, no sum
    order[inverse] = torch.arange(inverse.numel(), device=inverse.device)
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values.index_select(0, order), grad.shape,
                                   is_coalesced=True, check_invariants=False)
