r"""Exact k-nearest-neighbour graphs with PyG's :func:`~torch_geometric.nn.pool.knn_graph` signature."""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor
import torch_geometric.typing as pyg_typing

#: Bumped whenever the neighbours chosen for the same input can change (cached item graphs carry it). 2: ties
#: within float32 rounding resolved by float64 re-scoring.
KNN_VERSION = 2

#: The search methods of :func:`knn_graph`.
KNN_METHODS = ('exact', 'faiss', 'auto')

#: Default memory budget of one chunk of the similarity matrix, in bytes.
DEFAULT_CHUNK_BYTES = 256 * 2**20


def _rank_scores(x: Tensor, cosine: bool) -> tuple[Tensor, Tensor]:
    """(query side, key side) such that larger ``q @ k.T`` means nearer (up to a per-query constant)."""
    x = x.float() if not x.is_floating_point() or x.dtype == torch.float16 else x
    if cosine:
        xn = torch.nn.functional.normalize(x, p=2.0, dim=-1)
        return xn, xn
    return x, x


#: Pairs per float64 re-scoring batch (bounds the memory of :func:`_pair_scores`).
_REFINE_ELEMENTS = 1 << 22


def _pair_scores(x: Tensor, rows: Tensor, cols: Tensor, cosine: bool) -> Tensor:
    """Similarities of the pairs ``(rows[p], cols[p])`` of rows of :obj:`x`, recomputed in float64 from the
    original features (cosine of a zero vector: 0)."""
    out = torch.empty(rows.numel(), dtype=torch.float64, device=x.device)
    step = max(1, _REFINE_ELEMENTS // max(1, x.size(1)))
    for s in range(0, rows.numel(), step):
        a, b = x[rows[s:s + step]].double(), x[cols[s:s + step]].double()
        if cosine:
            na, nb = a.norm(dim=-1), b.norm(dim=-1)
            dot = (a * b).sum(-1)
            out[s:s + step] = torch.where((na > 0) & (nb > 0), dot / (na * nb).clamp_min(1e-300),
                                          torch.zeros_like(dot))
        else:
            out[s:s + step] = -(a - b).pow(2).sum(-1)
    return out


def _lexsort_desc(group: Tensor, value: Tensor, col: Tensor) -> Tensor:
    """The permutation ordering entries by group (ascending), value (descending), column (ascending)."""
    order = torch.argsort(col, stable=True)
    order = order[torch.argsort(value[order], descending=True, stable=True)]
    return order[torch.argsort(group[order], stable=True)]


def _exact_top_k(score: Tensor, k: int, tol: Tensor, refine: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    r"""Column indices of the :obj:`k` most similar entries of each row, in order (most similar first, ties
    broken by the smaller column index), exact although :obj:`score` is float32.

    :obj:`score` may be off by rounding (a kernel can round the same exact similarity differently at two
    positions of a chunk; nearly equal similarities can swap). So one :func:`torch.topk` pass keeps every
    entry above the row's :math:`k`-th value by more than :obj:`tol` (a bound on the rounding error), and
    where other entries lie within :obj:`tol` of the :math:`k`-th value, those candidates are re-scored in
    float64 from the original features (:obj:`refine`, given row and column indices) and taken by (exact
    value, index). The selected :math:`k` are ordered by similarity, values within :obj:`tol` of the one
    before counting as equal and going by index."""
    n_rows = score.size(0)
    if k == 0:
        return score.new_zeros(n_rows, 0, dtype=torch.long)
    vals, cols = score.topk(k, dim=1)
    kth = vals[:, -1:]
    ambiguous = ((score >= kth - tol).sum(dim=1) > k).nonzero().view(-1)
    if ambiguous.numel():
        sub, sub_kth, sub_tol = score[ambiguous], kth[ambiguous], tol[ambiguous]
        sure = sub > sub_kth + sub_tol
        r, c = ((sub >= sub_kth - sub_tol) & ~sure).nonzero(as_tuple=True)
        order = _lexsort_desc(r, refine(ambiguous[r], c), c)
        r, c = r[order], c[order]
        first = torch.searchsorted(r, torch.arange(ambiguous.numel(), device=r.device))
        rank = torch.arange(r.numel(), device=r.device) - first[r]
        need = k - sure.sum(dim=1)
        take = rank < need[r]
        sure[r[take], c[take]] = True
        cols[ambiguous] = sure.nonzero()[:, 1].view(-1, k)
    # Order by value, most similar first; values within the tolerance of their predecessor form one group,
    # ordered by column (so the order, too, is free of rounding).
    cols = cols.sort(dim=1).values
    val = score.gather(1, cols)
    order = torch.sort(val, dim=1, descending=True, stable=True).indices
    val, cols = val.gather(1, order), cols.gather(1, order)
    gap = (val[:, :-1] - val[:, 1:]) > tol
    group = torch.cat([gap.new_zeros(n_rows, 1), gap], dim=1).long().cumsum(dim=1)
    return cols.gather(1, (group * (score.size(1) + 1) + cols).argsort(dim=1))


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
    method: str = 'exact',
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
    normalise (cosine), one float32 matrix product per chunk of centres, a top-:math:`k`, and a float64
    re-scoring from the original features of the candidates whose float32 scores are too close to the
    :math:`k`-th to be told apart by rounding: the neighbours are the exact ones, ties broken by the smaller
    index, ordered by similarity (similarities within the rounding bound of each other count as equal and
    go by index), so the graph does not depend on the kernel, the chunking or the float32 rounding.
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
        method (str, optional): ``'exact'`` (the search above), ``'faiss'`` (approximate, an inverted-file
            index on faiss: :func:`~pyg_diffcl.ops.ann.faiss_knn`; needs the ``faiss`` extra) or ``'auto'``
            (faiss for examples of at least :data:`~pyg_diffcl.ops.ann.APPROX_MIN_NODES` nodes when faiss is
            installed, exact otherwise). (default: :obj:`'exact'`)

    :rtype: :class:`torch.Tensor` ``[2, E]``
    """
    if flow not in ('source_to_target', 'target_to_source'):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f'k must be a non-negative integer, got {k!r}')
    if x.dim() != 2:
        raise ValueError(f'x must be 2-D [N, F], got shape {tuple(x.shape)}')
    if method not in KNN_METHODS:
        raise ValueError(f'method: expected one of {KNN_METHODS}, got {method!r}')
    if method == 'faiss':
        from .ann import faiss_available
        if not faiss_available():
            raise ValueError("method: 'faiss' needs the faiss package (pip install pyg-diffcl[faiss], or "
                             "faiss-cpu); use method='exact'")
    if method != 'exact' and x.device.type != 'cpu':
        raise ValueError(f"method: {method!r} runs on CPU tensors (faiss-cpu); got {x.device}; use 'exact'")
    if method == 'exact' and use_pyg and pyg_typing.WITH_KNN:  # pragma: no cover - pyg-lib is not installable
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

    if method != 'exact':
        from .ann import effective_method, faiss_knn
        spans = list(zip(ptr[:-1], ptr[1:]))
        approx = [effective_method(method, end - start) == 'faiss' for start, end in spans]
        if any(approx):  # per example: faiss where chosen, the exact search elsewhere
            rows, cols = [], []
            for (start, end), fast in zip(spans, approx):
                if fast:
                    nbr = faiss_knn(x[start:end], k, loop, cosine)
                else:
                    ei = knn_graph(x[start:end], k, None, loop, 'target_to_source', cosine, chunk_size=chunk_size,
                                   use_pyg=use_pyg)
                    nbr = ei[1].view(end - start, -1) if end > start else ei[1].view(0, 0)
                rows.append(torch.arange(start, end).repeat_interleave(nbr.size(1)))
                cols.append(nbr.reshape(-1) + start)
            centre, neighbour = torch.cat(rows), torch.cat(cols)
            return torch.stack([neighbour, centre] if flow == 'source_to_target' else [centre, neighbour])

    q_all, key_all = _rank_scores(x, cosine)
    # rounding bound of a float32 score: |s~ - s| <= ~ sqrt(F) eps |q||k| (cosine: |q| = |k| = 1), with margin
    eps = 8 * torch.finfo(torch.float32).eps * math.sqrt(max(1, x.size(1)))
    rows, cols = [], []
    for start, end in zip(ptr[:-1], ptr[1:]):
        m = end - start
        kk = min(k, m if loop else m - 1)
        if m == 0 or kk <= 0:
            continue
        keys = key_all[start:end]
        key_sq = keys.pow(2).sum(-1) if not cosine else None
        xs = x[start:end]
        k_norm = 1.0 if cosine else float(keys.norm(dim=-1).max())
        step = chunk_size or max(1, DEFAULT_CHUNK_BYTES // (4 * m))
        for c0 in range(0, m, step):
            c1 = min(m, c0 + step)
            score = q_all[start + c0:start + c1] @ keys.t()
            if not cosine:  # -|x_i - x_j|^2 up to the per-row constant |x_i|^2
                score = 2 * score - key_sq.view(1, -1)
            if not loop:
                idx = torch.arange(c1 - c0, device=x.device)
                score[idx, idx + c0] = float('-inf')
            if cosine:
                tol = score.new_full((c1 - c0, 1), eps)
            else:
                q_norm = q_all[start + c0:start + c1].norm(dim=-1, keepdim=True)
                tol = eps * (2 * q_norm * k_norm + k_norm ** 2).clamp_min(1.0)
            nbr = _exact_top_k(score, kk, tol,
                               lambda r, c, c0=c0: _pair_scores(xs, r + c0, c, cosine))
            rows.append(torch.arange(start + c0, start + c1, device=x.device).repeat_interleave(kk))
            cols.append(nbr.reshape(-1) + start)
    if not rows:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    centre, neighbour = torch.cat(rows), torch.cat(cols)
    if flow == 'source_to_target':
        return torch.stack([neighbour, centre])
    return torch.stack([centre, neighbour])
