from __future__ import annotations

import torch
from torch import Tensor

GATES = ('step', 'all')


class CGBlock(torch.nn.Module):
    r"""The collaboration-aware generation block of LD4MRec (Sec. 5.4, Eq. 18-20): a user's behaviour
    representation :math:`\mathbf{h}`, conditioned on the step embedding :math:`\mathbf{z}`, is fused with
    the user's collaborative signal :math:`\mathbf{c}` through a step-controlled gate:

    .. math::
        \mathbf{h}' = \sigma\big(\mathbf{W}_h [\mathbf{h} \,\|\, \mathbf{z}] + \mathbf{b}_h\big), \qquad
        \mathbf{c}' = \sigma\big(\mathbf{W}_c \mathbf{c} + \mathbf{b}_c\big),

        \mathbf{g} = \mathrm{sigmoid}\big(\mathbf{W}_g \mathbf{z} + \mathbf{b}_g\big), \qquad
        \mathbf{h}^{\text{out}} = \mathbf{g} \odot \mathbf{h}' + (1 - \mathbf{g}) \odot \mathbf{c}'

    with :math:`\sigma = \tanh` (DiffRec's activation). The paper's Eq. 20 lost its symbols in conversion;
    the text says the two are "adaptively fused under the control of the forward diffusion step", read here
    as a gate computed from :math:`\mathbf{z}` alone (:obj:`gate='step'`). :obj:`gate='all'` computes it from
    :math:`[\mathbf{h}' \,\|\, \mathbf{c}' \,\|\, \mathbf{z}]` instead (a per-user, content-aware gate).

    Args:
        in_channels (int): Size of :math:`\mathbf{h}`.
        cond_channels (int): Size of :math:`\mathbf{c}`.
        out_channels (int): Output size.
        time_channels (int): Size of :math:`\mathbf{z}`.
        gate (str, optional): ``'step'`` or ``'all'``. (default: :obj:`'step'`)
    """
    def __init__(self, in_channels: int, cond_channels: int, out_channels: int, time_channels: int,
                 gate: str = 'step') -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f'gate must be one of {list(GATES)}, got {gate!r}')
        self.in_channels, self.cond_channels, self.out_channels = in_channels, cond_channels, out_channels
        self.time_channels, self.gate = time_channels, gate
        self.lin_h = torch.nn.Linear(in_channels + time_channels, out_channels)
        self.lin_c = torch.nn.Linear(cond_channels, out_channels)
        gate_in = time_channels if gate == 'step' else 2 * out_channels + time_channels
        self.lin_g = torch.nn.Linear(gate_in, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_h, self.lin_c, self.lin_g):
            torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, h: Tensor, z: Tensor, c: Tensor) -> Tensor:
        """:obj:`h` ``[B, in]``, :obj:`z` ``[B, time]``, :obj:`c` ``[B, cond]`` -> ``[B, out]``."""
        h1 = torch.tanh(self.lin_h(torch.cat([h, z], dim=-1)))
        c1 = torch.tanh(self.lin_c(c))
        g_in = z if self.gate == 'step' else torch.cat([h1, c1, z], dim=-1)
        g = torch.sigmoid(self.lin_g(g_in))
        return g * h1 + (1.0 - g) * c1

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'cond_channels={self.cond_channels}, time_channels={self.time_channels}, gate={self.gate!r})')
