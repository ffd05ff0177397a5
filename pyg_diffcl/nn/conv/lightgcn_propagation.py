from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...ops import BipartiteAdj
from .bipartite_lightgcn_conv import BipartiteLightGCNConv


class LightGCNPropagation(torch.nn.Module):
    r"""Multi-layer LightGCN propagation over a user-item graph with a layer combination, built on
    :class:`BipartiteLightGCNConv` (one call per direction and layer):

    .. math::
        \mathbf{e}_u^{(k+1)} = \sum_{i \in \mathcal{N}_u} \frac{\mathbf{e}_i^{(k)}}{\sqrt{|\mathcal{N}_u|}
        \sqrt{|\mathcal{N}_i|}}, \quad
        \mathbf{e}_i^{(k+1)} = \sum_{u \in \mathcal{N}_i} \frac{\mathbf{e}_u^{(k)}}{\sqrt{|\mathcal{N}_i|}
        \sqrt{|\mathcal{N}_u|}}, \quad
        \mathbf{e} = \sum_{k=0}^{K} \alpha_k \mathbf{e}^{(k)}

    LightGCN averages the layers (:math:`\alpha_k = 1/(K+1)`, :obj:`combine='mean'`); DiffCL's Eq. 4 sums
    them (:math:`\alpha_k = 1`, :obj:`combine='sum'`); explicit weights go in :obj:`alpha`. No parameters.

    Args:
        num_layers (int): :math:`K`.
        combine (str, optional): ``'mean'`` or ``'sum'``. (default: :obj:`'mean'`)
        alpha (Sequence[float], optional): :math:`\alpha_0..\alpha_K`, overriding :obj:`combine`.
            (default: :obj:`None`)
    """
    def __init__(self, num_layers: int, combine: str = 'mean', alpha: Optional[Sequence[float] | Tensor] = None
                 ) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f'num_layers must be non-negative, got {num_layers}')
        if combine not in ('mean', 'sum'):
            raise ValueError(f"combine must be 'mean' or 'sum', got {combine!r}")
        self.num_layers, self.combine = num_layers, combine
        if alpha is None:
            alpha = [1.0 / (num_layers + 1) if combine == 'mean' else 1.0] * (num_layers + 1)
        alpha = torch.as_tensor(alpha, dtype=torch.float)
        if alpha.numel() != num_layers + 1:
            raise ValueError(f'alpha needs num_layers + 1 = {num_layers + 1} values, got {alpha.numel()}')
        self.register_buffer('alpha', alpha)
        # equal weights: sum the layers and scale once (saves 2L elementwise passes, forward and backward)
        self._common = float(alpha[0]) if bool((alpha == alpha[0]).all()) else None
        self.conv = BipartiteLightGCNConv()

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, adj: BipartiteAdj, x_user: Tensor, x_item: Tensor) -> Tuple[Tensor, Tensor]:
        common = self._common

        def weighted(x: Tensor, k: int) -> Tensor:  # equal weights are applied once, after the sum
            return x if common is not None else self.alpha[k] * x

        out_user, out_item = weighted(x_user, 0), weighted(x_item, 0)
        for k in range(1, self.num_layers + 1):
            x_user, x_item = (self.conv((x_item, x_user), adj.item_to_user),
                              self.conv((x_user, x_item), adj.user_to_item))
            out_user = out_user + weighted(x_user, k)
            out_item = out_item + weighted(x_item, k)
        if common is not None and common != 1.0:
            out_user, out_item = out_user * common, out_item * common
        return out_user, out_item

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(num_layers={self.num_layers}, combine={self.combine!r})'
