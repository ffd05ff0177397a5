from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..datasets.sampler import BPRBatch
from ..nn import BipartiteLightGCNConv, BPRLoss
from ..ops import BipartiteAdj
from .base import Recommender


@dataclass
class LightGCNConfig:
    """Hyper-parameters of :class:`LightGCN`."""
    embedding_dim: int = 64
    num_layers: int = 2
    reg_weight: float = 1e-4
    #: Layer-combination weights :math:`\alpha_k` (``num_layers + 1`` values); :obj:`None`: uniform.
    alpha: Optional[List[float]] = None


class LightGCN(Recommender):
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

    trained with :class:`~pyg_diffcl.nn.BPRLoss`, whose L2 term acts on the layer-0 embeddings of the batch.
    Each propagation step is a :class:`~pyg_diffcl.nn.BipartiteLightGCNConv`.

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
        super().__init__(num_users, num_items)
        if num_layers < 0:
            raise ValueError(f'num_layers must be non-negative, got {num_layers}')
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        if alpha is None:
            alpha = [1.0 / (num_layers + 1)] * (num_layers + 1)
        alpha = torch.as_tensor(alpha, dtype=torch.float)
        if alpha.numel() != num_layers + 1:
            raise ValueError(f'alpha needs num_layers + 1 = {num_layers + 1} values, got {alpha.numel()}')
        self.register_buffer('alpha', alpha)
        self.user_emb = torch.nn.Embedding(num_users, embedding_dim)
        self.item_emb = torch.nn.Embedding(num_items, embedding_dim)
        self.conv = BipartiteLightGCNConv()
        self.criterion = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: LightGCNConfig, num_users: int, num_items: int,
                    features: Dict[str, Tensor]) -> 'LightGCN':
        return cls(num_users, num_items, config.embedding_dim, config.num_layers, config.reg_weight,
                   config.alpha)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.user_emb.weight)
        torch.nn.init.xavier_uniform_(self.item_emb.weight)
        self.conv.reset_parameters()

    def propagate(self, adj: BipartiteAdj, x_user: Tensor, x_item: Tensor) -> Tuple[Tensor, Tensor]:
        r"""The layer combination :math:`\sum_k \alpha_k \mathbf{e}^{(k)}` for given layer-0 embeddings."""
        out_user, out_item = x_user * self.alpha[0], x_item * self.alpha[0]
        for k in range(1, self.num_layers + 1):
            x_user, x_item = (self.conv((x_item, x_user), adj.item_to_user),
                              self.conv((x_user, x_item), adj.user_to_item))
            out_user = out_user + self.alpha[k] * x_user
            out_item = out_item + self.alpha[k] * x_item
        return out_user, out_item

    def get_embedding(self, adj: BipartiteAdj) -> Tuple[Tensor, Tensor]:
        return self.propagate(adj, self.user_emb.weight, self.item_emb.weight)

    def loss(self, adj: BipartiteAdj, batch: BPRBatch) -> Tensor:
        user_out, item_out = self.get_embedding(adj)
        u, i, j = user_out[batch.user], item_out[batch.pos_item], item_out[batch.neg_item]
        reg = (self.user_emb(batch.user), self.item_emb(batch.pos_item), self.item_emb(batch.neg_item))
        return self.criterion((u * i).sum(-1), (u * j).sum(-1), reg)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.embedding_dim}, num_layers={self.num_layers}, '
                f'reg_weight={self.criterion.reg_weight})')
