from __future__ import annotations

from typing import Optional, Tuple, Union

from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj, OptTensor, PairTensor
from torch_geometric.utils import is_sparse

from ...ops import Adjacency, bipartite_gcn_norm, spmm


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

    The adjacency may be

    * an ``edge_index`` ``[2, E]`` of (source, destination) pairs, with :obj:`edge_weight` or, when it is
      :obj:`None` and :obj:`normalize=True`, the weights of
      :func:`~pyg_diffcl.ops.bipartite_gcn_norm` (message passing through scatter); or
    * a prepared :class:`~pyg_diffcl.ops.Adjacency` (destination x source, for example
      ``BipartiteAdj.item_to_user``) or any sparse adjacency PyG accepts (``SparseTensor``,
      ``torch.sparse``, ``EdgeIndex`` in the ``adj_t`` convention) carrying its own weights: the fused
      :meth:`message_and_aggregate` path, whose backend is chosen in one place,
      :func:`pyg_diffcl.ops.spmm`.

    Args:
        normalize (bool, optional): Normalise a plain :obj:`edge_index` without weights.
            (default: :obj:`True`)
        **kwargs (optional): Additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** source features :math:`(|\mathcal{V}_s|, F)` or a pair (source
          :math:`(|\mathcal{V}_s|, F)`, destination :math:`(|\mathcal{V}_t|, *)`), edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)` adjacency,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** destination features :math:`(|\mathcal{V}_t|, F)`
    """
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
        if isinstance(edge_index, Adjacency) or is_sparse(edge_index) or _is_edge_index_type(edge_index):
            return self.message_and_aggregate(edge_index, x)
        if size is None:
            size = (x[0].size(0), x[1].size(0))
        if edge_weight is None and self.normalize:
            edge_weight = bipartite_gcn_norm(edge_index, size[0], size[1])
        return self.propagate(edge_index, x=x, edge_weight=edge_weight, size=size)

    def message(self, x_j: Tensor, edge_weight: OptTensor) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Union[Adj, Adjacency], x: PairTensor) -> Tensor:
        return spmm(adj_t, x[0], reduce=self.aggr)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(normalize={self.normalize})'


def _is_edge_index_type(edge_index: object) -> bool:
    from torch_geometric import EdgeIndex
    return isinstance(edge_index, EdgeIndex)
