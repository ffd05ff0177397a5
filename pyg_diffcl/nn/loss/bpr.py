from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class BPRLoss(torch.nn.Module):
    r"""Bayesian personalised ranking loss with L2 regularisation of the batch's input embeddings, from the
    `"BPR: Bayesian Personalized Ranking from Implicit Feedback" <https://arxiv.org/abs/1205.2618>`_ paper,
    averaged over the :math:`B` triples :math:`(u, i, j)` of a batch as in LightGCN's reference code:

    .. math::
        \mathcal{L} = -\frac{1}{B} \sum_{(u,i,j)} \ln \sigma(\hat{y}_{ui} - \hat{y}_{uj})
        + \frac{\lambda}{2B} \sum_{(u,i,j)} \left( \|\mathbf{e}_u^{(0)}\|^2 + \|\mathbf{e}_i^{(0)}\|^2
        + \|\mathbf{e}_j^{(0)}\|^2 \right)

    Args:
        reg_weight (float, optional): :math:`\lambda`. (default: :obj:`0.0`)
    """
    def __init__(self, reg_weight: float = 0.0) -> None:
        super().__init__()
        if reg_weight < 0:
            raise ValueError(f'reg_weight must be non-negative, got {reg_weight}')
        self.reg_weight = reg_weight

    def forward(self, pos_score: Tensor, neg_score: Tensor, reg_params: Sequence[Tensor] = ()) -> Tensor:
        r"""
        Args:
            pos_score (Tensor): :math:`\hat{y}_{ui}`, shape ``[B]``.
            neg_score (Tensor): :math:`\hat{y}_{uj}`, shape ``[B]``.
            reg_params (Sequence[Tensor]): The ``[B, d]`` embeddings to regularise. (default: ``()``)
        """
        loss = -F.logsigmoid(pos_score - neg_score).mean()
        if self.reg_weight > 0 and len(reg_params) > 0:
            sq = sum(p.pow(2).sum() for p in reg_params)
            loss = loss + self.reg_weight * sq / (2 * pos_score.numel())
        return loss

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(reg_weight={self.reg_weight})'
