r"""FREEDOM's degree-sensitive pruning of the user-item graph."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .norm import bipartite_gcn_norm


def degree_sensitive_edge_pruning(edge_index: Tensor, num_users: int, num_items: int, p: float,
                                  generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Drop a fraction :obj:`p` of the user-item edges, keeping each with a probability that favours edges
    between low-degree nodes, from the `"A Tale of Two Graphs: Freezing and Denoising Graph Structures for
    Multimodal Recommendation" <https://arxiv.org/abs/2211.06924>`_ paper (FREEDOM, Sec. 3.2): the
    :math:`\lfloor (1 - p) |\mathcal{E}| \rfloor` kept edges are drawn without replacement with probabilities

    .. math::
        p_{ui} \propto \frac{1}{\sqrt{d_u}\sqrt{d_i}},

    the edge's weight in the symmetrically normalised graph (as the official code samples
    ``torch.multinomial`` over those values). The caller normalises the kept graph anew (for example
    :class:`~pyg_diffcl.ops.BipartiteAdj` of the returned edges).

    Args:
        edge_index (Tensor): ``[2, E]`` (user, item) pairs.
        num_users (int): The number of users.
        num_items (int): The number of items.
        p (float): The fraction of edges to drop, in :math:`[0, 1)`.
        generator (torch.Generator, optional): The random generator (CPU). (default: :obj:`None`)

    Returns:
        Tensor: The kept ``[2, E']`` pairs, in the order drawn.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f'p: must be in [0, 1), got {p}')
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f'edge_index: expected [2, E], got {tuple(edge_index.shape)}')
    if p == 0.0 or edge_index.size(1) == 0:
        return edge_index
    weight = bipartite_gcn_norm(edge_index, num_users, num_items).cpu()
    keep = int(edge_index.size(1) * (1.0 - p))
    if keep == 0:
        return edge_index[:, :0]
    idx = torch.multinomial(weight, keep, replacement=False, generator=generator)
    return edge_index[:, idx.to(edge_index.device)]
