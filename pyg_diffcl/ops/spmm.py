r"""The sparse-times-dense product behind every propagation layer: the one place where backends are
dispatched."""
from __future__ import annotations

from torch import Tensor
from torch_geometric.typing import Adj
from torch_geometric.utils import spmm as pyg_spmm

from .adj import Adjacency


def spmm(adj: Adj | Adjacency, x: Tensor, reduce: str = 'sum') -> Tensor:
    r""":math:`\mathbf{M}\mathbf{X}` for a prepared :class:`~pyg_diffcl.ops.Adjacency` (any backend, sum
    only), or any adjacency PyG's :func:`torch_geometric.utils.spmm` accepts (``SparseTensor``,
    ``torch.sparse`` tensors, ``EdgeIndex``)."""
    if isinstance(adj, Adjacency):
        if reduce not in ('sum', 'add'):
            raise ValueError(f"a prepared Adjacency supports reduce='sum' only, got {reduce!r}")
        return adj.matmul(x)
    return pyg_spmm(adj, x, reduce=reduce)
