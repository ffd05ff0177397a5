from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ...ops import Adjacency, BipartiteAdj
from .bipartite_lightgcn_conv import BipartiteLightGCNConv


class ModalityPreference(torch.nn.Module):
    r"""Users' personalised modality preference signals (LD4MRec Eq. 16, the light GCN of MGCN): item
    content features, optionally smoothed over the modality's item-item graph :math:`\hat{\mathbf{S}}`
    (:func:`~pyg_diffcl.ops.item_knn_graph`), then aggregated into each user with the symmetric
    normalisation of the training graph:

    .. math::
        \tilde{\mathbf{F}} = \hat{\mathbf{S}}^{L} \mathbf{F}, \qquad
        \mathbf{p}_u = \sum_{i \in \mathcal{N}_u} \frac{1}{\sqrt{|\mathcal{N}_u|}\sqrt{|\mathcal{N}_i|}}
        \tilde{\mathbf{f}}_i

    Both steps are :class:`BipartiteLightGCNConv` calls on prepared adjacencies (the propagation shared by
    every model). The operator is linear and has no parameters: a learned projection :math:`\mathbf{W}`
    before it equals one after it (:math:`\hat{\mathbf{R}}\hat{\mathbf{S}}^L\mathbf{F}\mathbf{W}`), so a
    model can compute :math:`\mathbf{p}` once and learn on top.

    Args:
        item_layers (int, optional): :math:`L`, item-item smoothing layers (0: raw features; ignored
            without an item graph). (default: :obj:`1`)
    """
    def __init__(self, item_layers: int = 1) -> None:
        super().__init__()
        if item_layers < 0:
            raise ValueError(f'item_layers must be >= 0, got {item_layers}')
        self.item_layers = item_layers
        self.conv = BipartiteLightGCNConv()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def item_features(self, x: Tensor, item_adj: Optional[Adjacency] = None) -> Tensor:
        r""":math:`\tilde{\mathbf{F}} = \hat{\mathbf{S}}^{L} \mathbf{F}`, the item side alone: ``[num_items, F]``."""
        h = x
        if item_adj is not None:
            for _ in range(self.item_layers):
                h = self.conv((h, h), item_adj)
        return h

    def forward(self, x: Tensor, adj: BipartiteAdj, item_adj: Optional[Adjacency] = None) -> Tensor:
        """:obj:`x` ``[num_items, F]`` item features -> ``[num_users, F]``."""
        h = self.item_features(x, item_adj)
        return self.conv((h, h), adj.item_to_user)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(item_layers={self.item_layers})'
