from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .cg_block import CGBlock
from .gaussian_diffusion import timestep_embedding
from .pg_block import PGBlock


class CNet(torch.nn.Module):
    r"""The conditional denoising network of LD4MRec (Sec. 5, Fig. 2): it predicts a user's behaviour vector
    :math:`\hat{\mathbf{x}}_0 \in \mathbb{R}^{|\mathcal{I}|}` from a (noisy or observed) behaviour vector
    :math:`\mathbf{x}`, the step :math:`t`, the user's collaborative signal :math:`\mathbf{c}` and one
    preference signal :math:`\mathbf{p}^m` per modality:

    .. math::
        \mathbf{z} &= \mathbf{W}_t \big(\mathrm{emb}(t) + \mathbf{e}^0\big) + \mathbf{b}_t \\
        \mathbf{h} &= \tanh\big(\mathbf{W}_{\text{in}}\, \mathrm{dropout}(\mathbf{x}) + \mathbf{b}_{\text{in}}
        \big) \\
        \mathbf{h} &= \mathrm{CG}_1(\mathbf{h}, \mathbf{z}, \mathbf{c}) \\
        \mathbf{h} &= \mathrm{LeakyReLU}\big(\mathrm{PG}_m(\mathbf{h}, \mathbf{p}^m)\big)
        \quad \text{for each modality } m \text{ in turn} \\
        \mathbf{h} &= \mathrm{CG}_2(\mathbf{h}, \mathbf{z}, \mathbf{c}) \\
        \hat{\mathbf{x}}_0 &= \mathbf{W}_{\text{out}} \mathbf{h} + \mathbf{b}_{\text{out}}

    :math:`\mathrm{emb}` is the sinusoidal step embedding shared with DiffCL
    (:func:`~pyg_diffcl.nn.timestep_embedding`; :math:`t` may be fractional) and :math:`\mathbf{e}^0` an
    optional per-row offset (LD4MRec's learnable initial-step embedding). Sizes: the FC layers map
    :math:`|\mathcal{I}| \to` :obj:`fc_dim` and back (the paper's "embedding size" 1000), the CG blocks
    :obj:`fc_dim` :math:`\to` :obj:`hidden` :math:`\to` :obj:`fc_dim` ("dimension compression"), the PG
    blocks act at :obj:`hidden`. The stacking order (FC, CG, PG per modality, CG, FC) is the reading of the
    paper's Fig. 2 and its ablation text ("w/o PG ... sequentially link the two CG blocks"); the figure itself
    is missing from the text.

    Ablations (the paper's Fig. 5): :obj:`use_pg=False` links the two CG blocks directly;
    :obj:`use_cg=False` replaces each CG block by :math:`\tanh(\mathbf{W}[\mathbf{h} \,\|\, \mathbf{z}] +
    \mathbf{b})` with no collaborative signal (the DiffRec-style MLP).

    Args:
        num_items (int): :math:`|\mathcal{I}|`.
        collab_channels (int): Size of :math:`\mathbf{c}` (ignored with :obj:`use_cg=False`).
        pref_channels (Sequence[int]): Size of each modality's :math:`\mathbf{p}^m`, in order.
        fc_dim (int, optional): FC size. (default: :obj:`1000`)
        hidden (int, optional): CG/PG size. (default: :obj:`100`)
        time_dim (int, optional): Step-embedding size. (default: :obj:`10`)
        dropout (float, optional): Input dropout (DiffRec's 0.5). (default: :obj:`0.5`)
        use_cg (bool, optional): CG blocks. (default: :obj:`True`)
        use_pg (bool, optional): PG blocks. (default: :obj:`True`)
        gate (str, optional): The CG gate's input, see :class:`CGBlock`. (default: :obj:`'step'`)
    """
    def __init__(self, num_items: int, collab_channels: int, pref_channels: Sequence[int], fc_dim: int = 1000,
                 hidden: int = 100, time_dim: int = 10, dropout: float = 0.5, use_cg: bool = True,
                 use_pg: bool = True, gate: str = 'step') -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout}')
        if use_pg and not pref_channels:
            raise ValueError('use_pg=True needs at least one modality preference signal')
        self.num_items, self.fc_dim, self.hidden, self.time_dim = num_items, fc_dim, hidden, time_dim
        self.use_cg, self.use_pg, self.dropout_p = use_cg, use_pg, dropout
        self.pref_channels: List[int] = list(pref_channels) if use_pg else []
        self.time_lin = torch.nn.Linear(time_dim, time_dim)
        self.fc_in = torch.nn.Linear(num_items, fc_dim)
        self.fc_out = torch.nn.Linear(fc_dim, num_items)
        if use_cg:
            self.block1: torch.nn.Module = CGBlock(fc_dim, collab_channels, hidden, time_dim, gate)
            self.block2: torch.nn.Module = CGBlock(hidden, collab_channels, fc_dim, time_dim, gate)
        else:
            self.block1 = torch.nn.Linear(fc_dim + time_dim, hidden)
            self.block2 = torch.nn.Linear(hidden + time_dim, fc_dim)
        self.pg = torch.nn.ModuleList(PGBlock(hidden, p) for p in self.pref_channels)
        self.dropout = torch.nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.time_lin, self.fc_in, self.fc_out) + (() if self.use_cg else (self.block1, self.block2)):
            torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        if self.use_cg:
            self.block1.reset_parameters()
            self.block2.reset_parameters()
        for pg in self.pg:
            pg.reset_parameters()

    def step_embedding(self, t: Tensor, offset: Optional[Tensor] = None) -> Tensor:
        r""":math:`\mathbf{z}` for steps :obj:`t` ``[B]`` and an optional offset ``[B, time_dim]``."""
        emb = timestep_embedding(t, self.time_dim)
        if offset is not None:
            emb = emb + offset
        return self.time_lin(emb)

    def _block(self, block: torch.nn.Module, h: Tensor, z: Tensor, c: Optional[Tensor]) -> Tensor:
        if self.use_cg:
            return block(h, z, c)
        return torch.tanh(block(torch.cat([h, z], dim=-1)))

    def forward(self, x: Tensor, t: Tensor, collab: Optional[Tensor] = None,
                prefs: Optional[Sequence[Tensor]] = None, step_offset: Optional[Tensor] = None) -> Tensor:
        """:obj:`x` ``[B, num_items]``, :obj:`t` ``[B]``, :obj:`collab` ``[B, collab_channels]``,
        :obj:`prefs` one ``[B, pref_channels[m]]`` per modality -> :math:`\\hat{\\mathbf{x}}_0` ``[B, num_items]``."""
        return self.fc_out(self.hidden_state(x, t, collab, prefs, step_offset))

    def hidden_state(self, x: Tensor, t: Tensor, collab: Optional[Tensor] = None,
               prefs: Optional[Sequence[Tensor]] = None, step_offset: Optional[Tensor] = None) -> Tensor:
        """The ``[B, fc_dim]`` features before the linear output layer: :meth:`forward` is
        ``fc_out(hidden_state(...))``."""
        if self.use_cg and collab is None:
            raise ValueError('collab: CNet with use_cg=True needs the collaborative signal')
        if self.use_pg and (prefs is None or len(prefs) != len(self.pg)):
            raise ValueError(f'prefs: CNet expects {len(self.pg)} preference signals, got '
                             f'{0 if prefs is None else len(prefs)}')
        z = self.step_embedding(t, step_offset)
        h = torch.tanh(self.fc_in(self.dropout(x)))
        h = self._block(self.block1, h, z, collab)
        for pg, p in zip(self.pg, prefs or []):
            h = F.leaky_relu(pg(h, p))
        return self._block(self.block2, h, z, collab)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_items}, fc_dim={self.fc_dim}, hidden={self.hidden}, '
                f'time_dim={self.time_dim}, use_cg={self.use_cg}, use_pg={self.use_pg}, '
                f'modalities={len(self.pg)})')
