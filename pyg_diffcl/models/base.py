r"""The small contract every recommender of this library fulfils."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from ..datasets.sampler import BPRBatch, BPRSampler
from ..ops import Adjacency, AdjacencyCache, BipartiteAdj, item_knn_graph, user_item_edge_type, weighted_graph_sum
from ..ops.features import check_feature_matrix


Pair = Tuple[Tensor, Tensor]


def modality_inputs(features: Dict[str, Tensor], item_graphs: Optional[Dict[str, Pair]], num_items: int,
                    k: int, with_graphs: bool) -> Optional[Dict[str, Pair]]:
    r"""Check every modality's ``[num_items, F]`` feature matrix (named in the error) and, when
    :obj:`with_graphs`, return each modality's item-item graph ``(edge_index, edge_weight)``: the one given in :obj:`item_graphs`, else the top-:obj:`k` cosine graph of
    its features (:func:`~pyg_diffcl.ops.item_knn_graph`). Shared by the multimodal models."""
    for m, x in features.items():
        check_feature_matrix(m, x, num_items)
    if not with_graphs:
        return None
    graphs = dict(item_graphs or {})
    for m in sorted(features):
        if m not in graphs:
            graphs[m] = item_knn_graph(features[m], k)
    return graphs


def check_modality_weights(weights: Optional[Sequence[float]]) -> None:
    """A config's ``modality_weights``: :obj:`None`, or non-negative values summing to one (a ValueError naming
    the field otherwise)."""
    if weights is not None and (any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6):
        raise ValueError(f'modality_weights: non-negative and summing to one, got {list(weights)}')


def frozen_item_graph(graphs: Dict[str, Pair], modalities: Sequence[str], weights: Optional[Sequence[float]],
                      num_items: int) -> Pair:
    r"""FREEDOM's and MENTOR's frozen multimodal item graph :math:`\mathbf{S} = \sum_m w_m \hat{\mathbf{S}}_m`
    (:func:`~pyg_diffcl.ops.weighted_graph_sum`) over :obj:`modalities` in their order, with equal weights
    when :obj:`weights` is :obj:`None`; a ValueError when the number of weights is not the number of
    modalities."""
    w: List[float] = list(weights) if weights is not None else [1.0 / len(modalities)] * len(modalities)
    if len(w) != len(modalities):
        raise ValueError(f'config: modality_weights has {len(w)} values for the modalities {list(modalities)}')
    return weighted_graph_sum([graphs[m] for m in modalities], w, num_items)


def dataset_inputs(dataset: Any, k: int, with_features: bool = True, with_graphs: bool = True
                   ) -> Tuple[Dict[str, Tensor], Optional[Dict[str, Pair]]]:
    r"""``(features, item_graphs)`` of a data set for a multimodal model's :meth:`~Recommender.from_config`:
    ``dataset.features()`` and, for each modality, ``dataset.item_graph(m, k)`` (cached by the data set);
    ``({}, None)`` for what is not asked for."""
    features = dataset.features() if with_features else {}
    graphs = {m: dataset.item_graph(m, k) for m in features} if features and with_graphs else None
    return features, graphs


def training_edges(dataset: Any) -> Tensor:
    """The training ``[2, E]`` (user, item) pairs of a data set's graph: its only user-item edge type
    (:func:`~pyg_diffcl.ops.user_item_edge_type`)."""
    data = dataset[0]
    return data[user_item_edge_type(data)].edge_index


class Recommender(torch.nn.Module):
    r"""Base class of the recommenders: users and items are numbered separately (no offsets).

    A subclass implements :meth:`get_embedding` and :meth:`loss`; the trainer and the evaluator use only
    this contract, so they know nothing model-specific.

    * :meth:`get_embedding` -- final user and item representations for a training graph.
    * :meth:`loss` -- the training loss of one :class:`~pyg_diffcl.datasets.sampler.BPRBatch`.
    * :meth:`score` -- scores of every item for a block of users, from :meth:`get_embedding`'s output.
    * :meth:`scorer` -- the ``users -> scores`` function the evaluator calls (embeddings computed once;
      models that do not score by embeddings, such as LD4MRec, override it).
    * :meth:`make_sampler` -- the training batches (BPR triples by default; LD4MRec: users).
    * :meth:`pre_epoch` -- a hook called before every epoch (per-epoch resampling; no-op by default).
    * :meth:`from_config` -- build from a typed config dataclass and the data set.

    Every method that takes the training graph :obj:`adj` accepts PyG's forms of the users x items
    adjacency (an ``edge_index`` of (user, item) pairs, an ``EdgeIndex``, a ``SparseTensor``, a
    ``torch.sparse`` matrix) or a prepared :class:`~pyg_diffcl.ops.BipartiteAdj`; :meth:`prepare_adj` turns
    the first kinds into the last, once per graph.
    """
    #: The dataclass of this model's hyper-parameters (set by subclasses).
    config_cls: Any = None
    #: Whether :meth:`make_sampler` draws negative items (BPR triples), so that ``negative_pool`` applies.
    draws_negatives: bool = True

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        if num_users <= 0 or num_items <= 0:
            raise ValueError(f'need at least one user and one item, got {num_users} and {num_items}')
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.adj_cache = AdjacencyCache()

    def buffer_adjacency(self, index: str, weight: str, size: Tuple[int, int]) -> Adjacency:
        """The :class:`~pyg_diffcl.ops.Adjacency` of the registered buffers named :obj:`index` and
        :obj:`weight` (a frozen item graph, say), built on first use and again after a device move."""
        cache: Dict[str, Adjacency] = self.__dict__.setdefault('_buffer_adjacency', {})
        ei = getattr(self, index)
        adj = cache.get(index)
        if adj is None or adj.index.device != ei.device:
            adj = cache[index] = Adjacency(ei, getattr(self, weight), size)
        return adj

    def prepare_adj(self, adj: Union[Adj, BipartiteAdj]) -> BipartiteAdj:
        """The normalised :class:`~pyg_diffcl.ops.BipartiteAdj` of :obj:`adj`, of this model's sizes, prepared
        once for a graph passed again and again (:class:`~pyg_diffcl.ops.AdjacencyCache`)."""
        return self.adj_cache(adj, self.num_users, self.num_items)

    @classmethod
    def from_config(cls, config: Any, dataset: Any) -> 'Recommender':
        """Build from a config dataclass and a data set (an :class:`~pyg_diffcl.datasets.MMRecDataset` or
        anything with ``num_users``, ``num_items``, ``features()`` and ``item_graph(modality, k)``)."""
        raise NotImplementedError

    def pre_epoch(self, epoch: int) -> None:
        """Called by the trainer before each epoch (0-based)."""

    def get_embedding(self, adj: BipartiteAdj) -> Tuple[Tensor, Tensor]:
        """``(user [num_users, d], item [num_items, d])`` final representations."""
        raise NotImplementedError

    def loss(self, adj: BipartiteAdj, batch: BPRBatch) -> Tensor:
        """The scalar training loss of one batch."""
        raise NotImplementedError

    def make_sampler(self, edge_index: Tensor, batch_size: int, seed: int, negative_pool: str = 'all') -> Any:
        """The training batch sampler for the training interactions :obj:`edge_index` (default:
        :class:`~pyg_diffcl.datasets.BPRSampler`, its negatives drawn from :obj:`negative_pool`)."""
        return BPRSampler(edge_index, self.num_items, batch_size, seed, negative_pool=negative_pool)

    def make_neighbor_sampler(self, edge_index: Tensor, num_neighbors: Optional[Sequence[int]], batch_size: int,
                              seed: int, scaling: str = 'degree', backend: str = 'auto',
                              item_graph_neighbors: int = -1, negatives: str = 'unseen') -> Any:
        """The batches of training on sampled subgraphs (``train.loader=neighbor``): a
        :class:`~pyg_diffcl.datasets.NeighborBPRSampler`, whose :class:`~pyg_diffcl.datasets.SubgraphBatch`
        batches :meth:`loss` then receives; :obj:`item_graph_neighbors` is the fan-out in a model's item-item
        graphs (``-1``: all; a model without them refuses any other value); :obj:`negatives` how the negative
        items are drawn (``'unseen'`` or ``'any'``, see the sampler). Models that train only on the whole
        graph raise :class:`NotImplementedError` (the default)."""
        raise NotImplementedError(f'{self.__class__.__name__} trains on the whole graph only')

    def inference_state(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """What of a :meth:`state_dict` a saved model needs to score and recommend (``best.pt``): all of it by
        default; a model drops training-only state here (DiffMM: its denoisers' optimizer). Loading the
        result back must work (``load_state_dict`` with the model's usual strictness)."""
        return state

    def sparse_embeddings(self) -> List[torch.nn.Embedding]:
        """The embedding tables that may take row-sparse gradients (``train.optimizer=sparse_adam``): tables
        whose rows the loss reads through the :class:`~torch.nn.Embedding` module, never through
        ``.weight`` (none by default)."""
        return []

    def scorer(self, adj: Union[Adj, BipartiteAdj]) -> Callable[[Tensor], Tensor]:
        """A ``users -> [len(users), num_items]`` score function, the model's embeddings computed once."""
        emb = self.get_embedding(adj)
        device = emb[0].device
        return lambda users: self.score(emb, users.to(device))

    def score(self, embedding: Tuple[Tensor, Tensor], users: Tensor) -> Tensor:
        r"""Scores :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i` of every item for :obj:`users`:
        ``[len(users), num_items]``."""
        user_emb, item_emb = embedding
        return user_emb[users] @ item_emb.t()
