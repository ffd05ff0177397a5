r"""Training batches on sampled subgraphs: BPR triples with their :math:`K`-hop neighbourhoods, drawn by PyG's
:class:`~torch_geometric.loader.LinkNeighborLoader` with ``NegativeSampling('triplet')``."""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, Iterator, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..ops import Adjacency, SubgraphAdj, bipartite_gcn_norm, user_item_edge_type
from .sampler import contains, pair_keys

#: The edge types of the sampler's own graph: interactions (user -> item) and their reverse.
FORWARD = ('user', 'to', 'item')
REVERSE = ('item', 'rev_to', 'user')
#: How the weights of a sampled edge are set (see :class:`NeighborBPRSampler`).
SCALINGS = ('none', 'degree')
#: How a triple's negative item is drawn (see :class:`NeighborBPRSampler`).
NEGATIVES = ('unseen', 'any')


def valid_fan_out(n: int) -> bool:
    """Whether :obj:`n` is a fan-out in PyG's convention: a positive count, or ``-1`` for every neighbour."""
    return n > 0 or n == -1


def _mix(*values: int) -> int:
    """A 63-bit seed from integers, the same in every process (no ``hash``, which is salted for strings)."""
    out = 0
    for v in values:
        out = (out * 1_000_003 + int(v) + 1) % (1 << 63)
    return out


class SubgraphBatch(NamedTuple):
    r"""A batch of BPR triples on a sampled subgraph. :attr:`user`, :attr:`pos_item` and :attr:`neg_item`
    index the subgraph's nodes; :attr:`user_id` and :attr:`item_id` map the subgraph's nodes to the whole
    graph's (PyG's ``n_id``); :attr:`adj` is the user-item subgraph; :attr:`item_graphs` the sampled item-item
    graphs by name (:math:`|\mathcal{I}_s| \times |\mathcal{I}_s|`, rows the receiving items), when the
    sampler has any."""
    user: Tensor
    pos_item: Tensor
    neg_item: Tensor
    user_id: Tensor
    item_id: Tensor
    adj: SubgraphAdj
    item_graphs: Optional[Dict[str, Adjacency]] = None

    def to(self, device: torch.device | str) -> 'SubgraphBatch':
        graphs = (None if self.item_graphs is None else
                  {name: adj.to(device) for name, adj in self.item_graphs.items()})
        return SubgraphBatch(*(t.to(device, non_blocking=True) for t in self[:5]), self.adj.to(device), graphs)


