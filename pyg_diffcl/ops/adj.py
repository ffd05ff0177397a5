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
#: (``docs/backends.md``):
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

    ``'auto'`` is the fastest backend on the host for :obj:`device` (CPU by default), timed once per process
    at its first use (:func:`~pyg_diffcl.ops.autotune.auto_backend`); ``'csr'`` stays unless another backend
    beats it by 10 %. Name a backend to skip the timing; ``benchmarks/propagation.py`` compares them all.
    """
    if backend == 'auto':
        from .autotune import auto_backend
        return auto_backend(device)
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

    An optional prepared cache: every layer and model of the library also takes PyG's own forms of the
    adjacency and prepares one of these from them (:meth:`from_adj`).

    Args:
        edge_index (Tensor): ``[2, E]`` training (user, item) pairs.
        num_users (int): The number of users.
        num_items (int): The number of items.
        backend (str): The sparse backend (:data:`BACKENDS` or ``'auto'``). (default: :obj:`'auto'`)
        normalize (bool): Apply the symmetric normalisation; else the weights as given.
            (default: :obj:`True`)
        edge_weight (Tensor, optional): ``[E]`` entries :math:`r_{ui}` of :math:`\mathbf{R}` (ones when
            :obj:`None`); the degrees of the normalisation are their row and column sums, as in PyG's
            :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm`. (default: :obj:`None`)
    """
    def __init__(self, edge_index: Tensor, num_users: int, num_items: int, backend: str = 'auto',
                 normalize: bool = True, edge_weight: Optional[Tensor] = None) -> None:
        self.num_users = int(num_users)
        self.num_items = int(num_items)
        self.normalize = normalize
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f'edge_index: expected a [2, E] tensor of (user, item) pairs, got '
                             f'{_describe(edge_index)}')
        edge_index = edge_index.as_subclass(Tensor).long()  # an EdgeIndex becomes a plain tensor
        if edge_weight is not None and (edge_weight.dim() != 1 or edge_weight.numel() != edge_index.size(1)):
            raise ValueError(f'edge_weight: expected [{edge_index.size(1)}] values, got '
                             f'{tuple(edge_weight.shape)}')
        if edge_index.numel():
            for name, row, n in (('users', edge_index[0], self.num_users), ('items', edge_index[1],
                                                                           self.num_items)):
                lo, hi = int(row.min()), int(row.max())
                if lo < 0 or hi >= n:
                    raise ValueError(f'edge_index: {name} ids must lie in 0..{n - 1}, got {lo}..{hi}')
        if normalize:
            weight = bipartite_gcn_norm(edge_index, self.num_users, self.num_items, edge_weight)
        elif edge_weight is not None:
            weight = edge_weight.detach().float()
        else:
            weight = torch.ones(edge_index.size(1), device=edge_index.device)
        self.edge_index = edge_index
        self.edge_weight = weight
        self._raw_weight = None if edge_weight is None else edge_weight.detach()
        self.item_to_user = Adjacency(edge_index, weight, (self.num_users, self.num_items), backend)
        self.user_to_item = self.item_to_user.t()

    @classmethod
    def from_adj(cls, adj: Any, num_users: Optional[int] = None, num_items: Optional[int] = None,
                 backend: str = 'auto', normalize: bool = True) -> 'BipartiteAdj':
        r"""Prepare the adjacency from any of PyG's forms of a user-item graph :math:`\mathbf{R}`
        (users x items):

        * an ``edge_index`` ``[2, E]`` of (user, item) pairs (sizes from :obj:`num_users`/:obj:`num_items`);
        * an :class:`~torch_geometric.EdgeIndex` of (user, item) pairs with ``sparse_size=(U, I)``;
        * a :class:`torch_sparse.SparseTensor` of shape ``(U, I)``, with or without values;
        * a ``torch.sparse`` tensor of shape ``(U, I)`` (COO, CSR or CSC);
        * a :class:`BipartiteAdj`, returned as it is (it carries its own normalisation).

        Values of a sparse input are the entries :math:`r_{ui}`; with :obj:`normalize=True` they are
        normalised as PyG's :class:`~torch_geometric.nn.conv.LGConv` normalises a weighted adjacency
        (:func:`bipartite_gcn_norm`), with :obj:`normalize=False` they are used as they are.

        Raises:
            ValueError: a size that disagrees with :obj:`num_users`/:obj:`num_items`, ids out of range, or a
                missing size. TypeError: an object of none of these forms.
        """
        if isinstance(adj, BipartiteAdj):
            for name, want, have in (('num_users', num_users, adj.num_users), ('num_items', num_items,
                                                                               adj.num_items)):
                if want is not None and int(want) != have:
                    raise ValueError(f'adj: a BipartiteAdj with {name}={have}, but {name}={want} was asked')
            return adj
        edge_index, weight, size = bipartite_coo(adj)
        sizes = []
        for name, want, have in (('num_users', num_users, size[0]), ('num_items', num_items, size[1])):
            if want is not None and have is not None and int(want) != int(have):
                raise ValueError(f'adj: its shape says {name}={have}, but {name}={want} was given')
            n = want if want is not None else have
            if n is None:
                raise ValueError(f'adj: an edge_index does not carry the graph size; pass {name}')
            sizes.append(int(n))
        return cls(edge_index, sizes[0], sizes[1], backend, normalize, weight)

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
    def from_data(cls, data: Any, edge_type: Optional[Tuple[str, str, str]] = None, backend: str = 'auto',
                  normalize: bool = True) -> 'BipartiteAdj':
        """Build from a :class:`~torch_geometric.data.HeteroData` graph: the edges of :obj:`edge_type`, or of
        the graph's only user-item edge type when :obj:`None` (:func:`user_item_edge_type`), with the
        source node type as users and the destination node type as items."""
        if isinstance(edge_type, str):
            raise TypeError(f'edge_type: expected a (src, rel, dst) triple, got {edge_type!r}')
        edge_type = user_item_edge_type(data, edge_type)
        store = data[edge_type]
        return cls(store.edge_index, data[edge_type[0]].num_nodes, data[edge_type[2]].num_nodes, backend,
                   normalize, getattr(store, 'edge_weight', None))

    @property
    def backend(self) -> str:
        return self.item_to_user.backend

    def to(self, device: torch.device | str) -> 'BipartiteAdj':
        if self.edge_index.device == torch.device(device):
            return self
        return BipartiteAdj(self.edge_index.to(device), self.num_users, self.num_items, self.backend,
                            self.normalize, None if self._raw_weight is None else self._raw_weight.to(device))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(users={self.num_users}, items={self.num_items}, '
                f'nnz={self.edge_index.size(1)}, backend={self.backend!r})')


