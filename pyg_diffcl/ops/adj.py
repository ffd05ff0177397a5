r"""Sparse adjacency structures, prepared once per graph for a chosen backend."""
from __future__ import annotations

import warnings
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

import torch_geometric.typing as pyg_typing
from torch_geometric.utils import degree

from .norm import bipartite_gcn_norm

#: Backends of :meth:`Adjacency.matmul`, fastest first on CPU as measured by ``benchmarks/``:
#:
#: * ``'edge_index'``: PyG's :class:`~torch_geometric.EdgeIndex` (row-sorted) ``matmul``;
#: * ``'torch_sparse'``: :class:`torch_sparse.SparseTensor` and :func:`torch_sparse.matmul`;
#: * ``'csr'``: a :obj:`torch.sparse_csr` tensor and :func:`torch.sparse.mm`;
#: * ``'scatter'``: gather the source rows, scale, :meth:`Tensor.index_add_` into the targets (pure torch).
BACKENDS = ('edge_index', 'torch_sparse', 'csr', 'scatter')


def available_backends() -> List[str]:
    """The backends usable in this installation (``'torch_sparse'`` needs the torch-sparse package)."""
    return [b for b in BACKENDS if b != 'torch_sparse' or pyg_typing.WITH_TORCH_SPARSE]


def resolve_backend(backend: str, device: Optional[torch.device | str] = None) -> str:
    r"""Resolve ``'auto'`` and check that a named backend is available.

    ``'auto'`` picks PyG's ``EdgeIndex`` on every device: it was the fastest forward+backward path in the
    measurements this library starts from (5.8 ms vs 9.1 ms for ``SparseTensor`` and 27 ms for PyG's
    ``LGConv`` on an ``edge_index``, on a 26k-node, 322k-edge graph, d = 64, 2-core CPU).
    """
    if backend == 'auto':
        return 'edge_index'
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse backend {backend!r} (choose from 'auto', {', '.join(BACKENDS)})")
    if backend not in available_backends():
        raise ValueError(f"sparse backend {backend!r} needs the torch-sparse package, which is not "
                         f"installed (available: {', '.join(available_backends())})")
    return backend


class Adjacency:
    r"""A weighted sparse matrix :math:`\mathbf{M} \in \mathbb{R}^{n_\text{dst} \times n_\text{src}}` prepared
    for one backend, so that :math:`\mathbf{M}\mathbf{X}` costs no conversion at call time.

    Args:
        index (Tensor): ``[2, E]`` (dst, src) pairs.
        weight (Tensor): ``[E]`` values.
        size (Tuple[int, int]): :math:`(n_\text{dst}, n_\text{src})`.
        backend (str): One of :data:`BACKENDS` or ``'auto'``. (default: :obj:`'auto'`)
    """
    def __init__(self, index: Tensor, weight: Tensor, size: Tuple[int, int], backend: str = 'auto') -> None:
        self.backend = resolve_backend(backend, index.device)
        self.size = (int(size[0]), int(size[1]))
        # Sort by destination row once: every backend likes row-major order.
        perm = torch.argsort(index[0] * max(self.size[1], 1) + index[1])
        self.index = index[:, perm].contiguous()
        self.weight = weight[perm].contiguous()
        self._mat: Any = self._build()

    def _build(self) -> Any:
        row, col = self.index
        if self.backend == 'edge_index':
            from torch_geometric import EdgeIndex
            return EdgeIndex(self.index, sparse_size=self.size, sort_order='row')
        if self.backend == 'torch_sparse':
            from torch_sparse import SparseTensor
            return SparseTensor(row=row, col=col, value=self.weight, sparse_sizes=self.size, is_sorted=True)
        if self.backend == 'csr':
            with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice
                warnings.simplefilter('ignore', UserWarning)
                return torch.sparse_coo_tensor(self.index, self.weight, self.size).coalesce().to_sparse_csr()
        return None  # scatter: uses index/weight directly

    @property
    def nnz(self) -> int:
        return self.index.size(1)

    def matmul(self, x: Tensor) -> Tensor:
        r""":math:`\mathbf{M}\mathbf{X}` for a dense ``[n_src, d]`` :obj:`x`, differentiable in :obj:`x`."""
        if x.size(0) != self.size[1]:
            raise ValueError(f'expected {self.size[1]} source rows, got {x.size(0)}')
        if self.backend == 'torch_sparse':
            import torch_sparse
            return torch_sparse.matmul(self._mat, x, reduce='sum')
        if self.backend in ('edge_index', 'csr'):
            with warnings.catch_warnings():  # torch's beta / invariant-check notices on CSR tensors
                warnings.simplefilter('ignore', UserWarning)
                if self.backend == 'edge_index':
                    return self._mat.matmul(x, input_value=self.weight)
                return torch.sparse.mm(self._mat, x)
        row, col = self.index
        msg = x.index_select(0, col) * self.weight.view(-1, 1)
        return x.new_zeros(self.size[0], x.size(1)).index_add_(0, row, msg)

    def to(self, device: torch.device | str) -> 'Adjacency':
        if self.index.device == torch.device(device):
            return self
        return Adjacency(self.index.to(device), self.weight.to(device), self.size, self.backend)

    def to_dense(self) -> Tensor:
        out = self.weight.new_zeros(self.size)
        out[self.index[0], self.index[1]] = self.weight
        return out

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, nnz={self.nnz}, backend={self.backend!r})'


