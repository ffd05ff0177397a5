from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor


class ModalityFusion(torch.nn.Module):
    r"""Learnable fusion of :math:`M` modality embedding matrices (DiffCL Eq. 24, generalised):

    * :math:`M = 1`: the single matrix, unchanged (no parameter);
    * :math:`M = 2`: :math:`\mathbf{E} = \mu\,\mathbf{E}_1 + (1 - \mu)\,\mathbf{E}_2` with one trainable
      scalar :math:`\mu` initialised at 0.5. With :obj:`mode='convex'` (default),
      :math:`\mu = \sigma(\theta) \in (0, 1)`; with ``'free'``, :math:`\mu` is unconstrained, exactly as
      Eq. 24 prints it. Unconstrained, :math:`\mu` is a free *scale* of the fused matrix (:math:`\mu = 3`
      gives :math:`3\mathbf{E}_1 - 2\mathbf{E}_2`): BPR then inflates the modality score without bound and
      it swamps the ID score (measured on tiktok: the fused rows' norm tripled in 12 epochs while validation
      recall fell from 0.070 to 0.044);
    * :math:`M > 2`: :math:`\mathbf{E} = \sum_m w_m \mathbf{E}_m`, :math:`\mathbf{w} =
      \mathrm{softmax}(\boldsymbol{\theta})`, weights on the simplex, equal (:math:`1/M`) at the start.

    :obj:`mode='fixed'` keeps the starting weights (:math:`\mu` = :obj:`init` for :math:`M = 2`, :math:`1/M`
    otherwise) and learns none: a convex mix of two vectors of similar length is longest at an end point, so
    BPR, which rewards length, can push a learnable :math:`\mu` into a corner and discard a modality for its
    geometry rather than its usefulness (on tiktok, :math:`\sigma(\theta)` reached 0.99 for the image).

    Args:
        num_modalities (int): :math:`M \geq 1`.
        init (float, optional): Initial :math:`\mu` for :math:`M = 2`. (default: :obj:`0.5`)
        mode (str, optional): ``'convex'``, ``'free'`` (:math:`M = 2` only) or ``'fixed'``.
            (default: :obj:`'convex'`)
    """
    def __init__(self, num_modalities: int, init: float = 0.5, mode: str = 'convex') -> None:
        super().__init__()
        if num_modalities < 1:
            raise ValueError(f'need at least one modality, got {num_modalities}')
        if mode not in ('convex', 'free', 'fixed'):
            raise ValueError(f"mode must be 'convex', 'free' or 'fixed', got {mode!r}")
        if mode in ('convex', 'fixed') and not 0.0 < init < 1.0:
            raise ValueError(f'a convex fusion needs 0 < init < 1, got {init}')
        self.num_modalities, self.init, self.mode = num_modalities, init, mode
        if mode == 'fixed':
            w = [init, 1.0 - init] if num_modalities == 2 else [1.0 / num_modalities] * num_modalities
            self.register_buffer('fixed_weights', torch.tensor(w))
        elif num_modalities == 2:
            #: mu itself ('free') or its logit ('convex')
            self.mu = torch.nn.Parameter(torch.tensor(0.0))
        elif num_modalities > 2:
            self.logits = torch.nn.Parameter(torch.zeros(num_modalities))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.mode == 'fixed':
            return
        if self.num_modalities == 2:
            with torch.no_grad():
                self.mu.fill_(self.init if self.mode == 'free' else math.log(self.init / (1.0 - self.init)))
        elif self.num_modalities > 2:
            torch.nn.init.zeros_(self.logits)

    def weights(self) -> Tensor:
        """The current weights :math:`(w_1, ..., w_M)`."""
        if self.num_modalities == 1:
            return torch.ones(1)
        if self.mode == 'fixed':
            return self.fixed_weights
        if self.num_modalities == 2:
            mu = self.mu if self.mode == 'free' else torch.sigmoid(self.mu)
            return torch.stack([mu, 1 - mu])
        return torch.softmax(self.logits, 0)

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        if len(xs) != self.num_modalities:
            raise ValueError(f'expected {self.num_modalities} modality matrices, got {len(xs)}')
        if self.num_modalities == 1:
            return xs[0]
        w = self.weights()
        out = w[0] * xs[0]
        for k in range(1, len(xs)):
            out = out + w[k] * xs[k]
        return out

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(num_modalities={self.num_modalities}, mode={self.mode!r})'
