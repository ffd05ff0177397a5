from __future__ import annotations

from typing import Final, Optional, Tuple, Union

from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj, OptTensor, PairTensor
from torch_geometric.utils import is_sparse

from ...ops import Adjacency, bipartite_gcn_norm, normalize_sparse_adj, spmm


class BipartiteLightGCNConv(MessagePassing):
    r"""One LightGCN propagation step on a bipartite graph, from the
    `"LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper: every destination node sums its source neighbours'
    embeddings, symmetrically normalised, with no self-loop, weight or non-linearity:

    .. math::
        \mathbf{x}^{\prime}_i = \sum_{j \in \mathcal{N}(i)} \frac{1}{\sqrt{\deg(i)}\sqrt{\deg(j)}}
        \mathbf{x}_j

    For users and items, one call per direction gives LightGCN's layer,
    :math:`\mathbf{e}_u^{(k+1)} = \sum_{i \in \mathcal{N}_u} \frac{1}{\sqrt{|\mathcal{N}_u|}
    \sqrt{|\mathcal{N}_i|}} \mathbf{e}_i^{(k)}` and likewise for items. Users and items keep their own
    numbering (no offsets).

    The adjacency may be any of PyG's forms, with PyG's conventions:

    * an ``edge_index`` ``[2, E]`` or an :class:`~torch_geometric.EdgeIndex` of (source, destination)
      pairs, with optional :obj:`edge_weight` (message passing through :meth:`propagate`; an ``EdgeIndex``
      sorted by column takes the fused :meth:`message_and_aggregate` path, as in PyG's ``GraphConv``);
    * a ``SparseTensor`` or ``torch.sparse`` matrix in the ``adj_t`` convention (destination x source),
      with or without values (fused through :meth:`propagate` and :meth:`message_and_aggregate`);
    * a prepared :class:`~pyg_diffcl.ops.Adjacency` (destination x source, for example
      ``BipartiteAdj.item_to_user``), whose weights are final: the product goes straight to the backend
      chosen in one place, :func:`pyg_diffcl.ops.spmm`.

    With :obj:`normalize=True` the first two forms are normalised as :class:`~torch_geometric.nn.conv.LGConv`
    normalises its input: the given weights (ones when there are none) divided by the square roots of the
    weighted degrees of both ends (:func:`~pyg_diffcl.ops.bipartite_gcn_norm`,
    :func:`~pyg_diffcl.ops.normalize_sparse_adj`), at every call. A prepared adjacency is never
    re-normalised.

    Args:
        normalize (bool, optional): Normalise an ``edge_index``, ``EdgeIndex`` or raw sparse input.
            (default: :obj:`True`)
        **kwargs (optional): Additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** source features :math:`(|\mathcal{V}_s|, F)` or a pair (source
          :math:`(|\mathcal{V}_s|, F)`, destination :math:`(|\mathcal{V}_t|, *)`), edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)` adjacency,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** destination features :math:`(|\mathcal{V}_t|, F)`
    """
    SUPPORTS_FUSED_EDGE_INDEX: Final[bool] = True

    def __init__(self, normalize: bool = True, **kwargs) -> None:
        kwargs.setdefault('aggr', 'add')
        super().__init__(**kwargs)
        self.normalize = normalize
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Union[Adj, Adjacency],
                edge_weight: OptTensor = None, size: Optional[Tuple[int, int]] = None) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        if isinstance(edge_index, Adjacency):  # prepared: its weights are final
            return edge_index.matmul(x[0])
        if is_sparse(edge_index):  # adj_t: destination x source
            if edge_weight is not None:
                raise ValueError('edge_weight: a sparse adjacency carries its own values; pass None')
            if self.normalize:
                edge_index = normalize_sparse_adj(edge_index)
            return self.propagate(edge_index, x=x, edge_weight=None, size=None)
        if size is None:
            size = (x[0].size(0), x[1].size(0))
        if self.normalize:
            edge_weight = bipartite_gcn_norm(edge_index.as_subclass(Tensor), size[0], size[1], edge_weight)
        return self.propagate(edge_index, x=x, edge_weight=edge_weight, size=size)

    def message(self, x_j: Tensor, edge_weight: OptTensor) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, edge_index: Union[Adj, Adjacency], x: PairTensor,
                              edge_weight: OptTensor = None) -> Tensor:
        if isinstance(edge_index, EdgeIndex):  # (source, destination), sorted by destination
            # The flipped EdgeIndex is the (destination x source) matrix, sorted by row. Not matmul(...,
            # transpose=True): its backward builds a wrongly shaped matrix when the sizes differ (PyG 2.8.1).
            return edge_index.flip(0).matmul(other=x[0], input_value=edge_weight, reduce=self.aggr)
        return spmm(edge_index, x[0], reduce=self.aggr)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(normalize={self.normalize})'

