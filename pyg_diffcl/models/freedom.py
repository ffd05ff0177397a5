from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from ..checks import Validated, check_non_negative, check_positive, check_probability
from ..datasets.sampler import BPRBatch
from ..nn import BPRLoss, ItemFeatureProjection, LightGCNPropagation
from ..ops import BipartiteAdj, degree_sensitive_edge_pruning
from .base import (Pair, Recommender, check_modality_weights, dataset_inputs, frozen_item_graph, modality_inputs,
                   training_edges)


@dataclass
class FREEDOMConfig(Validated):
    """Hyper-parameters of :class:`FREEDOM` (see its docstring for each symbol)."""
    embedding_dim: int = 64
    #: LightGCN layers on the user-item graph (the official ``n_ui_layers``).
    num_layers: int = 2
    #: Layers on the frozen item-item graph (``n_mm_layers``).
    item_graph_layers: int = 1
    item_graph_k: int = 10
    #: One weight per modality, in sorted modality order, summing to one (``None``: equal weights). The
    #: official code weighs image against text with ``mm_image_weight`` = 0.1.
    modality_weights: Optional[List[float]] = None
    #: The fraction of user-item edges pruned every epoch (the official ``dropout``; grid 0.8, 0.9).
    edge_dropout: float = 0.8
    #: The weight of the modality BPR losses (the official ``reg_weight``; grid 0, 1e-5, 1e-4, 1e-3).
    reg_weight: float = 1e-4
    #: Train the raw feature tables (the official code loads them with ``freeze=False``).
    train_features: bool = True

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('num_layers', self.num_layers)
        check_non_negative('item_graph_layers', self.item_graph_layers)
        check_positive('item_graph_k', self.item_graph_k)
        check_probability('edge_dropout', self.edge_dropout)
        check_non_negative('reg_weight', self.reg_weight)
        check_modality_weights(self.modality_weights)


