r"""Sparse adjacency structures, prepared once per graph for a chosen backend."""
from __future__ import annotations

import warnings
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

import torch_geometric.typing as pyg_typing
from torch_geometric.utils import degree

from .norm import bipartite_gcn_norm

#: Backends of :meth:`Adjacency.matmul`. ``benchmarks/propagation.py`` measures them on the machine at hand
#: (README, "Choosing a backend"):
#:
#: * ``'csr'``: a :obj:`torch.sparse_csr` matrix (32-bit indices where they fit) and :func:`torch.sparse.mm`
#:   (MKL on CPU, cuSPARSE on CUDA); the backward pass multiplies by the transposed matrix, prepared once;
#: * ``'edge_index'``: PyG's :class:`~torch_geometric.EdgeIndex` (row-sorted) ``matmul``, PyG's own autograd;
#: * ``'torch_sparse'``: :class:`torch_sparse.SparseTensor` and :func:`torch_sparse.matmul`, its own autograd;
#: * ``'torch_scatter'``: gather the source rows, scale, :func:`torch_scatter.scatter` (sum) into the targets;
#: * ``'index_add'``: the same with torch's :meth:`Tensor.index_add_`;
#: * ``'scatter_reduce'``: the same with torch's :meth:`Tensor.scatter_reduce_` (``'sum'``).
#:
#: The four backends not marked "own autograd" share one backward: the product with the transposed matrix.
BACKENDS = ('csr', 'edge_index', 'torch_sparse', 'torch_scatter', 'index_add', 'scatter_reduce')
#: Whether torch's CPU sparse-dense products go to MKL (whose ``beta = 0`` never reads the output buffer; other
#: builds get a zero-initialised one).
_MKL = torch.backends.mkl.is_available()

#: Message bytes per chunk of edges on the scatter backends.
SCATTER_CHUNK_BYTES = 2 << 20
_NEEDS = {'torch_sparse': ('WITH_TORCH_SPARSE', 'torch-sparse'), 'torch_scatter': ('WITH_TORCH_SCATTER',
                                                                                   'torch-scatter')}


def available_backends() -> List[str]:
    """The backends usable in this installation (``'torch_sparse'`` and ``'torch_scatter'`` need their
    packages)."""
    return [b for b in BACKENDS if b not in _NEEDS or getattr(pyg_typing, _NEEDS[b][0])]


def resolve_backend(backend: str, device: Optional[torch.device | str] = None) -> str:
    r"""Resolve ``'auto'`` and check that a named backend is available.

    ``'auto'`` is ``'csr'`` on every device. On CPU, ``benchmarks/propagation.py`` measured it the fastest
    forward+backward path on this project's machine (README, "Choosing a backend"): MKL's sparse-dense
    product with 32-bit indices, and a backward that reuses a transposed matrix built once instead of
    transposing per call. On CUDA the same code calls cuSPARSE's SpMM, the kernel PyG's ``EdgeIndex`` also
    calls there; rerun the benchmark with ``--device cuda`` to check the choice on your GPU.
    """
    if backend == 'auto':
        return 'csr'
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse backend {backend!r} (choose from 'auto', {', '.join(BACKENDS)})")
    if backend not in available_backends():
        raise ValueError(f"sparse backend {backend!r} needs the {_NEEDS[backend][1]} package, which is not "
                         f"installed (available: {', '.join(available_backends())})")
    return backend


class _AdjMatmul(torch.autograd.Function):
    r""":math:`\mathbf{Y} = \mathbf{M}\mathbf{X}` with :math:`\partial L / \partial \mathbf{X} =
    \mathbf{M}^\top \partial L / \partial \mathbf{Y}` through the prepared transpose (the adjacency is a
    constant: no gradient for its values)."""
    @staticmethod
    def forward(ctx: Any, x: Tensor, adj: 'Adjacency') -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj._product(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Tensor, None]:  # type: ignore[override]
        return ctx.adj.t()._product(grad.contiguous()), None