def _describe(obj: Any) -> str:
    if isinstance(obj, Tensor):
        return f'{type(obj).__name__} of shape {tuple(obj.shape)} and dtype {obj.dtype}'
    return type(obj).__name__


def bipartite_coo(adj: Any) -> Tuple[Tensor, Optional[Tensor], Tuple[Optional[int], Optional[int]]]:
    r"""``(edge_index [2, E], values [E] or None, (rows, cols))`` of a user-item adjacency given in any of
    PyG's forms (see :meth:`BipartiteAdj.from_adj`); a size is :obj:`None` where the input does not carry it
    (a plain ``edge_index``)."""
    from torch_geometric import EdgeIndex
    if isinstance(adj, EdgeIndex):
        rows, cols = adj.sparse_size()
        return adj.as_subclass(Tensor), None, (rows, cols)
    if pyg_typing.WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor
        if isinstance(adj, SparseTensor):
            row, col, value = adj.coo()
            return torch.stack([row, col]), value, (adj.size(0), adj.size(1))
    if isinstance(adj, Tensor) and adj.layout != torch.strided:
        if adj.dim() != 2:
            raise ValueError(f'adj: expected a 2-D sparse (users x items) matrix, got {_describe(adj)}')
        coo = (adj if adj.layout == torch.sparse_coo else adj.to_sparse_coo()).coalesce()
        return coo.indices(), coo.values(), (adj.size(0), adj.size(1))
    if isinstance(adj, Tensor):
        if adj.dim() != 2 or adj.size(0) != 2 or adj.is_floating_point() or adj.dtype == torch.bool:
            raise ValueError(f'adj: expected an integer edge_index [2, E] of (user, item) pairs, got '
                             f'{_describe(adj)}')
        return adj, None, (None, None)
    raise TypeError(f'adj: expected an edge_index, EdgeIndex, SparseTensor, torch.sparse tensor or '
                    f'BipartiteAdj, got {type(adj).__name__}')


