from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

from torch import Tensor
from torch_geometric.typing import Adj

from ..checks import Validated, check_non_negative, check_positive
from ..nn import LightGCNPropagation
from ..ops import BipartiteAdj
from .mf import MF


@dataclass
class LightGCNConfig(Validated):
    """Hyper-parameters of :class:`LightGCN`."""
    embedding_dim: int = 64
    num_layers: int = 2
    reg_weight: float = 1e-4
    #: Layer-combination weights :math:`\alpha_k` (``num_layers + 1`` values); :obj:`None`: uniform.
    alpha: Optional[List[float]] = None


    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('num_layers', self.num_layers)
        check_non_negative('reg_weight', self.reg_weight)
        if self.alpha is not None and len(self.alpha) != self.num_layers + 1:
            raise ValueError(f'alpha: needs num_layers + 1 = {self.num_layers + 1} values, got {len(self.alpha)}')

class LightGCN(MF):
    r"""LightGCN on a user-item graph, from the `"LightGCN: Simplifying and Powering Graph Convolution
    Network for Recommendation" <https://arxiv.org/abs/2002.02126>`_ paper, with users and items numbered
    separately:

    .. math::
        \mathbf{e}_u^{(k+1)} = \sum_{i \in \mathcal{N}_u} \frac{\mathbf{e}_i^{(k)}}{\sqrt{|\mathcal{N}_u|}
        \sqrt{|\mathcal{N}_i|}}, \quad
        \mathbf{e}_i^{(k+1)} = \sum_{u \in \mathcal{N}_i} \frac{\mathbf{e}_u^{(k)}}{\sqrt{|\mathcal{N}_i|}
        \sqrt{|\mathcal{N}_u|}}, \quad
        \mathbf{e}_u = \sum_{k=0}^{K} \alpha_k \mathbf{e}_u^{(k)}, \quad
        \hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i

    trained with :class:`~pyg_diffcl.nn.BPRLoss`, whose L2 term acts on the layer-0 embeddings of the batch
    (:class:`MF`'s loss on the propagated embeddings). The propagation is
    :class:`~pyg_diffcl.nn.LightGCNPropagation` (the layers shared by every model).

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        num_layers (int, optional): :math:`K`. (default: :obj:`2`)
        reg_weight (float, optional): :math:`\lambda` of the BPR loss. (default: :obj:`1e-4`)
        alpha (Sequence[float] or Tensor, optional): :math:`\alpha_0..\alpha_K`; :obj:`None` gives
            :math:`1/(K+1)` each, as in the paper and in PyG's
            :class:`~torch_geometric.nn.models.LightGCN`. (default: :obj:`None`)
    """
    config_cls = LightGCNConfig

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 2,
                 reg_weight: float = 1e-4, alpha: Optional[Sequence[float] | Tensor] = None) -> None:
        self.num_layers = num_layers
        propagation = LightGCNPropagation(num_layers, 'mean', alpha)
        super().__init__(num_users, num_items, embedding_dim, reg_weight)
        self.propagation = propagation

    @classmethod
    def from_config(cls, config: LightGCNConfig, dataset: Any) -> 'LightGCN':
        return cls(dataset.num_users, dataset.num_items, config.embedding_dim, config.num_layers,
                   config.reg_weight, config.alpha)

    def get_embedding(self, adj: Union[Adj, BipartiteAdj]) -> Tuple[Tensor, Tensor]:
        return self.propagation(self.prepare_adj(adj), self.user_emb.weight, self.item_emb.weight)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.embedding_dim}, num_layers={self.num_layers}, '
                f'reg_weight={self.criterion.reg_weight})')
