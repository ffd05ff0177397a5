from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

RECONSTRUCTIONS = ('mse', 'multinomial')


def soft_labels(x0: Tensor, prob: float, smooth: float, generator: Optional[torch.Generator] = None) -> Tensor:
    r"""LD4MRec's soft behaviour labels (Eq. 7): every entry of the binary behaviour matrix :obj:`x0` is
    picked independently with probability :math:`\rho` (:obj:`prob`); a picked clicked entry
    (:math:`\mathcal{S}^+`) becomes :math:`1 - \epsilon`, a picked unclicked entry (:math:`\mathcal{S}^-`)
    becomes :math:`\epsilon` (:obj:`smooth`); the rest keep their 0/1 label:

    .. math::
        \tilde{x}_{ui} = \begin{cases} 1 - \epsilon & (u, i) \in \mathcal{S}^+ \\
        \epsilon & (u, i) \in \mathcal{S}^- \\ x_{ui} & \text{otherwise} \end{cases}

    The paper's Eq. 6-7 lost their symbols in conversion; this is the reading of its text ("sample two
    subsets ... with a probability of :math:`\rho` ... then the smoothing operation"), with the smoothing
    moving a picked label by :math:`\epsilon` towards the opposite class. :math:`\rho = 0` or
    :math:`\epsilon = 0` gives the plain labels (the paper's "w/o SR").
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'prob must be in [0, 1], got {prob}')
    if not 0.0 <= smooth <= 1.0:
        raise ValueError(f'smooth must be in [0, 1], got {smooth}')
    if prob == 0.0 or smooth == 0.0:
        return x0
    picked = torch.rand(x0.shape, generator=generator, device=x0.device if generator is None
                        else generator.device) < prob
    picked = picked.to(x0.device)
    return torch.where(picked, x0 * (1.0 - smooth) + (1.0 - x0) * smooth, x0)


class SoftReconstructionLoss(torch.nn.Module):
    r"""LD4MRec's soft behaviour reconstruction loss (Eq. 6): the squared error between the predicted
    behaviours :math:`\hat{\mathbf{x}}_0` and the soft labels :math:`\tilde{\mathbf{x}}_0`
    (:func:`soft_labels`), averaged over items, **one value per user**:

    .. math::
        \mathcal{L}_u = \frac{1}{|\mathcal{I}|} \big\| \hat{\mathbf{x}}_{0,u} - \tilde{\mathbf{x}}_{0,u}
        \big\|_2^2

    The caller weights and averages them (LD4MRec's importance-sampling weights, Eq. 8) and records them for
    the step sampler (:class:`~pyg_diffcl.nn.StepSampler`). The mean over items follows DiffRec.

    :obj:`kind='multinomial'` is an option outside the paper: Mult-VAE's multinomial log-likelihood of the
    soft labels, :math:`\mathcal{L}_u = -\sum_i \tilde{x}_{0,ui} \log \mathrm{softmax}(\hat{\mathbf{x}}_{0,u})_i`,
    a ranking-friendlier reconstruction for very sparse rows.

    Args:
        prob (float, optional): :math:`\rho`, the soft probability (paper's optimum 0.01).
            (default: :obj:`0.01`)
        smooth (float, optional): :math:`\epsilon`, the smoothing intensity (paper's optimum 0.01).
            (default: :obj:`0.01`)
        kind (str, optional): ``'mse'`` (the paper's) or ``'multinomial'``. (default: :obj:`'mse'`)
    """
    def __init__(self, prob: float = 0.01, smooth: float = 0.01, kind: str = 'mse') -> None:
        super().__init__()
        soft_labels(torch.zeros(1), prob, smooth)  # range checks
        if kind not in RECONSTRUCTIONS:
            raise ValueError(f'kind must be one of {list(RECONSTRUCTIONS)}, got {kind!r}')
        self.prob, self.smooth, self.kind = prob, smooth, kind

    def forward(self, pred: Tensor, x0: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """:obj:`pred`, :obj:`x0` ``[B, I]`` -> per-user losses ``[B]``."""
        if pred.shape != x0.shape:
            raise ValueError(f'pred and x0 must have the same shape, got {tuple(pred.shape)} and '
                             f'{tuple(x0.shape)}')
        target = soft_labels(x0, self.prob if self.training else 0.0, self.smooth, generator)
        if self.kind == 'multinomial':
            return -(target * F.log_softmax(pred, dim=-1)).sum(dim=-1)
        return (pred - target).pow(2).mean(dim=-1)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, smooth={self.smooth}, kind={self.kind!r})'
