from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from ..checks import Validated, check_non_negative, check_positive, check_probability
from ..datasets.sampler import BPRBatch
from ..nn import BootstrapLatent, ItemFeatureProjection, LightGCNPropagation
from ..ops import BipartiteAdj
from .base import Pair, Recommender, dataset_inputs, modality_inputs


@dataclass
class BM3Config(Validated):
    """Hyper-parameters of :class:`BM3` (see its docstring for each symbol)."""
    embedding_dim: int = 64
    #: LightGCN layers (the official grid: 1, 2).
    num_layers: int = 2
    #: The targets' dropout rate (grid: 0.3, 0.5).
    dropout: float = 0.5
    #: The weight of the embedding-norm regulariser (grid: 0.1, 0.01).
    reg_weight: float = 0.1
    #: The weight of the multimodal losses (the official 2.0).
    cl_weight: float = 2.0
    #: Train the raw feature tables (the official code loads them with ``freeze=False``).
    train_features: bool = True

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('num_layers', self.num_layers)
        check_probability('dropout', self.dropout)
        check_non_negative('reg_weight', self.reg_weight)
        check_non_negative('cl_weight', self.cl_weight)


class BM3(Recommender):
    r"""BM3, from the `"Bootstrap Latent Representations for Multi-modal Recommendation"
    <https://arxiv.org/abs/2207.05969>`_ paper (Zhou et al., WWW 2023), read with its official code (MMRec's
    ``src/models/bm3.py``).

    **Encoders**: LightGCN (:class:`~pyg_diffcl.nn.LightGCNPropagation`, the mean of :math:`L` layers) gives
    :math:`\bar{\mathbf{e}}_u` and :math:`\bar{\mathbf{e}}_i`, and the item side adds its ID embedding,
    :math:`\mathbf{h}_i = \bar{\mathbf{e}}_i + \mathbf{e}^{(0)}_i`; each modality's feature table is
    projected, :math:`\mathbf{h}^m_i = \mathbf{W}_m\mathbf{f}^m_i + \mathbf{b}_m`.

    **Loss** (Eq. 7-10), over the batch's (user, positive item) pairs, without negatives, with
    :class:`~pyg_diffcl.nn.BootstrapLatent` (predictor :math:`f_\theta`, dropout targets
    :math:`\tilde{\cdot}`):

    .. math::
        \mathcal{L} = \mathcal{L}(\mathbf{h}_u, \mathbf{h}_i) + \mathcal{L}(\mathbf{h}_i, \mathbf{h}_u)
        + \lambda_{cl} \sum_m \big[\mathcal{L}(\mathbf{h}^m_i, \mathbf{h}_i) + \mathcal{L}(\mathbf{h}^m_i,
        \mathbf{h}^m_i)\big] + \lambda \frac{\|\mathbf{H}_\mathcal{U}\|_F + \|\mathbf{H}_\mathcal{I}\|_F}
        {|\mathcal{I}|}

    where :math:`\mathcal{L}(\mathbf{a}, \mathbf{b}) = 1 - \overline{\cos}(f_\theta(\mathbf{a}),
    \tilde{\mathbf{b}})`; the regulariser is MMRec's ``EmbLoss`` over the whole user and item matrices (norms,
    divided by the number of items), as the official code computes it.

    **Scores**: :math:`\hat{y}_{ui} = f_\theta(\mathbf{h}_u)^\top f_\theta(\mathbf{h}_i)` (:meth:`get_embedding`
    returns the predicted embeddings).

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        features (Dict[str, Tensor]): ``[num_items, F_m]`` per modality (at least one).
        config (BM3Config, optional): Hyper-parameters. (default: :obj:`BM3Config()`)
    """
    config_cls = BM3Config

    def __init__(self, num_users: int, num_items: int, features: Dict[str, Tensor],
                 config: Optional[BM3Config] = None) -> None:
        super().__init__(num_users, num_items)
        if not features:
            raise ValueError('features: BM3 needs item features of at least one modality, got none')
        c = self.config = config if config is not None else BM3Config()
        c.validate()
        modality_inputs(features, None, num_items, 1, with_graphs=False)
        self.modalities = sorted(features)
        d = c.embedding_dim
        self.user_emb = torch.nn.Embedding(num_users, d)
        self.item_emb = torch.nn.Embedding(num_items, d)
        self.features = ItemFeatureProjection({m: features[m] for m in self.modalities}, d, c.train_features,
                                              'xavier_normal')
        self.propagation = LightGCNPropagation(c.num_layers, 'mean')
        self.bootstrap = BootstrapLatent(d, c.dropout)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: BM3Config, dataset: Any) -> 'BM3':
        features, _ = dataset_inputs(dataset, 1, with_graphs=False)
        return cls(dataset.num_users, dataset.num_items, features, config)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.user_emb.weight)
        torch.nn.init.xavier_uniform_(self.item_emb.weight)
        self.features.reset_parameters()
        self.bootstrap.reset_parameters()

    def encode(self, adj: Union[Adj, BipartiteAdj]) -> Pair:
        r"""``(h_u, h_i)``: the LightGCN outputs, the item side plus its ID embedding."""
        user, item = self.propagation(self.prepare_adj(adj), self.user_emb.weight, self.item_emb.weight)
        return user, item + self.item_emb.weight

    def get_embedding(self, adj: Union[Adj, BipartiteAdj]) -> Pair:
        """The predicted ``(user, item)`` embeddings, whose inner products are the scores."""
        user, item = self.encode(adj)
        return self.bootstrap.predict(user), self.bootstrap.predict(item)

    def loss(self, adj: Union[Adj, BipartiteAdj], batch: BPRBatch) -> Tensor:
        c, b = self.config, self.bootstrap
        user, item = self.encode(adj)
        feats = {m: self.features(m) for m in self.modalities}
        with torch.no_grad():  # the targets, in the official code's order of dropout draws
            u_target, i_target = b.target(user), b.target(item)
            f_target = {m: b.target(feats[m]) for m in self.modalities}
        users, items = batch.user, batch.pos_item
        u_pred, i_pred = b.predict(user)[users], b.predict(item)[items]
        loss = b(u_pred, i_target[items]) + b(i_pred, u_target[users])
        if c.cl_weight > 0:
            mm = user.new_zeros(())
            for m in self.modalities:
                f_pred = b.predict(feats[m])[items]
                mm = mm + b(f_pred, i_target[items]) + b(f_pred, f_target[m][items])
            loss = loss + c.cl_weight * mm
        if c.reg_weight > 0:
            loss = loss + c.reg_weight * (user.norm() + item.norm()) / self.num_items
        return loss

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.config.embedding_dim}, modalities={self.modalities})')