class SubgraphAdj:
    r"""The two directions of a sampled user-item subgraph, each its own matrix: :attr:`item_to_user`
    (:math:`|\mathcal{U}_s| \times |\mathcal{I}_s|`, the edges sampled into users) and :attr:`user_to_item`
    (:math:`|\mathcal{I}_s| \times |\mathcal{U}_s|`, the edges sampled into items). A neighbour sampler
    draws the two independently, so, unlike :class:`BipartiteAdj`, one is not the transpose of the other;
    :class:`~pyg_diffcl.nn.LightGCNPropagation` then records every layer on the autograd tape (its fused
    backward needs a symmetric map).

    The values are the caller's: :class:`~pyg_diffcl.datasets.NeighborBPRSampler` gives every sampled edge
    the weight of the whole graph's normalisation, :math:`1/\sqrt{d_u d_i}` with the full degrees.

    Args:
        item_to_user (Tuple[Tensor, Tensor]): ``[2, E_u]`` (local user, local item) pairs and ``[E_u]`` values.
        user_to_item (Tuple[Tensor, Tensor]): ``[2, E_i]`` (local item, local user) pairs and ``[E_i]`` values.
        num_users (int): :math:`|\mathcal{U}_s|`, the subgraph's users.
        num_items (int): :math:`|\mathcal{I}_s|`, the subgraph's items.
        backend (str): The sparse backend (:data:`BACKENDS` or ``'auto'``). (default: :obj:`'auto'`)
    """
    symmetric = False

    def __init__(self, item_to_user: Tuple[Tensor, Tensor], user_to_item: Tuple[Tensor, Tensor],
                 num_users: int, num_items: int, backend: str = 'auto') -> None:
        self.num_users, self.num_items = int(num_users), int(num_items)
        self.item_to_user = Adjacency(item_to_user[0], item_to_user[1], (self.num_users, self.num_items), backend)
        self.user_to_item = Adjacency(user_to_item[0], user_to_item[1], (self.num_items, self.num_users),
                                      self.item_to_user.backend)

    @property
    def backend(self) -> str:
        return self.item_to_user.backend

    def to(self, device: torch.device | str) -> 'SubgraphAdj':
        if self.item_to_user.index.device == torch.device(device):
            return self
        out = SubgraphAdj.__new__(SubgraphAdj)
        out.num_users, out.num_items = self.num_users, self.num_items
        out.item_to_user, out.user_to_item = self.item_to_user.to(device), self.user_to_item.to(device)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(users={self.num_users}, items={self.num_items}, '
                f'nnz=({self.item_to_user.nnz}, {self.user_to_item.nnz}), backend={self.backend!r})')


