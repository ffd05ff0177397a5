r"""Symmetric normalisation of a bipartite user-item graph through PyG's shared :func:`gcn_norm`."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm


def inv_sqrt_degree(index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`d_v^{-1/2}` for every node :math:`v`, with :math:`d_v` the number of times :math:`v` occurs in
    :obj:`index` and 0 for nodes that never occur: ``[num_nodes]``."""
    deg = torch.bincount(index, minlength=num_nodes).float()
    inv = deg.pow(-0.5)
    inv[deg == 0] = 0.0
    return inv


def bipartite_gcn_norm(edge_index: Tensor, num_users: int, num_items: int,
                       edge_weight: Optional[Tensor] = None) -> Tensor:
    r"""LightGCN's symmetric normalisation of user-item edges,

    .. math::
        w_{ui} = \frac{a_{ui}}{\sqrt{d_u}\sqrt{d_i}}, \qquad d_u = \sum_i a_{ui}, \quad d_i = \sum_u a_{ui},

    i.e. the non-zero entries of :math:`\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` for the
    :math:`(|\mathcal{U}|+|\mathcal{I}|)`-node adjacency :math:`\mathbf{A} = \begin{pmatrix} 0 & \mathbf{R}
    \\ \mathbf{R}^\top & 0 \end{pmatrix}` without self-loops. Computed by PyG's
    :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` (``add_self_loops=False``) on that symmetric graph;
    the same weight serves both directions.

    Args:
        edge_index (Tensor): ``[2, E]`` (user, item) pairs, each once.
        num_users (int): The number of users.
        num_items (int): The number of items.
        edge_weight (Tensor, optional): :math:`a_{ui}`, ones when :obj:`None`. (default: :obj:`None`)

    Returns:
        Tensor: ``[E]`` weights, in the order of :obj:`edge_index`.
    """
    num_edges = edge_index.size(1)
    user, item = edge_index[0], edge_index[1] + num_users
    sym = torch.stack([torch.cat([user, item]), torch.cat([item, user])])
    w = None if edge_weight is None else torch.cat([edge_weight, edge_weight])
    _, w = gcn_norm(sym, w, num_nodes=num_users + num_items, add_self_loops=False)
    return w[:num_edges]
