from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor

from .gaussian_diffusion import timestep_embedding


class DenoisingMLP(torch.nn.Module):
    r"""The denoiser :math:`f_\theta(\mathbf{x}_t, t)` of DiffRec / DiffMM: the step's sinusoidal embedding
    through a linear map, concatenated to the (dropped-out) input, then an MLP with :math:`\tanh` between
    layers:

    .. math::
        f_\theta(\mathbf{x}_t, t) = \mathrm{MLP}\big([\mathrm{dropout}(\mathbf{x}_t) \,\|\,
        \mathbf{W}_t \,\mathrm{emb}(t)]\big)

    Its output is read as :math:`\hat{\mathbf{x}}_0` or as the noise by
    :class:`~pyg_diffcl.nn.GaussianDiffusion` (argument ``predict`` there).

    The first layer is computed as :math:`\mathbf{W}_x \mathbf{x} + (\mathbf{W}_e \mathbf{e}_t +
    \mathbf{b})` with its weight split by columns, the same map as on the concatenation, and the step term
    is computed once per distinct step: in a reverse chain every row is at the same step, so it is one row
    broadcast over the batch instead of a ``[B, time_dim]`` embedding and a ``[B, dim + time_dim]`` copy.

    Args:
        dim (int): Input and output size.
        hidden (Sequence[int], optional): Hidden layer sizes. (default: :obj:`(256,)`)
        time_dim (int, optional): Step-embedding size. (default: :obj:`10`)
        dropout (float, optional): Input dropout (DiffCL Sec. V-A-3: 0.5). (default: :obj:`0.5`)
        norm (bool, optional): L2-normalise the input first (DiffRec's ``norm`` option).
            (default: :obj:`False`)
    """
    def __init__(self, dim: int, hidden: Sequence[int] = (256,), time_dim: int = 10, dropout: float = 0.5,
                 norm: bool = False) -> None:
        super().__init__()
        self.dim, self.hidden, self.time_dim = dim, list(hidden), time_dim
        self.dropout_p, self.norm = dropout, norm
        self.time_lin = torch.nn.Linear(time_dim, time_dim)
        sizes: List[int] = [dim + time_dim] + self.hidden + [dim]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = torch.nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in [self.time_lin, *self.layers]:
            torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        """:obj:`t`: ``[B]`` steps, or a single step (one element) shared by every row."""
        steps, inverse = (t.reshape(1), None) if t.numel() == 1 else torch.unique(t, return_inverse=True)
        temb = self.time_lin(timestep_embedding(steps, self.time_dim).to(x_t.dtype))
        if self.norm:
            x_t = torch.nn.functional.normalize(x_t, dim=-1)
        first = self.layers[0]
        w_x, w_t = first.weight[:, :self.dim], first.weight[:, self.dim:]
        step_term = torch.nn.functional.linear(temb, w_t, first.bias)
        if inverse is not None and steps.numel() > 1:  # distinct steps: one row per input row
            step_term = step_term[inverse]
        h = torch.nn.functional.linear(self.dropout(x_t), w_x) + step_term
        for lin in self.layers[1:]:  # tanh between layers, none after the last
            h = lin(torch.tanh(h))
        return h

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.dim}, hidden={self.hidden}, time_dim={self.time_dim}, '
                f'dropout={self.dropout_p})')
