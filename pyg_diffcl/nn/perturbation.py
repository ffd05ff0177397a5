from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class SimGCLNoise(torch.nn.Module):
    r"""SimGCL's uniform noise perturbation of embeddings, from the `"Are Graph Augmentations Necessary?
    Simple Graph Contrastive Learning for Recommendation" <https://arxiv.org/abs/2112.08679>`_ paper
    (Yu et al., SIGIR 2022, Eq. 7), which MENTOR applies after every graph layer of its perturbed views:

    .. math::
        \mathbf{h}' = \mathbf{h} + \boldsymbol{\Delta}, \qquad
        \boldsymbol{\Delta} = \epsilon \, \mathrm{sign}(\mathbf{h}) \odot
        \frac{\mathbf{r}}{\|\mathbf{r}\|_2}, \quad \mathbf{r} \sim U(0, 1)^d

    row by row: every row moves by exactly :math:`\epsilon` (rows with zeros move less), into the orthant
    of :math:`\mathbf{h}`, so the perturbation never flips a coordinate's sign. Pass it to
    :class:`~pyg_diffcl.nn.LightGCNPropagation` as ``perturb=`` to perturb each layer's output. The noise
    is drawn whenever the module is called (contrastive views exist only in a training loss); the noise
    itself carries no gradient.

    Args:
        eps (float, optional): :math:`\epsilon`, the length of each row's perturbation. (default: :obj:`0.1`)
    """
    def __init__(self, eps: float = 0.1) -> None:
        super().__init__()
        if not eps >= 0.0:
            raise ValueError(f'eps must be non-negative, got {eps}')
        self.eps = float(eps)

    def reset_parameters(self) -> None:
        pass

    def forward(self, h: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        if self.eps == 0.0:
            return h
        r = torch.rand(h.shape, dtype=h.dtype, device=h.device, generator=generator)
        return h + torch.sign(h.detach()) * F.normalize(r, dim=-1) * self.eps

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(eps={self.eps})'