class BipartiteAdj:
    r"""The symmetrically normalised user-item adjacency in both directions, built once per graph.

    With :math:`\hat{\mathbf{R}} = \mathbf{D}_\mathcal{U}^{-1/2}\mathbf{R}\mathbf{D}_\mathcal{I}^{-1/2}`
    (see :func:`bipartite_gcn_norm`), :attr:`item_to_user` is :math:`\hat{\mathbf{R}}` (users x items:
    aggregates item rows into users) and :attr:`user_to_item` is :math:`\hat{\mathbf{R}}^\top`.
    Pass either one as the ``edge_index`` of
    :class:`~pyg_diffcl.nn.conv.BipartiteLightGCNConv`.

    Args:
        edge_index (Tensor): ``[2, E]`` training (user, item) pairs.
        num_users (int): The number of users.
        num_items (int): The number of items.
        backend (str): The sparse backend (:data:`BACKENDS` or ``'auto'``). (default: :obj:`'auto'`)
        normalize (bool): Apply the symmetric normalisation; else unit weights. (default: :obj:`True`)
    """
    def __init__(self, edge_index: Tensor, num_users: int, num_items: int, backend: str = 'auto',
                 normalize: bool = True) -> None:
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.normalize = normalize
        edge_index = edge_index.long()
        if normalize:
            weight = bipartite_gcn_norm(edge_index, self.num_users, self.num_items)
        else:
            weight = torch.ones(edge_index.size(1), device=edge_index.device)
        self.edge_index = edge_index
        self.edge_weight = weight
        self.item_to_user = Adjacency(edge_index, weight, (self.num_users, self.num_items), backend)
        self.user_to_item = Adjacency(edge_index.flip(0), weight, (self.num_items, self.num_users), backend)

    @property
    def item_mean_to_user(self) -> Adjacency:
        r""":math:`\mathbf{D}_\mathcal{U}^{-1}\mathbf{R}` (users x items): each user's row is the plain mean of
        its training items' rows (built on first use, then kept)."""
        adj = getattr(self, '_item_mean_to_user', None)
        if adj is None:
            weight = 1.0 / degree(self.edge_index[0], self.num_users)[self.edge_index[0]]
            adj = self._item_mean_to_user = Adjacency(self.edge_index, weight, (self.num_users, self.num_items),
                                                      self.item_to_user.backend)
        return adj

    @classmethod
    def from_data(cls, data: Any, backend: str = 'auto', normalize: bool = True) -> 'BipartiteAdj':
        """Build from a :class:`~pyg_diffcl.datasets.MMRecDataset` graph (its training edges)."""
        ei = data['user', 'rates', 'item'].edge_index
        return cls(ei, data['user'].num_nodes, data['item'].num_nodes, backend, normalize)

    @property
    def backend(self) -> str:
        return self.item_to_user.backend

    def to(self, device: torch.device | str) -> 'BipartiteAdj':
        if self.edge_index.device == torch.device(device):
            return self
        return BipartiteAdj(self.edge_index.to(device), self.num_users, self.num_items, self.backend,
                            self.normalize)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(users={self.num_users}, items={self.num_items}, '
                f'nnz={self.edge_index.size(1)}, backend={self.backend!r})')
