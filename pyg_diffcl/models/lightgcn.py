from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union


import torch
from torch import Tensor
from torch_geometric.typing import Adj

from ..checks import Validated, check_non_negative, check_positive
from ..datasets.neighbor import NeighborBPRSampler, SubgraphBatch
from ..datasets.sampler import BPRBatch
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

    It also trains on sampled subgraphs (:meth:`make_neighbor_sampler`, ``train.loader=neighbor``): each
    batch propagates the layer-0 embeddings of its subgraph's nodes over the subgraph (the whole graph's
    normalisation, :class:`~pyg_diffcl.datasets.NeighborBPRSampler`) and takes the BPR loss at the batch's
    users and items, so a step costs what the subgraph costs, not what the graph costs.

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

    def make_neighbor_sampler(self, edge_index: Tensor, num_neighbors: Optional[Sequence[int]], batch_size: int,
                              seed: int, scaling: str = 'degree', backend: str = 'auto',
                              item_graph_neighbors: int = -1, negatives: str = 'unseen') -> NeighborBPRSampler:
        """Batches on sampled subgraphs, one hop per layer: :obj:`num_neighbors` needs :math:`K` entries
        (:obj:`None`: 10 per layer)."""
        if self.num_layers < 1:
            raise ValueError('num_neighbors: a LightGCN without layers has no neighbourhood to sample')
        if item_graph_neighbors != -1:
            raise ValueError(f'item_graph_neighbors: LightGCN has no item-item graphs to sample (got '
                             f'{item_graph_neighbors}; leave it at -1)')
        num_neighbors = [10] * self.num_layers if num_neighbors is None else list(num_neighbors)
        if len(num_neighbors) != self.num_layers:
            raise ValueError(f'num_neighbors: one fan-out per layer ({self.num_layers}), got {num_neighbors}')
        return NeighborBPRSampler(edge_index, self.num_users, self.num_items, num_neighbors, batch_size, seed,
                                  scaling, backend, negatives=negatives)

    def sparse_embeddings(self) -> List[torch.nn.Embedding]:
        """The user and item tables: on sampled subgraphs the loss reads them row by row."""
        return [self.user_emb, self.item_emb]

    def loss(self, adj: Optional[Union[Adj, BipartiteAdj]], batch: Union[BPRBatch, SubgraphBatch]) -> Tensor:
        """BPR on the propagated embeddings, over the whole graph :obj:`adj` for a
        :class:`~pyg_diffcl.datasets.sampler.BPRBatch`, over the batch's own subgraph for a
        :class:`~pyg_diffcl.datasets.SubgraphBatch` (:obj:`adj` unused); the L2 term acts on the layer-0
        embeddings of the batch's users and items."""
        if not isinstance(batch, SubgraphBatch):
            return super().loss(adj, batch)
        user_out, item_out = self.propagation(batch.adj, self.user_emb(batch.user_id), self.item_emb(batch.item_id))
        return self.bpr(user_out, item_out, batch, batch.user_id, batch.item_id)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, '
                f'embedding_dim={self.embedding_dim}, num_layers={self.num_layers}, '
                f'reg_weight={self.criterion.reg_weight})')
