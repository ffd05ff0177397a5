from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class PGBlock(torch.nn.Module):
    r"""The preference-aware generation block of LD4MRec (Sec. 5.5, Eq. 21-22): a feature-wise linear
    modulation of the behaviour representation :math:`\mathbf{h}` by the user's preference signal
    :math:`\mathbf{p}^m` for one modality :math:`m`:

    .. math::
        \boldsymbol{\gamma} = \mathrm{MLP}_\gamma(\mathbf{p}^m), \qquad
        \boldsymbol{\beta} = \mathrm{MLP}_\beta(\mathbf{p}^m), \qquad
        \mathbf{h}^{\text{out}} = \boldsymbol{\gamma} \odot \mathbf{h} + \boldsymbol{\beta}

    (a scaling "feature transformation" and a channel-wise shift). Each MLP is
    :math:`\mathrm{Linear} \to \mathrm{LeakyReLU} \to \mathrm{Linear}`. The last layers start at zero weight
    with biases 1 (:math:`\gamma`) and 0 (:math:`\beta`), so a fresh block is the identity and the
    modulation is learned from there (FiLM practice; the paper gives no initialisation).

    Args:
        channels (int): Size of :math:`\mathbf{h}`.
        pref_channels (int): Size of :math:`\mathbf{p}^m`.
        hidden_channels (int, optional): Hidden size of the MLPs; :obj:`None`: :obj:`channels`.
            (default: :obj:`None`)
    """
    def __init__(self, channels: int, pref_channels: int, hidden_channels: int | None = None) -> None:
        super().__init__()
        self.channels, self.pref_channels = channels, pref_channels
        self.hidden_channels = hidden = hidden_channels or channels
        self.gamma = torch.nn.ModuleList([torch.nn.Linear(pref_channels, hidden), torch.nn.Linear(hidden, channels)])
        self.beta = torch.nn.ModuleList([torch.nn.Linear(pref_channels, hidden), torch.nn.Linear(hidden, channels)])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mlp, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            torch.nn.init.xavier_normal_(mlp[0].weight)
            torch.nn.init.zeros_(mlp[0].bias)
            torch.nn.init.zeros_(mlp[1].weight)
            torch.nn.init.constant_(mlp[1].bias, bias)

    @staticmethod
    def _mlp(mlp: torch.nn.ModuleList, p: Tensor) -> Tensor:
        return mlp[1](F.leaky_relu(mlp[0](p)))

    def forward(self, h: Tensor, p: Tensor) -> Tensor:
        """:obj:`h` ``[B, channels]``, :obj:`p` ``[B, pref_channels]`` -> ``[B, channels]``."""
        return self._mlp(self.gamma, p) * h + self._mlp(self.beta, p)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.channels}, pref_channels={self.pref_channels}, '
                f'hidden_channels={self.hidden_channels})')