class Adjacency:
    r"""A weighted sparse matrix :math:`\mathbf{M} \in \mathbb{R}^{n_\text{dst} \times n_\text{src}}` prepared
    for one backend, so that :math:`\mathbf{M}\mathbf{X}` costs no conversion at call time.

    The matrix is a constant of the model (no gradient flows to :obj:`weight`). For the backends of
    :data:`BACKENDS` without an autograd of their own, the backward pass is the product with
    :math:`\mathbf{M}^\top`, prepared on first use and kept (:meth:`t`; a :class:`BipartiteAdj` links its two
    directions, so nothing is built twice).

    Args:
        index (Tensor): ``[2, E]`` (dst, src) pairs.
        weight (Tensor): ``[E]`` values.
        size (Tuple[int, int]): :math:`(n_\text{dst}, n_\text{src})`.
        backend (str): One of :data:`BACKENDS` or ``'auto'``. (default: :obj:`'auto'`)
    """
    def __init__(self, index: Tensor, weight: Tensor, size: Tuple[int, int], backend: str = 'auto') -> None:
        self.backend = resolve_backend(backend, index.device)
        self.size = (int(size[0]), int(size[1]))
        if index.dim() != 2 or index.size(0) != 2 or weight.dim() != 1 or weight.numel() != index.size(1):
            raise ValueError(f'expected index [2, E] and weight [E], got {tuple(index.shape)} and '
                             f'{tuple(weight.shape)}')
        index = index.long()
        if index.numel() and (int(index.min()) < 0 or int(index[0].max()) >= self.size[0]
                              or int(index[1].max()) >= self.size[1]):
            raise ValueError(f'index out of range for a {self.size[0]} x {self.size[1]} matrix')
        # Sort by destination row once: every backend likes row-major order.
        perm = torch.argsort(index[0] * max(self.size[1], 1) + index[1])
        self.index = index[:, perm].contiguous()
        self.weight = weight.detach()[perm].contiguous()
        self._transpose: Optional[Adjacency] = None
        self._mat: Any = self._build()

    def _build(self) -> Any:
        row, col = self.index
        if self.backend == 'csr':
            small = max(self.size[0], self.size[1], self.nnz) < 2**31 - 1
            dtype = torch.int32 if small else torch.long
            crow = torch.zeros(self.size[0] + 1, dtype=torch.long, device=row.device)
            crow[1:] = torch.bincount(row, minlength=self.size[0]).cumsum(0)
            with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice
                warnings.simplefilter('ignore', UserWarning)
                return torch.sparse_csr_tensor(crow.to(dtype), col.to(dtype), self.weight, self.size,
                                               check_invariants=False)
        if self.backend == 'edge_index':
            from torch_geometric import EdgeIndex
            return EdgeIndex(self.index, sparse_size=self.size, sort_order='row')
        if self.backend == 'torch_sparse':
            from torch_sparse import SparseTensor
            return SparseTensor(row=row, col=col, value=self.weight, sparse_sizes=self.size, is_sorted=True)
        return None  # the scatter backends use index/weight directly

    @property
    def nnz(self) -> int:
        return self.index.size(1)

    def t(self) -> 'Adjacency':
        r""":math:`\mathbf{M}^\top` on the same backend (built on first use, then kept)."""
        if self._transpose is None:
            self._transpose = Adjacency(self.index.flip(0), self.weight, (self.size[1], self.size[0]),
                                        self.backend)
            self._transpose._transpose = self
        return self._transpose

    def _product(self, x: Tensor) -> Tensor:
        """:math:`\\mathbf{M}\\mathbf{X}` without autograd bookkeeping (every backend)."""
        with warnings.catch_warnings():  # torch's beta / invariant-check notices on CSR tensors
            warnings.simplefilter('ignore', UserWarning)
            if self.backend == 'csr':
                if x.device.type == 'cpu' and _MKL:  # MKL ignores C when beta = 0: no fill, no copy
                    return x.new_empty(self.size[0], x.size(1)).addmm_(self._mat, x, beta=0.0)
                return torch.sparse.mm(self._mat, x)
            if self.backend == 'edge_index':
                return self._mat.matmul(x, input_value=self.weight)
        if self.backend == 'torch_sparse':
            import torch_sparse
            return torch_sparse.matmul(self._mat, x, reduce='sum')
        # Gather, scale, scatter-add, in chunks of edges whose messages fit in a core's cache (and stay below
        # the allocator's mmap threshold): one [E, d] message buffer costs a page-faulting round trip to DRAM.
        out = x.new_zeros(self.size[0], x.size(1))
        step = max(1, SCATTER_CHUNK_BYTES // max(1, x.size(1) * x.element_size()))
        for start in range(0, self.nnz, step):
            row, col = self.index[0, start:start + step], self.index[1, start:start + step]
            msg = x.index_select(0, col).mul_(self.weight[start:start + step].view(-1, 1))
            if self.backend == 'torch_scatter':
                import torch_scatter
                torch_scatter.scatter(msg, row, dim=0, out=out, reduce='sum')
            elif self.backend == 'index_add':
                out.index_add_(0, row, msg)
            else:
                out.scatter_reduce_(0, row.view(-1, 1).expand_as(msg), msg, reduce='sum')
        return out

    def matmul(self, x: Tensor) -> Tensor:
        r""":math:`\mathbf{M}\mathbf{X}` for a dense ``[n_src, d]`` :obj:`x`, differentiable in :obj:`x`."""
        if x.dim() != 2 or x.size(0) != self.size[1]:
            raise ValueError(f'expected {self.size[1]} source rows [n_src, d], got shape {tuple(x.shape)}')
        x = x.contiguous()
        if self.backend in ('edge_index', 'torch_sparse') or not (x.requires_grad and torch.is_grad_enabled()):
            return self._product(x)
        return _AdjMatmul.apply(x, self)

    def addmm_(self, out: Tensor, x: Tensor, beta: float = 1.0, alpha: float = 1.0) -> Tensor:
        r"""In place and without autograd: :math:`\mathbf{O} \leftarrow \beta\,\mathbf{O} +
        \alpha\,\mathbf{M}\mathbf{X}` for a dense ``[n_dst, d]`` :obj:`out`; returns :obj:`out`. On the
        ``'csr'`` backend on CPU this is one MKL call that adds into :obj:`out` as it goes (no temporary, no
        extra pass over :obj:`out`)."""
        if self.backend == 'csr' and out.device.type == 'cpu':
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', UserWarning)
                return out.addmm_(self._mat, x.contiguous(), beta=beta, alpha=alpha)
        if beta != 1.0:
            out.mul_(beta)
        return out.add_(self._product(x.contiguous()), alpha=alpha)

    def to(self, device: torch.device | str) -> 'Adjacency':
        if self.index.device == torch.device(device):
            return self
        return Adjacency(self.index.to(device), self.weight.to(device), self.size, self.backend)

    def to_dense(self) -> Tensor:
        out = self.weight.new_zeros(self.size)
        return out.index_put_((self.index[0], self.index[1]), self.weight, accumulate=True)

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
        self.user_to_item = self.item_to_user.t()

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
