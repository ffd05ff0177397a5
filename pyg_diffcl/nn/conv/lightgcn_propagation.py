from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from ...ops import AdjacencyCache, BipartiteAdj, resolve_backend
from .bipartite_lightgcn_conv import BipartiteLightGCNConv


class LightGCNPropagation(torch.nn.Module):
    r"""Multi-layer LightGCN propagation over a user-item graph with a layer combination, built on
    :class:`BipartiteLightGCNConv` (one call per direction and layer):

    .. math::
        \mathbf{e}_u^{(k+1)} = \sum_{i \in \mathcal{N}_u} \frac{\mathbf{e}_i^{(k)}}{\sqrt{|\mathcal{N}_u|}
        \sqrt{|\mathcal{N}_i|}}, \quad
        \mathbf{e}_i^{(k+1)} = \sum_{u \in \mathcal{N}_i} \frac{\mathbf{e}_u^{(k)}}{\sqrt{|\mathcal{N}_i|}
        \sqrt{|\mathcal{N}_u|}}, \quad
        \mathbf{e} = \sum_{k=0}^{K} \alpha_k \mathbf{e}^{(k)}

    LightGCN averages the layers (:math:`\alpha_k = 1/(K+1)`, :obj:`combine='mean'`); DiffCL's Eq. 4 sums
    them (:math:`\alpha_k = 1`, :obj:`combine='sum'`); explicit weights go in :obj:`alpha`. No parameters.

    With :math:`\mathbf{A} = \begin{pmatrix} 0 & \hat{\mathbf{R}} \\ \hat{\mathbf{R}}^\top & 0
    \end{pmatrix}` the whole layer stack is the linear map :math:`\mathbf{E} = \sum_k \alpha_k
    \mathbf{A}^k \mathbf{E}^{(0)}`, and since :math:`\mathbf{A}` is symmetric its backward pass is the same
    map applied to the incoming gradient, :math:`\partial L/\partial \mathbf{E}^{(0)} = \sum_k \alpha_k
    \mathbf{A}^k \, \partial L/\partial \mathbf{E}`. With :obj:`fused=True` the stack runs as one autograd
    node that does exactly that: no intermediate layer is kept for the backward pass (memory
    :math:`O((|\mathcal{U}|+|\mathcal{I}|) d)` instead of :math:`O(K (|\mathcal{U}|+|\mathcal{I}|) d)`) and
    the layer sums accumulate in place. :obj:`fused=False` records every layer on the autograd tape.

    A :obj:`perturb` function given to :meth:`forward` is applied to every layer's output before the next
    layer reads it and before it enters the sum, :math:`\mathbf{E}^{(k+1)} = \phi(\mathbf{A}
    \mathbf{E}^{(k)})`: SimGCL's and MENTOR's noisy views (:class:`~pyg_diffcl.nn.SimGCLNoise`). The map
    is then no longer linear, so that call records every layer on the autograd tape.

    The adjacency :math:`\mathbf{R}` (users x items) may be given in any of PyG's forms: an ``edge_index``
    ``[2, E]`` of (user, item) pairs, an :class:`~torch_geometric.EdgeIndex` with ``sparse_size=(U, I)``, a
    ``SparseTensor`` or ``torch.sparse`` matrix of shape ``(U, I)`` (values as weights), or a prepared
    :class:`~pyg_diffcl.ops.BipartiteAdj`, or a sampled subgraph's :class:`~pyg_diffcl.ops.SubgraphAdj`
    (its two directions sampled apart, so always on the autograd tape). Raw inputs are normalised as above (weighted degrees for weighted
    ones) and prepared once: the layer keeps the prepared adjacency of the last input it saw
    (:class:`~pyg_diffcl.ops.AdjacencyCache`) and reuses it while the same, unmodified object comes back.

    Args:
        num_layers (int): :math:`K`.
        combine (str, optional): ``'mean'`` or ``'sum'``. (default: :obj:`'mean'`)
        alpha (Sequence[float], optional): :math:`\alpha_0..\alpha_K`, overriding :obj:`combine`.
            (default: :obj:`None`)
        fused (bool, optional): Run the stack as one autograd node whose backward is the same propagation
            (see above). (default: :obj:`True`)
        backend (str, optional): The sparse backend of an adjacency prepared from a raw input
            (:data:`~pyg_diffcl.ops.BACKENDS` or ``'auto'``). (default: :obj:`'auto'`)

    Shapes:
        - **input:** adjacency (see above), user embeddings :math:`(|\mathcal{U}|, d)`, item embeddings
          :math:`(|\mathcal{I}|, d)`
        - **output:** ``(user, item)`` embeddings :math:`(|\mathcal{U}|, d)`, :math:`(|\mathcal{I}|, d)`
    """
    def __init__(self, num_layers: int, combine: str = 'mean', alpha: Optional[Sequence[float] | Tensor] = None,
                 fused: bool = True, backend: str = 'auto') -> None:
        super().__init__()
        resolve_backend(backend)
        if num_layers < 0:
            raise ValueError(f'num_layers must be non-negative, got {num_layers}')
        if combine not in ('mean', 'sum'):
            raise ValueError(f"combine must be 'mean' or 'sum', got {combine!r}")
        self.num_layers, self.combine = num_layers, combine
        if alpha is None:
            alpha = [1.0 / (num_layers + 1) if combine == 'mean' else 1.0] * (num_layers + 1)
        alpha = torch.as_tensor(alpha, dtype=torch.float)
        if alpha.numel() != num_layers + 1:
            raise ValueError(f'alpha needs num_layers + 1 = {num_layers + 1} values, got {alpha.numel()}')
        self.register_buffer('alpha', alpha)
        self.fused = fused
        # equal weights: sum the layers and scale once (saves 2L elementwise passes, forward and backward)
        self._common = float(alpha[0]) if bool((alpha == alpha[0]).all()) else None
        self.conv = BipartiteLightGCNConv()
        self.adj_cache = AdjacencyCache(backend)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, adj: Union[Adj, BipartiteAdj], x_user: Tensor, x_item: Tensor,
                perturb: Optional[Callable[[Tensor], Tensor]] = None) -> Tuple[Tensor, Tensor]:
        adj = self.adj_cache(adj, x_user.size(0), x_item.size(0))
        if perturb is not None:
            return self._perturbed(adj, x_user, x_item, perturb)
        if (self.fused and self.num_layers > 0 and getattr(adj, 'symmetric', True) and torch.is_grad_enabled()
                and (x_user.requires_grad or x_item.requires_grad)):
            return _FusedPropagation.apply(x_user, x_item, self, adj)
        return self._propagate(adj, x_user, x_item, inplace=not torch.is_grad_enabled())

    def _perturbed(self, adj: BipartiteAdj, x_user: Tensor, x_item: Tensor,
                   perturb: Callable[[Tensor], Tensor]) -> Tuple[Tensor, Tensor]:
        """The layer stack with :obj:`perturb` applied to each layer's output, on the autograd tape."""
        out_user, out_item = self.alpha[0] * x_user, self.alpha[0] * x_item
        h_user, h_item = x_user, x_item
        for k in range(1, self.num_layers + 1):
            h_user, h_item = (perturb(self.conv((h_item, h_user), adj.item_to_user)),
                              perturb(self.conv((h_user, h_item), adj.user_to_item)))
            out_user, out_item = out_user + self.alpha[k] * h_user, out_item + self.alpha[k] * h_item
        return out_user, out_item

    def _propagate(self, adj: BipartiteAdj, x_user: Tensor, x_item: Tensor, inplace: bool
                   ) -> Tuple[Tensor, Tensor]:
        r"""The layer stack. With :obj:`inplace` (no autograd) the layer sums accumulate in place, never into
        the caller's tensors, and the last layer's product is added straight into the sum with its weight and
        the sum's scaling, :math:`\mathbf{E} \leftarrow \beta\mathbf{E} + \alpha_K
        \mathbf{M}\mathbf{E}^{(K-1)}` (:meth:`~pyg_diffcl.ops.Adjacency.addmm_`: one MKL call on the
        ``'csr'`` backend)."""
        K, common = self.num_layers, self._common
        if K == 0:
            return (x_user, x_item) if common == 1.0 else (self.alpha[0] * x_user, self.alpha[0] * x_item)
        if common is None:  # explicit weights: E = a_0 E0 + sum_k a_k E_k
            out_user, out_item = self.alpha[0] * x_user, self.alpha[0] * x_item
            beta, last = 1.0, float(self.alpha[K])
        else:  # equal weights c: E = c (E0 + sum_k E_k), c applied once, with the last layer
            out_user = out_item = None
            beta = last = common
        h_user, h_item = x_user, x_item
        for k in range(1, K):
            h_user, h_item = (self.conv((h_item, h_user), adj.item_to_user),
                              self.conv((h_user, h_item), adj.user_to_item))
            a = 1.0 if common is not None else float(self.alpha[k])
            if out_user is None:
                out_user, out_item = x_user + h_user, x_item + h_item
            elif inplace:
                out_user.add_(h_user, alpha=a)
                out_item.add_(h_item, alpha=a)
            else:
                out_user, out_item = out_user + a * h_user, out_item + a * h_item
        if out_user is None:  # one layer, equal weights: E = c E0 + c M E0
            out_user, out_item = x_user * common, x_item * common
            beta = 1.0
        if inplace:
            return (adj.item_to_user.addmm_(out_user, h_item, beta=beta, alpha=last),
                    adj.user_to_item.addmm_(out_item, h_user, beta=beta, alpha=last))
        return (torch.add(out_user if beta == 1.0 else beta * out_user, adj.item_to_user.matmul(h_item), alpha=last),
                torch.add(out_item if beta == 1.0 else beta * out_item, adj.user_to_item.matmul(h_user), alpha=last))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(num_layers={self.num_layers}, combine={self.combine!r})'


class _FusedPropagation(torch.autograd.Function):
    r"""The layer stack as one autograd node: forward :math:`\sum_k \alpha_k \mathbf{A}^k \mathbf{X}`,
    backward the same map on the gradient (:math:`\mathbf{A}` is symmetric; see
    :class:`LightGCNPropagation`)."""
    @staticmethod
    def forward(ctx: Any, x_user: Tensor, x_item: Tensor, prop: LightGCNPropagation,  # type: ignore[override]
                adj: BipartiteAdj) -> Tuple[Tensor, Tensor]:
        ctx.prop, ctx.adj = prop, adj
        return prop._propagate(adj, x_user.detach(), x_item.detach(), inplace=True)

    @staticmethod
    def backward(ctx: Any, grad_user: Tensor, grad_item: Tensor  # type: ignore[override]
                 ) -> Tuple[Tensor, Tensor, None, None]:
        with torch.no_grad():
            g_user, g_item = ctx.prop._propagate(ctx.adj, grad_user.contiguous(), grad_item.contiguous(),
                                                 inplace=True)
        return g_user, g_item, None, None
