r"""Row access to a (user, item) edge list in CSR form: the blocks of the evaluator and the behaviour rows
of LD4MRec."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor


def csr_rows(edge_index: Tensor, num_users: int) -> Tuple[Tensor, Tensor]:
    """(rowptr, items sorted by user) of a (user, item) edge list."""
    user, item = edge_index
    perm = torch.argsort(user, stable=True)
    rowptr = torch.zeros(num_users + 1, dtype=torch.long, device=user.device)
    rowptr[1:] = torch.cumsum(torch.bincount(user, minlength=num_users), 0)
    return rowptr, item[perm]


def dense_rows(rowptr: Tensor, col: Tensor, users: Tensor, num_items: int) -> Tensor:
    """The binary dense rows ``[len(users), num_items]`` of ``users`` of a CSR matrix (:func:`csr_rows`)."""
    users = users.to(rowptr.device)
    row, item = gather_rows(rowptr, col, users)
    x = torch.zeros(users.numel(), num_items, device=rowptr.device)
    x[row, item] = 1.0
    return x


def gather_rows(rowptr: Tensor, col: Tensor, users: Tensor) -> Tuple[Tensor, Tensor]:
    """COO (local row, item) of the rows ``users`` of a CSR matrix (all on one device)."""
    start, end = rowptr[users], rowptr[users + 1]
    counts = end - start
    local = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), counts)
    offset = torch.arange(int(counts.sum()), device=users.device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return local, col[torch.repeat_interleave(start, counts) + offset]
