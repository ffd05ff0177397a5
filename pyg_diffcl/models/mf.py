from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from ..checks import Validated, check_non_negative, check_positive
from ..datasets.sampler import BPRBatch
from ..nn import BPRLoss
from ..ops import BipartiteAdj
from .base import Recommender


@dataclass
class MFConfig(Validated):
    """Hyper-parameters of :class:`MF`."""
    embedding_dim: int = 64
    reg_weight: float = 1e-4


    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('reg_weight', self.reg_weight)

class MF(Recommender):
    r"""Matrix factorisation trained with BPR, from the `"BPR: Bayesian Personalized Ranking from Implicit
    Feedback" <https://arxiv.org/abs/1205.2618>`_ paper: :math:`\hat{y}_{ui} = \mathbf{e}_u^\top
    \mathbf{e}_i`, loss :class:`~pyg_diffcl.nn.BPRLoss` with its L2 term on the batch's embeddings. The graph
    is not used. Subclasses that transform the embedding tables (:class:`~pyg_diffcl.models.LightGCN`)
    override :meth:`get_embedding` only.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        embedding_dim (int, optional): :math:`d`. (default: :obj:`64`)
        reg_weight (float, optional): :math:`\lambda` of :class:`~pyg_diffcl.nn.BPRLoss`.
            (default: :obj:`1e-4`)
    """
    config_cls = MFConfig

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64,
                 reg_weight: float = 1e-4) -> None:
        super().__init__(num_users, num_items)
        self.embedding_dim = embedding_dim
        self.user_emb = torch.nn.Embedding(num_users, embedding_dim)
        self.item_emb = torch.nn.Embedding(num_items, embedding_dim)
        self.criterion = BPRLoss(reg_weight)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: MFConfig, dataset: Any) -> 'MF':
        return cls(dataset.num_users, dataset.num_items, config.embedding_dim, config.reg_weight)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.user_emb.weight)
        torch.nn.init.xavier_uniform_(self.item_emb.weight)

    def get_embedding(self, adj: Optional[BipartiteAdj] = None) -> Tuple[Tensor, Tensor]:
        return self.user_emb.weight, self.item_emb.weight

    def loss(self, adj: Optional[BipartiteAdj], batch: BPRBatch) -> Tensor:
        """BPR on the final embeddings; the L2 term acts on the layer-0 (table) embeddings of the batch."""
        return self.bpr(*self.get_embedding(adj), batch)

    def bpr(self, user_out: Tensor, item_out: Tensor, batch: Any, user_ids: Optional[Tensor] = None,
            item_ids: Optional[Tensor] = None) -> Tensor:
        """:class:`~pyg_diffcl.nn.BPRLoss` of the batch's triples on the rows ``batch.user``, ``batch.pos_item``
        and ``batch.neg_item`` of :obj:`user_out` / :obj:`item_out`, with the L2 term on the table rows of the
        same nodes: :obj:`user_ids` / :obj:`item_ids` map those rows to table ids (a subgraph's ``n_id``; the
        rows are the ids when :obj:`None`)."""
        u, i, j = user_out[batch.user], item_out[batch.pos_item], item_out[batch.neg_item]
        users = batch.user if user_ids is None else user_ids[batch.user]
        pos = batch.pos_item if item_ids is None else item_ids[batch.pos_item]
        neg = batch.neg_item if item_ids is None else item_ids[batch.neg_item]
        reg = (self.user_emb(users), self.item_emb(pos), self.item_emb(neg))
        return self.criterion((u * i).sum(-1), (u * j).sum(-1), reg)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.embedding_dim}, reg_weight={self.criterion.reg_weight})')
