from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from ..checks import Validated, check_choice, check_non_negative, check_positive
from ..datasets.sampler import BPRBatch
from ..nn import BPRLoss
from ..ops.features import FEATURE_NORMS, prepare_features
from .base import Recommender, dataset_inputs, modality_inputs

#: How :class:`VBPR` regularises the batch's embeddings (see its docstring).
REG_TYPES = ('norm', 'l2')


@dataclass
class VBPRConfig(Validated):
    """Hyper-parameters of :class:`VBPR` (see its docstring for each symbol)."""
    embedding_dim: int = 64
    #: The regularisation weight (MMRec's grid: 2.0, 1.0, 0.1, 1e-2, 1e-3, 1e-4, 1e-5).
    reg_weight: float = 1e-3
    #: ``'norm'`` (MMRec's: the sum of L2 norms over the batch size) or ``'l2'`` (half squared norms, BPR's).
    reg_type: str = 'norm'
    #: Add the paper's item bias and visual bias terms.
    biases: bool = False
    #: Normalisation of the concatenated features (:func:`~pyg_diffcl.ops.prepare_features`); MMRec: none.
    feature_norm: str = 'none'

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('reg_weight', self.reg_weight)
        check_choice('reg_type', self.reg_type, REG_TYPES)
        check_choice('feature_norm', self.feature_norm, FEATURE_NORMS)


class VBPR(Recommender):
    r"""VBPR, from the `"VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback"
    <https://arxiv.org/abs/1510.01784>`_ paper (He and McAuley, AAAI 2016): matrix factorisation whose item
    factors carry a learned projection of the item's content features,

    .. math::
        \hat{y}_{ui} = \boldsymbol{\gamma}_u^\top \boldsymbol{\gamma}_i
        + \boldsymbol{\theta}_u^\top \mathbf{E}\mathbf{f}_i \;\big[+\, \beta_i
        + \boldsymbol{\beta}'^\top \mathbf{f}_i\big]
        = [\boldsymbol{\gamma}_u ; \boldsymbol{\theta}_u]^\top [\boldsymbol{\gamma}_i ; \mathbf{E}\mathbf{f}_i]

    (Eq. 3; the global and user biases cancel in the pairwise loss). :math:`\mathbf{f}_i` is the
    concatenation of every modality's features (sorted by name), as MMRec's "recommended version" of VBPR
    (``src/models/vbpr.py``, read for this reading) concatenates text and image features, and
    :math:`\mathbf{E}` is a linear layer with a bias. The bracketed item and visual biases of the paper are
    :obj:`biases=True`; MMRec drops them (the default here).

    Trained with :class:`~pyg_diffcl.nn.BPRLoss` (the mean of :math:`-\ln\sigma(\hat{y}_{ui} -
    \hat{y}_{uj})`) plus, on the batch's final user and item vectors :math:`\mathbf{U}, \mathbf{P},
    \mathbf{N}` (:math:`B` rows each), :obj:`reg_type='norm'`: :math:`\frac{\lambda}{B}(\|\mathbf{U}\|_F +
    \|\mathbf{P}\|_F + \|\mathbf{N}\|_F)`, MMRec's ``EmbLoss`` (norms, not squared), the default so that the
    official code's tuned :math:`\lambda` carries over; or ``'l2'``: :math:`\frac{\lambda}{2B}` times the
    squared norms, the usual BPR weight decay.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        features (Dict[str, Tensor]): ``[num_items, F_m]`` per modality (at least one).
        config (VBPRConfig, optional): Hyper-parameters. (default: :obj:`VBPRConfig()`)
    """
    config_cls = VBPRConfig

    def __init__(self, num_users: int, num_items: int, features: Dict[str, Tensor],
                 config: Optional[VBPRConfig] = None) -> None:
        super().__init__(num_users, num_items)
        if not features:
            raise ValueError('features: VBPR needs item features of at least one modality, got none')
        c = self.config = config if config is not None else VBPRConfig()
        c.validate()
        modality_inputs(features, None, num_items, 1, with_graphs=False)
        self.modalities = sorted(features)
        raw = torch.cat([features[m].float() for m in self.modalities], dim=1)
        self.register_buffer('item_features', prepare_features(raw, c.feature_norm), persistent=False)
        d = c.embedding_dim
        self.user_emb = torch.nn.Parameter(torch.empty(num_users, 2 * d))  # [gamma_u ; theta_u]
        self.item_emb = torch.nn.Parameter(torch.empty(num_items, d))      # gamma_i
        self.proj = torch.nn.Linear(raw.size(1), d)                        # E
        self.item_bias = torch.nn.Parameter(torch.empty(num_items)) if c.biases else None
        self.visual_bias = torch.nn.Linear(raw.size(1), 1, bias=False) if c.biases else None
        self.criterion = BPRLoss(c.reg_weight if c.reg_type == 'l2' else 0.0)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: VBPRConfig, dataset: Any) -> 'VBPR':
        features, _ = dataset_inputs(dataset, 1, with_graphs=False)
        return cls(dataset.num_users, dataset.num_items, features, config)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.user_emb)
        torch.nn.init.xavier_uniform_(self.item_emb)
        torch.nn.init.xavier_normal_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)
        if self.item_bias is not None:
            torch.nn.init.zeros_(self.item_bias)
            torch.nn.init.zeros_(self.visual_bias.weight)

    def get_embedding(self, adj: Any = None) -> Tuple[Tensor, Tensor]:
        r"""``(user [U, 2d], item [I, 2d])``, :math:`[\boldsymbol{\gamma}_u ; \boldsymbol{\theta}_u]` and
        :math:`[\boldsymbol{\gamma}_i ; \mathbf{E}\mathbf{f}_i]` (one more column each with :obj:`biases`: 1
        and :math:`\beta_i + \boldsymbol{\beta}'^\top\mathbf{f}_i`). The graph is not used."""
        user, item = self.user_emb, torch.cat([self.item_emb, self.proj(self.item_features)], dim=1)
        if self.item_bias is not None:
            bias = self.item_bias + self.visual_bias(self.item_features).squeeze(-1)
            user = torch.cat([user, user.new_ones(user.size(0), 1)], dim=1)
            item = torch.cat([item, bias.unsqueeze(-1)], dim=1)
        return user, item

    def loss(self, adj: Any, batch: BPRBatch) -> Tensor:
        user, item = self.get_embedding()
        u, p, n = user[batch.user], item[batch.pos_item], item[batch.neg_item]
        if self.config.reg_type == 'l2':
            return self.criterion((u * p).sum(-1), (u * n).sum(-1), (u, p, n))
        loss = self.criterion((u * p).sum(-1), (u * n).sum(-1))
        if self.config.reg_weight > 0:
            loss = loss + self.config.reg_weight * (u.norm() + p.norm() + n.norm()) / u.size(0)
        return loss

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.config.embedding_dim}, modalities={self.modalities})')