def user_item_edge_type(data: Any, edge_type: Optional[Tuple[str, str, str]] = None) -> Tuple[str, str, str]:
    r"""The user-item edge type of a :class:`~torch_geometric.data.HeteroData` graph.

    With :obj:`edge_type` given, it is checked to exist. Otherwise the graph must have exactly one edge type
    between two different node types, not counting reverse edges: a type whose relation starts with
    ``'rev_'`` (added by :class:`~torch_geometric.transforms.ToUndirected`), or the second of a pair
    :math:`(a, r, b)`, :math:`(b, r', a)` in :obj:`data.edge_types` order (PyG's ``MovieLens100K`` stores
    ``('user', 'rates', 'movie')`` before ``('movie', 'rated_by', 'user')``). The source node type is taken
    as the users, the destination as the items: ``('customer', 'buys', 'product')`` works as
    ``('user', 'rates', 'item')`` does.

    Raises:
        ValueError: the named type is missing, or there is no single candidate (the message lists them).
    """
    types = [tuple(t) for t in getattr(data, 'edge_types', [])]
    if edge_type is not None:
        edge_type = tuple(edge_type)
        if edge_type not in types:
            raise ValueError(f'edge_type: {edge_type} is not in the graph (edge types: {types})')
        return edge_type  # type: ignore[return-value]
    candidates: List[Tuple[str, str, str]] = []
    for t in types:
        src, rel, dst = t
        if src == dst or rel.startswith('rev_'):
            continue
        if any(c[0] == dst and c[2] == src for c in candidates):  # the reverse of one already kept
            continue
        candidates.append(t)  # type: ignore[arg-type]
    if len(candidates) != 1:
        raise ValueError(f'edge_type: the graph has {len(candidates)} candidate user-item edge types '
                         f'({candidates}; all edge types: {types}); name one')
    return candidates[0]


def normalize_sparse_adj(adj: Any) -> Any:
    r"""LightGCN's symmetric normalisation of a sparse bipartite matrix :math:`\mathbf{M}` (``SparseTensor``
    or ``torch.sparse``, values :math:`m_{ij}` or ones), returned in the same form:
    :math:`m_{ij} / \sqrt{\sum_{j'} m_{ij'}} \sqrt{\sum_{i'} m_{i'j}}`, the rows and the columns being the
    two node sets (:func:`bipartite_gcn_norm`). What :class:`~torch_geometric.nn.conv.LGConv` does to a
    sparse adjacency with ``normalize=True``, for a rectangular one."""
    edge_index, value, size = bipartite_coo(adj)
    weight = bipartite_gcn_norm(edge_index, int(size[0]), int(size[1]), value)
    if isinstance(adj, Tensor):
        out = torch.sparse_coo_tensor(edge_index, weight, adj.shape, is_coalesced=True)
        return {torch.sparse_csr: out.to_sparse_csr, torch.sparse_csc: out.to_sparse_csc}.get(
            adj.layout, lambda: out)()
    return adj.set_value(weight, layout='coo')


def _versions(adj: Any) -> Tuple[int, ...]:
    """In-place modification counters of the tensors behind :obj:`adj` (a changed graph is prepared anew)."""
    if isinstance(adj, Tensor):
        return (adj._version,)
    storage = getattr(adj, 'storage', None)  # SparseTensor
    if storage is not None:
        parts = (storage.row(), storage.col(), storage.value())
        return tuple(-1 if t is None else t._version for t in parts)
    return ()


