r"""Approximate :math:`k`-nearest neighbours on faiss (an optional extra: ``pip install pyg-diffcl[faiss]``),
for item graphs of catalogues where the exact all-pairs search of :func:`~pyg_diffcl.ops.knn_graph` is too
slow (it is quadratic in the items)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

#: ``method='auto'`` of :func:`~pyg_diffcl.ops.knn_graph` switches from the exact search to faiss (when it is
#: installed) at this many nodes in one example; ``benchmarks/knn.py`` measures both sides of it.
APPROX_MIN_NODES = 100_000


def effective_method(method: str, num_nodes: int) -> str:
    """What :func:`~pyg_diffcl.ops.knn_graph`'s :obj:`method` comes to for an example of :obj:`num_nodes`
    nodes: ``'faiss'`` or ``'exact'`` (``'auto'``: faiss from :data:`APPROX_MIN_NODES` nodes on, when
    installed)."""
    if method == 'auto':
        return 'faiss' if num_nodes >= APPROX_MIN_NODES and faiss_available() else 'exact'
    return method


def faiss_available() -> bool:
    """Whether the faiss package can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def ivf_parameters(n: int, nlist: Optional[int] = None, nprobe: Optional[int] = None) -> Tuple[int, int]:
    r"""The number of clusters (faiss' inverted lists) and of clusters searched per item:
    :math:`\min(\lceil 4\sqrt{n}\rceil, \lfloor n/39 \rfloor)` clusters by default (faiss' guideline is
    :math:`4\sqrt{n}` to :math:`16\sqrt{n}`, and its k-means asks for at least 39 training rows per
    cluster), and :math:`\max(16, \text{clusters}/32)` searched per item, about 3 % of the items. On
    planted features (50,000 x 1,024, noise 2; k-means of 25 rounds on 64 rows per cluster) 4 and 2
    :math:`\sqrt{n}` clusters gave recall@10 0.995 and 0.89."""
    nlist = int(nlist) if nlist is not None else max(1, min(math.ceil(4 * math.sqrt(n)), n // 39))
    nprobe = int(nprobe) if nprobe is not None else max(16, nlist // 32)
    if nlist < 1 or nprobe < 1:
        raise ValueError(f'nlist, nprobe: expected positive values, got {nlist}, {nprobe}')
    return nlist, min(nprobe, nlist)


def faiss_knn(x: Tensor, k: int, loop: bool = False, cosine: bool = False, nlist: Optional[int] = None,
              nprobe: Optional[int] = None, seed: int = 0, niter: int = 10, train_per_list: int = 40) -> Tensor:
    r"""The :math:`k` approximate nearest rows of every row of :obj:`x` (``[N, k]`` column indices, nearest
    first): an inverted-file search, clustered by faiss and joined by blocks of matrix products.

    1. faiss' k-means (``faiss.Kmeans``: :obj:`niter` rounds on a seeded sample of at most
       :obj:`train_per_list` :math:`\cdot` :obj:`nlist` rows; unit rows and inner products for
       :obj:`cosine`) gives :obj:`nlist` centroids, every
       row joins the cluster of its nearest centroid, and every row, as a query, probes the :obj:`nprobe`
       clusters whose centroids are nearest to it (faiss' flat search for both).
    2. Cluster by cluster, the queries that probe it are scored against its rows in one matrix product
       (rows sorted by cluster, so each cluster is a contiguous block read once), and each query's running
       top-:math:`k` is merged with the cluster's best (:func:`ivf_parameters` for the defaults).

    This is what faiss' ``IndexIVFFlat`` computes, about :math:`N^2 d \cdot \text{nprobe}/\text{nlist}`
    multiply-adds, a few per cent of the exact search's :math:`N^2 d`; but ``IndexIVFFlat.search`` scores one
    query at a time, re-reading every probed cluster for every query, which at thousands of dimensions is
    bound by memory traffic and was hardly faster than the exact search here, while one product per cluster
    reads each cluster once. A row misses a true neighbour that lies in a cluster it does not probe;
    ``benchmarks/knn.py`` measures the recall. A query whose probed clusters hold fewer than :math:`k`
    candidates gets the rest from an exact search over all rows. faiss runs on torch's thread count (its own
    OpenMP setting is restored after).

    Raises:
        ImportError: faiss is not installed.
    """
    import faiss
    import numpy as np
    n, dim = x.shape
    kk = min(k, n if loop else n - 1)
    if kk <= 0:
        return torch.empty(n, 0, dtype=torch.long)
    xs = x.detach().float().cpu()
    if cosine:
        xs = torch.nn.functional.normalize(xs, dim=1)
    xs = xs.contiguous()
    nlist, nprobe = ivf_parameters(n, nlist, nprobe)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        data = xs.numpy()
        sample = min(n, train_per_list * nlist)
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False)) if sample < n \
            else np.arange(n)
        km = faiss.Kmeans(dim, nlist, niter=niter, seed=seed, spherical=cosine, verbose=False,
                          max_points_per_centroid=train_per_list)
        km.train(np.ascontiguousarray(data[rows]))
        index = faiss.IndexFlatIP(dim) if cosine else faiss.IndexFlatL2(dim)
        index.add(km.centroids)
        _, probes = index.search(data, min(nprobe, nlist))  # nearest first: the first is the row's cluster
    finally:
        faiss.omp_set_num_threads(threads)
    probes = torch.from_numpy(probes).long()
    assign = probes[:, 0].clone()
    order = torch.argsort(assign, stable=True)
    sorted_x = xs[order]
    counts = torch.bincount(assign, minlength=nlist)
    offsets = torch.zeros(nlist + 1, dtype=torch.long)
    offsets[1:] = counts.cumsum(0)
    key_sq = sorted_x.pow(2).sum(1) if not cosine else None
    best_val = torch.full((n, kk), float('-inf'))
    best_idx = torch.full((n, kk), -1, dtype=torch.long)  # positions in sorted order
    # the queries of each cluster: (query, cluster) pairs of the probes, grouped by cluster
    flat = probes.reshape(-1)
    valid = flat >= 0
    q_of = torch.arange(n).repeat_interleave(probes.size(1))[valid]
    c_of = flat[valid]
    by_cluster = torch.argsort(c_of, stable=True)
    q_of, c_of = q_of[by_cluster], c_of[by_cluster]
    q_offsets = torch.zeros(nlist + 1, dtype=torch.long)
    q_offsets[1:] = torch.bincount(c_of, minlength=nlist).cumsum(0)
    for c in range(nlist):
        lo, hi = int(offsets[c]), int(offsets[c + 1])
        queries = q_of[int(q_offsets[c]):int(q_offsets[c + 1])]
        if hi == lo or not queries.numel():
            continue
        score = xs[queries] @ sorted_x[lo:hi].t()
        if not cosine:
            score.mul_(2).sub_(key_sq[lo:hi].view(1, -1))
        if not loop:  # a query never finds itself
            self_pos = torch.nonzero(order[lo:hi].view(1, -1) == queries.view(-1, 1))
            score[self_pos[:, 0], self_pos[:, 1]] = float('-inf')
        top = min(kk, hi - lo)
        val, pos = score.topk(top, dim=1)
        merged_val = torch.cat([best_val[queries], val], 1)
        merged_idx = torch.cat([best_idx[queries], pos + lo], 1)
        keep = merged_val.topk(kk, dim=1).indices
        best_val[queries] = merged_val.gather(1, keep)
        best_idx[queries] = merged_idx.gather(1, keep)
    found = torch.where(best_idx >= 0, order[best_idx.clamp(min=0)], best_idx)
    found[torch.isinf(best_val) & (best_val < 0)] = -1
    short = (found < 0).any(1).nonzero().flatten()
    if short.numel():  # too few candidates in the probed clusters: exact for those rows
        score = xs[short] @ xs.t() if cosine else 2 * xs[short] @ xs.t() - xs.pow(2).sum(1).view(1, -1)
        if not loop:
            score[torch.arange(short.numel()), short] = float('-inf')
        found[short] = score.topk(kk, dim=1).indices
    return found