class FREEDOM(Recommender):
    r"""FREEDOM, from the `"A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
    Recommendation" <https://arxiv.org/abs/2211.06924>`_ paper (Zhou and Shen, ACM MM 2023), read with its
    official code (MMRec's ``src/models/freedom.py``).

    **Frozen item-item graph** (Sec. 3.1): each modality's normalised top-:math:`K` cosine graph of its raw
    features, :math:`\hat{\mathbf{S}}_m` (:func:`~pyg_diffcl.ops.item_knn_graph`, self included), built
    once and summed with weights, :math:`\mathbf{S} = \sum_m w_m \hat{\mathbf{S}}_m`
    (:func:`~pyg_diffcl.ops.weighted_graph_sum`; :obj:`modality_weights`). Item ID embeddings propagate on
    it, :math:`\tilde{\mathbf{h}} = \mathbf{S}^{L_i}\,\mathbf{E}^{(0)}_\mathcal{I}`.

    **Denoised user-item graph** (Sec. 3.2): before every training epoch a fraction :obj:`edge_dropout` of
    the edges is pruned by :func:`~pyg_diffcl.ops.degree_sensitive_edge_pruning` (kept with probability
    :math:`\propto 1/\sqrt{d_u d_i}`) and the kept graph is normalised anew; LightGCN
    (:class:`~pyg_diffcl.nn.LightGCNPropagation`, the mean of :math:`L` layers) propagates the user and item
    ID embeddings on it. Evaluation uses the whole graph. The pruned graph of epoch :math:`e` is drawn from a
    generator seeded with ``(torch.initial_seed(), e)``, so a resumed epoch prunes the same edges.

    **Scores and loss** (Sec. 3.3): :math:`\mathbf{e}_u = \bar{\mathbf{e}}_u`, :math:`\mathbf{e}_i =
    \bar{\mathbf{e}}_i + \tilde{\mathbf{h}}_i`, :math:`\hat{y}_{ui} = \mathbf{e}_u^\top\mathbf{e}_i`,

    .. math::
        \mathcal{L} = \mathcal{L}_{\text{BPR}}(\mathbf{e}_u, \mathbf{e}_i, \mathbf{e}_j) + \lambda \sum_m
        \mathcal{L}_{\text{BPR}}(\mathbf{e}_u, \mathbf{W}_m\mathbf{f}^m_i + \mathbf{b}_m,
        \mathbf{W}_m\mathbf{f}^m_j + \mathbf{b}_m)

    with :math:`\mathcal{L}_{\text{BPR}}` the mean of :math:`-\ln\sigma(\cdot)` and no L2 term, as in the
    official code; its feature tables :math:`\mathbf{f}^m` are trainable (:obj:`train_features`), while the
    item graph stays the one built from the initial features.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        edge_index (Tensor): Training ``[2, E]`` (user, item) pairs (pruned every epoch).
        features (Dict[str, Tensor]): ``[num_items, F_m]`` per modality (at least one).
        item_graphs (Dict[str, Tuple[Tensor, Tensor]], optional): Each modality's normalised k-NN graph;
            computed when missing. (default: :obj:`None`)
        config (FREEDOMConfig, optional): Hyper-parameters. (default: :obj:`FREEDOMConfig()`)
    """
    config_cls = FREEDOMConfig

    def __init__(self, num_users: int, num_items: int, edge_index: Tensor, features: Dict[str, Tensor],
                 item_graphs: Optional[Dict[str, Pair]] = None, config: Optional[FREEDOMConfig] = None) -> None:
        super().__init__(num_users, num_items)
        if not features:
            raise ValueError('features: FREEDOM needs item features of at least one modality, got none')
        c = self.config = config if config is not None else FREEDOMConfig()
        c.validate()
        self.modalities = sorted(features)
        graphs = modality_inputs(features, item_graphs, num_items, c.item_graph_k, with_graphs=True)
        ii_index, ii_weight = frozen_item_graph(graphs, self.modalities, c.modality_weights, num_items)
        self.register_buffer('ii_index', ii_index, persistent=False)
        self.register_buffer('ii_weight', ii_weight, persistent=False)
        self.register_buffer('train_edges', edge_index.long(), persistent=False)
        d = c.embedding_dim
        self.user_emb = torch.nn.Embedding(num_users, d)
        self.item_emb = torch.nn.Embedding(num_items, d)
        self.features = ItemFeatureProjection({m: features[m] for m in self.modalities}, d, c.train_features,
                                              'default')
        self.propagation = LightGCNPropagation(c.num_layers, 'mean')
        self.bpr = BPRLoss(0.0)  # no L2 term, as in the official code
        self._pruned: Optional[BipartiteAdj] = None
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: FREEDOMConfig, dataset: Any) -> 'FREEDOM':
        features, graphs = dataset_inputs(dataset, config.item_graph_k)
        return cls(dataset.num_users, dataset.num_items, training_edges(dataset), features, graphs, config)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.user_emb.weight)
        torch.nn.init.xavier_uniform_(self.item_emb.weight)
        self.features.reset_parameters()

    def pre_epoch(self, epoch: int) -> None:
        """Prune the user-item graph for this epoch (degree-sensitive, :obj:`edge_dropout`)."""
        gen = torch.Generator().manual_seed((torch.initial_seed() * 1_000_003 + int(epoch)) % (2**63))
        kept = degree_sensitive_edge_pruning(self.train_edges, self.num_users, self.num_items,
                                             self.config.edge_dropout, gen)
        self._pruned = BipartiteAdj(kept, self.num_users, self.num_items)

    def get_embedding(self, adj: Union[Adj, BipartiteAdj]) -> Pair:
        """``(user, item)`` final embeddings on the graph :obj:`adj` (the whole graph at evaluation)."""
        h = self.item_emb.weight
        ii = self.buffer_adjacency('ii_index', 'ii_weight', (self.num_items, self.num_items))
        for _ in range(self.config.item_graph_layers):
            h = ii.matmul(h)
        user, item = self.propagation(self.prepare_adj(adj), self.user_emb.weight, self.item_emb.weight)
        return user, item + h

    def loss(self, adj: Union[Adj, BipartiteAdj], batch: BPRBatch) -> Tensor:
        """BPR on the pruned graph's embeddings (the whole graph before any :meth:`pre_epoch`), plus the
        weighted modality BPR losses."""
        user, item = self.get_embedding(self._pruned if self._pruned is not None else adj)
        u = user[batch.user]
        loss = self.bpr((u * item[batch.pos_item]).sum(-1), (u * item[batch.neg_item]).sum(-1))
        if self.config.reg_weight > 0:
            for m in self.modalities:
                f = self.features(m)
                loss = loss + self.config.reg_weight * self.bpr((u * f[batch.pos_item]).sum(-1),
                                                                (u * f[batch.neg_item]).sum(-1))
        return loss

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.config.embedding_dim}, modalities={self.modalities})')

