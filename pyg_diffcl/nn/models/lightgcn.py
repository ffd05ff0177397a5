from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor
from torch.nn import Embedding
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils import is_sparse, to_edge_index

from ...ops import Adjacency, AdjacencyCache, resolve_backend
from ..loss import BPRLoss

#: Keyword arguments of PyG's ``LGConv`` that this model honours (``normalize``); the rest are refused.
_CONV_KWARGS = ('normalize',)


class LightGCN(torch.nn.Module):
    r"""LightGCN on a homogeneous graph, from the `"LightGCN: Simplifying and Powering Graph Convolution
    Network for Recommendation" <https://arxiv.org/abs/2002.02126>`_ paper, with the interface of PyG's
    :class:`torch_geometric.nn.models.LightGCN`: the same constructor, ``state_dict`` keys (``alpha``,
    ``embedding.weight``) and methods, so that a script written for PyG's class runs with only the import
    changed.

    .. math::
        \mathbf{x}^{(l+1)}_i = \sum_{j \in \mathcal{N}(i)} \frac{w_{ji}}{\sqrt{\deg(i)}\sqrt{\deg(j)}}
        \mathbf{x}^{(l)}_j, \qquad \mathbf{x}_i = \sum_{l=0}^{L} \alpha_l \mathbf{x}^{(l)}_i

    (PyG's :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` without self-loops, degrees at the
    destination, the normalisation of :class:`~torch_geometric.nn.conv.LGConv`).

    What differs is the cost. PyG's class normalises the graph in every layer of every call and propagates by
    gathering and scattering one message per edge. This one prepares the normalised matrix once per graph
    (:class:`~pyg_diffcl.ops.AdjacencyCache`: a script that passes the same ``edge_index`` at every step, as
    PyG's ``examples/lightgcn.py`` does, pays for it once, and a changed graph is prepared anew) and
    propagates with the library's sparse kernels (:class:`~pyg_diffcl.ops.Adjacency`, a CSR product by
    default); ``benchmarks/train_speed.py`` measures the two side by side.

    Args:
        num_nodes (int): The number of nodes in the graph.
        embedding_dim (int): The dimensionality of node embeddings.
        num_layers (int): The number of propagation layers :math:`L`.
        alpha (float or Tensor, optional): The weights :math:`\alpha_l`: one scalar for every layer, or
            :math:`L + 1` values. (default: :obj:`1 / (L + 1)`)
        backend (str, optional): The sparse backend (:data:`~pyg_diffcl.ops.BACKENDS` or ``'auto'``).
            (default: :obj:`'auto'`)
        **kwargs (optional): ``normalize`` (bool), as for :class:`~torch_geometric.nn.conv.LGConv`.
    """
    def __init__(self, num_nodes: int, embedding_dim: int, num_layers: int,
                 alpha: Optional[Union[float, Tensor]] = None, backend: str = 'auto', **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(_CONV_KWARGS))
        if unknown:
            raise TypeError(f'unexpected keyword argument(s) {unknown} (LGConv options understood: '
                            f'{list(_CONV_KWARGS)})')
        if num_layers < 0:
            raise ValueError(f'num_layers: must be non-negative, got {num_layers}')
        self.num_nodes = num_nodes
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        if alpha is None:
            alpha = 1.0 / (num_layers + 1)
        if isinstance(alpha, Tensor):
            if alpha.numel() != num_layers + 1:
                raise ValueError(f'alpha: needs num_layers + 1 = {num_layers + 1} values, got {alpha.numel()}')
        else:
            alpha = torch.tensor([float(alpha)] * (num_layers + 1))
        self.register_buffer('alpha', alpha)
        self.embedding = Embedding(num_nodes, embedding_dim)
        resolve_backend(backend)
        self.normalize = bool(kwargs.get('normalize', True))
        self.adj_cache = AdjacencyCache(backend, self.normalize, bipartite=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        torch.nn.init.xavier_uniform_(self.embedding.weight)

    def get_embedding(self, edge_index: Adj, edge_weight: OptTensor = None) -> Tensor:
        r"""The final node embeddings :math:`\mathbf{x} = \sum_l \alpha_l \mathbf{x}^{(l)}`:
        ``[num_nodes, embedding_dim]``. :obj:`edge_index` is an ``edge_index`` or ``EdgeIndex`` of (source,
        destination) pairs, or a ``SparseTensor`` / ``torch.sparse`` ``adj_t``."""
        adj: Adjacency = self.adj_cache(edge_index, self.num_nodes, edge_weight=edge_weight)
        x = self.embedding.weight
        out = x * self.alpha[0]
        for k in range(self.num_layers):
            x = adj.matmul(x)
            out = out + x * self.alpha[k + 1]
        return out

    def forward(self, edge_index: Adj, edge_label_index: OptTensor = None,
                edge_weight: OptTensor = None) -> Tensor:
        r"""Scores :math:`\mathbf{x}_s^\top \mathbf{x}_d` of the pairs in :obj:`edge_label_index` (default: the
        edges of :obj:`edge_index`)."""
        if edge_label_index is None:
            edge_label_index = to_edge_index(edge_index)[0] if is_sparse(edge_index) else edge_index
        out = self.get_embedding(edge_index, edge_weight)
        return (out[edge_label_index[0]] * out[edge_label_index[1]]).sum(dim=-1)

    def predict_link(self, edge_index: Adj, edge_label_index: OptTensor = None, edge_weight: OptTensor = None,
                     prob: bool = False) -> Tensor:
        r"""Link probabilities :math:`\sigma(\mathbf{x}_s^\top \mathbf{x}_d)` (:obj:`prob=True`), or their
        rounding to 0/1."""
        pred = self(edge_index, edge_label_index, edge_weight).sigmoid()
        return pred if prob else pred.round()

    def recommend(self, edge_index: Adj, edge_weight: OptTensor = None, src_index: OptTensor = None,
                  dst_index: OptTensor = None, k: int = 1, sorted: bool = True) -> Tensor:
        r"""The top-:obj:`k` nodes of :obj:`dst_index` (default: all) for each node of :obj:`src_index`
        (default: all), by :math:`\mathbf{x}_s^\top \mathbf{x}_d`: ``[len(src_index), k]`` node ids."""
        out_src = out_dst = self.get_embedding(edge_index, edge_weight)
        if src_index is not None:
            out_src = out_src[src_index]
        if dst_index is not None:
            out_dst = out_dst[dst_index]
        top = (out_src @ out_dst.t()).topk(k, dim=-1, sorted=sorted).indices
        if dst_index is not None:
            top = dst_index[top.view(-1)].view(*top.size())
        return top

    def link_pred_loss(self, pred: Tensor, edge_label: Tensor, **kwargs: Any) -> Tensor:
        r"""Binary cross-entropy on the logits :obj:`pred` (:class:`torch.nn.BCEWithLogitsLoss`, whose
        arguments :obj:`kwargs` are)."""
        return torch.nn.BCEWithLogitsLoss(**kwargs)(pred, edge_label.to(pred.dtype))

    def recommendation_loss(self, pos_edge_rank: Tensor, neg_edge_rank: Tensor, node_id: OptTensor = None,
                            lambda_reg: float = 1e-4, **kwargs: Any) -> Tensor:
        r"""The BPR loss, as PyG's class defines it:

        .. math::
            -\frac{1}{B}\sum_b \ln\sigma(r^+_b - r^-_b) + \frac{\lambda}{B} \|\mathbf{X}^{(0)}_{\text{ids}}\|^2

        over the layer-0 embeddings of :obj:`node_id` (all nodes when :obj:`None`). :obj:`kwargs` (options of
        ``torch.nn.modules.loss._Loss``) are accepted and, as in PyG, change nothing."""
        emb = self.embedding.weight if node_id is None else self.embedding.weight[node_id]
        # BPRLoss's L2 term is reg_weight / (2B) * ||.||^2: reg_weight = 2 lambda gives PyG's lambda / B.
        return BPRLoss(2.0 * lambda_reg)(pos_edge_rank, neg_edge_rank, [emb] if lambda_reg != 0 else [])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.num_nodes}, {self.embedding_dim}, num_layers={self.num_layers})'
