r"""The modality item-item graph of DiffCL (Eq. 18-21), FREEDOM and MENTOR."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from .knn import knn_graph
from .norm import inv_sqrt_degree


def item_knn_graph(x: Tensor, k: int = 10, loop: bool = True, chunk_size: int | None = None,
                   method: str = 'auto') -> Tuple[Tensor, Tensor]:
    r"""The normalised top-:math:`K` cosine item-item graph of one modality's raw features:

    .. math::
        S_{ij} = \frac{\mathbf{f}_i^\top \mathbf{f}_j}{\|\mathbf{f}_i\|\|\mathbf{f}_j\|}, \quad
        \tilde{S}_{ij} = [\, j \in \mathrm{top}\text{-}K_j(S_{i,:}) \,], \quad
        \hat{\mathbf{S}} = \mathbf{D}^{-1/2} \tilde{\mathbf{S}} \mathbf{D}^{-1/2}, \quad
        D_{ii} = \sum_j \tilde{S}_{ij}

    (Eq. 18-21). The top-:math:`K` of row :math:`i` includes :math:`i` itself when :obj:`loop` (the
    convention of FREEDOM and MENTOR, whose full-row top-:math:`K` always contains the diagonal); the graph
    is directed (not symmetrised) and binarised, so every row has :math:`K` entries and
    :math:`\hat{S}_{ij} = 1/K`. Ties are broken by the smaller item index (:func:`knn_graph`). The
    neighbours are exact, or approximate from :data:`~pyg_diffcl.ops.ann.APPROX_MIN_NODES` items on when
    faiss is installed (:obj:`method`, as :func:`knn_graph`'s: ``'auto'``, ``'exact'`` or ``'faiss'``).

    Returns:
        ``(edge_index, edge_weight)``: ``edge_index[0]`` the row (centre) item :math:`i`, ``edge_index[1]``
        the neighbour :math:`j`, i.e. the (destination, source) layout of :class:`~pyg_diffcl.ops.Adjacency`.
    """
    n = x.size(0)
    ei = knn_graph(x.float(), k, loop=loop, cosine=True, chunk_size=chunk_size, method=method)
    centre, nbr = ei[1], ei[0]
    inv = inv_sqrt_degree(centre, n)
    return torch.stack([centre, nbr]), inv[centre] * inv[nbr]


def weighted_graph_sum(graphs: Sequence[Tuple[Tensor, Tensor]], weights: Sequence[float], num_nodes: int
                       ) -> Tuple[Tensor, Tensor]:
    r""":math:`\sum_m w_m \hat{\mathbf{S}}_m` of graphs given as ``(edge_index, edge_weight)`` on the same
    :obj:`num_nodes` nodes, as one coalesced ``(edge_index, edge_weight)`` (an entry present in several
    graphs gets the sum). FREEDOM's frozen multimodal item graph is this sum of the modalities' normalised
    k-NN graphs (:func:`item_knn_graph`) with weights that add up to one."""
    if len(graphs) != len(weights) or not graphs:
        raise ValueError(f'weights: one per graph, got {len(weights)} for {len(graphs)} graphs')
    index = torch.cat([ei for ei, _ in graphs], dim=1)
    value = torch.cat([float(w) * ew for (_, ew), w in zip(graphs, weights)])
    key = index[0] * num_nodes + index[1]
    uniq, inverse = torch.unique(key, return_inverse=True)
    summed = value.new_zeros(uniq.numel()).index_add_(0, inverse, value)
    return torch.stack([uniq // num_nodes, uniq % num_nodes]), summed
