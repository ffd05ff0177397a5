from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor


class IDGuidedAlignment(torch.nn.Module):
    r"""ID-guided distribution alignment (DiffCL Eq. 25-28): each modality's embedding matrix is summarised
    by a Gaussian :math:`\mathcal{N}(\mu_m, \sigma_m^2)`, and the ID embeddings' Gaussian guides them:

    .. math::
        \mathcal{L}_{align} = \sum_{m} |\mu_{id} - \mu_m| + |\sigma_{id} - \sigma_m|

    (the weight :math:`\lambda_{align}` is applied by the caller). MENTOR, whose alignment DiffCL's
    follows, compares every pair of its matrices (the ID, the fused and each modality's: six pairs for two
    modalities, ``src/models/mentor.py``, ``align_loss``); :obj:`pairs='all'` does the same over the
    arguments :math:`\mathbf{X}_0 = \mathbf{X}_{id}, \mathbf{X}_1, \dots`:

    .. math::
        \mathcal{L}_{align} = \sum_{a < b} |\mu_a - \mu_b| + |\sigma_a - \sigma_b|

    The paper does not say over which axis the statistics are taken. ``axis='all'`` (default) takes one scalar mean and standard deviation over
    every entry of the :math:`N \times d` matrix, as in MENTOR's Gaussian fitting that DiffCL's alignment
    follows (a per-dimension or per-node reading would be a much stronger constraint than "distribution
    alignment"); ``axis='dim'`` takes per-dimension statistics over the rows and averages the :math:`d` L1
    distances. ``stat='var'`` compares variances instead of standard deviations (MENTOR's code).

    Args:
        axis (str, optional): ``'all'`` or ``'dim'``. (default: :obj:`'all'`)
        stat (str, optional): ``'std'`` or ``'var'``. (default: :obj:`'std'`)
        detach_id (bool, optional): Stop gradients into the ID embeddings (they guide, and are not pulled
            towards the modalities). (default: :obj:`False`)
        pairs (str, optional): ``'guide'`` (the ID matrix against each other one) or ``'all'`` (every pair,
            MENTOR's). (default: :obj:`'guide'`)
    """
    def __init__(self, axis: str = 'all', stat: str = 'std', detach_id: bool = False, pairs: str = 'guide'
                 ) -> None:
        super().__init__()
        if axis not in ('all', 'dim'):
            raise ValueError(f"axis must be 'all' or 'dim', got {axis!r}")
        if stat not in ('std', 'var'):
            raise ValueError(f"stat must be 'std' or 'var', got {stat!r}")
        if pairs not in ('guide', 'all'):
            raise ValueError(f"pairs must be 'guide' or 'all', got {pairs!r}")
        self.axis, self.stat, self.detach_id, self.pairs = axis, stat, detach_id, pairs

    def _moments(self, x: Tensor | Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        r"""Mean and spread of a matrix given whole or as row blocks :math:`\mathbf{X} = [\mathbf{X}_1; ...;
        \mathbf{X}_B]` (users and items, say), without concatenating them: each block's variance and mean
        are combined by the parallel-variance identity

        .. math::
            \mu = \sum_b \frac{n_b}{n} \mu_b, \qquad
            \sigma^2 = \sum_b \frac{n_b}{n} \big(\sigma_b^2 + (\mu_b - \mu)^2\big)

        (:math:`n_b` entries of block :math:`b` for ``axis='all'``, rows for ``axis='dim'``), which is exact
        and, unlike :math:`E[x^2] - E[x]^2`, free of cancellation."""
        blocks = [x] if isinstance(x, Tensor) else list(x)
        dim = None if self.axis == 'all' else 0
        stats = [self._block(b, dim) for b in blocks]
        sizes = [float(b.numel() if dim is None else b.size(0)) for b in blocks]
        if len(blocks) == 1:
            var, mean = stats[0]
        else:
            n = sum(sizes)
            mean = sum((nb / n) * m for (_, m), nb in zip(stats, sizes))
            var = sum((nb / n) * (v + (m - mean) ** 2) for (v, m), nb in zip(stats, sizes))
        spread = var if self.stat == 'var' else (var + 1e-12).sqrt()
        return mean, spread

    @staticmethod
    def _block(x: Tensor, dim: int | None) -> Tuple[Tensor, Tensor]:
        """``(variance, mean)`` of one block. Not :func:`torch.var_mean`, whose CPU kernel is several times
        slower than :meth:`Tensor.var` and :meth:`Tensor.mean` called one after the other; per column, the
        centred square's mean is cheaper than ``var(dim=0)``."""
        if dim is None:
            return x.var(unbiased=False), x.mean()
        mean = x.mean(dim=0)
        return (x - mean).square().mean(dim=0), mean

    def forward(self, x_id: Tensor | Sequence[Tensor], *x_modalities: Tensor | Sequence[Tensor]) -> Tensor:
        """Each argument is an :math:`N \times d` matrix, or a sequence of its row blocks (for example
        ``(users, items)``), which gives the same loss as their concatenation without copying them."""
        if self.detach_id:
            x_id = x_id.detach() if isinstance(x_id, Tensor) else [b.detach() for b in x_id]
        moments = [self._moments(x_id)] + [self._moments(x) for x in x_modalities]
        mu_id = moments[0][0]
        loss = mu_id.new_zeros(())
        pairs = ([(0, b) for b in range(1, len(moments))] if self.pairs == 'guide' else
                 [(a, b) for a in range(len(moments)) for b in range(a + 1, len(moments))])
        for a, b in pairs:
            (mu_a, s_a), (mu_b, s_b) = moments[a], moments[b]
            loss = loss + ((mu_a - mu_b).abs() + (s_a - s_b).abs()).mean()
        return loss

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(axis={self.axis!r}, stat={self.stat!r}, detach_id={self.detach_id}, '
                f'pairs={self.pairs!r})')
