r"""Exact k-nearest-neighbour graphs with PyG's :func:`~torch_geometric.nn.pool.knn_graph` signature."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
import torch_geometric.typing as pyg_typing

#: Default memory budget of one chunk of the similarity matrix, in bytes.
DEFAULT_CHUNK_BYTES = 256 * 2**20


def _rank_scores(x: Tensor, cosine: bool) -> tuple[Tensor, Tensor]:
    """(query side, key side) such that larger ``q @ k.T`` means nearer (up to a per-query constant)."""
    x = x.float() if not x.is_floating_point() or x.dtype == torch.float16 else x
    if cosine:
        xn = torch.nn.functional.normalize(x, p=2.0, dim=-1)
        return xn, xn
    return x, x


def _exact_top_k(score: Tensor, k: int) -> Tensor:
    r"""Column indices of the :obj:`k` largest entries of each row, ties broken by the smaller column index,
    in order (largest first; among equals, smaller index first). Exact: unlike :func:`torch.topk` alone, the
    choice among tied values at the :math:`k`-th place does not depend on the kernel.

    One :func:`torch.topk` pass serves every row whose :math:`k`-th value is not tied with an unselected
    entry; only the other rows take the slower selection by (value, index)."""
    if k == 0:
        return score.new_zeros(score.size(0), 0, dtype=torch.long)
    vals, cols = score.topk(k, dim=1)
    kth = vals[:, -1:]
    ambiguous = ((score >= kth).sum(dim=1) > k).nonzero().view(-1)
    if ambiguous.numel():
        sub = score[ambiguous]
        sub_kth = kth[ambiguous]
        better = sub > sub_kth
        tied = sub == sub_kth
        need = k - better.sum(dim=1, keepdim=True)
        keep = better | (tied & (tied.cumsum(dim=1) <= need))
        cols[ambiguous] = keep.nonzero()[:, 1].view(-1, k)
    # Order by value (descending), then by column: stable sort by value of the column-sorted selection.
    cols = cols.sort(dim=1).values
    order = torch.sort(score.gather(1, cols), dim=1, descending=True, stable=True).indices
    return cols.gather(1, order)


def knn_graph(
    x: Tensor,
    k: int,
    batch: Optional[Tensor] = None,
    loop: bool = False,
    flow: str = 'source_to_target',
    cosine: bool = False,
    num_workers: int = 1,
    batch_size: Optional[int] = None,
    chunk_size: Optional[int] = None,
    use_pyg: bool = True,
) -> Tensor:
    r"""The :math:`k`-nearest-neighbour graph of the rows of :obj:`x`, with PyG's signature and
    ``edge_index`` convention.

    For each node :math:`i` the :math:`k` nodes :math:`j` of the same example with the largest similarity

    .. math::
        s_{ij} = \frac{\mathbf{x}_i^\top \mathbf{x}_j}{\|\mathbf{x}_i\| \|\mathbf{x}_j\|} \ (\text{cosine}),
        \qquad s_{ij} = -\|\mathbf{x}_i - \mathbf{x}_j\|^2 \ (\text{Euclidean}),

    excluding :math:`j = i` unless :obj:`loop`. With :obj:`flow='source_to_target'` the edges are
    :math:`(j, i)` (neighbour to centre, ``edge_index[1]`` the centre), else :math:`(i, j)`; edges are
    grouped by centre in increasing order, nearest first.

    When pyg-lib is installed (``torch_geometric.typing.WITH_KNN``) and :obj:`use_pyg`, PyG's own
    :func:`torch_geometric.nn.pool.knn_graph` is called. Otherwise this exact implementation runs:
    normalise (cosine), one matrix product per chunk of centres, and a top-:math:`k` whose ties are broken
    by the smaller index (deterministic, so the graph does not depend on the kernel or the chunking).
    Chunks hold at most :obj:`chunk_size` centres (default: as many as fit in 256 MiB of similarities), so
    memory is :math:`O(\text{chunk} \cdot N + N k)`, never :math:`N^2`. A zero vector has cosine similarity
    0 to everything. Nodes with fewer than :math:`k` candidates get all of them.

    Args:
        x (Tensor): Node features :math:`[N, F]`.
        k (int): The number of neighbours.
        batch (Tensor, optional): Sorted example index of every node :math:`[N]`. (default: :obj:`None`)
        loop (bool, optional): Allow :math:`j = i`. (default: :obj:`False`)
        flow (str, optional): ``'source_to_target'`` or ``'target_to_source'``.
            (default: :obj:`'source_to_target'`)
        cosine (bool, optional): Cosine similarity instead of Euclidean distance. (default: :obj:`False`)
        num_workers (int, optional): Passed to PyG's implementation. (default: :obj:`1`)
        batch_size (int, optional): Number of examples, passed to PyG's implementation. (default: :obj:`None`)
        chunk_size (int, optional): Centres per chunk in our implementation. (default: :obj:`None`)
        use_pyg (bool, optional): Call PyG's implementation when pyg-lib is present. (default: :obj:`True`)

    :rtype: :class:`torch.Tensor` ``[2, E]``
    """
    if flow not in ('source_to_target', 'target_to_source'):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f'k must be a non-negative integer, got {k!r}')
    if x.dim() != 2:
        raise ValueError(f'x must be 2-D [N, F], got shape {tuple(x.shape)}')
    if use_pyg and pyg_typing.WITH_KNN:  # pragma: no cover - pyg-lib is not installable here
        from torch_geometric.nn.pool import knn_graph as pyg_knn_graph
        return pyg_knn_graph(x, k, batch, loop, flow, cosine, num_workers, batch_size)

    n = x.size(0)
    if batch is None:
        ptr = [0, n]
    else:
        batch = batch.to(x.device)
        if batch.numel() != n:
            raise ValueError(f'batch has {batch.numel()} entries for {n} nodes')
        if n > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError('batch must be sorted')
        counts = torch.bincount(batch).tolist() if n else []
        ptr = [0]
        for c in counts:
            ptr.append(ptr[-1] + c)

    q_all, key_all = _rank_scores(x, cosine)
    rows, cols = [], []
    for start, end in zip(ptr[:-1], ptr[1:]):
        m = end - start
        kk = min(k, m if loop else m - 1)
        if m == 0 or kk <= 0:
            continue
        keys = key_all[start:end]
        key_sq = keys.pow(2).sum(-1) if not cosine else None
        step = chunk_size or max(1, DEFAULT_CHUNK_BYTES // (4 * m))
        for c0 in range(0, m, step):
            c1 = min(m, c0 + step)
            score = q_all[start + c0:start + c1] @ keys.t()
            if not cosine:  # -|x_i - x_j|^2 up to the per-row constant |x_i|^2
                score = 2 * score - key_sq.view(1, -1)
            if not loop:
                idx = torch.arange(c1 - c0, device=x.device)
                score[idx, idx + c0] = float('-inf')
            nbr = _exact_top_k(score, kk)
            rows.append(torch.arange(start + c0, start + c1, device=x.device).repeat_interleave(kk))
            cols.append(nbr.reshape(-1) + start)
    if not rows:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    centre, neighbour = torch.cat(rows), torch.cat(cols)
    if flow == 'source_to_target':
        return torch.stack([neighbour, centre])
    return torch.stack([centre, neighbour])
