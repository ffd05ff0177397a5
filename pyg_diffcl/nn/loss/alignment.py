from __future__ import annotations

import torch
from torch import Tensor


class IDGuidedAlignment(torch.nn.Module):
    r"""ID-guided distribution alignment (DiffCL Eq. 25-28): each modality's embedding matrix is summarised
    by a Gaussian :math:`\mathcal{N}(\mu_m, \sigma_m^2)`, and the ID embeddings' Gaussian guides them:

    .. math::
        \mathcal{L}_{align} = \sum_{m} |\mu_{id} - \mu_m| + |\sigma_{id} - \sigma_m|

    (the weight :math:`\lambda_{align}` is applied by the caller). The paper does not say over which axis
    the statistics are taken. ``axis='all'`` (default) takes one scalar mean and standard deviation over
    every entry of the :math:`N \times d` matrix, as in MENTOR's Gaussian fitting that DiffCL's alignment
    follows (a per-dimension or per-node reading would be a much stronger constraint than "distribution
    alignment"); ``axis='dim'`` takes per-dimension statistics over the rows and averages the :math:`d` L1
    distances. ``stat='var'`` compares variances instead of standard deviations (MENTOR's code).

    Args:
        axis (str, optional): ``'all'`` or ``'dim'``. (default: :obj:`'all'`)
        stat (str, optional): ``'std'`` or ``'var'``. (default: :obj:`'std'`)
        detach_id (bool, optional): Stop gradients into the ID embeddings (they guide, and are not pulled
            towards the modalities). (default: :obj:`False`)
    """
    def __init__(self, axis: str = 'all', stat: str = 'std', detach_id: bool = False) -> None:
        super().__init__()
        if axis not in ('all', 'dim'):
            raise ValueError(f"axis must be 'all' or 'dim', got {axis!r}")
        if stat not in ('std', 'var'):
            raise ValueError(f"stat must be 'std' or 'var', got {stat!r}")
        self.axis, self.stat, self.detach_id = axis, stat, detach_id

    def _moments(self, x: Tensor):
        if self.axis == 'all':
            x = x.reshape(-1)
            mean, var = x.mean(), x.var(unbiased=False)
        else:
            mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        spread = var if self.stat == 'var' else (var + 1e-12).sqrt()
        return mean, spread

    def forward(self, x_id: Tensor, *x_modalities: Tensor) -> Tensor:
        if self.detach_id:
            x_id = x_id.detach()
        mu_id, s_id = self._moments(x_id)
        loss = x_id.new_zeros(())
        for x in x_modalities:
            mu, s = self._moments(x)
            loss = loss + ((mu_id - mu).abs() + (s_id - s).abs()).mean()
        return loss

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(axis={self.axis!r}, stat={self.stat!r}, detach_id={self.detach_id})'