class NeighborBPRSampler:
    r"""BPR triples with the subgraph a :math:`K`-layer propagation needs around them, for training whose cost
    per epoch grows linearly with the interactions.

    Every batch is one call of PyG's :class:`~torch_geometric.loader.LinkNeighborLoader` machinery on a
    :class:`~torch_geometric.data.HeteroData` with the interactions as ``('user', 'to', 'item')`` and their
    reverse: :obj:`batch_size` training interactions :math:`(u, i)` (a seeded permutation per epoch), one
    negative item :math:`j` each (``NegativeSampling('triplet')``: drawn uniformly from all items, so, unlike
    :class:`~pyg_diffcl.datasets.BPRSampler`, it is occasionally one of the user's training items), and
    around the seeds :math:`u, i, j` the neighbours hop by hop, :obj:`num_neighbors[k]` per node at hop
    :math:`k` (PyG's convention; ``-1`` takes them all).

    **Negatives.** PyG's triplet sampling draws each negative uniformly from all items, so a draw is sometimes
    one of the user's own training items: with probability :math:`d_u / |\mathcal{I}|` for a triple of user
    :math:`u`, and since a batch of interactions holds user :math:`u` in proportion to :math:`d_u`, for a
    fraction :math:`\sum_u d_u^2 / (|\mathcal{E}| \, |\mathcal{I}|)` of the triples, many times the mean
    :math:`d_u / |\mathcal{I}|` on a power-law log (about 5 % of the triples on the planted 15.6k-user, 3,125-item
    data set of ``benchmarks/planted.py``, where the mean is 0.5 %). Each such triple pushes a training item
    down. With :obj:`negatives` ``'unseen'`` (the default), PyG draws :obj:`negative_candidates` negatives per
    triple and the first that is not one of the user's training items is kept: uniform over the unseen items,
    the distribution of :class:`~pyg_diffcl.datasets.BPRSampler` (whole-graph training); a triple whose
    candidates are all training items (probability :math:`(d_u / |\mathcal{I}|)^c`, :math:`c` candidates) is left
    out of the batch (unless that would empty the batch). The extra candidates are seeds too, so their
    neighbourhoods are sampled with the rest. ``'any'`` keeps PyG's single draw as it is, as every run before
    this option did.

    The sampled edges keep the whole graph's normalisation, :math:`\hat r_{ui} = 1/\sqrt{d_u d_i}` with the
    degrees of the full training graph, never of the sample. With :obj:`scaling='degree'` (the default) an
    edge into node :math:`v` is further multiplied by :math:`d_v / s_v` (:math:`s_v` the sampled edges into
    :math:`v`), which makes each layer's sum an unbiased estimate of the full one when the neighbours are
    drawn uniformly (GraphSAGE's and FastGCN's Monte-Carlo reading of a sampled aggregation); with
    ``'none'`` a node with more neighbours than its fan-out receives only :math:`s_v/d_v` of its sum on
    average. On tiktok (LightGCN, 4 layers, fan-out 10, seed 0) ``'none'`` peaked at validation Recall@20
    0.1036 (epoch 13) and then fell, ``'degree'`` reached 0.108 or more. With :obj:`num_neighbors` all ``-1``
    the seeds' propagated embeddings equal the full graph's exactly, with either scaling.

    A batch depends only on (seed, epoch, batch): the permutation comes from a generator seeded by the first
    two, and the sampling from torch's generator set to a state derived from all three for that call and
    restored after it (the caller's random state is left as it was). So an epoch resumes at any batch, and
    two runs of one seed draw the same subgraphs.

    **Item-item graphs** (DiffCL's modality graphs). Each of :obj:`item_graphs` joins the same
    :class:`~torch_geometric.data.HeteroData` as an ``('item', 'knn<k>', 'item')`` edge type, an edge
    :math:`j \to i` for every entry :math:`\hat s_{ij}` (:func:`~pyg_diffcl.ops.item_knn_graph`'s
    ``edge_index[0]`` is the receiving item :math:`i`), and is sampled with the interactions during the first
    :obj:`item_hops` hops, none after: all of a node's item-item neighbours (:obj:`item_fanout` ``-1``, the
    weights as given), or :obj:`item_fanout` of them drawn uniformly, whose weights :math:`\hat s_{ij}` are
    then multiplied by :math:`k_i / s_i` with ``scaling='degree'`` (:math:`k_i` the receiving item's
    neighbours in the whole item graph, :math:`s_i` those sampled), the same unbiased estimate of the sum
    :math:`\sum_j \hat s_{ij} \mathbf{h}_j` as for the interactions. The user-item fan-out
    :obj:`num_neighbors` then spans all the hops, so that an item reached through the item graph at hop
    :math:`h` still has :math:`H - h` hops of interactions around it (:math:`H` = ``len(num_neighbors)``): a
    model that enhances item rows by :math:`L_{ii}` item-graph layers after :math:`L` user-item layers needs
    :math:`H = L + L_{ii}` hops and ``item_hops`` :math:`= L_{ii}`. With every fan-out ``-1``, the seeds'
    item-graph products equal the whole graph's.

    Args:
        edge_index (Tensor): Training interactions ``[2, E]`` (user, item).
        num_users (int): The number of users.
        num_items (int): The number of items.
        num_neighbors (Sequence[int]): The fan-out per hop, one entry per propagation layer.
        batch_size (int): Interactions per batch. (default: :obj:`2048`)
        seed (int): The seed. (default: :obj:`0`)
        scaling (str): ``'degree'`` or ``'none'`` (see above). (default: :obj:`'degree'`)
        backend (str): The sparse backend of the subgraphs' matrices. (default: :obj:`'auto'`)
        item_graphs (Dict[str, Tuple[Tensor, Tensor]], optional): Item-item graphs by name, each
            ``(edge_index [2, E], edge_weight [E])`` with ``edge_index[0]`` the receiving item (see above).
            (default: :obj:`None`)
        item_hops (int): The hops during which the item-item graphs are sampled; at least 1 and at most
            ``len(num_neighbors)`` when :obj:`item_graphs` are given. (default: :obj:`1`)
        item_fanout (int): The item-item neighbours sampled per item at those hops; ``-1``: all of them.
            (default: :obj:`-1`)
        negatives (str): ``'unseen'`` or ``'any'`` (see above). (default: :obj:`'unseen'`)
        negative_candidates (int): The negatives PyG draws per triple with ``'unseen'``. (default: :obj:`2`)
    """
    def __init__(self, edge_index: Tensor, num_users: int, num_items: int, num_neighbors: Sequence[int],
                 batch_size: int = 2048, seed: int = 0, scaling: str = 'degree', backend: str = 'auto',
                 item_graphs: Optional[Dict[str, Tuple[Tensor, Tensor]]] = None, item_hops: int = 1,
                 item_fanout: int = -1, negatives: str = 'unseen', negative_candidates: int = 2) -> None:
        from torch_geometric.data import HeteroData
        from torch_geometric.loader import LinkNeighborLoader
        from torch_geometric.sampler import NegativeSampling
        if batch_size <= 0:
            raise ValueError(f'batch_size: must be positive, got {batch_size}')
        num_neighbors = [int(n) for n in num_neighbors]
        if not num_neighbors or not all(valid_fan_out(n) for n in num_neighbors):
            raise ValueError(f'num_neighbors: expected one fan-out per layer, each positive or -1 (all), got '
                             f'{num_neighbors}')
        if scaling not in SCALINGS:
            raise ValueError(f'scaling: expected one of {SCALINGS}, got {scaling!r}')
        if not valid_fan_out(item_fanout):
            raise ValueError(f'item_fanout: expected a positive fan-out or -1 (all), got {item_fanout}')
        if negatives not in NEGATIVES:
            raise ValueError(f'negatives: expected one of {NEGATIVES}, got {negatives!r}')
        if int(negative_candidates) < 1:
            raise ValueError(f'negative_candidates: expected at least 1, got {negative_candidates}')
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError('edge_index: expected a [2, E] tensor of (user, item) pairs')
        edge_index = edge_index.as_subclass(Tensor).long().cpu()
        self.num_users, self.num_items = int(num_users), int(num_items)
        self.num_neighbors, self.batch_size, self.seed = num_neighbors, int(batch_size), int(seed)
        self.scaling, self.backend = scaling, backend
        self.edge_index = edge_index
        self.negatives = negatives
        self.negative_candidates = int(negative_candidates) if negatives == 'unseen' else 1
        #: The sorted keys u * num_items + i of the training pairs, for 'unseen' negatives.
        self._keys = (pair_keys(edge_index[0].numpy(), edge_index[1].numpy(), self.num_items)
                      if negatives == 'unseen' else None)
        weight = bipartite_gcn_norm(edge_index, self.num_users, self.num_items)
        self.user_degree = torch.bincount(edge_index[0], minlength=self.num_users)
        self.item_degree = torch.bincount(edge_index[1], minlength=self.num_items)
        data = HeteroData()
        data['user'].num_nodes = self.num_users
        data['item'].num_nodes = self.num_items
        data[FORWARD].edge_index = edge_index
        data[FORWARD].edge_weight = weight
        data[REVERSE].edge_index = edge_index.flip(0)
        data[REVERSE].edge_weight = weight
        self.item_graph_types: Dict[str, Tuple[str, str, str]] = {}
        #: Each item graph's in-degree of every receiving item (the :math:`k_i` of the scaling), when sampled.
        self.item_graph_degree: Dict[str, Tensor] = {}
        self.item_fanout = int(item_fanout)
        fan_out: Any = num_neighbors
        if item_graphs:
            if not 1 <= item_hops <= len(num_neighbors):
                raise ValueError(f'item_hops: expected 1..len(num_neighbors) = {len(num_neighbors)}, got {item_hops}')
            fan_out = {FORWARD: num_neighbors, REVERSE: num_neighbors}
            for k, (name, (ii_index, ii_weight)) in enumerate(sorted(item_graphs.items())):
                ii_index = ii_index.as_subclass(Tensor).long().cpu() if isinstance(ii_index, Tensor) else ii_index
                if (not isinstance(ii_index, Tensor) or ii_index.dim() != 2 or ii_index.size(0) != 2
                        or ii_weight.numel() != ii_index.size(1)):
                    raise ValueError(f'item_graphs: {name!r} needs a [2, E] edge_index and [E] weights')
                if ii_index.numel() and int(ii_index.max()) >= self.num_items:
                    raise ValueError(f'item_graphs: {name!r} has an item {int(ii_index.max())} >= num_items '
                                     f'{self.num_items}')
                etype = ('item', f'knn{k}', 'item')  # plain names: PyG's sampler joins the parts with '__'
                data[etype].edge_index = ii_index.flip(0)  # (source j, receiving i)
                data[etype].edge_weight = ii_weight.detach().float().cpu()
                fan_out[etype] = [self.item_fanout] * item_hops + [0] * (len(num_neighbors) - item_hops)
                self.item_graph_types[name] = etype
                if self.item_fanout != -1:
                    self.item_graph_degree[name] = torch.bincount(ii_index[0], minlength=self.num_items)
        self.item_hops = int(item_hops) if item_graphs else 0
        self.data = data
        # No iteration through the DataLoader: batches are made by its collate function, one at a time.
        with warnings.catch_warnings():  # PyG's notice that its torch-sparse sampling path (no pyg-lib) is deprecated
            warnings.filterwarnings('ignore', message=".*without a 'pyg-lib' installation.*")
            self.loader = LinkNeighborLoader(data, num_neighbors=fan_out,
                                             edge_label_index=(FORWARD, edge_index),
                                             neg_sampling=NegativeSampling('triplet',
                                                                           amount=self.negative_candidates),
                                             batch_size=self.batch_size,
                                             shuffle=False)

    @classmethod
    def from_data(cls, data: Any, num_neighbors: Sequence[int], edge_type: Optional[Tuple[str, str, str]] = None,
                  **kwargs: Any) -> 'NeighborBPRSampler':
        """From a :class:`~torch_geometric.data.HeteroData` graph: its user-item edge type
        (:func:`~pyg_diffcl.ops.user_item_edge_type`), any node and edge names."""
        edge_type = user_item_edge_type(data, edge_type)
        return cls(data[edge_type].edge_index, data[edge_type[0]].num_nodes, data[edge_type[2]].num_nodes,
                   num_neighbors, **kwargs)

    def __len__(self) -> int:
        return math.ceil(self.edge_index.size(1) / self.batch_size)

    def _permutation(self, epoch: int) -> Tensor:
        gen = torch.Generator().manual_seed(_mix(self.seed, epoch, -1))
        return torch.randperm(self.edge_index.size(1), generator=gen)

    def batch(self, epoch: int, b: int, perm: Optional[Tensor] = None) -> SubgraphBatch:
        """Batch :obj:`b` of epoch :obj:`epoch`."""
        if not 0 <= b < len(self):
            raise ValueError(f'b: expected a batch in 0..{len(self) - 1}, got {b}')
        perm = self._permutation(epoch) if perm is None else perm
        index = perm[b * self.batch_size:(b + 1) * self.batch_size]
        with torch.random.fork_rng(devices=[]):  # the CPU generator only, restored after (CUDA's untouched)
            torch.random.default_generator.manual_seed(_mix(self.seed, epoch, b))
            out = self.loader.collate_fn(index)
        if not self.loader.filter_per_worker:
            out = self.loader.filter_fn(out)
        return self._batch(out)

    def _batch(self, sub: Any) -> SubgraphBatch:
        user_id, item_id = sub['user'].n_id, sub['item'].n_id
        parts = []
        for etype, degree, dst_id, n_dst in ((REVERSE, self.user_degree, user_id, user_id.numel()),
                                             (FORWARD, self.item_degree, item_id, item_id.numel())):
            src, dst = sub[etype].edge_index
            weight = sub[etype].edge_weight
            if self.scaling == 'degree' and dst.numel():
                sampled = torch.bincount(dst, minlength=n_dst).clamp(min=1)
                weight = weight * (degree[dst_id].float() / sampled.float())[dst]
            parts.append((torch.stack([dst, src]), weight))
        adj = SubgraphAdj(parts[0], parts[1], user_id.numel(), item_id.numel(), self.backend)
        graphs = None
        if self.item_graph_types:
            n = item_id.numel()
            graphs = {}
            for name, etype in self.item_graph_types.items():
                src, dst = sub[etype].edge_index  # dst: the receiving item
                weight = sub[etype].edge_weight
                if self.scaling == 'degree' and name in self.item_graph_degree and dst.numel():
                    sampled = torch.bincount(dst, minlength=n).clamp(min=1)
                    weight = weight * (self.item_graph_degree[name][item_id].float() / sampled.float())[dst]
                graphs[name] = Adjacency(torch.stack([dst, src]), weight, (n, n), adj.backend)
        user, pos, neg = self._triples(sub['user'].src_index, sub['item'].dst_pos_index,
                                       sub['item'].dst_neg_index, user_id, item_id)
        return SubgraphBatch(user, pos, neg, user_id, item_id, adj, graphs)

    def _triples(self, user: Tensor, pos: Tensor, neg: Tensor, user_id: Tensor,
                 item_id: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The batch's triples (subgraph indices): with ``'unseen'`` negatives, each triple's first candidate
        that is not one of its user's training items, and the triples without one left out."""
        if self._keys is None:
            return user, pos, neg.view(-1)
        cand = neg.view(user.numel(), -1)
        keys = (user_id[user].unsqueeze(1) * self.num_items + item_id[cand]).numpy()
        unseen = torch.from_numpy(~contains(self._keys, keys))
        keep = unseen.any(1)
        first = unseen.to(torch.uint8).argmax(1, keepdim=True)  # the first True (argmax returns the first max)
        neg = cand.gather(1, first).squeeze(1)
        if not bool(keep.any()):  # never an empty batch (its mean loss is NaN): all kept, first candidates
            return user, pos, neg
        return user[keep], pos[keep], neg[keep]

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[SubgraphBatch]:
        """The batches of one epoch, from batch :obj:`start_batch` on (resuming mid-epoch)."""
        return self.batches(epoch, range(start_batch, len(self)))

    def batches(self, epoch: int, indices: Sequence[int]) -> Iterator[SubgraphBatch]:
        """The batches :obj:`indices` of one epoch, and only those are sampled (a rank of
        :class:`~pyg_diffcl.training.distributed.ShardedSampler` draws its own share)."""
        perm = self._permutation(epoch)
        for b in indices:
            yield self.batch(epoch, b, perm)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(interactions={self.edge_index.size(1)}, '
                f'num_neighbors={self.num_neighbors}, batch_size={self.batch_size}, seed={self.seed}, '
                f'scaling={self.scaling!r}, negatives={self.negatives!r}'
                + (f', negative_candidates={self.negative_candidates}' if self.negatives == 'unseen' else '')
                + (f', item_graphs={sorted(self.item_graph_types)}, '
                                               f'item_hops={self.item_hops}, item_fanout={self.item_fanout}'
                                               if self.item_graph_types else '')
                + ')')