def graph_adjacency(adj: Any, num_nodes: Optional[int] = None, edge_weight: Optional[Tensor] = None,
                    normalize: bool = True, backend: str = 'auto') -> Adjacency:
    r"""The propagation matrix :math:`\mathbf{M}` (destination x source) of a homogeneous graph given in any of
    PyG's forms, prepared for :obj:`backend`: an ``edge_index`` or ``EdgeIndex`` of (source, destination)
    pairs with optional :obj:`edge_weight`, or a ``SparseTensor`` / ``torch.sparse`` ``adj_t`` (destination x
    source) carrying its values. With :obj:`normalize=True`, :math:`\mathbf{M} = \mathbf{D}^{-1/2}
    \mathbf{A}^\top\mathbf{D}^{-1/2}` without self-loops, the normalisation of PyG's
    :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` (``add_self_loops=False``), which
    :class:`~torch_geometric.nn.conv.LGConv` applies; otherwise the weights as given."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    if isinstance(adj, Tensor) and adj.layout == torch.strided:  # edge_index or EdgeIndex
        index, value, size = bipartite_coo(adj)  # (source, destination)
        if value is None:
            value = edge_weight
        src, dst = index[0], index[1]
    else:
        if edge_weight is not None:
            raise ValueError('edge_weight: a sparse adjacency carries its own values; pass None')
        index, value, size = bipartite_coo(adj)  # adj_t: (destination, source)
        dst, src = index[0], index[1]
    n = num_nodes if num_nodes is not None else next((int(v) for v in size if v is not None), None)
    if n is None:
        n = int(index.max()) + 1 if index.numel() else 0
    for v in size:
        if v is not None and int(v) != n:
            raise ValueError(f'adj: a {size[0]} x {size[1]} adjacency for {n} nodes')
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f'adj: node ids must lie in 0..{n - 1}, got {int(index.min())}..{int(index.max())}')
    pair = torch.stack([src, dst]).long()
    if normalize:
        _, weight = gcn_norm(pair, value, n, add_self_loops=False)
    else:
        weight = value if value is not None else torch.ones(pair.size(1), device=pair.device)
    return Adjacency(pair.flip(0), weight.detach().float(), (n, n), backend)


class AdjacencyCache:
    r"""The adjacency prepared for the last graph a layer or model was given, so that a caller who passes the
    same ``edge_index`` (or ``EdgeIndex``, ``SparseTensor``, ``torch.sparse`` matrix) at every step, as PyG's
    examples do, pays for the normalisation and the sparse layout once.

    The entry is reused only for the very same objects (the adjacency and the edge weights), unchanged since
    (their in-place version counters), of the same sizes; anything else is prepared anew and replaces it. A
    prepared input (:class:`BipartiteAdj`, or :class:`Adjacency` for a homogeneous graph) is used as it is.
    The cache holds a reference to the last input.

    Args:
        backend (str): The sparse backend of the prepared adjacency. (default: :obj:`'auto'`)
        normalize (bool): Normalise raw inputs. (default: :obj:`True`)
        bipartite (bool): Users x items graphs, called as ``cache(adj, num_users, num_items)`` and prepared
            by :meth:`BipartiteAdj.from_adj`; else homogeneous graphs, called as ``cache(adj, num_nodes,
            edge_weight)`` and prepared by :func:`graph_adjacency`. (default: :obj:`True`)
    """
    def __init__(self, backend: str = 'auto', normalize: bool = True, bipartite: bool = True) -> None:
        self.backend, self.normalize, self.bipartite = backend, normalize, bipartite
        self._entry: Optional[Tuple[Any, Any, Tuple[Any, ...], Any]] = None

    def __call__(self, adj: Any, *sizes: Optional[int], edge_weight: Optional[Tensor] = None) -> Any:
        if self.bipartite and isinstance(adj, BipartiteAdj):
            return BipartiteAdj.from_adj(adj, *sizes)
        if self.bipartite and isinstance(adj, SubgraphAdj):
            return adj
        if not self.bipartite and isinstance(adj, Adjacency):
            return adj
        key = (_versions(adj), sizes, None if edge_weight is None else edge_weight._version)
        entry = self._entry
        if entry is not None and entry[0] is adj and entry[1] is edge_weight and entry[2] == key:
            return entry[3]
        if self.bipartite:
            if edge_weight is not None:
                raise ValueError('edge_weight: give a weighted users x items graph as a sparse matrix')
            prepared = BipartiteAdj.from_adj(adj, *sizes, backend=self.backend, normalize=self.normalize)
        else:
            prepared = graph_adjacency(adj, *sizes, edge_weight=edge_weight, normalize=self.normalize,
                                       backend=self.backend)
        self._entry = (adj, edge_weight, key, prepared)
        return prepared

    def clear(self) -> None:
        self._entry = None

    def __getstate__(self) -> dict:  # a copied or pickled module does not carry the graph along
        return {'backend': self.backend, 'normalize': self.normalize, 'bipartite': self.bipartite,
                '_entry': None}

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(backend={self.backend!r}, normalize={self.normalize}, '
                f'bipartite={self.bipartite})')
